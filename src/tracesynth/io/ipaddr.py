"""IPv4 addresses as uint32, vectorised both ways (dotted quad <-> integer)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError


#: A dotted quad, or an integer (NetShare writes uint32 addresses, sometimes as floats: 3232235777.0).
_IPV4_TEXT = r"(?P<a>\d{1,3})\.(?P<b>\d{1,3})\.(?P<c>\d{1,3})\.(?P<d>\d{1,3})|(?P<n>\d{1,10})(?:\.0*)?"


def parse_ipv4(values) -> tuple[np.ndarray, np.ndarray]:
    """Dotted quads or integers (also integral floats) -> (uint32 addresses, mask of unparsable entries).

    Bad entries (octet > 255, an integer >= 2^32, IPv6, text) get address 0; callers name the first one.
    ASCII text goes through a byte-matrix parser (about 30x faster than pandas' regex); anything else
    (non-ASCII, very long or missing entries) through the regex, which defines the accepted forms."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr > 0xFFFFFFFF)
        return np.where(bad, 0, arr).astype(np.uint32), bad
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        whole = finite & (arr == np.floor(np.where(finite, arr, 0))) & (arr >= 0) & (arr <= 0xFFFFFFFF)
        return np.where(whole, arr, 0).astype(np.uint32), ~whole
    fast = _parse_ascii(arr)
    return fast if fast is not None else parse_ipv4_text(arr)


def parse_ipv4_text(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference parser (pandas regex over `_IPV4_TEXT`): slow, accepts exactly the documented forms."""
    text = pd.Series(arr).astype("string").str.strip()
    parts = text.str.extract(f"^(?:{_IPV4_TEXT})$")
    octets = parts[["a", "b", "c", "d"]].apply(pd.to_numeric, errors="coerce").to_numpy("float64", na_value=np.nan)
    number = pd.to_numeric(parts["n"], errors="coerce").to_numpy("float64", na_value=np.nan)
    dotted = ~np.isnan(octets).any(axis=1)
    bad = np.where(dotted, (octets > 255).any(axis=1), np.isnan(number) | (number > 0xFFFFFFFF))
    o = np.where(bad[:, None], 0, np.nan_to_num(octets)).astype(np.uint64)
    quad = (o[:, 0] << 24) | (o[:, 1] << 16) | (o[:, 2] << 8) | o[:, 3]
    n = np.where(bad, 0, np.nan_to_num(number)).astype(np.uint64)
    return np.where(dotted, quad, n).astype(np.uint32), bad


_WIDTH = 24  # longest accepted text: 10 digits, a dot and zeros; longer entries take the regex path


def _parse_ascii(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`_IPV4_TEXT` over a (n, _WIDTH) byte matrix, one column at a time; None when the text is not
    plain ASCII of at most _WIDTH - 1 characters (the caller falls back to the regex)."""
    try:
        raw = arr.astype(f"S{_WIDTH}")  # ASCII only; longer text is cut, so it is checked below
    except (UnicodeEncodeError, TypeError, ValueError):
        return None
    if raw.size and np.ascontiguousarray(raw).view(np.uint8).reshape(-1, _WIDTH)[:, -1].any():
        return None
    m = np.ascontiguousarray(np.char.strip(raw).astype(f"S{_WIDTH}")).view(np.uint8).reshape(-1, _WIDTH)
    n = m.shape[0]
    seg = np.zeros(n, np.int64)           # dots seen
    cur = np.zeros(n, np.int64)           # value of the current segment
    digits = np.zeros(n, np.int64)        # digits in the current segment
    parts = np.zeros((n, 4), np.int64)    # finished segments (dotted quad), parts[:, 0] = integer part
    widest = np.zeros(n, np.int64)        # most digits in a finished segment
    empty = np.zeros(n, bool)             # a segment without digits before a dot
    bad = np.zeros(n, bool)
    frac = np.zeros(n, bool)              # a non-zero digit after the first dot (integer form)
    int_digits = np.zeros(n, np.int64)    # digits before the first dot
    ended = np.zeros(n, bool)
    used = np.flatnonzero(m.any(axis=0))
    width = int(used[-1]) + 2 if used.size else 1  # the longest entry and one NUL column that ends every entry
    for j in range(width):
        c = m[:, j]
        end, dot = c == 0, c == 46
        dig = (c >= 48) & (c <= 57)
        bad |= ~(end | dig | dot) | (ended & ~end)
        done = (dot | end) & ~ended
        rows = np.flatnonzero(done & (seg < 4))
        parts[rows, seg[rows]] = cur[rows]
        widest = np.where(done, np.maximum(widest, digits), widest)
        empty |= dot & (digits == 0)
        int_digits = np.where(dot & (seg == 0), digits, int_digits)
        frac |= dig & (seg == 1) & (c != 48)
        cur = np.where(dig, cur * 10 + (c.astype(np.int64) - 48), np.where(dot, 0, cur))
        digits = np.where(dig, digits + 1, np.where(dot, 0, digits))
        seg += dot
        ended |= end
    quad = (seg == 3) & ~empty & (widest <= 3) & (digits >= 1) & (parts <= 255).all(axis=1)
    whole = ((seg == 0) | ((seg == 1) & ~frac)) & ~empty & (parts[:, 0] <= 0xFFFFFFFF)
    int_digits = np.where(seg == 0, digits, int_digits)
    whole &= (int_digits >= 1) & (int_digits <= 10)
    bad |= ~(quad | whole)
    p = np.where(bad[:, None], 0, parts).astype(np.uint64)
    value = np.where(quad, (p[:, 0] << 24) | (p[:, 1] << 16) | (p[:, 2] << 8) | p[:, 3], p[:, 0])
    return value.astype(np.uint32), bad


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
