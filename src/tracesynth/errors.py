"""Error types. The CLI maps UserError to exit code 2 (one line on stderr), anything else to 1.

A UserError means the input or the configuration is wrong and the user can fix it; its message
must name the file, field or byte offset and say what to do.
"""
from __future__ import annotations

from pathlib import Path


class TraceSynthError(Exception):
    """Base of every error tracesynth raises on purpose."""


class UserError(TraceSynthError):
    """Bad input or bad configuration: the user can fix it (CLI exit code 2, HTTP 4xx)."""


class TraceFormatError(UserError):
    """A trace file cannot be read. Carries the file and, where known, the byte offset."""

    def __init__(self, path: str | Path | None, message: str, offset: int | None = None):
        self.path = None if path is None else str(path)
        self.offset = offset
        self.reason = message
        where = self.path or "<input>"
        if offset is not None:
            where += f" at byte offset {offset}"
        super().__init__(f"{where}: {message}")


class ConfigError(UserError):
    """A configuration value is unknown or impossible; the message names the key."""


class NotFittedError(UserError):
    """An encoder or model was used before `fit`."""


class InternalError(TraceSynthError):
    """A bug in tracesynth (CLI exit code 1)."""
