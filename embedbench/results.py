"""The retention table: its CSV schema (declared once), its rows, its writer and reader.

`COLUMNS` is the table's column order; `BASE_KEY` ... `MEASURED` say what each column
is to a reader: a cell is identified by `BASE_KEY` plus any column this version does
not know (`extra_identity`), the rest describe or measure it. `csv_text` writes the
table, `read_retention` reads a run folder's table (compare, report and the figures
use it) and `load_run` gives it as a DataFrame.

Storage columns say what a deployment keeps per vector: `bytes_per_vector` is the
code in the searched (fast) tier, `secondary_bytes_per_vector` what a re-ranking
search keeps beside it (float or int8 copies), `total_bytes_per_vector` their sum.
`size_multiplier` = 4·d / total bytes (the footprint: a re-ranked 1-bit index that
keeps every float vector is ≈ 1×, never 32×); `fast_size_multiplier` = 4·d / code bytes.
`mse` is the code's reconstruction error of the task's evaluated unit vectors and
`mse_vs_bound` its ratio to Shannon's Gaussian bound 2^(−2·bits_per_dim)
(`embedbench.quantize.distortion`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbench import stats
from embedbench.config import Config
from embedbench.errors import UserError
from embedbench.predictions import PredictionWriter

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
    "mse",
    "mse_vs_bound",
    "interval_method",
    "calibration",
]
ROLES = ("baseline", "technique", "control")

BASE_KEY = ("task", "provider", "model", "technique")
NUMERIC = ("score", "float_score", "retention")
INTERVAL = ("ci_low", "ci_high")
# What a cell is (a change is noted beside the cell), and further measurements; neither
# is identity nor gated. `bits_per_vector` is a column of older tables.
DESCRIPTIVE = tuple(
    "spec dim bits_per_dim bytes_per_vector bits_per_vector size_multiplier params_bytes "
    "calibration role control secondary_bytes_per_vector total_bytes_per_vector "
    "fast_size_multiplier n_seeds scope".split()
)
MEASURED = tuple(
    "interval_method ci_mc_error control_retention control_ci_low control_ci_high "
    "retention_chance_corrected seed_low seed_high seed_sd mse mse_vs_bound".split()
)
NOT_IDENTITY = frozenset((*NUMERIC, *INTERVAL, "verdict", *DESCRIPTIVE, *MEASURED))


def extra_identity(columns: list[str] | tuple[str, ...], ignore: tuple[str, ...] = ()) -> list[str]:
    """Identity columns beyond (task, provider, model, technique), in table order."""
    return [
        c for c in columns if c and c not in BASE_KEY and c not in NOT_IDENTITY and c not in ignore
    ]


@dataclass
class CellResult:
    """One row of the retention table: a technique on one evaluation unit of a task
    (`scope` "unit"), or on the task as mteb scores it (`scope` "task")."""

    task: str
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
    subset: str = "default"  # mteb hf_subset, or "all" (the task's mean over subsets)
    split: str = "test"  # evaluation split, or "all"
    scope: str = "task"  # "task": the task as mteb scores it; "unit": one subset × split
    mse: float | None = None  # reconstruction error of the task's evaluated unit vectors

    @property
    def mse_vs_bound(self) -> float | None:
        """`mse` over Shannon's Gaussian bound at this code's bits per dimension."""
        from embedbench.quantize.distortion import shannon_bound

        return None if self.mse is None else self.mse / shannon_bound(self.bits_per_dim)

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
        "mse": _f(r.mse, ".4g"),
        "mse_vs_bound": _f(r.mse_vs_bound, ".3g"),
        "interval_method": r.interval_method,
        "calibration": r.calibration,
    }


def mse_cell(v: dict[str, str]) -> str:
    """`mse (mse_vs_bound)` of a CSV row's values, for the tables people read."""
    return f"{v['mse']} ({v.get('mse_vs_bound', '')})" if v.get("mse") else ""


def csv_text(rows: list[CellResult]) -> str:
    """The retention.csv of `rows`: `COLUMNS` in order, numbers at fixed precision."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(row_values(r))
    return buf.getvalue()


def resolve_csv(path: str | Path) -> Path:
    """A run folder's retention.csv, or the file itself."""
    p = Path(path)
    if p.is_dir():
        csv_path = p / "retention.csv"
        if not csv_path.is_file():
            raise UserError(f"{p}: no retention.csv in this folder (is it a run folder?)")
        return csv_path
    if not p.exists():
        raise UserError(f"{p}: no such run folder or file")
    if p.suffix.lower() != ".csv":
        raise UserError(f"{p}: expected a run folder or a retention.csv file")
    return p


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line, row) pairs of a CSV, malformed files reported as UserError."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise UserError(f"{path}: empty file, not a retention table")
            header = [h.strip() for h in header]
            rows = []
            for record in reader:
                if not record or all(not v.strip() for v in record):
                    continue
                if len(record) != len(header):
                    raise UserError(
                        f"{path} line {reader.line_num}: {len(record)} fields, "
                        f"the header has {len(header)}"
                    )
                rows.append((reader.line_num, dict(zip(header, record, strict=True))))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file, not a retention table") from None
    except csv.Error as e:
        raise UserError(f"{path}: not a valid CSV file ({e})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    return header, rows


def read_retention(
    path: str | Path, required: Sequence[str]
) -> tuple[Path, list[str], list[tuple[int, dict[str, str]]]]:
    """A run's retention.csv with its header and rows, checked for `required` columns."""
    csv_path = resolve_csv(path)
    header, records = read_csv(csv_path)
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(
            f"{csv_path}: not a retention table: missing column(s) {', '.join(missing)}"
        )
    if not records:
        raise UserError(f"{csv_path}: no rows")
    return csv_path, header, records


# the identity and descriptive text columns (up to "control"), then the text measures
TEXT_COLUMNS = (*COLUMNS[: COLUMNS.index("control") + 1], "verdict", "interval_method")
TEXT_COLUMNS += ("calibration",)


def load_run(path: str | Path) -> pd.DataFrame:
    """A run's retention table as a DataFrame: one row per cell, numbers as floats or ints
    (empty cells as NaN). `path` is a run folder or its retention.csv; older tables with
    fewer columns load too.

    >>> df = load_run("results/beyond")
    >>> df[df.role == "technique"].nlargest(3, "retention")[["task", "technique", "retention"]]
    """
    import pandas as pd

    _, header, records = read_retention(path, ("task", "technique", "retention"))
    df = pd.DataFrame([r for _, r in records], columns=header)
    for column in header:
        if column not in TEXT_COLUMNS:
            df[column] = pd.to_numeric(df[column].replace("", None), errors="coerce")
    return df


@dataclass
class RunResult:
    """Everything a run produced: rows, provenance, costs, timings, predictions."""

    config: Config
    rows: list[CellResult] = field(default_factory=list)
    fetch: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    evaluations: dict[str, int] = field(default_factory=lambda: {"run": 0, "resumed": 0})
    skipped: list[str] = field(default_factory=list)  # cells that do not apply
    warnings: list[str] = field(default_factory=list)  # e.g. a codec trained on too few
    predictions: PredictionWriter = field(default_factory=PredictionWriter)
    git: dict[str, Any] = field(default_factory=dict)  # commit and dirty flag at the start

    @property
    def texts_embedded(self) -> int:
        return sum(f["texts_embedded"] for f in self.fetch.values())

    @property
    def texts_from_cache(self) -> int:
        return sum(f["texts_from_cache"] for f in self.fetch.values())
