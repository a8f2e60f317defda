"""Clustering: mini-batch k-means on bootstrap sets of a split; main score mean v_measure.

mteb clusters `n_clusters` sets of documents drawn with replacement (from the task's
seeded generator) and averages their v-measures; the draws are replayed
(`mteb_compat.clustering_draws`) and stored with the gold labels, so every prediction
set of a task shares them. Resampled item: one of mteb's clustering sets. Each set is
itself a bootstrap sample of the documents, clustered afresh, so the spread of the
sets' v-measures already holds the document sampling and the k-means noise; a
resample's score is the mean v-measure of the sets it holds (the same sets, i.e. the
same documents, for every prediction set). Resampling documents instead would bias
v-measure upward (a plug-in mutual information grows with duplicated documents), most
for poor clusterings: an interval could then miss its own point estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.errors import UserError
from embedbench.stats import Resampler, counts
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
    h_ck = _entropy(C.reshape(b, -1)) - h_k  # H(C|K) = H(C,K) - H(K)
    h_kc = _entropy(C.reshape(b, -1)) - h_c
    with np.errstate(invalid="ignore", divide="ignore"):
        hom = np.where(h_c > 0, 1.0 - h_ck / h_c, 1.0)
        com = np.where(h_k > 0, 1.0 - h_kc / h_k, 1.0)
        v = np.where(hom + com > 0, 2.0 * hom * com / (hom + com), 0.0)
    return v


class VMeasureResampler(Resampler):
    """Predictions: the cluster of each position of each set (sets × positions); gold:
    the documents' labels and the documents of each set."""

    method = "paired bootstrap over mteb's clustering sets (v-measure)"
    max_resamples = 64_000

    def __init__(self, gold: Any):
        self.labels = np.unique(np.asarray(gold["labels"]), return_inverse=True)[1]
        self.sets = np.asarray(gold["sets"], dtype=np.int64)

    def matrix(self, preds: Any) -> np.ndarray:
        m = np.asarray(preds, dtype=np.int64)
        if m.shape != self.sets.shape:
            raise ValueError("prediction set does not match the clustering sets")
        return m

    def set_scores(self, preds: Any) -> np.ndarray:
        """The v-measure of each clustering set (sklearn's, from its contingency table)."""
        m = self.matrix(preds)
        out = []
        for docs, assigned in zip(self.sets, m, strict=True):
            truth = self.labels[docs]
            clusters = np.unique(assigned, return_inverse=True)[1]
            C = np.zeros((truth.max() + 1, clusters.max() + 1))
            np.add.at(C, (truth, clusters), 1.0)
            out.append(v_measure(C[None])[0])
        return np.asarray(out)

    def prepare(self, preds: list[Any]) -> list[Any]:
        return [self.set_scores(p) for p in preds]

    def point(self, preds: Any) -> float:
        return float(self.set_scores(preds).mean())

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        E = counts(rng, b, len(self.sets))
        return np.stack([E @ v for v in mats], axis=1) / len(self.sets)


class Clustering(Kind):
    type = "Clustering"
    purpose = "clustering"
    item = "mteb's clustering sets (bootstrap samples of the documents)"
    calibration_default = "another split of the task, if it has one (none: name a source)"
    main_scores = ("v_measure",)

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
