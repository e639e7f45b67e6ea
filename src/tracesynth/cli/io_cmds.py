"""`tracesynth inspect`, `convert` and `flows`: trace I/O commands (each calls one tracesynth.api function)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .. import api
from ..io.netflow import parse_mapping
from ._app import SALVAGE, app, out, progress_bar


class LinkType(str, Enum):
    raw = "raw"
    ethernet = "ethernet"


class FlowFormat(str, Enum):
    netshare = "netshare"
    generic = "generic"
    zeek = "zeek"
    zeek_json = "zeek-json"
    zeek_csv = "zeek-csv"
    argus = "argus"


_TRACE = typer.Argument(..., help="pcap/pcapng capture, flow-record file or tracesynth table (.csv/.parquet).",
                        show_default=False)
_MAPPING = typer.Option(None, "--mapping", "-m", help="Column mapping for flow files: a JSON/YAML file or "
                        "NAME=COLUMN pairs (ts=StartTime,srcip=src,...; ts_unit=s|ms|us|ns). Repeatable.")
_FORMAT = typer.Option(None, "--format", "-f", help="Force the flow-record format instead of sniffing it.")


@app.command()
def inspect(trace: Path = _TRACE,
            json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
            mapping: Optional[list[str]] = _MAPPING, fmt: Optional[FlowFormat] = _FORMAT,
            flow_details: bool = typer.Option(False, "--flows", help="Also show flows per chunk, flows spanning "
                                              "chunks, flow-length percentiles and flows the length cap splits."),
            salvage: bool = SALVAGE) -> None:
    """Summarise a trace: records, time span, hosts, flows, protocol mix, top ports, what was skipped."""
    with progress_bar("reading", enabled=not json_out) as progress:
        summary = api.inspect_trace(trace, mapping=parse_mapping(mapping), flow_format=_value(fmt),
                                    progress=progress, flows=flow_details, salvage=salvage)
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(summary)
    if flow_details:
        d = summary["flow_details"]
        pct = ", ".join(f"{k} {v:g}" for k, v in d["flow_length_percentiles"].items())
        out.print(f"flows: {d['flows']:,} in {d['n_chunks']} {d['chunking']} chunks; per chunk "
                  f"{d['flows_per_chunk']}; spanning several chunks: {d['flows_spanning_chunks']:,}\n"
                  f"flow length (records): {pct}\n"
                  f"cap max_flow_len={d['max_flow_len']}: {d['flows_over_cap']:,} flows would be split "
                  f"({d['extra_samples_from_split']:,} extra samples)", highlight=False)


@app.command()
def convert(trace: Path = _TRACE,
            output: Path = typer.Argument(..., help="Output file: .pcap, .csv or .parquet.", show_default=False),
            link_type: Optional[LinkType] = typer.Option(None, "--link-type", help="Link type of a .pcap output."),
            ns: bool = typer.Option(False, "--ns", help="Nanosecond timestamps in a .pcap output."),
            tcp_seed: Optional[int] = typer.Option(None, "--tcp-seed", min=0, help="Seed of the TCP sequence "
                                                   "numbers and windows a .pcap output gets (default: fixed)."),
            mapping: Optional[list[str]] = _MAPPING, fmt: Optional[FlowFormat] = _FORMAT,
            salvage: bool = SALVAGE) -> None:
    """Convert between pcap/pcapng (read), flow-record formats (read), .pcap, .csv and .parquet."""
    with progress_bar("converting") as progress:
        result = api.convert_trace(trace, output, mapping=parse_mapping(mapping), flow_format=_value(fmt),
                                   link_type=_value(link_type), nanosecond=ns, tcp_seed=tcp_seed, progress=progress,
                                   salvage=salvage)
    what = "packets" if result["kind"] == "packets" else "flow records"
    out.print(f"wrote {result['records']:,} {what} to {result['output']} "
              f"(from {result['source_format']})", highlight=False)
    _print_skipped(result)


@app.command()
def flows(pcap: Path = typer.Argument(..., help="Packet capture (pcap/pcapng) or tracesynth packet table.",
                                      show_default=False),
          output: Path = typer.Argument(..., help="Flow records out: .csv or .parquet.", show_default=False),
          idle_timeout: float = typer.Option(120.0, "--idle-timeout", help="Seconds of silence that end a flow."),
          active_timeout: float = typer.Option(1800.0, "--active-timeout",
                                               help="Seconds after its first packet that a flow record is cut."),
          salvage: bool = SALVAGE) -> None:
    """Flow meter: group packets into unidirectional 5-tuple flow records (idle and active timeouts)."""
    with progress_bar("metering") as progress:
        result = api.meter_flows_file(pcap, output, idle_timeout, active_timeout, progress=progress, salvage=salvage)
    out.print(f"{result['packets']:,} packets -> {result['flows']:,} flow records in {result['output']} "
              f"(idle {result['idle_timeout']:g} s, active {result['active_timeout']:g} s)", highlight=False)
    _print_skipped(result)


def _value(option: Enum | None) -> str | None:
    return None if option is None else option.value


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _print_summary(s: dict[str, Any]) -> None:
    main = Table(title=f"{s['path']}", show_header=False, title_justify="left")
    main.add_column("field", style="bold")
    main.add_column("value")
    unit = "packets" if s["kind"] == "packets" else "flow records"
    rows = [("format", f"{s['format']} ({s['kind']})"), (unit, f"{s['records']:,}"),
            ("start", _when(s["start"])), ("end", _when(s["end"])), ("span", f"{s['span_s']:.6f} s"),
            ("hosts", f"{s['hosts']:,} ({s['distinct_src']:,} sources, {s['distinct_dst']:,} destinations)"),
            ("5-tuple flows", f"{s['flows']:,}"), ("bytes", f"{s['bytes']:,}")]
    if "packets" in s:
        rows.append(("packets", f"{s['packets']:,}"))
    if s["link_types"]:
        rows.append(("link types", ", ".join(f"{k}: {v:,}" for k, v in s["link_types"].items())))
    rows.append(("protocols", ", ".join(f"{k} {v:,}" for k, v in s["proto_mix"].items()) or "-"))
    rows.append(("top dst ports", ", ".join(f"{p['port']} ({p['records']:,})" for p in s["top_dst_ports"]) or "-"))
    if s.get("labels"):
        rows.append(("labels", ", ".join(f"{k} {v:,}" for k, v in s["labels"].items())))
    rows.append(("skipped", ", ".join(f"{k}: {v:,}" for k, v in s["skipped"].items()) or "none"))
    for field, value in rows:
        main.add_row(field, value)
    out.print(main)
    for warning in s["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def _print_skipped(result: dict[str, Any]) -> None:
    if result["skipped"]:
        out.print("skipped: " + ", ".join(f"{k}: {v:,}" for k, v in result["skipped"].items()), highlight=False)
    for warning in result["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
