"""`tracesynth evaluate` and `report`: score a synthetic trace against the real one (one api call each)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from .. import api
from ._app import SALVAGE, app, out, progress_bar

_REAL = typer.Argument(..., help="The real trace (pcap/pcapng, flow CSV or tracesynth .csv/.parquet).",
                       show_default=False)
_SYNTH = typer.Argument(..., help="The synthetic trace, same kind as REAL (packets or flow records).",
                        show_default=False)
_TRAIN = typer.Option(None, "--train", help="The table the generator was trained on, if known (privacy "
                      "signals); otherwise REAL's first 80% of time stands in for it.")
_BASELINE = typer.Option(False, "--baseline", help="Also score the column-shuffled REAL, side by side.")
_NO_DOWNSTREAM = typer.Option(False, "--no-downstream", help="Skip the downstream tasks (classifiers, "
                              "sketches, anomaly detection).")
#: scikit-learn's random_state takes 0..2^32-1.
_SEED = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed for subsampling, splits and models (0..2^32-1).")

#: (label, summary key, what good looks like, key of what it is compared with in result["compared_with"])
HEADLINE = (("avg JSD (SA DA SP DP PR)", "avg_jsd", "0", "fidelity"),
            ("avg scaled EMD, fields", "avg_emd_scaled", "0", "fidelity"),
            ("avg scaled EMD, flow shapes", "flow_emd_scaled", "0", "flow_level"),
            ("classifier AUC, records", "records_auc", "0.5", "classifier"),
            ("classifier AUC, flows", "flows_auc", "0.5", "classifier"),
            ("mutual info |diff| (nats)", "mi_abs_diff", "0", "fidelity"),
            ("exact copies of training", "exact_match_share", "0", "privacy"),
            ("NN distance ratio", "nn_distance_ratio", "1", "privacy"),
            ("traffic type Spearman", "traffic_type_spearman", "1", "traffic_type"),
            ("heavy hitters Spearman", "heavy_hitter_spearman", "1", "heavy_hitters"),
            ("anomaly Spearman", "anomaly_spearman", "1", "anomaly"))


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_result(result: dict) -> None:
    base = result.get("baseline")
    ns = Table(title=f"NetShare metrics: SYNTH vs REAL ({result['kind']}: {result['rows']['real']:,} real vs "
                     f"{result['rows']['synthetic']:,} synthetic records"
                     + ("; baseline = column shuffle of REAL vs REAL)" if base else ")"))
    ns.add_column("metric")
    ns.add_column("synthetic", justify="right")
    if base:
        ns.add_column("baseline", justify="right")
    for key, value in result["netshare"].items():
        ns.add_row(key, _num(value), *([_num(base["netshare"].get(key))] if base else []))
    out.print(ns)
    head = Table(title="Beyond marginals")
    for col, just in (("score", "left"), ("synthetic", "right"), ("best", "right")):
        head.add_column(col, justify=just)
    if base:
        head.add_column("baseline", justify="right")
    head.add_column("compared with", justify="left")
    against = result.get("compared_with", {})
    for label, key, best, section in HEADLINE:
        value = result["summary"].get(key)
        if value is None and key.endswith("spearman") and (base is None or base["summary"].get(key) is None):
            continue
        head.add_row(label, _num(value), best, *([_num(base["summary"].get(key))] if base else []),
                     against.get(section, "REAL"))
    out.print(head)
    _print_protocol(result.get("protocol"))


def _print_protocol(protocol: dict | None) -> None:
    """tshark's expert counts per 1,000 packets, REAL beside SYNTH (or why they were skipped)."""
    if not protocol:
        return
    if "skipped" in protocol:
        out.print(f"protocol realism (tshark expert): skipped: {protocol['skipped']}", highlight=False)
        return
    t = Table(title=f"Protocol realism: tshark expert analysis per 1,000 packets ({protocol['tool']})")
    for col, just in (("kind", "left"), ("real", "right"), ("synthetic", "right")):
        t.add_column(col, justify=just)
    for severity, v in protocol["per_1k"].items():
        t.add_row(f"{severity} (all)", f"{v['real']:.2f}", f"{v['synthetic']:.2f}")
    for k in protocol["kinds"]:
        t.add_row(k["kind"], f"{k['real']:.2f}", f"{k['synthetic']:.2f}")
    t.add_row("sum of |differences|", "", f"{protocol['kind_l1']:.2f}")
    out.print(t)


@app.command()
def evaluate(real: Path = _REAL, synth: Path = _SYNTH,
             json_out: Optional[Path] = typer.Option(None, "--json", help="Write every number as JSON to this file."),
             no_downstream: bool = _NO_DOWNSTREAM, baseline: bool = _BASELINE, train: Optional[Path] = _TRAIN,
             seed: int = _SEED, salvage: bool = SALVAGE) -> None:
    """Score SYNTH against REAL: NetShare's metrics, flow shapes, two-sample test, privacy, downstream tasks."""
    with progress_bar("evaluating") as progress:
        result = api.evaluate_paths(real, synth, train=train, json_out=json_out, downstream=not no_downstream,
                                    baseline=baseline, seed=seed, progress=progress, salvage=salvage)
    _print_result(result)
    if json_out is not None:
        out.print(f"wrote {json_out}", highlight=False)


@app.command()
def report(real: Path = _REAL, synth: Path = _SYNTH,
           out_path: Path = typer.Option(..., "--out", "-o", help="The HTML file to write (self-contained)."),
           no_downstream: bool = _NO_DOWNSTREAM, baseline: bool = _BASELINE, train: Optional[Path] = _TRAIN,
           meta: Optional[Path] = typer.Option(None, "--meta", help="A JSON file of run facts (for example the "
                                               "run manifest's privacy block) shown in a 'Run' section."),
           seed: int = _SEED, salvage: bool = SALVAGE) -> None:
    """Write one self-contained HTML report comparing SYNTH with REAL (tables, plots, verdict)."""
    facts = _read_meta(meta) if meta is not None else None
    with progress_bar("reporting") as progress:
        result = api.report_paths(real, synth, out_path, train=train, downstream=not no_downstream,
                                  baseline=baseline, seed=seed, meta=facts, progress=progress, salvage=salvage)
    out.print(f"wrote {result['report']}", highlight=False)


def _read_meta(path: Path) -> dict:
    from ..errors import UserError

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the --meta JSON ({exc}); pass a JSON object of run facts") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: --meta must hold a JSON object (key: value pairs)")
    return data
