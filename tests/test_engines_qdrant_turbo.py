"""Qdrant TurboQuant presets pinned to worked examples recomputed by hand from Qdrant
1.19.0's quantization crate (github.com/qdrant/qdrant at 74f3e85b9473,
lib/quantization/src/turboquant/: permutation.rs, rotation.rs, lloyd_max.rs, math.rs,
quantization.rs, encoding.rs, simd/query{1,2,4}bit/mod.rs; p_square.rs, quantile.rs).
Qdrant's own literal expectations reused: compute_chunk_sizes (rotation.rs tests), the
x86 CODEBOOK_U8 derivation (query4bit test_codebook_matches_lloyd_max), the zero-vector
middle index and the Bits4 self / antipodal score tolerances (quantization.rs tests).
The whole pipeline (fit, codes, extras, scores) was also checked bit for bit against a
Rust transcription of these files at d = 20, 100, 384 for every bit width."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.engines import qdrant_turbo_math as M
from embedbench.engines.qdrant_turbo import (
    CENTROIDS,
    CODEBOOK_INT,
    QdrantTurbo,
    boundaries,
    padded_dim,
)
from embedbench.registry import build_technique

F = np.float32
NAMES = ["qdrant:turbo1", "qdrant:turbo1.5", "qdrant:turbo2", "qdrant:turbo4"]


def _unit(rng, n, d):
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, : d // 4] *= 3  # anisotropic, so TQ+ has something to correct
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# --- rotation -------------------------------------------------------------------------


def test_lcg_fisher_yates_permutation_by_hand():
    """state1 = 42·A + C mod 2^64 = 10481999410520546993, j = (state >> 32) mod 8 =
    2440530669 mod 8 = 5: swap 7 and 5, and so on down to i = 1."""
    assert (42 * M.LCG_A + M.LCG_C) & M.MASK64 == 10481999410520546993
    assert 10481999410520546993 >> 32 == 2440530669 and 2440530669 % 8 == 5
    assert M.lcg_map(42, 8).tolist() == [1, 4, 6, 0, 2, 3, 7, 5]
    assert M.lcg_map(M.PERMUTATION_SEEDS[0], 10).tolist() == [9, 3, 5, 4, 8, 0, 2, 6, 1, 7]
    assert M.lcg_map(0, 1).tolist() == [0]
    # permutation.rs all_small_permutations_reachable: all 24 orders of 4 over seeds
    assert len({tuple(M.lcg_map(s, 4)) for s in range(2000)}) == 24


def test_chunked_walsh_hadamard_by_hand():
    assert M.chunk_sizes(128) == [128]  # rotation.rs test_compute_chunk_sizes
    assert M.chunk_sizes(700) == [512, 128, 32, 16, 8, 4]
    assert M.chunk_sizes(1536) == [1024, 512]
    assert M.chunk_sizes(384) == [256, 128] and M.chunk_sizes(576) == [512, 64]
    # [1, 2, 3, 4] -> [10, −2, −4, 0]/2 ; [5, 6] -> [11, −1]/√2
    out = M.wht_chunks(np.array([[1.0, 2, 3, 4, 5, 6]]))[0]
    assert out.tolist() == [5.0, -1.0, -2.0, 0.0, 11 * (1 / np.sqrt(2)), -1 * (1 / np.sqrt(2))]


def test_hadamard_rotation_worked_examples_and_inverse():
    """n = 5 (chunks 4 + 1): e0 through WHT, three LCG gathers and WHTs."""
    assert M.rotate(np.eye(5)[:1])[0].tolist() == [-0.3125, -0.8125, 0.1875, 0.4375, -0.125]
    got = M.rotate(np.array([[1.0, 2, 3, 4, 5, 6]]))[0]
    want = [8.346194077712557, -1.542893218813452, -0.5680194846605362]
    want += [0.5428932188134521, -2.585786437626904, 3.4142135623730945]
    assert got.tolist() == want
    X = np.random.default_rng(0).normal(size=(3, 300))
    R = M.rotate(X)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), np.linalg.norm(X, axis=1))
    np.testing.assert_allclose(M.unrotate(R), X, atol=1e-12)


# --- codebooks, quantiles, P-square -------------------------------------------------------


def test_lloyd_max_codebooks_and_boundaries():
    assert CENTROIDS[1].tolist() == [F(-0.7978846), F(0.7978846)]
    assert CENTROIDS[2].tolist() == [F(-1.51), F(-0.4528), F(0.4528), F(1.51)]
    assert CENTROIDS[4][8:].tolist() == [
        F(v) for v in (0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733)
    ]
    np.testing.assert_array_equal(CENTROIDS[4][:8], -CENTROIDS[4][:7:-1])
    assert boundaries(2).tolist() == [F(-0.9814), 0.0, F(0.9814)]
    assert boundaries(4)[7] == 0.0 and boundaries(4)[-1] == F(2.401)
    # the x86 integer codebook: round(c·128/max|c|) clamped to −128..127
    for bits in (2, 4):
        c = CENTROIDS[bits]
        want = np.clip(np.round(c * (F(128) / np.abs(c).max())), -128, 127)
        np.testing.assert_array_equal(CODEBOOK_INT[bits], want)
    assert CODEBOOK_INT[2].tolist() == [-128, -38, 38, 127]


def test_tq_plus_quantile_anchor():
    """p = Φ(c_outer) by A&S 7.1.26, quantile = f32(2p − 1), lower probability (1 − q)/2."""
    assert M.std_normal_cdf(0.7978846) == pytest.approx(0.7875313, abs=1e-7)
    assert F(2 * M.std_normal_cdf(float(F(0.7978846))) - 1) == F(0.57506263)
    assert F(2 * M.std_normal_cdf(float(F(1.51))) - 1) == F(0.8689565)
    assert F(2 * M.std_normal_cdf(float(F(2.733))) - 1) == F(0.99372387)


def test_p_square_worked_example():
    """7 markers at p = [0, q/2, 0.8q, q, 1 − 0.2(1 − q), 1 − (1 − q)/2, 1]; desired
    positions 1 + p·(count − 1); estimate = the middle marker."""
    assert M.grid(0.9) == [0.0, 0.45, 0.72, 0.9, 0.92, 0.95, 1.0]
    assert M.desired(0.9, 10)[8].tolist() == [1.0, 4.15, 6.04, 7.3, 7.44, 7.6499999999999995, 8.0]
    V = np.array([[3.0, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]]).T
    assert M.p_square(V, np.array([0.5]))[0] == 4.154320987654321
    assert M.p_square(V, np.array([0.9]))[0] == 8.203145004572475
    assert M.p_square(V, np.array([0.1]))[0] == 1.9079861111111112
    # fewer than 7 values: the interpolated sample quantile (P2QuantileLinear)
    assert M.p_square(np.array([[1.0], [4], [2]]), np.array([0.75])).tolist() == [3.0]


# --- sizes, codes, scores ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "d", "size"),
    [
        ("qdrant:turbo4", 384, 200),
        ("qdrant:turbo2", 384, 104),
        ("qdrant:turbo1.5", 384, 80),  # D = 576 at one bit
        ("qdrant:turbo1", 384, 56),
        ("qdrant:turbo4", 100, 58),
        ("qdrant:turbo2", 100, 33),
        ("qdrant:turbo1.5", 100, 27),  # 150 -> 152 bits
        ("qdrant:turbo1", 100, 21),  # 100 -> 104 bits
    ],
)
def test_size_is_codes_plus_two_f32(name, d, size):
    tech = build_technique(name).fit(_unit(np.random.default_rng(0), 50, d))
    assert tech.bytes_per_vector(d) == size
    assert tech.encode(_unit(np.random.default_rng(1), 3, d)).shape == (3, size)


def _no_correction(tq_bits: float, d: int = 8) -> QdrantTurbo:
    code = QdrantTurbo(tq_bits)
    D = padded_dim(d, tq_bits)
    code.shift, code.scale = np.zeros(D, F), np.ones(D, F)
    return code


def test_tiny_encode_and_score_by_hand():
    """x = (0.6, 0.8, 0, …) at d = 8, shift 0, scale 1. rotate(e0) = (0, 0, ½, −½, ½, ½,
    0, 0), rotate(e1) = (0, ¼, ½, ¼, ¼, −½, −¼, −½); ×√8 gives (0, .566, 1.980, −.283,
    1.414, −.283, −.566, −1.131): 4-bit indices 7, 10, 14, 6, 12, 6, 5, 3 (boundaries
    below), nibbles low first -> 167, 110, 108, 53; then f32 1/‖c‖ = 1/2.9354 and
    xm = 0. Query e1: q_scale = 8127/0.5 = 16254, ints 0, 4064 (4063.5 rounds away),
    8127, …; Σ q·(U8 − 128) = 1832690, × 1/(16254·128/2.733) × 1/‖c‖ = 0.82016."""
    code = _no_correction(4)
    x = np.array([[0.6, 0.8, 0, 0, 0, 0, 0, 0]], F)
    stored = code.encode(x)[0]
    assert stored[:4].tolist() == [167, 110, 108, 53]
    c = [float(v) for v in CENTROIDS[4][[7, 10, 14, 6, 12, 6, 5, 3]]]
    cn = F(sum(v * v for v in c) ** 0.5)  # ‖c‖ = 2.93535 (summed left to right)
    assert stored[4:8].view("<f4")[0] == F(1) / cn == F(0.34067377)
    assert stored[8:].tolist() == [0, 0, 0, 0]
    ints, post, qm = code.query(np.array([[0, 1, 0, 0, 0, 0, 0, 0]], F))
    assert ints[0].tolist() == [0, 4064, 8127, 4064, 4064, -8127, -4064, -8127]
    assert post[0] == F(1) / (F(16254) * (F(128) / F(2.733))) and qm[0] == 0
    assert code.search_scores(np.array([[0, 1, 0, 0, 0, 0, 0, 0]], F), stored[None])[0, 0] == (
        0.8201572299003601
    )


def test_tiny_codes_other_widths():
    """2 bits: four codes a byte, lowest bits first; 1 bit: eight a byte, LSB first;
    1.5 bits: d = 8 padded to 16 and rotated over 16, one bit each."""
    x = np.array([[0.6, 0.8, 0, 0, 0, 0, 0, 0]], F)
    assert _no_correction(2).encode(x)[0, :2].tolist() == [121, 23]  # idx 1,2,3,1 / 3,1,1,0
    assert _no_correction(1).encode(x)[0, :1].tolist() == [22]  # bits 0,1,1,0,1,0,0,0
    assert _no_correction(1.5).encode(x)[0, :2].tolist() == [5, 129]
    q = np.array([[0, 1, 0, 0, 0, 0, 0, 0]], F)
    ints, post, _ = _no_correction(1).query(q)  # the 16-bit query of TQ+ 1-bit storage
    assert ints[0].tolist() == [0, 16384, 32767, 16384, 16384, -32767, -16384, -32767]
    assert post[0] == F(0.7978846) / (F(32767) / F(0.5))
    # Σ q·(±1) = −0 + 16384 + 32767 − 16384 + 16384 + 32767 + 16384 + 32767 = 131069;
    # × 0.7978846/65534 × 1/(0.7978846·√8) = 0.70711
    assert _no_correction(1).search_scores(q, _no_correction(1).encode(x))[0, 0] == (
        0.707112193107605
    )


def test_zero_vector_codes_the_middle_centroid():
    """quantization.rs quantize_zero_vector: every index n/2 − 1 or n/2; no TQ+ applied,
    xm = 0, and the renorm uses √D."""
    code = QdrantTurbo(4).fit(_unit(np.random.default_rng(0), 40, 16))
    stored = code.encode(np.zeros((1, 16), F))[0]
    assert set(stored[:8].tolist()) <= {7 | 7 << 4, 8 | 7 << 4, 7 | 8 << 4, 8 | 8 << 4}
    assert stored[12:].view("<f4")[0] == 0.0


@pytest.mark.parametrize("d", [127, 128, 300, 384, 513])
def test_bits4_self_and_antipodal_scores(d):
    """quantization.rs score_self_similarity / score_antipodal_is_negative (Cosine,
    Bits4): 1 and −1 within 0.05."""
    rng = np.random.default_rng(d)
    X = _unit(rng, 300, d)
    code = QdrantTurbo(4).fit(X)
    v = X[:5]
    assert np.abs(np.diag(code.search_scores(v, code.encode(v))) - 1).max() < 0.05
    assert np.abs(np.diag(code.search_scores(v, code.encode(-v))) + 1).max() < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_fit_learns_from_calibration_only_and_is_deterministic(name):
    rng = np.random.default_rng(3)
    cal, docs = _unit(rng, 400, 48), _unit(rng, 50, 48)
    a = build_technique(name, seed=0).fit(cal)
    shift, scale = a.code.shift.copy(), a.code.scale.copy()
    codes = a.encode(docs)
    a.encode(_unit(rng, 50, 48))  # encoding other vectors changes nothing learned
    np.testing.assert_array_equal(a.code.shift, shift)
    np.testing.assert_array_equal(a.code.scale, scale)
    b = build_technique(name, seed=0).fit(cal)
    assert np.array_equal(codes, b.encode(docs))
    other = build_technique(name, seed=0).fit(_unit(rng, 400, 48))
    assert not np.array_equal(other.code.shift, shift)
    assert a.code.params_bytes() == 8 * padded_dim(48, a.code.tq_bits)


def test_sample_of_a_large_calibration_set_draws_from_the_seed():
    """More calibration vectors than the sample size (2,048 for bits1): a seeded uniform
    sample, pushed in index order; up to it, every vector and no dependence on the seed."""
    rng = np.random.default_rng(4)
    big, small = _unit(rng, 2100, 16), _unit(rng, 500, 16)
    s0, s1 = QdrantTurbo(1, seed=0).fit(big), QdrantTurbo(1, seed=1).fit(big)
    assert not np.array_equal(s0.shift, s1.shift)
    np.testing.assert_array_equal(
        QdrantTurbo(1, 0).fit(small).shift, QdrantTurbo(1, 5).fit(small).shift
    )


@pytest.mark.parametrize(
    ("name", "rho"),
    [
        ("qdrant:turbo4", 0.99),
        ("qdrant:turbo2", 0.95),
        ("qdrant:turbo1.5", 0.85),
        ("qdrant:turbo1", 0.8),
    ],
)
def test_search_scores_rank_like_cosine(name, rho):
    rng = np.random.default_rng(5)
    X = _unit(rng, 700, 96)
    tech = build_technique(name).fit(X[:300])
    codes, Q = tech.encode(X[300:]), X[300:305]
    S, T = tech.code.search_scores(Q, codes), Q @ X[300:].T
    assert (S.argmax(axis=1) == np.arange(5)).all()  # each query finds itself
    r = [
        np.corrcoef(np.argsort(np.argsort(s)), np.argsort(np.argsort(t)))[0, 1]
        for s, t in zip(S, T, strict=True)
    ]
    assert min(r) > rho
    D = tech.decode(codes, 96)
    cos = (D * X[300:]).sum(axis=1) / np.linalg.norm(D, axis=1)
    assert cos.mean() > {0.99: 0.99, 0.95: 0.93, 0.85: 0.8, 0.8: 0.75}[rho]
