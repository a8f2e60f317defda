"""Compare two runs cell by cell: the CI gate behind `embedbench compare NEW BASELINE`.

Inputs. Each side is a run folder (its `retention.csv`, and `manifest.json` and
`predictions/` when present) or a `retention.csv` file (its folder is the run folder).
Cells are matched on (task, provider, model, technique) plus every *identity* column
both tables have: a column this version does not know (`NOT_IDENTITY` lists the known
measurements and descriptions), unless `--ignore-column` names it.

Why not the tables' intervals. A row's 95% interval is test-set sampling: how its
retention would vary over *other* test items. Two runs of a deterministic pipeline
score the *same* items, so that sampling is shared and cancels in their difference;
it is not run-to-run noise (read as such, it let a genuine 2-point drop pass on 17 of
60 cells). The gate asks whether the change lowered the score on these items.

Rule "paired". When both runs have per-item predictions (`embedbench.predictions`) of
a technique cell and of its float baseline (the row of the same task, provider and
model with verdict "baseline" and the cell's float_score), the gold is identical (same
items; for retrieval the same query ids), and each prediction set reproduces its
table's score (1e-5 plus rounding), the four sets -- baseline float bf and technique
bt, new float nf and technique nt -- are scored on the same bootstrap resamples of the
test items (`stats.paired_bootstrap`) for

    retention drop = 100·bt/bf − 100·nt/nf      score drop = 100·(bt − nt)

(points, positive = worse). The cell regresses when a drop of the tables exceeds
max_drop (default 1) or its one-sided 95% upper bound (95th percentile over resamples)
does: it passes only if the bootstrap shows at 95% that the drop is at most max_drop.
An identical rerun has drop 0 on every resample (so none is drawn: `resamples` 0). A
change that moves many items both ways (other random seeds) can fail with no mean drop
if the test set is too small to bound its effect.

Rule "point". Otherwise (a side has no predictions, e.g. an older embedbench; they do
not reproduce the table; the gold differs) a cell regresses when a drop exceeds
max_drop; one warning line counts these cells and says why (a cell's note adds details).
Float-baseline rows always use it on their score: deterministic for a given model,
data and mteb version. A float score that moved by more than 1e-4 is a warning (a
failure with `--fail-on-baseline-change`): retentions then have other baselines.

Checks. A row with a non-finite or absurd number (|x| > 1e6), or an inverted or
absurdly wide (> 1000 points) interval, is malformed. `--json` never prints NaN.

Exit codes: 0 no regression; 1 a regression (or a moved baseline with
`--fail-on-baseline-change`); 2 a file missing or malformed (one line), or cells on
one side only (named; `--allow-missing` compares the common cells).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbench import stats
from embedbench.errors import UserError
from embedbench.predictions import RunPredictions

BASE_KEY = ("task", "provider", "model", "technique")
NUMERIC = ("score", "float_score", "retention")
INTERVAL = ("ci_low", "ci_high")
REQUIRED = (*BASE_KEY, *NUMERIC, *INTERVAL, "verdict")
# What a cell is (a change is noted beside the cell), and further measurements; neither
# is identity nor gated.
DESCRIPTIVE = tuple(
    "spec dim bits_per_dim bytes_per_vector bits_per_vector size_multiplier params_bytes "
    "calibration role control secondary_bytes_per_vector total_bytes_per_vector "
    "fast_size_multiplier n_seeds".split()
)
MEASURED = tuple(
    "interval_method ci_mc_error control_retention control_ci_low control_ci_high "
    "retention_chance_corrected seed_low seed_high seed_sd".split()
)
NOT_IDENTITY = frozenset((*NUMERIC, *INTERVAL, "verdict", *DESCRIPTIVE, *MEASURED))
BASELINE_MOVE = 1e-4  # float_score difference that counts as "the baseline moved"
EPS = 1e-6  # the tables carry 2 (retention) and 6 (score) decimals
ABSURD = 1e6  # |number| beyond this is not a score or a retention
MAX_CI_WIDTH = 1000.0  # points of retention
SCORE_TOL = 1e-5 + 5e-7  # predictions vs the table's 6-decimal score
ROUNDED = {"Retrieval": 5e-6}  # mteb rounds the retrieval main score to 5 decimals
# A gate's 95% bound is drawn until its Monte Carlo standard error is ≤ MC_TARGET points,
# up to MAX_BOOT_FACTOR × --bootstrap resamples (a note flags a bound that close to max-drop).
MC_TARGET = 0.01
MAX_BOOT_FACTOR = 8
RULE = (
    "a retention or score drop (points, positive = worse) fails when it exceeds max-drop; "
    "rule paired (both runs have per-item predictions): also when the 95th percentile of "
    "the drop over bootstrap resamples of the test items, shared by both runs' float and "
    "technique predictions, exceeds max-drop; rule point (no usable predictions, and "
    "float-baseline rows): the drop alone"
)


def extra_identity(columns: list[str] | tuple[str, ...], ignore: tuple[str, ...] = ()) -> list[str]:
    """Identity columns beyond (task, provider, model, technique), in table order."""
    return [
        c for c in columns if c and c not in BASE_KEY and c not in NOT_IDENTITY and c not in ignore
    ]


@dataclass
class Row:
    values: dict[str, str]
    score: float
    float_score: float
    retention: float
    ci_low: float | None
    ci_high: float | None
    verdict: str
    line: int

    @property
    def is_baseline(self) -> bool:
        return self.verdict == "baseline"

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return tuple(self.values[c] for c in BASE_KEY)  # type: ignore[return-value]

    def brief(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*NUMERIC, *INTERVAL, "verdict")}


@dataclass
class Table:
    label: str  # what the user passed
    path: Path  # the csv read
    columns: list[str]
    rows: list[Row]
    manifest: dict[str, Any] | None = None
    predictions: RunPredictions | None = None

    def float_row(self, row: Row) -> Row | None:
        """The float-baseline row of `row`: same task, provider, model; verdict baseline."""
        found = [
            r
            for r in self.rows
            if r.is_baseline
            and r.cell[:3] == row.cell[:3]
            and abs(r.score - row.float_score) <= 2 * EPS
        ]
        first = [r for r in found if r.values["technique"] == "classic"]
        first += [r for r in found if r.values.get("spec") == "float32"]
        return (first + found + [None])[0]


def _number(text: str | None, where: str, column: str, optional: bool = False) -> float | None:
    text = (text or "").strip()
    if not text and optional:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: column '{column}' is not a number: '{text}'") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: column '{column}' is not a finite number: '{text}'")
    if abs(value) > ABSURD:
        raise UserError(f"{where}: column '{column}' is absurd: '{text}' (|value| > {ABSURD:g})")
    return value


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


def load_table(path: str | Path) -> Table:
    """Read and check a run's retention table (and its manifest and predictions)."""
    csv_path, header, records = read_retention(path, REQUIRED)
    ident = [*BASE_KEY, *extra_identity(header)]
    rows: list[Row] = []
    seen: dict[tuple[str, ...], int] = {}
    for line, rec in records:
        where = f"{csv_path} line {line}"
        for c in BASE_KEY:
            if not rec[c].strip():
                raise UserError(f"{where}: column '{c}' is empty")
        key = tuple(rec[c] for c in ident)
        if key in seen:
            raise UserError(f"{where}: duplicate cell {cell_name(rec)} (also line {seen[key]})")
        seen[key] = line
        lo = _number(rec["ci_low"], where, "ci_low", optional=True)
        hi = _number(rec["ci_high"], where, "ci_high", optional=True)
        if lo is not None and hi is not None:
            if lo > hi:
                raise UserError(f"{where}: column 'ci_low' {lo:g} > 'ci_high' {hi:g}: inverted")
            if hi - lo > MAX_CI_WIDTH:
                raise UserError(
                    f"{where}: column 'ci_high' {hi:g}: interval [{lo:g}, {hi:g}] wider "
                    f"than {MAX_CI_WIDTH:g} points"
                )
        rows.append(
            Row(
                values=rec,
                score=_number(rec["score"], where, "score"),
                float_score=_number(rec["float_score"], where, "float_score"),
                retention=_number(rec["retention"], where, "retention"),
                ci_low=lo,
                ci_high=hi,
                verdict=rec["verdict"].strip(),
                line=line,
            )
        )
    manifest = None
    mpath = csv_path.parent / "manifest.json"
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            manifest = None  # the table is what is compared; the manifest is context only
        if not isinstance(manifest, dict):
            manifest = None
    preds = RunPredictions.load(csv_path.parent)
    return Table(str(path), csv_path, header, rows, manifest, preds)


def cell_name(values: dict[str, str], extra: list[str] | tuple[str, ...] = ()) -> str:
    """`STSBenchmark / local:model / binary` (plus `col=value` for extra identity)."""
    name = f"{values['task']} / {values['provider']}:{values['model']} / {values['technique']}"
    more = [f"{c}={values.get(c, '')}" for c in extra]
    return name + (f" ({', '.join(more)})" if more else "")


# --------------------------------------------------------------------------- paired drops


@dataclass(frozen=True)
class Paired:
    """One-sided 95% upper bounds of a cell's drops over paired resamples (points)."""

    retention_bound: float
    score_bound: float
    resamples: int
    mc_error: float


class NotPaired(Exception):
    """Why a cell falls back to the point rule: `reason` (for the warning) and detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail or reason


DROPS = (  # statistics of the scores of [bf, bt, nf, nt] on each resample
    lambda s: 100.0 * s[:, 1] / s[:, 0] - 100.0 * s[:, 3] / s[:, 2],  # retention drop
    lambda s: 100.0 * (s[:, 1] - s[:, 3]),  # score drop
)


def _side(table: Table, side: str, row: Row) -> tuple[str, Any, list[Any]]:
    """(kind, gold, [float predictions, technique predictions]) of one run's cell."""
    if table.predictions is None:
        raise NotPaired(f"{side} has no predictions/ folder (made by an older embedbench?)")
    if sum(r.cell == row.cell for r in table.rows) > 1:
        raise NotPaired("predictions are per (task, provider, model, technique), not unique here")
    base = table.float_row(row)
    if base is None:
        raise NotPaired(f"{side} has no float-baseline row with the cell's float_score")
    out = []
    for r in (base, row):
        cell = table.predictions.cell(*r.cell)
        if cell is None:
            raise NotPaired(
                f"{side} lacks predictions of some cells",
                f"{side} has no predictions of {r.values['technique']}",
            )
        out.append((cell.predictions, r))
    kind = table.predictions.kind(row.values["task"]) or cell.kind
    return kind, table.predictions.gold(row.values["task"]), out


def paired_drops(new: Table, baseline: Table, b: Row, n: Row, n_boot: int, seed: int) -> Paired:
    """The paired bootstrap of one matched cell's drops, or NotPaired (module docstring)."""
    kb, gb, sb = _side(baseline, "BASELINE", b)
    kn, gn, sn = _side(new, "NEW", n)
    if kb != kn or kb not in stats.BOOTSTRAP_METHODS:
        raise NotPaired("the task kinds differ or have no bootstrap", f"kinds {kb} / {kn}")
    if gb != gn:
        raise NotPaired("the runs' gold differs (other items)")
    preds = [p for p, _ in sb + sn]
    if kb == "Retrieval" and any(set(p) != set(preds[0]) for p in preds):
        raise NotPaired("the runs' query ids differ")
    items = stats.Items(kb, gb)
    try:
        mats = [items.matrix(p) for p in preds]
        if len({m.shape for m in mats}) != 1:
            raise ValueError("prediction sets of different shapes")
        for side, (p, r) in zip(("BASELINE",) * 2 + ("NEW",) * 2, sb + sn, strict=True):
            again = items.point(p)
            if not abs(again - r.score) <= SCORE_TOL + ROUNDED.get(kb, 0.0):
                raise NotPaired(
                    "predictions do not reproduce the table's score",
                    f"{side} predictions of {r.values['technique']} give {again:.6f}, "
                    f"its table {r.score:.6f}",
                )
        if np.array_equal(mats[0], mats[2]) and np.array_equal(mats[1], mats[3]):
            return Paired(0.0, 0.0, 0, 0.0)  # the same predictions: drop 0 on every resample
        opts = dict(n_boot=n_boot, seed=seed, quantiles=(95.0,), mc_target=MC_TARGET)
        opts["max_resamples"] = MAX_BOOT_FACTOR * n_boot
        r, s = (stats.paired_bootstrap(items, preds, f, **opts) for f in DROPS)
    except ValueError as e:
        raise NotPaired("the predictions cannot be resampled", f"bootstrap: {e}") from None
    return Paired(r.values[0], s.values[0], r.resamples, max(r.mc_error, s.mc_error))


# --------------------------------------------------------------------------- comparison


def _finite(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


@dataclass
class CellDiff:
    key: dict[str, str]
    name: str
    status: str  # regression | improved | ok | only in new | only in baseline | new control
    baseline: Row | None = None
    new: Row | None = None
    rule: str | None = None  # paired | point (matched cells)
    retention_drop: float | None = None  # points, positive = worse
    score_drop: float | None = None  # score points (100 × fraction), positive = worse
    paired: Paired | None = None  # the 95% upper bounds of the drops (rule paired)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        p = self.paired
        return {
            **self.key,
            "name": self.name,
            "status": self.status,
            "rule": self.rule,
            "baseline": self.baseline.brief() if self.baseline else None,
            "new": self.new.brief() if self.new else None,
            "retention_delta": _finite(self.retention_drop and -self.retention_drop),
            "score_delta": _finite(self.score_drop and -self.score_drop),
            "retention_drop_bound95": _finite(p and p.retention_bound),
            "score_drop_bound95": _finite(p and p.score_bound),
            "resamples": p and p.resamples,
            "mc_error": _finite(p and p.mc_error),
            "notes": self.notes,
        }


@dataclass
class Comparison:
    new: Table
    baseline: Table
    max_drop: float
    identity: list[str]
    cells: list[CellDiff]
    baseline_moved: list[dict[str, Any]]
    warnings: list[str]
    context: list[str]
    allow_missing: bool
    fail_on_baseline_change: bool

    @property
    def matched(self) -> list[CellDiff]:
        return [c for c in self.cells if c.baseline is not None and c.new is not None]

    @property
    def only_new(self) -> list[CellDiff]:
        return [c for c in self.cells if c.status == "only in new"]

    @property
    def only_baseline(self) -> list[CellDiff]:
        return [c for c in self.cells if c.new is None]

    @property
    def regressions(self) -> list[CellDiff]:
        return [c for c in self.cells if c.status == "regression"]

    @property
    def grid_mismatch(self) -> bool:
        return bool(self.only_new or self.only_baseline) and not self.allow_missing

    @property
    def exit_code(self) -> int:
        if self.grid_mismatch:
            return 2
        if self.regressions or (self.fail_on_baseline_change and self.baseline_moved):
            return 1
        return 0

    def grid_error(self) -> str:
        """The one-line explanation of a grid mismatch."""

        def names(cells: list[CellDiff]) -> str:
            shown = [c.name for c in cells[:8]]
            more = f" and {len(cells) - 8} more" if len(cells) > 8 else ""
            return "; ".join(shown) + more

        parts = []
        if self.only_new:
            parts.append(f"{len(self.only_new)} only in NEW ({self.new.label}): ")
            parts[-1] += names(self.only_new)
        if self.only_baseline:
            parts.append(f"{len(self.only_baseline)} only in BASELINE ({self.baseline.label}): ")
            parts[-1] += names(self.only_baseline)
        return (
            "the grids differ, cells "
            + " | ".join(parts)
            + " (--allow-missing compares the common cells)"
        )

    def summary(self) -> str:
        rules = Counter(c.rule for c in self.matched)
        code = self.exit_code
        verdict = {0: "PASS", 1: "FAIL", 2: "GRID MISMATCH"}[code]
        text = (
            f"{verdict}: {len(self.matched)} cells matched ({rules['paired']} paired, "
            f"{rules['point']} point), {len(self.regressions)} regression(s), "
            f"{len(self.only_new)} only in new, {len(self.only_baseline)} only in baseline "
            f"(max drop {self.max_drop:g} points)"
        )
        if self.regressions:
            worst = ", ".join(
                f"{c.name} ({-max(c.retention_drop, c.score_drop):+.2f}, rule {c.rule})"
                for c in self.regressions[:8]
            )
            more = f" and {len(self.regressions) - 8} more" if len(self.regressions) > 8 else ""
            text += f"\nregressed: {worst}{more}"
        if code == 1 and not self.regressions:
            text += "\nfailed: the float baseline moved (--fail-on-baseline-change)"
        return text

    def text(self) -> str:
        """A markdown diff table, then context, warnings and the summary."""
        head = (
            "| task | provider:model | technique | baseline % [95% CI] | new % [95% CI] "
            "| Δ retention | Δ score ×100 | drop ≤ (95%) ret / score | rule | status |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|---|\n"
        )
        extra = self.identity[len(BASE_KEY) :]
        lines = []
        for c in self.cells:
            tech = c.key["technique"]
            if extra:
                tech += " (" + ", ".join(f"{k}={c.key[k]}" for k in extra) + ")"
            status = c.status.upper() if c.status == "regression" else c.status
            if c.notes:
                status += "; " + "; ".join(c.notes)
            p = c.paired
            bound = f"{p.retention_bound:.2f} / {p.score_bound:.2f}" if p else ""
            lines.append(
                f"| {c.key['task']} | {c.key['provider']}:{c.key['model']} | {tech} "
                f"| {_ret_cell(c.baseline)} | {_ret_cell(c.new)} "
                f"| {_signed(c.retention_drop)} | {_signed(c.score_drop)} "
                f"| {bound} | {c.rule or ''} | {status} |"
            )
        out = [head + "\n".join(lines)]
        out += [f"note: {line}" for line in self.context]
        out += [f"warning: {line}" for line in self.warnings]
        out.append(f"rule: {RULE}")
        out.append(self.summary())
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "status": {0: "pass", 1: "regression", 2: "grid mismatch"}[self.exit_code],
            "new": self.new.label,
            "baseline": self.baseline.label,
            "max_drop": self.max_drop,
            "rule": RULE,
            "identity_columns": self.identity,
            "matched": len(self.matched),
            "regressions": [c.name for c in self.regressions],
            "only_in_new": [c.name for c in self.only_new],
            "only_in_baseline": [c.name for c in self.only_baseline],
            "baseline_moved": self.baseline_moved,
            "warnings": self.warnings,
            "context": self.context,
            "error": self.grid_error() if self.grid_mismatch else None,
            "cells": [c.to_json() for c in self.cells],
        }


def _signed(drop: float | None) -> str:
    """A drop shown as a signed delta (new − baseline)."""
    if drop is None:
        return ""
    delta = -drop
    return "0.00" if abs(delta) < 0.005 else f"{delta:+.2f}"


def _ret_cell(row: Row | None) -> str:
    if row is None:
        return "—"
    if not row.is_baseline and row.ci_low is not None and row.ci_high is not None:
        return f"{row.retention:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
    return f"{row.retention:.2f} (score {row.score:.4f})"


def diff_cell(
    key: dict[str, str],
    name: str,
    base: Row,
    new: Row,
    max_drop: float,
    paired: Paired | None = None,
    point_reason: str | None = None,
) -> CellDiff:
    """Apply the regression rule (module docstring) to one matched cell.

    `paired` holds the 95% upper bounds of the drops (rule paired); without it, the
    point rule applies (`point_reason` says why, for a technique cell).
    """
    drops = {"retention": base.retention - new.retention, "score": 100.0 * (base.score - new.score)}
    bounds = {"retention": paired.retention_bound, "score": paired.score_bound} if paired else {}
    notes = []
    fails = []
    for what, d in drops.items():
        if d > max_drop + EPS:
            fails.append(f"{what} drop {d:.2f} > max-drop")
        elif bounds.get(what, -math.inf) > max_drop + EPS:
            fails.append(f"{what} drop's 95% bound {bounds[what]:.2f} > max-drop")
    if fails:
        status = "regression"
        notes += fails
    elif min(drops.values()) < -max_drop - EPS:
        status = "improved"
    else:
        status = "ok"
    if paired and any(abs(x - max_drop) < 2 * paired.mc_error for x in bounds.values()):
        notes.append("a 95% bound is within Monte Carlo error of max-drop (raise --bootstrap)")
    if point_reason:
        notes.append(f"point rule: {point_reason}")
    if base.verdict != new.verdict:
        notes.append(f"verdict {base.verdict} → {new.verdict}")
    for c in DESCRIPTIVE:
        a, b = base.values.get(c), new.values.get(c)
        if a is not None and b is not None and a != b:
            notes.append(f"{c} {a} → {b}")
    return CellDiff(
        key=key,
        name=name,
        status=status,
        baseline=base,
        new=new,
        rule="paired" if paired else "point",
        retention_drop=drops["retention"],
        score_drop=drops["score"],
        paired=paired,
        notes=notes,
    )


def _index(table: Table, identity: list[str], other: Table) -> dict[tuple[str, ...], Row]:
    out: dict[tuple[str, ...], Row] = {}
    for row in table.rows:
        k = tuple(row.values[c] for c in identity)
        if k in out:
            only = [c for c in table.columns if c not in other.columns and c not in identity]
            hint = f"; column(s) {', '.join(only)} exist only in this run" if only else ""
            raise UserError(
                f"{table.path} line {row.line}: cell {cell_name(row.values, identity[4:])} "
                f"appears twice when matched on {', '.join(identity)}{hint}"
            )
        out[k] = row
    return out


def _manifest_context(new: Table, base: Table) -> list[str]:
    if not (new.manifest and base.manifest):
        return []
    out = []
    a, b = base.manifest.get("config_sha256"), new.manifest.get("config_sha256")
    if a and b and a != b:
        out.append(f"config hash differs: baseline {str(a)[:12]}, new {str(b)[:12]}")
    va, vb = base.manifest.get("versions") or {}, new.manifest.get("versions") or {}
    if isinstance(va, dict) and isinstance(vb, dict):
        for pkg in sorted(set(va) & set(vb)):
            if va[pkg] != vb[pkg]:
                out.append(f"{pkg} {va[pkg]} → {vb[pkg]}")
    return out


def compare_tables(
    new: Table,
    baseline: Table,
    max_drop: float = 1.0,
    allow_missing: bool = False,
    fail_on_baseline_change: bool = False,
    ignore_columns: tuple[str, ...] = (),
    n_boot: int = 2000,
    seed: int = 42,
) -> Comparison:
    if max_drop < 0 or not math.isfinite(max_drop):
        raise UserError(f"--max-drop must be a finite number ≥ 0, got {max_drop}")
    if n_boot < 100:
        raise UserError(f"--bootstrap must be at least 100 resamples, got {n_boot}")
    shared = [c for c in new.columns if c in baseline.columns]
    identity = [*BASE_KEY, *extra_identity(shared, ignore_columns)]
    extra = identity[len(BASE_KEY) :]
    warnings = []
    for side, t, o in (("NEW", new, baseline), ("BASELINE", baseline, new)):
        only = [c for c in t.columns if c not in o.columns]
        if only:
            warnings.append(
                f"column(s) {', '.join(only)} only in {side}; not used for matching or gating"
            )
    a = _index(new, identity, baseline)
    b = _index(baseline, identity, new)

    cells: list[CellDiff] = []
    why_point: Counter[str] = Counter()
    order = list(b) + [k for k in a if k not in b]  # the baseline's order, new cells last
    for k in order:
        key = dict(zip(identity, k, strict=True))
        name = cell_name(key, extra)
        if k in a and k in b:
            paired = reason = None
            if not (a[k].is_baseline or b[k].is_baseline):
                try:
                    paired = paired_drops(new, baseline, b[k], a[k], n_boot, seed)
                except NotPaired as e:  # the warning says why; a note only what is specific
                    why_point[e.reason] += 1
                    reason = e.detail if e.detail != e.reason else None
            cells.append(diff_cell(key, name, b[k], a[k], max_drop, paired, reason))
        elif k in a and a[k].values.get("role") == "control" and "role" not in baseline.columns:
            # a float control this version adds, against a baseline from before controls
            cells.append(CellDiff(key, name, "new control", new=a[k]))
        elif k in a:
            cells.append(CellDiff(key, name, "only in new", new=a[k]))
        else:
            cells.append(CellDiff(key, name, "only in baseline", baseline=b[k]))
    n_controls = sum(c.status == "new control" for c in cells)
    if n_controls:
        warnings.append(
            f"{n_controls} float control row(s) only in NEW: the baseline predates controls; "
            "not gated"
        )
    if why_point:
        n_tech = sum(not (c.baseline.is_baseline or c.new.is_baseline) for c in cells if c.rule)
        warnings.append(
            f"point rule (no paired bootstrap) for {sum(why_point.values())} of {n_tech} "
            "technique cell(s): "
            + "; ".join(
                reason if len(why_point) == 1 else f"{n}: {reason}"
                for reason, n in why_point.most_common()
            )
        )
    moved, moved_warnings = _baseline_moves(a, b, extra)
    warnings += moved_warnings
    return Comparison(
        new=new,
        baseline=baseline,
        max_drop=max_drop,
        identity=identity,
        cells=cells,
        baseline_moved=moved,
        warnings=warnings,
        context=_manifest_context(new, baseline),
        allow_missing=allow_missing,
        fail_on_baseline_change=fail_on_baseline_change,
    )


def _baseline_moves(a: dict, b: dict, extra: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each (task, provider, model) whose float score moved, and a warning for each."""

    def floats(index: dict[tuple[str, ...], Row]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for k, row in index.items():
            out.setdefault(k[:3] + k[4:], row.float_score)
        return out

    fa, fb = floats(a), floats(b)
    moved, warnings = [], []
    for g in fb:
        if g in fa and abs(fa[g] - fb[g]) > BASELINE_MOVE:
            group = dict(zip([*BASE_KEY[:3], *extra], g, strict=True))
            label = f"{group['task']} / {group['provider']}:{group['model']}"
            label += "".join(f" {c}={group[c]}" for c in extra)
            moved.append(
                {
                    **group,
                    "baseline_float_score": fb[g],
                    "new_float_score": fa[g],
                    "delta_points": round(100 * (fa[g] - fb[g]), 4),
                }
            )
            warnings.append(
                f"float baseline moved for {label}: {fb[g]:.6f} → {fa[g]:.6f} "
                f"({100 * (fa[g] - fb[g]):+.2f} score points); retentions are relative to "
                "different baselines (model, provider, data or mteb changed?)"
            )
    return moved, warnings


def compare_runs(new: str | Path, baseline: str | Path, **options: Any) -> Comparison:
    """Load both sides and compare them (`compare_tables` options; UserError for a
    missing or malformed side)."""
    return compare_tables(load_table(new), load_table(baseline), **options)
