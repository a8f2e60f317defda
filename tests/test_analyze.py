"""The SVD study: spectrum arithmetic on matrices with known singular values, and one
real `embedbench analyze` run on STSBenchmark with the local model."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedbench.analyze import (
    FILES,
    Analysis,
    Spectrum,
    components_for,
    cumulative_energy,
    effective_rank,
    numerical_rank,
    singular_values,
    spectrum_csv,
    summary_rows,
    top_share,
    write_analysis,
)
from embedbench.cli import cli
from embedbench.config import parse_config


def _with_singular_values(s: list[float], n: int, seed: int = 0) -> np.ndarray:
    """An n × len(s) matrix U diag(s) Vᵀ with random orthonormal U and V."""
    rng = np.random.default_rng(seed)
    d = len(s)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * np.asarray(s)) @ V.T


def test_singular_values_of_diag_and_of_a_rotated_diag():
    assert singular_values(np.diag([1.0, 4.0, 2.0, 3.0])).tolist() == [4.0, 3.0, 2.0, 1.0]
    X = _with_singular_values([5.0, 2.0, 1.0, 0.5], n=50)
    np.testing.assert_allclose(singular_values(X), [5.0, 2.0, 1.0, 0.5], rtol=1e-10)


def test_centering_removes_a_shared_offset():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((200, 6))
    Z -= Z.mean(axis=0)
    X = Z + 100.0  # every row shifted along (1, ..., 1)
    s_none, s_mean = singular_values(X), singular_values(X, center=True)
    np.testing.assert_allclose(s_mean, singular_values(Z), rtol=1e-9)
    assert top_share(s_none, 1) > 0.99  # the offset dominates the uncentred spectrum
    assert top_share(s_mean, 1) < 0.5


def test_effective_rank_flat_and_rank_one():
    d = 17
    assert effective_rank(singular_values(np.eye(d))) == pytest.approx(d, rel=1e-12)
    assert effective_rank(singular_values(3.0 * np.vstack([np.eye(d)] * 4))) == pytest.approx(d)
    assert effective_rank(np.array([2.0, 0.0, 0.0])) == pytest.approx(1.0)
    # two equal components and two zeros: exactly 2
    assert effective_rank(np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2.0)
    # a decaying spectrum lies strictly between 1 and d
    assert 1.0 < effective_rank(np.array([4.0, 2.0, 1.0, 0.5])) < 4.0


def test_energy_counts_and_shares():
    s = np.sqrt([0.5, 0.3, 0.15, 0.05])  # energy shares 50 / 30 / 15 / 5 %
    np.testing.assert_allclose(cumulative_energy(s), [0.5, 0.8, 0.95, 1.0])
    assert components_for(s, 0.90) == 3
    assert components_for(s, 0.99) == 4
    assert components_for(s, 0.80) == 2  # reached exactly, despite rounding
    assert components_for(s, 0.50) == 1
    assert top_share(s, 1) == pytest.approx(0.5)
    assert top_share(s, 10) == pytest.approx(1.0)
    flat = np.ones(10)
    assert components_for(flat, 0.90) == 9
    assert components_for(flat, 0.99) == 10


def test_numerical_rank_ignores_rounding():
    X = _with_singular_values([3.0, 2.0, 1.0, 0.0, 0.0], n=40).astype(np.float32)
    s = singular_values(X)
    assert s[3] > 0  # rounding makes the "zero" values tiny but not zero
    assert numerical_rank(s, X.shape) == 3


def _synthetic_analysis() -> Analysis:
    config = parse_config(
        {"name": "t", "providers": ["local:m"], "tasks": ["STSBenchmark"], "techniques": ["x"]}
    )
    spectra = [
        Spectrum("local", "m", "T", tech, tech, c, 30, 4, singular_values(X, center=c == "mean"))
        for tech, X in (
            ("flat", np.vstack([np.eye(4)] * 8)[:30]),
            ("decay", _with_singular_values([4.0, 2.0, 1.0, 0.5], n=30)),
        )
        for c in ("none", "mean")
    ]
    return Analysis(config, spectra)


def test_tables_and_figure_are_written_byte_identically(tmp_path: Path):
    analysis = _synthetic_analysis()
    a = write_analysis(analysis, tmp_path / "a")
    b = write_analysis(analysis, tmp_path / "b")
    assert [p.name for p in a] == list(FILES)
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    rows = list(csv.DictReader(spectrum_csv(analysis.spectra).splitlines()))
    decay = [r for r in rows if r["technique"] == "decay" and r["centering"] == "none"]
    assert [r["rank"] for r in decay] == ["1", "2", "3", "4"]
    assert [r["singular_value"] for r in decay] == [
        "1.000000e+00",
        "5.000000e-01",
        "2.500000e-01",
        "1.250000e-01",
    ]
    assert decay[-1]["cumulative_energy"] == "1.000000"
    summary = {(r["technique"], r["centering"]): r for r in summary_rows(analysis.spectra)}
    assert summary["decay", "none"]["components_90"] == "2"  # 16/21.25 < 0.9 ≤ 20/21.25
    assert summary["decay", "none"]["top1_energy"] == f"{16 / 21.25:.4f}"


# ---------------------------------------------------------------- a real run

TECHNIQUES = ["classic", "binary", "rotated-binary"]
MAX_TEXTS = 500


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    tmp = tmp_path_factory.mktemp("analyze")
    config = tmp / "stsb.yaml"
    config.write_text(
        "name: analyze-test\n"
        "providers: [local:sentence-transformers/all-MiniLM-L6-v2]\n"
        "tasks: [STSBenchmark]\n"
        f"techniques: [{', '.join(TECHNIQUES)}]\n"
        "calibration: {split: train, max_texts: 500, seed: 0}\n",
        encoding="utf-8",
    )
    cache = tmp / "cache.sqlite"
    args = ["analyze", str(config), "--data-dir", str(data_dir), "--cache", str(cache)]
    args += ["--max-texts", str(MAX_TEXTS)]
    runs = []
    for out in ("first", "second"):  # the second reads every vector from the cache
        res = CliRunner().invoke(cli, [*args, "--output", str(tmp / out)])
        assert res.exit_code == 0, res.output
        runs.append((tmp / out / "analysis", res.output))
    assert cache.is_file()
    return runs


@pytest.mark.slow
def test_real_run_writes_every_file(real_run):
    from matplotlib.image import imread

    folder, output = real_run[0]
    for name in FILES:
        assert (folder / name).is_file(), name
        assert f"wrote {folder / name}" in output
    image = imread(folder / "spectrum.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert "| effective rank |" in output and "rotated-binary" in output


@pytest.mark.slow
def test_real_run_has_a_full_spectrum_per_technique(real_run):
    folder, _ = real_run[0]
    with (folder / "singular_values.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for tech in TECHNIQUES:
        for centering in ("none", "mean"):
            mine = [r for r in rows if r["technique"] == tech and r["centering"] == centering]
            # min(500 texts, output dims): svd drops MiniLM's 3 dead dimensions (381)
            assert len(mine) == (381 if tech.startswith("rotated") else 384), (tech, centering)
            values = [float(r["singular_value"]) for r in mine]
            assert values[0] == 1.0 and values == sorted(values, reverse=True)
            assert float(mine[-1]["cumulative_energy"]) == pytest.approx(1.0, abs=1e-6)
            assert all(r["task"] == "STSBenchmark" for r in mine)


@pytest.mark.slow
def test_real_run_binary_flattens_the_spectrum(real_run):
    folder, _ = real_run[0]
    with (folder / "spectrum_summary.csv").open(encoding="utf-8") as f:
        summary = {(r["technique"], r["centering"]): r for r in csv.DictReader(f)}
    assert set(summary) == {(t, c) for t in TECHNIQUES for c in ("none", "mean")}
    for centering in ("none", "mean"):
        float_rank = float(summary["classic", centering]["effective_rank"])
        binary_rank = float(summary["binary", centering]["effective_rank"])
        assert int(summary["classic", centering]["n_texts"]) == MAX_TEXTS
        assert 1 < float_rank < 384 and math.isfinite(binary_rank)
        # sign codes add near-white quantization noise: energy spreads over more directions
        assert binary_rank > float_rank + 20, (centering, float_rank, binary_rank)
        assert int(summary["binary", centering]["components_90"]) > int(
            summary["classic", centering]["components_90"]
        )


def test_real_run_is_reproducible_from_the_cache(real_run):
    (first, _), (second, _) = real_run
    for name in FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
