"""Summarization: how well machine summaries' similarity to the human summaries ranks
them as human raters do; main score the mean over texts of a per-text Spearman
(cosine_spearman: the best cosine of a machine summary to any human summary).

mteb skips a text whose human scores, or whose predicted scores, are all equal, and
averages over the rest; a prediction set is read back as one Spearman per text (None
where mteb skipped it). Resampled item: a source text; a resample's score is the mean
over the texts it holds that mteb kept, exactly as mteb averages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedbench.errors import EmbedbenchError
from embedbench.stats import Resampler, counts
from embedbench.tasks.base import NAMED_SOURCE, Kind, LoadedTask, Unit

# mteb's main score -> the predicted scores it correlates with the human ones
PREDICTIONS = {
    "cosine_spearman": "cosine_scores",
    "dot_spearman": "dot_scores",
    "spearman": "similarity_scores",
}


class TextMeanResampler(Resampler):
    """Predictions: a Spearman per source text, None where mteb skipped the text."""

    method = "paired bootstrap over source texts (mean per-text Spearman)"
    max_resamples = 512_000

    def __init__(self, gold: Any = None):
        pass

    def matrix(self, preds: Any) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in preds], dtype=np.float64)

    def point(self, preds: Any) -> float:
        return float(np.nanmean(self.matrix(preds)))

    def prepare(self, preds: list[Any]) -> list[Any]:
        out = []
        for p in preds:
            m = self.matrix(p)
            kept = ~np.isnan(m)
            out.append((np.where(kept, m, 0.0), kept.astype(np.float64)))
        return out

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        W = counts(rng, b, len(mats[0][0]))
        return np.stack([(W @ v) / (W @ k) for v, k in mats], axis=1)


class Summarization(Kind):
    item = "source texts"
    calibration_default = NAMED_SOURCE
    main_scores = tuple(PREDICTIONS)

    def text_columns(self, task: Any) -> list[str]:
        return [task.human_summaries_column_name, task.machine_summaries_column_name]

    def split_texts(self, task: Any, ds: Any) -> list[str]:
        """Every summary, human then machine, row by row (each cell holds a list)."""
        return [t for col in self.text_columns(task) for row in ds[col] for t in row]

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        """Each text's human scores, normalised to [0, 1] as mteb normalises them."""
        task = lt.task
        lo, hi = task.min_score, task.max_score
        return [
            ((np.asarray(x, dtype=np.float64) - lo) / (hi - lo)).tolist()
            for x in lt.dataset(*unit)[task.relevancy_column_name]
        ]

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        """One Spearman per text, aligned with the rows mteb kept (by their human
        scores, in order); None for a text mteb skipped."""
        from scipy.stats import spearmanr

        preds = raw[PREDICTIONS[lt.task.metadata.main_score]]
        humans = raw["human_scores"]
        gold = self.gold(lt, unit)
        if len(humans) < len(gold) and any(a == b for a, b in zip(gold, gold[1:], strict=False)):
            raise EmbedbenchError(  # which of two equal rows mteb skipped is not knowable
                f"{lt.name} {unit[0]}/{unit[1]}: mteb skipped texts and two neighbouring "
                "texts have the same human scores; cannot align its predictions"
            )
        out: list[float | None] = []
        j = 0
        for human in gold:
            if j < len(humans) and np.allclose(humans[j], human, rtol=0, atol=1e-12):
                out.append(float(spearmanr(humans[j], preds[j]).statistic))
                j += 1
            else:
                out.append(None)
        if j != len(humans):
            raise EmbedbenchError(f"{lt.name}: mteb's kept texts do not align with the data")
        return out

    def resampler(self, gold: Any) -> Resampler:
        return TextMeanResampler(gold)
