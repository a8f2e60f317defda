"""RaBitQ presets: Milvus's IVF_RABITQ (knowhere d7cfd88: faiss RR + IndexIVFRaBitQ,
rbq_bits 1 and 4) and LanceDB's IVF_RQ (lance d2039d7, rust/lance-index/src/vector/bq/,
num_bits 1, 2, 4), pinned to examples recomputed by hand from their sources and to
faiss's own training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedbench.engines import presets

presets()  # load every engine module through the registry first (see test_engines_weaviate)

from embedbench.engines import rabitq  # noqa: E402
from embedbench.engines.rabitq import LanceRaBitQ, MilvusRaBitQ  # noqa: E402
from embedbench.registry import build_technique  # noqa: E402


def _data(seed=0, n=600, d=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :5] += 0.8  # a non-zero mean, as embeddings have
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _faiss_float_query_scores(index, docs, Q):
    """faiss's own IndexRaBitQ search of `docs` added to a trained `RR,RaBitQ…` index,
    float query (qb = 0, Milvus's default), every document scored: n_q × n_docs."""
    import faiss

    index.add(docs)
    params = faiss.RaBitQSearchParameters()
    params.qb = 0
    chain = faiss.downcast_index(index)
    inner = faiss.downcast_index(chain.index)
    D, labels = inner.search(chain.chain.at(0).apply(Q), len(docs), params=params)
    expected = np.empty_like(D)
    np.put_along_axis(expected, labels, D, axis=1)
    return expected


def test_milvus_codes_are_faiss_rr_rabitq_trained_as_knowhere_trains_it():
    """knowhere builds RandomRotationMatrix(d, d) + IndexIVFRaBitQ and trains it: the
    rotation's train() is init(12345). Seed 0 gives exactly those codes and scores."""
    import faiss

    X = _data()
    calib, docs, Q = X[:400], X[400:], X[:3]
    index = faiss.index_factory(64, "RR,RaBitQ", faiss.METRIC_INNER_PRODUCT)
    index.train(calib)  # no seeding: faiss's own RR training
    code = MilvusRaBitQ(0).fit(calib)
    codes = code.encode(docs)
    ref = index.sa_encode(docs)
    np.testing.assert_array_equal(codes[:, :8], ref[:, :8])  # the sign bits
    # the factors, up to the centre's float sum order (faiss trains here on 1 thread)
    np.testing.assert_allclose(codes[:, 8:].view("<f4"), ref[:, 8:].view("<f4"), atol=1e-6)
    assert codes.shape[1] == code.bytes_per_vector(64) == 64 // 8 + 8
    expected = _faiss_float_query_scores(index, docs, Q)
    np.testing.assert_allclose(code.search_scores(Q, codes), expected, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(MilvusRaBitQ(1).fit(calib).encode(docs), codes)


def test_milvus_rabitq4_codes_are_faiss_rr_rabitq4_trained_as_knowhere_trains_it():
    """rbq_bits = 4: knowhere passes nb_bits = 4 to IndexIVFRaBitQ, i.e. faiss's
    `RR,RaBitQ4`: 8 bytes of signs, 12 of factors, 24 of 3-bit codes, 8 of factors
    (52 at d = 64, 212 at d = 384). Codes and float-query scores equal faiss's own."""
    import faiss

    X = _data()
    calib, docs, Q = X[:400], X[400:], X[:3]
    index = faiss.index_factory(64, "RR,RaBitQ4", faiss.METRIC_INNER_PRODUCT)
    index.train(calib)
    code = MilvusRaBitQ(0, nb_bits=4).fit(calib)
    codes = code.encode(docs)
    ref = index.sa_encode(docs)
    assert codes.shape[1] == code.bytes_per_vector(64) == 8 + 12 + 24 + 8 == 52
    assert MilvusRaBitQ(0, nb_bits=4).bytes_per_vector(384) == 48 + 12 + 144 + 8 == 212
    np.testing.assert_array_equal(codes[:, :8], ref[:, :8])  # the sign bits
    np.testing.assert_array_equal(codes[:, 20:44], ref[:, 20:44])  # the extended bits
    for f in (slice(8, 20), slice(44, 52)):  # factors, up to the centre's float sum order
        got, want = codes[:, f].copy().view("<f4"), ref[:, f].copy().view("<f4")
        np.testing.assert_allclose(got, want, atol=1e-6)
    expected = _faiss_float_query_scores(index, docs, Q)
    S4 = code.search_scores(Q, codes)
    np.testing.assert_allclose(S4, expected, rtol=1e-6, atol=1e-6)
    # the extended bits are used: 4-bit scores track <q, x> far better than 1-bit's
    c1 = MilvusRaBitQ(0).fit(calib)
    err1 = np.abs(c1.search_scores(Q, c1.encode(docs)) - Q @ docs.T).mean()
    err4 = np.abs(S4 - Q @ docs.T).mean()
    assert err4 < err1 / 3
    # rbq_bits_query only quantizes the 1-bit pre-filter: the full scores use the float
    # query, so an SQ8 query scores every code exactly as the float one
    q8 = MilvusRaBitQ(0, query_bits=8, nb_bits=4).fit(calib)
    np.testing.assert_array_equal(q8.search_scores(Q, codes), S4)
    with pytest.raises(ValueError, match="1..9"):
        MilvusRaBitQ(0, nb_bits=10)


def test_milvus_float_query_estimator_by_hand():
    """With a float query faiss's RaBitQ scores <q, c + r̂> + <c, r − r̂> (r = x − c in
    the rotated space, r̂ the decoded residual): recomputed from the decoded vectors."""
    import faiss

    X = _data(1)
    code = MilvusRaBitQ(0).fit(X[:400])
    docs, Q = X[400:], X[:4]
    codes = code.encode(docs)
    dec = code.decode(codes, 64)
    chain = faiss.downcast_index(code.index)
    R = faiss.downcast_VectorTransform(chain.chain.at(0))
    c_rot = faiss.vector_to_array(faiss.downcast_index(chain.index).center)
    c = R.reverse_transform(c_rot[None, :])[0]  # the centre, back in input space
    expected = Q @ dec.T + ((docs - dec) @ c)[None, :]
    np.testing.assert_allclose(code.search_scores(Q, codes), expected, atol=2e-5)
    q8 = build_technique("milvus:rabitq-q8").fit(X[:400]).code
    assert q8.query_bits == 8 and np.abs(q8.search_scores(Q, codes) - expected).max() < 0.05


def _lance_identity(d=8):
    code = LanceRaBitQ()
    code.centroid = np.zeros(d, np.float32)
    code.P = np.eye(d, dtype=np.float32)
    return code


def test_lance_code_and_distance_recomputed_from_the_source():
    """d=8, P = I, c = 0. x = (±1/√8) with signs + − + + − − + −: bits LSB first
    1,0,1,1,0,0,1,0 = 0x4D; add = ‖r‖² = 1, scale = −2‖r‖²/(‖Pr‖₁/√8) = −2.
    y = e_0: every entry is +0 or positive (is_sign_positive), so 0xFF; add 1,
    scale −2√8. Query q = x: the u8 table spans [−3a, 3a] (a = 1/√8); for x its
    entries 255 and 170 give exactly 4a, estimate 0; for y, 213 + 43 give
    6a/255, estimate 2 − 4·6a/255 (exact: 2 − 2a)."""
    a = 1 / math.sqrt(8)
    x = np.array([[a, -a, a, a, -a, -a, a, -a]], np.float32)
    y = np.eye(8, dtype=np.float32)[:1]
    code = _lance_identity()
    codes = code.encode(np.vstack([x, y]))
    assert codes.shape == (2, 1 + 8) == (2, code.bytes_per_vector(8))
    assert list(codes[:, 0]) == [0x4D, 0xFF]
    factors = codes[:, 1:].copy().view("<f4")
    np.testing.assert_allclose(factors, [[1, -2], [1, -2 * math.sqrt(8)]], rtol=1e-6)
    quant, lo, _, _, _ = code.distance_tables(x)
    assert quant[0, 0, 13] == 255 and quant[0, 1, 4] == 170 and lo[0] == pytest.approx(-3 * a)
    assert quant[0, 0, 15] == 213 and quant[0, 1, 15] == 43
    scores = code.search_scores(x, codes)[0]
    np.testing.assert_allclose(-scores, [0.0, 2 - 4 * 6 * a / 255], atol=1e-5)
    np.testing.assert_allclose(code.decode(codes[:1], 8), x, atol=1e-6)  # r̂ = r here


def test_lance_num_bits_2_recomputed_from_the_source():
    """num_bits b = 2, d = 4: D = 8 and P is the first 4 columns of an orthogonal
    8 × 8 matrix, here (I; I)/√2, so Pr = (r, r)/√2, c = 0. x = (½, −½, ½, ½): the
    signs + − + + twice, LSB first 1011 1011 = 0xDD; add = 1, ‖Pr‖₁ = 8/(2√2) = √8,
    so scale = −2·1/(√8/√8) = −2. y = e_1: Pr has 0 (is_sign_positive: +0 is
    positive) and 1/√2, so 0xFF; ‖Pr‖₁/√8 = ½: scale −4. Query q = x, h = 1/(2√2):
    two groups (h, −h, h, h); table min −h (entry 2), max 3h (entry 13); u8:
    entry 13 → 255, entry 15 (2h) → round(191.25) = 191. x: 255 + 255 → Σ = 6h,
    (2·6h − 4h)/√8 = 1, distance −2 + 1 + 1 = 0. y: 191 + 191 → Σ = 1018h/255,
    (2Σ − 4h)/√8 = 127/255, distance −4·127/255 + 2."""
    code = LanceRaBitQ(num_bits=2)
    code.centroid = np.zeros(4, np.float32)
    code.P = np.vstack([np.eye(4), np.eye(4)]).astype(np.float32) / np.float32(math.sqrt(2))
    x = np.array([[0.5, -0.5, 0.5, 0.5]], np.float32)
    y = np.eye(4, dtype=np.float32)[1:2]
    codes = code.encode(np.vstack([x, y]))
    assert codes.shape == (2, 1 + 8) == (2, code.bytes_per_vector(4))
    assert list(codes[:, 0]) == [0xDD, 0xFF]
    factors = codes[:, 1:].copy().view("<f4")
    np.testing.assert_allclose(factors, [[1, -2], [1, -4]], rtol=1e-6)
    quant, lo, _, sum_q, _ = code.distance_tables(x)
    assert quant.shape == (1, 2, 16) and lo[0] == pytest.approx(-1 / (2 * math.sqrt(2)))
    assert quant[0, 0, 13] == quant[0, 1, 13] == 255 and quant[0, 0, 15] == 191
    assert sum_q[0] == pytest.approx(4 / (2 * math.sqrt(2)))
    scores = code.search_scores(x, codes)[0]
    np.testing.assert_allclose(-scores, [0.0, 2 - 4 * 127 / 255], atol=1e-5)
    np.testing.assert_allclose(code.decode(codes[:1], 4), x, atol=1e-6)  # r̂ = r here
    assert LanceRaBitQ(0, num_bits=2).bytes_per_vector(384) == 96 + 8


def test_lance_table_sums_wrap_in_u16_lanes():
    """Lance's AVX2/AVX-512 kernels sum the u8 entries in u16 lanes (wrapping): d = 1032,
    P = I, c = 0, x = q = (a, …, a), a = 1/√1032. Every group's table spans [0, 4a], so
    x's code (all ones) picks entry 255 in each of 258 groups: 65,790 ≡ 254 (mod 2^16),
    Σ = 254·4a/255, and the distance (scale −2, add 1, ‖q‖² 1) is
    −2·(2Σ − 1032a)/√1032 + 2 = 4 − 2032/(255·516) instead of 0."""
    d = 1032
    code = _lance_identity(d)
    x = np.full((1, d), 1 / math.sqrt(d), np.float32)
    codes = code.encode(x)
    assert (codes[0, : d // 8] == 0xFF).all()
    dist = -code.search_scores(x, codes)[0, 0]
    assert dist == pytest.approx(4 - 2032 / (255 * 516), abs=1e-5)


def test_lance_estimator_tracks_the_float_l2_distance():
    X = _data(2)
    code = LanceRaBitQ(0).fit(X[:400])
    docs, Q = X[400:], X[:5]
    S = code.search_scores(Q, code.encode(docs))
    true = ((Q[:, None, :] - docs[None, :, :]) ** 2).sum(axis=2)
    assert np.corrcoef(-S.ravel(), true.ravel())[0, 1] > 0.8
    np.testing.assert_allclose(code.P @ code.P.T, np.eye(64), atol=1e-5)
    np.testing.assert_allclose(code.centroid, X[:400].mean(axis=0), atol=1e-6)


SIZES_384 = {
    "milvus:rabitq": 56,
    "milvus:rabitq-q8": 56,
    "milvus:rabitq4": 212,
    "lancedb:rabitq": 56,
    "lancedb:rabitq-b2": 104,
    "lancedb:rabitq-b4": 200,
}


@pytest.mark.parametrize("name", sorted(SIZES_384))
def test_presets_sizes_determinism_and_calibration_only(name, monkeypatch):
    X = _data(3, n=500, d=384)
    calib, other = X[:300], X[300:]
    t1 = build_technique(name, 0).fit(calib)
    c1 = t1.encode(other)
    assert c1.shape == (200, SIZES_384[name]) == (200, t1.code.bytes_per_vector(384))
    np.testing.assert_array_equal(c1, build_technique(name, 0).fit(calib).encode(other))
    assert not np.array_equal(build_technique(name, 1).fit(calib).encode(other), c1)
    # encoding more vectors changes nothing fitted
    np.testing.assert_array_equal(t1.encode(other), c1)
    assert t1.code.engine in ("Milvus", "LanceDB")
    S = t1.code.search_scores(other[:5], c1)
    assert S.shape == (5, 200)
    if name != "lancedb:rabitq-b4":
        assert (S.argmax(axis=1) == np.arange(5)).all()  # each query finds itself
        return
    # 384 groups: a self-match's u16 sum can wrap, as Lance's x86 kernels do
    with monkeypatch.context() as m:
        m.setattr(rabitq, "U16", 1 << 40)  # an accumulator that cannot wrap
        unwrapped = t1.code.search_scores(other[:5], c1)
    assert (unwrapped.argmax(axis=1) == np.arange(5)).all()
    changed = np.argwhere(S != unwrapped)
    assert len(changed) and (changed[:, 0] == changed[:, 1]).all()  # only self-matches
    for q in changed[:, 0]:  # a wrapped self-match ranks near the bottom
        assert (S[q] < S[q, q]).sum() < 10
