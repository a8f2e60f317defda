"""Every engine preset: listed with its engine and source, sized as it encodes,
deterministic, searched by its own scores, and pinned by a test file of its engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedbench.cli import cli
from embedbench.engines import presets
from embedbench.registry import build_technique

NAMES = sorted(presets())


def test_list_techniques_shows_every_preset_with_engine_and_source():
    out = CliRunner().invoke(cli, ["list", "techniques"]).output
    for p in presets().values():
        assert f"{p.name}" in out and f"{p.engine} {p.version}; source: {p.source}" in out
        assert p.not_reproduced and p.not_reproduced in out


@pytest.mark.parametrize("name", NAMES)
def test_preset_is_sized_deterministic_and_searched_by_the_engine(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    a = build_technique(name, seed=0).fit(X[:2500])
    codes = a.encode(X[2500:])
    assert codes.dtype == np.uint8 and codes.shape == (500, a.bytes_per_vector(384))
    b = build_technique(name, seed=0).fit(X[:2500])
    assert np.array_equal(codes, b.encode(X[2500:]))
    assert a.code.engine_search and a.code.engine == presets()[name].engine
    scores = a.code.search_scores(X[:3], codes)
    assert scores.shape == (3, 500) and np.isfinite(scores).all()
    assert a.decode(codes, 384).shape == (500, 384)


def test_every_engine_module_has_its_pinned_tests():
    modules = {p.make.__module__.rsplit(".", 1)[-1] for p in presets().values()}
    here = Path(__file__).parent
    for m in modules:
        assert (here / f"test_engines_{m}.py").is_file(), m


@pytest.mark.parametrize("name", NAMES)
def test_a_preset_search_gets_the_float_query(name, monkeypatch):
    """The engine quantizes the query its own way: search_scores sees the normalised
    float query, never a round trip through the document code."""
    from embedbench import retrieval as R

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 64)).astype(np.float32)
    Q = rng.normal(size=(4, 64)).astype(np.float32)
    tech = build_technique(name).fit(X)
    seen = []
    scores = tech.code.search_scores
    monkeypatch.setattr(tech.code, "search_scores", lambda q, c: seen.append(q) or scores(q, c))
    search = R.CodeSearch(lambda *_: None, tech, None)
    search.build(X, [f"d{i:03d}" for i in range(300)])
    search.search_vectors(Q, [f"q{i}" for i in range(4)], 5)
    want = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    np.testing.assert_allclose(np.concatenate(seen), want, rtol=1e-6)


@pytest.mark.parametrize(
    ("technique", "secondary"),
    [
        ("binary", 0),
        ("binary/rescore4", 4 * 384),
        ("binary/rescore4-int8", 384),
        ("pgvector:halfvec", 0),
        ("pgvector:bit", 4 * 384 + 8),  # the vector column the expression index is on
        ("pgvector:bit/rescore4", 4 * 384 + 8),  # re-ranks from that column: no second copy
        ("es:int8_hnsw", 4 * 384),  # ES keeps the float vectors beside the quantized ones
        ("es:bbq_hnsw/rescore3", 4 * 384),
        ("es:bbq_hnsw/rescore3-int8", 4 * 384 + 384),
    ],
)
def test_the_total_footprint_counts_what_the_engine_keeps(technique, secondary):
    from types import SimpleNamespace

    from embedbench.evaluate import secondary_bytes

    assert secondary_bytes(SimpleNamespace(technique=technique), 384) == secondary


@pytest.mark.parametrize("name", NAMES)
def test_a_retrieval_search_ranks_by_the_presets_own_scores(name):
    """CodeSearch over a preset (d = 384: presets whose codes are exactly d/8 bytes of
    sign bits too) returns the top 10 by `search_scores`, ties to the larger id, with
    those scores."""
    from embedbench import retrieval as R

    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = X[:4] + 0.05 * rng.normal(size=(4, 384)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    ids, qids = [f"d{i:03d}" for i in range(400)], [f"q{i}" for i in range(4)]
    tech = build_technique(name).fit(X)
    search = R.CodeSearch(lambda *_: None, tech, None)
    search.build(X, ids)
    assert search.engine_codes is not None and not search.hamming
    got = search.search_vectors(Q, qids, 10)
    S = tech.code.search_scores(Q, tech.encode(X))
    for i, q in enumerate(qids):
        top = np.lexsort((-np.arange(400), -S[i]))[:10]
        assert list(got[q]) == [ids[j] for j in top]
        np.testing.assert_allclose(list(got[q].values()), S[i, top], rtol=1e-5, atol=1e-5)
        assert next(iter(got[q])) == ids[i]  # the perturbed document first
