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

Modules: this one reads the tables and applies the rule (`compare_tables`);
`embedbench.compare_paired` runs the paired bootstrap of a cell, and
`embedbench.compare_output` formats the result (markdown table, summary, JSON).

Exit codes: 0 no regression; 1 a regression (or a moved baseline with
`--fail-on-baseline-change`); 2 a file missing or malformed (one line), or cells on
one side only (named; `--allow-missing` compares the common cells).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedbench import compare_output
from embedbench.compare_paired import NotPaired, Paired, paired_drops
from embedbench.errors import UserError
from embedbench.manifest import read_manifest
from embedbench.predictions import RunPredictions
from embedbench.results import (
    BASE_KEY,
    DESCRIPTIVE,
    INTERVAL,
    NUMERIC,
    extra_identity,
    read_retention,
)

REQUIRED = (*BASE_KEY, *NUMERIC, *INTERVAL, "verdict")

BASELINE_MOVE = 1e-4  # float_score difference that counts as "the baseline moved"
EPS = 1e-6  # the tables carry 2 (retention) and 6 (score) decimals
ABSURD = 1e6  # |number| beyond this is not a score or a retention
MAX_CI_WIDTH = 1000.0  # points of retention


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
    try:
        manifest = read_manifest(csv_path.parent)
    except UserError:
        manifest = None  # the table is what is compared; the manifest is context only
    preds = RunPredictions.load(csv_path.parent)
    return Table(str(path), csv_path, header, rows, manifest, preds)


def cell_name(values: dict[str, str], extra: list[str] | tuple[str, ...] = ()) -> str:
    """`STSBenchmark / local:model / binary` (plus `col=value` for extra identity)."""
    name = f"{values['task']} / {values['provider']}:{values['model']} / {values['technique']}"
    more = [f"{c}={values.get(c, '')}" for c in extra]
    return name + (f" ({', '.join(more)})" if more else "")


# --------------------------------------------------------------------------- comparison


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
        return compare_output.cell_json(self)


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
        return compare_output.grid_error(self)

    def summary(self) -> str:
        return compare_output.summary(self)

    def text(self) -> str:
        """A markdown diff table, then context, warnings and the summary."""
        return compare_output.text(self)

    def to_json(self) -> dict[str, Any]:
        return compare_output.to_json(self)


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
