"""Codes, sizes, rotations and presets of `embedbench.quantize` on small random arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedbench.errors import UserError
from embedbench.quantize import (
    BLOCK,
    CODES,
    PRESETS,
    Binary,
    Float32,
    Int8,
    SVDRotation,
    Ternary,
    parse_technique,
)
from embedbench.registry import build_technique
from tests.vectors import _cos, _gauss

BITS = {name: cls.bits for name, cls in CODES.items()}


def _hamming(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Hamming distances between packed rows (int64, so negation cannot wrap)."""
    return np.bitwise_count(np.bitwise_xor(q[:, None, :], d[None, :, :])).sum(-1, dtype=np.int64)


# --- round trips -------------------------------------------------------------------------


def test_float32_roundtrip_is_exact():
    X = _gauss(50, 37, seed=1)
    code = Float32().fit(X)
    packed = code.encode(X)
    assert packed.dtype == np.uint8
    assert packed.shape == (50, 4 * 37)
    out = code.decode(packed, 37)
    assert out.dtype == np.float32
    assert np.array_equal(out, X)


def test_int8_error_at_most_half_a_step_inside_calibrated_range():
    cal = _gauss(400, 24, seed=2, scale=0.3)
    code = Int8().fit(cal)
    lo, hi = cal.min(axis=0), cal.max(axis=0)
    step = (hi - lo) / 255.0
    assert np.allclose(code.lo, lo)
    assert np.allclose(code.step, step, rtol=1e-6)
    # new vectors, drawn inside the calibrated box, plus the calibration vectors and the edges
    rng = np.random.default_rng(3)
    inside = (lo + rng.random((300, 24)) * (hi - lo)).astype(np.float32)
    X = np.vstack([cal, inside, lo[None], hi[None]])
    packed = code.encode(X)
    assert packed.dtype == np.uint8 and packed.shape == X.shape
    err = np.abs(code.decode(packed, 24) - X)
    # step/2, plus float32 rounding slack far below a step
    assert (err <= step / 2 * (1 + 1e-4) + 1e-7).all(), float((err / step).max())
    # and the rounding is real: a coarser bound would be violated somewhere
    assert (err > step / 4).any()
    # the calibrated extremes land on the extreme levels
    q = packed.view(np.int8)
    assert (q[-2] == -128).all() and (q[-1] == 127).all()


def test_ternary_decodes_to_threshold_rule():
    cal = _gauss(300, 20, seed=4)
    code = Ternary().fit(cal)
    t = np.quantile(cal, [1 / 3, 2 / 3], axis=0).astype(np.float32)
    assert np.array_equal(code.t1, t[0]) and np.array_equal(code.t2, t[1])
    X = _gauss(120, 20, seed=5)
    out = code.decode(code.encode(X), 20)
    assert set(np.unique(out).tolist()) == {-1.0, 0.0, 1.0}
    rule = (X > t[0]).astype(np.float32) + (X > t[1]).astype(np.float32) - 1.0
    assert np.array_equal(out, rule)
    # roughly a third of calibration values at each level
    cal_out = code.decode(code.encode(cal), 20)
    for level in (-1.0, 0.0, 1.0):
        assert abs((cal_out == level).mean() - 1 / 3) < 0.02


def test_binary_decodes_to_sign_rule():
    X = _gauss(80, 45, seed=6)
    X[0, :5] = 0.0  # zero is not > 0: decodes to -1
    code = Binary().fit(X)
    out = code.decode(code.encode(X), 45)
    assert set(np.unique(out).tolist()) == {-1.0, 1.0}
    assert np.array_equal(out, np.where(X > 0, 1.0, -1.0).astype(np.float32))
    assert (out[0, :5] == -1.0).all()


@pytest.mark.parametrize("name", sorted(CODES))
def test_codes_agree_with_rule_across_block_boundary(name):
    """More rows than one encode block: the last partial block must be packed like the rest."""
    n, d = BLOCK + 37, 6
    X = _gauss(n, d, seed=7)
    code = CODES[name]().fit(X[:500])
    packed = code.encode(X)
    per_row = np.vstack([code.encode(X[i : i + 1]) for i in (0, BLOCK - 1, BLOCK, n - 1)])
    assert np.array_equal(packed[[0, BLOCK - 1, BLOCK, n - 1]], per_row)
    # encoding in pieces equals encoding all at once
    assert np.array_equal(packed, np.vstack([code.encode(X[:1000]), code.encode(X[1000:])]))


# --- sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [384, 1024, 1536, 100, 7])
@pytest.mark.parametrize("name", sorted(CODES))
def test_packed_sizes(name, d):
    bits = BITS[name]
    expected = math.ceil(d * bits / 8)
    tech = parse_technique(name)
    assert tech.code.bits == bits
    assert tech.bytes_per_vector(d) == expected
    assert tech.size_multiplier(d) == pytest.approx(4 * d / expected)
    assert tech.bits_per_dim(d) == pytest.approx(8 * expected / d)
    if (d * bits) % 8 == 0:
        assert tech.bits_per_dim(d) == pytest.approx(bits)
    X = _gauss(5, d, seed=d)
    tech.fit(_gauss(64, d, seed=d + 1))
    packed = tech.encode(X)
    assert packed.dtype == np.uint8
    assert packed.shape == (5, expected)
    assert tech.roundtrip(X).shape == (5, d)


def test_preset_size_multipliers_match_method_table():
    d = 384
    expected = {
        "classic": 1,
        "scalar": 4,
        "ternary": 16,
        "binary": 32,
        "rotated-scalar": 4,
        "rotated-ternary": 16,
        "rotated-binary": 32,
    }
    for name, mult in expected.items():
        assert parse_technique(name).size_multiplier(d) == mult, name


# --- ±1 cosine is Hamming ----------------------------------------------------------------


@pytest.mark.parametrize("d", [256, 100])
def test_binary_cosine_is_affine_in_packed_hamming(d):
    rng = np.random.default_rng(8)
    Q = _gauss(12, d, seed=9)
    D = _gauss(200, d, seed=10)
    D[:12] = Q + 0.5 * rng.standard_normal((12, d)).astype(np.float32)  # some near neighbours
    code = Binary()
    q, p = code.encode(Q), code.encode(D)
    h = _hamming(q, p)
    Qd, Pd = code.decode(q, d), code.decode(p, d)
    assert np.allclose(_cos(Qd, Pd), 1 - 2 * h / d, atol=1e-9)
    # ±1 vectors all have norm sqrt(d), so cosine is dot / d; the dot is an exact integer
    cos = (Qd @ Pd.T) / d
    assert np.array_equal(cos, ((d - 2 * h) / d).astype(np.float32))
    # identical rankings (stable sort: exact ties broken the same way)
    assert np.array_equal(
        np.argsort(-cos, axis=1, kind="stable"), np.argsort(h, axis=1, kind="stable")
    )
    # the near neighbour of each query ranks first
    assert (np.argmin(h, axis=1) == np.arange(12)).all()


def test_cosine_on_packed_bytes_does_not_track_hamming():
    """The seed's bug: handing packed uint8 bytes to a cosine evaluator."""
    d = 256
    rng = np.random.default_rng(11)
    Q = _gauss(20, d, seed=12)
    D = _gauss(300, d, seed=13)
    D[:20] = Q + 0.5 * rng.standard_normal((20, d)).astype(np.float32)
    code = Binary()
    q, p = code.encode(Q), code.encode(D)
    ham_sim = -_hamming(q, p).astype(np.float64)
    good = np.corrcoef(_cos(code.decode(q, d), code.decode(p, d)).ravel(), ham_sim.ravel())[0, 1]
    bad = np.corrcoef(_cos(q, p).ravel(), ham_sim.ravel())[0, 1]
    assert good == pytest.approx(1.0, abs=1e-9)
    assert bad < 0.6, bad


# --- scalar clipping ---------------------------------------------------------------------


def test_int8_clips_instead_of_wrapping():
    cal = _gauss(200, 10, seed=14, scale=0.2)
    code = Int8().fit(cal)
    lo, hi = cal.min(axis=0), cal.max(axis=0)
    span = hi - lo
    X = np.vstack(
        [hi + 0.01 * span, hi + span, hi + 100.0, lo - 0.01 * span, lo - span, lo - 100.0]
    ).astype(np.float32)
    packed = code.encode(X)
    q = packed.view(np.int8)
    assert (q[:3] == 127).all()
    assert (q[3:] == -128).all()
    out = code.decode(packed, 10)
    assert np.allclose(out[:3], hi, atol=1e-6)
    assert np.allclose(out[3:], lo, atol=1e-6)


def test_int8_constant_calibration_dimension_still_clips_to_range():
    cal = _gauss(50, 4, seed=15, scale=0.2)
    cal[:, 0] = 0.25  # constant on calibration
    code = Int8().fit(cal)
    X = np.array([[0.9, 0.0, 0.0, 0.0], [-0.9, 0.0, 0.0, 0.0]], dtype=np.float32)
    out = code.decode(code.encode(X), 4)
    assert np.allclose(out[:, 0], 0.25, atol=1e-6)  # actual: [1.25, 0.25]


# --- rotations ---------------------------------------------------------------------------


def _anisotropic(n: int, d: int, seed: int) -> np.ndarray:
    """Data with well-separated singular values along a random orthogonal basis."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.geomspace(8.0, 0.5, d)
    return ((rng.standard_normal((n, d)) * scales) @ basis.T + 0.3).astype(np.float32)


def test_svd_rotation_is_orthogonal_right_singular_vectors():
    d = 16
    cal = _anisotropic(2000, d, seed=16)
    rot = SVDRotation().fit(cal)
    R = rot.R
    assert R.shape == (d, d)
    assert np.allclose(R.T @ R, np.eye(d), atol=1e-4)
    assert np.allclose(R @ R.T, np.eye(d), atol=1e-4)
    Xc = cal.astype(np.float64) - cal.astype(np.float64).mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    assert (np.diff(s) < 0).all() and (s[:-1] / s[1:] > 1.05).all()  # well separated
    V = Vt.T
    # same columns up to sign, largest singular value first
    assert np.allclose(np.abs(R), np.abs(V), atol=1e-3)
    # the left factor U (n × n) is not what is used: R is d × d and rotates embedding space
    dots = np.abs(np.sum(R * V, axis=0))
    assert np.allclose(dots, 1.0, atol=1e-4)
    # sign convention: each column's largest-magnitude entry is positive
    cols = np.arange(d)
    assert (R[np.abs(R).argmax(axis=0), cols] > 0).all()


def test_svd_rotation_preserves_cosine():
    cal = _anisotropic(500, 32, seed=17)
    X = _gauss(40, 32, seed=18)
    rot = SVDRotation().fit(cal)
    Z = rot.apply(X)
    assert np.allclose(_cos(Z, Z), _cos(X, X), atol=1e-5)
    assert np.allclose(np.linalg.norm(Z, axis=1), np.linalg.norm(X, axis=1), rtol=1e-5)


@pytest.mark.parametrize("preset", ["rotated-scalar", "rotated-ternary", "rotated-binary"])
def test_rotation_is_fitted_on_calibration_only(preset):
    A = _anisotropic(600, 16, seed=19)
    B = _anisotropic(300, 16, seed=20)[:, ::-1].copy()  # differently shaped evaluation set
    tech = build_technique(preset)
    with pytest.raises(RuntimeError, match="before fit"):
        tech.encode(B)
    tech.fit(A)
    R_before = tech.transforms[0].R.copy()
    codes_B = tech.encode(B)
    # encoding B changed nothing fitted
    assert np.array_equal(tech.transforms[0].R, R_before)
    # and equals a fresh technique fitted on A alone
    assert np.array_equal(codes_B, build_technique(preset).fit(A).encode(B))
    # whereas letting B into the fit changes the rotation (so the fit above did not see B)
    refit = build_technique(preset).fit(np.vstack([A, B]))
    assert np.abs(refit.transforms[0].R - R_before).max() > 1e-2
    assert not np.array_equal(refit.encode(B), codes_B)


def test_int8_ranges_come_from_calibration_only():
    A = _gauss(300, 8, seed=21, scale=0.1)
    B = _gauss(50, 8, seed=22, scale=5.0)
    tech = build_technique("scalar").fit(A)
    lo, step = tech.code.lo.copy(), tech.code.step.copy()
    tech.encode(B)
    assert np.array_equal(tech.code.lo, lo) and np.array_equal(tech.code.step, step)
    assert np.allclose(lo, A.min(axis=0))


# --- presets and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec", "transforms", "code"),
    [
        ("classic", "float32", [], Float32),
        ("scalar", "int8", [], Int8),
        ("ternary", "ternary", [], Ternary),
        ("binary", "binary", [], Binary),
        ("rotated-scalar", "svd+int8", [SVDRotation], Int8),
        ("rotated-ternary", "svd+ternary", [SVDRotation], Ternary),
        ("rotated-binary", "svd+binary", [SVDRotation], Binary),
        ("svd+binary", "svd+binary", [SVDRotation], Binary),
        ("int8", "int8", [], Int8),
        ("svd+svd+float32", "svd+svd+float32", [SVDRotation, SVDRotation], Float32),
    ],
)
def test_presets_parse_to_specs(name, spec, transforms, code):
    tech = parse_technique(name)
    assert tech.name == name
    assert tech.spec == spec
    assert [type(t) for t in tech.transforms] == transforms
    assert type(tech.code) is code
    assert not tech.fitted
    assert build_technique(name).spec == spec


def test_all_seven_presets_exist():
    assert set(PRESETS) == {
        "classic",
        "scalar",
        "ternary",
        "binary",
        "rotated-scalar",
        "rotated-ternary",
        "rotated-binary",
    }


@pytest.mark.parametrize(
    ("name", "part"),
    [("binnary", "binnary"), ("svd+foo", "foo"), ("foo+binary", "foo"), ("svd+scalar", "scalar")],
)
def test_unknown_parts_raise_keyerror(name, part):
    with pytest.raises(KeyError) as info:
        parse_technique(name)
    assert info.value.args[0] == part


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("binnary", ["unknown technique 'binnary'", "did you mean 'binary'", "rotated-binary"]),
        ("rotated-binnary", ["did you mean 'rotated-binary'"]),
        ("svd+binnary", ["unknown code", "'binnary'", "did you mean 'binary'", "int8"]),
        ("svdd+binary", ["unknown transform", "'svdd'", "did you mean 'svd'"]),
    ],
)
def test_build_technique_user_error(name, needles):
    with pytest.raises(UserError) as info:
        build_technique(name)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    assert info.value.exit_code == 2


def test_build_technique_names_the_bad_transform_even_if_it_is_a_code_name():
    with pytest.raises(UserError) as info:
        build_technique("binary+binary")
    msg = str(info.value)
    assert "unknown transform" in msg and "svd" in msg.split("allowed:")[1], msg


# --- determinism -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_same_calibration_gives_identical_codes(preset):
    cal = _anisotropic(400, 24, seed=23)
    X = _gauss(60, 24, seed=24)
    a = build_technique(preset).fit(cal).encode(X)
    b = build_technique(preset).fit(cal.copy()).encode(X.copy())
    assert a.tobytes() == b.tobytes()
    assert np.array_equal(
        build_technique(preset).fit(cal).roundtrip(X), build_technique(preset).fit(cal).roundtrip(X)
    )
