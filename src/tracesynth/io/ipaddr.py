"""IPv4 addresses as uint32, vectorised both ways (dotted quad <-> integer)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError


#: A dotted quad, or an integer (NetShare writes uint32 addresses, sometimes as floats: 3232235777.0).
_IPV4_TEXT = r"(?P<a>\d{1,3})\.(?P<b>\d{1,3})\.(?P<c>\d{1,3})\.(?P<d>\d{1,3})|(?P<n>\d{1,10})(?:\.0*)?"


def parse_ipv4(values) -> tuple[np.ndarray, np.ndarray]:
    """Dotted quads or integers (also integral floats) -> (uint32 addresses, mask of unparsable entries).

    Bad entries (octet > 255, an integer >= 2^32, IPv6, text) get address 0; callers name the first one."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr > 0xFFFFFFFF)
        return np.where(bad, 0, arr).astype(np.uint32), bad
    s = pd.Series(arr)
    text = s.astype("string").str.strip()
    if arr.dtype.kind == "f":
        text = text.str.replace(r"\.0$", "", regex=True)
    parts = text.str.extract(f"^(?:{_IPV4_TEXT})$")
    octets = parts[["a", "b", "c", "d"]].apply(pd.to_numeric, errors="coerce").to_numpy("float64", na_value=np.nan)
    number = pd.to_numeric(parts["n"], errors="coerce").to_numpy("float64", na_value=np.nan)
    dotted = ~np.isnan(octets).any(axis=1)
    bad = np.where(dotted, (octets > 255).any(axis=1), np.isnan(number) | (number > 0xFFFFFFFF))
    o = np.where(bad[:, None], 0, np.nan_to_num(octets)).astype(np.uint64)
    quad = (o[:, 0] << 24) | (o[:, 1] << 16) | (o[:, 2] << 8) | o[:, 3]
    n = np.where(bad, 0, np.nan_to_num(number)).astype(np.uint64)
    return np.where(dotted, quad, n).astype(np.uint32), bad


def ipv4_problem(value: object) -> str:
    """What an unparsable address is expected to be, for error messages (IPv6 named only when it is one)."""
    if ":" in str(value):
        return "an IPv4 address (IPv6 addresses are not supported)"
    return "an IPv4 address (a dotted quad with octets 0..255, or an integer below 2^32)"


def ip_to_uint32(values, *, source: str = "<input>", column: str = "ip") -> np.ndarray:
    """Parse dotted quads (or integers, or integer strings) into uint32; the error names the bad entry."""
    out, bad = parse_ipv4(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = np.asarray(values)[row]
        raise UserError(f"{source}: column {column!r}, entry {row}: {str(value)!r} is not {ipv4_problem(value)}")
    return out


def ip_octets(values) -> np.ndarray:
    """uint32 IPv4 addresses as four octet columns (n, 4) of uint8, most significant first."""
    v = np.asarray(values, dtype=np.uint32)
    return np.stack([(v >> s) & 0xFF for s in (24, 16, 8, 0)], axis=1).astype(np.uint8)


def uint32_to_ip(values) -> np.ndarray:
    """Format uint32 addresses as dotted quads (object array of str)."""
    octets = ip_octets(values).T
    s = [pd.Series(o).astype(str) for o in octets]
    return (s[0] + "." + s[1] + "." + s[2] + "." + s[3]).to_numpy(dtype=object)
