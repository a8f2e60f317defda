"""Elasticsearch presets pinned to Lucene's / Elasticsearch's sources.

Quantiles: Lucene's own TestScalarQuantizer (testQuantiles, testEdgeCase). Codes,
corrections and scores: worked examples computed by hand from ScalarQuantizer
.quantizeFloat, ScalarQuantizedVectorSimilarity.DotProduct, OffHeapQuantizedByteVector
Values.compressBytes, ScalarQuantizer.candidateGridSearch, OptimizedScalarQuantizer
(ES, b2fb21f) and ES818BinaryFlatVectorsScorer.quantizedScore (the derivations are in
the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.engines import preset
from embedbench.engines.lucene_quant import (
    ScalarQuantizer,
    candidate_grid,
    default_confidence_interval,
    grid_search,
    osq,
    upper_and_lower_quantile,
)

QUANTILES = [(0.9, 50, 949), (0.95, 25, 974), (0.99, 5, 994)]  # TestScalarQuantizer


@pytest.mark.parametrize(("ci", "lower", "upper"), QUANTILES)
def test_quantiles_match_lucene_test_scalar_quantizer(ci, lower, upper):
    percs = np.random.default_rng(0).permutation(1000).astype(np.float32)[None]
    lo, hi = upper_and_lower_quantile(percs, ci)  # TestScalarQuantizer.testQuantiles
    assert (lo[0], hi[0]) == (lower, upper)
    lo, hi = upper_and_lower_quantile(np.ones((1, 5), np.float32), 0.9)  # testEdgeCase
    assert (lo[0], hi[0]) == (1, 1)


def test_int8_quantiles_average_chunks_of_20_vectors_at_the_default_interval():
    # d = 2: confidence max(0.9, 1 - 1/3) = 0.9; a chunk holds 40 values, selectorIndex
    # = (int) (40 * 0.1 / 2 + 0.5) = 2: chunk 0..39 gives (2, 37), chunk 100..139 gives
    # (102, 137); the mean is (52, 87); the 41st vector (a tail short of a chunk) is unused
    X = np.concatenate([np.arange(40), 100 + np.arange(40)]).reshape(40, 2)
    X = np.vstack([X, [[1000, -1000]]]).astype(np.float32)
    code = preset("es:int8_hnsw", 0).fit(X)
    assert (code.sq.lo, code.sq.hi, code.sq.bits) == (52, 87, 7)
    assert default_confidence_interval(2) == np.float32(0.9)
    assert default_confidence_interval(384) == np.float32(1 - 1 / 385)


def test_int8_codes_offsets_and_score_by_hand():
    # ScalarQuantizer(-1, 1, 7): scale 127/2, alpha 2/127. quantizeFloat of v: q =
    # round((v + 1) * 63.5), offset term -(v + 1/2) + (v + 1 - q*alpha) * q*alpha
    #   x = 0.5: 95.25 -> 95, -1 + 190/32258;   x = -0.25: 47.625 -> 48, -1/4 - 288/64516
    #   x = 0.9: 120.65 -> 121, -1.4 - 169.4/16129;   x = -1: 0, +1/2
    #   y = 0.5: 95 (as above) twice;  y = -0.5: 31.75 -> 32, -64/32258
    #   y = 0.25: 79.375 -> 79, -3/4 + 474/64516
    code = preset("es:int8_hnsw", 0)
    code.sq = ScalarQuantizer(-1, 1, 7)
    x = np.array([[0.5, -0.25, 0.9, -1.0]], np.float32)
    y = np.array([[0.5, 0.5, -0.5, 0.25]], np.float32)
    stored = code.encode(x)
    assert stored.shape == (1, 4 + 4) and code.bytes_per_vector(4) == 8
    assert list(stored[0, :4]) == [95, 48, 121, 0]
    x_off = -1 + 190 / 32258 - 1 / 4 - 288 / 64516 - 1.4 - 169.4 / 16129 + 1 / 2
    assert stored[0, 4:].view("<f4")[0] == pytest.approx(x_off, abs=2e-6)  # -2.1590768
    qc, q_off = code.sq.quantize(y)
    y_off = 2 * (-1 + 190 / 32258) - 64 / 32258 - 3 / 4 + 474 / 64516
    assert list(qc[0]) == [95, 95, 32, 79] and q_off[0] == pytest.approx(y_off, abs=2e-6)
    # DotProduct: (1 + dot * alpha^2 + y_off + x_off) / 2, dot = 95*95 + 48*95 + 121*32
    dot = 95 * 95 + 48 * 95 + 121 * 32
    assert dot == 17457
    expected = (1 + dot * 4 / 127**2 + y_off + x_off) / 2  # 0.2186744; float: x.y = -0.575
    assert code.search_scores(y, stored)[0, 0] == pytest.approx(expected, abs=2e-6)
    np.testing.assert_allclose(code.decode(stored, 4)[0], np.array([95, 48, 121, 0]) * 2 / 127 - 1)


def test_scalar_quantizer_rounds_half_up_like_java():
    # Math.round(2.5f) = 3 and Math.round(0.5f) = 1 (numpy's rint gives 2 and 0);
    # ScalarQuantizer(0, 15, 4): scale 1, alpha 1, offsets (2.5 - 3)*3 + (0.5 - 1)*1 = -2
    codes, off = ScalarQuantizer(0, 15, 4).quantize(np.array([[2.5, 0.5]], np.float32))
    assert list(codes[0]) == [3, 1] and off[0] == -2.0


def test_int4_packs_two_codes_a_byte_as_lucene_compress_bytes():
    # compressBytes: byte i = code[i] << 4 | code[i + d/2]; codes 1 2 3 4 -> 0x13 0x24
    code = preset("es:int4_hnsw", 0)
    code.sq = ScalarQuantizer(0, 15, 4)
    stored = code.encode(np.array([[1, 2, 3, 4]], np.float32))
    assert list(stored[0]) == [0x13, 0x24, 0, 0, 0, 0]  # then the float offset 0.0
    assert code.bytes_per_vector(384) == 192 + 4
    assert code.check(383) is not None and code.check(384) is None  # ES: even d only
    np.testing.assert_array_equal(code.decode(stored, 4), [[1, 2, 3, 4]])
    # the 4-bit query 1 1 1 1 (offset 0): (1 + 10 * alpha^2 + 0 + 0) / 2 = 5.5
    assert code.search_scores(np.ones((1, 4), np.float32), stored)[0, 0] == 5.5


def test_int4_dynamic_quantile_grid_and_its_search_order():
    # candidates al + i (au - al) / 32 and bl + i (bu - bl) / 32, i = 0, 2, .., 30
    lower, upper = candidate_grid(-1, -0.5, 0.5, 1)
    assert lower[0] == -1 and lower[6] == -0.8125 and lower[15] == -0.53125
    assert upper[0] == 0.5 and upper[9] == 0.78125 and upper[15] == 0.96875

    def peaked(at):  # a correlation peaked at candidate pair `at` (indices)
        pairs = [(float(lo), float(hi)) for lo in lower for hi in upper]
        index = {p: divmod(k, len(upper)) for k, p in enumerate(pairs)}
        return lambda lo, hi: -np.square(np.subtract(index[float(lo), float(hi)], at)).sum()

    # coarse pass over indices 0, 4, 8, 12 keeps the first best, (4, 8); the fine pass
    # looks at (5..7) x (9..11) and finds (6, 9)
    assert grid_search(lower, upper, peaked((6, 9))) == (lower[6], upper[9])
    # only the 3 x 3 pairs after the coarse best are searched: (3, 3) is never reached
    assert grid_search(lower, upper, peaked((3, 3))) == (lower[4], upper[4])


def test_int4_fit_picks_a_candidate_pair_of_its_own_grid():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 16)).astype(np.float32)
    code = preset("es:int4_hnsw", 0).fit(X)
    assert code.sq.bits == 4 and code.sq.lo < 0 < code.sq.hi
    assert code.sq.hi - code.sq.lo < X.max() - X.min()  # quantiles, not min/max


def _tiled(pattern, times=18):
    return np.tile(np.array(pattern, np.float32), times)[None]


def test_bbq_worked_example_where_the_codes_are_exact():
    # centroid c (fitted from c ± z); x - c = 0.25 (1, -1, 1, -1), y - c = 0.5 (1, -1, -1, 1),
    # tiled to d = 72. Documents, 1 bit: mean 0, std t; the initial interval ±0.798 t;
    # one coordinate-descent step: s = (1, 0, 1, 0), daa = dbb = 36, dab = 0,
    # dax = -36 t, dbx = 36 t, scale = 0.9 / (72 t^2): a = -t, b = t (loss 0), then no move.
    # Query, 4 bits: ±2.514 u clamps to ±u, codes 15 0 0 15 (sum 30 a tile).
    c, z = [0.125, 0.25, -0.375, 0.5], [0.5, -0.25, 0.125, 1.0]
    cal = np.vstack([_tiled(np.add(c, z)), _tiled(np.subtract(c, z))])
    x = _tiled(np.add(c, [0.25, -0.25, 0.25, -0.25]))  # (0.375, 0, -0.125, 0.25)
    y = _tiled(np.add(c, [0.5, -0.5, -0.5, 0.5]))  # (0.625, -0.25, -0.875, 1)
    code = preset("es:bbq_hnsw", 0).fit(cal)
    np.testing.assert_array_equal(code.centroid, _tiled(c)[0])
    stored = code.encode(x)
    assert stored.shape == (1, 16 + 14) and code.bytes_per_vector(384) == 48 + 14
    assert list(stored[0, :16]) == [0xAA] * 9 + [0] * 7  # 72 bits, padded to 128
    lower, upper, add = stored[0, 16:28].view("<f4")
    assert (lower, upper) == (-0.25, 0.25)
    assert add == pytest.approx(18 * 0.21875)  # x.c
    assert stored[0, 28:].view("<u2")[0] == 36
    qc, ay, by, qadd, qsum = osq(y, code.centroid, 4)
    assert list(qc[0, :4]) == [15, 0, 0, 15] and (ay[0], by[0], qsum[0]) == (-0.5, 0.5, 540)
    # quantizedScore: ax ay d + ay lx x1 + ax ly y1 + lx ly <q, bits> = 9 - 9 - 9 + 9 = 0,
    # plus y.c + x.c - c.c = 15.1875 + 3.9375 - 8.4375 = 10.6875 = x.y exactly
    assert float(np.dot(x[0], y[0])) == 10.6875
    assert code.search_scores(y, stored)[0, 0] == pytest.approx((1 + 10.6875) / 2, abs=1e-5)
    np.testing.assert_allclose(code.decode(stored, 72), x, atol=1e-7)


def test_bbq_interval_optimisation_by_hand():
    # x = (3, 1, -1, -3), centroid 0: std sqrt(5), initial ±0.798 sqrt(5) = ±1.784382;
    # bits s = (1, 1, 0, 0): daa = dbb = 2, dab = 0, dax = -4, dbx = 4, scale = 0.9 / 20;
    # m0 = m2 = 0.92, m1 = -0.72, det = 0.328: a = -0.8 / 0.328 = -100/41, b = 100/41
    # (loss 1.8935 -> 0.4878), and the next step does not move.
    # 4-bit query y = x: ±2.514 sqrt(5) clamps to ±3, codes 15 10 5 0, and the step
    # gives back (-3, 3).
    code = preset("es:bbq_hnsw", 0).fit(np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.float32))
    x = np.array([[3, 1, -1, -3]], np.float32)
    stored = code.encode(x)
    assert stored[0, 0] == 0b11000000 and stored.shape == (1, 8 + 14)
    lower, upper, add = stored[0, 8:20].view("<f4")
    assert (lower, upper) == pytest.approx((-100 / 41, 100 / 41), rel=1e-6)
    assert add == 0 and stored[0, 20:].view("<u2")[0] == 2
    qc, ay, by, _, qsum = osq(x, code.centroid, 4)
    assert list(qc[0]) == [15, 10, 5, 0] and qsum[0] == 30
    assert ay[0] == pytest.approx(-3, abs=1e-6) and by[0] == pytest.approx(3, abs=1e-6)
    # estimate 1200/41 - 1200/41 - 1200/41 + 2000/41 = 800/41 = x̂.y (x.y = 20)
    assert code.search_scores(x, stored)[0, 0] == pytest.approx((1 + 800 / 41) / 2, rel=1e-5)
    assert code.check(63) is not None and code.check(64) is None  # BBQ_MIN_DIMS


@pytest.mark.parametrize("name", ["es:int8_hnsw", "es:int4_hnsw", "es:bbq_hnsw"])
def test_sizes_determinism_and_calibration_only_fitting(name):
    rng = np.random.default_rng(0)
    cal = rng.normal(size=(300, 64)).astype(np.float32)
    docs = rng.normal(size=(50, 64)).astype(np.float32)
    a, b = preset(name, 0).fit(cal), preset(name, 1).fit(cal)
    ca = a.encode(docs)
    assert ca.shape == (50, a.bytes_per_vector(64)) and ca.dtype == np.uint8
    np.testing.assert_array_equal(ca, b.encode(docs))  # the same bytes, any seed

    def state(code):
        sq = getattr(code, "sq", None)
        return [getattr(code, "centroid", None)] + ([sq.lo, sq.hi] if sq else [])

    before = state(a)
    a.encode(rng.normal(size=(20, 64)).astype(np.float32) * 5)  # encoding learns nothing
    assert all(np.array_equal(x, y) for x, y in zip(before, state(a), strict=True))
    c = preset(name, 0).fit(np.vstack([cal, docs]))  # fitted on other vectors: other codes
    assert not np.array_equal(c.encode(docs), ca)
