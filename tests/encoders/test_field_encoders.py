"""Field encoders: hypothesis round trips, spans, soft decoding, NotFittedError, save/load state."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tracesynth.encoders.base import Span
from tracesynth.encoders.bits import BitsEncoder
from tracesynth.encoders.categorical import CategoricalEncoder
from tracesynth.encoders.numeric import NumericEncoder
from tracesynth.errors import NotFittedError, UserError

u32 = hnp.arrays(np.uint32, st.integers(1, 50), elements=st.integers(0, 2**32 - 1))


@given(u32)
def test_bits_round_trip_ipv4(values):
    enc = BitsEncoder(32).fit(values)
    x = enc.transform(values)
    assert x.shape == (len(values), 64) and x.dtype == np.float32
    assert np.all(x.reshape(-1, 32, 2).sum(axis=2) == 1)
    out = enc.inverse_transform(x)
    assert out.dtype == np.uint32 and np.array_equal(out, values)


@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 20), st.just(16))))
def test_bits_round_trip_ipv6_bytes(rows):
    enc = BitsEncoder(128).fit(rows)
    assert enc.spans == [Span(2, "softmax")] * 128
    assert np.array_equal(enc.inverse_transform(enc.transform(rows)), rows)


def test_bits_msb_first_and_soft_decoding():
    enc = BitsEncoder(32).fit(np.array([0], np.uint32))
    x = enc.transform(np.array([0x80000001], np.uint32))
    assert x[0, :2].tolist() == [0, 1] and x[0, 2:4].tolist() == [1, 0] and x[0, -2:].tolist() == [0, 1]
    soft = np.where(x > 0.5, 0.7, 0.3).astype(np.float32)
    assert enc.inverse_transform(soft).tolist() == [0x80000001]


finite = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)


@given(hnp.arrays(np.float64, st.integers(1, 50), elements=finite), st.booleans(),
       st.sampled_from(["zero_one", "minus_one_one"]))
def test_numeric_round_trip_within_1e6_relative(values, log1p, scale):
    enc = NumericEncoder(log1p=log1p, scale=scale).fit(values)
    x = enc.transform(values)
    lo, hi = (0, 1) if scale == "zero_one" else (-1, 1)
    assert x.shape == (len(values), 1) and x.min() >= lo and x.max() <= hi
    back = enc.inverse_transform(x)
    assert np.allclose(back, values, rtol=1e-6, atol=1e-9 * max(1.0, values.max()))


@given(hnp.arrays(np.uint16, st.integers(1, 50)))
def test_numeric_integers_are_exact(values):
    enc = NumericEncoder().fit(values)
    back = enc.inverse_transform(enc.transform(values).astype(np.float32))
    assert back.dtype == np.uint16 and np.array_equal(back, values)


def test_numeric_fixed_range_clips_and_decodes_inside():
    enc = NumericEncoder(value_range=(0.0, 255.0)).fit(np.array([10.0]))
    assert enc.transform(np.array([0.0, 255.0, 300.0])).ravel().tolist() == [0.0, 1.0, 1.0]
    assert enc.inverse_transform(np.array([[-3.0], [0.5], [7.0]])).tolist() == [0.0, 127.5, 255.0]
    tanh = NumericEncoder(scale="minus_one_one", value_range=(0.0, 10.0)).fit(np.array([1.0]))
    assert tanh.spans == [Span(1, "tanh")] and tanh.transform(np.array([5.0])).item() == 0.0


def test_numeric_log1p_known_value():
    enc = NumericEncoder(log1p=True).fit(np.array([0.0, np.e - 1]))
    assert enc.transform(np.array([np.expm1(0.5)])).item() == pytest.approx(0.5)


@given(st.lists(st.sampled_from(["background", "dos", "scan", "blacklist", "spam"]), min_size=1, max_size=40))
def test_categorical_round_trip_strings(labels):
    values = np.array(labels, dtype=object)
    enc = CategoricalEncoder().fit(values)
    x = enc.transform(values)
    assert enc.spans == [Span(len(set(labels)), "softmax")] and np.all(x.sum(axis=1) == 1)
    assert enc.inverse_transform(x).tolist() == labels


@given(hnp.arrays(np.uint8, st.integers(1, 40), elements=st.integers(0, 3)))
def test_categorical_configured_choices_keep_dtype(values):
    enc = CategoricalEncoder(choices=[0, 1, 2, 3]).fit(values)
    assert enc.spans == [Span(4, "softmax")]
    back = enc.inverse_transform(enc.transform(values) * 0.6 + 0.1)  # soft values decode by argmax
    assert back.dtype == np.uint8 and np.array_equal(back, values)


def test_categorical_unknown_value_names_field():
    enc = CategoricalEncoder(name="flag").fit(np.array([0, 2], np.uint8))
    with pytest.raises(UserError, match="flag.*\\[3\\]"):
        enc.transform(np.array([3], np.uint8))


@pytest.mark.parametrize("enc", [BitsEncoder(32), NumericEncoder(), CategoricalEncoder()])
def test_not_fitted(enc):
    with pytest.raises(NotFittedError, match="fit"):
        enc.transform(np.array([1], np.uint32))


@pytest.mark.parametrize("enc,values", [
    (BitsEncoder(32), np.array([1, 2**31], np.uint32)),
    (NumericEncoder(log1p=True, scale="minus_one_one"), np.array([0.5, 10.0, 3e4])),
    (CategoricalEncoder(name="label"), np.array(["a", "b"], dtype=object)),
])
def test_state_round_trip(enc, values):
    import json

    enc.fit(values)
    clone = type(enc).from_state(json.loads(json.dumps(enc.state())))
    assert np.array_equal(clone.transform(values), enc.transform(values))
    assert np.array_equal(clone.inverse_transform(enc.transform(values)), enc.inverse_transform(enc.transform(values)))
