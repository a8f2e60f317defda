"""Retention, its paired 95% interval, verdicts, and every bootstrap behind them.

retention = 100 · score(technique) / score(float baseline), on the same task,
split, evaluator settings and seeds. All intervals here come from one paired
percentile bootstrap over mteb's own per-item predictions (`paired_bootstrap`):
each resample draws the task's items once and scores *every* prediction set on
that same draw, so a retention (technique vs float), a cost against a float
control, and a regression gate's difference of two runs' retentions (four
prediction sets) all share their resampled items.

- STS: resample test pairs; score = Spearman of predicted similarity vs gold.
- Classification: resample test items and mteb's experiments (two-way);
  score = mean accuracy over experiments.
- Retrieval: resample test queries; score = mean per-query nDCG@10.

Resamples are drawn in rounds until the Monte Carlo standard error of every
requested percentile is at most `MC_TARGET` points (endpoints stable to 0.01), or
the task type's cap in `MAX_RESAMPLES` is reached; the error is reported beside the
interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_METHODS = {
    "STS": "paired bootstrap over test pairs (Spearman)",
    "Classification": "paired two-way bootstrap over test items and mteb experiments (accuracy)",
    "Retrieval": "paired bootstrap over test queries (nDCG@10)",
}
MC_TARGET = 0.005  # percentile Monte Carlo standard error target, in points
# resample caps per task type, by cost: a retrieval resample is a mean, an STS one ranks
MAX_RESAMPLES = {"STS": 64_000, "Classification": 128_000, "Retrieval": 512_000}
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


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b × n) multiplicities of n items drawn with replacement, b times."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


class _Ranker:
    """Average ranks of one fixed vector inside weighted resamples, in O(n) each.

    A resample that holds item i w_i times ranks it, with scipy's average method,
    at (weight of strictly smaller values) + (weight of its tie group + 1) / 2:
    duplicates of an item, and items of equal value, are ties.
    """

    def __init__(self, values: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        v = values[self.order]
        self.starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        self.group = np.cumsum(np.r_[True, v[1:] != v[:-1]]) - 1  # per sorted position
        self.inverse = np.empty_like(self.order)
        self.inverse[self.order] = np.arange(len(values))

    def centred_ranks(self, W: np.ndarray) -> np.ndarray:
        n = W.shape[1]
        tot = W[:, self.order]
        if len(self.starts) < n:  # ties: sum each tie group's weight
            tot = np.add.reduceat(tot, self.starts, axis=1)
        rank = np.cumsum(tot, axis=1) - tot + (tot + 1.0) / 2.0
        if len(self.starts) < n:
            rank = rank[:, self.group]
        return rank[:, self.inverse] - (n + 1.0) / 2.0


def _weighted_spearman(Wrg: np.ndarray, rg: np.ndarray, W: np.ndarray, rp: np.ndarray):
    """Spearman of each weighted resample; `Wrg` = W · gold ranks (shared by all sets)."""
    num = (Wrg * rp).sum(axis=1)
    den = np.sqrt((Wrg * rg).sum(axis=1) * (W * rp * rp).sum(axis=1))
    return num / den


class Items:
    """One task's evaluation items and a way to score prediction sets on resamples of them.

    `kind` is the task type; `gold` is the STS gold scores or the classification
    labels (unused for retrieval, whose predictions are per-query scores already).
    Each prediction set is what `EvalRecord.predictions` holds: STS similarities (n),
    classification labels (experiments × n), retrieval {query id: nDCG@10}.
    """

    def __init__(self, kind: str, gold: Sequence[Any] | None):
        if kind not in BOOTSTRAP_METHODS:
            raise ValueError(f"no bootstrap for task type {kind!r}")
        self.kind = kind
        self.gold = None if gold is None else np.asarray(gold)
        self.qids: list[str] | None = None
        if kind == "STS":
            self._gold_ranker = _Ranker(self.gold.astype(np.float64))

    def matrix(self, preds: Any) -> np.ndarray:
        """A prediction set as the array the resampler scores (per item, per experiment)."""
        if self.kind == "Retrieval":
            if self.qids is None:
                self.qids = sorted(preds)
            if set(preds) != set(self.qids):
                raise ValueError("prediction sets cover different queries")
            return np.array([preds[q] for q in self.qids], dtype=np.float64)
        if self.kind == "STS":
            return np.asarray(preds, dtype=np.float64)
        return (np.asarray(preds) == self.gold).astype(np.float64)  # correct: exp × item

    def point(self, preds: Any) -> float:
        """The score of one prediction set on all items (mteb's main score, unrounded)."""
        m = self.matrix(preds)
        if self.kind == "STS":
            from scipy.stats import spearmanr

            return float(spearmanr(self.gold, m)[0])
        return float(m.mean())

    def prepare(self, preds: list[Any]) -> list[Any]:
        """Prediction sets in the form `scores` resamples (STS: their rank structure)."""
        mats = [self.matrix(p) for p in preds]
        return [_Ranker(m) for m in mats] if self.kind == "STS" else mats

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        """(b × len(mats)) scores of each prepared prediction set on the same b resamples."""
        n = len(mats[0].order) if self.kind == "STS" else mats[0].shape[-1]
        W = _counts(rng, b, n)
        if self.kind == "Retrieval":
            return np.stack([W @ m for m in mats], axis=1) / n
        if self.kind == "Classification":
            n_exp = mats[0].shape[0]
            E = _counts(rng, b, n_exp)
            return np.stack([np.einsum("be,eb->b", E, m @ W.T) for m in mats], axis=1) / (n * n_exp)
        rg = self._gold_ranker.centred_ranks(W)
        Wrg = W * rg
        return np.stack([_weighted_spearman(Wrg, rg, W, r.centred_ranks(W)) for r in mats], axis=1)


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
    items: Items,
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
    max_resamples = max_resamples or MAX_RESAMPLES[items.kind]
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
    items: Items,
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


def chance_level(kind: str, gold: Sequence[Any] | None) -> float | None:
    """Accuracy of always answering the test set's most frequent label (classification)."""
    if kind != "Classification" or gold is None:
        return None
    _, counts = np.unique(np.asarray(gold), return_counts=True)
    return float(counts.max() / counts.sum())


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
