"""Reading and writing traces: the only place that knows file formats.

`read_trace` sniffs the content (never the file name) and returns a `Trace`: the canonical table
(see `tracesynth.schema`) plus a `ReadReport` saying what was read, skipped and why.
`write_trace` picks the writer from the output suffix (.pcap, .csv, .parquet).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TraceFormatError, UserError
from ..progress import ProgressCallback
from ..schema import TraceKind, table_kind

log = logging.getLogger(__name__)


@dataclass
class ReadReport:
    """What a reader saw. `skipped` maps a reason ("ipv6", "non-ip ethertype 0x0806", ...) to a count."""

    path: str
    format: str
    records_seen: int = 0
    records_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    link_types: dict[int, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + int(count)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trace:
    """A canonical table (packets or flow records) and the report of how it was read."""

    table: pd.DataFrame
    kind: TraceKind
    report: ReadReport


def sniff_format(path: str | Path) -> str:
    """Name the format of `path` from its first bytes: pcap, pcapng, gzip, parquet or text."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a trace file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise TraceFormatError(path, "file is empty; expected a pcap/pcapng capture or a flow CSV", 0)
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        return "pcap"
    if magic == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"PAR1":
        return "parquet"
    return "text"


def read_trace(path: str | Path, *, mapping: dict[str, str] | None = None, flow_format: str | None = None,
               progress: ProgressCallback | None = None, salvage: bool = False) -> Trace:
    """Read a packet capture or a flow-record file into its canonical table.

    `mapping` (canonical name -> file column) and `flow_format` only matter for flow files. `salvage`
    keeps the packets before damage in the middle of a capture instead of refusing the file. A file
    without records (a header only) reads as an empty table with a warning saying so.
    """
    fmt = sniff_format(path)
    if fmt in ("pcap", "pcapng", "gzip"):
        from .pcap import read_packets

        trace = read_packets(path, progress=progress, salvage=salvage)
    else:
        from .tables import read_table_file

        trace = read_table_file(path, mapping=mapping, fmt=flow_format, progress=progress)
    _note_empty(trace)
    return trace


def _note_empty(trace: Trace) -> None:
    """Say so when a file holds no records at all, or none that could be kept."""
    report = trace.report
    unit = "packets" if trace.kind == "packets" else "records"
    if report.records_seen == 0:
        report.warnings.append(f"{report.path}: holds no {unit} (only a header); there is nothing to read")
    elif len(trace.table) == 0:
        report.warnings.append(f"{report.path}: none of its {report.records_seen:,} {unit} could be kept "
                               f"(skipped: {', '.join(f'{k} {v:,}' for k, v in report.skipped.items()) or '-'})")
    else:
        return
    log.info(report.warnings[-1])  # commands print the report's warnings; fit and evaluate refuse


def require_records(trace: Trace, what: str) -> Trace:
    """`trace`, or a UserError naming its file when it has no records (`what`: the command, e.g. "fit")."""
    if len(trace.table) == 0:
        seen = trace.report.records_seen
        why = "it holds only a header" if seen == 0 else f"none of its {seen:,} records could be kept"
        raise UserError(f"{trace.report.path}: nothing to {what}: {why}; give a trace with IPv4 records")
    return trace


def write_trace(table: pd.DataFrame, path: str | Path, **options: Any) -> Path:
    """Write a canonical table by suffix: .pcap (packets only), .csv or .parquet. Atomic."""
    path = Path(path)
    suffix = path.suffix.lower()
    kind = table_kind(table)
    if suffix in (".pcap", ".cap"):
        if kind != "packets":
            raise UserError(f"{path}: flow records cannot be written as a pcap; use .csv or .parquet")
        from .pcap_writer import write_pcap

        return write_pcap(table, path, **options)
    if suffix in (".csv", ".parquet", ".pq"):
        from .tables import write_table

        return write_table(table, path, **options)
    raise UserError(f"{path}: unknown output suffix {suffix!r}; use .pcap, .csv or .parquet")


__all__ = ["ReadReport", "Trace", "read_trace", "require_records", "write_trace", "sniff_format"]
