"""Retention, its paired 95% interval, verdicts, and every bootstrap behind them.

retention = 100 · score(technique) / score(float baseline), on the same task,
subset, split, evaluator settings and seeds. All intervals here come from one paired
percentile bootstrap over mteb's own per-item predictions (`paired_bootstrap`):
each resample draws the task's items once and scores *every* prediction set on
that same draw, so a retention (technique vs float), a cost against a float
control, and a regression gate's difference of two runs' retentions (four
prediction sets) all share their resampled items.

What an item is belongs to the task kind (`embedbench.tasks`: STS pairs,
classification test items × mteb experiments, retrieval queries, ...): each kind
gives a `Resampler`. Tasks with several subsets or splits are resampled per
stratum and scored as mteb aggregates them (`Stratified`).

Resamples are drawn in rounds until the Monte Carlo standard error of every
requested percentile is at most `MC_TARGET` points (endpoints stable to 0.01), or
the resampler's cap (`max_resamples`) is reached; the error is reported beside the
interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MC_TARGET = 0.005  # percentile Monte Carlo standard error target, in points
DEFAULT_MARGIN = 1.0  # equivalence margin, points of retention
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Retention:
    retention: float  # percent
    ci_low: float
    ci_high: float
    verdict: str  # "baseline", "loss", "gain", "equivalent", "inconclusive"
    mc_error: float = 0.0  # Monte Carlo standard error of the interval endpoints
    resamples: int = 0


def verdict(lo: float, hi: float, margin: float = DEFAULT_MARGIN) -> str:
    """What a retention interval shows (METHOD.md).

    "loss" / "gain" when the interval excludes 100; "equivalent" when it lies inside
    100 ± margin; otherwise "inconclusive" (it covers 100 but admits more than the
    margin). Never "lossless".
    """
    if hi < 100.0:
        return "loss"
    if lo > 100.0:
        return "gain"
    if 100.0 - margin <= lo and hi <= 100.0 + margin:
        return "equivalent"
    return "inconclusive"


# --------------------------------------------------------------------------- items


def counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b × n) multiplicities of n items drawn with replacement, b times."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


GOLD_LENGTH = "prediction set and gold differ in length"


class Resampler:
    """One evaluation unit's items (a task's subset × split) and how to score prediction
    sets on resamples of them. Each task kind (`embedbench.tasks`) has its own, with its
    natural resampling unit; `paired_bootstrap` only needs this protocol.

    - `gold`: what a unit's items are scored against (`Kind.gold`), by default as an array;
    - `matrix(preds)`: a prediction set as an array (shape and equality checks);
    - `point(preds)`: its score on all items (mteb's main score, unrounded);
    - `prepare(preds_list)` / `scores(prepared, rng, b)`: the (b × k) scores of k sets
      on the same b resamples.
    """

    method: str = ""  # what an interval resamples, as reported beside it
    max_resamples: int = 64_000  # cap of the adaptive bootstrap, by cost of a resample
    # True: percentiles are taken of the bootstrap distribution moved to centre on the
    # estimate (for a statistic whose resampling is biased, e.g. a plug-in v-measure)
    centred: bool = False

    def __init__(self, gold: Any):
        self.gold = np.asarray(gold)

    def matrix(self, preds: Any) -> np.ndarray:
        raise NotImplementedError

    def point(self, preds: Any) -> float:
        raise NotImplementedError

    def prepare(self, preds: list[Any]) -> list[Any]:
        return [self.matrix(p) for p in preds]

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        raise NotImplementedError


def shaped(
    preds: Any, dtype: Any, shape: tuple[int, ...], mismatch: str = GOLD_LENGTH
) -> np.ndarray:
    """A prediction set as an array of `dtype` and `shape`; ValueError(`mismatch`) otherwise."""
    m = np.asarray(preds, dtype=dtype)
    if m.shape != shape:
        raise ValueError(mismatch)
    return m


class Stratified(Resampler):
    """Several units scored as mteb aggregates them: the mean of their main scores.

    A resample draws every unit's items independently (strata: subset × split) from
    one generator; predictions are `{unit: prediction set}`.
    """

    def __init__(self, parts: dict[str, Resampler]):
        self.parts = parts
        methods = dict.fromkeys(p.method for p in parts.values())
        self.method = f"stratified by subset and split: {'; '.join(methods)}"
        self.max_resamples = min(p.max_resamples for p in parts.values())
        self.centred = any(p.centred for p in parts.values())

    def matrix(self, preds: Any) -> np.ndarray:
        if set(preds) != set(self.parts):
            raise ValueError("prediction sets cover different subsets or splits")
        return np.concatenate([self.parts[u].matrix(preds[u]).ravel() for u in self.parts])

    def point(self, preds: Any) -> float:
        return float(np.mean([self.parts[u].point(preds[u]) for u in self.parts]))

    def prepare(self, preds: list[Any]) -> list[Any]:
        by_unit = {u: part.prepare([p[u] for p in preds]) for u, part in self.parts.items()}
        return [by_unit]

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        (by_unit,) = mats
        total = sum(part.scores(by_unit[u], rng, b) for u, part in self.parts.items())
        return total / len(self.parts)


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Bootstrap:
    """Percentiles of a statistic over paired resamples, with their Monte Carlo error."""

    quantiles: tuple[float, ...]  # the percentiles asked for (e.g. 2.5, 97.5)
    values: tuple[float, ...]
    mc_error: float  # largest Monte Carlo standard error of the values
    resamples: int


def _mc_error(sorted_values: np.ndarray, q: float) -> float:
    """Standard error of the q-th percentile from the order statistics around it.

    The rank of the p-quantile among B draws is Binomial(B, p): the values at ranks
    B·p ± 1.96·sqrt(B·p·(1−p)) bracket it with 95% probability; half that span over
    1.96 estimates its standard error, free of any density assumption.
    """
    B, p = len(sorted_values), q / 100.0
    half = Z95 * np.sqrt(B * p * (1 - p))
    lo = int(np.clip(np.floor(B * p - half), 0, B - 1))
    hi = int(np.clip(np.ceil(B * p + half), 0, B - 1))
    return float(sorted_values[hi] - sorted_values[lo]) / (2 * Z95)


def paired_bootstrap(
    items: Resampler,
    preds: list[Any],
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int,
    seed: int,
    quantiles: tuple[float, ...] = (2.5, 97.5),
    mc_target: float = MC_TARGET,
    max_resamples: int | None = None,
    chunk: int = 500,
) -> Bootstrap:
    """Percentiles of `statistic(scores)` over paired resamples of the items.

    `statistic` maps a (b × len(preds)) score matrix to b values (e.g. 100 ·
    scores[:, 1] / scores[:, 0]). At least `n_boot` resamples are drawn, then more in
    doublings until the Monte Carlo error of every percentile is ≤ `mc_target` or
    `max_resamples` (default: the task type's cap) is reached. Deterministic for a given
    seed.
    """
    mats = items.prepare(preds)
    max_resamples = max_resamples or items.max_resamples
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    drawn, target = 0, n_boot
    while True:
        while drawn < target:
            b = min(chunk, target - drawn)
            with np.errstate(divide="ignore", invalid="ignore"):
                values.append(np.asarray(statistic(items.scores(mats, rng, b)), dtype=np.float64))
            drawn += b
        allv = np.sort(np.concatenate(values))
        if not np.all(np.isfinite(allv)):
            raise ValueError("bootstrap statistic is not finite on some resample")
        if items.centred:  # the spread around the estimate, not the resampling bias
            estimate = statistic(np.array([[items.point(p) for p in preds]]))[0]
            allv = allv - allv.mean() + estimate
        mc = max(_mc_error(allv, q) for q in quantiles)
        if mc <= mc_target or drawn >= max_resamples:
            break
        target = min(2 * drawn, max_resamples)
    vals = tuple(float(v) for v in np.percentile(allv, quantiles))
    return Bootstrap(tuple(quantiles), vals, mc, drawn)


def ratio(num: int, den: int) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic: 100 · score[num] / score[den] (a retention in percent)."""
    return lambda s: 100.0 * (s[:, num] / s[:, den])


def retention(
    score: float,
    float_score: float,
    interval: Bootstrap | None,
    margin: float = DEFAULT_MARGIN,
) -> Retention:
    """The retention row of a technique; no interval = the float baseline itself."""
    r = 100.0 * (score / float_score)
    if interval is None:
        return Retention(r, r, r, "baseline")
    lo, hi = interval.values
    return Retention(r, lo, hi, verdict(lo, hi, margin), interval.mc_error, interval.resamples)


def retention_interval(
    items: Resampler,
    base_preds: Any,
    tech_preds: Any,
    n_boot: int,
    seed: int,
    mc_target: float = MC_TARGET,
) -> Bootstrap:
    """Paired 95% interval (percent) of score(tech) / score(float)."""
    return paired_bootstrap(
        items,
        [base_preds, tech_preds],
        ratio(1, 0),
        n_boot=n_boot,
        seed=seed,
        mc_target=mc_target,
    )


def chance_corrected(score: float, float_score: float, chance: float | None) -> float | None:
    """100 · (s − chance) / (s_float − chance): retention of the above-chance part."""
    if chance is None or float_score <= chance:
        return None
    return 100.0 * (score - chance) / (float_score - chance)


@dataclass(frozen=True)
class SeedSpread:
    """Retention of one technique over K seeds (calibration sample and random draws)."""

    n: int
    low: float
    high: float
    sd: float


def seed_spread(retentions: Sequence[float]) -> SeedSpread:
    r = np.asarray(retentions, dtype=np.float64)
    sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    return SeedSpread(len(r), float(r.min()), float(r.max()), sd)
