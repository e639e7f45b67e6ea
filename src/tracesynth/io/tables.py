"""Canonical tables on disk: CSV and Parquet, for packets and flow records.

tracesynth's own CSV has a header with exactly the canonical names (extra columns after them), IPv4
addresses as dotted quads, the protocol as a number and times in seconds with 9 decimals, so that a CSV
written here reads back into the same table and writes out byte for byte the same. Parquet keeps the
canonical dtypes exactly. Anything that is not a canonical table goes to the flow-record readers
(`tracesynth.io.netflow`), which know the foreign formats.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import TraceFormatError, UserError
from ..progress import ProgressCallback, emit
from ..schema import FLOW_COLUMNS, PACKET_COLUMNS, PROTO_NAMES, TIME_COLUMN, TraceKind, canonicalize, columns_for
from . import ReadReport, Trace, sniff_format
from .ipaddr import ipv4_problem, parse_ipv4, uint32_to_ip

log = logging.getLogger(__name__)

IP_COLUMNS = ("srcip", "dstip")
#: Decimals written for every float column: nanoseconds, which a float64 epoch time cannot exceed.
TIME_DECIMALS = 9
#: Negative flow durations down to -TD_TOLERANCE seconds are clock jitter of flow meters (CICFlowMeter
#: writes -1e-06 for some flows): they are clipped to 0 and counted. Anything more negative is refused.
TD_TOLERANCE = 1e-3
#: A packet CSV needs these columns; the others (tos, id, flag, off, ttl, tcp_flags) are optional: when
#: absent they are set to 0, listed in `report.notes["absent_columns"]` and left out of `evaluate`.
REQUIRED_PACKET_COLUMNS = ("time", "srcip", "dstip", "srcport", "dstport", "proto", "pkt_len")
#: NetShare's packet CSV (its generator's output): every canonical column but tcp_flags.
NETSHARE_PACKET_COLUMNS = frozenset(PACKET_COLUMNS) - {"tcp_flags"}
#: Counters and lengths: a non-integral value (NetShare writes float counts such as 219.949) is rounded to
#: the nearest integer and counted. Ports, protocols and flags must be whole numbers.
ROUNDED_COLUMNS = ("pkt", "byt", "pkt_len", "tos", "id", "off", "ttl")
#: Divisor from each unit to seconds (dividing by an exact power of ten rounds correctly).
_TS_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "µs": 1e6, "ns": 1e9}


# ----------------------------------------------------------------------------------------------- write
def write_table(table: pd.DataFrame, path: str | Path, *, fmt: str | None = None, **_ignored: Any) -> Path:
    """Write a canonical packet or flow table as CSV or Parquet (chosen by `fmt` or the suffix), atomically.

    Options meant for other writers (link type, nanosecond pcap) are ignored so `write_trace` can pass
    the same options whatever the output is.
    """
    path = Path(path)
    fmt = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(path.suffix.lower())
    if fmt not in ("csv", "parquet"):
        raise UserError(f"{path}: cannot tell the table format from suffix {path.suffix!r}; use .csv or .parquet")
    try:
        table = canonicalize(table)
    except KeyError as exc:
        raise UserError(f"{path}: cannot write table: {exc.args[0]}") from None
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            table.to_parquet(tmp, index=False)
        else:
            _csv_frame(table).to_csv(tmp, index=False, float_format=f"%.{TIME_DECIMALS}f", lineterminator="\n")
    log.info("wrote %d rows to %s", len(table), path)
    return path


def _csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The table as it appears in CSV: IPs as dotted quads, everything else unchanged."""
    out = table.copy(deep=False)
    for col in IP_COLUMNS:
        out[col] = uint32_to_ip(table[col].to_numpy())
    return out


# ------------------------------------------------------------------------------------------------ read
def read_table_file(path: str | Path, mapping: dict[str, str] | None = None, fmt: str | None = None,
                    progress: ProgressCallback | None = None) -> Trace:
    """Read any non-capture trace: a canonical packet/flow table (CSV or Parquet) or a flow-record file.

    A canonical table is recognised by its header (`time` + the packet columns, or the flow columns in
    canonical order); everything else, or any call with `mapping` or `fmt`, goes to the flow readers.
    """
    path = Path(path)
    container = sniff_format(path)
    if container == "parquet":
        raw = _read_parquet(path)
        kind = _table_kind_of(list(map(str, raw.columns)), mapping, fmt)
        if kind is not None:
            return _canonical_trace(raw, kind, path, "parquet", progress)
        from .netflow import flows_from_frame

        return flows_from_frame(raw, path, fmt=fmt or "generic", mapping=mapping, progress=progress)
    header = _first_line(path)
    columns = _split_header(header)
    kind = _table_kind_of(columns, mapping, fmt)
    if kind is not None:
        check_unique(columns, path, used=columns_for(kind))
        raw = _read_canonical_csv(path, header)
        return _canonical_trace(raw, kind, path, "csv", progress)
    from .netflow import read_flow_records

    return read_flow_records(path, mapping=mapping, fmt=fmt, progress=progress)


def _read_parquet(path: Path) -> pd.DataFrame:
    _check_parquet_size(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise TraceFormatError(path, f"not a readable Parquet file ({exc}); re-export it") from None


def _check_parquet_size(path: Path) -> None:
    """Parquet is compressed too: refuse, from its footer, a table whose rows x columns x 8 bytes pass
    the inflation limit of a gzip file of its size (`limits.gzip_limit`), before decoding anything."""
    from .. import limits

    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
    except Exception:  # unreadable footer: pd.read_parquet below says so
        return
    estimate = int(meta.num_rows) * max(1, int(meta.num_columns)) * 8
    limit = limits.gzip_limit(path.stat().st_size)
    if estimate > limit:
        raise TraceFormatError(path, f"Parquet table of {meta.num_rows:,} rows x {meta.num_columns} columns "
                               f"would inflate to about {estimate / 2**20:,.0f} MiB, more than "
                               f"{limits.MAX_GZIP_RATIO}x its size ({limit / 2**20:,.0f} MiB); refused as a "
                               "decompression bomb. Split it into smaller files", 0)


def _first_line(path: Path) -> str:
    """The first non-empty line, decoded; binary files that are not captures get a clear error."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the buffer end
            raise TraceFormatError(path, "not a pcap/pcapng capture, Parquet file or text flow-record file "
                                   "(binary content); check the file", exc.start) from None
        text = head[:exc.start].decode("utf-8")
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("\ufeff")
    raise TraceFormatError(path, "file holds only blank lines; expected a capture or a flow CSV", 0)


def _split_header(header: str) -> list[str]:
    sep = "\t" if "\t" in header and "," not in header else ","
    return [c.strip() for c in header.split(sep)]


def _canonical_kind(columns: list[str]) -> TraceKind | None:
    """Which canonical table a header belongs to, or None when it is some other format.

    Packets: every required packet column (optional ones may be absent: NetShare's packet CSV has no
    tcp_flags). Flow records: the flow columns first, in canonical order (other orders are NetShare's).
    """
    if all(c in columns for c in REQUIRED_PACKET_COLUMNS):
        return "packets"
    if columns[:len(FLOW_COLUMNS)] == list(FLOW_COLUMNS):
        return "flows"
    return None


def _table_kind_of(columns: list[str], mapping: dict | None, fmt: str | None) -> TraceKind | None:
    """The canonical table to read `columns` as, or None for the flow-record readers. A mapping sends the
    file to those readers; so does a flow format, except `netshare` on NetShare's packet CSV."""
    if mapping or (fmt and fmt != "netshare"):
        return None
    kind = _canonical_kind(columns)
    if fmt == "netshare" and kind != "packets":
        return None
    return kind


def check_unique(columns: list[str], path: Path, used, *, case: bool = True) -> None:
    """A header naming a column the reader uses twice is ambiguous (pandas would silently read the first
    and rename the second): refused with both positions. Unused duplicates (CICFlowMeter repeats `Fwd
    Header Length`) are harmless. `case=False` compares names case-insensitively (Argus)."""
    norm = (lambda c: c) if case else str.lower
    wanted = {norm(c) for c in used}
    seen: dict[str, int] = {}
    for i, name in enumerate(columns, start=1):
        key = norm(name)
        if key in seen and key in wanted:
            raise UserError(f"{path}: line 1: column {name!r} appears twice (columns {seen[key]} and {i}); "
                            "rename or remove one")
        seen.setdefault(key, i)


def _read_canonical_csv(path: Path, header: str) -> pd.DataFrame:
    sep = "\t" if "\t" in header and "," not in header else ","
    try:
        return pd.read_csv(path, sep=sep, dtype={c: "string" for c in IP_COLUMNS}, keep_default_na=False,
                           na_values=[""], low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise csv_error(path, exc) from None


def csv_error(path: Path, exc: Exception, what: str = "CSV") -> TraceFormatError:
    """pandas' parser error as one line: which line has how many fields, or where the text is not UTF-8."""
    if isinstance(exc, UnicodeDecodeError):
        return TraceFormatError(path, f"not UTF-8 text (a binary byte in the {what}); check the file", exc.start)
    text = " ".join(str(exc).split())
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if found:
        expected, line, saw = found.groups()
        return TraceFormatError(path, f"malformed {what}: line {line} has {saw} fields where the header has "
                                f"{expected}; every row needs the header's columns")
    return TraceFormatError(path, f"malformed {what} ({text}); every row needs the header's columns")


def _canonical_trace(raw: pd.DataFrame, kind: TraceKind, path: Path, container: str,
                     progress: ProgressCallback | None) -> Trace:
    """Validate and cast a canonical table read from disk; errors name the line and column.

    Packet tables may lack the optional columns (set to 0, noted) and, when they are not tracesynth's full
    header (NetShare's packet CSV), carry times in ms/µs/ns (detected by magnitude)."""
    emit(progress, "read", 0, len(raw), "records")
    cols = columns_for(kind)
    absent = [c for c in cols if c not in raw.columns]
    fmt = f"tracesynth-{kind}-{container}"
    if absent:
        fmt = f"{'netshare' if set(raw.columns) >= NETSHARE_PACKET_COLUMNS else 'partial'}-packets-{container}"
    report = ReadReport(path=str(path), format=fmt, records_seen=len(raw), records_kept=len(raw))
    first = 2 if container == "csv" else None
    out: dict[str, np.ndarray] = {}
    for col, dtype in cols.items():
        if col in absent:
            out[col] = np.zeros(len(raw), dtype=dtype)
        else:
            out[col] = canonical_column(raw[col], col, dtype, path, first_line=first, report=report)
    if absent:
        report.notes["absent_columns"] = absent
        report.warnings.append(f"{path}: no column(s) {', '.join(absent)}: set to 0 in the packet table and left "
                               "out of evaluate's comparisons")
        out["time"] = out["time"] / _TS_UNITS[_time_unit(out["time"])]
    time_col = TIME_COLUMN[kind]
    locate = (lambda row: f"line {first + row}") if first is not None else (lambda row: f"row {row}")
    check_times(out[time_col], path, time_col, locate)
    if kind == "flows":
        out["td"] = clip_durations(out["td"], report, path, locate)
    table = pd.DataFrame(out)
    for col in raw.columns:
        if col not in cols:
            table[col] = raw[col].to_numpy()
    emit(progress, "read", len(table), len(table), "records")
    return Trace(canonicalize(table, kind), kind, report)


def _time_unit(numbers: np.ndarray) -> str:
    """Guess the unit of epoch times from their magnitude (year 2001+ in s is about 1e9)."""
    if not numbers.size:
        return "s"
    median = float(np.median(np.abs(numbers)))
    for unit, limit in (("ns", 1e17), ("us", 1e14), ("ms", 1e11)):
        if median >= limit:
            return unit
    return "s"


def check_times(times: np.ndarray, path: Path, col: str, locate) -> None:
    """Epoch times are finite and not negative; the error names where the first bad one is (`locate(row)`)."""
    bad = ~np.isfinite(times) | (times < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "negative" if times[row] < 0 else "not finite"
        raise UserError(f"{path}: {locate(row)}, column {col!r}: time {shown(times[row])} is {what}; times are "
                        "epoch seconds (or ms, µs, ns) since 1970; fix or remove that row")


def clip_durations(td: np.ndarray, report: ReadReport, path: Path, locate, column: str = "td") -> np.ndarray:
    """Flow durations with tiny negatives (>= -TD_TOLERANCE s) clipped to 0 and counted in `report`.

    Flow meters produce them from unordered timestamps; a larger negative is a broken record, refused
    naming where it is (`locate(row)` -> "line N").
    """
    negative = td < 0
    if not negative.any():
        return td
    broken = td < -TD_TOLERANCE
    if broken.any():
        row = int(np.flatnonzero(broken)[0])
        raise UserError(f"{path}: {locate(row)}, column {column!r}: duration {shown(td[row])} s is negative "
                        f"(beyond the {TD_TOLERANCE:g} s tolerated as clock jitter); fix or remove that row")
    count = int(negative.sum())
    report.notes["negative_durations_clipped"] = report.notes.get("negative_durations_clipped", 0) + count
    report.warnings.append(f"{path}: {count} flow duration(s) slightly below 0 (down to {float(td.min()):g} s) "
                           "were set to 0")
    return np.where(negative, 0.0, td)


def canonical_column(values: pd.Series, col: str, dtype: np.dtype, path: Path,
                     first_line: int | None = 2, report: ReadReport | None = None) -> np.ndarray:
    """Cast one column to its canonical dtype; a bad value raises UserError naming line and column.

    `first_line` is the file line of the first row (None for Parquet, where rows are named instead).
    With a `report`, non-integral counters and lengths (ROUNDED_COLUMNS) are rounded and counted there.
    """
    if col in IP_COLUMNS:
        return _ip_column(values, col, path, first_line)
    if col == "proto" and values.dtype.kind not in "iuf":
        names = values.astype("string").str.strip().str.upper()
        values = names.map(PROTO_NAMES).where(names.isin(list(PROTO_NAMES)), values)
    numbers = pd.to_numeric(values, errors="coerce")
    arr = numbers.to_numpy(dtype="float64", na_value=np.nan)
    if dtype.kind == "f":
        _raise_first(np.isnan(arr), values, col, "a number", path, first_line)
        return arr.astype(dtype)
    info = np.iinfo(dtype)
    if report is not None and col in ROUNDED_COLUMNS:
        arr = _round_counts(arr, col, path, report)
    bad = np.isnan(arr) | (arr < info.min) | (arr > info.max) | (arr != np.floor(arr))
    _raise_first(bad, values, col, f"an integer in {info.min}..{info.max}", path, first_line)
    if numbers.dtype.kind in "iu":  # exact for the full uint64 range of byte counters
        return numbers.to_numpy().astype(dtype)
    return arr.astype(dtype)


def _round_counts(arr: np.ndarray, col: str, path: Path, report: ReadReport) -> np.ndarray:
    """Round non-integral values (a generator's float counts) to the nearest integer, counted."""
    frac = np.isfinite(arr) & (arr != np.floor(arr))
    if not frac.any():
        return arr
    n = int(frac.sum())
    rounded = report.notes.setdefault("rounded_values", {})
    rounded[col] = rounded.get(col, 0) + n
    report.warnings.append(f"{path}: {n} non-integral value(s) in column {col!r} rounded to the nearest integer")
    return np.where(frac, np.rint(arr), arr)


def _ip_column(values: pd.Series, col: str, path: Path, first_line: int | None) -> np.ndarray:
    """IPv4 addresses (dotted quads or integers) as uint32; the error names the first bad line."""
    ips, bad = parse_ipv4(values.to_numpy())
    if bad.any():
        _raise_first(bad, values, col, ipv4_problem(values.iloc[int(np.flatnonzero(bad)[0])]), path, first_line)
    return ips


def _raise_first(bad: np.ndarray, values: pd.Series, col: str, what: str, path: Path,
                 first_line: int | None) -> None:
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    where = f"line {first_line + row}" if first_line is not None else f"row {row}"
    raise UserError(f"{path}: {where}, column {col!r}: {shown(values.iloc[row])} is not {what}; "
                    "fix or remove that row")


def shown(value: object) -> str:
    """A cell value as a message shows it: text quoted, numbers plain (never numpy's `np.float64(...)`)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.15g}"
    return repr(value) if isinstance(value, str) else str(value)


__all__ = ["write_table", "read_table_file", "canonical_column"]
