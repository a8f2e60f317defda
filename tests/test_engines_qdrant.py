"""Qdrant presets pinned to worked examples recomputed by hand from Qdrant 1.19.0's
quantization crate (github.com/qdrant/qdrant at 74f3e85b9473, lib/quantization/src):
encoded_vectors_u8.rs (int8 codes, corrections, score), quantile.rs
(find_quantile_interval), encoded_vectors_binary.rs (1, 1.5, 2-bit codes, u128 words,
scalar 4/8-bit queries, the XOR score). Qdrant's own unit tests check recall against
float search, with no literal values to reuse."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.engines import preset
from embedbench.engines.qdrant import QdrantBinary, QdrantInt8, int8_range
from embedbench.registry import build_technique

F = np.float32


def _f32(*values):
    return np.array([values], dtype=np.float32)


# --- int8 ---------------------------------------------------------------------------


def _int8_lo_hi():
    """Fewer than 127 vectors: the whole range, here min −1, max 127/64 − 1 so alpha =
    (max − min)/127 = 1/64 and offset = −1 exactly."""
    code = QdrantInt8(quantile=0.99)
    return code.fit(np.array([[-1.0, 0.25], [0.0, 127 / 64 - 1]], np.float32))


def test_int8_codes_and_correction_by_hand():
    code = _int8_lo_hi()
    assert (code.alpha, code.offset, code.multiplier) == (F(1 / 64), F(-1), F(1 / 4096))
    stored = code.encode(_f32(0.5, -0.25))[0]
    assert len(stored) == 4 + 16  # f32 correction + codes padded to 16 dimensions
    # code = round((x − offset)/alpha): 1.5·64 = 96, 0.75·64 = 48, padding 0.0 -> 64
    assert list(stored[4:]) == [96, 48] + [64] * 14
    # correction = Σcodes·alpha·offset + d_pad·offset² = 1040/64·(−1) + 16 = −0.25
    assert stored[:4].view("<f4")[0] == F(-0.25)
    # Rust's round: 10.5 -> 11 (halves away from zero); clamp to 0..127
    assert list(code.encode(_f32(-1 + 10.5 / 64, 2.0))[0, 4:6]) == [11, 127]
    assert list(code.encode(_f32(-3.0, -1.0))[0, 4:6]) == [0, 0]
    np.testing.assert_array_equal(code.decode(code.encode(_f32(0.5, -0.25)), 2), _f32(0.5, -0.25))


def test_int8_score_by_hand():
    """query [1, −1] -> codes [127 (clamped), 0] + 14·[64], correction 1023/64·(−1);
    score = Σq·v/4096 + q_corr + v_corr = 69536/4096 − 15.984375 − 0.25 = 0.7421875,
    the dot product of the dequantized vectors [0.984375, −1]·[0.5, −0.25]."""
    code = _int8_lo_hi()
    s = code.search_scores(_f32(1.0, -1.0), code.encode(_f32(0.5, -0.25)))
    assert s[0, 0] == 0.7421875


def test_int8_quantile_interval_as_quantile_rs_cuts_it():
    """200 vectors of 4 values 0..799: cut = ⌊200·(1 − q)/2⌋ values (at least 1) and
    the range is sorted[cut + 1] .. sorted[size − cut − 1]."""
    X = np.random.default_rng(0).permutation(800).reshape(200, 4).astype(np.float32)
    assert int8_range(X, 0.99) == (2.0, 798.0)  # cut = ⌊0.99999⌋ = 0 -> 1
    assert int8_range(X, 0.9) == (11.0, 789.0)  # cut = 10
    assert int8_range(X, None) == int8_range(X, 1.0) == (0.0, 799.0)
    assert int8_range(X[:126], 0.9) == (float(X[:126].min()), float(X[:126].max()))
    code = QdrantInt8(0.9).fit(X)
    assert (code.offset, code.alpha) == (F(11), F(778) / F(127))


def test_int8_search_ranks_like_dequantized_dot():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 40)).astype(np.float32)
    tech = build_technique("qdrant:int8").fit(X[:200])
    codes = tech.encode(X[200:])
    assert codes.shape == (100, 4 + 48)
    Q = rng.normal(size=(3, 40)).astype(np.float32)
    code = tech.code
    dq = code.codes_of(Q).astype(np.float64) * code.alpha + code.offset  # padded too
    dv = codes[:, 4:].astype(np.float64) * code.alpha + code.offset
    np.testing.assert_allclose(code.search_scores(Q, codes), dq @ dv.T, rtol=1e-4, atol=1e-3)


# --- binary -------------------------------------------------------------------------

# calibration with mean 0 and sample stddev 1 in each of 4 dimensions, and a constant
# fifth dimension (stddev 0 < f32::EPSILON: the sign bit and a zero second bit)
CAL = np.array([[-1, -1, -1, -1, 0.5], [0, 0, 0, 0, 0.5], [1, 1, 1, 1, 0.5]], np.float32)


def test_one_bit_codes_and_score_by_hand():
    code = QdrantBinary("one_bit").fit(CAL)
    stored = code.encode(_f32(0.3, -0.2, 0.0, 0.7, -0.1))[0]
    assert len(stored) == 16  # one u128 word
    assert list(stored) == [0b01001] + [0] * 15  # bit i = x_i > 0, little-endian
    q = _f32(0.1, 0.2, -0.3, 0.4, -0.5)  # bits 11010: one bit differs
    assert code.search_scores(q, stored[None])[0, 0] == 5 - 2 * 1


def test_two_bit_and_one_and_half_bit_codes_by_hand():
    """z = x (mean 0, stddev 1): 00 if z ≤ −2/3, 10 if |z| < 2/3, 11 if z ≥ 2/3; the
    flat fifth dimension stores (x > 0, 0). b1 = 00110, b2 = 00010."""
    x = _f32(-0.9, -2 / 3, 0.5, 2 / 3, -0.2)
    two = QdrantBinary("two_bits").fit(CAL).encode(x)[0]
    # b1 at bits 0..4, b2 at bits 5..9: bits 2, 3 and 5 + 3
    assert list(two) == [0b00001100, 0b00000001] + [0] * 14
    # 1.5 bits: b2 of dimensions (0,1), (2,3), (4) OR-ed at bits 5, 6, 7
    half = QdrantBinary("one_and_half_bits").fit(CAL).encode(x)[0]
    assert list(half) == [0b01001100] + [0] * 15
    # query encoded the same way: b1 = 10111, b2 = 10000; XOR 2 + 2 bits; d − 2·4
    q = _f32(0.9, -0.9, 0.0, 0.0, 0.3)
    assert QdrantBinary("two_bits").fit(CAL).search_scores(q, two[None])[0, 0] == 5 - 8
    np.testing.assert_array_equal(
        QdrantBinary("two_bits").fit(CAL).decode(two[None], 5), _f32(-1, -1, 0, 1, -1)
    )


def test_scalar8_query_on_one_bit_by_hand():
    """q = [0.5, −0.25, 1, −1], m = 1, delta = 2/255: levels round((q + 1)·127.5) =
    [191, 96, 255, 0]; stored bits 1100: xor = ((255 − 191) + (255 − 96) + 255 + 0)/255
    = 478/255; score = 4 − 2·xor."""
    code = QdrantBinary("one_bit", query_bits=8).fit(CAL[:, :4])
    np.testing.assert_array_equal(code.query_levels(_f32(0.5, -0.25, 1, -1)), [[191, 96, 255, 0]])
    stored = code.encode(_f32(0.3, 0.2, -0.1, -0.4))
    xor = F(478) / F(255)
    assert code.search_scores(_f32(0.5, -0.25, 1, -1), stored)[0, 0] == F(4) - xor - xor


def test_scalar4_query_on_two_bits_by_hand():
    """The query is repeated for both bit planes: levels round((q + 1)·7.5) of
    [0.5, −1, 0.2] = [11, 0, 9], twice; stored x = [0.9, 0, −0.9]: b1 = 110, b2 = 100;
    xor = (4 + 15 + 9 + 4 + 0 + 9)/15 = 41/15."""
    code = QdrantBinary("two_bits", query_bits=4).fit(CAL[:, :3])
    q = _f32(0.5, -1.0, 0.2)
    np.testing.assert_array_equal(code.query_levels(q), [[11, 0, 9, 11, 0, 9]])
    stored = code.encode(_f32(0.9, 0.0, -0.9))
    xor = F(41) / F(15)
    assert code.search_scores(q, stored)[0, 0] == F(3) - xor - xor


def test_scalar8_query_on_one_and_half_bits_extends_with_pair_maxima():
    code = QdrantBinary("one_and_half_bits", query_bits=8).fit(CAL[:, :3])
    # extended [0.5, −1, 0.2, max(0.5, −1), 0.2]
    np.testing.assert_array_equal(
        code.query_levels(_f32(0.5, -1.0, 0.2)), [[191, 0, 153, 191, 153]]
    )


@pytest.mark.parametrize(
    ("name", "size"),  # d = 384 bytes: 4 + 384; 384, 576, 768 bits in u128 words
    [
        ("qdrant:int8", 388),
        ("qdrant:int8-q1.0", 388),
        ("qdrant:binary", 48),
        ("qdrant:binary-q8", 48),
        ("qdrant:binary-1.5bit", 80),
        ("qdrant:binary-2bit", 96),
        ("qdrant:binary-2bit-q4", 96),
    ],
)
def test_size_determinism_and_calibration_only(name, size):
    rng = np.random.default_rng(2)
    cal = rng.normal(size=(500, 384)).astype(np.float32)
    X = rng.normal(size=(50, 384)).astype(np.float32)
    a, b = preset(name, 0).fit(cal), preset(name, 0).fit(cal)
    codes = a.encode(X)
    assert codes.shape == (50, size) == (50, a.bytes_per_vector(384))
    np.testing.assert_array_equal(codes, b.encode(X))
    # fitted on calibration only: a vector's code does not depend on the others
    np.testing.assert_array_equal(codes[7:8], a.encode(X[7:8]))
    s = a.search_scores(X[:3], codes)
    assert s.shape == (3, 50) and s.dtype == np.float64
    assert a.decode(codes, 384).shape == (50, 384)


def test_one_bit_score_is_the_sign_vectors_dot_product():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 130)).astype(np.float32)
    code = QdrantBinary("one_bit").fit(X)
    codes = code.encode(X)
    assert codes.shape[1] == 32  # 130 bits -> two u128 words
    signs = code.decode(codes, 130)
    np.testing.assert_array_equal(code.search_scores(X[:4], codes), signs[:4] @ signs.T)


def test_sign_bit_codes_of_a_preset_are_still_searched_by_the_engine():
    """qdrant:binary-q8 at d = 384 stores exactly d/8 bytes of sign bits: CodeSearch
    must not take them for a plain Hamming index (it would hand codes to search_scores)."""
    from embedbench import retrieval as R

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    tech = build_technique("qdrant:binary-q8").fit(X)
    search = R.CodeSearch(lambda *_: None, tech, None)
    search.build(X, [f"d{i:03d}" for i in range(200)])
    assert not search.hamming and search.engine_codes is not None
    got = search.search_vectors(X[:3], ["a", "b", "c"], 1)
    assert [next(iter(got[q])) for q in "abc"] == ["d000", "d001", "d002"]


def test_qdrant_keeps_the_original_vectors():
    from types import SimpleNamespace

    from embedbench.evaluate import secondary_bytes

    for t in ("qdrant:int8", "qdrant:binary-2bit", "qdrant:binary/rescore3"):
        assert secondary_bytes(SimpleNamespace(technique=t), 384) == 4 * 384
