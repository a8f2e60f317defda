"""Reconstruction error against Shannon's bound (`embedbench.quantize.distortion`)."""

from __future__ import annotations

import numpy as np
import pytest

from embedbench.quantize import parse_technique
from embedbench.quantize.distortion import Reconstruction, shannon_bound


def _sphere(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, d))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _anisotropic(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) * np.arange(1, d + 1) ** -0.7
    X = rng.normal(size=(n, d)) @ A.T + 0.3
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _mse(name: str, cal: np.ndarray, ev: np.ndarray) -> tuple[float, Reconstruction]:
    tech = parse_technique(name).fit(cal)
    rec = Reconstruction(tech, cal)
    return rec.mse(ev), rec


def test_shannon_bound_is_two_to_the_minus_two_b():
    assert shannon_bound(1) == 0.25
    assert shannon_bound(0.5) == 0.5
    assert shannon_bound(4) == 2.0**-8


@pytest.mark.parametrize(
    "name",
    ["float32", "center+float32", "svd+float32", "haar+float32", "hadamard+float32",
     "hadamard-pad+float32", "itq+float32", "pca-haar+float32", "center+svd+float32",
     "pca64+float32"],
)  # fmt: skip
def test_every_transform_is_undone_exactly(name):
    """A float code after any chain of invertible transforms reconstructs the vectors:
    each transform's least-squares inverse undoes it (mean added back, rotation
    transposed, padding dropped)."""
    X = _anisotropic(1200, 64, 0)
    mse, rec = _mse(name, X[:1000], X[1000:])
    assert mse < 1e-10
    assert rec.scale == pytest.approx(1.0, abs=1e-6)


def test_sign_code_on_the_sphere_has_the_known_distortion():
    """1 bit per coordinate of isotropic unit vectors, decoded as scale · sign with the
    best constant scale: E‖u − s·sign(u)‖² = 1 − 2/π (s = E|u_i| = √(2/(π d)))."""
    X = _sphere(6000, 256, 1)
    mse, rec = _mse("binary", X[:4000], X[4000:])
    assert mse == pytest.approx(1 - 2 / np.pi, rel=0.01)
    assert rec.scale == pytest.approx(np.sqrt(2 / (np.pi * 256)), rel=0.01)
    assert mse / shannon_bound(1) == pytest.approx(4 * (1 - 2 / np.pi), rel=0.01)


def test_truncation_reconstructs_a_direction():
    """trunc<k> keeps Pu/‖Pu‖; padded with zeros and scaled by s = mean ‖Pu‖ (fitted on
    calibration) its error is 1 − 2 s ‖Pu‖ + s², on average 1 − s² when evaluated on the
    calibration rows themselves."""
    X = _anisotropic(2000, 64, 2)
    mse, rec = _mse("trunc16+float32", X, X)
    kept = np.linalg.norm(X[:, :16].astype(np.float64), axis=1)
    assert rec.scale == pytest.approx(kept.mean(), rel=1e-6)
    assert mse == pytest.approx(1 - kept.mean() ** 2, rel=1e-6)


def test_more_bits_less_distortion_and_the_scale_comes_from_calibration():
    X = _anisotropic(3000, 128, 3)
    cal, ev = X[:2000], X[2000:]
    errors = [_mse(n, cal, ev)[0] for n in ("binary", "2bit", "int4", "int8", "fp16")]
    assert errors == sorted(errors, reverse=True)
    _, rec = _mse("binary", cal, ev)
    _, rec_other = _mse("binary", cal, ev[:10])
    assert rec.scale == rec_other.scale  # evaluated vectors never move the decoder


def test_pca_reduction_puts_the_whole_mean_back():
    """pca<k> + float: x̂ = (x − μ) V Vᵀ + μ, so the error is exactly the centred
    vector's part outside the top k axes (the least-squares inverse of the affine map
    would lose μ's part outside them too, here a 0.3 offset on every dimension)."""
    X = _anisotropic(1500, 64, 4)
    cal, ev = X[:1000], X[1000:]
    mse, rec = _mse("pca16+float32", cal, ev)
    t = rec.technique.transforms[0]
    C = ev.astype(np.float64) - t.mean
    R = t.R.astype(np.float64)
    outside = C - C @ R @ R.T
    expected = np.mean(np.einsum("ij,ij->i", outside, outside) / np.einsum("ij,ij->i", ev, ev))
    assert rec.scale == pytest.approx(1.0, abs=1e-6)
    assert mse == pytest.approx(expected, rel=1e-4)


def test_an_inner_product_estimator_is_measured_unscaled():
    """turbo2-prod's decode is unbiased for inner products and used unnormalised by
    search: no fitted scale (a least-squares one would shrink its noise)."""
    X = _sphere(3000, 128, 5)
    mse, rec = _mse("turbo2-prod", X[:2000], X[2000:])
    assert rec.scale == 1.0
    Xh = rec(X[2000:])
    direct = np.mean(np.sum((X[2000:] - Xh) ** 2, axis=1))
    assert mse == pytest.approx(direct, rel=1e-9)
