"""New transforms (centring, rotations, ITQ, truncation) and codes (fp16, int4, 2bit,
ternary-sym, binary-centered) of `embedbench.quantize`, on small random arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from embedbench.errors import UserError
from embedbench.quantize import (
    CODES,
    ITQ,
    PARAM,
    TRANSFORMS,
    BinaryCentered,
    Center,
    Float16,
    HaarRotation,
    Int4,
    PCAHaarRotation,
    RandomizedHadamard,
    RandomizedHadamardPadded,
    SVDRotation,
    TernarySym,
    Truncate,
    TwoBit,
    build_transform,
    parse_technique,
)
from embedbench.registry import build_technique
from tests.vectors import _cos, _embeddings, _gauss

# one concrete name per TRANSFORMS key (a `<k>` key needs its parameter)
EXAMPLE = {key: key.replace(PARAM, "16") for key in TRANSFORMS}
ROTATIONS = {"svd": SVDRotation, "haar": HaarRotation, "pca-haar": PCAHaarRotation, "itq": ITQ}
SEEDED = [HaarRotation, PCAHaarRotation, ITQ, RandomizedHadamard, RandomizedHadamardPadded]
NEW_BITS = {"fp16": 16, "int4": 4, "2bit": 2, "ternary-sym": 2, "binary-centered": 1}


def _hadamard(n: int) -> np.ndarray:
    H = np.ones((1, 1))
    while len(H) < n:
        H = np.kron(np.array([[1.0, 1.0], [1.0, -1.0]]), H)
    return H


# --- transforms: orthogonality and seeds ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROTATIONS))
def test_matrix_rotations_are_orthogonal_and_keep_cosines(name):
    d = 24
    cal = _embeddings(500, d, seed=1)
    t = ROTATIONS[name]().fit(cal)
    R = t.R.astype(np.float64)
    assert R.shape == (d, d)
    assert np.allclose(R.T @ R, np.eye(d), atol=1e-5)
    X = _gauss(30, d, seed=2)
    Z = t.apply(X)
    if name == "itq":  # centred first (ITQ assumes zero mean): orthogonal after centring
        assert np.allclose(Z, (X - t.mean) @ t.R, atol=1e-5)
        X = X - t.mean
    assert np.allclose(_cos(Z, Z), _cos(X, X), atol=1e-5)


@pytest.mark.parametrize("d", [8, 16, 1024])
def test_hadamard_power_of_two_is_signs_then_normalised_hadamard(d):
    t = RandomizedHadamard(seed=3).fit(np.zeros((2, d), dtype=np.float32))
    signs = t.signs[0].astype(np.float64) * math.sqrt(d)
    assert len(t.signs) == 1 and set(np.unique(signs).round(6)) == {-1.0, 1.0}
    explicit = np.diag(signs) @ _hadamard(d) / math.sqrt(d)  # D then H/sqrt(n), row vectors
    M = t.matrix().astype(np.float64)
    assert np.allclose(M, explicit, atol=1e-6)
    assert np.allclose(M.T @ M, np.eye(d), atol=1e-5)
    X = _gauss(50, d, seed=4)
    assert np.allclose(t.apply(X), X @ explicit, atol=1e-5)
    assert t.out_dim(d) == d


@pytest.mark.parametrize("d", [12, 100])
def test_hadamard_other_d_is_three_overlapping_rotations(d):
    t = RandomizedHadamard(seed=5).fit(np.zeros((2, d), dtype=np.float32))
    n = 1 << (d.bit_length() - 1)
    assert t.n == n and t.offsets == [0, d - n, 0] and t.out_dim(d) == d
    explicit = np.eye(d)
    for lo, s in zip(t.offsets, t.signs, strict=True):
        step = np.eye(d)
        step[lo : lo + n, lo : lo + n] = np.diag(s.astype(np.float64)) @ _hadamard(n)
        explicit = explicit @ step
    M = t.matrix().astype(np.float64)
    assert np.allclose(M, explicit, atol=1e-6)
    assert np.allclose(M.T @ M, np.eye(d), atol=1e-5)  # orthogonal, d kept
    assert (np.abs(M).sum(axis=0) > 0).all() and np.count_nonzero(M) > d * d / 2


@pytest.mark.parametrize("d", [12, 16, 100])
def test_hadamard_pad_is_padded_product_and_an_isometry(d):
    t = RandomizedHadamardPadded(seed=6).fit(np.zeros((2, d), dtype=np.float32))
    n = 1 << (d - 1).bit_length()
    assert t.out_dim(d) == n
    signs = t.signs[0].astype(np.float64)
    explicit = (np.diag(signs) @ _hadamard(n))[:d]  # [x, 0] @ D H / sqrt(n)
    M = t.matrix().astype(np.float64)
    assert M.shape == (d, n)
    assert np.allclose(M, explicit, atol=1e-6)
    assert np.allclose(M @ M.T, np.eye(d), atol=1e-5)  # inner products kept
    X = _gauss(20, d, seed=7)
    assert np.allclose(_cos(t.apply(X), t.apply(X)), _cos(X, X), atol=1e-5)


@pytest.mark.parametrize("cls", [RandomizedHadamard, RandomizedHadamardPadded])
def test_hadamard_blocks_and_threads_agree_with_one_block(cls, monkeypatch):
    d = 24
    X = _gauss(3000, d, seed=8)
    one = cls().fit(X)
    monkeypatch.setattr(one, "BLOCK_FLOATS", 1 << 30)
    monkeypatch.setattr(one, "THREADS", 1)
    whole = one.apply(X)
    many = cls().fit(X)
    monkeypatch.setattr(many, "BLOCK_FLOATS", 7 * 32)  # 7 rows a block, last one partial
    monkeypatch.setattr(many, "THREADS", 3)
    assert np.array_equal(many.apply(X), whole)
    assert np.allclose(whole, X @ one.matrix(), atol=1e-5)
    buf = np.full((3000, one.out_dim(d)), np.nan, dtype=np.float32)
    assert many.apply(X, out=buf) is buf and np.array_equal(buf, whole)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        many.apply(X, out=np.empty((3000, one.out_dim(d)), dtype=np.float64))


@pytest.mark.parametrize("cls", SEEDED)
def test_random_transforms_are_seeded(cls):
    cal = _embeddings(300, 20, seed=9)
    X = _gauss(10, 20, seed=10)
    a = cls().fit(cal).apply(X)
    assert np.array_equal(a, cls().fit(cal.copy()).apply(X))  # default seed: reproducible
    assert np.array_equal(cls(seed=11).fit(cal).apply(X), cls(seed=11).fit(cal).apply(X))
    assert not np.allclose(cls(seed=11).fit(cal).apply(X), a, atol=1e-3)


def test_center_subtracts_calibration_mean_and_is_not_orthogonal():
    cal = _embeddings(400, 16, seed=12)
    t = Center().fit(cal)
    assert np.allclose(t.mean, cal.mean(axis=0), atol=1e-6)
    assert np.allclose(t.apply(cal).mean(axis=0), 0.0, atol=1e-6)
    X = _embeddings(20, 16, seed=13)
    assert not np.allclose(_cos(t.apply(X), t.apply(X)), _cos(X, X), atol=1e-2)  # by design


def test_center_then_binary_thresholds_at_the_mean_binary_centered_at_the_median():
    cal = _embeddings(401, 16, seed=14)
    X = _embeddings(50, 16, seed=15)
    mean_rule = np.where(X > cal.mean(axis=0), 1.0, -1.0)
    out = parse_technique("center+binary").fit(cal).roundtrip(X)
    agree = (out == mean_rule).mean()
    assert agree > 0.99  # exact up to float rounding of x − mean at ties
    median_rule = np.where(X > np.median(cal, axis=0), 1.0, -1.0)
    assert np.array_equal(parse_technique("binary-centered").fit(cal).roundtrip(X), median_rule)


def test_itq_loss_is_non_increasing_and_rotation_beats_its_start():
    cal = _embeddings(1500, 32, seed=16)
    t = ITQ(iterations=30).fit(cal)
    losses = t.losses
    assert len(losses) == 31
    assert (np.diff(losses) <= 1e-9 * losses[0]).all(), np.diff(losses).max()
    # ||B - PR||^2 = n d + ||P||^2 - 2 sum|PR|: ITQ raises the L1 mass sum|PR| from its start
    P2 = np.square(cal.astype(np.float64) - cal.mean(axis=0)).sum()
    l1 = (cal.size + P2 - losses) / 2
    assert l1[-1] > 1.03 * l1[0]
    # the loss is ||sign(P R) - P R||^2 of the centred calibration, with the learnt R
    Z = (cal.astype(np.float64) - cal.mean(axis=0)) @ t.R.astype(np.float64)
    assert np.square(np.where(Z >= 0, 1, -1) - Z).sum() == pytest.approx(losses[-1], rel=1e-4)
    assert np.allclose(t.apply(cal), Z, atol=1e-5)


# --- truncation ---------------------------------------------------------------------------


def test_trunc_keeps_first_k_and_renormalises():
    X = _gauss(40, 384, seed=17)
    X[3] = 0.0
    t = build_transform("trunc128").fit(X)
    assert isinstance(t, Truncate) and t.k == 128 and t.name == "trunc128"
    Z = t.apply(X)
    assert Z.shape == (40, 128) and t.out_dim(384) == 128
    keep = np.delete(np.arange(40), 3)
    assert np.allclose(np.linalg.norm(Z[keep], axis=1), 1.0, atol=1e-6)
    assert np.allclose(Z[keep], X[keep, :128] / np.linalg.norm(X[keep, :128], axis=1)[:, None])
    assert (Z[3] == 0).all()  # a zero row stays zero, no NaN


def test_trunc128_binary_sizes():
    tech = parse_technique("trunc128+binary")
    d = 384
    assert tech.out_dim(d) == 128
    assert tech.bytes_per_vector(d) == 16
    assert tech.bits_per_vector(d) == 128
    assert tech.size_multiplier(d) == 4 * 384 / 16 == 96
    assert tech.bits_per_dim(d) == pytest.approx(128 / 384)
    tech.fit(_gauss(100, d, seed=18))
    X = _gauss(7, d, seed=19)
    assert tech.encode(X).shape == (7, 16)
    out = tech.roundtrip(X)
    assert out.shape == (7, 128) and set(np.unique(out).tolist()) == {-1.0, 1.0}
    assert np.array_equal(out, np.where(X[:, :128] > 0, 1.0, -1.0))


def test_trunc_larger_than_d_is_a_clear_value_error():
    tech = parse_technique("trunc512+int4")
    with pytest.raises(ValueError, match="first 512 dimensions of 384-dimensional"):
        tech.fit(_gauss(50, 384, seed=20))
    with pytest.raises(ValueError, match="at most 384"):
        tech.bytes_per_vector(384)


# --- codes --------------------------------------------------------------------------------


def test_fp16_roundtrip_is_tiny_and_keeps_rankings():
    cal = _embeddings(100, 64, seed=21)
    X = _embeddings(300, 64, seed=22)
    code = Float16().fit(cal)
    packed = code.encode(X)
    assert packed.dtype == np.uint8 and packed.shape == (300, 128)
    out = code.decode(packed, 64)
    assert out.dtype == np.float32
    assert np.abs(out - X).max() <= 2.0**-11 * np.abs(X).max()
    assert np.array_equal(out, X.astype(np.float16).astype(np.float32))
    c0, c1 = _cos(X[:20], X), _cos(out[:20], out)
    assert np.abs(c0 - c1).max() < 1e-3
    top = 10
    assert np.array_equal(np.argsort(-c0, axis=1)[:, :top], np.argsort(-c1, axis=1)[:, :top])


def test_int4_clips_at_quantiles_and_packs_two_per_byte():
    d = 7  # odd: the last byte holds one value and a zero nibble
    cal = _gauss(2000, d, seed=23, scale=0.2)
    code = Int4().fit(cal)
    lo, hi = np.quantile(cal, [0.005, 0.995], axis=0)
    assert np.allclose(code.lo, lo, atol=1e-7) and np.allclose(code.step, (hi - lo) / 15)
    X = np.vstack([lo, hi, lo - 5.0, hi + 5.0, (lo + hi) / 2, _gauss(50, d, seed=24, scale=0.2)])
    packed = code.encode(X.astype(np.float32))
    assert packed.dtype == np.uint8 and packed.shape == (len(X), 4) == (len(X), math.ceil(d / 2))
    q = np.stack([packed >> 4, packed & 15], axis=2).reshape(len(X), 8)
    assert (q[:, 7] == 0).all()
    assert (q[0, :d] == 0).all() and (q[1, :d] == 15).all()  # range ends
    assert (q[2, :d] == 0).all() and (q[3, :d] == 15).all()  # clipped, not wrapped
    out = code.decode(packed, d)
    assert np.allclose(out, lo + q[:, :d] * code.step, atol=1e-6)
    assert np.allclose(out[2], lo, atol=1e-6) and np.allclose(out[3], hi, atol=1e-6)
    inside = (X >= lo) & (X <= hi)
    err = np.abs(out - X)[inside] / np.broadcast_to(code.step, X.shape)[inside]
    assert err.max() <= 0.5 + 1e-4
    # about 1% of calibration values lie outside the range and clip
    outside = ((cal < lo) | (cal > hi)).mean()
    assert 0.005 < outside < 0.015


def test_int4_constant_dimension_decodes_to_its_value():
    cal = _gauss(100, 3, seed=25)
    cal[:, 1] = 0.25
    code = Int4().fit(cal)
    X = np.array([[0.0, 0.9, 0.0], [0.0, -0.9, 0.0]], dtype=np.float32)
    assert np.allclose(code.decode(code.encode(X), 3)[:, 1], 0.25)


def test_2bit_quartile_bins_decode_to_bin_means():
    d = 10
    cal = _gauss(4000, d, seed=26) ** 3  # skewed tails: the bin means are not symmetric levels
    code = TwoBit().fit(cal)
    t = np.quantile(cal, [0.25, 0.5, 0.75], axis=0)
    assert np.allclose(code.t, t, atol=1e-6)
    level = (cal > code.t[0]).astype(int) + (cal > code.t[1]) + (cal > code.t[2])
    for j in range(4):
        assert abs((level == j).mean() - 0.25) < 0.01
        means = np.array([cal[level[:, i] == j, i].mean() for i in range(d)])
        assert np.allclose(code.levels[j], means, rtol=1e-5, atol=1e-6)
    assert (np.diff(code.levels, axis=0) > 0).all()
    X = _gauss(64, d, seed=27) ** 3
    packed = code.encode(X)
    assert packed.shape == (64, math.ceil(2 * d / 8))
    out = code.decode(packed, d)
    lx = (X > code.t[0]).astype(int) + (X > code.t[1]) + (X > code.t[2])
    assert np.array_equal(out, code.levels[lx, np.arange(d)])
    for i in range(d):
        assert set(np.unique(out[:, i])) <= set(code.levels[:, i])


def test_2bit_empty_bin_from_ties_decodes_between_its_thresholds():
    cal = _gauss(400, 3, seed=41)
    cal[:300, 0] = 0.0  # 75% ties: t1 == t2 == 0, so bin 1 (t1 < x <= t2) is empty
    code = TwoBit().fit(cal)
    assert code.t[0, 0] == code.t[1, 0] == 0.0
    assert code.levels[1, 0] == 0.0
    out = code.decode(code.encode(_gauss(50, 3, seed=42)), 3)
    assert np.isfinite(out).all()


def test_ternary_sym_is_symmetric_with_a_third_zeros():
    d = 12
    cal = _gauss(3000, d, seed=28) + 0.3  # offset: symmetric about 0, not about the mean
    code = TernarySym().fit(cal)
    assert np.allclose(code.t, np.quantile(np.abs(cal), 1 / 3, axis=0), atol=1e-6)
    out_cal = code.decode(code.encode(cal), d)
    assert set(np.unique(out_cal).tolist()) == {-1.0, 0.0, 1.0}
    assert abs((out_cal == 0).mean() - 1 / 3) < 0.01
    X = _gauss(200, d, seed=29)
    X[0] = code.t  # on the threshold: 0
    X[1] = -code.t
    packed = code.encode(X)
    assert packed.shape == (200, math.ceil(2 * d / 8))
    out = code.decode(packed, d)
    rule = np.where(X > code.t, 1.0, np.where(X < -code.t, -1.0, 0.0))
    assert np.array_equal(out, rule)
    assert (out[:2] == 0).all()
    assert np.array_equal(code.decode(code.encode(-X), d), -out)


def test_binary_centered_splits_calibration_in_half():
    d = 13
    cal = _gauss(1001, d, seed=30) + np.linspace(-1, 1, d).astype(np.float32)
    code = BinaryCentered().fit(cal)
    assert np.allclose(code.threshold, np.median(cal, axis=0))
    packed = code.encode(cal)
    assert packed.shape == (1001, 2)
    out = code.decode(packed, d)
    assert set(np.unique(out).tolist()) == {-1.0, 1.0}
    assert np.allclose((out > 0).mean(axis=0), 0.5, atol=0.001)


@pytest.mark.parametrize("name", sorted(NEW_BITS))
@pytest.mark.parametrize("d", [384, 1024, 100, 7])
def test_new_code_sizes(name, d):
    bits = NEW_BITS[name]
    tech = parse_technique(name)
    assert tech.code.bits == bits
    expected = math.ceil(d * bits / 8)
    assert tech.bytes_per_vector(d) == expected
    assert tech.bits_per_vector(d) == 8 * expected
    assert tech.size_multiplier(d) == pytest.approx(4 * d / expected)
    tech.fit(_gauss(200, d, seed=d))
    assert tech.encode(_gauss(3, d, seed=31)).shape == (3, expected)
    assert (
        tech.params_bytes()
        == {
            "fp16": 0,
            "int4": 8 * d,
            "2bit": 12 * d + 16 * d,
            "ternary-sym": 4 * d,
            "binary-centered": 4 * d,
        }[name]
    )


# --- every transform with every code ------------------------------------------------------


@pytest.mark.parametrize(
    ("tname", "cname"), list(itertools.product(sorted(EXAMPLE), sorted(CODES)))
)
def test_every_transform_composes_with_every_code(tname, cname):
    d = 24
    spec = f"{EXAMPLE[tname]}+{cname}"
    tech = parse_technique(spec)
    assert tech.spec == spec and build_technique(spec).spec == spec
    cal = _embeddings(300, d, seed=32)
    X = _embeddings(9, d, seed=33)
    tech.fit(cal)
    k = tech.out_dim(d)
    assert k == {"trunc<k>": 16, "pca<k>": 16, "hadamard-pad": 32}.get(tname, d)
    packed = tech.encode(X)
    assert packed.dtype == np.uint8
    assert packed.shape == (9, tech.bytes_per_vector(d)) == (9, math.ceil(k * tech.code.bits / 8))
    assert tech.bits_per_vector(d) == 8 * packed.shape[1]
    assert tech.size_multiplier(d) == pytest.approx(4 * d / packed.shape[1])
    out = tech.roundtrip(X)
    assert out.shape == (9, k) and out.dtype == np.float32 and np.isfinite(out).all()
    if cname in ("float32", "fp16"):  # (near) lossless: the transformed vectors come back
        assert np.allclose(out, tech.transform(X), atol=1e-3)
    fixed = tech.transforms[0].params_bytes() + tech.code.params_bytes()
    assert tech.params_bytes() == fixed


# --- calibration only ---------------------------------------------------------------------

DATA_FITTED = ["center", "svd", "pca-haar", "itq"]
CODE_FITTED = ["int4", "2bit", "ternary-sym", "binary-centered"]


def _params(tech) -> list[np.ndarray]:
    parts = [*tech.transforms, tech.code]
    keys = ("mean", "R", "lo", "step", "t", "levels", "threshold")
    return [getattr(p, k).copy() for p in parts for k in keys if hasattr(p, k)]


@pytest.mark.parametrize(
    "spec", [f"{t}+binary" for t in DATA_FITTED] + [f"haar+{c}" for c in CODE_FITTED]
)
def test_fit_uses_calibration_only(spec):
    A = _embeddings(400, 16, seed=34)
    B = _embeddings(200, 16, seed=35)[:, ::-1] * 3.0  # a differently shaped evaluation set
    tech = parse_technique(spec)
    with pytest.raises(RuntimeError, match="before fit"):
        tech.encode(B)
    with pytest.raises(RuntimeError, match="before fit"):
        tech.transforms[0].apply(B)
    tech.fit(A)
    before = _params(tech)
    assert before
    codes_B = tech.encode(B)
    assert all(np.array_equal(a, b) for a, b in zip(before, _params(tech), strict=True))
    assert np.array_equal(codes_B, parse_technique(spec).fit(A).encode(B))
    refit = parse_technique(spec).fit(np.vstack([A, B]))
    assert any(not np.allclose(a, b) for a, b in zip(before, _params(refit), strict=True))


def test_data_free_transforms_depend_only_on_d_and_seed():
    A = _embeddings(100, 16, seed=36)
    B = _gauss(100, 16, seed=37)
    X = _gauss(5, 16, seed=38)
    for name in ("haar", "hadamard", "hadamard-pad", "trunc8"):
        assert np.array_equal(
            build_transform(name).fit(A).apply(X), build_transform(name).fit(B).apply(X)
        )


# --- names ----------------------------------------------------------------------------------


def test_transform_and_code_names_are_registered():
    assert set(TRANSFORMS) >= {"center", "haar", "hadamard", "hadamard-pad", "pca-haar", "itq"}
    assert "trunc<k>" in TRANSFORMS
    assert set(CODES) >= set(NEW_BITS)
    assert isinstance(build_transform("trunc7"), Truncate) and build_transform("trunc7").k == 7
    assert type(build_transform("hadamard")) is RandomizedHadamard


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("trunc+binary", "trunc"),
        ("trunc0+binary", "trunc0"),
        ("trunc012+binary", "trunc012"),
        ("trunc<k>+binary", "trunc<k>"),
        ("trunc-5+binary", "trunc-5"),
        ("haar2+binary", "haar2"),
        ("trunc128+hadamrd+binary", "hadamrd"),
        ("trunc128+tern", "tern"),
    ],
)
def test_bad_names_raise_keyerror_with_the_part(name, part):
    with pytest.raises(KeyError) as info:
        parse_technique(name)
    assert info.value.args[0] == part


def test_registry_error_shows_the_trunc_grammar():
    with pytest.raises(UserError) as info:
        build_technique("trunk128+binary")
    msg = str(info.value)
    assert "unknown transform" in msg and "'trunk128'" in msg and "trunc<k>" in msg, msg


def test_compositions_chain_dimensions_and_sizes():
    d = 384
    tech = parse_technique("center+trunc100+hadamard-pad+ternary-sym")
    assert tech.out_dim(d) == 128 and tech.bytes_per_vector(d) == 32
    tech = parse_technique("hadamard-pad+binary")
    assert tech.out_dim(d) == 512 and tech.bits_per_vector(d) == 512
    assert tech.bits_per_dim(d) == pytest.approx(512 / 384)  # per original dimension
    tech = parse_technique("hadamard+binary")
    assert tech.out_dim(d) == 384 and tech.bits_per_vector(d) == 384
    tech.fit(_gauss(200, d, seed=39))
    assert tech.encode(_gauss(3, d, seed=40)).shape == (3, 48)


def test_pca_k_keeps_the_top_principal_directions():
    """pca<k> centres and projects onto the k directions of largest calibration
    variance: the kept variance is the sum of the top k eigenvalues, more than any
    other k coordinates hold; sizes follow k; its float control is pca<k>+float32."""
    from embedbench.quantize import control_spec

    rng = np.random.default_rng(7)
    X = (rng.normal(size=(2000, 32)) * np.linspace(3, 0.1, 32)) @ _haar_matrix(32, rng)
    X = X.astype(np.float32)
    tech = parse_technique("pca8+float32").fit(X)
    Z = tech.transform(X)
    assert Z.shape == (2000, 8)
    assert np.allclose(Z.mean(axis=0), 0, atol=1e-4)
    evals = np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1]
    assert Z.var(axis=0).sum() == pytest.approx(evals[:8].sum(), rel=1e-4)
    assert parse_technique("pca8+binary").fit(X).bytes_per_vector(32) == 1
    assert control_spec("pca8+binary") == "pca8+float32"
    with pytest.raises(ValueError, match="at most 32"):
        parse_technique("pca40+binary").out_dim(32)


def _haar_matrix(d: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))
