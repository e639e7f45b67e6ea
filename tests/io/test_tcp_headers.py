"""TCP sequence / acknowledgement / window numbers the pcap writer synthesises (io/tcp_state.py), checked
field by field on real captures read back with dpkt, against a plain re-statement of the documented rules
(docs/packet-formats.md, "TCP header"), packet by packet in file order."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import dpkt
import numpy as np
import pytest

from tsdata import shared
from tracesynth.io import read_trace
from tracesynth.io.pcap_writer import write_pcap
from tracesynth.io.tcp_state import KEEPALIVE_IDLE_S, WINDOWS

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
BIDIRECTIONAL = ["ndpi/WebattackXSS.pcap", "iot23/honeypot-4-1.pcap", "ndpi/KakaoTalk_talk.pcap"]


@dataclass
class Seg:
    time: float
    key: tuple
    seq: int
    ack: int
    flags: int
    win: int
    payload: int
    hdr: int


def _segments(path) -> list[Seg]:
    """Every TCP first fragment of a written pcap (raw IP), as dpkt parses it."""
    out = []
    with open(path, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ip.IP(buf)
            if ip.p != 6 or ip.offset != 0 or ip.len < 40:
                continue
            tcp = ip.data
            out.append(Seg(ts, (ip.src, ip.dst, tcp.sport, tcp.dport), tcp.seq, tcp.ack, tcp.flags, tcp.win,
                           ip.len - 20 - 4 * tcp.off, 4 * tcp.off))
    return out


def _advance(s: Seg) -> int:
    return s.payload + bool(s.flags & SYN) + bool(s.flags & FIN)


def _is_repeat(s: Seg, prev: Seg | None) -> bool:
    return prev is not None and bool(s.flags & (SYN | FIN)) and (s.flags, s.payload) == (prev.flags, prev.payload)


def _written(tmp_path, name, rows=None, **options):
    table = read_trace(shared(name)).table
    table = table if rows is None else table.iloc[:rows]
    return table, write_pcap(table, tmp_path / "out.pcap", **options)


def _reverse(key: tuple) -> tuple:
    return key[1], key[0], key[3], key[2]


def _walk(segs: list[Seg]):
    """Yield (segment, what it is, the reverse's next seq or None) in file order, asserting the seq rules:
    a connection opens with a fresh ISN; a repeated SYN / FIN copies its segment; a keep-alive (pure ACK)
    steps back one; every other segment starts where its direction's last one ended."""
    last: dict[tuple, Seg] = {}
    nxt: dict[tuple, int] = {}
    for s in segs:
        prev = last.get(s.key)
        if prev is None or (s.flags & SYN and not _is_repeat(s, prev)):
            what = "open"
        elif _is_repeat(s, prev):
            assert (s.seq, s.ack) == (prev.seq, prev.ack), s
            what = "repeat"
        elif s.seq == (nxt[s.key] - 1) % 2**32:
            assert s.flags == ACK and s.payload == 0, s
            what = "keepalive"
        else:
            assert s.seq == nxt[s.key], (s, nxt[s.key])
            what = "advance"
        yield s, what, nxt.get(_reverse(s.key))
        if what in ("open", "advance"):
            nxt[s.key] = (s.seq + _advance(s)) % 2**32
        last[s.key] = s


@pytest.mark.parametrize("name", ["caida/caida-10k.pcapng", *BIDIRECTIONAL])
def test_seq_advances_by_payload_syn_and_fin_count_one(tmp_path, name):
    _, out = _written(tmp_path, name)
    segs = _segments(out)
    kinds = [what for _, what, _ in _walk(segs)]
    assert kinds.count("advance") > 0.5 * len(segs)


@pytest.mark.parametrize("name", BIDIRECTIONAL)
def test_ack_is_the_reverse_directions_next_sequence_number(tmp_path, name):
    _, out = _written(tmp_path, name)
    segs = _segments(out)
    keys = {s.key for s in segs}
    first_seq: dict[tuple, int] = {}
    for s in segs:
        first_seq.setdefault(s.key, s.seq)
    last_syn: dict[tuple, Seg] = {}
    followed = handshakes = 0
    for s, what, rev_next in _walk(segs):
        rev = _reverse(s.key)
        if not s.flags & ACK:
            assert s.ack == 0
        elif rev in keys and what != "repeat":
            assert s.ack == (first_seq[rev] if rev_next is None else rev_next), s
            followed += 1
            if s.flags & SYN and rev in last_syn:
                assert s.ack == (last_syn[rev].seq + 1) % 2**32   # SYN-ACK acknowledges the SYN's one
                handshakes += 1
        if s.flags & SYN:
            last_syn[s.key] = s
    assert followed > 0.5 * len(segs) and handshakes > 0


def test_without_a_reverse_pure_acks_never_repeat_an_ack(tmp_path):
    """On a backbone tap most flows are one direction: an imagined peer keeps every pure ACK new, so
    none reads as a duplicate ACK."""
    _, out = _written(tmp_path, "caida/caida-10k.pcapng")
    segs = _segments(out)
    keys = {s.key for s in segs}
    last: dict[tuple, Seg] = {}
    pure_pairs = 0
    for s in segs:
        prev = last.get(s.key)
        one_way = _reverse(s.key) not in keys
        pure = s.flags == ACK and s.payload == 0
        if one_way and pure and prev is not None and prev.flags == ACK and prev.payload == 0:
            assert s.ack != prev.ack
            pure_pairs += 1
        last[s.key] = s
    assert pure_pairs > 10


def test_windows_are_constant_per_direction_and_common_values(tmp_path):
    _, out = _written(tmp_path, "ndpi/WebattackXSS.pcap")
    wins: dict[tuple, set] = {}
    for s in _segments(out):
        wins.setdefault(s.key, set()).add(s.win)
    assert all(len(w) == 1 for w in wins.values())
    assert set().union(*wins.values()) <= set(WINDOWS.tolist())


def test_syns_carry_their_option_bytes_and_no_payload(tmp_path):
    table, out = _written(tmp_path, "iot23/honeypot-4-1.pcap")
    syns = [s for s in _segments(out) if s.flags & SYN]
    assert syns and all(s.payload == 0 and s.hdr > 20 for s in syns)   # real SYNs here are 44 or 52 bytes


def test_keepalives_step_back_one_after_idle(tmp_path):
    """The honeypot's IoT devices keep idle connections alive: those probes are written as keep-alives,
    each at least KEEPALIVE_IDLE_S after its connection's previous packet."""
    _, out = _written(tmp_path, "iot23/honeypot-4-1.pcap")
    last_time: dict[frozenset, float] = {}
    alive = 0
    for s, what, _ in _walk(_segments(out)):
        conn = frozenset([s.key, _reverse(s.key)])
        if what == "keepalive":
            assert s.time - last_time[conn] >= KEEPALIVE_IDLE_S - 1e-6
            alive += 1
        last_time[conn] = s.time
    assert alive > 1000


def test_same_seed_same_bytes_other_seed_other_numbers_same_table(tmp_path):
    table = read_trace(shared("ndpi/KakaoTalk_talk.pcap")).table
    a = write_pcap(table, tmp_path / "a.pcap").read_bytes()
    assert write_pcap(table, tmp_path / "b.pcap").read_bytes() == a
    c = write_pcap(table, tmp_path / "c.pcap", seed=7)
    assert c.read_bytes() != a and len(c.read_bytes()) == len(a)
    np.testing.assert_array_equal(read_trace(c).table.to_numpy(), read_trace(tmp_path / "a.pcap").table.to_numpy())


def test_tcp_checksums_cover_seq_ack_window_and_options(tmp_path):
    _, out = _written(tmp_path, "iot23/honeypot-4-1.pcap")
    n = 0
    with open(out, "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ip.IP(buf)
            if ip.p == 6 and ip.offset == 0 and ip.len >= 40:
                head = buf[20:20 + 4 * ip.data.off]
                pseudo = ip.src + ip.dst + struct.pack(">BBH", 0, 6, ip.len - 20)
                assert dpkt.in_cksum(pseudo + head) == 0
                n += 1
    assert n > 5_000


def test_convert_takes_the_writers_seed(tmp_path, capsys):
    from tracesynth.cli import main

    src = str(shared("ndpi/synscan.pcap"))
    outs = [tmp_path / f"{i}.pcap" for i in range(3)]
    for out, seed in zip(outs, ("5", "5", "6")):
        assert main(["convert", src, str(out), "--tcp-seed", seed]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes() != outs[2].read_bytes()
    assert main(["convert", src, str(tmp_path / "t.csv"), "--tcp-seed", "5"]) == 2
    assert "--tcp-seed only apply to .pcap output" in capsys.readouterr().err
