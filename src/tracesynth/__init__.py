"""tracesynth: learn a generative model of a network trace and sample synthetic traces.

Public API: `read_trace`, `write_trace`, `TraceSynthConfig`, `preset`, `load_config`, and the errors.
(The model and evaluation entry points are added as they land.)
"""
from __future__ import annotations

__version__ = "0.1.0"

from .config import TraceSynthConfig, load_config, preset, save_config
from .errors import ConfigError, InternalError, TraceFormatError, TraceSynthError, UserError
from .io import ReadReport, Trace, read_trace, write_trace
from .runtime import GenerationOptions

__all__ = [
    "__version__",
    "TraceSynthConfig", "load_config", "preset", "save_config",
    "TraceSynthError", "UserError", "TraceFormatError", "ConfigError", "InternalError",
    "ReadReport", "Trace", "read_trace", "write_trace",
    "GenerationOptions",
]
