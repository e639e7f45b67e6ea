"""DP mode around the model: making a preset DP-ready, the time window, the count inputs of the size
release, and what a DP fit may say about the private trace (docs/privacy.md).

Everything here reads the private trace only where the result goes through the budget (the counts
handed to `model.privacy.release_sizes`) and says nothing that depends on private values: notices are
unconditional, and no count of private records is logged or stored.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from ..config import TraceSynthConfig, config_from_dict
from ..errors import UserError
from ..schema import FLOW_KEY, TIME_COLUMN

log = logging.getLogger(__name__)

#: said once per DP fit, whatever the private trace holds (a notice that depended on it would leak)
PREPROCESSING_NOTICE = ("DP mode: private records outside time.window are left out, values outside the "
                        "fitted or configured ranges are clipped and unseen ports, protocols and categories "
                        "map to the nearest known value; how many is not reported (it is private)")


def parse_window(text: str | None) -> tuple[float, float] | None:
    """`--window START,END` (epoch seconds) as a pair; None when not given."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        start, end = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        start = end = math.nan
    if not (math.isfinite(start) and math.isfinite(end) and start < end):
        raise UserError(f"--window: expected START,END in epoch seconds with START < END "
                        f"(e.g. 1458298072,1458298256), got {text!r}")
    return start, end


def with_window(cfg: TraceSynthConfig, window: tuple[float, float] | None) -> TraceSynthConfig:
    """`cfg` with time.window set to `window` (`--window`); unchanged when None."""
    if window is None:
        return cfg
    data = cfg.model_dump(mode="json")
    data["time"]["window"] = [float(window[0]), float(window[1])]
    return config_from_dict(data, "--window")


def dp_ready_preset(cfg: TraceSynthConfig, public: pd.DataFrame | None,
                    public_name: str | None = None, model_chosen: bool = False) -> TraceSynthConfig:
    """A preset made DP-ready: checkpoint selection off (said once), the window from the public trace
    when none is set (said, with the window used), and the preset's documented public ranges for
    numeric fields left without one when there is no public trace to fit them on, and then spikes off where
    the preset counts them (a preset names no public spike values; the notice depends on the preset only).

    Only for presets: a custom config keeps what it says, and `check_dp_config` names what is missing.
    Without a public trace the preset's ar model (whose vocabularies need public data) becomes the
    doppelganger model, said once, unless the model was chosen (`--model ar`: then the fit is refused).
    """
    from ..config import DP_PUBLIC_RANGES

    data = cfg.model_dump(mode="json")
    if data["model"]["kind"] == "ar" and public is None and not public_name and not model_chosen:
        # the ar model's vocabularies (spikes, bins, top ports and addresses) must come from public data
        data["model"]["kind"] = "doppelganger"
        log.warning("DP mode without a public trace: the preset's ar model needs one for its vocabularies "
                    "(--public); fitting the doppelganger model with the documented public ranges instead")
    if data["training"]["checkpoint_selection"]:
        data["training"]["checkpoint_selection"] = False
        log.warning("DP mode: checkpoint selection is off (it would score checkpoints on private data)")
    if data["time"]["window"] is None and public is not None and len(public):
        times = public[TIME_COLUMN[cfg.kind]].to_numpy(np.float64)
        data["time"]["window"] = [float(times.min()), float(times.max())]
        log.warning("DP mode: time.window is not set; using the span of the public trace %s, %.6f,%.6f epoch "
                    "seconds (never the private trace's); give --window START,END to choose it",
                    public_name or "", *data["time"]["window"])
    if public is None:
        for f in data["fields"]:
            fixed = DP_PUBLIC_RANGES.get(f["name"])
            if f["encoding"] == "numeric" and f["range"] is None and fixed is not None:
                f["range"] = list(fixed)
        spiky = [f for f in data["fields"] if f.get("spikes") and f.get("spike_values") is None]
        for f in spiky:
            f["spikes"] = 0
        if spiky:
            log.warning("DP mode: spikes are off for %s (their values would be counted on the private trace); "
                        "pass --public to count them on a public trace", ", ".join(f["name"] for f in spiky))
    return config_from_dict(data, "DP-ready preset")


def inside_window(table: pd.DataFrame, cfg: TraceSynthConfig) -> pd.DataFrame:
    """The private records inside time.window. DP mode cuts instead of refusing: a refusal would name a
    private count and time; what is cut is said only in `PREPROCESSING_NOTICE`."""
    lo, hi = cfg.time.window
    times = table[TIME_COLUMN[cfg.kind]].to_numpy(np.float64)
    keep = (times >= lo) & (times <= hi)
    return table if keep.all() else table[keep].reset_index(drop=True)


def distinct_flows(table: pd.DataFrame) -> int:
    """Flows (5-tuples) of a trace: the count of L2 sensitivity 1 that the output size follows."""
    return int(len(table.drop_duplicates(list(FLOW_KEY)))) if len(table) else 0


def flow_counts(private: pd.DataFrame, chunks: list, public: pd.DataFrame | None = None,
                public_chunks: list | None = None):
    """The inputs of the size release: private distinct flows and samples per chunk, and with a public
    trace its samples per flow in each chunk (the public shares, which cost no budget)."""
    from ..model.privacy import FlowCounts

    ratios = None
    if public is not None and public_chunks is not None:
        flows = max(1, distinct_flows(public))
        ratios = tuple(c.flows.n_flows / flows for c in public_chunks)
        if not sum(ratios) > 0:
            ratios = None
    return FlowCounts(distinct=distinct_flows(private), per_chunk=tuple(int(c.flows.n_flows) for c in chunks),
                      public_ratios=ratios)
