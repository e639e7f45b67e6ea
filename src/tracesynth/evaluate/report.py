"""One self-contained HTML report: metric tables, plots (PNG embedded as base64), a plain-language verdict.

Plots are drawn with matplotlib's Agg backend (no display needed); the page has no external resources,
so it opens offline and can be mailed as one file.
"""
from __future__ import annotations

import base64
import io
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_open
from . import NETSHARE_KEYS
from .fidelity import CONTINUOUS, field_values
from .metrics import ecdf, popularity_ranks
from .structure import flow_distributions

log = logging.getLogger(__name__)

REAL, SYNTH = "#1f77b4", "#d62728"


def _png(fig) -> str:
    """Encode a figure as a data: URI and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, cols: int = 3, size: tuple[float, float] = (4.2, 3.0)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _cdf(ax, real: np.ndarray, synth: np.ndarray, title: str, log: bool = False) -> None:
    for values, color, label in ((real, REAL, "real"), (synth, SYNTH, "synthetic")):
        values = values[np.isfinite(values)]
        if log:
            values = values[values > 0]
        if values.size:
            x, p = ecdf(values)
            ax.plot(x, p, color=color, label=label, lw=1.6, ls="-" if label == "real" else "--")
    if not ax.lines:
        ax.text(0.5, 0.5, "no positive values" if log else "no values", ha="center", va="center",
                transform=ax.transAxes, color="gray")
        ax.set_title(title, fontsize=10)
        return
    if log:
        ax.set_xscale("log")
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def field_cdfs(real: pd.DataFrame, synth: pd.DataFrame, kind: str) -> str:
    cols = [c for c in CONTINUOUS[kind] if c in real.columns and c in synth.columns]
    fig, axes = _grid(len(cols))
    for ax, c in zip(axes, cols):
        label = f"{c} (s from start)" if c in ("time", "ts") else c
        _cdf(ax, field_values(real, c), field_values(synth, c), label)
    return _png(fig)


def flow_cdfs(real: pd.DataFrame, synth: pd.DataFrame) -> str:
    a, b = flow_distributions(real), flow_distributions(synth)
    fig, axes = _grid(len(a), cols=4, size=(3.6, 3.0))
    for ax, name in zip(axes, a):
        _cdf(ax, a[name], b[name], name.replace("_", " ") + " (log)", log=True)
    return _png(fig)


def ip_rank_frequency(real: pd.DataFrame, synth: pd.DataFrame) -> str:
    fig, axes = _grid(2, cols=2, size=(4.6, 3.4))
    for ax, col in zip(axes, ("srcip", "dstip")):
        for table, color, label in ((real, REAL, "real"), (synth, SYNTH, "synthetic")):
            counts = popularity_ranks(table[col].to_numpy())
            ax.loglog(np.arange(1, len(counts) + 1), counts, color=color, label=label, lw=1.6)
        ax.set_title(f"{col}: rank vs records (log-log)", fontsize=10)
        ax.set_xlabel("popularity rank")
        ax.set_ylabel("records")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _png(fig)


def top_values(real: pd.DataFrame, synth: pd.DataFrame, k: int = 10) -> str:
    fig, axes = _grid(3, cols=3, size=(4.4, 3.4))
    for ax, col in zip(axes, ("srcport", "dstport", "proto")):
        r = real[col].value_counts(normalize=True)
        s = synth[col].value_counts(normalize=True)
        top = list(dict.fromkeys(r.index[:k].tolist() + s.index[:k].tolist()))[:k]  # real's top, then synth's
        x = np.arange(len(top))
        ax.bar(x - 0.2, [r.get(v, 0.0) for v in top], 0.4, color=REAL, label="real")
        ax.bar(x + 0.2, [s.get(v, 0.0) for v in top], 0.4, color=SYNTH, label="synthetic")
        ax.set_xticks(x, [str(v) for v in top], rotation=60, fontsize=7)
        ax.set_title(f"top {col} (share of records)", fontsize=10)
        ax.legend(fontsize=8)
    return _png(fig)


#: Short tick labels for the heavy-hitter panel ("5-tuple CM" instead of truncated names).
_SKETCH_LABEL = {"count_min": "CM", "count_sketch": "CS", "univmon": "UnivMon", "nitrosketch": "Nitro"}
_KEY_LABEL = {"srcip": "src", "dstip": "dst", "five_tuple": "5-tuple"}


def downstream_plot(result: dict) -> str | None:
    ds = result.get("downstream") or {}
    panels = [(name, ds[name]) for name in ("traffic_type", "heavy_hitters", "anomaly") if ds.get(name)]
    if not panels:
        return None
    fig, axes = _grid(len(panels), cols=len(panels), size=(4.8, 3.4))
    for ax, (name, d) in zip(axes, panels):
        if name == "traffic_type":
            real, syn, title = d["accuracy"]["real"], d["accuracy"]["synthetic"], "traffic type: accuracy on real test"
        elif name == "heavy_hitters":
            er, es = d["relative_error"]["real"], d["relative_error"]["synthetic"]
            real = {f"{_KEY_LABEL.get(k, k)} {_SKETCH_LABEL.get(s, s)}": er[k][s] for k in er for s in er[k]}
            syn = {f"{_KEY_LABEL.get(k, k)} {_SKETCH_LABEL.get(s, s)}": es[k][s] for k in es for s in es[k]}
            title = "heavy hitters: relative error"
        else:
            real, syn, title = d["anomaly_ratio"]["real"], d["anomaly_ratio"]["synthetic"], "anomaly ratio by mode"
        keys = list(real)
        x = np.arange(len(keys))
        ax.bar(x - 0.2, [real[k] or 0 for k in keys], 0.4, color=REAL, label="trained/measured on real")
        ax.bar(x + 0.2, [syn[k] or 0 for k in keys], 0.4, color=SYNTH, label="on synthetic")
        ax.set_xticks(x, keys, rotation=60, fontsize=7)
        sp = d.get("spearman")
        ax.set_title(f"{title}\nSpearman {sp:.2f}" if sp is not None else title, fontsize=10)
        ax.legend(fontsize=7)
    return _png(fig)


def verdict(result: dict) -> list[str]:
    """Short plain-language sentences a non-specialist can act on."""
    s, lines = result["summary"], []
    jsd = s.get("avg_jsd")
    if jsd is not None:
        word = "very close to" if jsd < 0.05 else "close to" if jsd < 0.15 else "far from"
        lines.append(f"Per-field distributions (addresses, ports, protocols) are {word} the real trace "
                     f"(average JSD {jsd:.3f}; 0 is identical, 0.693 is completely different).")
    auc = s.get("records_auc")
    if auc is not None:
        word = ("hard to tell apart from" if auc < 0.65 else "partly distinguishable from" if auc < 0.85
                else "easy to tell apart from")
        lines.append(f"Row by row, synthetic records are {word} real ones (classifier AUC {auc:.2f}; 0.5 means "
                     "indistinguishable). This catches broken links between fields that per-field scores miss.")
    fe = s.get("flow_emd_scaled")
    if fe is not None:
        word = "match" if fe < 0.02 else "roughly match" if fe < 0.1 else "do not match"
        lines.append(f"Flow shapes (packets, bytes, duration, gaps per flow) {word} the real trace "
                     f"(mean scaled EMD {fe:.3f}).")
    ratio, exact = s.get("nn_distance_ratio"), s.get("exact_match_share")
    if ratio is not None:
        word = ("no sign of copying" if ratio > 0.8 else "some flows sit unusually close to training flows"
                if ratio > 0.3 else "many synthetic flows are near-copies of training flows")
        lines.append(f"Privacy: {word} (nearest-neighbour distance ratio {ratio:.2f}; about 1 is healthy)"
                     + (f"; {exact:.1%} of synthetic records equal a training record." if exact is not None else "."))
    for key, task in (("traffic_type_spearman", "traffic-type classifiers"), ("heavy_hitter_spearman", "sketches"),
                      ("anomaly_spearman", "anomaly-detection modes")):
        if s.get(key) is not None:
            lines.append(f"Downstream: the synthetic trace ranks the {task} with Spearman {s[key]:.2f} "
                         "against the real ranking (1 is the same order).")
    lines += _protocol_verdict(result.get("protocol"))
    if "baseline" in result and result["baseline"]["summary"].get("records_auc") is not None:
        b = result["baseline"]["summary"]
        lines.append(f"For scale: shuffling each real column independently scores average JSD "
                     f"{b['avg_jsd']:.3f} but classifier AUC {b['records_auc']:.2f}.")
    return lines


def _protocol_verdict(protocol: dict | None) -> list[str]:
    """One sentence on tshark's expert counts (or why they were not measured)."""
    if not protocol:
        return []
    if "skipped" in protocol:
        return [f"Protocol realism (tshark expert analysis) was not measured: {protocol['skipped']}."]
    w, n = protocol["per_1k"]["Warns"], protocol["per_1k"]["Notes"]
    line = (f"A protocol analyser (tshark) flags {w['synthetic']:.1f} warnings and {n['synthetic']:.1f} notes per "
            f"1,000 synthetic packets (real: {w['real']:.1f} and {n['real']:.1f}).")
    worst = max(protocol["kinds"], key=lambda k: abs(k["synthetic"] - k["real"]), default=None)
    if worst is not None and abs(worst["synthetic"] - worst["real"]) >= 1.0:
        line += (f" Largest difference: {worst['kind']} ({worst['synthetic']:.1f} vs {worst['real']:.1f} per 1,000).")
    return [line]


def _rows(result: dict) -> dict[str, list]:
    """Metric tables as (name, synthetic, baseline) rows for the template."""
    base = result.get("baseline")

    def row(name, *path):
        from . import _dig

        return (name, _dig(result, path), _dig(base, path) if base else None)

    kind = result["kind"]
    st = result["structure"]
    tables = {
        "NetShare metrics (JSD: SA..PR; raw EMD: the rest)": [row(k, "netshare", k) for k in NETSHARE_KEYS[kind]],
        "NetShare EMDs scaled by the real range": [row(k, "fidelity", "netshare_emd_scaled", k)
                                                   for k in result["fidelity"]["netshare_emd_scaled"]],
        "Scale-free EMD of every continuous field": [row(c, "fidelity", "emd_scaled", c)
                                                      for c in result["fidelity"]["emd_scaled"]],
        "Categorical JSD": [row(c, "fidelity", "jsd", c) for c in result["fidelity"]["jsd"]],
        "Flow-level distributions (scaled EMD)": [row(k, "structure", "flow_level", k, "emd_scaled")
                                                  for k in st["flow_level"] if k != "flows"],
        "Classifier two-sample test (ROC AUC, 0.5 = indistinguishable)": [
            row("records", "structure", "classifier", "records_auc"),
            row("per-flow summaries", "structure", "classifier", "flows_auc")],
        "Mutual information |real - synthetic| (nats)": [row(k, "structure", "mutual_information", k, "abs_diff")
                                                          for k in st["mutual_information"]],
        "Privacy": [row("exact record matches (share)", "privacy", "exact_match_share", "synthetic"),
                    row("  real held-out, same figure", "privacy", "exact_match_share", "holdout"),
                    row("5-tuple overlap with training", "privacy", "five_tuple_overlap", "synthetic"),
                    row("  real held-out, same figure", "privacy", "five_tuple_overlap", "holdout"),
                    row("NN distance ratio (about 1 is healthy)", "privacy", "nn_distance", "ratio")],
        "Downstream rank correlations (Spearman)": [
            row("traffic type (classifiers)", "downstream", "traffic_type", "spearman"),
            row("heavy hitters (sketches x keys)", "downstream", "heavy_hitters", "spearman"),
            row("anomaly detection (NetML modes)", "downstream", "anomaly", "spearman")],
    }
    against = result.get("compared_with", {})
    section = {"NetShare": "fidelity", "Scale-free": "fidelity", "Categorical": "fidelity", "Flow-level": "flow_level",
               "Classifier": "classifier", "Mutual": "fidelity", "Privacy": "privacy"}
    titled = {}
    for title, rows in tables.items():
        key = section.get(title.split()[0])
        where = against.get(key) if key else "REAL (see each task: traffic type, sketches, anomaly)"
        titled[f"{title} - compared with {where}" if where else title] = rows
    return {k: v for k, v in titled.items() if v}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(real: pd.DataFrame, synth: pd.DataFrame, result: dict, *, meta: dict | None = None) -> str:
    """The report's HTML text."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("tracesynth.evaluate", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["num"] = _fmt
    from . import to_jsonable

    result = to_jsonable(result)
    kind = result["kind"]
    figures = [("CDFs of every continuous field", field_cdfs(real, synth, kind)),
               ("Flow size, duration and inter-arrival (CDFs, log x)", flow_cdfs(real, synth)),
               ("IP popularity: rank-frequency", ip_rank_frequency(real, synth)),
               ("Top ports and protocols", top_values(real, synth))]
    ds = downstream_plot(result)
    if ds:
        figures.append(("Downstream tasks", ds))
    return env.get_template("report.html.j2").render(
        result=result, kind=kind, tables=_rows(result), figures=figures, verdict=verdict(result),
        protocol=result.get("protocol"),
        meta=meta or {}, has_baseline="baseline" in result)


def write_report(real: pd.DataFrame, synth: pd.DataFrame, result: dict, out: str | Path, *,
                 meta: dict | None = None) -> Path:
    """Render and write the report atomically; returns its path.

    matplotlib's warnings (an empty legend, a log axis without positive values) go to the log, not to
    the user's terminal: the figure says what is missing itself."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render(real, synth, result, meta=meta)
    for w in caught:
        log.info("report: %s", " ".join(str(w.message).split()))
    with atomic_open(out, "w") as fh:
        fh.write(html)
    return Path(out)
