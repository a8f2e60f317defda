"""What `embedbench compare` prints: the markdown diff table, the summary, the JSON.

Formatting only: the gate's decisions (`CellDiff.status`, `Comparison.exit_code`) are
made in `embedbench.compare.gate`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from embedbench.results import BASE_KEY

if TYPE_CHECKING:
    from embedbench.compare.gate import CellDiff, Comparison
    from embedbench.compare.tables import Row

RULE = (
    "a retention or score drop (points, positive = worse) fails when it exceeds max-drop; "
    "rule paired (both runs have per-item predictions): also when the 95th percentile of "
    "the drop over bootstrap resamples of the test items, shared by both runs' float and "
    "technique predictions, exceeds max-drop; rule point (no usable predictions, and "
    "float-baseline rows): the drop alone"
)


def _finite(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


def cell_json(c: CellDiff) -> dict[str, Any]:
    p = c.paired
    return {
        **c.key,
        "name": c.name,
        "status": c.status,
        "rule": c.rule,
        "baseline": c.baseline.brief() if c.baseline else None,
        "new": c.new.brief() if c.new else None,
        "retention_delta": _finite(c.retention_drop and -c.retention_drop),
        "score_delta": _finite(c.score_drop and -c.score_drop),
        "retention_drop_bound95": _finite(p and p.retention_bound),
        "score_drop_bound95": _finite(p and p.score_bound),
        "resamples": p and p.resamples,
        "mc_error": _finite(p and p.mc_error),
        "notes": c.notes,
    }


def grid_error(cmp: Comparison) -> str:
    """The one-line explanation of a grid mismatch."""

    def names(cells: list[CellDiff]) -> str:
        shown = [c.name for c in cells[:8]]
        more = f" and {len(cells) - 8} more" if len(cells) > 8 else ""
        return "; ".join(shown) + more

    parts = []
    if cmp.only_new:
        parts.append(f"{len(cmp.only_new)} only in NEW ({cmp.new.label}): ")
        parts[-1] += names(cmp.only_new)
    if cmp.only_baseline:
        parts.append(f"{len(cmp.only_baseline)} only in BASELINE ({cmp.baseline.label}): ")
        parts[-1] += names(cmp.only_baseline)
    return (
        "the grids differ, cells "
        + " | ".join(parts)
        + " (--allow-missing compares the common cells)"
    )


def summary(cmp: Comparison) -> str:
    rules = Counter(c.rule for c in cmp.matched)
    code = cmp.exit_code
    verdict = {0: "PASS", 1: "FAIL", 2: "GRID MISMATCH"}[code]
    text = (
        f"{verdict}: {len(cmp.matched)} cells matched ({rules['paired']} paired, "
        f"{rules['point']} point), {len(cmp.regressions)} regression(s), "
        f"{len(cmp.only_new)} only in new, {len(cmp.only_baseline)} only in baseline "
        f"(max drop {cmp.max_drop:g} points)"
    )
    if cmp.regressions:
        worst = ", ".join(
            f"{c.name} ({-max(c.retention_drop, c.score_drop):+.2f}, rule {c.rule})"
            for c in cmp.regressions[:8]
        )
        more = f" and {len(cmp.regressions) - 8} more" if len(cmp.regressions) > 8 else ""
        text += f"\nregressed: {worst}{more}"
    if code == 1 and not cmp.regressions:
        text += "\nfailed: the float baseline moved (--fail-on-baseline-change)"
    return text


def text(cmp: Comparison) -> str:
    """A markdown diff table, then context, warnings and the summary."""
    head = (
        "| task | provider:model | technique | baseline % [95% CI] | new % [95% CI] "
        "| Δ retention | Δ score ×100 | drop ≤ (95%) ret / score | rule | status |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---|---|\n"
    )
    extra = cmp.identity[len(BASE_KEY) :]
    lines = []
    for c in cmp.cells:
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
    out += [f"note: {line}" for line in cmp.context]
    out += [f"warning: {line}" for line in cmp.warnings]
    out.append(f"rule: {RULE}")
    out.append(cmp.summary())
    return "\n".join(out) + "\n"


def to_json(cmp: Comparison) -> dict[str, Any]:
    return {
        "exit_code": cmp.exit_code,
        "status": {0: "pass", 1: "regression", 2: "grid mismatch"}[cmp.exit_code],
        "new": cmp.new.label,
        "baseline": cmp.baseline.label,
        "max_drop": cmp.max_drop,
        "rule": RULE,
        "identity_columns": cmp.identity,
        "matched": len(cmp.matched),
        "regressions": [c.name for c in cmp.regressions],
        "only_in_new": [c.name for c in cmp.only_new],
        "only_in_baseline": [c.name for c in cmp.only_baseline],
        "baseline_moved": cmp.baseline_moved,
        "warnings": cmp.warnings,
        "context": cmp.context,
        "error": cmp.grid_error() if cmp.grid_mismatch else None,
        "cells": [c.to_json() for c in cmp.cells],
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
