"""The new code families in the grammar, the checks and the search (fast, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench import retrieval as R
from embedbench.errors import UserError
from embedbench.registry import build_technique, check_dims, training_notes


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(2, 0.2, d) + 0.1
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "size", "learns", "random"),
    [
        ("turbo2", 16, False, True),
        ("turbo1.5", 12, False, True),
        ("turbo2-prod", 16 + 2, False, True),
        ("faiss:PQ8", 8, True, True),
        ("faiss:SQ8", 64, True, False),
        ("pca32+turbo1", 4, True, True),
    ],
)
def test_code_families_build_size_and_seed(name, size, learns, random):
    X = _unit(3000, 64, 0)
    a = build_technique(name, seed=0).fit(X)
    assert a.bytes_per_vector(64) == size
    assert (a.learns, a.random) == (learns, random)
    again = build_technique(name, seed=0).fit(X)
    assert np.array_equal(a.encode(X[:50]), again.encode(X[:50]))  # byte-identical
    if random:
        other = build_technique(name, seed=1).fit(X)
        assert not np.array_equal(a.encode(X[:50]), other.encode(X[:50]))


def test_faiss_checks_at_validate_and_training_notes():
    with pytest.raises(UserError, match="could not parse index string bogus"):
        build_technique("faiss:bogus")
    with pytest.raises(UserError, match="not a standalone codec"):
        check_dims(["binary", "faiss:HNSW32"], 384, "local:m")
    with pytest.raises(UserError, match="multiple of the number of subquantizers"):
        check_dims(["faiss:PQ5"], 384, "local:m")
    check_dims(["faiss:PQ24", "turbo2"], 384, "local:m")
    notes = training_notes(["faiss:PQ24", "turbo1", "binary"], 5000, 384)
    assert len(notes) == 1 and notes[0].startswith("faiss:PQ24:") and "9984" in notes[0]
    assert training_notes(["faiss:PQ24"], 10000, 384) == []


@pytest.mark.parametrize("name", ["turbo2-prod", "faiss:PQ8", "faiss:OPQ8,PQ8"])
def test_asymmetric_search_scores_the_estimator_without_renormalising(name):
    """For an inner-product estimator the score of a document is <q/|q|, decode(doc)>,
    the decoded document at its own scale (the engine's look-up-table score)."""
    X, Q = _unit(2000, 64, 1), _unit(5, 64, 2)
    tech = build_technique(name).fit(X[:1500])
    assert tech.code.ip_estimator
    search = R.CodeSearch(lambda *_: None, tech, None, asymmetric=True)
    ids = [f"d{i:04d}" for i in range(len(X))]
    search.build(X, ids)
    got = search.search_vectors(Q, [f"q{i}" for i in range(len(Q))], 5)
    D = tech.decode(tech.encode(X), 64).astype(np.float64)
    assert not np.allclose(np.linalg.norm(D, axis=1), 1, atol=1e-3)  # not unit vectors
    for i, scores in enumerate(got.values()):
        want = D @ Q[i].astype(np.float64)
        top = np.argsort(-want, kind="stable")[:5]
        assert set(scores) == {ids[j] for j in top}
        for doc, s in scores.items():
            assert s == pytest.approx(want[ids.index(doc)], abs=1e-6)


@pytest.mark.parametrize("name", ["faiss:RaBitQ", "faiss:RaBitQ4"])
def test_asymmetric_rabitq_is_scored_by_faiss_own_search(name):
    """faiss:RaBitQ/asym ranks by faiss's IndexRaBitQ search itself (its per-document
    term, the extra bits of RaBitQ4, RaBitQ's 4-bit query), rebuilt here from the index's
    own add and search, not by <q, decode(doc)>."""
    import faiss

    X, Q = _unit(1500, 64, 3), _unit(6, 64, 4)
    tech = build_technique(name).fit(X[:1000])
    assert tech.code.engine_search and not tech.code.ip_estimator
    search = R.CodeSearch(lambda *_: None, tech, None, asymmetric=True)
    ids = [f"d{i:04d}" for i in range(len(X))]
    search.build(X, ids)
    got = search.search_vectors(Q, [f"q{i}" for i in range(len(Q))], 10)
    engine = faiss.index_factory(64, name.split(":")[1], faiss.METRIC_INNER_PRODUCT)
    engine.train(X[:1000])
    engine.add(X)
    dist, rows = engine.search(Q, 10)
    decoded = tech.decode(tech.encode(X), 64).astype(np.float64) @ Q.T.astype(np.float64)
    differs = 0
    for i, scores in enumerate(got.values()):
        assert [ids[j] for j in rows[i]] == list(scores)
        np.testing.assert_allclose(list(scores.values()), dist[i], rtol=1e-5, atol=1e-6)
        differs += not np.allclose(dist[i], decoded[rows[i], i], atol=1e-4)
    assert differs == len(Q)  # decoding would have given other scores
