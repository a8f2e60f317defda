"""Retention and its paired 95% interval.

retention = 100 · score(technique) / score(float baseline), on the same task,
split, evaluator settings and seeds. The interval is a paired percentile
bootstrap on mteb's own per-item predictions: the same resampled items (and,
for classification, the same resampled experiments) score both sides.

- STS: resample test pairs; score = Spearman of predicted similarity vs gold.
- Classification: resample test items and mteb's experiments (two-way);
  score = mean accuracy over experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

BOOTSTRAP_METHODS = {
    "STS": "paired bootstrap over test pairs (Spearman)",
    "Classification": "paired two-way bootstrap over test items and mteb experiments (accuracy)",
    "Retrieval": "paired bootstrap over test queries (nDCG@10)",
}


@dataclass(frozen=True)
class Retention:
    retention: float  # percent
    ci_low: float
    ci_high: float
    verdict: str  # "loss", "gain", "no measurable change", "baseline"


def verdict(retention: float, lo: float, hi: float) -> str:
    """'no measurable change' when the interval covers 100, else loss or gain."""
    if lo <= 100.0 <= hi:
        return "no measurable change"
    return "gain" if retention > 100.0 else "loss"


def _row_spearman(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Spearman per row of two (B × n) matrices (average ranks, as scipy)."""
    rg = rankdata(gold, axis=1)
    rp = rankdata(pred, axis=1)
    rg -= rg.mean(axis=1, keepdims=True)
    rp -= rp.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", rg, rp)
    den = np.sqrt(np.einsum("ij,ij->i", rg, rg) * np.einsum("ij,ij->i", rp, rp))
    return num / den


def _interval(ratios: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(100.0 * ratios, [2.5, 97.5])
    return float(lo), float(hi)


def sts_retention(
    gold, pred_float, pred_tech, n_boot: int, seed: int, chunk: int = 200
) -> tuple[float, float]:
    """Paired bootstrap interval (percent) of spearman(tech) / spearman(float)."""
    gold, pf, pt = (np.asarray(a, dtype=np.float64) for a in (gold, pred_float, pred_tech))
    rng = np.random.default_rng(seed)
    ratios = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, len(gold), size=(min(chunk, n_boot - start), len(gold)))
        g = gold[idx]
        ratios.append(_row_spearman(g, pt[idx]) / _row_spearman(g, pf[idx]))
    return _interval(np.concatenate(ratios))


def classification_retention(
    labels, preds_float, preds_tech, n_boot: int, seed: int
) -> tuple[float, float]:
    """Paired two-way bootstrap interval (percent) of accuracy(tech) / accuracy(float).

    `preds_*` are (experiments × items) predicted labels from mteb.
    """
    y = np.asarray(labels)
    cf = (np.asarray(preds_float) == y).astype(np.float64)
    ct = (np.asarray(preds_tech) == y).astype(np.float64)
    n_exp, n = cf.shape
    rng = np.random.default_rng(seed)
    w_items = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    w_exps = rng.multinomial(n_exp, np.full(n_exp, 1.0 / n_exp), size=n_boot).astype(np.float64)
    acc_f = np.einsum("be,en,bn->b", w_exps, cf, w_items)
    acc_t = np.einsum("be,en,bn->b", w_exps, ct, w_items)
    return _interval(acc_t / acc_f)


def retention(score: float, float_score: float, interval: tuple[float, float] | None) -> Retention:
    r = 100.0 * score / float_score
    if interval is None:
        return Retention(r, r, r, "baseline")
    lo, hi = interval
    return Retention(r, lo, hi, verdict(r, lo, hi))
