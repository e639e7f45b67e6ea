"""Early-stopped, batched generation (hand-stepped LSTM, packed output) gives the same flows as the
full-length fused LSTM pass of training, its softmax spans discretised and its padding dropped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tracesynth.model.dgan import DoppelGANger

from ._tiny import ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg

torch.set_num_threads(1)


#: generation in float32, for tests that compare `generate` with the float32 training-mode forward
#: (the default precision, auto, is bfloat16 where the CPU has native bfloat16 matmuls)
F32 = "float32"


def _model(sample_len: int, end_bias: float, seed: int) -> DoppelGANger:
    """A tiny model whose flag head is biased towards "ends" (short flows) or "continues" (long ones)."""
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, tiny_model_cfg(sample_len=sample_len), seed=seed)
    with torch.no_grad():
        bias = model.feature_generator.head.bias.view(sample_len, -1)
        bias[:, -1] += end_bias
    return model


def _reference(model: DoppelGANger, sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training-mode forward (`sample`, eval mode, same batches and noise) as generation returns it:
    softmax spans one-hot, records of each flow up to its end, packed; lengths."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    parts = []
    with torch.no_grad():
        for size in sizes:
            a, r, f = model.sample(size, gen)
            a = model.attribute_generator.activation.discretize(a)
            r = model.feature_generator.activation.discretize(r)[..., :model.feature_dim]
            parts.append((a.numpy(), r[f.bool()].numpy(), f.sum(1).long().numpy()))
    model.train()
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


@pytest.mark.parametrize("sample_len", [1, 3, 4, 12])
@pytest.mark.parametrize("end_bias", [-2.0, 0.0, 3.0])
def test_early_stopped_generation_equals_full_length_pass(sample_len, end_bias):
    model = _model(sample_len, end_bias, seed=sample_len)
    attrs, records, lengths = model.generate(300, torch.Generator().manual_seed(7), batch_size=128, precision=F32)
    ref_attrs, ref_records, ref_lengths = _reference(model, [128, 128, 44], seed=7)
    assert lengths.dtype == np.int64 and lengths.min() >= 1 and lengths.max() <= MAX_LEN
    if end_bias >= 0:
        assert (lengths < MAX_LEN).any()                                # flows really end early
    if end_bias < 0 and sample_len < MAX_LEN:
        assert (lengths > sample_len).any()                             # flows really run several steps
    np.testing.assert_array_equal(lengths, ref_lengths)
    assert records.shape == (lengths.sum(), model.feature_dim)
    np.testing.assert_allclose(attrs, ref_attrs, rtol=0, atol=1e-6)      # folded BatchNorm: rounding only
    np.testing.assert_allclose(records, ref_records, rtol=0, atol=1e-5)


def test_hand_stepped_lstm_of_several_layers_equals_the_fused_pass():
    """The hand-stepped cell feeds each layer's h to the next like `nn.LSTM` (feature_num_layers > 1)."""
    cfg = tiny_model_cfg(sample_len=2).model_copy(update={"feature_num_layers": 3})
    model = DoppelGANger(ATTRIBUTE_SPANS, FEATURE_SPANS, MAX_LEN, cfg, seed=11)
    head = model.feature_generator.head
    with torch.no_grad():                        # flag head sensitive to the state: lengths 4-6, 2-3 steps
        head.weight.view(2, -1, head.weight.shape[1])[:, -2:] *= 10.0
        head.bias.view(2, -1)[:, -1] -= 0.5
    attrs, records, lengths = model.generate(200, torch.Generator().manual_seed(3), batch_size=64, precision=F32)
    ref_attrs, ref_records, ref_lengths = _reference(model, [64, 64, 64, 8], seed=3)
    assert (lengths > 2).any() and (lengths < MAX_LEN).any()
    np.testing.assert_array_equal(lengths, ref_lengths)
    np.testing.assert_allclose(records, ref_records, rtol=0, atol=1e-5)


def test_iter_generate_batches_concatenate_to_generate():
    model = _model(3, 0.0, seed=4)
    whole = model.generate(100, torch.Generator().manual_seed(2), batch_size=32)
    batches = list(model.iter_generate(100, torch.Generator().manual_seed(2), batch_size=32))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    for got, want in zip(zip(*batches), whole):
        np.testing.assert_array_equal(np.concatenate(got), want)


def test_generate_attributes_is_the_attribute_generator_in_eval_mode():
    model = _model(3, 0.0, seed=5)
    attrs = model.generate_attributes(70, torch.Generator().manual_seed(3), batch_size=32, precision=F32)
    gen = torch.Generator().manual_seed(3)
    model.eval()
    with torch.no_grad():
        ref = torch.cat([model.attribute_generator(torch.randn(m, model.cfg.attribute_noise_dim, generator=gen))
                         for m in (32, 32, 6)])
        ref = model.attribute_generator.activation.discretize(ref).numpy()       # a sample: one-hot categories
    assert attrs.shape == (70, model.attribute_dim) and attrs.dtype == np.float32
    np.testing.assert_allclose(attrs, ref, rtol=0, atol=1e-6)


def test_generate_attributes_of_zero_or_uneven_rows():
    model = _model(3, 0.0, seed=6)
    assert model.generate_attributes(0).shape == (0, model.attribute_dim)
    whole = model.generate_attributes(45, torch.Generator().manual_seed(8), batch_size=45)
    split = model.generate_attributes(45, torch.Generator().manual_seed(8), batch_size=16)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-6)   # batching only changes the blocking
    assert np.isfinite(whole).all()


def test_folded_attribute_generator_equals_eval_forward():
    """BatchNorm folded into the next Linear gives the eval-mode forward, also with non-trivial
    running statistics and affine parameters (as after training)."""
    model = _model(3, 0.0, seed=7)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for bn in model.attribute_generator.body:
            if isinstance(bn, torch.nn.BatchNorm1d):
                bn.running_mean.normal_(0.0, 0.5, generator=gen)
                bn.running_var.uniform_(0.2, 3.0, generator=gen)
                bn.weight.uniform_(0.5, 1.5, generator=gen)
                bn.bias.normal_(0.0, 0.3, generator=gen)
    noise = torch.randn(64, model.cfg.attribute_noise_dim, generator=gen)
    sample = model.attribute_generator.activation.discretize
    model.eval()
    with torch.no_grad():
        want = sample(model.attribute_generator(noise))
    got = model.attribute_generator.generate(noise, torch.float32)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    model.train()                                  # training mode: batch statistics, i.e. forward itself
    with torch.no_grad():
        torch.testing.assert_close(model.attribute_generator.generate(noise), sample(model.attribute_generator(noise)))


def test_bfloat16_generation_is_deterministic_valid_and_near_float32():
    """precision="bfloat16" runs the attribute MLP in bfloat16: same seed -> same flows, float32
    samples (one-hot IP bits, values in range), mostly the same categories as float32."""
    model = _model(3, 0.0, seed=9)
    ref = model.generate(200, torch.Generator().manual_seed(5), batch_size=64, precision=F32)
    first = model.generate(200, torch.Generator().manual_seed(5), batch_size=64, precision="bfloat16")
    again = model.generate(200, torch.Generator().manual_seed(5), batch_size=64, precision="bfloat16")
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    attrs, records, lengths = first
    assert attrs.dtype == records.dtype == np.float32 and attrs.shape == ref[0].shape
    assert np.isfinite(attrs).all() and np.isfinite(records).all()
    assert set(np.unique(attrs[:, :12])) <= {0.0, 1.0}                 # 6 IP-bit one-hots
    np.testing.assert_array_equal(attrs[:, :12].reshape(-1, 6, 2).sum(-1), 1.0)
    assert not np.array_equal(attrs[:, 12:16], ref[0][:, 12:16])     # it really ran in another precision
    np.testing.assert_allclose(attrs[:, 12:16], ref[0][:, 12:16], rtol=0, atol=0.05)  # ~3 significant digits
    assert (attrs[:, :12] == ref[0][:, :12]).mean() > 0.95            # rounding flips only near-ties
    assert (lengths >= 1).all()


def test_generation_precision_is_a_parameter_not_the_environment(monkeypatch):
    """The precision comes from the caller: auto by default, whatever the environment says (only the
    CLI reads TRACESYNTH_GENERATE_DTYPE); an unknown one is a UserError naming the choices."""
    from tracesynth.errors import UserError
    from tracesynth.model.networks import _native_bfloat16, resolve_precision

    auto = torch.bfloat16 if _native_bfloat16() else torch.float32
    assert resolve_precision() == resolve_precision("auto") == auto
    assert resolve_precision("float32") == torch.float32 and resolve_precision("bfloat16") == torch.bfloat16
    with pytest.raises(UserError, match="auto, float32, bfloat16"):
        resolve_precision("fp8")
    model = _model(3, 0.0, seed=9)
    default = model.generate(50, torch.Generator().manual_seed(5))
    monkeypatch.setenv("TRACESYNTH_GENERATE_DTYPE", "bfloat16" if auto == torch.float32 else "float32")
    for got, want in zip(model.generate(50, torch.Generator().manual_seed(5)), default):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(model.generate(50, torch.Generator().manual_seed(5), precision="auto"), default):
        np.testing.assert_array_equal(got, want)
