"""Fixtures of the autoregressive model's tests: caida-1k as flow tokens."""
from __future__ import annotations

import pytest

from tracesynth import read_trace
from tracesynth.config import preset
from tracesynth.encoders.flow_tokens import FlowTokenizer
from tracesynth.flows.table import FlowTable


@pytest.fixture(scope="module")
def tokens(caida_1k):
    """(fitted FlowTokenizer, TokenizedFlows) of caida-1k with the pcap preset."""
    cfg = preset("pcap")
    flows = FlowTable.from_records(read_trace(caida_1k).table, cfg.flow_length.max_flow_len)
    tok = FlowTokenizer(cfg).fit(flows)
    return tok, tok.transform(flows)
