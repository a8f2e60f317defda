"""faiss standalone codecs as codes (`embedbench.quantize.faiss_codec`): sizes, seeds,
calibration-only training, factory checks, training shortfalls, and the claim that the
engine's search scores are <q, decode> (or, for RaBitQ, what they are instead)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embedbench.quantize import Technique
from embedbench.quantize.faiss_codec import (
    FaissCode,
    check_factory,
    faiss_search_scores,
    training_shortfall,
)
from embedbench.quantize.faiss_index import _parts
from tests.vectors import _embeddings

D = 384


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Encode and search on one OpenMP thread (training's count is FaissCode's own):
    OpenMP threads spinning on a loaded 2-core machine cost more than they give."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    """3000 calibration and 500 evaluation rows of one anisotropic distribution, d=384."""
    X = _embeddings(3500, D, seed=1)
    return X[:3000], X[3000:]


@pytest.fixture(scope="module")
def small():
    """The same kind of data at d=32 for the slow trainers (OPQ, RQ, LSQ)."""
    X = _embeddings(1600, 32, seed=5)
    return X[:1200], X[1200:1400], X[1400:1420]  # calibration, documents, queries


@pytest.fixture(scope="module")
def fitted(data):
    cache: dict[str, FaissCode] = {}

    def get(factory: str) -> FaissCode:
        if factory not in cache:
            cache[factory] = FaissCode(factory).fit(data[0])
        return cache[factory]

    return get


# --- sizes ------------------------------------------------------------------------------

# faiss's sa_code_size at d=384. RQ and LSQ with the inner-product metric store no norm
# (`_Nqint8` adds one byte); RaBitQ: 48 bytes of signs + 2 float32 factors (56), and with
# 4 bits also 1 more factor (12 bytes), 3 extra bits a dimension (144) and 2 factors (8).
SIZES = {
    "PQ12": 12,
    "PQ24": 24,
    "PQ48": 48,
    "PQ24x4fs": 12,
    "OPQ24,PQ24": 24,
    "OPQ16_64,PQ16": 16,
    "RQ3x8": 3,
    "RQ3x8_Nqint8": 4,
    "LSQ4x8": 4,
    "SQ4": 192,
    "SQ8": 384,
    "SQfp16": 768,
    "Flat": 1536,
    "RaBitQ": 56,
    "RaBitQ4": 212,
}


@pytest.mark.parametrize("factory", sorted(SIZES))
def test_size_before_fit_is_faiss_code_size(factory):
    code = FaissCode(factory)
    n = faiss.index_factory(D, factory, faiss.METRIC_INNER_PRODUCT).sa_code_size()
    assert code.bytes_per_vector(D) == n == SIZES[factory]
    assert code.name == "faiss:" + factory


@pytest.mark.parametrize("factory", ["PQ24", "SQ4", "SQ8", "SQfp16", "RaBitQ", "RaBitQ4"])
def test_encoded_rows_have_the_size(fitted, data, factory):
    code = fitted(factory)
    codes = code.encode(data[1])
    assert codes.dtype == np.uint8 and codes.shape == (500, SIZES[factory])
    assert code.bytes_per_vector(D) == code.index.sa_code_size() == SIZES[factory]
    assert code.bits == pytest.approx(8 * SIZES[factory] / D)
    dec = code.decode(codes, D)
    assert dec.dtype == np.float32 and dec.shape == (500, D)


def test_params_bytes_are_the_serialized_trained_codec(fitted):
    pq, sq, rabitq = fitted("PQ24"), fitted("SQ8"), fitted("RaBitQ")
    assert pq.params_bytes() == len(faiss.serialize_index(pq.index))
    assert 24 * 256 * 16 * 4 < pq.params_bytes() < 24 * 256 * 16 * 4 + 1000  # codebooks
    assert 2 * D * 4 < sq.params_bytes() < 2 * D * 4 + 1000  # vmin, vdiff
    assert D * 4 < rabitq.params_bytes() < D * 4 + 1000  # the centre


def test_roundtrip_error_falls_with_more_bytes(fitted, data):
    ev = data[1]

    def mse(factory):
        code = fitted(factory)
        return float(((code.decode(code.encode(ev), D) - ev) ** 2).sum(axis=1).mean())

    assert mse("PQ12") > mse("PQ24") > mse("PQ48")
    assert mse("SQ4") > mse("SQ8") > mse("SQfp16")


def test_plugs_into_a_technique(data):
    tech = Technique(name="faiss:SQ8", spec="faiss:SQ8", code=FaissCode("SQ8")).fit(data[0])
    ev = data[1]
    assert tech.bytes_per_vector(D) == 384
    assert ((tech.roundtrip(ev) - ev) ** 2).sum(axis=1).mean() < 1e-3  # unit rows


# --- seeds, threads, calibration only ---------------------------------------------------


SEEDED = ["PQ8x6", "OPQ4,PQ4x6", "RQ2x6", "LSQ2x6", "RR,SQ4"]


@pytest.mark.parametrize("factory,threads", [(f, 1) for f in SEEDED] + [("PQ2x6", 2), ("RQ2x4", 2)])
def test_same_seed_same_codes_other_seed_other_codes(small, factory, threads):
    """Also with 2 training threads (RQ's codebooks then differ from 1 thread's: BLAS)."""
    cal, docs, _ = small

    def codes(seed):
        return FaissCode(factory, seed=seed, threads=threads).fit(cal).encode(docs)

    a, b, c = codes(3), codes(3), codes(4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_lsq_codes_depend_on_the_batch_but_repeat(small):
    """LSQ's encoder starts from random codes drawn in sequence over the batch."""
    cal, docs, _ = small
    code = FaissCode("LSQ2x6").fit(cal)
    batch = code.encode(docs)
    assert np.array_equal(code.encode(docs), batch)
    alone = np.vstack([code.encode(docs[i : i + 1]) for i in range(len(docs))])
    assert not np.array_equal(alone, batch)  # about 1 row in 10 differs
    pq = FaissCode("PQ8x6").fit(cal)  # the others encode each vector on its own
    alone = np.vstack([pq.encode(docs[i : i + 1]) for i in range(len(docs))])
    assert np.array_equal(alone, pq.encode(docs))


def test_training_threads_are_restored(small):
    before = faiss.omp_get_max_threads()
    FaissCode("PQ8x6", threads=1).fit(small[0])
    assert faiss.omp_get_max_threads() == before


def test_trained_on_calibration_only(data):
    cal, ev = data
    code = FaissCode("PQ24").fit(cal)
    params = faiss.serialize_index(code.index)
    codes = code.encode(ev)
    assert code.index.ntotal == 0
    assert np.array_equal(faiss.serialize_index(code.index), params)  # encoding changed nothing
    assert np.array_equal(code.encode(ev), codes)
    # the codec is a function of the calibration set: other calibration, other codebooks
    other = FaissCode("PQ24").fit(ev)
    assert not np.array_equal(faiss.serialize_index(other.index), params)


def test_flags_by_codec():
    flags = {
        f: (FaissCode(f).learns, FaissCode(f).random)
        for f in ["PQ24", "OPQ24,PQ24", "RQ3x8", "LSQ4x8", "SQ8", "SQfp16", "RaBitQ", "Flat"]
    }
    assert flags["PQ24"] == flags["OPQ24,PQ24"] == flags["RQ3x8"] == flags["LSQ4x8"] == (True, True)
    assert flags["SQ8"] == flags["RaBitQ"] == (True, False)  # ranges, a mean: nothing drawn
    assert flags["SQfp16"] == flags["Flat"] == (False, False)


def test_flags_do_not_change_with_fit(fitted):
    pq, sq = fitted("PQ24"), fitted("SQ8")
    assert (pq.learns, pq.random, pq.ip_estimator) == (True, True, True)
    assert (sq.learns, sq.random, sq.ip_estimator) == (True, False, True)


def test_opq_with_fewer_vectors_than_dimensions_is_refused_before_faiss_crashes():
    X = _embeddings(40, 64, seed=0)  # faiss's OPQ training would overflow a buffer
    with pytest.raises(ValueError, match="OPQ needs at least 64 calibration vectors"):
        FaissCode("OPQ8,PQ8x2").fit(X)
    assert "OPQ needs at least 1024" in training_shortfall("OPQ64,PQ64", 1000, 1024)


def test_faiss_output_is_captured_not_printed(capfd, data):
    code = FaissCode("PQ12").fit(data[0])  # 3000 < 9984 points: faiss's k-means warns
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert any("WARNING clustering 3000 points to 256 centroids" in line for line in code.faiss_log)


def test_bad_factory_and_misuse_raise():
    with pytest.raises(ValueError, match=r"faiss:PQ25 at d=384: .*multiple"):
        FaissCode("PQ25").bytes_per_vector(D)
    with pytest.raises(ValueError, match="not a standalone codec"):
        FaissCode("HNSW32").fit(np.ones((10, D), dtype=np.float32))
    with pytest.raises(RuntimeError, match="before fit"):
        FaissCode("SQ8").encode(np.ones((2, D), dtype=np.float32))
    with pytest.raises(ValueError, match="seed"):
        FaissCode("SQ8", seed=-1)
    code = FaissCode("SQfp16").fit(np.ones((2, 8), dtype=np.float32))
    assert code.encode(np.empty((0, 8), np.float32)).shape == (0, 16)
    assert code.decode(np.empty((0, 16), np.uint8), 8).shape == (0, 8)
    with pytest.raises(ValueError, match="d=8"):
        code.decode(np.zeros((1, 16), np.uint8), 4)


# --- check_factory and training_shortfall -----------------------------------------------

GOOD = ["PQ24", "OPQ24,PQ24", "OPQ16_64,PQ16", "RQ3x8", "LSQ4x8", "SQ4", "SQ8", "SQfp16"]
GOOD += ["RaBitQ", "RaBitQ4", "PQ24x4fs", "Flat", "RR,RaBitQ"]
BAD = {
    "IVF100,PQ24": "not a standalone codec: an inverted file",
    "HNSW32": "not a standalone codec: standalone codec not implemented",
    "bogus": "could not parse index string bogus",
    "PQ25": "should be a multiple of the number of subquantizers",
    "LSH": "needs the L2 metric",
    "IDMap,Flat": "not a standalone codec: an id map",
    "PQ24,RFlat": "not a standalone codec: a refine index",
    "ITQ,SQ8": "ITQ transform has no reverse",
    "PCAW64,SQ8": "whitening PCA",
}


@pytest.mark.parametrize("factory", GOOD)
def test_check_factory_accepts_codecs(factory):
    assert check_factory(factory, D) is None


@pytest.mark.parametrize("factory", sorted(BAD))
def test_check_factory_names_the_problem(factory):
    msg = check_factory(factory, D)
    assert msg.startswith(f"faiss:{factory} at d=384: ")
    assert BAD[factory] in msg and "\n" not in msg and "/project/" not in msg


def test_training_shortfall():
    short = training_shortfall("PQ24", 5000, D)
    assert "faiss:PQ24" in short and "5000" in short and "9984" in short
    assert training_shortfall("PQ24", 10000, D) is None
    assert "fails below 256" in training_shortfall("PQ24", 200, D)
    assert "9984" in training_shortfall("OPQ24,PQ24", 5000, D)  # OPQ's own PQ is 8-bit
    assert "9984" in training_shortfall("RQ3x8", 5000, D)
    assert "2496" in training_shortfall("PQ24x6", 2000, D)  # 64 centroids
    assert training_shortfall("LSQ4x8", 10000, D) is None
    assert training_shortfall("SQ8", 100, D) is None
    assert training_shortfall("RaBitQ", 100, D) is None
    assert training_shortfall("SQfp16", 0, D) is None
    with pytest.raises(ValueError, match="PQ25"):
        training_shortfall("PQ25", 10000, D)


# --- the engine's search estimator ------------------------------------------------------

ESTIMATES_DECODE = ["PQ8x6", "OPQ4,PQ4x6", "OPQ4_16,PQ4x6", "RQ2x6", "LSQ2x6", "PRQ2x1x6"]
ESTIMATES_DECODE += ["SQ4", "SQ8", "SQfp16", "Flat", "RR,SQ4", "Pad40,SQ8", "HR,SQ8"]
OTHER_ESTIMATE = ["RaBitQ", "RaBitQ4", "PQ8x4fs", "PCA16,SQ8", "L2norm,SQ8"]


@pytest.mark.parametrize("factory", ESTIMATES_DECODE + OTHER_ESTIMATE)
def test_ip_estimator_claim_against_the_index_search(small, factory):
    cal, docs, Q = small
    Q = 2 * Q  # queries of norm 2: L2norm's rescaling shows
    code = FaissCode(factory).fit(cal)
    codes = code.encode(docs)
    engine = faiss_search_scores(code, Q, codes)
    decoded = Q @ code.decode(codes, 32).T
    gap = float(np.abs(engine - decoded).max() / np.abs(decoded).max())
    assert code.ip_estimator == (factory in ESTIMATES_DECODE)
    if code.ip_estimator:
        assert gap < 1e-5
    else:
        assert gap > 1e-4


def test_engine_scores_come_from_a_real_index_search(small):
    """faiss_search_scores agrees with the index filled by `add` and searched directly."""
    cal, docs, Q = small
    code = FaissCode("RaBitQ").fit(cal)
    index = faiss.deserialize_index(faiss.serialize_index(code.index))
    index.add(docs)
    dist, labels = index.search(Q, len(docs))
    direct = np.empty_like(dist)
    np.put_along_axis(direct, labels, dist, axis=1)
    assert np.allclose(faiss_search_scores(code, Q, code.encode(docs)), direct, atol=1e-6)


def test_rabitq_scores_decode_plus_a_per_document_offset(small):
    """1 bit, float queries: score = <q, c + r̂> + <c, r - r̂>, r = x - c, c + r̂ = decode."""
    cal, docs, Q = small
    code = FaissCode("RaBitQ").fit(cal)
    assert not code.random and not code.ip_estimator and not code.sa_decode_drops_bits
    c = cal.mean(axis=0)
    dec = code.decode(code.encode(docs), 32)
    formula = Q @ dec.T + (docs - dec) @ c
    exact = faiss_search_scores(code, Q, code.encode(docs), rabitq_qb=0)
    assert np.allclose(exact, formula, atol=1e-5)
    default = faiss_search_scores(code, Q, code.encode(docs))  # 4-bit queries
    assert not np.allclose(default, exact, atol=1e-4)


def test_rabitq_multibit_decode_uses_every_bit_as_faiss_search_does(small):
    """faiss's sa_decode of RaBitQ4 ignores the extra bits; `decode` reads them. The
    index's float-query score is <q, decode> + <c, r> − <c, r̂>, f_add_ex = <c, r>
    stored in the code's last 8 bytes (faiss RaBitQuantizerMultiBit.cpp)."""
    cal, docs, Q = small
    one, four = FaissCode("RaBitQ").fit(cal), FaissCode("RaBitQ4").fit(cal)
    assert four.sa_decode_drops_bits and not one.sa_decode_drops_bits
    codes = four.encode(docs)
    assert codes.shape[1] == 4 + 12 + 12 + 8  # d=32: signs, 3 factors, 3 extra bits a dim, 2
    dec1, dec4 = one.decode(one.encode(docs), 32), four.decode(codes, 32)
    assert np.allclose(four.index.sa_decode(codes), dec1, atol=1e-6)  # faiss: 1 bit only
    mse1, mse4 = (((d - docs) ** 2).sum(axis=1).mean() for d in (dec1, dec4))
    assert mse4 < mse1 / 20
    c = cal.mean(axis=0)
    f_add = np.ascontiguousarray(codes[:, -8:]).view("<f4")[:, 0]
    assert np.allclose(f_add, (docs - c) @ c, atol=1e-5)
    formula = Q @ dec4.T + f_add - (dec4 - c) @ c
    exact = faiss_search_scores(four, Q, codes, rabitq_qb=0)
    assert np.allclose(exact, formula, atol=1e-5)
    true = Q @ docs.T
    assert np.abs(Q @ dec4.T - true).mean() < np.abs(Q @ dec1.T - true).mean() / 3


@pytest.mark.parametrize("factory", ["RaBitQ2", "RaBitQ3", "RaBitQ5", "RaBitQ9", "RR,RaBitQ4"])
@pytest.mark.parametrize("d", [30, 37, 64])
def test_rabitq_multibit_decode_matches_faiss_search_at_any_width(factory, d):
    """Partial bytes (d·ex not a multiple of 8), any extra-bit count, and through RR's
    reverse rotation: faiss's float-query score = <q, decode> + f_add_ex − <c, r̂>,
    with c the calibration mean (rotated back for RR)."""
    rng = np.random.default_rng(d)
    X = rng.normal(size=(460, d)).astype(np.float32) + 0.2
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    cal, docs, Q = X[:300], X[300:], X[300:310]
    code = FaissCode(factory, seed=1).fit(cal)
    codes = code.encode(docs)
    dec = code.decode(codes, d)
    transforms, inner = _parts(code.index)
    c = faiss.vector_to_array(inner.center)[None, :]
    for vt in reversed(transforms):
        c = vt.reverse_transform(c)
    f_add = np.ascontiguousarray(codes[:, -8:]).view("<f4")[:, 0]
    formula = Q @ dec.T + f_add - (dec - c[0]) @ c[0]
    exact = faiss_search_scores(code, Q, codes, rabitq_qb=0)
    np.testing.assert_allclose(exact, formula, atol=2e-5)
    one = FaissCode(factory.rstrip("0123456789"), seed=1).fit(cal)  # 1 bit
    mse = (
        ((dec - docs) ** 2).sum(axis=1).mean(),
        ((one.decode(one.encode(docs), d) - docs) ** 2).sum(axis=1).mean(),
    )
    assert mse[0] < mse[1] / 2  # the extra bits are used


def test_rabitq_multibit_decode_by_hand():
    """One vector, d=8, RaBitQ3 (2 extra bits), centre 0: stored level m_j (complemented
    where r_j < 0) decodes to f_rescale_ex · sign(r_j) · (m_j + ½), recomputed here
    from faiss's definition: t maximises <m + ½, |o|> / ‖m + ½‖ over the levels."""
    x = np.array([[0.9, -0.3, 0.1, -0.05, 0.2, -0.6, 0.01, 0.4]], np.float32)
    code = FaissCode("RaBitQ3").fit(np.zeros((4, 8), np.float32))
    codes = code.encode(x)
    assert codes.shape == (1, 1 + 12 + 2 + 8)
    assert codes[0, 0] == 0b11010101  # sign bits of r = x, LSB first
    levels = np.unpackbits(codes[:, 13:15], bitorder="little").reshape(8, 2)
    m = levels @ np.array([1, 2])
    m = np.where(x[0] > 0, m, 3 - m)  # faiss complements the negative coordinates
    o = np.abs(x[0]) / np.linalg.norm(x[0])
    assert m.tolist() == [3, 1, 0, 0, 0, 2, 0, 1]
    grid = np.minimum(np.floor(np.linspace(0.01, 20, 4000)[:, None] * o), 3) + 0.5
    best = grid[np.argmax(grid @ o / np.linalg.norm(grid, axis=1))] - 0.5
    assert best.tolist() == m.tolist()  # the level choice, recomputed by brute force
    rescale = np.linalg.norm(x[0]) / ((m + 0.5) @ o)
    expected = rescale * np.sign(x[0]) * (m + 0.5)
    np.testing.assert_allclose(code.decode(codes, 8)[0], expected, rtol=1e-6)
