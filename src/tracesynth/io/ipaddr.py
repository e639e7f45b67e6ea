"""IPv4 addresses as uint32, vectorised both ways (dotted quad <-> integer)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError


def ip_to_uint32(values, *, source: str = "<input>", column: str = "ip") -> np.ndarray:
    """Parse dotted quads (or integers, or integer strings) into uint32; the error names the bad row."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
            raise UserError(f"{source}: column {column!r} has integers outside the IPv4 range 0..2^32-1")
        return arr.astype(np.uint32)
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            row = int(np.flatnonzero(np.isnan(arr))[0])
            raise UserError(f"{source}: column {column!r} row {row}: empty IPv4 address")
        return ip_to_uint32(arr.astype(np.int64), source=source, column=column)
    s = pd.Series(arr, dtype="string")
    numeric = s.str.fullmatch(r"\d+").fillna(False).to_numpy(bool)
    out = np.zeros(len(s), dtype=np.uint64)
    if numeric.any():
        out[numeric] = s[numeric].astype("uint64").to_numpy()
    dotted = ~numeric
    if dotted.any():
        parts = s[dotted].str.split(".", expand=True, regex=False)
        bad = (parts.shape[1] != 4) if parts.ndim == 2 else True
        if not bad:
            octets = parts.apply(pd.to_numeric, errors="coerce")
            badrows = octets.isna().any(axis=1).to_numpy() | (octets > 255).any(axis=1).to_numpy() \
                | (octets < 0).any(axis=1).to_numpy()
        if bad or badrows.any():
            idx = np.flatnonzero(dotted)
            first = idx[0] if bad else idx[np.flatnonzero(badrows)[0]]
            raise UserError(f"{source}: column {column!r} row {int(first)}: {s.iloc[first]!r} is not an "
                            "IPv4 address (IPv6 flow records are not supported yet)")
        o = octets.to_numpy(np.uint64)
        out[dotted] = (o[:, 0] << 24) | (o[:, 1] << 16) | (o[:, 2] << 8) | o[:, 3]
    if (out > 0xFFFFFFFF).any():
        raise UserError(f"{source}: column {column!r} has integers outside the IPv4 range 0..2^32-1")
    return out.astype(np.uint32)


def ip_octets(values) -> np.ndarray:
    """uint32 IPv4 addresses as four octet columns (n, 4) of uint8, most significant first."""
    v = np.asarray(values, dtype=np.uint32)
    return np.stack([(v >> s) & 0xFF for s in (24, 16, 8, 0)], axis=1).astype(np.uint8)


def uint32_to_ip(values) -> np.ndarray:
    """Format uint32 addresses as dotted quads (object array of str)."""
    octets = ip_octets(values).T
    s = [pd.Series(o).astype(str) for o in octets]
    return (s[0] + "." + s[1] + "." + s[2] + "." + s[3]).to_numpy(dtype=object)
