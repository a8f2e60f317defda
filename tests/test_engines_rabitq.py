"""RaBitQ presets: Milvus's IVF_RABITQ (knowhere d7cfd88: faiss RR + IndexIVFRaBitQ)
and LanceDB's IVF_RQ (lance d2039d7, rust/lance-index/src/vector/bq/), pinned to
examples recomputed by hand from their sources and to faiss's own training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedbench.engines import presets

presets()  # load every engine module through the registry first (see test_engines_weaviate)

from embedbench.engines.rabitq import LanceRaBitQ, MilvusRaBitQ  # noqa: E402
from embedbench.registry import build_technique  # noqa: E402


def _data(seed=0, n=600, d=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :5] += 0.8  # a non-zero mean, as embeddings have
    return X / np.linalg.norm(X, axis=1, keepdims=True)


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
    # scores: faiss's IndexRaBitQ search with a float query (qb = 0, Milvus's default)
    index.add(docs)
    params = faiss.RaBitQSearchParameters()
    params.qb = 0
    chain = faiss.downcast_index(index)
    inner = faiss.downcast_index(chain.index)
    D, labels = inner.search(chain.chain.at(0).apply(Q), len(docs), params=params)
    expected = np.empty_like(D)
    np.put_along_axis(expected, labels, D, axis=1)
    np.testing.assert_allclose(code.search_scores(Q, codes), expected, rtol=1e-6, atol=1e-6)
    assert not np.array_equal(MilvusRaBitQ(1).fit(calib).encode(docs), codes)


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


def test_lance_estimator_tracks_the_float_l2_distance():
    X = _data(2)
    code = LanceRaBitQ(0).fit(X[:400])
    docs, Q = X[400:], X[:5]
    S = code.search_scores(Q, code.encode(docs))
    true = ((Q[:, None, :] - docs[None, :, :]) ** 2).sum(axis=2)
    assert np.corrcoef(-S.ravel(), true.ravel())[0, 1] > 0.8
    np.testing.assert_allclose(code.P @ code.P.T, np.eye(64), atol=1e-5)
    np.testing.assert_allclose(code.centroid, X[:400].mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("name", ["milvus:rabitq", "milvus:rabitq-q8", "lancedb:rabitq"])
def test_presets_sizes_determinism_and_calibration_only(name):
    X = _data(3, n=500, d=384)
    calib, other = X[:300], X[300:]
    t1 = build_technique(name, 0).fit(calib)
    c1 = t1.encode(other)
    assert c1.shape == (200, 56) == (200, t1.code.bytes_per_vector(384))
    np.testing.assert_array_equal(c1, build_technique(name, 0).fit(calib).encode(other))
    assert not np.array_equal(build_technique(name, 1).fit(calib).encode(other), c1)
    # encoding more vectors changes nothing fitted
    np.testing.assert_array_equal(t1.encode(other), c1)
    assert t1.code.engine in ("Milvus", "LanceDB")
    S = t1.code.search_scores(other[:5], c1)
    assert S.shape == (5, 200) and (S.argmax(axis=1) == np.arange(5)).all()
