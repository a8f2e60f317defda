"""Finished evaluations on disk, so a killed sweep resumes where it stopped.

One JSON file per evaluation in `<run>/cells/`, named by the evaluation's key (a
hash of everything that determines its result), written atomically
(`embedbench.io.write_json_atomic`): a file either exists whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# the atomic writer (runner imports these two from here too)
from embedbench.io import remove_stale_temporaries, write_json_atomic

RECORD_VERSION = 4
PACKAGE = Path(__file__).resolve().parent


def git_state(folder: Path = PACKAGE) -> dict[str, Any]:
    """The commit of the code and whether the tree differed from it (taken when a run
    starts, before it writes its own outputs)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": git("status", "--porcelain") != ""}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def code_fingerprint(package: Path = PACKAGE) -> str:
    """sha256 of every source file of the package: a changed quantizer, evaluator or
    statistic changes every key, so no stale score is ever resumed."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class EvalRecord:
    """mteb's result for one technique on one task, and the predictions behind it."""

    key: str
    task: str
    technique: str
    spec: str
    score: float  # mteb's task score: the mean of its units' main scores
    predictions: Any  # {unit key "subset/split": the kind's per-item predictions}
    task_result: dict[str, Any]
    seconds: float
    params_bytes: int = 0
    requested: dict[str, list[str]] = field(default_factory=dict)  # purpose -> texts
    seed: int = 0  # replicate: calibration sample and random draws
    bytes_per_vector: int = 0  # the fitted code's size (searched tier)
    secondary_bytes: int = 0  # per-vector copies kept for re-ranking
    unit_scores: dict[str, float] = field(default_factory=dict)  # unit key -> main score
    mse: float | None = None  # reconstruction error of the evaluated unit vectors


def evaluation_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({"v": RECORD_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class RecordStore:
    """Evaluation records of one run folder."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.folder = folder
        self.enabled = enabled
        remove_stale_temporaries(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> EvalRecord | None:
        path = self._path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            return EvalRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError):
            return None  # unreadable: evaluate again

    def put(self, record: EvalRecord) -> None:
        write_json_atomic(self._path(record.key), asdict(record))
