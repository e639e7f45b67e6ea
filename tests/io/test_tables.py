"""Canonical tables on disk: CSV/Parquet round trips on real traces, exact text, clear errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.errors import UserError
from tracesynth.io import read_trace, write_trace
from tracesynth.io.tables import read_table_file, write_table
from tracesynth.schema import FLOW_COLUMNS, PACKET_COLUMNS


def test_packet_csv_round_trip_is_exact_on_caida(tmp_path, caida_1k):
    packets = read_trace(caida_1k).table
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_trace(packets, first)
    header = first.read_text().splitlines()[0].split(",")
    assert header[:len(PACKET_COLUMNS)] == list(PACKET_COLUMNS)
    back = read_trace(first)
    assert back.kind == "packets" and back.report.format == "tracesynth-packets-csv"
    for col, dtype in PACKET_COLUMNS.items():
        assert back.table[col].dtype == dtype
        if col != "time":
            np.testing.assert_array_equal(back.table[col].to_numpy(), packets[col].to_numpy())
    # 9 decimals keep every float64 epoch time exactly (spacing there is ~2e-7 s)
    np.testing.assert_array_equal(back.table["time"].to_numpy(), packets["time"].to_numpy())
    write_trace(back.table, second)
    assert first.read_bytes() == second.read_bytes()


def test_csv_text_format(tmp_path, caida_1k):
    packets = read_trace(caida_1k).table.head(3)
    path = write_trace(packets, tmp_path / "p.csv")
    row = path.read_text().splitlines()[1].split(",")
    time_text, src = row[0], row[1]
    assert len(time_text.split(".")[1]) == 9
    assert src.count(".") == 3 and all(0 <= int(o) <= 255 for o in src.split("."))
    assert int(row[5]) == int(packets["proto"].iloc[0])


def test_parquet_keeps_dtypes_and_values(tmp_path, ugr16_1k):
    flows = read_trace(ugr16_1k).table
    path = write_trace(flows, tmp_path / "f.parquet")
    back = read_trace(path)
    assert back.report.format == "tracesynth-flows-parquet"
    pd.testing.assert_frame_equal(back.table, flows)


def test_flow_csv_round_trip(tmp_path, ugr16_1k):
    flows = read_trace(ugr16_1k).table
    a = write_trace(flows, tmp_path / "a.csv")
    back = read_trace(a)
    assert back.report.format == "tracesynth-flows-csv"
    assert list(back.table.columns) == [*FLOW_COLUMNS, "label"]
    np.testing.assert_allclose(back.table["ts"], flows["ts"], rtol=0, atol=1e-6)
    assert (back.table["label"] == flows["label"]).all()
    b = write_trace(back.table, tmp_path / "b.csv")
    assert a.read_bytes() == b.read_bytes()


def test_bad_value_names_line_and_column(tmp_path, ugr16_1k):
    path = write_trace(read_trace(ugr16_1k).table.head(10), tmp_path / "f.csv")
    lines = path.read_text().splitlines()
    cells = lines[4].split(",")
    cells[5] = "http"  # dstport
    lines[4] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"f\.csv: line 5, column 'dstport': 'http'"):
        read_table_file(path)


def test_write_rejects_unknown_suffix_and_incomplete_table(tmp_path):
    table = pd.DataFrame({"ts": [1.0], "td": [0.0]})
    with pytest.raises(UserError, match="missing column"):
        write_table(table, tmp_path / "x.csv")
    with pytest.raises(UserError, match="suffix"):
        write_table(table, tmp_path / "x.txt")
    assert not list(tmp_path.iterdir())  # atomic: nothing half-written is left behind


_flow_rows = st.lists(st.tuples(
    st.floats(0, 2e9, allow_nan=False), st.floats(0, 1e5, allow_nan=False),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 65535),
    st.integers(0, 255), st.integers(0, 2**40), st.integers(0, 2**63)), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(rows=_flow_rows)
def test_any_flow_table_survives_csv(tmp_path_factory, rows):
    table = pd.DataFrame(rows, columns=list(FLOW_COLUMNS)).astype(FLOW_COLUMNS)
    folder = tmp_path_factory.mktemp("h")
    a = write_table(table, folder / "a.csv")
    back = read_table_file(a).table
    for col in FLOW_COLUMNS:
        if col in ("ts", "td"):
            np.testing.assert_allclose(back[col], table[col], rtol=0, atol=5e-7)
        else:
            np.testing.assert_array_equal(back[col].to_numpy(), table[col].to_numpy())
    b = write_table(back, folder / "b.csv")
    assert a.read_bytes() == b.read_bytes()
    c = write_table(table, folder / "c.parquet")
    pd.testing.assert_frame_equal(read_table_file(c).table, table)
