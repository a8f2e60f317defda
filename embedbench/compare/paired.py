"""The paired bootstrap of one matched cell's drops (rule "paired" of `compare`).

Both runs' float and technique predictions of a cell -- baseline float bf and
technique bt, new float nf and technique nt -- are scored on the same bootstrap
resamples of the test items (`stats.paired_bootstrap`) for the retention drop
100·bt/bf − 100·nt/nf and the score drop 100·(bt − nt); `Paired` holds their
one-sided 95% upper bounds. `NotPaired` says why a cell falls back to the point
rule. The rule itself is in the `embedbench.compare` docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbench import stats
from embedbench.tasks.kinds import KINDS, resampler

if TYPE_CHECKING:
    from embedbench.compare.tables import Row, Table

SCORE_TOL = 1e-5 + 5e-7  # predictions vs the table's 6-decimal score
ROUNDED = {"Retrieval": 5e-6}  # mteb rounds the retrieval main score to 5 decimals
# A gate's 95% bound is drawn until its Monte Carlo standard error is ≤ MC_TARGET points,
# up to MAX_BOOT_FACTOR × --bootstrap resamples (a note flags a bound that close to max-drop).
MC_TARGET = 0.01
MAX_BOOT_FACTOR = 8


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


def units_of(row: Row, units: list[str]) -> list[str]:
    """The units ("subset/split") a row scores: its own, or all those its "all" covers
    (a table without subset and split columns: every unit of the task)."""
    subset, split = row.values.get("subset"), row.values.get("split")
    if subset is None or split is None:
        return units
    return [
        u for u in units if subset in ("all", u.split("/")[0]) and split in ("all", u.split("/")[1])
    ]


def _side(table: Table, side: str, row: Row) -> tuple[str, Any, list[Any]]:
    """(kind, {unit: gold}, [(float predictions, row), (technique predictions, row)]) of
    one run's cell, predictions as {unit: the kind's predictions}."""
    if table.predictions is None:
        raise NotPaired(f"{side} has no predictions/ folder (made by an older embedbench?)")
    if sum(r.cell == row.cell and r.values == row.values for r in table.rows) > 1:
        raise NotPaired("the cell is not unique in its table")
    base = table.float_row(row)
    if base is None:
        raise NotPaired(f"{side} has no float-baseline row with the cell's float_score")
    gold = table.predictions.gold(row.values["task"])
    units = units_of(row, sorted(gold))
    if not units:
        raise NotPaired(f"{side} has no predictions of the row's subset and split")
    out = []
    for r in (base, row):
        cell = table.predictions.cell(*r.cell)
        if cell is None or any(u not in cell.predictions for u in units):
            raise NotPaired(
                f"{side} lacks predictions of some cells",
                f"{side} has no predictions of {r.values['technique']}",
            )
        out.append(({u: cell.predictions[u] for u in units}, r))
    kind = table.predictions.kind(row.values["task"]) or cell.kind
    return kind, {u: gold[u] for u in units}, out


def _resampler(kind: str, gold: dict[str, Any]) -> stats.Resampler:
    parts = {u: resampler(kind, g) for u, g in gold.items()}
    return next(iter(parts.values())) if len(parts) == 1 else stats.Stratified(parts)


def paired_drops(new: Table, baseline: Table, b: Row, n: Row, n_boot: int, seed: int) -> Paired:
    """The paired bootstrap of one matched cell's drops, or NotPaired (module docstring)."""
    kb, gb, sb = _side(baseline, "BASELINE", b)
    kn, gn, sn = _side(new, "NEW", n)
    if kb != kn or kb not in KINDS:
        raise NotPaired("the task kinds differ or have no bootstrap", f"kinds {kb} / {kn}")
    if list(gb.values()) != list(gn.values()):
        raise NotPaired("the runs' gold differs (other items)")
    one = len(gb) == 1
    preds = [next(iter(p.values())) if one else p for p, _ in sb + sn]
    if one and kb == "Retrieval" and any(set(p) != set(preds[0]) for p in preds):
        raise NotPaired("the runs' query ids differ")
    try:
        items = _resampler(kb, gb)
        mats = [items.matrix(p) for p in preds]
        if len({m.shape for m in mats}) != 1:
            raise ValueError("prediction sets of different shapes")
        for side, (p, r) in zip(("BASELINE",) * 2 + ("NEW",) * 2, sb + sn, strict=True):
            again = items.point(next(iter(p.values())) if one else p)
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


def paired_difference(table: Table, a: Row, b: Row, n_boot: int, seed: int) -> stats.Bootstrap:
    """95% interval of retention(a) − retention(b), two rows of one run on the same
    task (points), over paired resamples of the items: both against the same float
    predictions, so the interval is that of the difference, far narrower than the two
    rows' own intervals suggest when the rows err on the same items."""
    ka, ga, sa = _side(table, "RUN", a)
    _, gb, sb = _side(table, "RUN", b)
    if ga != gb or ka not in KINDS:
        raise NotPaired("the rows score other items or their kind has no bootstrap")
    one = len(ga) == 1
    preds = [next(iter(p.values())) if one else p for p, _ in (sa[0], sa[1], sb[1])]
    items = _resampler(ka, ga)
    for p, r in zip(preds[1:], (a, b), strict=True):
        again = items.point(p)
        if not abs(again - r.score) <= SCORE_TOL + ROUNDED.get(ka, 0.0):
            raise NotPaired(
                "predictions do not reproduce the table's score",
                f"predictions of {r.values['technique']} give {again:.6f}, table {r.score:.6f}",
            )
    return stats.paired_bootstrap(
        items,
        preds,
        lambda s: 100.0 * s[:, 1] / s[:, 0] - 100.0 * s[:, 2] / s[:, 0],
        n_boot=n_boot,
        seed=seed,
        mc_target=MC_TARGET,
        max_resamples=MAX_BOOT_FACTOR * n_boot,
    )
