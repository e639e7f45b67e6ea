"""DoppelGANger networks: span heads, generation flags, shapes and masking, conditioned generation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesynth.encoders.base import Span
from tracesynth.errors import UserError
from tracesynth.model.dgan import DoppelGANger
from tracesynth.model.networks import SpanActivation, flags_to_mask, mask_to_flags

from ._tiny import ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg

torch.set_num_threads(1)  # 2 shared cores: one thread per test process avoids OpenMP spin contention


def _reference_activation(raw: torch.Tensor, spans: list[Span]) -> torch.Tensor:
    """Span-by-span loop: the obvious implementation the grouped one must match."""
    out, start = [], 0
    for s in spans:
        piece = raw[..., start:start + s.dim]
        out.append({"softmax": lambda z: torch.softmax(z, -1), "sigmoid": torch.sigmoid,
                    "tanh": torch.tanh}[s.activation](piece))
        start += s.dim
    return torch.cat(out, -1)


span_lists = st.lists(st.builds(Span, st.integers(1, 4), st.sampled_from(["softmax", "sigmoid", "tanh"])),
                      min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(spans=span_lists, seed=st.integers(0, 2**31 - 1))
def test_span_activation_matches_span_by_span_loop(spans, seed):
    raw = torch.randn(5, 3, sum(s.dim for s in spans), generator=torch.Generator().manual_seed(seed))
    act = SpanActivation(spans)
    assert torch.allclose(act(raw), _reference_activation(raw, spans), atol=1e-6)
    hard = act.discretize(act(raw))
    start = 0
    for s in spans:
        piece = hard[..., start:start + s.dim]
        if s.activation == "softmax":
            assert torch.equal(piece.sum(-1), torch.ones(piece.shape[:-1]))
            assert torch.equal(piece.argmax(-1), raw[..., start:start + s.dim].argmax(-1))
        else:
            assert torch.equal(piece, act(raw)[..., start:start + s.dim])
        start += s.dim


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=20))
def test_flag_encoding_round_trips_flow_lengths(lengths):
    mask = (torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]).float()
    flags = mask_to_flags(mask)
    # last real record says "ends", earlier ones "continue", padding is all zero
    n = len(lengths)
    last = torch.tensor(lengths) - 1
    assert torch.equal(flags[torch.arange(n), last], torch.tensor([[0.0, 1.0]]).expand(n, 2))
    assert torch.equal(flags.sum(-1), mask)
    assert torch.equal(flags_to_mask(flags), mask)


def test_generate_shapes_samples_and_packing():
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(sample_len=4), seed=3)
    attrs, records, lengths = model.generate(50, torch.Generator().manual_seed(0), batch_size=16)
    assert attrs.shape == (50, 18) and lengths.shape == (50,) and records.shape == (lengths.sum(), 6)
    assert attrs.dtype == records.dtype == np.float32 and lengths.dtype == np.int64
    # attribute samples: 2-way softmaxes one-hot, tanh in (-1, 1), sigmoid in (0, 1)
    assert set(np.unique(attrs[:, :12])) <= {0.0, 1.0}
    np.testing.assert_array_equal(attrs[:, :12].reshape(50, 6, 2).sum(-1), 1.0)
    assert np.all(np.abs(attrs[:, 12:15]) < 1) and np.all((attrs[:, 15] > 0) & (attrs[:, 15] < 1))
    # every flow has 1..L records; record samples: the 3-way flag one-hot, sigmoids in (0, 1)
    assert lengths.min() >= 1 and lengths.max() <= MAX_LEN
    np.testing.assert_array_equal(records[:, 2:5].sum(-1), 1.0)
    assert set(np.unique(records[:, 2:5])) <= {0.0, 1.0}
    assert np.all((records[:, [0, 1, 5]] > 0) & (records[:, [0, 1, 5]] < 1))
    assert model.training  # generate() restores the training mode


def test_generated_flows_end_at_the_flag_head():
    """The first record whose flag argmax is "ends" is the flow's last (NetShare's cumulative mask)."""
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(sample_len=3), seed=1)
    with torch.no_grad():
        head = model.feature_generator.head
        head.bias.zero_()
        head.bias.view(3, -1)[:, -1] = torch.tensor([-5.0, 5.0, -5.0])  # step t: record 1 says "ends"
        head.weight.mul_(0.0)
        model.eval()
        _, records, flags = model.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(flags, (torch.arange(MAX_LEN) < 2).float().expand(8, -1))
    assert torch.all(records[:, 2:] == 0)


def test_attribute_conditioned_generation_keeps_attributes_and_follows_them():
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(), seed=2)
    given_attrs, _, _ = model.generate(30, torch.Generator().manual_seed(5))
    attrs, records, lengths = model.generate(30, torch.Generator().manual_seed(9), attributes=given_attrs)
    np.testing.assert_array_equal(attrs, given_attrs)
    assert lengths.shape == (30,) and records.shape == (lengths.sum(), 6)
    first = np.r_[0, np.cumsum(lengths)[:-1]]                  # each flow's first record
    # same noise, other attributes -> other series: the LSTM is conditioned on the attributes
    other = given_attrs.copy()
    other[:, :12] = 1.0 - other[:, :12]  # flip every IP bit
    other_records, other_lengths = model.generate(30, torch.Generator().manual_seed(9), attributes=other)[1:]
    other_first = np.r_[0, np.cumsum(other_lengths)[:-1]]
    assert not np.allclose(records[first], other_records[other_first])
    again = model.generate(30, torch.Generator().manual_seed(9), attributes=given_attrs)
    np.testing.assert_array_equal(records, again[1])
    np.testing.assert_array_equal(lengths, again[2])


def test_same_seed_same_weights_and_describe():
    a = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(), seed=7)
    b = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(), seed=7)
    c = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(), seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    b.load_state_dict(sc)
    assert all(torch.equal(b.state_dict()[k], sc[k]) for k in sc)
    d = a.describe()
    assert d["max_len"] == MAX_LEN and d["sample_len"] == 3 and d["attribute_spans"][0] == [2, "softmax"]
    assert d["parameters"]["critic"] == sum(p.numel() for p in a.critic.parameters())


def test_bad_shapes_are_user_errors():
    with pytest.raises(UserError, match="sample_len"):
        DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, 10, tiny_model_cfg(sample_len=3))
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg())
    with pytest.raises(UserError, match=r"\[n, 18\]"):
        model.generate(3, attributes=np.zeros((3, 5), np.float32))
