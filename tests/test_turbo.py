"""TurboQuant (`embedbench.quantize.turbo`): codebooks, distortion, unbiasedness, sizes."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from scipy import integrate

from embedbench.quantize import RandomizedHadamard, Technique
from embedbench.quantize.turbo import (
    MSE_BITS,
    PROD_BITS,
    TurboQuant,
    coordinate_density,
    expected_mse,
    lloyd_max,
)

# the theorem's D_mse for unit vectors at b = 1..4 as the paper prints them, and the
# Gaussian Lloyd–Max values they round (Max 1960; the d → ∞ limit of f_d's codebooks)
PAPER_D_MSE = {1: 0.36, 2: 0.117, 3: 0.03, 4: 0.009}
GAUSSIAN_D_MSE = {1: 0.3634, 2: 0.1175, 3: 0.03454, 4: 0.009497}
# positive centroids of the Gaussian Lloyd–Max quantizers, in units of σ (Max 1960)
GAUSSIAN_CENTROIDS = {
    1: [0.7979],
    2: [0.4528, 1.510],
    3: [0.2451, 0.7560, 1.344, 2.152],
    4: [0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733],
}


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _skewed(n: int, d: int, seed: int) -> np.ndarray:
    """Unit rows with unequal variances (10:1) and a shared offset, like real embeddings.

    Axis-aligned, so cheap at any d (tests.vectors._embeddings does a d × d QR).
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.geomspace(3.0, 0.3, d)[rng.permutation(d)] + 0.8
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _sq_err(code: TurboQuant, X: np.ndarray) -> float:
    Y = code.decode(code.encode(X), X.shape[1]).astype(np.float64)
    return float(np.square(Y - X).sum(axis=1).mean())


# --- codebooks -----------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 64, 384, 1024])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_codebook_is_symmetric_sorted_with_midpoint_boundaries(d, bits):
    book = lloyd_max(d, bits)
    c, t = book.centroids, book.boundaries
    assert len(c) == 2**bits and len(t) == 2**bits - 1
    assert np.array_equal(c, -c[::-1]) and np.array_equal(t, -t[::-1])
    assert (np.diff(c) > 0).all() and 0 < c[-1] < 1
    assert np.allclose(t, (c[:-1] + c[1:]) / 2, rtol=0, atol=1e-15)
    assert book.mass.sum() == pytest.approx(1.0, abs=1e-12)


def test_codebook_for_large_d_is_the_gaussian_lloyd_max_quantizer():
    d = 4096
    for bits, positive in GAUSSIAN_CENTROIDS.items():
        book = lloyd_max(d, bits)
        scaled = book.centroids[2 ** (bits - 1) :] * math.sqrt(d)
        assert np.allclose(scaled, positive, atol=2e-3), (bits, scaled)
        assert book.mse == pytest.approx(GAUSSIAN_D_MSE[bits], rel=2e-3)


def test_uniform_density_at_d3_gives_the_uniform_quantizer():
    for bits in (1, 2, 3):  # f_3 is uniform on [−1, 1]: evenly spaced levels, D = 4^−b
        book = lloyd_max(3, bits)
        k = 2**bits
        assert np.allclose(book.centroids, (2 * np.arange(k) + 1) / k - 1, atol=1e-10)
        assert book.mse == pytest.approx(4.0**-bits, rel=1e-9)


@pytest.mark.parametrize("d", [5, 384])
def test_codebook_centroids_and_mse_agree_with_numerical_integration(d):
    assert integrate.quad(coordinate_density, -1, 1, args=(d,))[0] == pytest.approx(1, abs=1e-9)
    for bits in (1, 2, 3, 4):
        book = lloyd_max(d, bits)
        edges = np.concatenate([[-1.0], book.boundaries, [1.0]])
        err = 0.0
        for lo, hi, c in zip(edges[:-1], edges[1:], book.centroids, strict=True):
            mass = integrate.quad(coordinate_density, lo, hi, args=(d,), epsabs=1e-14)[0]
            mean = integrate.quad(lambda x: x * coordinate_density(x, d), lo, hi, epsabs=1e-14)[0]
            assert mean / mass == pytest.approx(c, rel=1e-7)  # each centroid is its cell's mean
            sq = integrate.quad(lambda x, c=c: (x - c) ** 2 * coordinate_density(x, d), lo, hi)
            err += sq[0]
        assert d * err == pytest.approx(book.mse, rel=1e-7)


def _empirical_lloyd(samples: np.ndarray, start: np.ndarray, iterations: int) -> np.ndarray:
    x = np.sort(samples)
    c = start.copy()
    for _ in range(iterations):
        cut = np.searchsorted(x, (c[:-1] + c[1:]) / 2)
        c = np.array([part.mean() for part in np.split(x, cut)])
    return c


@pytest.mark.parametrize("bits", [2, 3])
def test_codebook_matches_brute_force_lloyd_on_rotated_unit_vectors(bits):
    d = 64
    X = _unit(4000, d, seed=1)  # uniform on the sphere, rotated: coordinates follow f_d
    Z = RandomizedHadamard(seed=2).fit(X).apply(X) * math.sqrt(d)  # 256,000 samples, units 1/√d
    k = 2**bits
    start = np.quantile(Z, (np.arange(k) + 0.5) / k)  # not the answer: quantiles
    brute = _empirical_lloyd(Z.ravel(), start, 300)
    exact = lloyd_max(d, bits).centroids * math.sqrt(d)
    assert np.allclose(brute, exact, atol=0.03), (brute, exact)


def test_codebooks_are_fast_and_cached():
    lloyd_max.cache_clear()
    t0 = time.perf_counter()
    books = [lloyd_max(4096, bits) for bits in (1, 2, 3, 4)]
    assert time.perf_counter() - t0 < 1.0
    assert all(b.iterations < 1000 for b in books)
    assert lloyd_max(4096, 4) is books[3]


# --- distortion --------------------------------------------------------------------------


def test_mse_at_d1024_matches_the_paper():
    d = 1024
    X = _unit(3000, d, seed=3)
    for bits in (1, 2, 3, 4):
        measured = _sq_err(TurboQuant(bits).fit(X), X)
        assert measured == pytest.approx(expected_mse(d, bits), rel=0.03)
        assert measured == pytest.approx(GAUSSIAN_D_MSE[bits], rel=0.05)
        assert measured == pytest.approx(PAPER_D_MSE[bits], abs=0.005)  # printed rounded


@pytest.mark.parametrize("d", [384, 768, 1024])
def test_fractional_widths_average_their_two_groups(d):
    X = _unit(1500, d, seed=4)
    for bits in (1.5, 2.5, 3.5):
        lo, hi = math.floor(bits), math.ceil(bits)
        expected = (lloyd_max(d, lo).mse + lloyd_max(d, hi).mse) / 2
        assert expected_mse(d, bits) == pytest.approx(expected)
        assert _sq_err(TurboQuant(bits).fit(X), X) == pytest.approx(expected, rel=0.04)


@pytest.mark.parametrize("d", [384, 768])
def test_structured_embeddings_are_no_worse_than_the_theorem(d):
    X = _skewed(2000, d, seed=5)
    for bits in (1, 2, 4):
        measured = _sq_err(TurboQuant(bits).fit(X), X)
        assert measured == pytest.approx(expected_mse(d, bits), rel=0.04)


def test_levels_are_the_nearest_centroids():
    d = 384
    X = _unit(400, d, seed=6) * 5.0  # any norm: the direction is coded
    code = TurboQuant(3).fit(X)
    rot = code.rotation
    U = rot.apply(X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float64)
    book = lloyd_max(d, 3)
    nearest = book.centroids[np.searchsorted(book.boundaries, U)]
    got = rot.apply(code.decode(code.encode(X), d)).astype(np.float64)  # back to the levels
    close = np.abs(U[..., None] - book.boundaries).min(axis=-1) < 1e-6
    assert np.allclose(got[~close], nearest[~close], atol=1e-5)
    assert close.mean() < 1e-3


# --- the inner-product estimator -----------------------------------------------------------


def test_prod_is_unbiased_for_inner_products_mse_is_shrunk_by_2_over_pi():
    d = 256
    X = _unit(3000, d, seed=7)
    Y = X + 0.7 * _unit(3000, d, seed=8)  # queries correlated with the documents
    true = np.einsum("ij,ij->i", Y, X)
    for bits in PROD_BITS:
        code = TurboQuant(bits, prod=True).fit(X)
        assert code.ip_estimator
        est = np.einsum("ij,ij->i", Y, code.decode(code.encode(X), d))
        assert (est - true).mean() == pytest.approx(0, abs=0.02), bits
        assert est.sum() / true.sum() == pytest.approx(1, abs=0.02), bits
    mse1 = TurboQuant(1).fit(X)
    assert not mse1.ip_estimator
    est = np.einsum("ij,ij->i", Y, mse1.decode(mse1.encode(X), d))
    assert est.sum() / true.sum() == pytest.approx(2 / math.pi, abs=0.02)
    # random queries: the prod error averages out over many of them, for each document
    Q = _unit(2000, d, seed=9)
    prod3 = TurboQuant(3, prod=True).fit(X)
    err = Q @ (prod3.decode(prod3.encode(X[:50]), d) - X[:50]).T
    assert np.abs(err.mean(axis=0)).max() < 0.01


# --- sizes, layout, determinism ------------------------------------------------------------

BYTES_384 = {1: 48, 1.5: 72, 2: 96, 2.5: 120, 3: 144, 3.5: 168, 4: 192}


@pytest.mark.parametrize("d", [100, 384, 1024])
def test_bytes_per_vector_is_exact(d):
    X = _unit(5, d, seed=10)
    for bits in MSE_BITS:
        code = TurboQuant(bits)
        lo = math.floor(bits)
        total = d * lo + (d // 2 if bits != lo else 0)
        assert code.bytes_per_vector(d) == math.ceil(total / 8)
        assert code.encode(X).shape == (5, code.bytes_per_vector(d))
        if d == 384:
            assert code.bytes_per_vector(d) == BYTES_384[bits]
    for bits in PROD_BITS:
        code = TurboQuant(bits, prod=True)
        assert code.bytes_per_vector(d) == math.ceil(d * bits / 8) + 2
        assert code.encode(X).shape == (5, code.bytes_per_vector(d))
    assert TurboQuant(2, prod=True).bytes_per_vector(384) == 96 + 2


def test_names_flags_and_bad_widths():
    assert TurboQuant(1.5).name == "turbo1.5" and TurboQuant(2).name == "turbo2"
    assert TurboQuant(2.0).name == "turbo2" and TurboQuant(3, prod=True).name == "turbo3-prod"
    code = TurboQuant(2)
    assert code.learns is False and code.random is True and code.ip_estimator is False
    for bad, prod in [(0.5, False), (5, False), (1.5, True), (0, True)]:
        with pytest.raises(ValueError, match="bits"):
            TurboQuant(bad, prod=prod)
    fitted = TurboQuant(2).fit(_unit(3, 64, seed=11))
    with pytest.raises(ValueError, match="fitted on 64"):
        fitted.encode(_unit(3, 32, seed=11))
    with pytest.raises(ValueError, match="fitted on 64"):
        fitted.decode(np.zeros((3, 8), dtype=np.uint8), 32)
    assert fitted.fit(_unit(3, 32, seed=11)).encode(_unit(3, 32, seed=11)).shape == (3, 8)
    with pytest.raises(RuntimeError, match="before fit"):
        TurboQuant(2).params_bytes()


def test_params_bytes_counts_codebooks_signs_and_s():
    d = 384
    X = _unit(3, d, seed=12)
    signs = RandomizedHadamard().fit(X).params_bytes()  # three windows of 256 float32 signs
    assert signs == 3 * 256 * 4
    assert TurboQuant(2).fit(X).params_bytes() == 4 * 4 + signs
    assert TurboQuant(1.5).fit(X).params_bytes() == (4 + 2) * 4 + signs
    assert TurboQuant(3, prod=True).fit(X).params_bytes() == 4 * 4 + signs + d * d * 4
    assert TurboQuant(1, prod=True).fit(X).params_bytes() == signs + d * d * 4


def test_same_seed_same_bytes_other_seed_other_bytes():
    X = _skewed(200, 384, seed=13)
    for bits, prod in [(2, False), (3.5, False), (3, True)]:
        a = TurboQuant(bits, prod=prod).fit(X).encode(X)
        assert np.array_equal(a, TurboQuant(bits, prod=prod).fit(X[:1]).encode(X))
        assert np.array_equal(a, TurboQuant(bits, prod=prod).encode(X))  # fit only sets d
        assert not np.array_equal(a, TurboQuant(bits, prod=prod, seed=1).fit(X).encode(X))


@pytest.mark.parametrize("d", [384, 1024])
def test_its_rotation_is_not_a_hadamard_transform_of_the_same_seed(d):
    """`hadamard+turbo<b>` composes two independent rotations: the code's signs come
    from a stream of their own, not the ones a `hadamard` transform draws from the seed."""
    X = _skewed(10, d, seed=15)
    for seed in (0, 7):
        code = TurboQuant(2, seed=seed).fit(X)
        transform = RandomizedHadamard(seed).fit(X)
        assert not np.array_equal(code.rotation.matrix(), transform.matrix())


@pytest.mark.parametrize("d", [384, 768, 1024])
def test_encode_decode_encode_is_stable(d):
    X = _skewed(300, d, seed=14)
    for bits in MSE_BITS:
        code = TurboQuant(bits).fit(X)
        codes = code.encode(X)
        again = code.encode(code.decode(codes, d))
        assert np.array_equal(codes, again), bits


def test_blocks_and_threads_give_the_same_bytes():
    X = _skewed(1000, 96, seed=15)
    for bits, prod in [(2.5, False), (2, True)]:
        one = TurboQuant(bits, prod=prod).fit(X)
        one.THREADS, one.BLOCK_FLOATS = 1, 1 << 30
        many = TurboQuant(bits, prod=prod).fit(X)
        many.THREADS, many.BLOCK_FLOATS = 3, 7 * 96  # 7 rows a block, last one partial
        codes = one.encode(X)
        assert np.array_equal(many.encode(X), codes)
        assert np.array_equal(many.decode(codes, 96), one.decode(codes, 96))


def test_zero_row_encodes_without_nan_and_decodes_to_a_fixed_vector():
    d = 384
    X = _skewed(4, d, seed=16)
    X[1] = 0.0
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        for bits in MSE_BITS:
            code = TurboQuant(bits).fit(X)
            Y = code.decode(code.encode(X), d)
            assert np.isfinite(Y).all()
            levels = code.rotation.apply(Y[1:2])[0]  # every coordinate at −c_1 of its group
            for g in code.groups:
                c1 = g.book.centroids[2 ** (g.k - 1)]
                assert np.allclose(levels[g.cols], -c1, atol=1e-6)
        qjl = TurboQuant(1, prod=True).fit(X)
        Y = qjl.decode(qjl.encode(X), d)
        assert (Y[1] == 0).all() and np.isfinite(Y).all()  # γ = 0
        prod = TurboQuant(3, prod=True).fit(X)
        assert np.isfinite(prod.decode(prod.encode(X), d)).all()


@pytest.mark.parametrize("d", [100, 384, 768, 1024])
def test_the_hadamard_rotation_is_orthogonal_for_every_d_and_invert_inverts_it(d):
    rot = RandomizedHadamard(seed=17).fit(np.zeros((1, d), dtype=np.float32))
    M = rot.matrix().astype(np.float64)
    assert np.allclose(M.T @ M, np.eye(d), atol=1e-5)
    X = _unit(50, d, seed=18)
    back = np.empty_like(X)
    assert rot.invert(rot.apply(X), out=back) is back
    assert np.allclose(back, X, atol=1e-5)


def test_a_technique_with_the_code_round_trips():
    X = _skewed(300, 384, seed=19)
    tech = Technique(name="turbo2", spec="turbo2", code=TurboQuant(2)).fit(X[:100])
    Y = tech.roundtrip(X)
    assert tech.bytes_per_vector(384) == 96 and not tech.learns and tech.depends_on_seed
    cos = np.einsum("ij,ij->i", Y, X) / np.linalg.norm(Y, axis=1)
    assert cos.mean() > 0.93  # √(1 − D_mse) ≈ 0.94 at 2 bits
