"""The gate: match two runs' cells and apply the regression rule to each.

`compare_tables` matches cells on their identity columns (a pandas merge), runs the
paired bootstrap (`embedbench.compare.paired`) where both runs have usable predictions,
applies the rule (`diff_cell`) and collects warnings: columns on one side only, the
point rule's reasons, moved float baselines. The rule is in the `embedbench.compare` docstring.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbench.compare import output
from embedbench.compare.paired import NotPaired, Paired, paired_drops
from embedbench.compare.tables import EPS, Row, Table, cell_name, load_table
from embedbench.errors import UserError
from embedbench.results import BASE_KEY, DESCRIPTIVE, extra_identity

if TYPE_CHECKING:
    import pandas as pd

BASELINE_MOVE = 1e-4  # float_score difference that counts as "the baseline moved"


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
        return output.cell_json(self)


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
        return output.grid_error(self)

    def summary(self) -> str:
        return output.summary(self)

    def text(self) -> str:
        """A markdown diff table, then context, warnings and the summary."""
        return output.text(self)

    def to_json(self) -> dict[str, Any]:
        return output.to_json(self)


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


def _keys(table: Table, columns: list[str]) -> pd.DataFrame:
    """The `columns` values of each row: frame columns 0, 1, ...; frame row i is `table.rows[i]`."""
    import pandas as pd

    values = [[row.values[c] for c in columns] for row in table.rows]
    return pd.DataFrame(values, columns=range(len(columns)))


def _unique_keys(table: Table, identity: list[str], other: Table) -> pd.DataFrame:
    """`_keys` on `identity`; a cell that appears twice is a UserError."""
    keys = _keys(table, identity)
    twice = keys.duplicated().to_numpy()
    if twice.any():
        row = table.rows[int(twice.argmax())]
        only = [c for c in table.columns if c not in other.columns and c not in identity]
        hint = f"; column(s) {', '.join(only)} exist only in this run" if only else ""
        raise UserError(
            f"{table.path} line {row.line}: cell {cell_name(row.values, identity[4:])} "
            f"appears twice when matched on {', '.join(identity)}{hint}"
        )
    return keys


def _match(
    new: Table, baseline: Table, identity: list[str]
) -> list[tuple[tuple[str, ...], Row | None, Row | None]]:
    """(key, baseline row, new row) of every cell of either run, None on the side it is
    missing from, merged on `identity`: the baseline's order, then the new run's cells."""
    a, b = _unique_keys(new, identity, baseline), _unique_keys(baseline, identity, new)
    on = list(b.columns)
    both = b.assign(baseline=b.index).merge(a.assign(new=a.index), how="outer", on=on)
    both = both.sort_values(["baseline", "new"], na_position="last", kind="stable")

    def row(table: Table, at: float) -> Row | None:
        return None if math.isnan(at) else table.rows[int(at)]

    keys = both[on].itertuples(index=False, name=None)
    return [
        (k, row(baseline, ib), row(new, ia))
        for k, ib, ia in zip(keys, both["baseline"], both["new"], strict=True)
    ]


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
    cells: list[CellDiff] = []
    why_point: Counter[str] = Counter()
    for k, bk, ak in _match(new, baseline, identity):
        key = dict(zip(identity, k, strict=True))
        name = cell_name(key, extra)
        if bk is None:  # a float control against a baseline from before controls: "new control"
            control = ak.values.get("role") == "control" and "role" not in baseline.columns
            cells.append(CellDiff(key, name, "new control" if control else "only in new", new=ak))
        elif ak is None:
            cells.append(CellDiff(key, name, "only in baseline", baseline=bk))
        else:
            paired = reason = None
            if not (ak.is_baseline or bk.is_baseline):
                try:
                    paired = paired_drops(new, baseline, bk, ak, n_boot, seed)
                except NotPaired as e:  # the warning says why; a note only what is specific
                    why_point[e.reason] += 1
                    reason = e.detail if e.detail != e.reason else None
            cells.append(diff_cell(key, name, bk, ak, max_drop, paired, reason))
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
    moved, moved_warnings = _baseline_moves(new, baseline, extra)
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


def _baseline_moves(
    new: Table, baseline: Table, extra: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each (task, provider, model) whose float score moved, and a warning for each."""
    group = [*BASE_KEY[:3], *extra]

    def floats(table: Table) -> pd.DataFrame:  # each group's first float score
        keys = _keys(table, group)
        return keys.assign(f=[r.float_score for r in table.rows]).drop_duplicates(list(keys))

    both = floats(baseline).merge(floats(new), on=list(range(len(group))), suffixes=("b", "a"))
    moved, warnings = [], []
    changed = both[(both.fa - both.fb).abs() > BASELINE_MOVE]
    for *g, fb, fa in changed.itertuples(index=False, name=None):
        group_key = dict(zip(group, g, strict=True))
        label = f"{group_key['task']} / {group_key['provider']}:{group_key['model']}"
        label += "".join(f" {c}={group_key[c]}" for c in extra)
        moved.append(
            {
                **group_key,
                "baseline_float_score": fb,
                "new_float_score": fa,
                "delta_points": round(100 * (fa - fb), 4),
            }
        )
        warnings.append(
            f"float baseline moved for {label}: {fb:.6f} → {fa:.6f} "
            f"({100 * (fa - fb):+.2f} score points); retentions are relative to "
            "different baselines (model, provider, data or mteb changed?)"
        )
    return moved, warnings


def compare_runs(new: str | Path, baseline: str | Path, **options: Any) -> Comparison:
    """Load both sides and compare them (`compare_tables` options; UserError for a
    missing or malformed side)."""
    return compare_tables(load_table(new), load_table(baseline), **options)
