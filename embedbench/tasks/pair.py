"""PairClassification: is a sentence pair a positive pair? main score max_ap, the best
average precision over mteb's five pair scores (model similarity, cosine, dot product,
and Manhattan / Euclidean distance).

Resampled item: a test pair. A resample's score recomputes each average precision on
the pairs it holds (with multiplicities: sklearn's sample-weighted AP, in O(n) per
resample from one fixed sort) and takes the best, as mteb does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.stats import GOLD_LENGTH, Resampler, counts
from embedbench.tasks.base import Kind, LoadedTask, Unit

# mteb's pair scores and whether a higher value means "more alike"
SCORES = (
    ("similarity_scores", True),
    ("cosine_scores", True),
    ("manhattan_distances", False),
    ("euclidean_distances", False),
    ("dot_scores", True),
)


class _SortedAP:
    """Average precision of one fixed score vector under item weights (b × n)."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray):
        self.order = np.argsort(-scores, kind="stable")
        s = scores[self.order]
        self.ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last of each tie
        self.y = labels[self.order].astype(np.float64)

    def ap(self, W: np.ndarray) -> np.ndarray:
        w = W[:, self.order]
        tps = np.cumsum(w * self.y, axis=1)[:, self.ends]
        fps = np.cumsum(w * (1.0 - self.y), axis=1)[:, self.ends]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            recall = tps / tps[:, -1:]
        delta = np.diff(recall, axis=1, prepend=0.0)
        return (delta * precision).sum(axis=1)


class MaxAPResampler(Resampler):
    """Predictions: mteb's five score lists of the pairs; gold: the 0/1 labels."""

    method = "paired bootstrap over test pairs (max average precision)"
    max_resamples = 32_000

    def matrix(self, preds: Any) -> np.ndarray:
        m = np.array([np.asarray(preds[k], dtype=np.float64) for k, _ in SCORES])
        if m.shape[1] != len(self.gold):
            raise ValueError(GOLD_LENGTH)
        return m

    def prepare(self, preds: list[Any]) -> list[Any]:
        out = []
        for p in preds:
            m = self.matrix(p)
            out.append(
                [_SortedAP(m[i] if up else -m[i], self.gold) for i, (_, up) in enumerate(SCORES)]
            )
        return out

    def point(self, preds: Any) -> float:
        (aps,) = self.prepare([preds])
        W = np.ones((1, len(self.gold)))
        return float(max(a.ap(W)[0] for a in aps))

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        W = counts(rng, b, len(self.gold))
        return np.stack([np.max([a.ap(W) for a in aps], axis=0) for aps in mats], axis=1)


class PairClassification(Kind):
    item = "test pairs"
    main_scores = ("max_ap",)

    def text_columns(self, task: Any) -> list[str]:
        return [task.input1_column_name, task.input2_column_name]

    def file_columns(self, task: Any) -> dict[str, str]:
        return {**{c: "text" for c in self.text_columns(task)}, task.label_column_name: "label"}

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        return [int(v) for v in lt.dataset(*unit)[lt.task.label_column_name]]

    def resampler(self, gold: Any) -> Resampler:
        return MaxAPResampler(gold)

    def chance(self, gold: Any) -> float | None:
        """The average precision of a random ranking: the share of positive pairs."""
        return float(np.mean(np.asarray(gold) == 1))
