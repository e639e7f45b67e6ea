"""Per-field fidelity: NetShare's paper metrics (keyed SA, DA, SP, DP, PR, TS, TD, PKT, BYT, PS, PAT, FS)
and a scale-free EMD for every continuous field.

NetShare's harness (NETSHARE.md section 8): IP popularity-rank JSD (SA, DA), 65,536-bin port JSD (SP, DP),
256-bin protocol JSD (PR), and raw-unit EMDs. Raw EMDs cannot be averaged across fields (seconds and bytes),
so `emd_scaled` divides each by the real field's range; `avg_emd_scaled` averages those.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import TraceKind
from . import metrics as m
from .flowstats import flow_codes

#: NetShare's JSD metrics: name -> (column, how)
JSD_FIELDS = {"SA": ("srcip", "rank"), "DA": ("dstip", "rank"), "SP": ("srcport", 65536),
              "DP": ("dstport", 65536), "PR": ("proto", 256)}
#: NetShare's raw EMD metrics per table kind: name -> column ("flow_size" = packets per 5-tuple)
EMD_FIELDS: dict[str, dict[str, str]] = {
    "flows": {"TS": "ts", "TD": "td", "PKT": "pkt", "BYT": "byt"},
    "packets": {"PS": "pkt_len", "PAT": "time", "FS": "flow_size"},
}
#: Every continuous field per kind (scale-free EMD); time columns are taken relative to their own start.
CONTINUOUS: dict[str, tuple[str, ...]] = {
    "packets": ("time", "pkt_len", "tos", "id", "off", "ttl"),
    "flows": ("ts", "td", "pkt", "byt"),
}
#: Small categorical fields compared by JSD over their observed values.
CATEGORICAL: dict[str, tuple[str, ...]] = {"packets": ("flag", "tcp_flags"), "flows": ("label",)}
TIME_FIELDS = ("time", "ts")


def field_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """The values NetShare compares for `column` (times relative to own start, flow sizes per 5-tuple)."""
    if column == "flow_size":
        codes, n = flow_codes(table)
        return np.bincount(codes, minlength=n).astype(np.float64)
    values = table[column].to_numpy(np.float64)
    return m.relative_to_own_start(values) if column in TIME_FIELDS else values


def netshare_jsd(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    """SA, DA (popularity-rank JSD), SP, DP (65,536 bins), PR (256 bins)."""
    out = {}
    for name, (col, how) in JSD_FIELDS.items():
        a, b = real[col].to_numpy(), synth[col].to_numpy()
        out[name] = m.rank_jsd(a, b) if how == "rank" else m.bincount_jsd(a, b, how)
    return out


def netshare_emd(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind) -> tuple[dict, dict]:
    """Raw-unit EMDs (NetShare) and the same EMDs scaled by the real range, keyed by paper name."""
    raw, scaled = {}, {}
    for name, col in EMD_FIELDS[kind].items():
        a, b = field_values(real, col), field_values(synth, col)
        raw[name], scaled[name] = m.emd(a, b), m.scaled_emd(a, b)
    return raw, scaled


def continuous_emd(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind) -> dict[str, float]:
    """Scale-free EMD of every continuous field present on both sides."""
    return {c: m.scaled_emd(field_values(real, c), field_values(synth, c))
            for c in CONTINUOUS[kind] if c in real.columns and c in synth.columns}


def categorical_jsd(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind) -> dict[str, float]:
    """JSD of small categorical fields (IP flags, TCP flags, flow labels) present on both sides."""
    return {c: m.categorical_jsd(real[c].astype(str).to_numpy(), synth[c].astype(str).to_numpy())
            for c in CATEGORICAL[kind] if c in real.columns and c in synth.columns}


def fidelity(real: pd.DataFrame, synth: pd.DataFrame, kind: TraceKind) -> dict:
    """Every per-field number: `netshare` (paper keys), `netshare_emd_scaled`, `emd_scaled`, `jsd`, averages."""
    js = netshare_jsd(real, synth)
    raw, scaled = netshare_emd(real, synth, kind)
    cont = continuous_emd(real, synth, kind)
    cat = categorical_jsd(real, synth, kind)
    return {
        "netshare": {**js, **raw},
        "netshare_emd_scaled": scaled,
        "emd_scaled": cont,
        "jsd": cat,
        "avg_jsd": float(np.mean(list(js.values()))),
        "avg_netshare_emd_scaled": _nanmean(scaled.values()),
        "avg_emd_scaled": _nanmean(cont.values()),
    }


def _nanmean(values) -> float:
    arr = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")
