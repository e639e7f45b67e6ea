"""Flow records as other tools write them (issue 14): CICFlowMeter's tiny negative durations, NetShare's
float counters, packet CSVs from other generators. Every file is made in the test."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.cli import main
from tracesynth.data import sample_path
from tracesynth.encoders.numeric import NumericEncoder
from tracesynth.errors import UserError
from tracesynth.evaluate import evaluate_paths
from tracesynth.io import read_trace
from tracesynth.io.ipaddr import _parse_ascii, parse_ipv4, parse_ipv4_text, uint32_to_ip
from tracesynth.io.tables import TD_TOLERANCE

HEADER = "ts,td,srcip,dstip,srcport,dstport,proto,pkt,byt\n"


def _row(td: str, ts: str = "1500000000.5") -> str:
    return f"{ts},{td},10.0.0.1,10.0.0.2,1234,80,6,2,168\n"


def test_tiny_negative_durations_are_clipped_and_counted(tmp_path):
    path = tmp_path / "cic.csv"
    path.write_text(HEADER + _row("-0.000001") + _row("0.5", "1500000001") + _row(f"{-TD_TOLERANCE}", "1500000002"))
    trace = read_trace(path)
    assert trace.table["td"].tolist() == [0.0, 0.5, 0.0]
    assert trace.report.notes["negative_durations_clipped"] == 2
    assert any("2 flow duration(s)" in w for w in trace.report.warnings)


def test_clearly_negative_duration_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text(HEADER + _row("0.5") + _row("-2", "1500000001"))
    with pytest.raises(UserError, match=r"broken.csv: line 3, column 'td': duration -2 s is negative"):
        read_trace(path)


CIC_MAPPING = {"ts": "Timestamp", "srcip": "Src IP", "dstip": "Dst IP", "srcport": "Src Port",
               "dstport": "Dst Port", "proto": "Protocol", "td": "Flow Duration", "td_unit": "us",
               "pkt": "Tot Fwd Pkts", "byt": "TotLen Fwd Pkts"}


def test_cicflowmeter_export_with_its_repeated_column_and_negative_microseconds(tmp_path):
    """CICFlowMeter writes `Fwd Header Length` twice (unused here, so harmless) and durations of -1 µs."""
    path = tmp_path / "cic.csv"
    path.write_text("Flow ID,Src IP,Dst IP,Src Port,Dst Port,Protocol,Timestamp,Flow Duration,Tot Fwd Pkts,"
                    "TotLen Fwd Pkts,Fwd Header Length,Fwd Header Length\n"
                    "f1,10.0.0.1,10.0.0.2,1234,80,6,1500000000,-1,2,120,40,40\n"
                    "f2,10.0.0.1,10.0.0.2,1235,80,6,1500000001,250000,3,180,60,60\n")
    trace = read_trace(path, mapping=CIC_MAPPING)
    assert trace.table["td"].tolist() == [0.0, 0.25] and trace.report.notes["negative_durations_clipped"] == 1
    dup = dict(CIC_MAPPING, pkt="Fwd Header Length")  # now the repeated column is read: ambiguous
    with pytest.raises(UserError, match=r"line 1: column 'Fwd Header Length' appears twice \(columns 11 and 12\)"):
        read_trace(path, mapping=dup)


def test_foreign_formats_clip_in_their_own_duration_column(tmp_path):
    path = tmp_path / "argus.csv"
    path.write_text("StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,TotPkts,TotBytes\n"
                    "1500000000.5,-0.000002,tcp,10.0.0.1,1234,->,10.0.0.2,80,2,120\n"
                    "1500000001.5,-0.5,tcp,10.0.0.1,1234,->,10.0.0.2,80,2,120\n")
    with pytest.raises(UserError, match=r"line 3, column 'Dur'"):
        read_trace(path)
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")
    trace = read_trace(path)
    assert trace.table["td"].tolist() == [0.0] and trace.report.notes["negative_durations_clipped"] == 1


def test_fitting_a_table_with_clipped_durations_never_sees_negatives(tmp_path):
    """The encoders' log1p on td sees only what the reader returns: no negative survives reading."""
    path = tmp_path / "cic.csv"
    rng = np.random.default_rng(0)
    rows = [_row(f"{-rng.uniform(0, 1e-4):.6f}", f"{1500000000 + i}") for i in range(20)]
    path.write_text(HEADER + "".join(rows))
    assert (read_trace(path).table["td"] >= 0).all()


# --- other generators' outputs --------------------------------------------------------------------------

NETSHARE_PACKETS = "srcip,dstip,srcport,dstport,proto,pkt_len,tos,id,flag,off,ttl,time\n"


def _netshare_packet_csv(tmp_path, n: int = 50):
    """The bundled sample written as NetShare's packet CSV: uint32 IPs (some as floats), protocol names,
    float fields, microsecond times, no tcp_flags."""
    t = read_trace(sample_path()).table.head(n)
    names = {6: "TCP", 17: "UDP", 1: "ICMP"}
    lines = [NETSHARE_PACKETS]
    for r in t.itertuples():
        lines.append(f"{float(r.srcip)!r},{r.dstip},{float(r.srcport)!r},{r.dstport},{names[r.proto]},"
                     f"{r.pkt_len + 0.2!r},{float(r.tos)!r},{r.id},{r.flag},{r.off},{float(r.ttl)!r},"
                     f"{round(r.time * 1e6)}\n")
    path = tmp_path / "netshare-packets.csv"
    path.write_text("".join(lines))
    return path, t


def test_netshare_packet_csv_reads_like_the_capture(tmp_path):
    path, original = _netshare_packet_csv(tmp_path)
    trace = read_trace(path)
    assert trace.kind == "packets" and trace.report.format == "netshare-packets-csv"
    table = trace.table
    for col in ("srcip", "dstip", "srcport", "dstport", "proto", "pkt_len", "tos", "id", "flag", "off", "ttl"):
        np.testing.assert_array_equal(table[col].to_numpy(), original[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(table["time"], original["time"], rtol=0, atol=1e-6)
    assert (table["tcp_flags"] == 0).all() and trace.report.notes["absent_columns"] == ["tcp_flags"]
    assert trace.report.notes["rounded_values"] == {"pkt_len": len(original)}


def test_inspect_format_netshare_on_the_packet_csv(tmp_path, capsys):
    path, original = _netshare_packet_csv(tmp_path)
    assert main(["inspect", str(path), "--format", "netshare", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "packets" and summary["records"] == len(original)


def test_packet_csv_with_a_subset_of_the_columns(tmp_path):
    path = tmp_path / "few.csv"
    path.write_text("time,srcip,dstip,srcport,dstport,proto,pkt_len,ttl\n"
                    "1.5,10.0.0.1,10.0.0.2,1234,80,6,60,64\n2.5,10.0.0.2,10.0.0.1,80,1234,6,1500,63\n")
    trace = read_trace(path)
    assert trace.report.format == "partial-packets-csv"
    assert trace.report.notes["absent_columns"] == ["tos", "id", "flag", "off", "tcp_flags"]
    assert trace.table["ttl"].tolist() == [64, 63] and trace.table["time"].tolist() == [1.5, 2.5]
    path.write_text("time,srcip,dstip,proto,pkt_len\n1.5,10.0.0.1,10.0.0.2,6,60\n")  # ports are required
    with pytest.raises(UserError, match="not a known flow-record format"):
        read_trace(path)


def test_netshare_flow_csv_with_float_counters_is_rounded_and_counted(tmp_path):
    path = tmp_path / "netshare-flows.csv"
    path.write_text("srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n"
                    "167772161,167772162,1234,80,TCP,1500000000500000,0.5,219.949,1734.4376,benign\n"
                    "167772161,167772162,1234,80,UDP,1500000001500000,0.5,3,120,attack\n")
    trace = read_trace(path)
    assert trace.table["pkt"].tolist() == [220, 3] and trace.table["byt"].tolist() == [1734, 120]
    assert trace.report.notes["rounded_values"] == {"pkt": 1, "byt": 1}


def test_evaluate_compares_netshare_packets_with_the_capture(tmp_path):
    """What `benchmark --score` relies on: a NetShare output scored against the real capture, leaving
    out tcp_flags (absent from the NetShare side, not zero)."""
    path, _ = _netshare_packet_csv(tmp_path, n=400)
    result = evaluate_paths(sample_path(), path, downstream=False, json_out=tmp_path / "scores.json")
    assert result["kind"] == "packets" and result["rows"]["synthetic"] == 400
    assert "tcp_flags" not in result["fidelity"]["jsd"] and "flag" in result["fidelity"]["jsd"]
    assert (tmp_path / "scores.json").exists()


def test_log1p_encoder_refuses_negatives_as_a_user_error():
    """A table handed to the Python API without reading (no clipping) gets a fixable message, not a bug."""
    with pytest.raises(UserError, match=r"td: log1p needs non-negative values, found -2; clip the column"):
        NumericEncoder(log1p=True, name="td").fit(np.array([-2.0, 1.0]))


# --- IPv4 parsing: the fast byte-matrix parser accepts exactly what the reference regex accepts ----------

_ip_text = st.one_of(
    st.text(alphabet="0123456789.", max_size=23),
    st.text(alphabet="0123456789. :ax-", max_size=30),
    st.tuples(st.text(" ", max_size=14), st.integers(0, 2**32 - 1)).map(lambda t: f"{t[0]}{t[1]}{t[0]}"),
    st.integers(0, 2**32 - 1).map(lambda v: str(uint32_to_ip([v])[0])),
    st.integers(0, 2**33).map(lambda v: f"{v}" if v % 3 else f"{v}.{'0' * (v % 7)}"),
    st.tuples(*[st.integers(0, 999)] * 4).map(lambda t: ".".join(map(str, t))))


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_ip_text, min_size=1, max_size=20))
def test_fast_ipv4_parser_matches_the_reference(texts):
    arr = np.asarray(texts, dtype=object)
    fast, fast_bad = parse_ipv4(arr)
    ref, ref_bad = parse_ipv4_text(arr)
    if all(len(t) < 24 for t in texts):
        assert _parse_ascii(arr) is not None  # the fast path really ran
    np.testing.assert_array_equal(fast_bad, ref_bad)
    np.testing.assert_array_equal(fast, ref)
