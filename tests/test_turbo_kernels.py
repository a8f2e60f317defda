"""TurboQuant's numba kernels against a float64 reference; bytes independent of threads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedbench.quantize import RandomizedHadamard, RandomizedHadamardPadded
from embedbench.quantize.lloyd_max import lloyd_max
from embedbench.quantize.turbo import GAMMA_BYTES, MSE_BITS, PROD_BITS, TurboQuant, _groups

ROWS = {64: 3000, 100: 2000, 384: 800, 1024: 300}  # ≥ 128,000 coordinates each


def _sylvester(n: int) -> np.ndarray:
    H = np.ones((1, 1))
    while len(H) < n:
        H = np.block([[H, H], [H, -H]])
    return H


def _rotation64(rot: RandomizedHadamard) -> np.ndarray:
    """The rotation as a float64 d × d matrix, from its signs and H (not from the kernels)."""
    d, n = rot.d, rot.n
    M = np.eye(d)
    for lo, signs in zip(rot.offsets, rot.signs, strict=True):
        step = np.eye(d)
        step[lo : lo + n, lo : lo + n] = np.diag(signs.astype(np.float64)) @ _sylvester(n)
        M = M @ step
    return M


def _reference(code: TurboQuant, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 TurboQuant: (each coordinate's code, sign bit then Gray magnitude; residual).

    Rotated by the dense float64 matrix, normalised, quantized with the float64 Lloyd–Max
    boundaries (a value on a boundary takes the level nearer 0).
    """
    d = X.shape[1]
    Z = X.astype(np.float64) @ _rotation64(code.rotation)
    norm = np.linalg.norm(Z, axis=1, keepdims=True)
    U = np.divide(Z, norm, out=np.zeros_like(Z), where=norm > 0)
    codes, levels, col = np.zeros(U.shape, dtype=np.int64), np.zeros_like(U), 0
    for n, k in _groups(d, code.mse_bits) if code.mse_bits else []:
        book, u, half = lloyd_max(d, k), U[:, col : col + n], 1 << (k - 1)
        m = np.searchsorted(book.boundaries[half:], np.abs(u), side="left")
        codes[:, col : col + n] = ((u > 0) << (k - 1)) | (m ^ (m >> 1))
        levels[:, col : col + n] = np.where(u > 0, 1, -1) * book.centroids[half + m]
        col += n
    return codes, U - levels


def _coordinate_codes(code: TurboQuant, packed: np.ndarray) -> np.ndarray:
    """Each coordinate's k-bit code read from the planes of the packed codes."""
    bits = np.unpackbits(packed, axis=1).astype(np.int64)
    out = np.zeros((len(packed), code.d), dtype=np.int64)
    for g in code.groups:
        planes = bits[:, g.offset : g.offset + g.bits].reshape(len(packed), g.k, g.n)
        for p in range(g.k):
            out[:, g.cols] = out[:, g.cols] << 1 | planes[:, p]
    return out


@pytest.mark.parametrize("d", [64, 100, 384, 1024])
def test_encode_agrees_with_a_float64_reference(d):
    X = np.random.default_rng(d).standard_normal((ROWS[d], d)).astype(np.float32)
    X[0] = 0.0  # a zero row: every coordinate at −c_1
    for bits, prod in [(b, False) for b in MSE_BITS] + [(b, True) for b in PROD_BITS]:
        code = TurboQuant(bits, prod=prod).fit(X)
        packed = code.encode(X)
        want, residual = _reference(code, X)
        got = _coordinate_codes(code, packed)
        assert (got != want).mean() < 1e-4, (bits, prod, (got != want).sum())
        assert (got[0] == 0).all()
        if prod:  # the QJL signs of S r and γ = ‖r‖
            mse = code.code_bits - d
            signs = np.unpackbits(packed[:, :-GAMMA_BYTES], axis=1)[:, mse : mse + d]
            qjl = (residual @ code.S.T.astype(np.float64) > 0).astype(np.uint8)
            assert (signs != qjl).mean() < 1e-4, (bits, (signs != qjl).sum())
            gamma = packed[:, -GAMMA_BYTES:].copy().view("<f2")[:, 0].astype(np.float64)
            assert np.allclose(gamma, np.linalg.norm(residual, axis=1), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("d", [100, 384, 1024])
def test_decode_is_the_levels_rotated_back(d):
    X = np.random.default_rng(d).standard_normal((200, d)).astype(np.float32)
    for bits in MSE_BITS:
        code = TurboQuant(bits).fit(X)
        M = _rotation64(code.rotation)
        want, residual = _reference(code, X)
        U = X / np.linalg.norm(X, axis=1, keepdims=True)
        levels = U @ M - residual  # the reference's levels
        Y = code.decode(code.encode(X), d).astype(np.float64)
        ok = (_coordinate_codes(code, code.encode(X)) == want).all(axis=1)
        assert ok.mean() > 0.9
        assert np.allclose(Y[ok], levels[ok] @ M.T, atol=1e-6)


@pytest.mark.parametrize("d", [96, 1024])
def test_bytes_do_not_depend_on_threads_chunks_or_neighbour_rows(d):
    X = np.random.default_rng(1).standard_normal((700, d)).astype(np.float32)
    for bits, prod in [(1, False), (2.5, False), (4, False), (2, True)]:
        one = TurboQuant(bits, prod=prod).fit(X)
        one.THREADS, one.BLOCK_FLOATS = 1, 1 << 30
        many = TurboQuant(bits, prod=prod).fit(X)
        many.THREADS, many.BLOCK_FLOATS = 3, 7 * d  # chunks of uneven length
        codes = one.encode(X)
        assert np.array_equal(many.encode(X), codes)
        assert np.array_equal(one.encode(X[13:14]), codes[13:14])  # a row alone
        assert np.array_equal(one.encode(np.asfortranarray(X)), codes)  # any memory layout
        assert np.array_equal(many.decode(codes, d), one.decode(codes, d))


@pytest.mark.parametrize("cls", [RandomizedHadamard, RandomizedHadamardPadded])
@pytest.mark.parametrize("d", [5, 16, 100, 384, 1024])
def test_rotation_kernels_match_the_matrix_and_invert(cls, d):
    X = np.random.default_rng(2).standard_normal((50, d)).astype(np.float32)
    rot = cls(seed=3).fit(X)
    if cls is RandomizedHadamard:
        assert np.allclose(rot.apply(X), X.astype(np.float64) @ _rotation64(rot), atol=1e-5)
    n = rot.out_dim(d)
    assert np.allclose(rot.invert(rot.apply(X)), X, atol=1e-5)
    assert rot.invert(rot.apply(X)).shape == (50, d) and rot.apply(X).shape == (50, n)
    with pytest.raises(ValueError, match="dimensions"):
        rot.invert(np.zeros((2, n + 1), dtype=np.float32))
    assert math.isclose(
        float(np.linalg.norm(rot.apply(X[:1]))), np.linalg.norm(X[:1]), rel_tol=1e-5
    )
