"""Classification: a logistic regression per mteb experiment; main score mean accuracy.

Resampled items: test items and mteb's experiments (a two-way bootstrap): a resample
draws n test items and the experiments (training samples) with replacement; its
score is the mean accuracy over both draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.stats import Resampler, counts
from embedbench.tasks import mteb_compat
from embedbench.tasks.base import Kind, LoadedTask, Unit


class AccuracyResampler(Resampler):
    """Predictions: the predicted label of each test item, per experiment (exp × n)."""

    method = "paired two-way bootstrap over test items and mteb experiments (accuracy)"
    max_resamples = 128_000

    def matrix(self, preds: Any) -> np.ndarray:
        p = np.asarray(preds)
        if p.ndim != 2 or p.shape[1] != len(self.gold):
            raise ValueError("prediction set is not experiments × test items")
        return (p == self.gold).astype(np.float64)  # correct: exp × item

    def point(self, preds: Any) -> float:
        return float(self.matrix(preds).mean())

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        n_exp, n = mats[0].shape
        W = counts(rng, b, n)
        E = counts(rng, b, n_exp)
        return np.stack([np.einsum("be,eb->b", E, m @ W.T) for m in mats], axis=1) / (n * n_exp)


class Classification(Kind):
    purpose = "classification"
    item = "test items × mteb experiments"
    calibration_default = "its train split (texts the classifier is not tested on)"
    main_scores = ("accuracy",)

    def text_columns(self, task: Any) -> list[str]:
        return [task.input_column_name]

    def file_columns(self, task: Any) -> dict[str, str]:
        return {task.input_column_name: "text", task.label_column_name: "label"}

    def prepare(self, task: Any, evaluation: Any) -> None:
        if evaluation.n_experiments is not None:
            task.n_experiments = evaluation.n_experiments
        if evaluation.samples_per_label is not None:
            task.samples_per_label = evaluation.samples_per_label

    def needed_texts(self, lt: LoadedTask) -> dict[Any, list[str]]:
        """The evaluated items plus the training rows mteb's experiments will draw."""
        texts = super().needed_texts(lt)[self.purpose]
        task = lt.task
        for subset in lt.subsets:
            train = lt.dataset(subset, task.train_split)
            rows = mteb_compat.undersampled_rows(task, train)
            column = train[task.input_column_name]
            texts += [column[i] for i in (range(len(train)) if rows is None else rows)]
        return {self.purpose: list(dict.fromkeys(texts))}

    def eval_texts(self, lt: LoadedTask) -> list[str]:
        return [t for u in lt.units for t in self.split_texts(lt.task, lt.dataset(*u))]

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        return list(lt.dataset(*unit)[lt.task.label_column_name])

    def resampler(self, gold: Any) -> Resampler:
        return AccuracyResampler(gold)

    def chance(self, gold: Any) -> float | None:
        """Accuracy of always answering the test set's most frequent label."""
        _, n = np.unique(np.asarray(gold), return_counts=True)
        return float(n.max() / n.sum())
