"""Path-in, path-out facade over tracesynth: what the CLI commands and the web service call.

Every function takes file paths and plain options, does one job and returns a JSON-serialisable dict
describing what it did, so a front end only parses arguments and prints or serves the result.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import check_output_path
from .errors import UserError
from .io import Trace, read_trace, write_trace
from .progress import ProgressCallback
from .schema import FLOW_KEY, PROTO_NAMES, TIME_COLUMN

log = logging.getLogger(__name__)

#: Protocol number -> name for summaries (first name wins: 4 -> IPIP, 58 -> ICMPV6).
_PROTO_LABEL = {num: name for name, num in reversed(list(PROTO_NAMES.items()))}
TOP_PORTS = 10


def inspect_trace(path: str | Path, *, mapping: dict[str, str] | None = None, flow_format: str | None = None,
                  progress: ProgressCallback | None = None, flows: bool = False,
                  config: Any = None, salvage: bool = False) -> dict[str, Any]:
    """Read a trace and summarise it: size, time span, hosts, flows, protocol mix, ports, what was skipped.

    `flows`: also add `flow_details` (flows per chunk, spanning flows, length percentiles, flows the cap
    would split) under `config` (default: the preset for the trace's kind). `salvage`: keep the packets
    before damage in the middle of a capture. A trace without records gives a summary with 0 records
    and a warning saying so."""
    trace = read_trace(path, mapping=mapping, flow_format=flow_format, progress=progress, salvage=salvage)
    summary = summarize(trace)
    if flows:
        from .config import preset
        from .flows.summary import flow_summary

        cfg = config or preset("pcap" if trace.kind == "packets" else "netflow")
        summary["flow_details"] = flow_summary(trace.table, cfg)
    return summary


def summarize(trace: Trace) -> dict[str, Any]:
    """The `inspect` summary of an already read trace (plain Python types only)."""
    table, report = trace.table, trace.report
    times = table[TIME_COLUMN[trace.kind]].to_numpy(np.float64)
    start = float(times.min()) if len(times) else None
    end = float(times.max()) if len(times) else None
    src, dst = table["srcip"].to_numpy(), table["dstip"].to_numpy()
    size_col = "pkt_len" if trace.kind == "packets" else "byt"
    summary: dict[str, Any] = {
        "path": report.path,
        "kind": trace.kind,
        "format": report.format,
        "records": int(len(table)),
        "records_seen": int(report.records_seen),
        "start": start,
        "end": end,
        "span_s": (end - start) if start is not None else 0.0,
        "hosts": int(len(np.unique(np.concatenate([src, dst])))),
        "distinct_src": int(len(np.unique(src))),
        "distinct_dst": int(len(np.unique(dst))),
        "flows": int(len(table.drop_duplicates(list(FLOW_KEY)))) if len(table) else 0,
        "bytes": int(table[size_col].to_numpy(np.uint64).sum()),
        "proto_mix": _proto_mix(table["proto"]),
        "top_dst_ports": _top_ports(table, "dstport"),
        "top_src_ports": _top_ports(table, "srcport"),
        "skipped": {str(k): int(v) for k, v in report.skipped.items()},
        "warnings": [str(w) for w in report.warnings],
        "link_types": {str(k): int(v) for k, v in report.link_types.items()},
        "notes": _plain(report.notes),
    }
    if trace.kind == "flows":
        summary["packets"] = int(table["pkt"].to_numpy(np.uint64).sum())
        if "label" in table.columns:
            summary["labels"] = {str(k): int(v) for k, v in table["label"].value_counts().head(20).items()}
    return summary


def _proto_mix(proto: pd.Series) -> dict[str, int]:
    counts = proto.value_counts()
    return {_PROTO_LABEL.get(int(p), str(int(p))): int(c) for p, c in counts.items()}


def _top_ports(table: pd.DataFrame, column: str) -> list[dict[str, int]]:
    """Most frequent ports among TCP/UDP records (other protocols have 0 or, ICMP, type/code there)."""
    ports = table.loc[np.isin(table["proto"].to_numpy(), (6, 17)), column]
    return [{"port": int(p), "records": int(c)} for p, c in ports.value_counts().head(TOP_PORTS).items()]


def _plain(value: Any) -> Any:
    """numpy scalars and containers -> plain Python, so json.dumps never fails on a report note."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def convert_trace(src: str | Path, dst: str | Path, *, mapping: dict[str, str] | None = None,
                  flow_format: str | None = None, link_type: str | None = None, nanosecond: bool = False,
                  tcp_seed: int | None = None, progress: ProgressCallback | None = None,
                  salvage: bool = False) -> dict[str, Any]:
    """Read any supported trace and write it as .pcap, .csv or .parquet (by `dst`'s suffix).

    `tcp_seed`: the pcap writer's seed for TCP sequence numbers and windows (None: its fixed default)."""
    dst = Path(dst)
    if dst.suffix.lower() not in (".pcap", ".cap", ".csv", ".parquet", ".pq"):
        raise UserError(f"{dst}: unknown output suffix {dst.suffix!r}; use .pcap, .csv or .parquet")
    options: dict[str, Any] = {}
    if dst.suffix.lower() in (".pcap", ".cap"):
        if link_type is not None:
            options["linktype"] = link_type
        if nanosecond:
            options["nanosecond"] = True
        if tcp_seed is not None:
            options["seed"] = tcp_seed
    elif link_type is not None or nanosecond or tcp_seed is not None:
        raise UserError(f"{dst}: --link-type, --ns and --tcp-seed only apply to .pcap output")
    check_output_path(dst)
    trace = read_trace(src, mapping=mapping, flow_format=flow_format, progress=progress, salvage=salvage)
    out = write_trace(trace.table, dst, **options)
    return {"source": str(src), "output": str(out), "kind": trace.kind, "source_format": trace.report.format,
            "records": int(len(trace.table)), "skipped": {str(k): int(v) for k, v in trace.report.skipped.items()},
            "warnings": list(trace.report.warnings)}


def meter_flows_file(pcap: str | Path, out: str | Path, idle_timeout: float = 120.0,
                     active_timeout: float = 1800.0, *, progress: ProgressCallback | None = None,
                     salvage: bool = False) -> dict[str, Any]:
    """Flow-meter a packet trace into flow records written to `out` (.csv or .parquet)."""
    from .io.flowmeter import meter_flows

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UserError(f"{out}: flow records are written as .csv or .parquet; change the output suffix")
    check_output_path(out)
    trace = read_trace(pcap, progress=progress, salvage=salvage)
    if trace.kind != "packets":
        raise UserError(f"{pcap}: holds flow records already ({trace.report.format}); the flow meter needs "
                        "a packet capture (pcap/pcapng) or a tracesynth packet table")
    flows = meter_flows(trace.table, idle_timeout=idle_timeout, active_timeout=active_timeout)
    write_trace(flows, out)
    return {"source": str(pcap), "output": str(out), "packets": int(len(trace.table)), "flows": int(len(flows)),
            "idle_timeout": float(idle_timeout), "active_timeout": float(active_timeout),
            "skipped": {str(k): int(v) for k, v in trace.report.skipped.items()},
            "warnings": list(trace.report.warnings)}




# ---- model: fit / generate / demo (tracesynth.pipeline) ----------------------------------------------
# Imported lazily: the pipeline pulls in torch, which the I/O commands must not pay for at start-up.
def fit_path(trace: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """Fit a model of TRACE into the run folder OUT (see tracesynth.pipeline.commands.fit_path)."""
    from .pipeline.commands import fit_path as _fit_path

    return _fit_path(trace, out, **options)


def generate_path(run: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """Sample a synthetic trace from the run folder RUN into OUT (.pcap/.csv/.parquet)."""
    from .pipeline.commands import generate_path as _generate_path

    return _generate_path(run, out, **options)


def demo(out: str | Path = "demo-out", **options: Any) -> dict[str, Any]:
    """Fit the bundled sample, generate a synthetic pcap + flow records and a report into OUT."""
    from .pipeline.commands import demo as _demo

    return _demo(out, **options)


# ---- evaluation: evaluate / report (tracesynth.evaluate) ---------------------------------------------
def evaluate_paths(real: str | Path, synth: str | Path, **options: Any) -> dict[str, Any]:
    """Fidelity, structure, privacy and downstream scores of SYNTH against REAL (JSON-ready dict).

    Options: train, json_out, downstream, baseline, seed, progress (see tracesynth.evaluate.evaluate_paths)."""
    from .evaluate import evaluate_paths as _evaluate_paths

    return _evaluate_paths(real, synth, **options)


def report_paths(real: str | Path, synth: str | Path, out: str | Path, **options: Any) -> dict[str, Any]:
    """Write one self-contained HTML evaluation report; returns {"report": path}.

    Options: train, downstream, baseline, seed, meta, progress (see tracesynth.evaluate.report_paths)."""
    from .evaluate import report_paths as _report_paths

    return {"report": str(_report_paths(real, synth, out, **options))}


__all__ = ["inspect_trace", "summarize", "convert_trace", "meter_flows_file", "fit_path", "generate_path",
           "demo", "evaluate_paths", "report_paths"]
