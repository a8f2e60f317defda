"""Per-item predictions of a run, kept beside its table: what intervals and gates resample.

Layout of `<run>/predictions/`:

- `index.json`: `{"version": 2, "tasks": {task: {"kind", "gold"}}, "cells": [{task,
  provider, model, technique, file}]}`; `gold` is the file of the task's
  `{unit: gold}` (a unit is "subset/split"; gold is what the kind's resampler needs
  besides predictions: STS scores, labels, clustering draws; null for retrieval).
- one gzip JSON file per cell: `{"task", "provider", "model", "technique", "kind",
  "score", "predictions", "unit_scores"}`; `predictions` is `{unit: the kind's
  per-item predictions}` (STS similarities, classification labels per experiment,
  retrieval {query id: nDCG@10}, ...); `score` is mteb's task score of the cell and
  `unit_scores` its main score per unit.

Version 1 folders (one unit per task, unnamed) are read as one unit named "*".

Files are gzip with a fixed timestamp, so the same run gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.io import read_json

FOLDER = "predictions"
INDEX = "index.json"
VERSION = 2
OLD_UNIT = "*"  # the one unit of a version-1 task


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _dump(obj: Any) -> bytes:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, mtime=0)


def _load(path: Path) -> Any:
    try:
        return json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a readable predictions file ({e})") from None


@dataclass
class CellPredictions:
    task: str
    provider: str
    model: str
    technique: str
    kind: str
    score: float
    predictions: Any
    unit_scores: dict[str, float] | None = None


class PredictionWriter:
    """Collects a run's cell predictions; `files()` gives (relative path, bytes) to write."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.cells: list[dict[str, str]] = []
        self._files: dict[str, bytes] = {}

    def task(self, task: str, kind: str, gold: dict[str, Any]) -> None:
        if task in self.tasks:
            return
        gold_file = f"{_slug(task)}/gold.json.gz"
        self._files[gold_file] = _dump({"task": task, "kind": kind, "gold": gold})
        self.tasks[task] = {"kind": kind, "gold": gold_file}

    def cell(self, cell: CellPredictions) -> None:
        name = f"{_slug(cell.task)}/{_slug(cell.provider + ':' + cell.model)}"
        name += f"/{_slug(cell.technique)}.json.gz"
        self._files[name] = _dump(cell.__dict__)
        self.cells.append(
            {
                "task": cell.task,
                "provider": cell.provider,
                "model": cell.model,
                "technique": cell.technique,
                "file": name,
            }
        )

    def files(self) -> list[tuple[str, bytes]]:
        index = {"version": VERSION, "tasks": self.tasks, "cells": self.cells}
        body = json.dumps(index, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        return [(INDEX, body), *sorted(self._files.items())]


class RunPredictions:
    """A run folder's predictions, read lazily; `None` from `load` when the run has none."""

    def __init__(self, folder: Path, index: dict[str, Any]):
        self.folder = folder
        self.version = index.get("version")
        self.tasks: dict[str, dict[str, Any]] = index.get("tasks") or {}
        self.cells = {
            (c["task"], c["provider"], c["model"], c["technique"]): c["file"]
            for c in index.get("cells") or []
        }

    @classmethod
    def load(cls, run_folder: Path) -> RunPredictions | None:
        folder = Path(run_folder) / FOLDER
        path = folder / INDEX
        if not path.is_file():
            return None
        index = read_json(path, "not a valid predictions index")
        if not isinstance(index, dict) or index.get("version") not in (1, VERSION):
            raise UserError(f"{path}: not a predictions index of version 1 or {VERSION}")
        return cls(folder, index)

    def kind(self, task: str) -> str | None:
        return (self.tasks.get(task) or {}).get("kind")

    def gold(self, task: str) -> dict[str, Any]:
        """{unit: gold} of a task."""
        name = (self.tasks.get(task) or {}).get("gold")
        gold = None if name is None else _load(self.folder / name)["gold"]
        return {OLD_UNIT: gold} if self.version == 1 else gold or {}

    def cell(self, task: str, provider: str, model: str, technique: str) -> CellPredictions | None:
        name = self.cells.get((task, provider, model, technique))
        if name is None or not (self.folder / name).is_file():
            return None
        cell = CellPredictions(**_load(self.folder / name))
        if self.version == 1:
            cell.predictions = {OLD_UNIT: cell.predictions}
            cell.unit_scores = {OLD_UNIT: cell.score}
        return cell
