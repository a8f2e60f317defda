"""Weaviate presets pinned to Weaviate's sources and tests (github.com/weaviate/weaviate
at adcffc5) and to Go's math/rand/v2 golden outputs (src/math/rand/v2/pcg_test.go and
regress_test.go), which the fast rotation's swaps and signs are drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.engines import presets

# load every engine module through the registry first: importing one preset module
# directly fills PRESETS, after which the registry's lazy `_load` would not run
presets()

from embedbench.engines.weaviate import (  # noqa: E402
    BQ,
    PQ,
    RQ1,
    RQ8,
    FastRotation,
    GoRand,
    default_segments,
)
from embedbench.registry import build_technique  # noqa: E402


def _unit(rng, n, d):
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_go_pcg_matches_gos_golden_outputs():
    r = GoRand(1, 2)  # pcg_test.go TestPCG
    assert [r.uint64() for _ in range(3)] == [
        0xC4F5A58656EEF510,
        0x9DCEC3AD077DEC6C,
        0xC8D04605312F8088,
    ]
    r = GoRand(1, 2)  # regress_test.go: Float32(), Float64(), Perm(n) from New(NewPCG(1, 2))
    assert [r.float32() for _ in range(3)] == [
        np.float32(0.95955694),
        np.float32(0.8076733),
        np.float32(0.8135684),
    ]
    r = GoRand(1, 2)
    assert [r.float64() for _ in range(2)] == [0.6764556596678251, 0.4613862177205994]
    r = GoRand(1, 2)
    perms = [r.perm(n) for n in (0, 1, 5, 8, 9, 10, 16, 0, 1, 5)]
    assert perms[2:7] == [
        [1, 4, 2, 0, 3],
        [4, 3, 6, 1, 5, 2, 7, 0],
        [6, 5, 1, 8, 7, 2, 0, 3, 4],
        [9, 4, 2, 5, 6, 8, 1, 7, 0, 3],
        [5, 9, 3, 1, 4, 2, 10, 7, 15, 11, 0, 14, 13, 8, 6, 12],
    ]
    assert perms[9] == [4, 2, 1, 3, 0]


def test_default_fast_rotation_is_pinned_and_orthogonal():
    """NewFastRotation(384, 3, DefaultFastRotationSeed): the first swaps and signs."""
    f = FastRotation(384, 0x535AB5105169B1DF)
    assert f.out_dim == 384 and len(f.swaps) == 3
    assert f.swaps[0][:3] == [(0, 287), (1, 348), (2, 342)]
    assert f.swaps[2][-2:] == [(327, 369), (356, 378)]
    assert f.signs[0][:6] == [1.0, 1.0, -1.0, 1.0, -1.0, -1.0]
    # blocks of 256, 64, 64, each normalised: entries are multiples of 1/4096
    np.testing.assert_array_equal(f.matrix[0, :4] * 4096, [448, 160, -368, 224])
    np.testing.assert_allclose(f.matrix @ f.matrix.T, np.eye(384), atol=1e-12)
    assert FastRotation(100, 1).out_dim == 128  # padded to a multiple of 64


def _swap_pairs(n):  # one round, swaps (0,1), (2,3), ..., all signs +1: e_0 -> H e_1
    return FastRotation(
        n, 0, rounds=1, swaps=[[(2 * i, 2 * i + 1) for i in range(n // 2)]], signs=[[1.0] * n]
    )


def test_rq8_code_recomputed_from_the_source():
    """e_0 rotates to column 1 of H64/8 (±1/8 alternating): lower −1/8, step 0.25/255,
    codes 255, 0, …; header big-endian (lower, step, step·Σc, ‖x‖²)."""
    rq = RQ8(rotation=_swap_pairs(64))
    x = np.zeros((1, 64), np.float32)
    x[0, 0] = 1
    code = rq.encode(x)
    assert code.shape == (1, rq.bytes_per_vector(64)) == (1, 80)
    assert code[0, :16].tobytes().hex() == "be0000003a808081410000003f800000"
    assert list(code[0, 16:22]) == [255, 0, 255, 0, 255, 0]
    assert rq.search_scores(x, code)[0, 0] == pytest.approx(1.0, abs=1e-6)
    y = np.zeros((1, 64), np.float32)
    y[0, 1] = 1  # rotates to the all-(1/8) column: orthogonal to x's code
    assert rq.search_scores(y, code)[0, 0] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(rq.decode(code, 64), x, atol=1e-6)


def test_rq8_distance_estimate_matches_weaviates_test():
    """rotational_quantization_test.go TestRQDistanceEstimate: d=2, seed 42, 8 bits,
    q=(1,0), x=(a,a): the cosine distance estimate is within 1e-3 of 1 − a."""
    a = np.float32(1 / np.sqrt(2))
    rq = RQ8(rotation=FastRotation(2, 42))
    cx = rq.encode(np.array([[a, a]], np.float32))
    dist = 1 - rq.search_scores(np.array([[1, 0]], np.float32), cx)[0, 0]
    assert abs(dist - (1 - a)) < 1e-3


def test_rq1_code_and_score_recomputed_from_the_source():
    """d=256 (minCodeBits): e_0 rotates to ±1/16 alternating; bits set for > 0 LSB
    first (0x55), step = ‖rx‖²/‖rx‖₁ = 1/16 and ‖rx‖² = 1 as little-endian float32.
    Query e_0 with zero rounding: c = 31 or 0, so (2c − 31) = ±31 and the estimate is
    (1/16/31)·(1/16)·31·256 = 1; query e_1 rotates to all +1/16: estimate 0."""
    rq = RQ1(rotation=_swap_pairs(256))
    rq.rounding = np.zeros(256, np.float32)
    x = np.zeros((2, 256), np.float32)
    x[0, 0] = x[1, 1] = 1
    code = rq.encode(x[:1])
    assert code.shape == (1, rq.bytes_per_vector(256)) == (1, 40)
    assert code[0, :8].tobytes().hex() == "0000803d0000803f"
    assert set(code[0, 8:]) == {0x55}
    np.testing.assert_allclose(rq.search_scores(x, code)[:, 0], [1.0, 0.0], atol=1e-6)
    c, step = rq.encode_query(x[:1])
    assert list(c[0, :4]) == [31, 0, 31, 0] and step[0] == np.float32(1 / 16) / np.float32(31)
    np.testing.assert_allclose(rq.decode(code, 256), x[:1], atol=1e-6)  # ±‖x‖/√D


def test_rq1_rounding_offsets_are_weaviates():
    """NewBinaryRotationalQuantizer: rounding[i] = PCG(seed, 0x4f8ebf70e130707f).Float32()."""
    rq = RQ1(0).fit(np.zeros((1, 384), np.float32))
    # Float32() = (Uint64() >> 40) / 2^24: the 24-bit integers
    assert list((rq.rounding[:4] * 2**24).astype(np.int64)) == [9248431, 8312413, 982084, 14961364]
    assert rq.bytes_per_vector(384) == 56 and rq.bytes_per_vector(100) == 40  # padded to 256


@pytest.mark.parametrize(
    ("value", "bit"),  # binary_quantization_test.go TestBinaryQuantizerBitAssignmenFixedValues
    [(-1.0, 1), (1.0, 0), (0.0, 0), (np.nan, 0), (np.inf, 0), (-np.inf, 1)],
)
def test_bq_bit_assignment_matches_weaviate(value, bit):
    code = BQ().encode(np.array([[value]], np.float32))
    assert code.shape == (1, 8) and code[0, 0] & 1 == bit and not code[0, 1:].any()


def test_bq_layout_and_hamming():
    x = np.array([[-1, 1, -1, -1, 1, 1, 1, 1, -1] + [1] * 55 + [-1]], np.float32)  # d=65
    code = BQ().encode(x)
    assert code.shape == (1, 16)  # two uint64 words
    assert list(code[0, :2]) == [0b00001101, 0b00000001] and code[0, 8] == 1
    q = -x
    assert BQ().search_scores(q, code)[0, 0] == -65
    np.testing.assert_array_equal(BQ().decode(code, 65), x)


def test_pq_default_segments_and_lookup_distance():
    """CalculateOptimalSegments; the LUT distance max(0, 1 − Σ_s ⟨q_s, c_s⟩) by hand."""
    assert [default_segments(d) for d in (384, 768, 1536, 3072, 100, 7)] == [
        96,
        128,
        256,
        384,
        50,
        7,
    ]
    pq = PQ(segments=2)
    pq.codebook = np.array([[[1, 0], [0, 1]], [[0.5, 0.5], [-1, 0]]], np.float32)
    codes = pq.encode(np.array([[0.9, 0.1, 0.4, 0.6], [0.1, 0.9, -0.8, 0.1]], np.float32))
    np.testing.assert_array_equal(codes, [[0, 0], [1, 1]])
    q = np.array([[0.6, 0.8, 0.0, 0.0], [1, 0, 0.6, 0.8]], np.float32)
    # q0: 0.6 + 0 -> 0.4; 0.8 + 0 -> 0.2. q1: 1 + 0.7 -> 1.7 -> 0 (clamped); 0 - 0.6 -> 1.6
    np.testing.assert_allclose(pq.search_scores(q, codes), [[-0.4, -0.2], [0.0, -1.6]], atol=1e-6)


def test_pq_kmeans_trains_on_calibration_and_is_deterministic():
    rng = np.random.default_rng(3)
    calib, other = _unit(rng, 600, 16), _unit(rng, 50, 16)
    a, b = PQ(seed=1).fit(calib), PQ(seed=1).fit(calib)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    assert a.codebook.shape == (8, 256, 2)  # d=16 < 256: d/2 segments
    before = a.codebook.copy()
    np.testing.assert_array_equal(a.encode(other), b.encode(other))
    np.testing.assert_array_equal(a.codebook, before)
    assert not np.array_equal(PQ(seed=2).fit(calib).codebook, a.codebook)
    with pytest.raises(ValueError):
        PQ().fit(calib[:100])  # fewer points than centroids: Weaviate refuses
    err = np.linalg.norm(a.decode(a.encode(other), 16) - other, axis=1).mean()
    assert err < 0.6


@pytest.mark.parametrize("name", ["weaviate:rq8", "weaviate:rq1", "weaviate:bq", "weaviate:pq"])
def test_presets_sizes_determinism_and_seeds(name):
    rng = np.random.default_rng(0)
    calib, X = _unit(rng, 300, 384), _unit(rng, 40, 384)
    t1, t2 = build_technique(name, 0).fit(calib), build_technique(name, 0).fit(calib)
    c1 = t1.encode(X)
    expected = {"weaviate:rq8": 400, "weaviate:rq1": 56, "weaviate:bq": 48, "weaviate:pq": 96}
    assert c1.shape == (40, expected[name]) == (40, t1.code.bytes_per_vector(384))
    np.testing.assert_array_equal(c1, t2.encode(X))
    if name != "weaviate:bq":
        assert not np.array_equal(build_technique(name, 1).fit(calib).encode(X), c1)
    assert t1.code.engine == "Weaviate"
    S = t1.code.search_scores(X[:5], c1)
    assert S.shape == (5, 40) and (S.argmax(axis=1) == np.arange(5)).all()
