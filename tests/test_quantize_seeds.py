"""Replicate seeds, `learns` / `random` / `depends_on_seed`, the null-space drop of
fitted PCA bases (svd, pca-haar, itq) and float controls (`control_spec`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedbench.native import NativeCode
from embedbench.quantize import (
    CODES,
    DEFAULT_SEED,
    ITQ,
    PRESETS,
    RANK_RTOL,
    TRANSFORMS,
    HaarRotation,
    PCAHaarRotation,
    RandomizedHadamard,
    RandomizedHadamardPadded,
    SVDRotation,
    Transform,
    _pca_basis,
    build_transform,
    control_spec,
    parse_technique,
)
from embedbench.registry import build_technique
from tests.vectors import _cos, _embeddings, _gauss

DEAD = [3, 10, 17]  # dimensions constant on calibration, like all-MiniLM-L6-v2's three
FITTED_BASES = {"svd": SVDRotation, "pca-haar": PCAHaarRotation, "itq": ITQ}
RANDOM_SPECS = [
    "haar+binary",
    "pca-haar+int8",
    "hadamard+ternary",
    "hadamard-pad+int4",
    "itq+binary",
]


def _with_dead(X: np.ndarray, values=(0.3, -0.2, 1.6e-8)) -> np.ndarray:
    """X with the DEAD columns set to constants (one of them MiniLM-sized, ~1e-8)."""
    X = X.copy()
    X[:, DEAD] = np.asarray(values, dtype=np.float32)
    return X


def _matrix(t: Transform) -> np.ndarray:
    """The fitted map of a transform as a matrix (its image of the identity)."""
    return t.matrix() if hasattr(t, "matrix") else t.R


# --- learns / random / keeps_cosines -----------------------------------------------------

LEARNS = {
    "float32": False,
    "fp16": False,
    "binary": False,
    "int8": True,
    "int4": True,
    "ternary": True,
    "2bit": True,
    "ternary-sym": True,
    "binary-centered": True,
}
TRANSFORM_FLAGS = {  # learns, random, keeps_cosines
    "center": (True, False, False),
    "svd": (True, False, False),
    "haar": (False, True, True),
    "pca-haar": (True, True, False),
    "itq": (True, True, False),
    "hadamard": (False, True, True),
    "hadamard-pad": (False, True, True),
    "trunc<k>": (False, False, False),
    "pca<k>": (True, False, False),
}


def test_every_code_says_whether_it_learns_and_none_is_random():
    assert set(LEARNS) == set(CODES)
    for name, cls in CODES.items():
        assert cls.learns is LEARNS[name], name
        assert cls.random is False, name
    assert NativeCode.learns is False and NativeCode.random is False


def test_every_transform_sets_learns_random_and_keeps_cosines():
    assert set(TRANSFORM_FLAGS) == set(TRANSFORMS)
    for name, cls in TRANSFORMS.items():
        flags = (cls.learns, cls.random, cls.keeps_cosines)
        assert all(isinstance(f, bool) for f in flags), name
        assert flags == TRANSFORM_FLAGS[name], name


@pytest.mark.parametrize(
    ("name", "learns", "random"),
    [
        ("float32", False, False),
        ("classic", False, False),
        ("fp16", False, False),
        ("binary", False, False),
        ("trunc128+binary", False, False),
        ("trunc128+fp16", False, False),
        ("scalar", True, False),
        ("ternary", True, False),
        ("rotated-binary", True, False),
        ("center+binary", True, False),
        ("trunc64+binary-centered", True, False),
        ("haar+binary", False, True),
        ("hadamard+binary", False, True),
        ("hadamard-pad+float32", False, True),
        ("pca-haar+binary", True, True),
        ("itq+binary", True, True),
        ("binary/asym", False, False),
        ("binary/rescore4", False, False),
        ("binary/rescore4-int8", True, False),
        ("trunc128+binary/asym/rescore2-int8", True, False),
        ("haar+binary/rescore4", False, True),
        ("native-int8", False, False),
        ("native-binary/rescore4", False, False),
        ("native-ubinary/rescore4-int8", True, False),
    ],
)
def test_depends_on_seed(name, learns, random):
    tech = build_technique(name)
    assert (tech.learns, tech.random) == (learns, random)
    assert tech.depends_on_seed is (learns or random)
    if "/" not in name and not name.startswith("native-"):
        assert parse_technique(name).depends_on_seed is (learns or random)


# --- seeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [*RANDOM_SPECS, *sorted(PRESETS), "center+svd+ternary"])
def test_seed_zero_is_the_default_technique(spec):
    cal = _embeddings(300, 24, seed=1)
    X = _embeddings(40, 24, seed=2)
    default = parse_technique(spec).fit(cal).encode(X)
    assert parse_technique(spec).seed == 0
    assert parse_technique(spec, seed=0).fit(cal).encode(X).tobytes() == default.tobytes()
    assert build_technique(spec, seed=0).fit(cal).encode(X).tobytes() == default.tobytes()


@pytest.mark.parametrize("spec", RANDOM_SPECS)
@pytest.mark.parametrize("seed", [0, 3])
def test_same_seed_gives_byte_identical_codes(spec, seed):
    cal = _embeddings(300, 24, seed=4)
    X = _embeddings(50, 24, seed=5)
    a = build_technique(spec, seed=seed).fit(cal).encode(X)
    b = build_technique(spec, seed=seed).fit(cal.copy()).encode(X.copy())
    assert a.tobytes() == b.tobytes()
    assert parse_technique(spec, seed=seed).fit(cal).encode(X).tobytes() == a.tobytes()


@pytest.mark.parametrize("name", ["haar", "pca-haar", "itq", "hadamard", "hadamard-pad"])
def test_different_seeds_give_different_maps(name):
    d = 24
    cal = _embeddings(300, d, seed=6)
    maps = [_matrix(build_transform(name, seed).fit(cal)) for seed in (0, 1, 2)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert maps[a].shape == maps[b].shape
        assert np.abs(maps[a] - maps[b]).max() > 1e-2, (name, a, b)
    X = _embeddings(50, d, seed=7)
    codes = [build_technique(f"{name}+binary", seed).fit(cal).encode(X) for seed in (0, 1)]
    assert not np.array_equal(*codes)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("haar", HaarRotation),
        ("pca-haar", PCAHaarRotation),
        ("itq", ITQ),
        ("hadamard", RandomizedHadamard),
        ("hadamard-pad", RandomizedHadamardPadded),
    ],
)
def test_random_transforms_draw_from_default_seed_plus_seed(name, cls):
    cal = _embeddings(200, 20, seed=8)
    for seed in (0, 5):
        t = build_transform(name, seed)
        assert t.seed == DEFAULT_SEED + seed
        explicit = cls(seed=DEFAULT_SEED + seed).fit(cal)
        assert np.array_equal(_matrix(t.fit(cal)), _matrix(explicit))


@pytest.mark.parametrize(
    "spec", ["int8", "ternary", "2bit", "svd+int8", "center+svd+binary", "trunc16+int4"]
)
def test_parts_that_are_not_random_ignore_the_seed(spec):
    cal = _embeddings(300, 24, seed=9)
    X = _embeddings(40, 24, seed=10)
    codes = {build_technique(spec, seed).fit(cal).encode(X).tobytes() for seed in (0, 1, 7)}
    assert len(codes) == 1


def test_seed_is_recorded_and_kept_through_search_options():
    tech = build_technique("haar+binary/rescore4", seed=4)
    assert tech.seed == 4 and tech.spec == "haar+binary/rescore4"
    assert tech.transforms[0].seed == DEFAULT_SEED + 4
    assert parse_technique("rotated-binary", seed=2).seed == 2


@pytest.mark.parametrize("seed", [-1, 1.5, True, "1"])
def test_bad_seed_is_a_value_error(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        parse_technique("haar+binary", seed=seed)


# --- null-space directions dropped -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FITTED_BASES))
def test_dead_calibration_dimensions_are_dropped(name):
    d = 24
    cal = _with_dead(_embeddings(500, d, seed=11))
    t = build_transform(name)
    assert t.out_dim(d) == d  # unknown before fit
    t.fit(cal)
    r = d - len(DEAD)
    assert t.out_dim(d) == r
    R = t.R.astype(np.float64)
    assert R.shape == (d, r)
    assert np.allclose(R.T @ R, np.eye(r), atol=1e-5)  # orthonormal columns
    assert np.abs(R[DEAD]).max() < 1e-6  # the kept span misses the dead coordinates
    with pytest.raises(ValueError, match="fitted on 24 dimensions, got 30"):
        t.out_dim(30)


@pytest.mark.parametrize("name", sorted(FITTED_BASES))
def test_full_rank_calibration_keeps_every_direction(name):
    d = 24
    cal = _embeddings(500, d, seed=12)
    t = build_transform(name).fit(cal)
    assert t.out_dim(d) == d and t.R.shape == (d, d)
    # a direction with small but real variance (eigenvalue ~1e-8 of the largest) is kept
    cal = cal.copy()
    cal[:, DEAD[0]] = 0.3 + 1e-4 * _gauss(500, 1, seed=13)[:, 0]
    assert build_transform(name).fit(cal).out_dim(d) == d


def test_rank_tolerance_sits_in_the_gap():
    d = 24
    cal = _with_dead(_embeddings(500, d, seed=14)).astype(np.float64)
    Xc = cal - cal.mean(axis=0)
    evals = np.sort(np.linalg.eigvalsh(Xc.T @ Xc))[::-1]
    assert (evals[-len(DEAD) :] <= RANK_RTOL * evals[0]).all()
    assert (evals[: -len(DEAD)] > 1e3 * RANK_RTOL * evals[0]).all()
    assert _pca_basis(cal).shape == (d, d - len(DEAD))
    assert _pca_basis(cal, rtol=-np.inf).shape == (d, d)  # the old, unpruned basis


def test_constant_calibration_is_a_clear_error():
    cal = np.tile(_embeddings(1, 8, seed=15), (20, 1))
    for name in FITTED_BASES:
        with pytest.raises(ValueError, match="calibration vectors are all equal"):
            build_transform(name).fit(cal)


@pytest.mark.parametrize("code", ["binary", "int8", "ternary", "float32"])
@pytest.mark.parametrize("name", sorted(FITTED_BASES))
def test_sizes_and_codes_use_the_kept_dimensions(name, code):
    d = 24
    r = d - len(DEAD)
    tech = parse_technique(f"{name}+{code}")
    bits = CODES[code].bits
    assert tech.bytes_per_vector(d) == math.ceil(d * bits / 8)  # before fit: d
    tech.fit(_with_dead(_embeddings(400, d, seed=16)))
    assert tech.out_dim(d) == r
    assert tech.bytes_per_vector(d) == math.ceil(r * bits / 8)
    assert tech.size_multiplier(d) == pytest.approx(4 * d / math.ceil(r * bits / 8))
    X = _with_dead(_embeddings(30, d, seed=17))
    packed = tech.encode(X)
    assert packed.shape == (30, math.ceil(r * bits / 8))
    assert tech.roundtrip(X).shape == (30, r)
    assert tech.params_bytes() == sum(t.params_bytes() for t in tech.transforms) + (
        tech.code.params_bytes()
    )


def _jittered(cal: np.ndarray, seed: int) -> np.ndarray:
    """`cal` with its dead columns moved by a few float32 ulps per row (rounding noise)."""
    rng = np.random.default_rng(seed)
    out = cal.copy()
    steps = rng.integers(-3, 4, (len(cal), len(DEAD))).astype(np.float32)
    ulp = np.spacing(np.abs(cal[0, DEAD]))
    out[:, DEAD] = cal[:, DEAD] + steps * ulp
    return out


@pytest.mark.parametrize("code", ["binary", "int8", "ternary"])
@pytest.mark.parametrize("name", sorted(FITTED_BASES))
def test_codes_do_not_depend_on_null_space_noise(name, code):
    """Calibrations that differ only in the dead columns (other constants, or rounding
    jitter of a few ulps) give the same codes; so do evaluation vectors that differ
    only there. Before the drop, the d × d basis rotated the dead coordinates by an
    eigenbasis of rounding noise (checked below), and the codes followed it."""
    d = 24
    base = _embeddings(500, d, seed=18)
    cal = _with_dead(base)
    variants = [_with_dead(base, (0.1, 0.4, -3e-8)), _jittered(cal, seed=19)]
    X = _with_dead(_embeddings(200, d, seed=20))
    spec = f"{name}+{code}"
    ref = parse_technique(spec).fit(cal)
    codes = ref.encode(X)
    for other in variants:
        assert np.array_equal(parse_technique(spec).fit(other).encode(X), codes)
    # evaluation vectors with anything in the dead coordinates code the same
    Y = X.copy()
    Y[:, DEAD] += _gauss(200, len(DEAD), seed=21, scale=1e-7)
    assert np.array_equal(ref.encode(Y), codes)
    Y[:, DEAD] = _gauss(200, len(DEAD), seed=22, scale=0.3)
    assert np.array_equal(ref.encode(Y), codes)
    # the test has teeth: the unpruned null-space eigenvectors differ between calibrations
    full = [_pca_basis(c, rtol=-np.inf) for c in (cal, variants[1])]
    kept = d - len(DEAD)
    assert np.abs(full[0][:, :kept] - full[1][:, :kept]).max() < 1e-6
    null_a, null_b = full[0][DEAD, kept:], full[1][DEAD, kept:]
    assert not np.allclose(np.abs(null_a), np.abs(null_b), atol=1e-2)


def test_itq_with_dead_dimensions_still_converges():
    d = 24
    t = ITQ(iterations=30).fit(_with_dead(_embeddings(800, d, seed=23)))
    assert t.R.shape == (d, d - len(DEAD)) and t.offset.shape == (d - len(DEAD),)
    assert (np.diff(t.losses) <= 1e-9 * t.losses[0]).all()


# --- float controls -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "control"),
    [
        # codes alone: the float baseline is the control
        ("float32", None),
        ("classic", None),
        ("binary", None),
        ("scalar", None),
        ("int4", None),
        ("binary-centered", None),
        # isometries keep every cosine
        ("haar+binary", None),
        ("hadamard+int8", None),
        ("hadamard-pad+ternary", None),
        ("haar+hadamard+2bit", None),
        # chains that change the float geometry
        ("itq+binary", "itq+float32"),
        ("trunc192+int8", "trunc192+float32"),
        ("rotated-binary", "svd+float32"),
        ("rotated-scalar", "svd+float32"),
        ("rotated-ternary", "svd+float32"),
        ("center+svd+ternary", "center+svd+float32"),
        ("center+binary", "center+float32"),
        ("pca-haar+int4", "pca-haar+float32"),
        ("center+haar+binary", "center+haar+float32"),
        ("hadamard+trunc128+binary", "hadamard+trunc128+float32"),
        ("itq+fp16", "itq+float32"),
        # already a float control
        ("svd+float32", None),
        ("itq+float32", None),
        ("trunc128+float32", None),
        # search options: the control is a plain search
        ("itq+binary/rescore4", "itq+float32"),
        ("trunc128+binary/asym", "trunc128+float32"),
        ("center+binary/asym/rescore2-int8", "center+float32"),
        ("binary/rescore4-int8", None),
        ("haar+binary/rescore4", None),
        # provider-native codes have no float chain
        ("native-int8", None),
        ("native-binary/rescore4", None),
    ],
)
def test_control_spec(name, control):
    assert control_spec(name) == control
    if control is not None:
        assert control_spec(control) is None  # a control needs no control
        build_technique(control)  # and is a valid name


@pytest.mark.parametrize(("name", "part"), [("foo+binary", "foo"), ("svd+binnary", "binnary")])
def test_control_spec_unknown_part_raises_keyerror(name, part):
    with pytest.raises(KeyError) as info:
        control_spec(name)
    assert info.value.args[0] == part


@pytest.mark.parametrize("spec", ["itq+binary", "center+svd+ternary", "pca-haar+int8"])
@pytest.mark.parametrize("seed", [0, 2])
def test_control_is_the_same_map_without_the_code(spec, seed):
    cal = _with_dead(_embeddings(300, 24, seed=24))
    X = _with_dead(_embeddings(30, 24, seed=25))
    tech = build_technique(spec, seed).fit(cal)
    control = build_technique(control_spec(spec), seed).fit(cal)
    assert [type(t) for t in control.transforms] == [type(t) for t in tech.transforms]
    assert np.array_equal(control.roundtrip(X), tech.transform(X))


def test_keeps_cosines_matches_what_each_transform_does():
    """True transforms keep cosines on any data; for each False one there is data whose
    cosines it changes (svd and pca-haar: a constant offset in a dead dimension)."""
    d = 24
    cal = _with_dead(_embeddings(400, d, seed=26), values=(0.5, -0.4, 0.3))
    X = _with_dead(_embeddings(50, d, seed=27), values=(0.5, -0.4, 0.3))
    for key, cls in TRANSFORMS.items():
        name = key.replace("<k>", "16")
        Z = build_transform(name).fit(cal).apply(X)
        kept = np.allclose(_cos(Z, Z), _cos(X, X), atol=1e-5)
        assert kept is cls.keeps_cosines, name


def test_a_pca_basis_needs_more_calibration_vectors_than_dimensions():
    """With n ≤ d the rank is cut by the sample size: that would be a silent dimension cut
    (rotated-binary at 50 texts would be 7 bytes), so it is refused, as a user error."""
    from embedbench.errors import UserError
    from embedbench.registry import check_calibration

    with pytest.raises(ValueError, match="needs more than 16 calibration vectors"):
        build_technique("rotated-binary").fit(_gauss(16, 16))
    with pytest.raises(UserError, match="rotated-binary fits a PCA basis of 384"):
        check_calibration(["binary", "rotated-binary"], 300, 384, "local:m × STSBenchmark")
    for name in ("itq+binary", "pca-haar+int8"):
        with pytest.raises(UserError):
            check_calibration([name], 384, 384, "here")
    check_calibration(["binary", "haar+binary", "rotated-binary"], 385, 384, "here")
