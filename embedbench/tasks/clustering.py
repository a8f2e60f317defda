"""Clustering: mini-batch k-means on bootstrap sets of a split; main score mean v_measure.

mteb clusters `n_clusters` sets of documents drawn with replacement (from the task's
seeded generator) and averages their v-measures; the draws are replayed
(`mteb_compat.clustering_draws`) and stored with the gold labels, so every prediction
set of a task shares them.

Resampled items, two-way: the split's documents (a resample weighs every position of
every set by how often its document is drawn, the same weights for all sets and all
prediction sets) and mteb's sets (the k-means noise). The sets alone would not do:
each holds about 16 copies of every document of a 992-document split, so their spread
is k-means noise, not test-set sampling (a simulation gave ±0.26 points where the
spread over fresh test sets is about ±4). Document resampling inflates a plug-in
v-measure (duplicates add apparent agreement), most for poor clusterings, which moves
the whole bootstrap distribution away from the estimate: the interval is therefore
centred on the estimate (`centred`: the bootstrap's spread, not its bias).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.errors import UserError
from embedbench.stats import Resampler, counts, shaped
from embedbench.tasks import mteb_compat
from embedbench.tasks.base import Kind, LoadedTask, Unit, unit_key


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the rows of `p` (b × m counts)."""
    tot = p.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(p > 0, p / tot, 1.0)
    return -(np.where(p > 0, p / tot, 0.0) * np.log(q)).sum(axis=1)


def v_measure(C: np.ndarray) -> np.ndarray:
    """sklearn's v_measure_score of each contingency table C (b × classes × clusters)."""
    b = C.shape[0]
    h_c = _entropy(C.sum(axis=2))
    h_k = _entropy(C.sum(axis=1))
    h_joint = _entropy(C.reshape(b, -1))
    h_ck, h_kc = h_joint - h_k, h_joint - h_c  # H(C|K) = H(C,K) - H(K), and H(K|C)
    with np.errstate(invalid="ignore", divide="ignore"):
        hom = np.where(h_c > 0, 1.0 - h_ck / h_c, 1.0)
        com = np.where(h_k > 0, 1.0 - h_kc / h_k, 1.0)
        v = np.where(hom + com > 0, 2.0 * hom * com / (hom + com), 0.0)
    return v


class VMeasureResampler(Resampler):
    """Predictions: the cluster of each position of each set (sets × positions); gold:
    the documents' labels and the documents of each set."""

    method = (
        "paired two-way bootstrap over documents and mteb's clustering sets (v-measure), "
        "centred on the estimate"
    )
    max_resamples = 16_000
    centred = True

    def __init__(self, gold: Any):
        self.labels = np.unique(np.asarray(gold["labels"]), return_inverse=True)[1]
        self.sets = np.asarray(gold["sets"], dtype=np.int64)
        self.n_docs = len(self.labels)

    def matrix(self, preds: Any) -> np.ndarray:
        mismatch = "prediction set does not match the clustering sets"
        return shaped(preds, np.int64, self.sets.shape, mismatch)

    def prepare(self, preds: list[Any]) -> list[Any]:
        """Per prediction set and clustering set: a sparse (documents × label·cluster)
        count of positions, and the table's shape."""
        from scipy.sparse import csr_matrix

        out = []
        n_labels = int(self.labels.max()) + 1
        for p in preds:
            m = self.matrix(p)
            per_set = []
            for docs, assigned in zip(self.sets, m, strict=True):
                clusters = np.unique(assigned, return_inverse=True)[1]
                k = int(clusters.max()) + 1
                cols = self.labels[docs] * k + clusters
                M = csr_matrix(
                    (np.ones(len(docs)), (docs, cols)), shape=(self.n_docs, n_labels * k)
                )
                per_set.append((M, n_labels, k))
            out.append(per_set)
        return out

    def _v(self, per_set: list[Any], W: np.ndarray) -> np.ndarray:
        """(b × sets) v-measures under document weights W (b × documents)."""
        return np.stack(
            [v_measure((M.T @ W.T).T.reshape(len(W), L, k)) for M, L, k in per_set], axis=1
        )

    def point(self, preds: Any) -> float:
        (per_set,) = self.prepare([preds])
        return float(self._v(per_set, np.ones((1, self.n_docs))).mean())

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        W = counts(rng, b, self.n_docs)
        E = counts(rng, b, len(self.sets))
        return np.stack([(self._v(m, W) * E).sum(axis=1) / len(self.sets) for m in mats], axis=1)


class Clustering(Kind):
    purpose = "clustering"
    item = "documents × mteb's clustering sets (centred on the estimate)"
    calibration_default = "another split of the task, if it has one (none: name a source)"
    main_scores = ("v_measure",)
    other_split_calibration = True

    def text_columns(self, task: Any) -> list[str]:
        return [task.input_column_name]

    def file_columns(self, task: Any) -> dict[str, str]:
        return {task.input_column_name: "text", task.label_column_name: "label"}

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        draws = self._draws(lt)[unit_key(unit)]
        labels = list(lt.dataset(*unit)[lt.task.label_column_name])
        if any(isinstance(v, list) for v in labels):
            raise UserError(f"task {lt.name}: hierarchical cluster labels are not supported")
        return {"labels": labels, "sets": draws["sets"]}

    def _draws(self, lt: LoadedTask) -> dict[str, Any]:
        """mteb's draws of every unit, replayed once in evaluation order."""
        if "clustering_draws" not in lt.memo:
            sizes = [(unit_key(u), len(lt.dataset(*u))) for u in lt.units]
            lt.memo["clustering_draws"] = mteb_compat.clustering_draws(lt.task, sizes)
        return lt.memo["clustering_draws"]

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        levels = list(raw)
        if levels != ["Level 0"]:
            raise UserError(
                f"task {lt.name}: hierarchical clustering levels {levels} not supported"
            )
        return raw["Level 0"]

    def resampler(self, gold: Any) -> Resampler:
        return VMeasureResampler(gold)
