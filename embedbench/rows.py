"""From evaluation records to retention rows: one per evaluation unit and one per task.

A task evaluated on one (subset, split) gives one row per technique (`scope` "task").
A task with several gives a row per unit (`scope` "unit") and mteb's aggregate, the
mean over units (`scope` "task", subset and/or split "all"), whose interval resamples
every unit's items at once (`stats.Stratified`). Every interval is paired: the
technique's predictions and the float baseline's on the same resampled items; a
technique with a float control (`svd+binary` → `svd+float32`) also gets its cost
against that control.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedbench import grid, stats
from embedbench.config import Config, Evaluation
from embedbench.quantize import control_spec
from embedbench.records import EvalRecord
from embedbench.registry import build_technique
from embedbench.results import CellResult
from embedbench.tasks import LoadedTask, unit_key

ALL = "all"


def _scope_units(lt: LoadedTask) -> list[tuple[str, str, str, list[str]]]:
    """(subset, split, scope, unit keys) of every row a task gets."""
    out = [(s, sp, "unit", [unit_key((s, sp))]) for s, sp in lt.units]
    if len(out) == 1:
        return [(out[0][0], out[0][1], "task", out[0][3])]
    subset = lt.subsets[0] if len(lt.subsets) == 1 else ALL
    split = lt.splits[0] if len(lt.splits) == 1 else ALL
    return [*out, (subset, split, "task", [unit_key(u) for u in lt.units])]


class TaskRows:
    """The resamplers, gold and chance levels of one task's rows."""

    def __init__(self, lt: LoadedTask):
        self.lt = lt
        self.gold = lt.golds()
        self.parts = {u: lt.kind.resampler(g) for u, g in self.gold.items()}
        self.rows = _scope_units(lt)

    def resampler(self, units: list[str]) -> stats.Resampler:
        if len(units) == 1:
            return self.parts[units[0]]
        return stats.Stratified({u: self.parts[u] for u in units})

    def chance(self, units: list[str]) -> float | None:
        levels = [self.lt.kind.chance(self.gold[u]) for u in units]
        return None if any(c is None for c in levels) else sum(levels) / len(levels)  # type: ignore[arg-type,misc]


def _score(rec: EvalRecord, units: list[str]) -> float:
    if len(units) == 1 and units[0] in rec.unit_scores:
        return rec.unit_scores[units[0]]
    return rec.score  # mteb's aggregate: the mean over every unit


def _preds(rec: EvalRecord, units: list[str]) -> Any:
    return rec.predictions[units[0]] if len(units) == 1 else {u: rec.predictions[u] for u in units}


def _mean_mse(recs: list[EvalRecord]) -> float | None:
    values = [r.mse for r in recs if r.mse is not None]
    return sum(values) / len(values) if values else None


def task_rows(
    tr: TaskRows,
    base: EvalRecord,
    technique: tuple[str, str, str],  # (name, spec, role)
    recs: list[EvalRecord],  # seed replicates, seed 0 first
    control: tuple[str, EvalRecord] | None,
    ev: Evaluation,
    cell: Callable[..., CellResult],
) -> list[CellResult]:
    """The rows of one technique on one task (per unit, then the task's)."""
    name, spec, role = technique
    rec = recs[0]
    out = []
    for subset, split, scope, units in tr.rows:
        items = tr.resampler(units)
        score, float_score = _score(rec, units), _score(base, units)
        interval = control_ret = None
        if rec is not base:
            interval = stats.retention_interval(
                items, _preds(base, units), _preds(rec, units), ev.bootstrap, ev.seed, ev.mc_target
            )
            if control is not None:
                ctl = control[1]
                ctl_interval = stats.retention_interval(
                    items,
                    _preds(ctl, units),
                    _preds(rec, units),
                    ev.bootstrap,
                    ev.seed,
                    ev.mc_target,
                )
                control_ret = stats.retention(score, _score(ctl, units), ctl_interval, ev.margin)
        chance = tr.chance(units)
        out.append(
            cell(
                task=tr.lt.name,
                subset=subset,
                split=split,
                scope=scope,
                technique=name,
                spec=spec,
                role="baseline" if rec is base else role,
                bytes_per_vector=rec.bytes_per_vector,
                secondary_bytes=rec.secondary_bytes,
                params_bytes=rec.params_bytes,
                score=score,
                float_score=float_score,
                retention=stats.retention(score, float_score, interval, ev.margin),
                interval_method=items.method if interval else "",
                control=control[0] if control_ret else "",
                control_retention=control_ret,
                chance_corrected=None
                if rec is base
                else stats.chance_corrected(score, float_score, chance),
                mse=_mean_mse(recs),
                spread=stats.seed_spread([100.0 * _score(r, units) / float_score for r in recs])
                if len(recs) > 1
                else None,
            )
        )
    return out


def technique_rows(
    config: Config,
    tr: TaskRows,
    natives: tuple[str, ...],
    base: EvalRecord,
    keys: dict[tuple[str, int], str],
    get: Callable[[str], EvalRecord],
    cell: Callable[..., CellResult],
):
    """Per technique of a provider × task, in the grid's order with controls last:
    (technique, spec, its seed-0 record, its rows)."""
    for name, role in grid.techniques(config, tr.lt, natives):
        spec = build_technique(name).spec
        recs = [
            base if spec == grid.BASELINE else get(keys[name, s]) for s in grid.seeds(config, name)
        ]
        ctl = control_spec(name)
        control = None
        if recs[0] is not base and ctl and grid.applies(ctl, tr.lt, natives):
            control = (ctl, get(keys[ctl, 0]))
        rows = task_rows(tr, base, (name, spec, role), recs, control, config.evaluation, cell)
        yield name, spec, recs[0], rows
