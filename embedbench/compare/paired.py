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
        raise NotPaired(
            f"{side} has no float row for the cell (a run keeps one only when its grid has "
            "the float technique, e.g. `classic`)"
        )
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


def _paired(
    sides: list[tuple[Table, str, Row]],
) -> tuple[str, stats.Resampler, list[Any], list[np.ndarray]]:
    """(kind, resampler, predictions, item matrices) of cells of one kind scored on the
    same items: [float, technique] of each side in order; NotPaired when they cannot be
    paired, or when a side's predictions do not reproduce its table."""
    got = [_side(table, side, row) for table, side, row in sides]
    kind, gold = got[0][0], got[0][1]
    if any(k != kind for k, _, _ in got) or kind not in KINDS:
        raise NotPaired(
            "the task kinds differ or have no bootstrap", f"kinds {' / '.join(g[0] for g in got)}"
        )
    if any(list(g.values()) != list(gold.values()) for _, g, _ in got):
        raise NotPaired("the runs' gold differs (other items)")
    one = len(gold) == 1
    pairs = [
        (side, p, r) for (_, side, _), (_, _, sr) in zip(sides, got, strict=True) for p, r in sr
    ]
    preds = [next(iter(p.values())) if one else p for _, p, _ in pairs]
    if one and kind == "Retrieval" and any(set(p) != set(preds[0]) for p in preds):
        raise NotPaired("the runs' query ids differ")
    try:
        items = _resampler(kind, gold)
        mats = [items.matrix(p) for p in preds]
        if len({m.shape for m in mats}) != 1:
            raise ValueError("prediction sets of different shapes")
        for (side, _, r), p in zip(pairs, preds, strict=True):
            again = items.point(p)
            if not abs(again - r.score) <= SCORE_TOL + ROUNDED.get(kind, 0.0):
                raise NotPaired(
                    "predictions do not reproduce the table's score",
                    f"{side} predictions of {r.values['technique']} give {again:.6f}, "
                    f"its table {r.score:.6f}",
                )
    except ValueError as e:
        raise NotPaired("the predictions cannot be resampled", f"bootstrap: {e}") from None
    return kind, items, preds, mats


def paired_drops(new: Table, baseline: Table, b: Row, n: Row, n_boot: int, seed: int) -> Paired:
    """The paired bootstrap of one matched cell's drops, or NotPaired (module docstring)."""
    _, items, preds, mats = _paired([(baseline, "BASELINE", b), (new, "NEW", n)])
    if np.array_equal(mats[0], mats[2]) and np.array_equal(mats[1], mats[3]):
        return Paired(0.0, 0.0, 0, 0.0)  # the same predictions: drop 0 on every resample
    r, s = (_bootstrap(items, preds, f, n_boot, seed, quantiles=(95.0,)) for f in DROPS)
    return Paired(r.values[0], s.values[0], r.resamples, max(r.mc_error, s.mc_error))


def paired_difference(
    table: Table, a: Row, b: Row, what: str, n_boot: int, seed: int
) -> stats.Bootstrap:
    """The 95% paired interval (2.5 and 97.5 percentiles) of b − a for two cells of one
    run scored on the same test items (e.g. two models' techniques on one task):
    `what` = "retention" (points of each cell's own retention) or "score" (100 × the
    scores' difference). Both cells' float and technique predictions are resampled
    together; NotPaired when they cannot be."""
    _, items, preds, _ = _paired([(table, "A", a), (table, "B", b)])
    return _bootstrap(items, preds, DIFFERENCES[what], n_boot, seed)


def _bootstrap(items, preds, stat, n_boot: int, seed: int, **opts: Any) -> stats.Bootstrap:
    """stats.paired_bootstrap with the module's Monte Carlo target and resample cap; a
    failure to resample is NotPaired."""
    try:
        return stats.paired_bootstrap(
            items,
            preds,
            stat,
            n_boot=n_boot,
            seed=seed,
            mc_target=MC_TARGET,
            max_resamples=MAX_BOOT_FACTOR * n_boot,
            **opts,
        )
    except ValueError as e:
        raise NotPaired("the predictions cannot be resampled", f"bootstrap: {e}") from None


DIFFERENCES = {  # b − a on each resample, scores of [a float, a technique, b float, b technique]
    "retention": lambda s: -DROPS[0](s),
    "score": lambda s: -DROPS[1](s),
}
