"""STS: sentence pairs scored by similarity; main score Spearman against gold scores.

Resampled item: a test pair. A resample's score is the Spearman correlation of the
pairs it holds (with their multiplicities), computed from weighted average ranks in
O(n) per prediction set (`Ranker`), equal to scipy's on the expanded resample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.stats import Resampler, counts, shaped
from embedbench.tasks.base import Kind, LoadedTask, Unit


class Ranker:
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


class SpearmanResampler(Resampler):
    """Predictions: the predicted similarity of each pair; gold: the gold scores."""

    method = "paired bootstrap over test pairs (Spearman)"
    max_resamples = 64_000  # each resample ranks

    def __init__(self, gold: Any):
        self.gold = np.asarray(gold, dtype=np.float64)
        self._gold_ranker = Ranker(self.gold)

    def matrix(self, preds: Any) -> np.ndarray:
        return shaped(preds, np.float64, self.gold.shape)

    def point(self, preds: Any) -> float:
        from scipy.stats import spearmanr

        return float(spearmanr(self.gold, self.matrix(preds))[0])

    def prepare(self, preds: list[Any]) -> list[Any]:
        return [Ranker(self.matrix(p)) for p in preds]

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        W = counts(rng, b, len(self.gold))
        rg = self._gold_ranker.centred_ranks(W)
        Wrg = W * rg
        return np.stack([_weighted_spearman(Wrg, rg, W, r.centred_ranks(W)) for r in mats], axis=1)


class STS(Kind):
    item = "test pairs"
    main_scores = ("cosine_spearman", "spearman")

    def text_columns(self, task: Any) -> list[str]:
        return list(task.column_names)

    def file_columns(self, task: Any) -> dict[str, str]:
        return {**{c: "text" for c in task.column_names}, "score": "number"}

    def prepare(self, task: Any, evaluation: Any) -> None:
        # mteb's STS main score is cosine on what encode returns; "spearman" follows the
        # encoder's own similarity, i.e. the technique's (the same value for float vectors).
        task.metadata = task.metadata.model_copy(update={"main_score": "spearman"})

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        return list(lt.dataset(*unit)["score"])

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        return raw["similarity_scores"]

    def resampler(self, gold: Any) -> Resampler:
        return SpearmanResampler(gold)
