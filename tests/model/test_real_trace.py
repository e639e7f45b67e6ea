"""The model on real encoded flows: caida-1k through reader, FlowTable and FlowEncoder, trained briefly,
generated, and decoded by the encoder (the model <-> encoder contract end to end)."""
from __future__ import annotations

import numpy as np
import torch

from tracesynth import preset, read_trace
from tracesynth.encoders.flow_encoder import FlowEncoder
from tracesynth.flows.table import FlowTable
from tracesynth.model.dgan import DoppelGANger
from tracesynth.model.trainer import train

from ._tiny import tiny_model_cfg, tiny_training_cfg

torch.set_num_threads(1)


def test_caida_slice_trains_generates_and_decodes(caida_1k, tmp_path):
    config = preset("pcap")
    config.flow_length.max_flow_len = 20
    config.model = tiny_model_cfg(sample_len=5)
    table = read_trace(caida_1k).table
    flows = FlowTable.from_records(table, max_flow_len=20)
    encoder = FlowEncoder(config).fit(flows)
    window = (float(table["time"].min()), float(table["time"].max()))
    encoded = encoder.transform(flows, window)

    model = DoppelGANger(encoder.attribute_spans, encoder.feature_spans, 20, config.model, seed=0)
    result = train(model, encoded, tiny_training_cfg(batch_size=64), epochs=2, seed=0,
                   checkpoint_dir=tmp_path / "ckpt")
    assert sorted(result.checkpoints) == [2] and np.isfinite(result.history[-1]["g_loss"])

    attrs, rows, lengths = model.generate(200, torch.Generator().manual_seed(1))
    synthetic = encoder.decode(attrs, rows, lengths, window)
    assert synthetic.n_flows == 200
    np.testing.assert_array_equal(synthetic.lengths, lengths)
    records = synthetic.to_records()
    assert len(records) == int(lengths.sum()) and records["time"].min() >= window[0]
    # decoded protocols are ones the encoder saw in the real trace
    assert set(np.unique(records["proto"])) <= set(np.unique(table["proto"]))

    # series for the real flows' attributes: the attributes come back unchanged
    given = encoded.attributes[:50]
    attrs2, rows2, lengths2 = model.generate(0, torch.Generator().manual_seed(2), attributes=given)
    np.testing.assert_array_equal(attrs2, given)
    decoded = encoder.decode(attrs2, rows2, lengths2, window)
    real = flows.attributes.iloc[:50]
    for column in ("srcip", "dstip", "srcport", "dstport", "proto"):
        np.testing.assert_array_equal(decoded.attributes[column].to_numpy(), real[column].to_numpy())
