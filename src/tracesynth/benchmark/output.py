"""A benchmark's three outputs: JSON (flat `rows`: row -> metric -> number), a rich table for the
terminal, and one self-contained HTML leaderboard in the evaluation report's style.

Every value is shown beside the `real` row's (the floor: real train data against held-out data) as a
ratio; `match` metrics (e.g. the share of TCP flows opening with SYN) are shown beside the held-out
data's own value instead. With several seeds, values are means and the spread is the standard deviation
over seeds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .._atomic import atomic_open
from .protocol import FLOOR, BenchmarkResult
from .rows import BASELINES

#: metrics that test the joint distribution: a model that does not beat `marginals` on them learnt nothing
JOINT_PREFIXES = ("pairs.", "auc.")
PRIVACY_PREFIX = "privacy."


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


def ratio(value: float, floor: float) -> float:
    """value / floor; 1 where both are 0; NaN where either is missing."""
    if not (_finite(value) and _finite(floor)):
        return float("nan")
    if floor == 0:
        return 1.0 if value == 0 else float("inf")
    return value / floor


def directions(result: BenchmarkResult) -> dict[str, str]:
    return {m.name: m.direction for m in result.metrics}


def badness(result: BenchmarkResult, row: str, metric: str, direction: str) -> float:
    """How far a row is from ideal on a metric, for ranking (lower is better)."""
    v = result.mean(row, metric)
    if not _finite(v):
        return float("inf")
    if direction == "match":
        ref = result.reference_mean(metric)
        return abs(v - ref) if _finite(ref) else float("inf")
    return v if direction == "min" else -v


def winners(result: BenchmarkResult) -> dict[str, str]:
    """Per metric, the best generated row (not the floor, not `copy`, which only copies)."""
    dirs = directions(result)
    rows = [r for r in result.row_names if r not in (FLOOR, "copy")]
    models = [r for r in rows if r not in BASELINES]
    out = {}
    for metric in result.metric_names():
        candidates = models if metric.startswith("cost.") else rows   # baselines cost nothing to fit
        ranked = sorted(candidates, key=lambda r: badness(result, r, metric, dirs[metric]))
        if ranked and math.isfinite(badness(result, ranked[0], metric, dirs[metric])):
            out[metric] = ranked[0]
    return out


def verdicts(result: BenchmarkResult) -> list[str]:
    """Plain-language lines: which rows beat `marginals` on the joint metrics, and privacy flags."""
    dirs, lines = directions(result), []
    joint = [m.name for m in result.metrics if m.name.startswith(JOINT_PREFIXES)]
    for row in result.row_names:
        if row in (FLOOR, "marginals"):
            continue
        better = [m for m in joint if badness(result, row, m, dirs[m]) < badness(result, "marginals", m, dirs[m])]
        lines.append(f"{row}: closer to held-out data than `marginals` on {len(better)} of {len(joint)} joint "
                     f"metrics ({', '.join(better) or 'none'})")
        copies = result.mean(row, "privacy.exact_copy")
        floor_copies = result.mean(FLOOR, "privacy.exact_copy")
        if _finite(copies) and copies > max(2 * (floor_copies if _finite(floor_copies) else 0), 0.05):
            lines.append(f"{row}: {copies:.0%} of its records copy a training record (real floor "
                         f"{floor_copies:.1%}): memorising")
    expert = [m.name for m in result.metrics if m.name.startswith("expert.")]
    if expert and not any(_finite(result.mean(r, m)) for r in result.row_names for m in expert):
        from ..evaluate.expert import unavailable

        lines.append(f"expert.* (protocol realism) skipped: {unavailable() or 'tshark failed; the log says why'}")
    return lines


def to_json(result: BenchmarkResult) -> dict[str, Any]:
    """The benchmark as strict JSON (NaN and inf become null)."""
    from ..evaluate import to_jsonable

    names, metrics = result.row_names, result.metric_names()
    spec = result.spec
    data = {
        "trace": str(spec.trace), "kind": result.kind, "holdout": spec.holdout, "seeds": spec.seeds,
        "models": list(spec.models), "scored_files": {n: str(p) for n, p in spec.scores},
        "epochs": spec.epochs, "machine": result.machine, "wall_s": round(result.wall_s, 1),
        "metrics": {m.name: {"low": m.low, "high": m.high, "direction": m.direction, "description": m.description}
                    for m in result.metrics},
        "reference": {m: result.reference_mean(m) for m in metrics if directions(result).get(m) == "match"},
        "rows": {r: {m: result.mean(r, m) for m in metrics} for r in names},
        "spread": {r: {m: result.spread(r, m) for m in metrics} for r in names},
        "ratio_to_floor": {r: {m: ratio(result.mean(r, m), result.mean(FLOOR, m)) for m in metrics} for r in names},
        "winners": winners(result),
        "verdicts": verdicts(result),
        "per_seed": [{"seed": s.seed, "sizes": s.sizes, "rows": s.rows} for s in result.seeds],
    }
    return to_jsonable(data)


def write_json(result: BenchmarkResult, path: str | Path) -> Path:
    with atomic_open(path, "w") as fh:
        json.dump(to_json(result), fh, indent=2, allow_nan=False)
    return Path(path)


def _ratio_text(result: BenchmarkResult, row: str, metric: str, direction: str) -> str:
    """"1.7x": the row's value over the floor's; empty for the floor, `match` metrics and costs."""
    if row == FLOOR or direction == "match" or metric.startswith("cost."):
        return ""
    r = ratio(result.mean(row, metric), result.mean(FLOOR, metric))
    return f"{r:.2g}x" if _finite(r) else ""


def _spread_text(result: BenchmarkResult, row: str, metric: str) -> str:
    sd = result.spread(row, metric)
    return f"±{sd:.2g}" if _finite(sd) else ""


def _cell(result: BenchmarkResult, row: str, metric: str, direction: str) -> str:
    v = result.mean(row, metric)
    if not _finite(v):
        return "n/a"
    return " ".join(filter(None, (f"{v:.3g}" + _spread_text(result, row, metric),
                                  _ratio_text(result, row, metric, direction))))


def table(result: BenchmarkResult):
    """A rich Table: one line per metric, one column per row (value, and its ratio to the floor)."""
    from rich.table import Table

    dirs, best = directions(result), winners(result)
    sizes = result.seeds[0].sizes
    t = Table(title=f"benchmark: {result.spec.trace} ({result.kind}; train {sizes['train_flows']:,} flows / "
                    f"{sizes['train_records']:,} records, held-out {sizes['holdout_flows']:,} / "
                    f"{sizes['holdout_records']:,}; {result.spec.seeds} seed(s))",
              caption="real = the floor (train data vs held-out); Nx = ratio to it; match metrics: compare with the held-out column; "
                      "* = best generated row", title_justify="left")
    t.add_column("metric", no_wrap=True, min_width=max(len(m) for m in result.metric_names()))
    t.add_column("goal")
    t.add_column("held-out", justify="right")
    for row in result.row_names:
        t.add_column(row, justify="right", overflow="fold")
    for metric in result.metric_names():
        if not any(_finite(result.mean(r, metric)) for r in result.row_names):
            continue
        ref = result.reference_mean(metric) if dirs[metric] == "match" else float("nan")
        cells = [_cell(result, r, metric, dirs[metric]) + ("*" if best.get(metric) == r else "")
                 for r in result.row_names]
        t.add_row(metric, dirs[metric], f"{ref:.3g}" if _finite(ref) else "", *cells)
    return t


def write_html(result: BenchmarkResult, path: str | Path) -> Path:
    """One self-contained leaderboard page: per metric a bar per row, the floor marked on every bar."""
    dirs, best = directions(result), winners(result)
    blocks = []
    for metric in result.metric_names():
        values = {r: result.mean(r, metric) for r in result.row_names}
        finite = [v for v in values.values() if _finite(v)]
        if not finite:
            continue
        ref = result.reference_mean(metric) if dirs[metric] == "match" else result.mean(FLOOR, metric)
        top = max(finite + ([ref] if _finite(ref) else [])) or 1.0
        bars = [{"row": r, "value": f"{v:.3g}" if _finite(v) else "n/a",
                 "width": 100 * v / top if _finite(v) and top > 0 and v >= 0 else 0,
                 "spread": _spread_text(result, r, metric),
                 "ratio": f"{t} floor" if (t := _ratio_text(result, r, metric, dirs[metric])) else "",
                 "floor": r == FLOOR, "best": best.get(metric) == r} for r, v in values.items()]
        mark = 100 * ref / top if _finite(ref) and top > 0 and ref >= 0 else None
        desc = next(m.description for m in result.metrics if m.name == metric)
        blocks.append({"name": metric, "direction": dirs[metric], "description": desc, "bars": bars, "mark": mark,
                       "mark_label": "held-out value" if dirs[metric] == "match" else "real floor"})
    page = _environment().get_template("leaderboard.html.j2").render(result=to_json(result), blocks=blocks,
                                                                      verdicts=verdicts(result))
    with atomic_open(path, "w") as fh:
        fh.write(page)
    return Path(path)


def _environment():
    """Jinja with this package's templates and the evaluation report's (for its shared stylesheet)."""
    import jinja2

    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("tracesynth.benchmark", "templates"),
                                  jinja2.PackageLoader("tracesynth.evaluate", "templates")])
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html", "j2"]))
