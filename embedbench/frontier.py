"""The frontier of a run: per size budget, the best technique that fits against the
best truncation row of that budget, with the paired interval of their difference.

A technique fits budget m when its size multiplier (whole footprint) is at least m.
The best is picked on the same test items it reports (a maximum of noisy estimates,
biased upward), so every row of the largest budgets is listed too, each with its own
paired difference to the truncation row: a reader sees how many rows clear
truncation and by how much, not only the winner. A truncation row is
`trunc<k>+<code>`, truncation and a code with nothing else (the Matryoshka-style
baseline every other row must beat), compared at the budget it belongs to (it fits
that budget, not the next). The difference is retention(row) − retention(truncation)
in points, its 95% interval from a paired bootstrap of the run's per-item
predictions (`compare.paired.paired_difference`): both rows against the same float
predictions, on the same resampled items. "beats" marks an interval above 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from embedbench.compare.paired import NotPaired, paired_difference
from embedbench.compare.tables import Row, Table, load_table
from embedbench.stats import Bootstrap

TRUNCATION = re.compile(r"^trunc\d+\+[^+/]+$")
BUDGETS = (8, 16, 32, 64, 128)
EPS = 1e-9


@dataclass
class Versus:
    """A row against the best truncation row of its budget."""

    budget: int
    row: Row
    truncation: Row | None
    difference: Bootstrap | None  # of retention(row) − retention(truncation), points
    why_not: str = ""  # why there is no paired interval

    @property
    def task(self) -> str:
        return self.row.values["task"]


def _size(row: Row) -> float:
    return float(row.values["size_multiplier"])


def _group(row: Row) -> tuple[str, str, str]:
    return row.values["task"], row.values["provider"], row.values["model"]


def _candidates(table: Table) -> dict[tuple[str, str, str], list[Row]]:
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in table.rows:
        technique = r.values.get("role", "technique") == "technique" and not r.is_baseline
        if technique and r.values.get("scope") in (None, "task"):
            groups.setdefault(_group(r), []).append(r)
    return groups


def _versus(table: Table, budget: int, row: Row, trunc: Row | None, n_boot: int, seed: int):
    if trunc is None or trunc is row:
        return Versus(budget, row, trunc, None)
    try:
        diff = paired_difference(table, trunc, row, "retention", n_boot, seed)
    except NotPaired as e:
        return Versus(budget, row, trunc, None, e.detail)
    return Versus(budget, row, trunc, diff)


def _best(rows: list[Row]) -> Row | None:
    return max(rows, key=lambda r: r.retention, default=None)


def frontier(
    run: str | Path, budgets: tuple[int, ...] = BUDGETS, n_boot: int = 2000, seed: int = 42
) -> tuple[list[Versus], list[Versus]]:
    """(the best row of every task and budget, every row of the budgets from the
    second-largest up), each against the best truncation row of its budget."""
    table = load_table(run)
    best, every = [], []
    done: dict[tuple[int, int, int], Versus] = {}  # the best row is in both lists: one bootstrap

    def versus(b: int, row: Row, trunc: Row | None) -> Versus:
        key = (b, id(row), id(trunc))
        if key not in done:
            done[key] = _versus(table, b, row, trunc, n_boot, seed)
        return done[key]

    top = sorted(budgets)
    for rows in _candidates(table).values():
        for i, b in enumerate(top):
            fits = [r for r in rows if _size(r) >= b - EPS]
            if not fits:
                continue
            upper = top[i + 1] if i + 1 < len(top) else float("inf")
            band = sorted((r for r in fits if _size(r) < upper - EPS), key=lambda r: -r.retention)
            # the truncation row of this budget: one that fits it and not the next
            trunc = _best([r for r in band if TRUNCATION.match(r.values["technique"])])
            best.append(versus(b, _best(fits), trunc))
            if len(top) >= 2 and b < top[-2]:
                continue
            every += [versus(b, r, trunc) for r in band]
    return best, every


def _cell(row: Row) -> str:
    v = row.values
    s = f"{v['technique']}: {v['retention']} [{v['ci_low']}, {v['ci_high']}]"
    if v.get("seed_low"):
        s += f", seeds {v['seed_low']}–{v['seed_high']}"
    return s + f" ({_size(row):g}×)"


def _difference(x: Versus) -> str:
    if x.truncation is None or x.truncation is x.row:
        return ""
    if x.difference is None:
        return f"(no paired interval: {x.why_not})"
    d = x.row.retention - x.truncation.retention
    lo, hi = x.difference.values
    mark = " beats" if lo > 0 else (" loses" if hi < 0 else "")
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}"


def _mse(row: Row) -> str:
    v = row.values
    return f"{v['mse']} ({v['mse_vs_bound']})" if v.get("mse") else ""


def markdown(best: list[Versus], every: list[Versus]) -> str:
    """The two tables, as the README shows them."""
    lines = [
        "| task | size × ≥ | best technique, selected on test: retention % [95% CI], seed "
        "spread (size ×) | best truncation row | best − truncation, points [paired 95% CI] "
        "| MSE (× bound) of the best |",
        "|---|---:|---|---|---|---:|",
    ]
    for x in best:
        trunc = _cell(x.truncation) if x.truncation is not None else ""
        lines.append(
            f"| {x.task} | {x.budget} | {_cell(x.row)} | {trunc} | {_difference(x)} "
            f"| {_mse(x.row)} |"
        )
    lines += [
        "",
        "| task | size × ≥ | technique | size × | retention % [95% CI] | seeds | verdict "
        "| − truncation, points [paired 95% CI] | MSE (× bound) |",
        "|---|---:|---|---:|---:|---:|---|---|---:|",
    ]
    for x in every:
        v = x.row.values
        seeds = f"{v['seed_low']}–{v['seed_high']}" if v.get("seed_low") else ""
        diff = "(the truncation row)" if x.row is x.truncation else _difference(x)
        lines.append(
            f"| {x.task} | {x.budget} | {v['technique']} | {_size(x.row):g} | {v['retention']} "
            f"[{v['ci_low']}, {v['ci_high']}] | {seeds} | {x.row.verdict} | {diff} "
            f"| {_mse(x.row)} |"
        )
    return "\n".join(lines)
