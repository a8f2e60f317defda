"""The paired bootstrap behind every interval and gate, verdicts, chance correction, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from embedbench import stats


def _expand(W_row: np.ndarray) -> np.ndarray:
    """The item indices a row of multiplicities stands for."""
    return np.repeat(np.arange(len(W_row)), W_row.astype(int))


def test_sts_resample_scores_equal_scipy_on_the_explicit_resample():
    rng = np.random.default_rng(0)
    gold = np.round(rng.uniform(0, 5, 200) * 5) / 5  # ties, as STS gold scores have
    f = gold + rng.normal(0, 1, 200)
    t = np.round(f, 1)  # ties in a prediction too
    items = stats.Items("STS", gold)
    mats = items.prepare([f, t])
    scores = items.scores(mats, np.random.default_rng(5), 20)
    W = stats._counts(np.random.default_rng(5), 20, 200)  # the same draws
    for b in range(20):
        idx = _expand(W[b])
        assert scores[b, 0] == pytest.approx(spearmanr(gold[idx], f[idx])[0], abs=1e-12)
        assert scores[b, 1] == pytest.approx(spearmanr(gold[idx], t[idx])[0], abs=1e-12)


def test_classification_resample_is_two_way_and_exact():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    preds = np.where(rng.random((4, 300)) < 0.7, y, (y + 1) % 5)
    items = stats.Items("Classification", y)
    assert items.point(preds) == pytest.approx((preds == y).mean())
    scores = items.scores(items.prepare([preds]), np.random.default_rng(3), 10)
    r = np.random.default_rng(3)
    W, E = stats._counts(r, 10, 300), stats._counts(r, 10, 4)
    correct = (preds == y).astype(float)
    for b in range(10):
        want = (E[b][:, None] * correct * W[b][None, :]).sum() / (300 * 4)
        assert scores[b, 0] == pytest.approx(want)


def test_retrieval_interval_identity_scaling_and_noise():
    rng = np.random.default_rng(0)
    f = {str(i): float(v) for i, v in enumerate(rng.uniform(0.2, 1, 300))}
    items = stats.Items("Retrieval", None)
    same = stats.retention_interval(items, f, f, 500, 1)
    assert same.values == (100.0, 100.0) and same.mc_error == 0.0
    scaled = stats.retention_interval(items, f, {q: v * 0.9 for q, v in f.items()}, 500, 1)
    assert scaled.values == pytest.approx((90.0, 90.0))
    noisy = {q: max(0.0, v * 0.9 + rng.normal(0, 0.2)) for q, v in f.items()}
    b = stats.retention_interval(items, f, noisy, 1000, 7)
    point = 100 * sum(noisy.values()) / sum(f.values())
    assert b.values[0] < point < b.values[1] and b.values[1] - b.values[0] < 15
    assert b == stats.retention_interval(items, f, noisy, 1000, 7)  # deterministic
    with pytest.raises(ValueError, match="different queries"):
        stats.retention_interval(items, f, {"x": 1.0}, 100, 0)


def test_endpoints_are_stable_to_the_monte_carlo_target():
    """More resamples are drawn until the endpoints' MC error is at most 0.005 points;
    two different bootstrap seeds then agree to about 0.01 points."""
    rng = np.random.default_rng(2)
    f = {str(i): float(v) for i, v in enumerate(rng.uniform(0.5, 1, 300))}
    t = {q: min(1.0, v + rng.normal(0, 0.02)) for q, v in f.items()}
    items = stats.Items("Retrieval", None)
    a = stats.retention_interval(items, f, t, 1000, 1)
    b = stats.retention_interval(items, f, t, 1000, 2)
    assert a.resamples > 1000 and a.mc_error <= stats.MC_TARGET
    assert np.allclose(a.values, b.values, atol=0.02)


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [
        (97.93, 99.19, "loss"),
        (99.2, 99.8, "loss"),  # excludes 100, even inside the margin
        (100.1, 101.0, "gain"),
        (99.96, 100.0, "equivalent"),
        (99.26, 100.24, "equivalent"),
        (98.17, 102.47, "inconclusive"),  # SciFact 2bit: covers 100, admits a 2% loss
        (99.5, 100.6, "equivalent"),
    ],
)
def test_verdicts(lo, hi, want):
    assert stats.verdict(lo, hi, 1.0) == want


def test_verdict_margin_is_configurable():
    assert stats.verdict(98.17, 102.47, 3.0) == "equivalent"


def test_chance_corrected_retention():
    gold = [0, 0, 1, 2]  # majority class is half of the items
    chance = stats.chance_level("Classification", gold)
    assert chance == 0.5
    assert stats.chance_corrected(0.7, 0.9, chance) == pytest.approx(50.0)
    assert stats.chance_level("STS", [1.0, 2.0]) is None
    assert stats.chance_corrected(0.7, 0.9, None) is None


def test_seed_spread():
    s = stats.seed_spread([97.0, 97.7, 97.2])
    assert (s.n, s.low, s.high) == (3, 97.0, 97.7)
    assert s.sd == pytest.approx(np.std([97.0, 97.7, 97.2], ddof=1))
