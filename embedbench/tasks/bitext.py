"""BitextMining: find each sentence's translation among all sentences of the other
language; main score f1 (sklearn's support-weighted F1 of the predicted index).

Resampled item: a source sentence with its nearest neighbour (the neighbours are fixed,
as a retrieval ranking is). A resample's F1 is sklearn's on the sentences it holds with
their multiplicities: per gold target, 2·TP / (2·TP + FP + FN) weighted by support.
That resampled F1 is biased: a false positive only counts when its target sentence is
drawn, so the resamples' F1 sits above the estimate by an amount that depends on how
a code's mistakes pile up on a few "hub" targets. The interval is therefore centred
on the estimate (`centred`: the bootstrap's spread, not its bias), as clustering's is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.stats import Resampler, counts, shaped
from embedbench.tasks import mteb_compat
from embedbench.tasks.base import NAMED_SOURCE, Kind, LoadedTask, Unit


class WeightedF1Resampler(Resampler):
    """Predictions: the predicted target index of each source sentence; gold: the true one."""

    method = "paired bootstrap over source sentences (weighted F1), centred on the estimate"
    max_resamples = 64_000
    centred = True

    def __init__(self, gold: Any):
        self.gold = np.asarray(gold, dtype=np.int64)
        self.classes, self.true = np.unique(self.gold, return_inverse=True)

    def matrix(self, preds: Any) -> np.ndarray:
        return shaped(preds, np.int64, self.gold.shape)

    def prepare(self, preds: list[Any]) -> list[Any]:
        """Per prediction set: sparse item → class maps of its hits and of its predictions."""
        from scipy.sparse import csr_matrix

        n, c = len(self.gold), len(self.classes)
        out = []
        for p in preds:
            m = self.matrix(p)
            pos = np.searchsorted(self.classes, m)
            known = (pos < c) & (self.classes[np.minimum(pos, c - 1)] == m)
            rows = np.flatnonzero(known)
            hit = rows[pos[rows] == self.true[rows]]
            P = csr_matrix((np.ones(len(rows)), (rows, pos[rows])), shape=(n, c))
            H = csr_matrix((np.ones(len(hit)), (hit, self.true[hit])), shape=(n, c))
            out.append((H, P))
        return out

    def _f1(self, H: Any, P: Any, W: np.ndarray, support: np.ndarray) -> np.ndarray:
        tp = (H.T @ W.T).T
        fp = (P.T @ W.T).T - tp
        fn = support - tp
        den = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(den > 0, 2 * tp / den, 0.0)
        return (support * f1).sum(axis=1) / support.sum(axis=1)

    def _support(self, W: np.ndarray) -> np.ndarray:
        """Weight of each gold class under item weights W (b × classes)."""
        if not hasattr(self, "_truth"):  # the item → gold class map, built once
            from scipy.sparse import csr_matrix

            n, c = len(self.gold), len(self.classes)
            self._truth = csr_matrix((np.ones(n), (np.arange(n), self.true)), shape=(n, c))
        return (self._truth.T @ W.T).T

    def point(self, preds: Any) -> float:
        ((H, P),) = self.prepare([preds])
        W = np.ones((1, len(self.gold)))
        return float(self._f1(H, P, W, self._support(W))[0])

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        W = counts(rng, b, len(self.gold))
        support = self._support(W)
        return np.stack([self._f1(H, P, W, support) for H, P in mats], axis=1)


class BitextMining(Kind):
    item = "source sentences"
    calibration_default = NAMED_SOURCE
    main_scores = ("f1",)

    def text_columns(self, task: Any) -> list[str]:
        return mteb_compat.bitext_columns(task)

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        ds = lt.dataset(*unit)
        if "gold" in ds.column_names:
            return [int(g[1]) for g in ds["gold"]]
        return list(range(len(ds)))

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        (pair,) = raw.values()  # one default pair ("sentence1-sentence2") per subset
        return [int(x["corpus_id"]) for x in pair]

    def resampler(self, gold: Any) -> Resampler:
        return WeightedF1Resampler(gold)
