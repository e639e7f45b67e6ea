"""ICMP type and code in the port columns (schema convention): read field by field against dpkt on real
captures, written as complete ICMP messages with valid checksums, kept by a write -> read round trip,
grouped by the flow meter, and translated from NetFlow (UGR16), Zeek and Argus flow records."""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from tsdata import packets_table, shared
from tracesynth.io import read_trace
from tracesynth.io.flowmeter import meter_flows
from tracesynth.io.icmp import counterpart, echo_fields, from_netflow_ports
from tracesynth.io.ipaddr import ip_to_uint32
from tracesynth.io.pcap import read_packets
from tracesynth.io.pcap_writer import write_pcap
from tracesynth.schema import PACKET_COLUMNS

#: Real captures with ICMP: echo request/reply pairs (dpkt's dns_icmp), port/host unreachables (afs,
#: nDPI, DHCP), and libtrace's sample with eight type/code pairs (echo, unreachable, time exceeded,
#: redirect, source quench, router advertisement/solicitation).
ICMP_CAPTURES = ["fixtures/debian-examples/python3-dpkt/dns_icmp.pcap", "fixtures/tcpdump/afs.pcap",
                 "fixtures/tcpdump/dhcp-rfc4388.pcap", "ndpi/whatsapp_login_call.pcap", "ndpi/anyconnect-vpn.pcap",
                 "fixtures/debian-examples/python3-libtrace/icmp-sample.pcap.gz"]
LIBTRACE = ICMP_CAPTURES[-1]


def _plain_pcap(path: Path, tmp_path: Path) -> Path:
    """dpkt reads no gzip: inflate (libtrace's sample is gzip-compressed twice)."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return path
    while data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    out = tmp_path / "plain.pcap"
    out.write_bytes(data)
    return out


def dpkt_icmp(path: Path) -> list[tuple[int, int, int, int, int]]:
    """(srcip, dstip, type, code, pkt_len) of every IPv4 ICMP first fragment, in file order, by dpkt."""
    rows = []
    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = dpkt.pcap.UniversalReader(fh)
        link = reader.datalink()
        for _, buf in reader:
            ip = dpkt.ethernet.Ethernet(buf).data if link == 1 else dpkt.sll.SLL(buf).data
            if isinstance(ip, dpkt.ip.IP) and ip.p == 1 and ip._flags_offset & 0x1FFF == 0:
                assert isinstance(ip.data, dpkt.icmp.ICMP)
                rows.append((int.from_bytes(ip.src, "big"), int.from_bytes(ip.dst, "big"), ip.data.type,
                             ip.data.code, ip.len))
    return rows


def _icmp_rows(table: pd.DataFrame) -> list[tuple[int, int, int, int, int]]:
    icmp = table[(table["proto"] == 1) & (table["off"] == 0)]
    return [tuple(map(int, r)) for r in icmp[["srcip", "dstip", "srcport", "dstport", "pkt_len"]].to_numpy()]


@pytest.mark.parametrize("name", ICMP_CAPTURES)
def test_type_and_code_read_into_the_ports_agree_with_dpkt(tmp_path, name):
    table = read_packets(shared(name)).table
    reference = dpkt_icmp(_plain_pcap(shared(name), tmp_path))
    assert len(reference) > 0
    assert _icmp_rows(table) == reference
    other = table[~table["proto"].isin([1, 6, 17])]
    assert (other["srcport"] == 0).all() and (other["dstport"] == 0).all()


def test_libtrace_sample_has_eight_type_codes():
    table = read_packets(shared(LIBTRACE)).table
    pairs = set(map(tuple, table.loc[table["proto"] == 1, ["srcport", "dstport"]].to_numpy().tolist()))
    assert pairs == {(0, 0), (3, 3), (4, 0), (5, 1), (8, 0), (9, 0), (10, 0), (11, 0)}


def _written_icmp(path: Path, linktype: str) -> list[tuple[dpkt.ip.IP, bytes]]:
    out = []
    with open(path, "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            raw = buf[14:] if linktype == "ethernet" else buf
            ip = dpkt.ip.IP(raw)
            if ip.p == 1:
                out.append((ip, raw[20:]))
    return out


@pytest.mark.parametrize("name", ICMP_CAPTURES)
@pytest.mark.parametrize("linktype", ["raw", "ethernet"])
def test_write_read_round_trip_keeps_type_and_code(tmp_path, name, linktype):
    table = read_packets(shared(name)).table
    back = read_packets(write_pcap(table, tmp_path / "out.pcap", linktype=linktype)).table
    for col in PACKET_COLUMNS:
        if col != "time":
            np.testing.assert_array_equal(back[col], table[col], err_msg=col)


@pytest.mark.parametrize("linktype", ["raw", "ethernet"])
def test_written_icmp_messages_are_complete_with_valid_checksums(tmp_path, linktype):
    table = pd.concat([read_packets(shared(n)).table for n in ICMP_CAPTURES], ignore_index=True)
    out = write_pcap(table, tmp_path / "out.pcap", linktype=linktype)
    icmp = table[(table["proto"] == 1) & (table["off"] == 0)]
    written = _written_icmp(out, linktype)
    assert len(written) == len(icmp) > 60
    for (ip, message), row in zip(written, icmp.itertuples(index=False)):
        assert isinstance(ip.data, dpkt.icmp.ICMP)
        assert (ip.data.type, ip.data.code) == (row.srcport, row.dstport)
        assert len(message) == row.pkt_len - 20  # header + zero payload up to the IP total length
        assert dpkt.in_cksum(message) == 0 and message[8:] == bytes(len(message) - 8)
        if row.srcport not in (0, 8):  # one-way messages: the 4 bytes after the checksum are 0
            assert message[4:8] == bytes(4)


def test_echo_requests_and_replies_share_identifier_and_count_sequence(tmp_path):
    table = read_packets(shared("fixtures/debian-examples/python3-dpkt/dns_icmp.pcap")).table
    written = _written_icmp(write_pcap(table, tmp_path / "out.pcap", seed=7), "raw")
    echo = [(ip.src, ip.dst, ip.data.type, ip.data.data.id, ip.data.data.seq) for ip, _ in written]
    requests = [e for e in echo if e[2] == 8]
    replies = [e for e in echo if e[2] == 0]
    assert len(requests) == 12 and len(replies) == 10
    for src, dst, _, ident, seq in replies:  # each reply matches a request: same id, same sequence number
        assert (dst, src, 8, ident, seq) in requests
    for stream in {(s, d) for s, d, *_ in requests}:
        seqs = [q for s, d, _, _, q in requests if (s, d) == stream]
        assert seqs == list(range(1, len(seqs) + 1))
    again = write_pcap(table, tmp_path / "again.pcap", seed=7).read_bytes()
    other = write_pcap(table, tmp_path / "other.pcap", seed=8).read_bytes()
    assert again == (tmp_path / "out.pcap").read_bytes() and other != again


def test_echo_fields_only_for_identifier_types():
    src = np.array([1, 2, 1, 1, 3], np.uint32)
    dst = np.array([2, 1, 2, 2, 1], np.uint32)
    kind = np.array([8, 0, 8, 3, 13], np.uint16)
    ident, seq = echo_fields(src, dst, kind, np.ones(5, bool), seed=1)
    assert ident[0] == ident[1] == ident[2] and ident[3] == 0 and seq.tolist() == [1, 1, 2, 0, 1]


# ------------------------------------------------------------------------------------------- flow meter
A, B, R = (int(x) for x in ip_to_uint32(["10.0.0.1", "10.0.0.2", "10.0.0.254"]))


_packets = packets_table


def test_flow_meter_keys_icmp_on_type_and_code():
    packets = _packets([
        (0.0, A, B, 8, 0, 1, 84), (0.1, B, A, 0, 0, 1, 84), (1.0, A, B, 8, 0, 1, 84), (1.1, B, A, 0, 0, 1, 84),
        (2.0, R, A, 3, 1, 1, 56), (3.0, R, A, 3, 3, 1, 56), (4.0, R, A, 3, 3, 1, 56), (5.0, R, A, 11, 0, 1, 56),
    ])
    uni = meter_flows(packets)
    assert uni[["srcip", "srcport", "dstport", "pkt"]].values.tolist() == [
        [A, 8, 0, 2], [B, 0, 0, 2], [R, 3, 1, 1], [R, 3, 3, 2], [R, 11, 0, 1]]
    bi = meter_flows(packets, bidirectional=True)  # echo request + reply: one session
    assert bi[["srcip", "srcport", "dstport", "pkt"]].values.tolist() == [
        [A, 8, 0, 4], [R, 3, 1, 1], [R, 3, 3, 2], [R, 11, 0, 1]]


def test_flow_meter_on_real_icmp():
    table = read_packets(shared(LIBTRACE)).table
    icmp = table[table["proto"] == 1]
    flows = meter_flows(table, idle_timeout=1e9, active_timeout=1e9)
    f_icmp = flows[flows["proto"] == 1]
    assert len(f_icmp) == len(icmp.drop_duplicates(["srcip", "dstip", "srcport", "dstport"]))
    assert f_icmp["pkt"].sum() == len(icmp)
    dns = read_packets(shared("fixtures/debian-examples/python3-dpkt/dns_icmp.pcap")).table
    uni = meter_flows(dns[dns["proto"] == 1])
    bi = meter_flows(dns[dns["proto"] == 1], bidirectional=True)
    pairs = {frozenset(p) for p in dns.loc[dns["proto"] == 1, ["srcip", "dstip"]].to_numpy().tolist()}
    assert len(bi) == len(pairs) < len(uni) and set(bi["srcport"]) == {8}


def test_counterparts():
    assert counterpart(np.array([1, 1, 1, 58, 58]), np.array([8, 0, 3, 128, 1])).tolist() == [0, 8, -1, 129, -1]


# ------------------------------------------------------------------------------------------ flow readers
def test_ugr16_netflow_dstport_is_type_times_256_plus_code():
    trace = read_trace(shared("ugr16/ugr16-1k.csv"))
    raw = pd.read_csv(shared("ugr16/ugr16-1k.csv"))
    raw_icmp = raw[raw["proto"] == "ICMP"]
    t = trace.table
    icmp = t[t["proto"] == 1]
    assert len(icmp) == len(raw_icmp) == 267
    got = icmp.groupby(["srcport", "dstport"]).size().to_dict()
    # nfdump's 769, 771, 2816: host unreachable 3/1, port unreachable 3/3, time exceeded 11/0
    assert got == {(0, 0): 261, (3, 1): 3, (3, 3): 2, (11, 0): 1}
    assert trace.report.notes["icmp_type_code_from_dstport"] == 6
    assert (t.loc[t["proto"] == 6, "srcport"] > 0).any()  # TCP/UDP ports untouched


def test_netflow_translation_leaves_the_convention_alone():
    proto = np.array([1, 1, 1, 6, 58])
    sport, dport, n = from_netflow_ports(proto, np.array([0, 3, 0, 0, 0]), np.array([2048, 1, 0, 2048, 33024]))
    assert sport.tolist() == [8, 3, 0, 0, 129] and dport.tolist() == [0, 1, 0, 2048, 0] and n == 2


def test_tracesynth_flow_csv_keeps_icmp_type_code(tmp_path):
    path = tmp_path / "flows.csv"
    path.write_text("ts,td,srcip,dstip,srcport,dstport,proto,pkt,byt\n"
                    "1500000000,0,10.0.0.254,10.0.0.1,3,1,1,1,56\n1500000001,1,10.0.0.1,10.0.0.2,8,0,1,5,420\n")
    t = read_trace(path).table
    assert t[["srcport", "dstport"]].values.tolist() == [[3, 1], [8, 0]]


def test_zeek_icmp_resp_p_is_code_or_counterpart(tmp_path):
    header = ("ts,uid,id.orig_h,id.orig_p,id.resp_h,id.resp_p,proto,service,duration,orig_bytes,resp_bytes,"
              "conn_state,local_orig,local_resp,missed_bytes,history,orig_pkts,orig_ip_bytes,resp_pkts,"
              "resp_ip_bytes,tunnel_parents,label,detailed-label\n")
    rows = ("1538636585.6,C1,10.0.0.1,8,10.0.0.2,0,icmp,,3.0,192,192,OTH,,,0,,4,336,4,336,,Benign,-\n"
            "1538636586.6,C2,10.0.0.254,3,10.0.0.1,1,icmp,,0,0,0,OTH,,,0,,1,56,0,0,,Benign,-\n")
    path = tmp_path / "conn.csv"
    path.write_text(header + rows)
    t = read_trace(path).table
    got = sorted(t[["srcip", "srcport", "dstport", "pkt"]].values.tolist())
    assert got == sorted([[A, 8, 0, 4], [B, 0, 0, 4], [R, 3, 1, 1]])  # reply side: echo reply, type 0


def test_zeek_logs_on_shared_data_keep_one_way_codes():
    t = read_trace(shared("flows/4sics-geeklounge-conn.log")).table
    icmp = t[t["proto"] == 1]
    assert set(map(tuple, icmp[["srcport", "dstport"]].to_numpy().tolist())) == {(11, 0), (3, 0)}
    iot = read_trace(shared("flows/iot23-ctu-malware-21-1.csv")).table
    assert iot.loc[iot["proto"] == 1, ["srcport", "dstport"]].values.tolist() == [[3, 0]]
