"""pipeline: chunked training, runners, generation and run folders (see docs/pipeline.md)."""
from .synthesizer import Synthesizer

__all__ = ["Synthesizer"]
