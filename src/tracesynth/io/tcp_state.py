"""Sequence, acknowledgement and window numbers for the TCP headers the pcap writer writes.

The canonical packet table has no seq/ack/window columns, yet a protocol analyser (tshark, Zeek) checks
them: with every header at seq 0 tshark calls most segments retransmissions or out-of-order. Here they
are synthesised so that each direction of each connection is a consistent byte stream, all vectorised
(sorts, cumulative sums, one searchsorted; no loop per packet).

Rules (docs/packet-formats.md, "TCP header"):
- A direction is a 5-tuple (srcip, dstip, srcport, dstport); its packets are numbered in file order
  (table row order), which is the order an analyser reads them in.
- A direction starts a connection (an *epoch*, with a fresh initial sequence number drawn from the
  seeded generator) at its first packet and at every SYN that is not a repeat (below).
- Each packet advances the sequence number by its TCP payload (pkt_len - 20 - 20 - its TCP options),
  plus 1 for SYN and 1 for FIN. Only SYNs get options: real SYNs carry 4-40 bytes of them (MSS, SACK,
  timestamps, window scale) inside pkt_len, and counted as payload they would read as SYN data (TCP
  Fast Open). A SYN whose pkt_len - 40 is a multiple of 4 up to 40 gets that many option bytes: MSS
  1460, SACK permitted, end of list, zero padding (no timestamps, no window scaling). Other packets
  have no options: their extra bytes are payload, which keeps the byte stream consistent.
- A *repeat* - a packet with SYN or FIN set whose flags and payload equal the previous packet of its
  direction - is a retransmission of that segment: same sequence and acknowledgement numbers, no
  advance. Real stacks
  retransmit SYNs and FINs unanswered this way, and an analyser flags them as retransmissions in the
  real capture as well.
- Acknowledgement numbers (only where tcp_flags has ACK; 0 otherwise): where the reverse direction
  (swapped addresses and ports) is in the table, the reverse direction's next expected sequence number
  after its last packet before this one in the file (its first sequence number before it has sent
  any). Where it is absent (one direction of a link, as on a backbone tap), the peer is imagined:
  a random initial number + 1 (its SYN), advancing by one full segment (PEER_SEGMENT bytes) at each
  pure ACK, since a bare ACK only exists because new data arrived; data segments repeat the current
  value. Two pure ACKs with the same number would read as a duplicate ACK.
- Keep-alive: where the reverse direction is in the table, a pure ACK (flags exactly ACK, no payload)
  that comes KEEPALIVE_IDLE_S or more after the connection's previous packet (either direction) and
  acknowledges nothing new is a keep-alive probe, written as real stacks do (seq = next - 1). The
  answer to it (a prompt pure ACK from the other side) then reads as an ACK to a keep-alive; written
  otherwise both read as duplicate ACKs.
- Window: one value per direction for its whole life, drawn from WINDOWS (the unscaled receive windows
  common stacks announce). Constant, because without window-scale options a changing value reads as
  a window update, and it must be nonzero (zero reads as a zero-window condition).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..schema import pack_flow_key

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
HEADERS = 40                 # IPv4 + TCP header bytes without options (the writer writes no IP options)
PEER_SEGMENT = 1460          # bytes a pure ACK acknowledges when the peer is not in the table (MSS at MTU 1500)
KEEPALIVE_IDLE_S = 1.0       # idle time before a repeated pure ACK is a keep-alive (duplicate ACKs come within an RTT)
DEFAULT_SEED = 0x7C95EED     # the writer's default: the same table always gives the same bytes
#: A SYN's options, of which the first `opt_len` bytes are written: MSS 1460, NOP, NOP, SACK permitted, EOL.
SYN_OPTIONS = bytes.fromhex("020405b4" "01010402" "00") + bytes(31)

#: Receive windows common stacks put in their headers without window scaling, and how often each is
#: drawn: Windows 10+ and Linux >= 4.x (64240), BSD/macOS and many embedded stacks (65535), Linux 3.x
#: (29200), Linux 5.x (65160), older Windows (8192), older Linux (14600, 5840).
WINDOWS = np.array([64240, 65535, 29200, 65160, 8192, 14600, 5840], dtype=np.uint16)
WINDOW_SHARES = np.array([0.30, 0.25, 0.15, 0.12, 0.08, 0.06, 0.04])
_MASK = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class TcpHeaderFields:
    """Per packet of the table (0 where it is not a TCP first fragment): seq, ack, window, option bytes."""

    seq: np.ndarray      # uint32
    ack: np.ndarray      # uint32
    win: np.ndarray      # uint16
    opt_len: np.ndarray  # uint8: bytes of SYN_OPTIONS written after the 20-byte header (multiple of 4)


@dataclass(frozen=True)
class _Directions:
    """The TCP packets sorted by (direction, file position), with what the numbering needs."""

    rows: np.ndarray     # table row of each sorted packet
    dirn: np.ndarray     # direction id (0..n_dirs-1)
    reverse: np.ndarray  # per direction: id of the reverse direction, -1 when absent
    first: np.ndarray    # bool: first packet of its direction
    time: np.ndarray     # float64
    flags: np.ndarray    # int64 tcp flags
    opt_len: np.ndarray  # int64 option bytes
    payload: np.ndarray  # int64 TCP payload bytes

    @property
    def has_reverse(self) -> np.ndarray:
        return self.reverse[self.dirn] >= 0


def tcp_header_fields(cols: Mapping[str, np.ndarray], tcp: np.ndarray, seed: int = DEFAULT_SEED) -> TcpHeaderFields:
    """seq / ack / window / options for every row where `tcp` is True (rules: the module docstring).

    `cols`: the packet table's time, srcip, dstip, srcport, dstport, pkt_len and tcp_flags as arrays."""
    n = len(tcp)
    out = TcpHeaderFields(np.zeros(n, np.uint32), np.zeros(n, np.uint32), np.zeros(n, np.uint16), np.zeros(n, np.uint8))
    rows = np.flatnonzero(tcp)
    if rows.size == 0:
        return out
    rng = np.random.default_rng(seed)
    d = _directions(rows, {c: np.asarray(cols[c])[rows] for c in _COLUMNS})
    seq, nxt, epoch, original = _sequence(d, rng)
    last_rev = _last_reverse(d)
    ack = _reverse_ack(d, seq, nxt, last_rev)
    alive = _keepalive(d, ack, last_rev)
    ack = np.where(d.has_reverse, ack, _peer_ack(d, epoch, rng))[original]  # a repeat copies its ack too
    seq = np.where(alive, nxt - np.uint32(1), seq)
    win = rng.choice(WINDOWS, size=len(d.reverse), p=WINDOW_SHARES / WINDOW_SHARES.sum())
    out.seq[d.rows], out.ack[d.rows] = seq, np.where(d.flags & ACK, ack, 0)
    out.win[d.rows], out.opt_len[d.rows] = win[d.dirn], d.opt_len
    return out


_COLUMNS = ("time", "srcip", "dstip", "srcport", "dstport", "pkt_len", "tcp_flags")


def _directions(rows: np.ndarray, c: dict[str, np.ndarray]) -> _Directions:
    """Direction ids, their reverse, and the packets sorted by direction then file position."""
    fwd_hi, fwd_lo = pack_flow_key(c["srcip"], c["dstip"], c["srcport"], c["dstport"], 6)
    rev_hi, rev_lo = pack_flow_key(c["dstip"], c["srcip"], c["dstport"], c["srcport"], 6)
    host_ids, _ = _factorize(np.concatenate([fwd_hi, rev_hi]))
    codes, n_keys = _factorize((host_ids.astype(np.uint64) << np.uint64(40)) | np.concatenate([fwd_lo, rev_lo]))
    fwd, rev = codes[:len(rows)], codes[len(rows):]
    present = np.zeros(n_keys, bool)
    present[fwd] = True
    dense = np.cumsum(present) - 1              # keys seen only as a reverse are not directions
    dirn = dense[fwd]
    reverse = np.full(int(present.sum()), -1, np.int64)
    reverse[dirn] = np.where(present[rev], dense[rev], -1)
    order = np.lexsort((rows, dirn))            # inside a direction: file order
    dirn, flags = dirn[order], c["tcp_flags"][order].astype(np.int64)
    extra = np.maximum(c["pkt_len"][order].astype(np.int64) - HEADERS, 0)
    opt = np.where(((flags & SYN) != 0) & (extra <= len(SYN_OPTIONS)) & (extra % 4 == 0), extra, 0)
    return _Directions(rows[order], dirn, reverse, np.r_[True, dirn[1:] != dirn[:-1]],
                       c["time"][order].astype(np.float64), flags, opt, extra - opt)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes in order of first appearance (pandas' hash factorise: O(n), no sort)."""
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), len(uniques)


def _epoch_starts(d: _Directions) -> tuple[np.ndarray, np.ndarray]:
    """(repeat, start): SYN/FIN retransmissions, and the packets that open a connection epoch."""
    same_as_prev = np.r_[False, (d.flags[1:] == d.flags[:-1]) & (d.payload[1:] == d.payload[:-1])]
    repeat = ((d.flags & (SYN | FIN)) != 0) & same_as_prev & ~d.first
    return repeat, d.first | (((d.flags & SYN) != 0) & ~repeat)


def _sequence(d: _Directions, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per sorted packet: its seq, the next seq expected after it (uint32), its epoch id, and the index of
    the segment it repeats (itself unless it is a repeat)."""
    repeat, starts = _epoch_starts(d)
    epoch = np.cumsum(starts) - 1
    isn = rng.integers(0, 2**32, size=int(epoch[-1]) + 1, dtype=np.uint64)
    advance = np.where(repeat, 0, d.payload + ((d.flags & SYN) != 0) + ((d.flags & FIN) != 0))
    total = np.cumsum(advance)
    before_epoch = (total - advance)[starts][epoch]          # bytes counted before the epoch's first packet
    nxt = isn[epoch] + (total - before_epoch).astype(np.uint64)
    own = nxt - advance.astype(np.uint64)
    original = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(own))))  # a repeat copies its segment
    return (own[original] & _MASK).astype(np.uint32), (nxt & _MASK).astype(np.uint32), epoch, original


def _last_reverse(d: _Directions) -> np.ndarray:
    """Per sorted packet: index of the reverse direction's last packet before it in the file (-1: none)."""
    n = np.int64(d.rows.max()) + 1
    rev = d.reverse[d.dirn]
    at = np.searchsorted(d.dirn * n + d.rows, np.maximum(rev, 0) * n + d.rows) - 1
    seen = (rev >= 0) & (at >= 0) & (d.dirn[np.maximum(at, 0)] == rev)
    return np.where(seen, at, -1)


def _reverse_ack(d: _Directions, seq: np.ndarray, nxt: np.ndarray, last_rev: np.ndarray) -> np.ndarray:
    """The reverse direction's next expected seq after its last packet earlier in the file; its first
    seq before it has sent anything (meaningless where there is no reverse: replaced by _peer_ack)."""
    starts = np.flatnonzero(d.first)
    first_seq = seq[starts[np.maximum(d.reverse[d.dirn], 0)]]
    return np.where(last_rev >= 0, nxt[np.maximum(last_rev, 0)], first_seq)


def _keepalive(d: _Directions, ack: np.ndarray, last_rev: np.ndarray) -> np.ndarray:
    """Pure ACKs that are keep-alive probes (module docstring); only where the reverse is in the table."""
    prev = np.maximum(np.arange(len(d.rows)) - 1, 0)
    quiet_since = np.maximum(d.time[prev], np.where(last_rev >= 0, d.time[np.maximum(last_rev, 0)], -np.inf))
    nothing_new = ack == ack[prev]
    return (d.has_reverse & ~d.first & (d.flags == ACK) & (d.payload == 0) & nothing_new
            & (d.time - quiet_since >= KEEPALIVE_IDLE_S))


def _peer_ack(d: _Directions, epoch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An imagined peer's stream for directions without a reverse in the table (module docstring)."""
    peer_isn = rng.integers(0, 2**32, size=int(epoch[-1]) + 1, dtype=np.uint64)
    pure = ((d.flags & ACK) != 0) & ((d.flags & (SYN | FIN | RST)) == 0) & (d.payload == 0)
    count = np.cumsum(pure)
    starts = np.r_[True, epoch[1:] != epoch[:-1]]
    in_epoch = count - (count - pure)[starts][epoch]         # pure ACKs so far in the epoch, this one included
    return ((peer_isn[epoch] + 1 + in_epoch.astype(np.uint64) * np.uint64(PEER_SEGMENT)) & _MASK).astype(np.uint32)
