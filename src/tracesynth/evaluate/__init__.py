"""Evaluation: compare a real and a synthetic canonical table; never looks inside the model.

`evaluate_tables(real, synth)` returns every number as a JSON-ready dict:
- `fidelity`: NetShare's paper metrics keyed SA, DA, SP, DP, PR, TS, TD, PKT, BYT, PS, PAT, FS, a scale-free
  EMD of every continuous field, and averages (`fidelity.py`);
- `structure`: flow-level distributions, classifier two-sample AUC, mutual information (`structure.py`);
- `privacy`: exact copies, 5-tuple overlap, nearest-neighbour distance ratio (`privacy.py`);
- `downstream`: traffic-type prediction, heavy-hitter sketches, NetML anomaly detection (`downstream/`);
- `protocol` (packets): what tshark's expert analysis flags per 1,000 packets, REAL beside SYNTH, or
  `{"skipped": why}` without tshark or for flow records (`expert.py`);
- `baseline` (optional): the same for the column-shuffled real trace, so readers see what "good" means.
The held-out benchmark protocol lives beside it: `split.split_flows` (flow-disjoint train / held-out),
`baseline.marginals` / `baseline.copy` (the trivial rows) and `scorecard.score` (flat, declared metrics of a
candidate against the held-out part; `scorecard.METRICS` documents each).
`evaluate_paths` / `report_paths` read either side with `tracesynth.io.read_trace` (pcap, pcapng, CSV,
parquet) and write JSON / one self-contained HTML file.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..progress import ProgressCallback, emit
from ..schema import table_kind

log = logging.getLogger(__name__)

#: Paper field names per table kind, in the order tables show them.
NETSHARE_KEYS = {"packets": ("SA", "DA", "SP", "DP", "PR", "PS", "PAT", "FS"),
                 "flows": ("SA", "DA", "SP", "DP", "PR", "TS", "TD", "PKT", "BYT")}


def _check_pair(real: pd.DataFrame, synth: pd.DataFrame) -> str:
    """Both tables must be the same kind (packets or flow records) and non-empty."""
    try:
        kr, ks = table_kind(real), table_kind(synth)
    except ValueError as exc:
        raise UserError(f"cannot evaluate: {exc}") from None
    if kr != ks:
        raise UserError(f"cannot compare a {kr} table (REAL) with a {ks} table (SYNTH); convert one side first "
                        "(for example `tracesynth flows PCAP OUT.csv` turns packets into flow records)")
    for name, t in (("REAL", real), ("SYNTH", synth)):
        if len(t) == 0:
            raise UserError(f"{name} has no records to evaluate")
    return kr


def _score(real: pd.DataFrame, synth: pd.DataFrame, kind: str, *, train, downstream: bool, seed: int,
           progress: ProgressCallback | None, stage: str) -> dict:
    from .downstream import anomaly, classify, sketches
    from .fidelity import fidelity
    from .privacy import privacy
    from .structure import structure

    steps = ["fidelity", "structure", "privacy"] + (["traffic_type", "heavy_hitters", "anomaly"] if downstream else [])
    out: dict[str, Any] = {}
    for i, step in enumerate(steps):
        emit(progress, stage, i, len(steps), "steps", step=step)
        if step == "fidelity":
            out["fidelity"] = fidelity(real, synth, kind)
        elif step == "structure":
            out["structure"] = structure(real, synth, kind, seed=seed)
        elif step == "privacy":
            out["privacy"] = privacy(real, synth, kind, train=train, seed=seed)
        elif step == "traffic_type":
            out.setdefault("downstream", {})["traffic_type"] = classify.traffic_type(real, synth, seed=seed)
        elif step == "heavy_hitters":
            out["downstream"]["heavy_hitters"] = sketches.heavy_hitters(real, synth, seed=seed)
        else:
            out["downstream"]["anomaly"] = anomaly.anomaly_detection(real, synth, seed=seed)
    emit(progress, stage, len(steps), len(steps), "steps")
    out["netshare"] = out["fidelity"]["netshare"]
    out["summary"] = _summary(out)
    out["compared_with"] = compared_with(out)
    return out


def compared_with(result: dict) -> dict[str, str]:
    """What each section's scores compare SYNTH with, in words (shown beside every printed score)."""
    out = {"fidelity": "REAL (every record)", "flow_level": "REAL's 5-tuple flows",
           "classifier": "REAL; 3-fold CV with folds grouped by 5-tuple", "privacy": result["privacy"]["split"]}
    if "downstream" in result:
        out.update({"traffic_type": "trained on REAL's 70% vs on SYNTH; both tested on REAL's other 30%",
                    "heavy_hitters": "sketch errors on SYNTH vs the same sketches on REAL",
                    "anomaly": "detector trained on REAL vs on SYNTH; both score REAL's held-out flows"})
    out["protocol"] = "REAL; both written with the same pcap writer, then read by tshark"
    return out


def _summary(result: dict) -> dict[str, float | None]:
    """The handful of headline numbers the CLI table and the report's verdict use."""
    fid, st, pv = result["fidelity"], result["structure"], result["privacy"]
    ds = result.get("downstream") or {}
    return {
        "avg_jsd": fid["avg_jsd"], "avg_emd_scaled": fid["avg_emd_scaled"],
        "flow_emd_scaled": _mean([v["emd_scaled"] for k, v in st["flow_level"].items() if k != "flows"]),
        "records_auc": st["classifier"]["records_auc"], "flows_auc": st["classifier"]["flows_auc"],
        "mi_abs_diff": _mean([v["abs_diff"] for v in st["mutual_information"].values()]),
        "exact_match_share": pv["exact_match_share"]["synthetic"],
        "nn_distance_ratio": pv["nn_distance"]["ratio"],
        "traffic_type_spearman": _dig(ds, ("traffic_type", "spearman")),
        "heavy_hitter_spearman": _dig(ds, ("heavy_hitters", "spearman")),
        "anomaly_spearman": _dig(ds, ("anomaly", "spearman")),
    }


def _dig(d: Any, keys: tuple) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _mean(values: list) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def evaluate_tables(real: pd.DataFrame, synth: pd.DataFrame, *, train: pd.DataFrame | None = None,
                    downstream: bool = True, seed: int = 0, progress: ProgressCallback | None = None,
                    baseline: bool = False) -> dict:
    """Every evaluation number for `synth` against `real` (see the module docstring for the layout).

    `train`: the table the generator was trained on, when known (privacy signals); otherwise REAL is split
    in time. `baseline`: also score the column-shuffled REAL under `result["baseline"]`.
    scikit-learn runs single-threaded here: on a small shared machine, OpenMP thread pools oversubscribe
    and ran gradient boosting 20x slower than one thread.
    """
    from threadpoolctl import threadpool_limits

    kind = _check_pair(real, synth)
    shared = [c for c in real.columns if c in synth.columns]
    real, synth = real[shared], synth[[c for c in synth.columns if c in shared]]  # compare like with like
    with threadpool_limits(limits=1):
        result: dict[str, Any] = {"kind": kind, "rows": {"real": len(real), "synthetic": len(synth)}, "seed": seed}
        result.update(_score(real, synth, kind, train=train, downstream=downstream, seed=seed,
                             progress=progress, stage="evaluate"))
        if baseline:
            from .baseline import column_shuffle

            shuffled = column_shuffle(real, seed)
            result["baseline"] = {"name": "column shuffle of REAL", **_score(
                real, shuffled, kind, train=train, downstream=downstream, seed=seed, progress=progress,
                stage="baseline")}
    result["protocol"] = protocol_realism(real, synth, kind)
    return result


def protocol_realism(real: pd.DataFrame, synth: pd.DataFrame, kind: str) -> dict:
    """tshark's expert counts, REAL beside SYNTH (packets only; {"skipped": why} otherwise)."""
    if kind != "packets":
        return {"skipped": "not applicable to flow records (no packet headers to analyse)"}
    from .expert import compare

    return compare(real, synth)


def to_jsonable(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python numbers, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_table(path: str | Path, *, progress: ProgressCallback | None = None, salvage: bool = False) -> pd.DataFrame:
    """Read any trace tracesynth reads (pcap, pcapng, flow CSV, parquet) as its canonical table."""
    from ..io import read_trace

    return read_trace(path, progress=progress, salvage=salvage).table


def _read_sides(real, synth, train, progress, salvage: bool):
    """REAL, SYNTH and (if given) TRAIN as canonical tables, without the optional columns that any of
    them lacks (a NetShare packet CSV has no tcp_flags: the reader sets it to 0, which must not be
    compared with real flags)."""
    from ..io import read_trace, require_records

    paths = [p for p in (real, synth, train) if p is not None]
    traces = [require_records(read_trace(p, progress=progress, salvage=salvage), "evaluate") for p in paths]
    absent = sorted({c for t in traces for c in t.report.notes.get("absent_columns", [])})
    if absent:
        log.warning("left out of the comparison (absent from a side): %s", ", ".join(absent))
    tables = [t.table.drop(columns=absent) for t in traces]
    return tables[0], tables[1], tables[2] if train is not None else None


def evaluate_paths(real: str | Path, synth: str | Path, *, train: str | Path | None = None,
                   json_out: str | Path | None = None, downstream: bool = True, baseline: bool = False,
                   seed: int = 0, progress: ProgressCallback | None = None, salvage: bool = False) -> dict:
    """Read both traces, evaluate, optionally write the JSON (atomically); returns the JSON-ready dict.

    `salvage`: keep the packets before damage in the middle of a capture (see `read_trace`)."""
    from .._atomic import atomic_open, check_output_path

    if json_out is not None:
        check_output_path(json_out, "--json file", "scores.json")
    r, s, t = _read_sides(real, synth, train, progress, salvage)
    result = to_jsonable(evaluate_tables(r, s, train=t, downstream=downstream, seed=seed, progress=progress,
                                         baseline=baseline))
    result["inputs"] = {"real": str(real), "synthetic": str(synth), "train": None if train is None else str(train)}
    if json_out is not None:
        with atomic_open(json_out, "w") as fh:
            json.dump(result, fh, indent=2, allow_nan=False)
    return result


def report_paths(real: str | Path, synth: str | Path, out: str | Path, *, train: str | Path | None = None,
                 downstream: bool = True, baseline: bool = False, seed: int = 0, meta: dict | None = None,
                 progress: ProgressCallback | None = None, salvage: bool = False) -> Path:
    """Read both traces, evaluate, and write one self-contained HTML report to `out`."""
    from .._atomic import check_output_path
    from .report import write_report

    check_output_path(out, "report", "report.html")
    r, s, t = _read_sides(real, synth, train, progress, salvage)
    result = to_jsonable(evaluate_tables(r, s, train=t, downstream=downstream, seed=seed, progress=progress,
                                         baseline=baseline))
    result["inputs"] = {"real": str(real), "synthetic": str(synth), "train": None if train is None else str(train)}
    return write_report(r, s, result, out, meta=meta)


__all__ = ["evaluate_tables", "evaluate_paths", "report_paths", "to_jsonable", "NETSHARE_KEYS"]
