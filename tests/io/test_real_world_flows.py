"""Flow records as other tools write them (issue 14): CICFlowMeter's tiny negative durations, NetShare's
float counters, packet CSVs from other generators. Every file is made in the test."""
from __future__ import annotations

import numpy as np
import pytest

from tracesynth.errors import UserError
from tracesynth.io import read_trace
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
