"""manifest.json: what made a run (config, versions, commit, code hash, data, timings).

The tables carry only what the cache and config determine; everything else a reader
needs to reproduce or trust a run is here. `read_manifest` reads one back.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbench.errors import UserError
from embedbench.io import read_json

if TYPE_CHECKING:
    from embedbench.results import RunResult

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
    "faiss-cpu",
    "numba",
    "pytrec-eval-terrier",
]


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def manifest(result: RunResult, wall_seconds: float, cache_path: Path) -> dict[str, Any]:
    from embedbench.grid import CODE  # the code hash the run's keys were made with

    cfg = result.config
    return {
        "name": cfg.name,
        "config": cfg.canonical(),
        "config_sha256": cfg.hash(),
        "versions": versions(),
        "git": result.git,
        "code_sha256": CODE,
        "data": result.sources,
        "calibration": result.calibration,
        "seeds": {
            "calibration": cfg.calibration.seed,
            "bootstrap": cfg.evaluation.seed,
            "replicates": cfg.evaluation.seeds,
        },
        "texts_embedded": result.texts_embedded,
        "texts_from_cache": result.texts_from_cache,
        "providers": result.fetch,
        "cache": str(cache_path),
        "timings_seconds": {k: round(v, 3) for k, v in sorted(result.timings.items())},
        "wall_seconds": round(wall_seconds, 3),
        "cells": len(result.rows),
        "evaluations": result.evaluations,
        "skipped_cells": result.skipped,
        "warnings": result.warnings,
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A run folder's manifest.json; None when it has none, `UserError` when it is not a
    JSON object."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    facts = read_json(path, "not a valid JSON file")
    if not isinstance(facts, dict):
        raise UserError(f"{path}: not a manifest (expected a JSON object)")
    return facts
