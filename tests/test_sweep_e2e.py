"""End to end on the real data and the real local model, through the real CLI and mteb."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from embedbench.tasks import resampler
from tests.conftest import run_cli, write_config

pytestmark = pytest.mark.slow  # end to end through the real model and mteb

REQUIRED = {
    "task",
    "provider",
    "model",
    "technique",
    "bits_per_dim",
    "bytes_per_vector",
    "size_multiplier",
    "score",
    "float_score",
    "retention",
    "ci_low",
    "ci_high",
}


def _write(path: Path, **cfg) -> Path:
    return write_config(path, cfg)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "retention.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache") / "embeddings.sqlite"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, data_dir, cache_file):
    """Both tasks, full mteb settings, three techniques: one real sweep via `embedbench run`."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = _write(
        tmp / "e2e.yaml",
        name="e2e",
        providers=[{"name": "local", "model": "sentence-transformers/all-MiniLM-L6-v2"}],
        tasks=["STSBenchmark", "Banking77Classification"],
        techniques=["classic", "scalar", "rotated-binary"],
        calibration={"max_texts": 2000},
        evaluation={"seeds": 2, "mc_target": 0.02},
        output=str(tmp / "out"),
    )
    proc = run_cli("run", str(cfg), "--data-dir", str(data_dir), "--cache", str(cache_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out", proc


def test_classic_reproduces_published_mteb_scores(sweep):
    out, _ = sweep
    rows = {(r["task"], r["technique"]): r for r in _rows(out)}
    assert len(rows) == 8  # three techniques and rotated-binary's float control, per task
    # mteb's published all-MiniLM-L6-v2 scores: 0.8203247 and 0.8004221.
    assert float(rows["STSBenchmark", "classic"]["score"]) == pytest.approx(0.8203247, abs=5e-5)
    assert float(rows["Banking77Classification", "classic"]["score"]) == pytest.approx(
        0.8004221, abs=5e-5
    )


def test_every_quantized_row_has_retention_and_interval(sweep):
    out, proc = sweep
    rows = _rows(out)
    assert REQUIRED <= set(rows[0])
    for r in rows:
        assert float(r["float_score"]) > 0
        ret = float(r["retention"])
        assert ret == pytest.approx(100 * float(r["score"]) / float(r["float_score"]), abs=0.01)
        if r["technique"] == "classic":
            assert r["verdict"] == "baseline"
            continue
        lo, hi = float(r["ci_low"]), float(r["ci_high"])
        assert lo <= ret + 0.01 and ret - 0.01 <= hi
        # A degenerate interval is right only where every resample gives the same retention:
        # a float control whose predictions equal the baseline's (a rotation-invariant fit).
        assert lo < hi or (r["role"] == "control" and lo == hi == pytest.approx(ret, abs=0.01))
        assert r["interval_method"]
    sizes = {r["technique"]: (r["bits_per_dim"], r["size_multiplier"]) for r in rows}
    assert sizes["scalar"] == ("8", "4") and sizes["rotated-binary"] == ("1", "32")
    assert "| rotated-binary |" in proc.stdout  # the table is printed


def test_outputs_manifest_and_mteb_results(sweep):
    out, _ = sweep
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["texts_embedded"] > 0
    assert manifest["config_sha256"] and manifest["versions"]["mteb"]
    files = manifest["data"]["STSBenchmark"]["files"]
    assert files["test.jsonl"] == (
        "f4759b224d2d2eb6ab7a69bc808940fbf3d36f6f650e42ad1d5fd149b6bc6abd"
    )
    for cal in manifest["calibration"].values():
        assert cal["split"] == "train" and cal["texts"] == 2000
        assert cal["touches_eval_texts"] is False
    results = list((out / "mteb").rglob("Banking77Classification.json"))
    assert len(results) == 4  # the float baseline, scalar, rotated-binary and its control
    assert manifest["code_sha256"] and manifest["git"]["dirty"] in (True, False)
    assert manifest["seeds"]["replicates"] == 2
    for cal in manifest["calibration"].values():  # replicate 1 has its own sample
        digests = cal["replicate_texts_sha256"]
        assert digests["1"] != cal["texts_sha256"]
    assert (out / "retention.md").read_text().startswith("# Retention: e2e")


def test_seeds_controls_chance_and_predictions(sweep):
    """Fitted techniques run over 2 seeds; the svd chain gets its float control; classification
    rows carry a chance-corrected retention; every row's predictions are written and
    reproduce its score."""
    from embedbench.predictions import RunPredictions

    out, _ = sweep
    rows = _rows(out)
    by = {(r["task"], r["technique"]): r for r in rows}
    for task in ("STSBenchmark", "Banking77Classification"):
        rb = by[task, "rotated-binary"]
        assert rb["n_seeds"] == "2" and rb["control"] == "svd+float32"
        assert float(rb["seed_low"]) <= float(rb["retention"]) <= float(rb["seed_high"])
        assert rb["control_retention"] and float(rb["ci_mc_error"]) <= 0.02
        assert by[task, "svd+float32"]["role"] == "control"
        assert by[task, "classic"]["n_seeds"] == "1" and by[task, "classic"]["seed_low"] == ""
        assert rb["verdict"] in ("loss", "gain", "equivalent", "inconclusive")
        ctl = by[task, "svd+float32"]
        want = 100 * float(rb["score"]) / float(ctl["score"])
        assert float(rb["control_retention"]) == pytest.approx(want, abs=0.01)
    bank = by["Banking77Classification", "scalar"]
    chance = 40 / 3080  # Banking77's test set: 40 texts per class
    want = 100 * (float(bank["score"]) - chance) / (float(bank["float_score"]) - chance)
    assert float(bank["retention_chance_corrected"]) == pytest.approx(want, abs=0.02)
    assert by["STSBenchmark", "scalar"]["retention_chance_corrected"] == ""
    preds = RunPredictions.load(out)
    assert preds is not None
    for r in rows:
        cell = preds.cell(r["task"], r["provider"], r["model"], r["technique"])
        ((unit, gold),) = preds.gold(r["task"]).items()  # one unit: default/test
        items = resampler(preds.kind(r["task"]), gold)
        assert items.point(cell.predictions[unit]) == pytest.approx(float(r["score"]), abs=1e-6)


def test_rerun_is_free_and_byte_identical(tmp_path, data_dir, cache_file, sweep):
    """Second run on the same cache: nothing embedded, identical table."""
    cfg = _write(
        tmp_path / "rerun.yaml",
        name="rerun",
        providers=["local:sentence-transformers/all-MiniLM-L6-v2"],
        tasks=["STSBenchmark"],
        techniques=["classic", "fp16", "ternary", "rotated-ternary", "binary"],
        calibration={"max_texts": 2000},
        output=str(tmp_path / "a"),
    )
    first = run_cli("run", str(cfg), "--data-dir", str(data_dir), "--cache", str(cache_file))
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_cli(
        "run",
        str(cfg),
        "--data-dir",
        str(data_dir),
        "--cache",
        str(cache_file),
        "--output",
        str(tmp_path / "b"),
    )
    assert second.returncode == 0, second.stderr[-2000:]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["texts_embedded"] == 0
    assert manifest["texts_from_cache"] > 2000
    a = (tmp_path / "a" / "retention.csv").read_bytes()
    assert a == (tmp_path / "b" / "retention.csv").read_bytes()
    fp16 = next(r for r in _rows(tmp_path / "b") if r["technique"] == "fp16")
    # the lossless control: retention 100 within its interval
    assert float(fp16["ci_low"]) <= 100.0 <= float(fp16["ci_high"])
    assert fp16["verdict"] == "equivalent"
