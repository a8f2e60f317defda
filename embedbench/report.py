"""Run outputs: retention.csv, retention.md and manifest.json, written atomically.

Tables carry only what the cache and config determine, formatted at fixed
precision, so the same config on the same cache gives byte-identical tables;
times and versions go to the manifest.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from embedbench.runner import CellResult, RunResult

COLUMNS = [
    "task",
    "provider",
    "model",
    "technique",
    "spec",
    "dim",
    "bits_per_dim",
    "bytes_per_vector",
    "size_multiplier",
    "params_bytes",
    "score",
    "float_score",
    "retention",
    "ci_low",
    "ci_high",
    "verdict",
    "interval_method",
    "calibration",
]
PACKAGES = [
    "embedbench",
    "mteb",
    "sentence-transformers",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "datasets",
    "boto3",
    "cohere",
    "joblib",
]


def row_values(r: CellResult) -> dict[str, str]:
    """One CSV row, every number at a fixed precision."""
    ret = r.retention
    return {
        "task": r.task,
        "provider": r.provider,
        "model": r.model,
        "technique": r.technique,
        "spec": r.spec,
        "dim": str(r.dim),
        "bits_per_dim": f"{r.bits_per_dim:g}",
        "bytes_per_vector": str(r.bytes_per_vector),
        "size_multiplier": f"{r.size_multiplier:g}",
        "params_bytes": str(r.params_bytes),
        "score": f"{r.score:.6f}",
        "float_score": f"{r.float_score:.6f}",
        "retention": f"{ret.retention:.2f}",
        "ci_low": f"{ret.ci_low:.2f}",
        "ci_high": f"{ret.ci_high:.2f}",
        "verdict": ret.verdict,
        "interval_method": r.interval_method,
        "calibration": r.calibration,
    }


def csv_text(rows: list[CellResult]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(row_values(r))
    return buf.getvalue()


def markdown_table(rows: list[CellResult]) -> str:
    """The retention table a person reads (also printed by the CLI)."""
    head = (
        "| task | provider:model | technique | bits/dim | size × | score | retention % "
        "[95% CI] | verdict |\n|---|---|---|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in rows:
        v = row_values(r)
        ci = "" if r.retention.verdict == "baseline" else f" [{v['ci_low']}, {v['ci_high']}]"
        lines.append(
            f"| {r.task} | {r.provider}:{r.model} | {r.technique} | {v['bits_per_dim']} "
            f"| {v['size_multiplier']} | {v['score']} | {v['retention']}{ci} "
            f"| {r.retention.verdict} |"
        )
    return head + "\n".join(lines) + "\n"


def markdown(result: RunResult) -> str:
    cfg = result.config
    methods = sorted({r.interval_method for r in result.rows if r.interval_method})
    return (
        f"# Retention: {cfg.name}\n\n"
        "score = mteb main score (fraction); retention = 100 × score / float score on the same "
        "task, split and evaluator settings; float and decoded vectors are "
        f"{'L2-normalised' if cfg.evaluation.normalize else 'not normalised'} alike. "
        f"Calibration: {cfg.calibration.split} split, at most {cfg.calibration.max_texts} texts "
        f"(seed {cfg.calibration.seed}), never evaluation texts. Intervals: "
        f"{'; '.join(methods) or 'none'}, {cfg.evaluation.bootstrap} resamples "
        f"(seed {cfg.evaluation.seed}).\n\n" + markdown_table(result.rows)
    )


def git_commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain"],
                cwd=here,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            != ""
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": dirty}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def manifest(result: RunResult, wall_seconds: float, cache_path: Path) -> dict[str, Any]:
    cfg = result.config
    return {
        "name": cfg.name,
        "config": cfg.canonical(),
        "config_sha256": cfg.hash(),
        "versions": versions(),
        "git": git_commit(),
        "data": result.sources,
        "calibration": result.calibration,
        "seeds": {"calibration": cfg.calibration.seed, "bootstrap": cfg.evaluation.seed},
        "texts_embedded": result.texts_embedded,
        "texts_from_cache": result.texts_from_cache,
        "providers": result.fetch,
        "cache": str(cache_path),
        "timings_seconds": {k: round(v, 3) for k, v in sorted(result.timings.items())},
        "wall_seconds": round(wall_seconds, 3),
        "cells": len(result.rows),
    }


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(result: RunResult, wall_seconds: float, cache_path: Path) -> Path:
    out = result.config.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "retention.csv", csv_text(result.rows))
    write_atomic(out / "retention.md", markdown(result))
    body = json.dumps(manifest(result, wall_seconds, cache_path), indent=2, sort_keys=True)
    write_atomic(out / "manifest.json", body + "\n")
    return out
