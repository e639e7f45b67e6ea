"""Protocol realism: what a protocol analyser (tshark's expert system) complains about, per 1,000 packets.

`tshark -r FILE -q -z expert,note` lists every error, warning and note its dissectors raised (suspected
retransmission, out-of-order segment, duplicate ACK, connection reset, ...), grouped by severity,
protocol and summary text. Marginal and joint scores cannot see these: a trace whose TCP flags, lengths
and timing per packet are plausible can still read as a stream of retransmissions, or as connections
that never open. Summaries are grouped by kind with their numbers replaced by N ("Duplicate ACK (#3)"
-> "Duplicate ACK (#N)").

Tables (evaluate, benchmark) are compared by writing each through the same pcap writer first, so both
sides carry the same synthesised TCP numbers (io/tcp_state.py) and a difference comes from the table
(flows, flags, order, lengths), not from header fields the table does not hold (options, SACK blocks,
real sequence gaps); `expert_counts` on the original capture file gives those too.

tshark's TCP analysis slows down sharply on big captures (a 1M-packet pcap took nearly 5 minutes), so a
table of more than MAX_PACKETS packets is analysed on a seeded sample of whole connections (both
directions of a 5-tuple together, so acknowledgements keep their reverse stream) holding at most that
many packets; rates are per 1,000 analysed packets.

tshark is optional: without it `unavailable()` says why and callers report the metric as skipped.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceSynthError

log = logging.getLogger(__name__)

SEVERITIES = ("Errors", "Warns", "Notes")   # tshark's section titles, worst first; Chats are not complaints
TIMEOUT_S = 300.0
MAX_PACKETS = 100_000    # per table: about 5 s of tshark on real traffic
INSTALL_HINT = "install Wireshark's tshark (apt-get install tshark, or `make tshark`)"
_SECTION = re.compile(r"^(Errors|Warns|Notes|Chats) \(\d+\)\s*$")
_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*?)\s*$")
_FRAMES = re.compile(r"^\|\s*[\d.]+\s*<>\s*[\w.]+\s*\|\s*(\d+)\s*\|")


class ExpertError(TraceSynthError):
    """tshark could not be run on a file, failed on it or did not finish in time (the message says which)."""


@dataclass(frozen=True)
class ExpertCounts:
    """tshark's complaints about one capture: packets read, and count per (severity, protocol, summary)."""

    packets: int
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def per_1k(self) -> dict[tuple[str, str, str], float]:
        """Count per 1,000 packets of every kind."""
        return {k: 1000.0 * v / max(self.packets, 1) for k, v in self.counts.items()}

    def severity_per_1k(self, severity: str) -> float:
        """All complaints of one severity ("Errors", "Warns", "Notes") per 1,000 packets."""
        return 1000.0 * sum(v for (s, _, _), v in self.counts.items() if s == severity) / max(self.packets, 1)


def unavailable() -> str | None:
    """Why the metric cannot run here (None when tshark is on PATH)."""
    return None if shutil.which("tshark") else f"tshark is not installed; {INSTALL_HINT}"


def parse_expert(text: str) -> ExpertCounts:
    """Parse the output of `tshark -q -z expert,note -z io,stat,0` (kinds and the frame count)."""
    counts: dict[tuple[str, str, str], int] = {}
    section, packets = None, 0
    for line in text.splitlines():
        if (m := _SECTION.match(line)) is not None:
            section = m.group(1)
        elif (m := _FRAMES.match(line)) is not None:
            packets += int(m.group(1))
        elif section in SEVERITIES and (m := _ROW.match(line)) is not None:
            key = (section, m.group(3), re.sub(r"\d+", "N", m.group(4)))
            counts[key] = counts.get(key, 0) + int(m.group(1))
    return ExpertCounts(packets, counts)


def expert_counts(path: str | Path, *, timeout_s: float = TIMEOUT_S) -> ExpertCounts:
    """Run tshark's expert analysis on a capture file. Raises ExpertError naming the file and the cause."""
    path = Path(path)
    why = unavailable()
    if why is not None:
        raise ExpertError(f"{path}: cannot run the expert analysis: {why}")
    cmd = ["tshark", "-n", "-r", str(path), "-q", "-z", "expert,note", "-z", "io,stat,0"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, errors="replace")
    except subprocess.TimeoutExpired:
        raise ExpertError(f"{path}: tshark did not finish within {timeout_s:g} s (`{' '.join(cmd)}`); "
                          "give a smaller capture or a longer timeout") from None
    except OSError as exc:
        raise ExpertError(f"{path}: cannot start tshark: {exc}") from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.split()[-40:]) or "no message"
        raise ExpertError(f"{path}: tshark exited with code {done.returncode}: {tail}")
    return parse_expert(done.stdout)


def table_expert_counts(table: pd.DataFrame, *, timeout_s: float = TIMEOUT_S,
                        max_packets: int = MAX_PACKETS) -> ExpertCounts:
    """Write a packet table (or a sample of its connections, `connection_sample`) with the pcap writer
    (default seed) to a temporary file and analyse it."""
    from ..io.pcap_writer import write_pcap

    table = connection_sample(table, max_packets)
    with tempfile.TemporaryDirectory(prefix="tracesynth-expert-") as tmp:
        return expert_counts(write_pcap(table, Path(tmp) / "trace.pcap"), timeout_s=timeout_s)


def connection_sample(table: pd.DataFrame, max_packets: int, seed: int = 0) -> pd.DataFrame:
    """`table` itself when it has at most `max_packets` rows; otherwise the rows (in their order) of
    connections drawn at random until the next would pass `max_packets`. A connection is the unordered
    pair of (address, port) ends plus the protocol: both directions stay together."""
    if len(table) <= max_packets:
        return table
    a = (table["srcip"].to_numpy(np.uint64) << np.uint64(16)) | table["srcport"].to_numpy(np.uint64)
    b = (table["dstip"].to_numpy(np.uint64) << np.uint64(16)) | table["dstport"].to_numpy(np.uint64)
    ends = pd.DataFrame({"lo": np.minimum(a, b), "hi": np.maximum(a, b), "p": table["proto"].to_numpy()})
    conn = ends.groupby(["lo", "hi", "p"], sort=False).ngroup().to_numpy()
    order = np.random.default_rng(seed).permutation(conn.max() + 1)
    sizes = np.bincount(conn)[order]
    keep = order[: max(1, int(np.searchsorted(np.cumsum(sizes), max_packets, side="right")))]
    return table[np.isin(conn, keep)]


def kind_label(key: tuple[str, str, str]) -> str:
    """"Warns TCP: This frame is a (suspected) retransmission"."""
    severity, protocol, summary = key
    return f"{severity} {protocol}: {summary}"


def kind_l1(reference: ExpertCounts, candidate: ExpertCounts) -> float:
    """Sum over every kind of |candidate - reference| per 1,000 packets (0 = the same complaints at the
    same rates)."""
    a, b = reference.per_1k(), candidate.per_1k()
    return float(sum(abs(b.get(k, 0.0) - a.get(k, 0.0)) for k in set(a) | set(b)))


def compare(real: pd.DataFrame, synth: pd.DataFrame, *, timeout_s: float = TIMEOUT_S) -> dict:
    """The evaluation section: per-severity and per-kind rates per 1,000 packets, REAL beside SYNTH.

    Returns {"skipped": why} without tshark, or when tshark fails on either side (logged as a warning)."""
    why = unavailable() or _missing_columns(real, "real") or _missing_columns(synth, "synthetic")
    if why is not None:
        log.warning("protocol realism (tshark expert) skipped: %s", why)
        return {"skipped": why}
    try:
        a, b = (table_expert_counts(t, timeout_s=timeout_s) for t in (real, synth))
    except ExpertError as exc:
        log.warning("protocol realism (tshark expert) skipped: %s", exc)
        return {"skipped": str(exc)}
    ra, rb = a.per_1k(), b.per_1k()
    kinds = sorted(set(ra) | set(rb), key=lambda k: (SEVERITIES.index(k[0]), -max(ra.get(k, 0), rb.get(k, 0))))
    return {"tool": tshark_version(), "packets": {"real": a.packets, "synthetic": b.packets},
            "per_1k": {s: {"real": a.severity_per_1k(s), "synthetic": b.severity_per_1k(s)} for s in SEVERITIES},
            "kinds": [{"kind": kind_label(k), "real": ra.get(k, 0.0), "synthetic": rb.get(k, 0.0)} for k in kinds],
            "kind_l1": kind_l1(a, b)}


def _missing_columns(table: pd.DataFrame, side: str) -> str | None:
    """Why a table cannot be written as packets for tshark (a NetShare packet CSV has no tcp_flags, for
    example), or None."""
    from ..schema import PACKET_COLUMNS

    missing = [c for c in PACKET_COLUMNS if c not in table.columns]
    if missing:
        return f"the {side} table has no {', '.join(missing)} column(s), which a packet written for tshark needs"
    return None


def tshark_version() -> str:
    """"tshark 4.0.17" (from `tshark --version`), or "tshark" when it does not say."""
    try:
        done = subprocess.run(["tshark", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "tshark"
    m = re.search(r"TShark \(Wireshark\) (\S+?)\.?\s", done.stdout)
    return f"tshark {m.group(1)}" if m else "tshark"
