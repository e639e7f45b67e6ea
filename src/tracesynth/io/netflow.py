"""Flow-record readers: foreign flow formats mapped onto the canonical flow table.

Formats (sniffed from the header unless `fmt` forces one):
- ``netshare``: NetShare's CSV (srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt[,type]); IPs as uint32
  or dotted quads, protocol names or numbers, `ts` in seconds, ms or µs (detected), `type` -> label.
- ``generic``: any CSV (or Parquet) with a user mapping canonical name -> file column.
- ``zeek``: Zeek conn.log TSV (#fields header, `-` unset); ``zeek-json``: the same as JSON lines;
  ``zeek-csv``: Zeek columns in a CSV (IoT-23, with `label` / `detailed-label`).
- ``argus``: Argus binetflow CSV (StartTime, Dur, Proto, SrcAddr, Sport, Dir, DstAddr, Dport, ...).

Bidirectional session records (Zeek, Argus with SrcPkts) become two unidirectional records: the
originator side keeps the 5-tuple, the responder side reverses it; a side with 0 packets is dropped.
ICMP type/code go into the port columns (`tracesynth.io.icmp` translates each format's encoding).
IPv6 and non-IP rows are skipped and counted in `report.skipped`, never misparsed.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceFormatError, UserError
from ..progress import ProgressCallback, emit
from ..schema import FLOW_COLUMNS, FLOW_LABEL, ICMP_PROTOS, PROTO_NAMES
from . import ReadReport, Trace, icmp
from .tables import (_TS_UNITS, _first_line, _split_header, _time_unit, canonical_column, check_times,
                     check_unique, clip_durations, csv_error, shown)

log = logging.getLogger(__name__)

FLOW_FORMATS = ("netshare", "generic", "zeek", "zeek-json", "zeek-csv", "argus")
_UNSET = ("", "-", "(empty)", "nan", "NaN", "None", "<NA>")
_NON_IP_PROTOS = ("ARP", "RARP", "LLC", "MAN", "IPX/SPX", "STP", "LLDP", "ESP-NULL")
#: Keys a mapping may hold besides canonical column names.
_MAPPING_OPTIONS = ("ts_unit", "td_unit")
_ARGUS_COLUMNS = ("starttime", "dur", "proto", "srcaddr", "sport", "dstaddr", "dport", "totpkts", "totbytes")
_ZEEK = dict(ts="ts", srcip="id.orig_h", srcport="id.orig_p", dstip="id.resp_h", dstport="id.resp_p",
             proto="proto", td="duration")


@dataclass
class _Source:
    """A raw frame of strings plus what errors need: the file and the line of each row."""

    frame: pd.DataFrame
    path: Path
    first_line: int | None  # file line of row 0 (None: name rows instead, e.g. Parquet)


# --------------------------------------------------------------------------------------------- entry
def read_flow_records(path: str | Path, *, mapping: dict[str, str] | None = None, fmt: str | None = None,
                      progress: ProgressCallback | None = None) -> Trace:
    """Read a text flow-record file (CSV, Zeek TSV/JSON, Argus) into the canonical flow table."""
    path = Path(path)
    header = _first_line(path)
    fmt = _resolve_format(path, header, fmt, mapping)
    emit(progress, "read", 0, None, "records", format=fmt)
    if fmt == "zeek":
        src = _read_zeek_tsv(path)
    elif fmt == "zeek-json":
        src = _read_json_lines(path)
    else:
        sep = "\t" if "\t" in header and "," not in header else ","
        check_unique(_split_header(header), path, _used_columns(fmt, mapping), case=fmt != "argus")
        src = _read_csv(path, sep)
    trace = _to_flows(src, fmt, mapping)
    emit(progress, "read", len(trace.table), len(trace.table), "records", format=fmt)
    return trace


def _used_columns(fmt: str, mapping: dict[str, str] | None) -> set[str]:
    """The file columns a CSV flow format reads (a duplicate of any of them is ambiguous)."""
    if fmt == "netshare":
        return set(FLOW_COLUMNS) | {"type"}
    if fmt == "zeek-csv":
        return set(_ZEEK.values()) | {"orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "label",
                                      "detailed-label"}
    if fmt == "argus":
        return set(_ARGUS_COLUMNS) | {"srcpkts", "srcbytes", "label"}
    mapping = mapping or {}
    return {mapping.get(k, k) for k in (*FLOW_COLUMNS, FLOW_LABEL)} | {v for k, v in mapping.items()
                                                                     if k not in _MAPPING_OPTIONS}


def flows_from_frame(frame: pd.DataFrame, path: str | Path, *, fmt: str = "generic",
                     mapping: dict[str, str] | None = None, progress: ProgressCallback | None = None) -> Trace:
    """Map an already loaded frame (a Parquet file, say) with the rules of `fmt`."""
    path = Path(path)
    if fmt not in FLOW_FORMATS:
        raise UserError(f"{path}: unknown flow format {fmt!r}; use one of {', '.join(FLOW_FORMATS)}")
    if fmt == "generic" and not mapping:
        raise UserError(f"{path}: columns {list(frame.columns)[:12]} are not a tracesynth table; pass a "
                        "column mapping (e.g. --mapping ts=start,srcip=src,...)")
    trace = _to_flows(_Source(frame, path, None), fmt, mapping)
    emit(progress, "read", len(trace.table), len(trace.table), "records", format=fmt)
    return trace


def sniff_flow_format(columns: list[str]) -> str | None:
    """Name the flow format of a header, or None when it is not one tracesynth knows."""
    cols = {c.strip() for c in columns}
    lower = {c.lower() for c in cols}
    if {"id.orig_h", "id.resp_h"} <= cols:
        return "zeek-csv"
    if {"srcaddr", "dstaddr", "starttime"} <= lower:
        return "argus"
    if set(FLOW_COLUMNS) <= cols:
        return "netshare"
    return None


def _resolve_format(path: Path, header: str, fmt: str | None, mapping: dict | None) -> str:
    if fmt is not None:
        if fmt not in FLOW_FORMATS:
            raise UserError(f"{path}: unknown flow format {fmt!r}; use one of {', '.join(FLOW_FORMATS)}")
        return fmt
    if mapping:
        return "generic"
    if header.startswith("#separator") or header.startswith("#fields"):
        return "zeek"
    if header.startswith("{"):
        return "zeek-json"
    found = sniff_flow_format(_split_header(header))
    if found is None:
        raise TraceFormatError(path, f"not a capture and not a known flow-record format (header "
                               f"{header[:80]!r}); pass --mapping to name the columns or --format to force one", 0)
    return found


# -------------------------------------------------------------------------------------------- loading
def _read_csv(path: Path, sep: str) -> _Source:
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True,
                            low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise csv_error(path, exc) from None
    frame.columns = [c.strip() for c in frame.columns]
    return _Source(frame, path, 2)


def _read_zeek_tsv(path: Path) -> _Source:
    """Zeek's TSV: `#` directives, then rows; `#close` may trail. Separator from `#separator`."""
    fields, sep, n_header = None, "\t", 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n_header += 1
            if line.startswith("#separator"):
                sep = _zeek_separator(path, line, n_header)
            elif line.startswith("#fields"):
                fields = line.rstrip("\n").split(sep)[1:]
    if not fields:
        raise TraceFormatError(path, "Zeek log without a #fields line; export conn.log with its header", 0)
    try:
        frame = pd.read_csv(path, sep=sep, header=None, names=fields, skiprows=n_header, dtype=str,
                            keep_default_na=False, quoting=3, low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise csv_error(path, exc, "Zeek log") from None
    frame = frame[~frame[fields[0]].str.startswith("#")].reset_index(drop=True)
    return _Source(frame, path, n_header + 1)


def _zeek_separator(path: Path, line: str, line_no: int) -> str:
    """The separator a Zeek `#separator` line names: one character, or a `\\xNN` escape (Zeek's tab)."""
    token = line.split(" ", 1)[1].strip("\r\n") if " " in line else "\\x09"
    escape = re.fullmatch(r"\\x([0-9a-fA-F]{2})", token.strip())
    if escape:
        return chr(int(escape.group(1), 16))
    if len(token) == 1:
        return token
    raise TraceFormatError(path, f"line {line_no}: #separator '{token[:20]}' is neither one character nor a \\xNN "
                           "escape (Zeek writes \\x09 for a tab); fix that header line")


def _read_json_lines(path: Path) -> _Source:
    try:
        frame = pd.read_json(path, lines=True, dtype=False, precise_float=True)
    except ValueError as exc:
        raise TraceFormatError(path, f"not valid JSON lines ({exc}); one JSON object per line expected") from None
    return _Source(frame.astype("string").fillna("-"), path, 1)


# -------------------------------------------------------------------------------------------- mapping
def _to_flows(src: _Source, fmt: str, mapping: dict[str, str] | None) -> Trace:
    report = ReadReport(path=str(src.path), format=fmt, records_seen=len(src.frame))
    if fmt in ("zeek", "zeek-json", "zeek-csv"):
        table = _zeek_flows(src, report)
    elif fmt == "argus":
        table = _argus_flows(src, report)
    elif fmt == "netshare":
        missing = [c for c in FLOW_COLUMNS if c not in src.frame.columns]
        if missing:
            raise UserError(f"{src.path}: not NetShare's flow CSV (no column(s) {', '.join(missing)}) nor its packet "
                            "CSV (srcip,dstip,srcport,dstport,proto,pkt_len,tos,id,flag,off,ttl,time); pass "
                            "--mapping to name the columns")
        table = _mapped_flows(src, {c: c for c in FLOW_COLUMNS} | _label_of(src.frame, "type"), report)
    else:
        table = _mapped_flows(src, _check_mapping(src, mapping or {}), report)
    table = table.sort_values("ts", kind="stable", ignore_index=True)
    report.records_kept = len(table)
    log.info("%s: %d records read as %s, %d flow records kept", src.path, len(src.frame), fmt, len(table))
    return Trace(table, "flows", report)


def _label_of(frame: pd.DataFrame, *names: str) -> dict[str, str]:
    for name in names:
        if name in frame.columns:
            return {FLOW_LABEL: name}
    return {}


def _check_mapping(src: _Source, mapping: dict[str, str]) -> dict[str, str]:
    allowed = set(FLOW_COLUMNS) | {FLOW_LABEL} | set(_MAPPING_OPTIONS)
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise UserError(f"mapping: unknown key(s) {unknown}; keys are canonical names "
                        f"({', '.join(FLOW_COLUMNS)}, label) or {', '.join(_MAPPING_OPTIONS)}")
    required = ("ts", "srcip", "dstip", "proto", "pkt", "byt")
    missing = [k for k in required if k not in mapping and k not in src.frame.columns]
    if missing:
        raise UserError(f"{src.path}: mapping lacks {missing}; map each to a column of the file "
                        f"(columns: {', '.join(map(str, list(src.frame.columns)[:20]))})")
    full = {k: mapping.get(k, k) for k in required}
    for k in ("srcport", "dstport", "td", FLOW_LABEL):
        if k in mapping or k in src.frame.columns:
            full[k] = mapping.get(k, k)
    for k in _MAPPING_OPTIONS:
        if k in mapping:
            full[k] = mapping[k]
    absent = [f"{k}={v}" for k, v in full.items() if k not in _MAPPING_OPTIONS and v not in src.frame.columns]
    if absent:
        raise UserError(f"{src.path}: mapping names column(s) not in the file: {', '.join(absent)} "
                        f"(columns: {', '.join(map(str, list(src.frame.columns)[:20]))})")
    return full


def _mapped_flows(src: _Source, spec: dict[str, str], report: ReadReport) -> pd.DataFrame:
    """One record per row, columns taken as `spec` says (canonical name -> file column)."""
    f = src.frame
    keep, proto = _ipv4_rows(src, spec["srcip"], spec["dstip"], spec["proto"], report)
    sub = _Source(f[keep].reset_index(drop=True), src.path, None)
    lines = _lines(src, keep)
    srcport, dstport, translated = icmp.from_netflow_ports(proto[keep], _ports(sub, spec.get("srcport"), lines),
                                                           _ports(sub, spec.get("dstport"), lines))
    if translated:
        report.notes["icmp_type_code_from_dstport"] = translated
    cols = {
        "ts": _epochs(sub, spec["ts"], spec.get("ts_unit", "auto"), lines),
        "td": _durations(sub, spec["td"], spec.get("td_unit", "s"), lines, report) if "td" in spec
        else np.zeros(len(sub.frame)),
        "srcip": _column(sub, spec["srcip"], "srcip", lines),
        "dstip": _column(sub, spec["dstip"], "dstip", lines),
        "srcport": srcport,
        "dstport": dstport,
        "proto": proto[keep],
        "pkt": _column(sub, spec["pkt"], "pkt", lines, report=report),
        "byt": _column(sub, spec["byt"], "byt", lines, report=report),
    }
    if FLOW_LABEL in spec:
        cols[FLOW_LABEL] = sub.frame[spec[FLOW_LABEL]].astype(str).to_numpy(dtype=object)
    return _finish(pd.DataFrame(cols), report)


def _zeek_flows(src: _Source, report: ReadReport) -> pd.DataFrame:
    """Zeek conn records: split into originator and responder records by the per-direction counters."""
    f = src.frame
    missing = [c for c in _ZEEK.values() if c not in f.columns]
    if missing:
        raise UserError(f"{src.path}: Zeek conn log lacks column(s) {missing}; is this a conn.log?")
    keep, proto = _ipv4_rows(src, _ZEEK["srcip"], _ZEEK["dstip"], "proto", report)
    lines = _lines(src, keep)
    sub = _Source(f[keep].reset_index(drop=True), src.path, None)
    srcport, dstport = icmp.from_zeek_ports(proto[keep], _ports(sub, "id.orig_p", lines),
                                            _ports(sub, "id.resp_p", lines))
    fwd = pd.DataFrame({
        "ts": _epochs(sub, "ts", "s", lines), "td": _durations(sub, "duration", "s", lines, report),
        "srcip": _column(sub, "id.orig_h", "srcip", lines), "dstip": _column(sub, "id.resp_h", "dstip", lines),
        "srcport": srcport, "dstport": dstport, "proto": proto[keep],
    })
    label = _label_of(f, "label")
    if label:
        fwd[FLOW_LABEL] = sub.frame["label"].astype(str).to_numpy(dtype=object)
    if "detailed-label" in f.columns:
        fwd["detailed_label"] = sub.frame["detailed-label"].astype(str).to_numpy(dtype=object)
    if not {"orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes"} <= set(f.columns):
        raise UserError(f"{src.path}: Zeek log lacks orig_pkts/orig_ip_bytes/resp_pkts/resp_ip_bytes; "
                        "enable them in Zeek (they are on by default) to get packet and byte counts")
    counts = {c: _column(sub, c, "pkt", lines, unset_zero=True)
              for c in ("orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")}
    return _split_sessions(fwd, counts["orig_pkts"], counts["orig_ip_bytes"], counts["resp_pkts"],
                           counts["resp_ip_bytes"], report)


def _argus_flows(src: _Source, report: ReadReport) -> pd.DataFrame:
    """Argus binetflow: split by SrcPkts/SrcBytes when present, else one src->dst record per row."""
    f = src.frame
    col = {c.lower(): c for c in f.columns}
    missing = [n for n in _ARGUS_COLUMNS if n not in col]
    if missing:
        raise UserError(f"{src.path}: Argus binetflow lacks column(s) {missing}; export them with ra -s")
    keep, proto = _ipv4_rows(src, col["srcaddr"], col["dstaddr"], col["proto"], report)
    lines = _lines(src, keep)
    sub = _Source(f[keep].reset_index(drop=True), src.path, None)
    srcport, dstport = icmp.from_argus_ports(proto[keep], _ports(sub, col["sport"], lines),
                                             _ports(sub, col["dport"], lines))
    fwd = pd.DataFrame({
        "ts": _epochs(sub, col["starttime"], "auto", lines), "td": _durations(sub, col["dur"], "s", lines, report),
        "srcip": _column(sub, col["srcaddr"], "srcip", lines), "dstip": _column(sub, col["dstaddr"], "dstip", lines),
        "srcport": srcport, "dstport": dstport, "proto": proto[keep],
    })
    if "label" in col:
        fwd[FLOW_LABEL] = sub.frame[col["label"]].astype(str).to_numpy(dtype=object)
    tot_pkts = _column(sub, col["totpkts"], "pkt", lines)
    tot_bytes = _column(sub, col["totbytes"], "byt", lines)
    if "srcpkts" in col and "srcbytes" in col:
        src_pkts = _column(sub, col["srcpkts"], "pkt", lines, unset_zero=True)
        src_bytes = _column(sub, col["srcbytes"], "byt", lines, unset_zero=True)
        dst_pkts = np.where(tot_pkts >= src_pkts, tot_pkts - src_pkts, 0).astype(np.uint64)
        dst_bytes = np.where(tot_bytes >= src_bytes, tot_bytes - src_bytes, 0).astype(np.uint64)
        return _split_sessions(fwd, src_pkts, src_bytes, dst_pkts, dst_bytes, report)
    report.warnings.append("no SrcPkts column: each bidirectional Argus record kept as one src->dst record "
                           "with TotPkts/TotBytes (both directions counted together)")
    report.notes["bidirectional_kept_whole"] = int(len(fwd))
    fwd["pkt"], fwd["byt"] = tot_pkts, tot_bytes
    return _finish(fwd, report)


def _split_sessions(fwd: pd.DataFrame, o_pkts, o_bytes, r_pkts, r_bytes, report: ReadReport) -> pd.DataFrame:
    """Originator side as is, responder side with the 5-tuple reversed (ICMP: the reply's type and code,
    `icmp.responder_type_code`); sides with 0 packets dropped."""
    rev = fwd.copy()
    rev["srcip"], rev["dstip"] = fwd["dstip"].to_numpy(), fwd["srcip"].to_numpy()
    proto, sport, dport = (fwd[c].to_numpy() for c in ("proto", "srcport", "dstport"))
    reply_type, reply_code = icmp.responder_type_code(proto, sport, dport)
    is_icmp = icmp.is_icmp(proto)
    rev["srcport"] = np.where(is_icmp, reply_type, dport).astype(np.uint16)
    rev["dstport"] = np.where(is_icmp, reply_code, sport).astype(np.uint16)
    fwd = fwd.assign(pkt=o_pkts, byt=o_bytes)
    rev = rev.assign(pkt=r_pkts, byt=r_bytes)
    both = pd.concat([fwd[fwd["pkt"] > 0], rev[rev["pkt"] > 0]], ignore_index=True)
    report.notes["sessions"] = int(len(fwd))
    report.notes["originator_records"] = int((fwd["pkt"] > 0).sum())
    report.notes["responder_records"] = int((rev["pkt"] > 0).sum())
    report.skip("session direction with 0 packets", int((fwd["pkt"] == 0).sum() + (rev["pkt"] == 0).sum()))
    return _finish(both, report)


def _finish(table: pd.DataFrame, report: ReadReport) -> pd.DataFrame:
    """Zero the ports of protocols without ports or ICMP type/code (as the packet readers do); cast to
    canonical dtypes."""
    portless = ~np.isin(table["proto"].to_numpy(), (6, 17, *ICMP_PROTOS))
    if portless.any():
        table.loc[portless, ["srcport", "dstport"]] = 0
        report.notes["ports_zeroed_other_protocols"] = int(portless.sum())
    out = {c: table[c].to_numpy().astype(d) for c, d in FLOW_COLUMNS.items()}
    for c in table.columns:
        if c not in FLOW_COLUMNS:
            out[c] = table[c].to_numpy()
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------- fields
def _lines(src: _Source, keep: np.ndarray) -> np.ndarray | None:
    """File line of each kept row (for error messages), or None where rows have no lines."""
    if src.first_line is None:
        return None
    return np.flatnonzero(keep) + src.first_line


def _where(lines: np.ndarray | None, row: int) -> str:
    return f"line {int(lines[row])}" if lines is not None else f"row {row}"


def _text(src: _Source, col: str) -> pd.Series:
    return src.frame[col].astype("string").str.strip().fillna("")


def _ipv4_rows(src: _Source, src_col: str, dst_col: str, proto_col: str,
               report: ReadReport) -> tuple[np.ndarray, np.ndarray]:
    """Rows to keep and every row's protocol number: non-IP rows (arp, ...), then IPv6 rows, are skipped
    and counted; a protocol that is neither a known name nor 0..255 in a kept row is an error."""
    for c in (src_col, dst_col, proto_col):
        if c not in src.frame.columns:
            raise UserError(f"{src.path}: no column {c!r}; columns are {list(src.frame.columns)[:20]}")
    text = _text(src, proto_col).str.upper()
    non_ip = text.isin(_NON_IP_PROTOS).to_numpy(bool)
    for name, count in text[non_ip].value_counts().items():
        report.skip(f"non-ip protocol {name.lower()}", int(count))
    v6 = (_text(src, src_col).str.contains(":", regex=False) | _text(src, dst_col).str.contains(":", regex=False))
    v6 = v6.to_numpy(bool) & ~non_ip
    report.skip("ipv6", int(v6.sum()))
    keep = ~(non_ip | v6)
    numeric = pd.to_numeric(text, errors="coerce")
    proto = numeric.fillna(text.map(PROTO_NAMES)).to_numpy(dtype="float64", na_value=np.nan)
    bad = keep & (np.isnan(proto) | (proto < 0) | (proto > 255) | (proto != np.floor(proto)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = f"line {row + src.first_line}" if src.first_line is not None else f"row {row}"
        raise UserError(f"{src.path}: {where}, column {proto_col!r}: {shown(src.frame[proto_col].iloc[row])} is not a "
                        "protocol name (TCP, UDP, ICMP, ...) or number 0..255; fix or remove that row")
    return keep, np.nan_to_num(proto).astype(np.uint8)


def _column(src: _Source, col: str, canonical: str, lines, unset_zero: bool = False,
            report: ReadReport | None = None) -> np.ndarray:
    """One column cast to `canonical`'s dtype; with `report`, float counts are rounded and counted."""
    values = src.frame[col]
    if unset_zero:
        values = values.where(~_text(src, col).isin(_UNSET), "0")
    try:
        return canonical_column(values, canonical, FLOW_COLUMNS[canonical], src.path, None, report=report)
    except UserError as exc:
        raise _relocate(exc, lines, col) from None


def _relocate(exc: UserError, lines, col: str) -> UserError:
    """Rewrite 'row N, column canonical' from canonical_column into the file's line and column."""
    msg = str(exc)
    head, _, rest = msg.partition(": row ")
    row_text, _, tail = rest.partition(",")
    if not row_text.isdigit():
        return exc
    tail = tail.split(":", 1)[1] if ":" in tail else tail
    return UserError(f"{head}: {_where(lines, int(row_text))}, column {col!r}:{tail}")


def _ports(src: _Source, col: str | None, lines) -> np.ndarray:
    """Ports as decimal or hex ("0x0303", Argus); unset -> 0."""
    if col is None:
        return np.zeros(len(src.frame), dtype=np.uint16)
    text = _text(src, col).str.lower()
    is_hex = text.str.startswith("0x").to_numpy(bool)
    out = np.zeros(len(text), dtype=np.float64)
    unset = text.isin(_UNSET).to_numpy(bool)
    dec = pd.to_numeric(text.where(~(is_hex | unset), "0"), errors="coerce").to_numpy("float64", na_value=np.nan)
    out[:] = dec
    if is_hex.any():
        hexed = text[is_hex].map(lambda s: int(s, 16) if _is_hex(s) else -1)  # few rows: ICMP types in Argus
        out[is_hex] = hexed.to_numpy(dtype="float64")
    bad = np.isnan(out) | (out < 0) | (out > 65535) | (out != np.floor(out))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{src.path}: {_where(lines, row)}, column {col!r}: {shown(src.frame[col].iloc[row])} is not "
                        "a port (0..65535, decimal or 0x hex); fix or remove that row")
    return out.astype(np.uint16)


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
        return True
    except ValueError:
        return False


def _times(src: _Source, col: str, unit: str, lines, unset_zero: bool = False) -> np.ndarray:
    """Seconds from numbers in `unit` (auto: by magnitude) or from date-time text (taken as UTC)."""
    if unit not in _TS_UNITS and unit != "auto":
        raise UserError(f"mapping: unknown time unit {unit!r}; use s, ms, us, ns or auto")
    text = _text(src, col)
    if unset_zero:
        text = text.where(~text.isin(_UNSET), "0")
    numbers = pd.to_numeric(text, errors="coerce").to_numpy("float64", na_value=np.nan)
    nan = np.isnan(numbers)
    if nan.any() and nan.all() and len(text):
        return _datetimes(src, col, text, lines)
    if nan.any():
        row = int(np.flatnonzero(nan)[0])
        raise UserError(f"{src.path}: {_where(lines, row)}, column {col!r}: {shown(src.frame[col].iloc[row])} is not "
                        "a time (a number of seconds/ms/µs or a date-time); fix or remove that row")
    if unit == "auto":
        unit = _time_unit(numbers)
    return numbers / _TS_UNITS[unit]


def _epochs(src: _Source, col: str, unit: str, lines) -> np.ndarray:
    """Flow start times in epoch seconds; a negative one is refused naming its line."""
    ts = _times(src, col, unit, lines)
    check_times(ts, src.path, col, lambda row: _where(lines, row))
    return ts


def _durations(src: _Source, col: str, unit: str, lines, report: ReadReport) -> np.ndarray:
    """Flow durations in seconds (unset -> 0); tiny negatives clipped and counted (`clip_durations`)."""
    td = _times(src, col, unit, lines, unset_zero=True)
    return clip_durations(td, report, src.path, lambda row: _where(lines, row), column=col)


def _datetimes(src: _Source, col: str, text: pd.Series, lines) -> np.ndarray:
    parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    bad = parsed.isna().to_numpy(bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{src.path}: {_where(lines, row)}, column {col!r}: {shown(src.frame[col].iloc[row])} is not "
                        "a time (a number of seconds/ms/µs or a date-time); fix or remove that row")
    ns = parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy().astype(np.int64)
    return ns / 1e9


# -------------------------------------------------------------------------------------------- mappings
def parse_mapping(spec: str | Path | list[str] | None) -> dict[str, str] | None:
    """A column mapping from a JSON/YAML file or `k=v` pairs (comma separated or repeated)."""
    if spec is None or spec == [] or spec == "":
        return None
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if len(items) == 1 and "=" not in str(items[0]):
        return _mapping_file(Path(items[0]))
    mapping: dict[str, str] = {}
    for item in items:
        for pair in str(item).split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise UserError(f"mapping: {pair!r} is not NAME=COLUMN; write e.g. ts=StartTime,srcip=src")
            mapping[key.strip()] = value.strip()
    return mapping


def _mapping_file(path: Path) -> dict[str, str]:
    from ..config import read_yaml_or_json

    if not path.is_file():
        raise UserError(f"mapping: {path} is neither a file nor NAME=COLUMN pairs (e.g. ts=StartTime,srcip=src)")
    data = read_yaml_or_json(path, "mapping file")
    if not isinstance(data, dict) or not all(isinstance(v, (str, int)) for v in data.values()):
        raise UserError(f"{path}: mapping must be an object of canonical name -> column name")
    return {str(k): str(v) for k, v in data.items()}


__all__ = ["FLOW_FORMATS", "read_flow_records", "flows_from_frame", "sniff_flow_format", "parse_mapping"]
