"""Compare two runs cell by cell: the CI gate behind `embedbench compare NEW BASELINE`.

Inputs. Each side is a run folder (its `retention.csv` is read, and `manifest.json`
when present) or a `retention.csv` file. Columns are read by name; columns this
version does not know are tolerated.

Matching. Cells are matched on (task, provider, model, technique) plus every
*identity* column present in both tables. Identity columns are the columns this
version does not know as a measurement or a description (e.g. a future rescoring
multiplier or provider-options key); known non-identity columns are `spec, dim,
bits_per_dim, bytes_per_vector, bits_per_vector, size_multiplier, params_bytes,
score, float_score, retention, ci_low, ci_high, verdict, interval_method,
calibration`. `--ignore-column` removes a column from the identity. A column present
on one side only is ignored for matching (and reported).

Regression rule (exit 1). For a matched cell let

    d_ret   = retention_baseline - retention_new            (points of retention %)
    d_score = 100 * (score_baseline - score_new)            (points of the main score)

A drop d (either of the two) is a regression when d > max_drop (default 1.0) and,
when both rows carry a 95% interval (neither is a float-baseline row), the drop is
also outside noise:

    d_ret   > noise     = sqrt((ret_b - ci_low_b)**2 + (ci_high_n - ret_n)**2)
    d_score > noise_s   = sqrt(((ret_b - ci_low_b) * float_b)**2
                               + ((ci_high_n - ret_n) * float_n)**2)

`noise` is the 95% half-width of the difference of two independent estimates
(sqrt of the summed squared half-widths), each taken on the side facing the other
(the baseline's lower half, the new run's upper half; percentile intervals are
asymmetric); `noise_s` is the same in score points (a retention point is
`float_score` score points). Both runs score the same test items, so the two
estimates are positively correlated and the true half-width of their difference is
smaller: the rule errs towards not failing on noise. The float-baseline rows
(verdict "baseline") have no interval and retention 100 by definition, so their
score is gated by max_drop alone: it is deterministic for a given model, data and
mteb version, and a drop there is a real change.

Float baseline moved. When a (task, provider, model) float score differs between
the runs by more than 1e-4, the output warns: retentions are then relative to
different baselines (a model, provider, data or mteb change). That alone does not
fail unless `--fail-on-baseline-change` is given; a float drop beyond max_drop fails
through the rule above in any case.

Exit codes: 0 no regression; 1 a regression (or a moved baseline with
`--fail-on-baseline-change`); 2 a file missing or malformed (one line), or the grids
differ: cells on one side only are named, `--allow-missing` compares the common
cells and lists the rest.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedbench.errors import UserError

BASE_KEY = ("task", "provider", "model", "technique")
NUMERIC = ("score", "float_score", "retention")
INTERVAL = ("ci_low", "ci_high")
REQUIRED = (*BASE_KEY, *NUMERIC, *INTERVAL, "verdict")
DESCRIPTIVE = (
    "spec",
    "dim",
    "bits_per_dim",
    "bytes_per_vector",
    "bits_per_vector",
    "size_multiplier",
    "params_bytes",
    "interval_method",
    "calibration",
)
NOT_IDENTITY = frozenset((*NUMERIC, *INTERVAL, "verdict", *DESCRIPTIVE))
BASELINE_MOVE = 1e-4  # float_score difference that counts as "the baseline moved"
EPS = 1e-6  # the tables carry 2 (retention) and 6 (score) decimals
RULE = (
    "a retention or score drop (points) is a regression when drop > max-drop and, if both "
    "rows carry a 95% interval, drop > sqrt((ret_b - ci_low_b)^2 + (ci_high_n - ret_n)^2) "
    "(score: those half-widths x float score)"
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
    def has_interval(self) -> bool:
        return self.verdict != "baseline" and self.ci_low is not None and self.ci_high is not None

    def brief(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "float_score": self.float_score,
            "retention": self.retention,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "verdict": self.verdict,
        }


@dataclass
class Table:
    label: str  # what the user passed
    path: Path  # the csv read
    columns: list[str]
    rows: list[Row]
    manifest: dict[str, Any] | None = None


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
    """Read and check a run's retention table (and its manifest when beside it)."""
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
        rows.append(
            Row(
                values=rec,
                score=_number(rec["score"], where, "score"),
                float_score=_number(rec["float_score"], where, "float_score"),
                retention=_number(rec["retention"], where, "retention"),
                ci_low=_number(rec["ci_low"], where, "ci_low", optional=True),
                ci_high=_number(rec["ci_high"], where, "ci_high", optional=True),
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
    return Table(str(path), csv_path, header, rows, manifest)


def cell_name(values: dict[str, str], extra: list[str] | tuple[str, ...] = ()) -> str:
    """`STSBenchmark / local:model / binary` (plus `col=value` for extra identity)."""
    name = f"{values['task']} / {values['provider']}:{values['model']} / {values['technique']}"
    more = [f"{c}={values.get(c, '')}" for c in extra]
    return name + (f" ({', '.join(more)})" if more else "")


@dataclass
class CellDiff:
    key: dict[str, str]
    name: str
    status: str  # regression | within noise | improved | ok | only in new | only in baseline
    baseline: Row | None = None
    new: Row | None = None
    retention_drop: float | None = None  # points, positive = worse
    score_drop: float | None = None  # score points (100 × fraction), positive = worse
    noise: float | None = None  # retention points; None when a side has no interval
    score_noise: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, nd: int = 4) -> float | None:
            return None if x is None else round(x, nd)

        return {
            **self.key,
            "name": self.name,
            "status": self.status,
            "baseline": self.baseline.brief() if self.baseline else None,
            "new": self.new.brief() if self.new else None,
            "retention_delta": r(None if self.retention_drop is None else -self.retention_drop),
            "score_delta": r(None if self.score_drop is None else -self.score_drop),
            "noise": r(self.noise),
            "score_noise": r(self.score_noise),
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
        return [c for c in self.cells if c.baseline is None]

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
        n_noise = sum(c.status == "within noise" for c in self.cells)
        code = self.exit_code
        verdict = {0: "PASS", 1: "FAIL", 2: "GRID MISMATCH"}[code]
        text = (
            f"{verdict}: {len(self.matched)} cells matched, {len(self.regressions)} "
            f"regression(s), {n_noise} drop(s) within noise, "
            f"{len(self.only_new)} only in new, {len(self.only_baseline)} only in baseline "
            f"(max drop {self.max_drop:g} points)"
        )
        if self.regressions:
            worst = ", ".join(f"{c.name} ({-_worst_drop(c):+.2f})" for c in self.regressions[:8])
            more = f" and {len(self.regressions) - 8} more" if len(self.regressions) > 8 else ""
            text += f"\nregressed: {worst}{more}"
        if code == 1 and not self.regressions:
            text += "\nfailed: the float baseline moved (--fail-on-baseline-change)"
        return text

    def text(self) -> str:
        """A markdown diff table, then context, warnings and the summary."""
        head = (
            "| task | provider:model | technique | baseline % [95% CI] | new % [95% CI] "
            "| Δ retention | Δ score ×100 | noise ± | status |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---|\n"
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
            lines.append(
                f"| {c.key['task']} | {c.key['provider']}:{c.key['model']} | {tech} "
                f"| {_ret_cell(c.baseline)} | {_ret_cell(c.new)} "
                f"| {_signed(c.retention_drop)} | {_signed(c.score_drop)} "
                f"| {'' if c.noise is None else f'{c.noise:.2f}'} | {status} |"
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


def _worst_drop(c: CellDiff) -> float:
    return max(c.retention_drop or 0.0, c.score_drop or 0.0)


def _signed(drop: float | None) -> str:
    """A drop shown as a signed delta (new − baseline)."""
    if drop is None:
        return ""
    delta = -drop
    return "0.00" if abs(delta) < 0.005 else f"{delta:+.2f}"


def _ret_cell(row: Row | None) -> str:
    if row is None:
        return "—"
    if row.has_interval:
        return f"{row.retention:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
    return f"{row.retention:.2f} (score {row.score:.4f})"


def diff_cell(key: dict[str, str], name: str, base: Row, new: Row, max_drop: float) -> CellDiff:
    """Apply the regression rule (module docstring) to one matched cell."""
    d_ret = base.retention - new.retention
    d_score = 100.0 * (base.score - new.score)
    noise = score_noise = None
    if base.has_interval and new.has_interval:
        hb = max(base.retention - base.ci_low, 0.0)
        hn = max(new.ci_high - new.retention, 0.0)
        noise = math.hypot(hb, hn)
        score_noise = math.hypot(hb * base.float_score, hn * new.float_score)
    notes = []
    fails = []
    beyond = []
    for what, d, nz in (("retention", d_ret, noise), ("score", d_score, score_noise)):
        if d > max_drop + EPS:
            beyond.append(what)
            if nz is None or d > nz + EPS:
                fails.append(what)
    if fails:
        status = "regression"
        beyond_what = "max-drop and noise" if noise is not None else "max-drop"
        notes.append(f"{' and '.join(fails)} drop beyond {beyond_what}")
    elif beyond:
        status = "within noise"
    elif -d_ret > max_drop + EPS or -d_score > max_drop + EPS:
        status = "improved"
    else:
        status = "ok"
    if base.verdict != new.verdict:
        notes.append(f"verdict {base.verdict} → {new.verdict}")
    for c in DESCRIPTIVE:
        a, b = base.values.get(c), new.values.get(c)
        if a is not None and b is not None and a != b and c != "interval_method":
            notes.append(f"{c} {a} → {b}")
    return CellDiff(
        key=key,
        name=name,
        status=status,
        baseline=base,
        new=new,
        retention_drop=d_ret,
        score_drop=d_score,
        noise=noise,
        score_noise=score_noise,
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
) -> Comparison:
    if max_drop < 0 or not math.isfinite(max_drop):
        raise UserError(f"--max-drop must be a finite number ≥ 0, got {max_drop}")
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
    order = list(b) + [k for k in a if k not in b]  # the baseline's order, new cells last
    for k in order:
        key = dict(zip(identity, k, strict=True))
        name = cell_name(key, extra)
        if k in a and k in b:
            cells.append(diff_cell(key, name, b[k], a[k], max_drop))
        elif k in a:
            cells.append(CellDiff(key, name, "only in new", new=a[k]))
        else:
            cells.append(CellDiff(key, name, "only in baseline", baseline=b[k]))

    # The float baseline per (task, provider, model, extra identity): did it move?
    def floats(index: dict[tuple[str, ...], Row]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for k, row in index.items():
            out.setdefault(k[:3] + k[4:], row.float_score)
        return out

    fa, fb = floats(a), floats(b)
    moved = []
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


def compare_runs(
    new: str | Path,
    baseline: str | Path,
    max_drop: float = 1.0,
    allow_missing: bool = False,
    fail_on_baseline_change: bool = False,
    ignore_columns: tuple[str, ...] = (),
) -> Comparison:
    """Load both sides and compare them (UserError for a missing or malformed side)."""
    return compare_tables(
        load_table(new),
        load_table(baseline),
        max_drop=max_drop,
        allow_missing=allow_missing,
        fail_on_baseline_change=fail_on_baseline_change,
        ignore_columns=ignore_columns,
    )
