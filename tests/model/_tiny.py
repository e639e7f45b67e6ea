"""Tiny DoppelGANger configs and structured encoded data built from spans, shared by the model tests."""
from __future__ import annotations

import numpy as np

from tracesynth.config import ModelConfig, TrainingConfig
from tracesynth.encoders.base import Span

#: like a (shrunken) pcap layout: IP bits as 2-way softmaxes, word2vec tanh, flow_start sigmoid, a tag
ATTRIBUTE_SPANS = [Span(2, "softmax")] * 6 + [Span(3, "tanh"), Span(1, "sigmoid"), Span(2, "softmax")]
#: iat sigmoid, pkt_len sigmoid, a 3-way categorical flag, ttl sigmoid
FEATURE_SPANS = [Span(1, "sigmoid"), Span(1, "sigmoid"), Span(3, "softmax"), Span(1, "sigmoid")]
MAX_LEN = 12


def tiny_model_cfg(sample_len: int = 3) -> ModelConfig:
    return ModelConfig(attribute_noise_dim=4, feature_noise_dim=4, attribute_num_layers=2,
                       attribute_num_units=24, feature_num_units=16, critic_num_layers=2, critic_num_units=32,
                       attr_critic_num_layers=2, attr_critic_num_units=24, sample_len=sample_len)


def tiny_training_cfg(**overrides) -> TrainingConfig:
    base = dict(batch_size=32, critic_steps=2, lr_generator=1e-3, lr_critic=1e-3, checkpoint_every=2)
    base.update(overrides)
    return TrainingConfig(**base)


def encoded_flows(n: int, seed: int = 0, spans_a=ATTRIBUTE_SPANS, spans_f=FEATURE_SPANS,
                  max_len: int = MAX_LEN) -> dict[str, np.ndarray]:
    """Structured EncodedFlows-shaped arrays: valid one-hots, values in range, padded after each flow's end.

    Flow length depends on the first attribute bit (short vs long flows) so the series carries
    information from the attributes, as real flows do.
    """
    rng = np.random.default_rng(seed)

    def fill(spans, rows: int) -> np.ndarray:
        cols = []
        for span in spans:
            if span.activation == "softmax":
                cols.append(np.eye(span.dim, dtype=np.float32)[rng.integers(0, span.dim, rows)])
            elif span.activation == "sigmoid":
                cols.append(rng.beta(2, 5, (rows, span.dim)).astype(np.float32))
            else:
                cols.append(rng.uniform(-0.9, 0.9, (rows, span.dim)).astype(np.float32))
        return np.concatenate(cols, axis=1)

    attributes = fill(spans_a, n)
    long_flow = attributes[:, 0] > 0.5
    lengths = np.where(long_flow, rng.integers(max_len // 2, max_len + 1, n), rng.integers(1, 4, n))
    features = fill(spans_f, n * max_len).reshape(n, max_len, -1)
    gen_flags = (np.arange(max_len)[None, :] < lengths[:, None]).astype(np.float32)
    features *= gen_flags[..., None]
    return {"attributes": attributes, "features": features, "gen_flags": gen_flags,
            "lengths": lengths.astype(np.int64)}
