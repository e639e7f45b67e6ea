"""`tracesynth inspect / convert / flows`: in-process through cli.main and as a real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tracesynth.cli import main
from tracesynth.data import sample_path
from tracesynth.io import read_trace
from tracesynth.schema import PACKET_COLUMNS

EXE = Path(sys.executable).parent / "tracesynth"


def test_inspect_json_on_sample(capsys):
    assert main(["inspect", str(sample_path()), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "packets" and summary["records"] == 2000
    assert summary["hosts"] == 67 and summary["flows"] == 139
    assert summary["proto_mix"] == {"TCP": 1949, "UDP": 51}
    assert summary["top_dst_ports"][0] == {"port": 30303, "records": 1118}
    assert summary["span_s"] == pytest.approx(3.8615, abs=1e-3) and summary["skipped"] == {}


def test_inspect_table_for_humans(capsys, ugr16_1k):
    assert main(["inspect", str(ugr16_1k)]) == 0
    text = capsys.readouterr().out
    assert "netshare" in text and "1,000" in text and "background" in text


def test_convert_round_trip_and_flows(tmp_path, capsys):
    csv_path, pq_path, flows_path = tmp_path / "s.csv", tmp_path / "s.parquet", tmp_path / "f.csv"
    assert main(["convert", str(sample_path()), str(csv_path)]) == 0
    assert main(["convert", str(csv_path), str(pq_path)]) == 0
    original, back = read_trace(sample_path()).table, read_trace(pq_path).table
    canonical = list(PACKET_COLUMNS)
    assert back[canonical].equals(original[canonical])  # values and canonical dtypes
    pd.testing.assert_frame_equal(back[original.columns], original, check_dtype=False)  # extra columns too
    assert main(["flows", str(pq_path), str(flows_path), "--idle-timeout", "1", "--active-timeout", "2"]) == 0
    assert "2,000 packets ->" in capsys.readouterr().out
    flows = read_trace(flows_path).table
    assert flows["pkt"].sum() == 2000 and (flows["td"] <= 2).all()


def test_convert_flow_file_with_mapping(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("start,s,d,p,n,b\n1500000000.5,10.0.0.1,10.0.0.2,icmp,2,168\n")
    out = tmp_path / "out.csv"
    assert main(["convert", str(src), str(out), "-m", "ts=start,srcip=s,dstip=d", "-m", "proto=p,pkt=n,byt=b"]) == 0
    assert out.read_text().splitlines() == ["ts,td,srcip,dstip,srcport,dstport,proto,pkt,byt",
                                            "1500000000.500000000,0.000000000,10.0.0.1,10.0.0.2,0,0,1,2,168"]


def test_convert_to_pcap_reads_back(tmp_path):
    out = tmp_path / "s.pcap"
    assert main(["convert", str(sample_path()), str(out), "--link-type", "ethernet", "--ns"]) == 0
    original, back = read_trace(sample_path()).table, read_trace(out).table
    for col in ("time", "srcip", "dstip", "srcport", "dstport", "proto", "pkt_len", "ttl", "tcp_flags"):
        assert (back[col].to_numpy() == original[col].to_numpy()).all(), col


def _bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("dear diary,\ntoday I captured no packets\n")
    (tmp_path / "ab.csv").write_text("a,b\n1,2\n")
    sample = str(sample_path())
    return {
        "missing file": ["inspect", str(tmp_path / "nope.pcap")],
        "empty file": ["inspect", str(tmp_path / "empty.pcap")],
        "not a trace": ["convert", str(tmp_path / "notes.txt"), str(tmp_path / "o.csv")],
        "unknown suffix": ["convert", sample, str(tmp_path / "o.xlsx")],
        "bad mapping": ["inspect", str(tmp_path / "ab.csv"), "--mapping", "ts=a,srcip"],
        "mapping to absent column": ["inspect", str(tmp_path / "ab.csv"), "-m",
                                     "ts=a,srcip=b,dstip=b,proto=x,pkt=a,byt=a"],
        "flows of flow records": ["flows", str(tmp_path / "ab.csv"), str(tmp_path / "f.csv"), "-"],
        "option out of range": ["generate", str(tmp_path), "--out", str(tmp_path / "o.csv"), "--count", "-1"],
        "unknown option": ["inspect", sample, "--colour"],
        "missing argument": ["convert", sample],
    }


def test_user_mistakes_exit_2_in_process(tmp_path, capsys):
    for case, argv in _bad_inputs(tmp_path).items():
        assert main(argv[:-1] if argv[-1] == "-" else argv) == 2, case
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err, (case, err)


@pytest.mark.skipif(not EXE.exists(), reason="tracesynth console script not installed in this environment")
def test_user_mistakes_subprocess(tmp_path):
    """The installed console script: exit code 2, one `error:` line on stderr, nothing on stdout."""
    cases = _bad_inputs(tmp_path)
    for case in ("missing file", "empty file", "not a trace", "unknown suffix", "bad mapping", "unknown option"):
        proc = subprocess.run([str(EXE), *cases[case]], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (case, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr, case
        assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1, \
            (case, proc.stderr)


def test_cli_lets_openmp_threads_sleep_unless_told_otherwise(monkeypatch):
    """The CLI sets OMP_WAIT_POLICY=PASSIVE before any command loads torch, and keeps a user's choice."""
    import os

    import tracesynth.cli as cli

    monkeypatch.setenv("OMP_WAIT_POLICY", "unset-below")  # registers the original value for restoring
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert main(["--help"]) == 0 and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert main(["--help"]) == 0 and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    probe = subprocess.run([sys.executable, "-c", "import sys, tracesynth.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "False"          # importing the CLI does not load torch (the policy is in time)
    assert cli.OMP_WAIT_POLICY == "PASSIVE"
