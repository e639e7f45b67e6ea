"""The bundled sample capture (an nDPI test capture, LGPL-3.0; see SOURCE.md and COPYING.nDPI).

It lets `make demo`, the docs and the tests run without any other data.
"""
from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "ethereum.pcap"


def sample_path() -> Path:
    """Path of the bundled sample capture (2,000 IPv4 packets, 67 hosts, TCP and UDP, 3.9 s)."""
    return Path(__file__).resolve().parent / SAMPLE_NAME


__all__ = ["sample_path", "SAMPLE_NAME"]
