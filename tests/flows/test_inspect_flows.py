"""`tracesynth inspect --flows`: flow figures on stdout (text and JSON), through the real CLI."""
from __future__ import annotations

import json

from tsdata import shared
from tracesynth.cli import main


def test_inspect_flows_json(capsys):
    assert main(["inspect", str(shared("caida/caida-10k.pcapng")), "--flows", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["flow_details"]
    assert d["flows"] == 3149 and len(d["flows_per_chunk"]) == 10
    assert d["flow_length_percentiles"]["p100"] == 347 and d["flows_over_cap"] == 8


def test_inspect_flows_text_netflow(capsys):
    assert main(["inspect", str(shared("ugr16/ugr16-1k.csv")), "--flows"]) == 0
    text = capsys.readouterr().out
    assert "spanning several chunks" in text and "max_flow_len=20" in text


def test_inspect_without_flows_has_no_details(capsys):
    assert main(["inspect", str(shared("caida/caida-1k.pcapng")), "--json"]) == 0
    assert "flow_details" not in json.loads(capsys.readouterr().out)
