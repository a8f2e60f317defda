"""pgvector presets pinned to pgvector's own regression tests (test/expected/*.out,
github.com/pgvector/pgvector at e48241b): binary_quantize, Hamming order, halfvec
cosine distance and the storage sizes of the README."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.registry import build_technique


def _bits(code: np.ndarray, d: int) -> str:
    return "".join(map(str, np.unpackbits(code[8:], count=d)))


@pytest.mark.parametrize(
    ("vector", "expected"),
    [  # test/expected/vector_type.out and halfvec.out, SELECT binary_quantize(...)
        ([1, 0, -1], "100"),
        ([0, 0.1, -0.2, -0.3, 0.4, 0.5, 0.6, -0.7, 0.8, -0.9, 1], "01001110101"),
        ([1, 2, 3, -4, 5, 6, -7, 8, 1, -2, -3, 4, 5, -6, 7, 8, -1, 2, 3], "1110110110011011011"),
    ],
)
def test_binary_quantize_matches_pgvector(vector, expected):
    tech = build_technique("pgvector:bit").fit(np.zeros((1, len(vector)), np.float32))
    code = tech.encode(np.array([vector], np.float32))[0]
    assert _bits(code, len(vector)) == expected
    assert len(code) == -(-len(vector) // 8) + 8  # README: dimensions / 8 + 8 bytes


def test_hamming_order_matches_pgvector():
    """test/expected/hnsw_bit.out: ORDER BY val <~> B'111' gives 111, 110, 100, 000."""
    tech = build_technique("pgvector:bit").fit(np.zeros((1, 3), np.float32))
    stored = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, 1], [1, 1, -1]], np.float32)
    codes = tech.encode(stored)
    scores = tech.code.search_scores(np.array([[1, 1, 1]], np.float32), codes)[0]
    assert list(-scores) == [3, 2, 0, 1]  # hamming_distance, as bit.out has them
    order = np.argsort(-scores, kind="stable")
    assert ["".join(_bits(codes[i], 3)) for i in order] == ["111", "110", "100", "000"]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [  # test/expected/halfvec.out, SELECT cosine_distance(a::halfvec, b)
        ([1, 2], [2, 4], 0.0),
        ([1, 1], [1, 1], 0.0),
        ([1, 0], [0, 2], 1.0),
        ([1, 1], [-1, -1], 2.0),
        ([1, 1], [1.1, 1.1], 0.0),
    ],
)
def test_halfvec_cosine_distance_matches_pgvector(a, b, distance):
    tech = build_technique("pgvector:halfvec").fit(np.zeros((1, len(a)), np.float32))
    codes = tech.encode(np.array([a], np.float32))
    assert codes.shape[1] == 2 * len(a) + 8  # README: 2 * dimensions + 8 bytes
    sim = tech.code.search_scores(np.array([b], np.float32), codes)[0, 0]
    assert 1 - sim == pytest.approx(distance, abs=1e-6)


def test_halfvec_refuses_what_pgvector_refuses_and_rounds_to_half():
    tech = build_technique("pgvector:halfvec").fit(np.zeros((1, 2), np.float32))
    assert tech.encode(np.array([[65519, -65519]], np.float32)).shape == (1, 12)
    with pytest.raises(ValueError, match="out of range for type halfvec"):
        tech.encode(np.array([[65520, 1]], np.float32))  # halfvec.out: '[65520,-65520]'
    x = np.array([[0.1, 1 / 3]], np.float32)
    np.testing.assert_array_equal(tech.decode(tech.encode(x), 2), x.astype(np.float16))


def test_a_retrieval_search_over_a_preset_is_the_engines_search():
    """CodeSearch over pgvector:bit ranks by the preset's own Hamming scores (no /asym
    needed) and gives the ranking `binary`'s Hamming search gives; /rescore re-ranks."""
    from embedbench import retrieval as R

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 32)).astype(np.float32)
    Q = rng.normal(size=(5, 32)).astype(np.float32)
    ids, qids = [f"d{i:03d}" for i in range(400)], [f"q{i}" for i in range(5)]
    got = {}
    for name, kw in [
        ("pgvector:bit", {}),
        ("binary", {}),
        ("pgvector:bit", {"rescore_multiplier": 4}),
    ]:
        tech = build_technique(name).fit(X)
        search = R.CodeSearch(lambda *_: None, tech, None, **kw)
        search.build(X, ids)
        got[name, bool(kw)] = search.search_vectors(Q, qids, 10)
    assert search.engine_codes is not None
    for q in qids:
        assert list(got["pgvector:bit", False][q]) == list(got["binary", False][q])
        assert got["pgvector:bit", True][q] != got["pgvector:bit", False][q]
