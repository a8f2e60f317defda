"""MultilabelClassification: a k-NN classifier per mteb experiment predicts each test
item's label set; main score accuracy (exact match of the whole set), mean over
experiments.

Resampled items, two-way like classification: test items and mteb's experiments; an
item counts as correct in an experiment when its predicted label set equals the gold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.providers.base import Purpose
from embedbench.stats import Resampler
from embedbench.tasks import mteb_compat
from embedbench.tasks.base import Kind, LoadedTask, Unit
from embedbench.tasks.classification import AccuracyResampler, Classification


class ExactMatchResampler(AccuracyResampler):
    """Predictions: experiments × items × labels (0/1); gold: items × labels."""

    method = "paired two-way bootstrap over test items and mteb experiments (exact-match accuracy)"

    def matrix(self, preds: Any) -> np.ndarray:
        p = np.asarray(preds)
        if p.ndim != 3 or p.shape[1:] != self.gold.shape:
            raise ValueError("prediction set is not experiments × test items × labels")
        return (p == self.gold[None]).all(axis=2).astype(np.float64)


class MultilabelClassification(Classification):
    def file_columns(self, task: Any) -> dict[str, str]:
        return {task.input_column_name: "text", task.label_column_name: "labels"}

    def needed_texts(self, lt: LoadedTask) -> dict[Purpose, list[str]]:
        """The evaluated items (mteb's training draws are fetched when it asks)."""
        return Kind.needed_texts(self, lt)

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        """The label sets of the items mteb scores, binarised as mteb does (columns: the
        test split's sorted labels)."""
        from sklearn.preprocessing import MultiLabelBinarizer

        ds = mteb_compat.multilabel_eval_split(lt.task, lt.dataset(*unit), unit[1])
        return MultiLabelBinarizer().fit_transform(ds[lt.task.label_column_name]).tolist()

    def resampler(self, gold: Any) -> Resampler:
        return ExactMatchResampler(gold)

    def chance(self, gold: Any) -> float | None:
        return None
