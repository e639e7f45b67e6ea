"""Flow-record readers on the real flow files, plus tiny hand-written Argus / generic / JSON files."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tsdata import shared
from tracesynth.errors import UserError
from tracesynth.io import read_trace
from tracesynth.io.ipaddr import ip_to_uint32
from tracesynth.io.netflow import parse_mapping, read_flow_records
from tracesynth.schema import FLOW_COLUMNS


def _ip(text: str) -> int:
    return int(ip_to_uint32([text])[0])


def test_netshare_ugr16_known_values(ugr16_1k):
    trace = read_trace(ugr16_1k)
    t = trace.table
    assert trace.report.format == "netshare" and len(t) == 1000
    assert {c: t[c].dtype for c in FLOW_COLUMNS} == FLOW_COLUMNS
    first = t[(t["srcip"] == 1730436467) & (t["dstip"] == 719036359)].iloc[0]
    assert first["ts"] == pytest.approx(1458298072.364, abs=1e-6)  # 1458298072364000 µs
    assert first["td"] == pytest.approx(305.636) and first["proto"] == 1
    assert (first["pkt"], first["byt"], first["label"]) == (62, 1736, "background")
    with open(ugr16_1k) as fh:
        rows = list(csv.DictReader(fh))
    assert t["byt"].sum() == sum(int(r["byt"]) for r in rows)
    assert (t["ts"].diff().dropna() >= 0).all()


def test_ndpi_flows_skips_ipv6_with_count():
    trace = read_trace(shared("flows/ndpi-flows.csv"))
    assert trace.report.skipped == {"ipv6": 310}
    assert len(trace.table) == 7166
    assert trace.table["ts"].max() < 2e9  # µs were detected


def _zeek_rows(path):
    with open(path) as fh:
        lines = [ln.rstrip("\n") for ln in fh]
    fields = next(ln for ln in lines if ln.startswith("#fields")).split("\t")[1:]
    return fields, [dict(zip(fields, ln.split("\t"))) for ln in lines if not ln.startswith("#")]


def _count(value: str) -> int:
    return 0 if value == "-" else int(value)


def test_zeek_tsv_splits_sessions():
    path = shared("flows/4sics-geeklounge-conn.log")
    trace = read_trace(path)
    _, rows = _zeek_rows(path)
    orig = sum(1 for r in rows if _count(r["orig_pkts"]) > 0)
    resp = sum(1 for r in rows if _count(r["resp_pkts"]) > 0)
    assert trace.report.format == "zeek"
    assert trace.report.notes["sessions"] == len(rows) == 12444
    assert len(trace.table) == orig + resp
    t = trace.table
    assert t["pkt"].sum() == sum(_count(r["orig_pkts"]) + _count(r["resp_pkts"]) for r in rows)
    assert t["byt"].sum() == sum(_count(r["orig_ip_bytes"]) + _count(r["resp_ip_bytes"]) for r in rows)
    # the responder side reverses the 5-tuple of a session with replies
    r = next(r for r in rows if _count(r["resp_pkts"]) > 0 and r["proto"] == "tcp")
    rev = t[(t["srcip"] == _ip(r["id.resp_h"])) & (t["srcport"] == int(r["id.resp_p"]))
            & (t["dstip"] == _ip(r["id.orig_h"])) & (t["dstport"] == int(r["id.orig_p"]))
            & (np.abs(t["ts"] - float(r["ts"])) < 1e-6)]
    assert len(rev) == 1 and rev["pkt"].iloc[0] == int(r["resp_pkts"])


def test_zeek_json_matches_tsv(tmp_path):
    path = shared("flows/4sics-geeklounge-conn.log")
    fields, rows = _zeek_rows(path)
    head = rows[:200]
    numeric = {"ts", "duration", "id.orig_p", "id.resp_p", "orig_pkts", "orig_ip_bytes", "resp_pkts",
               "resp_ip_bytes", "orig_bytes", "resp_bytes", "missed_bytes"}
    with open(tmp_path / "conn.json", "w") as fh:
        for r in head:  # Zeek's JSON writer leaves unset fields out
            obj = {k: (float(v) if k in numeric else v) for k, v in r.items() if v != "-"}
            fh.write(json.dumps(obj) + "\n")
    tsv = tmp_path / "conn.log"
    with open(path) as src, open(tsv, "w") as dst:
        lines = src.readlines()
        header = [ln for ln in lines if ln.startswith("#") and not ln.startswith("#close")]
        dst.writelines(header + [ln for ln in lines if not ln.startswith("#")][:200])
    from_json, from_tsv = read_trace(tmp_path / "conn.json"), read_trace(tsv)
    assert from_json.report.format == "zeek-json"
    np.testing.assert_allclose(from_json.table["ts"], from_tsv.table["ts"], rtol=0, atol=1e-6)
    for col in ("srcip", "dstip", "srcport", "dstport", "proto", "pkt", "byt"):
        np.testing.assert_array_equal(from_json.table[col].to_numpy(), from_tsv.table[col].to_numpy())


def test_iot23_zeek_csv_with_labels():
    trace = read_trace(shared("flows/iot23-ctu-malware-20-1.csv"))
    t = trace.table
    assert trace.report.format == "zeek-csv"
    assert set(t["label"]) <= {"Benign", "Malicious"} and "detailed_label" in t.columns
    assert (t["pkt"] > 0).all()
    assert trace.report.notes["originator_records"] + trace.report.notes["responder_records"] == len(t)


ARGUS = """StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,SrcBytes,SrcPkts,Label
2011/08/10 09:46:53.047277,3.870728,udp,147.32.84.165,1025,  <->,147.32.80.9,53,CON,0,0,2,214,81,1,flow=Background
2011/08/10 09:46:54.000000,0.000000,icmp,147.32.84.165,0x0008,  ->,147.32.80.9,0x0000,ECO,0,,1,98,98,1,flow=Background
2011/08/10 09:46:55.500000,1.5,tcp,10.0.0.1,0x0303,  ->,10.0.0.2,80,FSA_,0,0,10,1000,1000,10,flow=From-Botnet
2011/08/10 09:46:56.000000,0.0,arp,0:1:2:3:4:5,,  who,ff:ff:ff:ff:ff:ff,,INT,,,1,60,60,1,flow=Background
2011/08/10 09:46:57.000000,0.1,udp,fe80::1,546,  ->,ff02::1:2,547,INT,0,0,1,100,100,1,flow=Background
"""


def test_argus_split_hex_ports_and_skips(tmp_path):
    path = tmp_path / "capture.binetflow"
    path.write_text(ARGUS)
    trace = read_trace(path)
    t = trace.table
    assert trace.report.format == "argus"
    assert trace.report.skipped["ipv6"] == 1 and trace.report.skipped["non-ip protocol arp"] == 1
    assert len(t) == 4  # udp split in two, icmp one side, tcp one side (0 reply packets dropped)
    assert t["ts"].iloc[0] == pytest.approx(1312969613.047277, abs=1e-6)  # 2011-08-10 09:46:53.047277 UTC
    reply = t[t["srcip"] == _ip("147.32.80.9")].iloc[0]
    assert (reply["srcport"], reply["dstport"], reply["pkt"], reply["byt"]) == (53, 1025, 1, 133)
    tcp = t[t["proto"] == 6].iloc[0]
    assert tcp["srcport"] == 0x0303 and tcp["label"] == "flow=From-Botnet"
    icmp = t[t["proto"] == 1].iloc[0]  # Sport 0x0008: type 8 (low byte), code 0: an echo request (state ECO)
    assert (icmp["srcport"], icmp["dstport"]) == (8, 0)


CTU13 = """StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,TotBytes,SrcBytes,Label
2011/08/10 09:46:53.047277,3.870728,udp,147.32.84.165,1025,  <->,147.32.80.9,53,CON,0,0,2,214,81,flow=Background
2011/08/10 09:46:54.000000,0.000000,icmp,147.32.84.165,0x0008,  ->,147.32.80.9,0x0000,ECO,0,,1,98,98,flow=Background
2011/08/10 09:46:55.500000,1.5,tcp,10.0.0.1,0x0303,  ->,10.0.0.2,80,FSA_,0,0,10,1000,1000,flow=From-Botnet
"""


def test_argus_without_src_packets_keeps_one_record(tmp_path):
    path = tmp_path / "ctu13.binetflow"
    path.write_text(CTU13)
    trace = read_trace(path)
    assert len(trace.table) == 3 and trace.table["pkt"].tolist() == [2, 1, 10]
    assert trace.table["byt"].tolist() == [214, 98, 1000]
    assert trace.report.warnings and "SrcPkts" in trace.report.warnings[0]


GENERIC = """when_ms,a,b,sp,dp,p,packets,octets,dur
1500000000123,10.0.0.1,10.0.0.2,1234,80,6,3,180,0.5
1500000001456,167772161,167772163,53,5353,UDP,1,60,0
"""


def test_generic_mapping_pairs_and_file(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(GENERIC)
    pairs = "ts=when_ms,srcip=a,dstip=b,srcport=sp,dstport=dp,proto=p,pkt=packets,byt=octets,td=dur"
    t = read_trace(path, mapping=parse_mapping(pairs)).table
    assert t["ts"].tolist() == [1500000000.123, 1500000001.456]  # ms detected by magnitude
    assert t["srcip"].tolist() == [_ip("10.0.0.1"), _ip("10.0.0.1")] and t["proto"].tolist() == [6, 17]
    (tmp_path / "m.json").write_text(json.dumps(dict(p.split("=") for p in pairs.split(",")) | {"ts_unit": "ms"}))
    t2 = read_trace(path, mapping=parse_mapping(str(tmp_path / "m.json"))).table
    assert t2.equals(t)


def test_generic_mapping_errors(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(GENERIC)
    with pytest.raises(UserError, match="not in the file: srcip=nope"):
        read_trace(path, mapping=parse_mapping("ts=when_ms,srcip=nope,dstip=b,proto=p,pkt=packets,byt=octets"))
    with pytest.raises(UserError, match="NAME=COLUMN"):
        parse_mapping(["ts=when_ms", "srcip"])
    path.write_text(GENERIC.replace("UDP", "WHAT"))
    with pytest.raises(UserError, match=r"export\.csv: line 3, column 'p': 'WHAT'"):
        read_trace(path, mapping=parse_mapping("ts=when_ms,srcip=a,dstip=b,proto=p,pkt=packets,byt=octets"))


def test_bad_row_names_file_line_and_column(tmp_path, ugr16_1k):
    lines = ugr16_1k.read_text().splitlines()
    lines[7] = ",".join(v if i != 7 else "many" for i, v in enumerate(lines[7].split(",")))
    path = tmp_path / "ugr.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"ugr\.csv: line 8, column 'pkt': 'many'"):
        read_flow_records(path)


def test_unknown_text_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is a shopping list\nmilk\n")
    with pytest.raises(UserError, match="not a known flow-record format"):
        read_trace(path)
