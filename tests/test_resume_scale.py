"""Resume after SIGKILL, and the same tables from threads, processes and a dask cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, write_config

pytestmark = pytest.mark.slow  # end to end through the real model and mteb

TECHNIQUES = [
    "classic",
    "scalar",
    "ternary",
    "binary",
    "rotated-scalar",
    "rotated-binary",
    "turbo2",  # random (seeded), nothing fitted
    "pca96+turbo1",
    "faiss:OPQ16,PQ16",  # k-means and a learned rotation in faiss
]


def _config(tmp: Path, name: str, out: Path, **extra) -> Path:
    cfg = {
        "name": name,
        "providers": ["local:sentence-transformers/all-MiniLM-L6-v2"],
        "tasks": ["STSBenchmark"],
        "techniques": TECHNIQUES,
        "calibration": {"max_texts": 1500},
        "evaluation": {"bootstrap": 200, "mc_target": 0.05},
        "output": str(out),
        **extra,
    }
    return write_config(tmp / f"{name}.yaml", cfg)


def _start(cfg: Path, cache: Path, data_dir: Path) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "embedbench")
    return subprocess.Popen(
        [exe, "run", str(cfg), "--cache", str(cache), "--data-dir", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _run(cfg: Path, cache: Path, data_dir: Path) -> None:
    proc = _start(cfg, cache, data_dir)
    assert proc.wait(timeout=900) == 0


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    """SIGKILL `proc` as soon as `ready()` holds; fail if it finished first."""
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, "the run finished before the kill point"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _records(out: Path) -> int:
    return len(list((out / "cells").glob("*.json"))) if (out / "cells").is_dir() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """An uninterrupted run, and the cache it filled."""
    tmp = tmp_path_factory.mktemp("ref")
    cache = tmp / "cache.sqlite"
    out = tmp / "out"
    _run(_config(tmp, "ref", out), cache, data_dir)
    return out, cache


def test_sigkill_at_several_points_resumes_to_identical_tables(tmp_path, data_dir, reference):
    ref_out, _ = reference
    out = tmp_path / "out"
    cache = tmp_path / "cache.sqlite"  # cold: the first kill lands while embedding
    cfg = _config(tmp_path, "killed", out)

    proc = _start(cfg, cache, data_dir)
    wal = cache.with_name(cache.name + "-wal")
    _kill_when(proc, lambda: sum(p.stat().st_size for p in (cache, wal) if p.exists()) > 2e6)
    assert _records(out) == 0 and not (out / "retention.csv").exists()

    for n in (1, 3):  # after the baseline, then mid-way through the techniques
        proc = _start(cfg, cache, data_dir)
        _kill_when(proc, lambda n=n: _records(out) >= n)
        assert not (out / "retention.csv").exists()

    _run(cfg, cache, data_dir)
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    assert manifest["evaluations"]["resumed"] >= 3  # finished cells were not recomputed
    assert (out / "retention.csv").read_bytes() == (ref_out / "retention.csv").read_bytes()
    leftovers = [p.name for p in out.rglob("*.tmp")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("backend", ["threads", "processes", "dask"])
def test_executors_give_the_same_table(tmp_path, data_dir, reference, backend):
    ref_out, cache = reference
    out = tmp_path / "out"
    cfg = _config(tmp_path, backend, out, executor={"backend": backend, "n_jobs": 2})
    _run(cfg, cache, data_dir)
    assert (out / "retention.csv").read_bytes() == (ref_out / "retention.csv").read_bytes()
    manifest = yaml.safe_load((out / "manifest.json").read_text())
    # baseline + the techniques (classic is the baseline) + the float controls of the
    # rotated presets (svd+float32) and of pca96+turbo1 (pca96+float32)
    assert manifest["evaluations"]["run"] == len(TECHNIQUES) + 2
