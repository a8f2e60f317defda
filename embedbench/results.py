"""Rows of the retention table and its CSV schema, declared once.

Storage columns say what a deployment keeps per vector: `bytes_per_vector` is the
code in the searched (fast) tier, `secondary_bytes_per_vector` what a re-ranking
search keeps beside it (float or int8 copies), `total_bytes_per_vector` their sum.
`size_multiplier` = 4·d / total bytes (the footprint: a re-ranked 1-bit index that
keeps every float vector is ≈ 1×, never 32×); `fast_size_multiplier` = 4·d / code bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embedbench import stats

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "task",
    "subset",
    "split",
    "scope",
    "provider",
    "model",
    "technique",
    "spec",
    "role",
    "control",
    "dim",
    "bits_per_dim",
    "bytes_per_vector",
    "secondary_bytes_per_vector",
    "total_bytes_per_vector",
    "size_multiplier",
    "fast_size_multiplier",
    "params_bytes",
    "score",
    "float_score",
    "retention",
    "ci_low",
    "ci_high",
    "ci_mc_error",
    "verdict",
    "control_retention",
    "control_ci_low",
    "control_ci_high",
    "retention_chance_corrected",
    "n_seeds",
    "seed_low",
    "seed_high",
    "seed_sd",
    "interval_method",
    "calibration",
]
ROLES = ("baseline", "technique", "control")


@dataclass
class CellResult:
    """One row of the retention table: a technique on one evaluation unit of a task
    (`scope` "unit"), or on the task as mteb scores it (`scope` "task")."""

    task: str
    subset: str  # mteb hf_subset, or "all" (the task's mean over subsets)
    split: str  # evaluation split, or "all"
    scope: str  # "task" | "unit"
    provider: str
    model: str
    technique: str
    spec: str
    role: str  # baseline | technique | control (a float control added by the run)
    dim: int
    bytes_per_vector: int
    secondary_bytes: int
    params_bytes: int
    score: float
    float_score: float
    retention: stats.Retention
    interval_method: str
    calibration: str
    control: str = ""  # the float control this row's code cost is read against
    control_retention: stats.Retention | None = None  # 100 · score / control score
    chance_corrected: float | None = None
    spread: stats.SeedSpread | None = None

    @property
    def total_bytes(self) -> int:
        return self.bytes_per_vector + self.secondary_bytes

    @property
    def bits_per_dim(self) -> float:
        return 8 * self.bytes_per_vector / self.dim

    @property
    def size_multiplier(self) -> float:
        return 4 * self.dim / self.total_bytes

    @property
    def fast_size_multiplier(self) -> float:
        return 4 * self.dim / self.bytes_per_vector


def _f(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def row_values(r: CellResult) -> dict[str, str]:
    """One CSV row, every number at a fixed precision."""
    ret, ctl, sp = r.retention, r.control_retention, r.spread
    has_ci = ret.verdict != "baseline"
    return {
        "task": r.task,
        "subset": r.subset,
        "split": r.split,
        "scope": r.scope,
        "provider": r.provider,
        "model": r.model,
        "technique": r.technique,
        "spec": r.spec,
        "role": r.role,
        "control": r.control,
        "dim": str(r.dim),
        "bits_per_dim": f"{r.bits_per_dim:g}",
        "bytes_per_vector": str(r.bytes_per_vector),
        "secondary_bytes_per_vector": str(r.secondary_bytes),
        "total_bytes_per_vector": str(r.total_bytes),
        "size_multiplier": f"{r.size_multiplier:.4g}",
        "fast_size_multiplier": f"{r.fast_size_multiplier:.4g}",
        "params_bytes": str(r.params_bytes),
        "score": f"{r.score:.6f}",
        "float_score": f"{r.float_score:.6f}",
        "retention": f"{ret.retention:.2f}",
        "ci_low": f"{ret.ci_low:.2f}",
        "ci_high": f"{ret.ci_high:.2f}",
        "ci_mc_error": f"{ret.mc_error:.4f}" if has_ci else "",
        "verdict": ret.verdict,
        "control_retention": _f(ctl and ctl.retention, ".2f"),
        "control_ci_low": _f(ctl and ctl.ci_low, ".2f"),
        "control_ci_high": _f(ctl and ctl.ci_high, ".2f"),
        "retention_chance_corrected": _f(r.chance_corrected, ".2f"),
        "n_seeds": str(sp.n) if sp else "1",
        "seed_low": _f(sp and sp.low, ".2f"),
        "seed_high": _f(sp and sp.high, ".2f"),
        "seed_sd": _f(sp and sp.sd, ".2f"),
        "interval_method": r.interval_method,
        "calibration": r.calibration,
    }


TEXT_COLUMNS = (
    "task",
    "subset",
    "split",
    "scope",
    "provider",
    "model",
    "technique",
    "spec",
    "role",
    "control",
)
TEXT_COLUMNS += ("verdict", "interval_method", "calibration")


def load_run(path: str | Path) -> pd.DataFrame:
    """A run's retention table as a DataFrame: one row per cell, numbers as floats or ints
    (empty cells as NaN). `path` is a run folder or its retention.csv; older tables with
    fewer columns load too.

    >>> df = load_run("results/beyond")
    >>> df[df.role == "technique"].nlargest(3, "retention")[["task", "technique", "retention"]]
    """
    import pandas as pd

    from embedbench.compare import read_retention

    _, header, records = read_retention(path, ("task", "technique", "retention"))
    df = pd.DataFrame([r for _, r in records], columns=header)
    for column in header:
        if column not in TEXT_COLUMNS:
            df[column] = pd.to_numeric(df[column].replace("", None), errors="coerce")
    return df
