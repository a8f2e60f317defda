"""The paired bootstrap behind every interval and gate, verdicts, chance correction, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from embedbench import stats
from embedbench.tasks import KINDS, resampler


def _expand(W_row: np.ndarray) -> np.ndarray:
    """The item indices a row of multiplicities stands for."""
    return np.repeat(np.arange(len(W_row)), W_row.astype(int))


def test_sts_resample_scores_equal_scipy_on_the_explicit_resample():
    rng = np.random.default_rng(0)
    gold = np.round(rng.uniform(0, 5, 200) * 5) / 5  # ties, as STS gold scores have
    f = gold + rng.normal(0, 1, 200)
    t = np.round(f, 1)  # ties in a prediction too
    items = resampler("STS", gold)
    mats = items.prepare([f, t])
    scores = items.scores(mats, np.random.default_rng(5), 20)
    W = stats.counts(np.random.default_rng(5), 20, 200)  # the same draws
    for b in range(20):
        idx = _expand(W[b])
        assert scores[b, 0] == pytest.approx(spearmanr(gold[idx], f[idx])[0], abs=1e-12)
        assert scores[b, 1] == pytest.approx(spearmanr(gold[idx], t[idx])[0], abs=1e-12)


def test_classification_resample_is_two_way_and_exact():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    preds = np.where(rng.random((4, 300)) < 0.7, y, (y + 1) % 5)
    items = resampler("Classification", y)
    assert items.point(preds) == pytest.approx((preds == y).mean())
    scores = items.scores(items.prepare([preds]), np.random.default_rng(3), 10)
    r = np.random.default_rng(3)
    W, E = stats.counts(r, 10, 300), stats.counts(r, 10, 4)
    correct = (preds == y).astype(float)
    for b in range(10):
        want = (E[b][:, None] * correct * W[b][None, :]).sum() / (300 * 4)
        assert scores[b, 0] == pytest.approx(want)


def test_retrieval_interval_identity_scaling_and_noise():
    rng = np.random.default_rng(0)
    f = {str(i): float(v) for i, v in enumerate(rng.uniform(0.2, 1, 300))}
    items = resampler("Retrieval", None)
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
    items = resampler("Retrieval", None)
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
    chance = KINDS["Classification"].chance(gold)
    assert chance == 0.5
    assert stats.chance_corrected(0.7, 0.9, chance) == pytest.approx(50.0)
    assert KINDS["STS"].chance([1.0, 2.0]) is None
    assert stats.chance_corrected(0.7, 0.9, None) is None


def test_seed_spread():
    s = stats.seed_spread([97.0, 97.7, 97.2])
    assert (s.n, s.low, s.high) == (3, 97.0, 97.7)
    assert s.sd == pytest.approx(np.std([97.0, 97.7, 97.2], ddof=1))


# ------------------------------------------------------------ the other kinds' resamplers


def _pair_preds(rng, labels):
    sim = labels + rng.normal(0, 0.8, len(labels))
    sim = np.round(sim, 1)  # ties
    return {
        "similarity_scores": sim.tolist(),
        "cosine_scores": (sim * 0.9).tolist(),
        "manhattan_distances": (-sim + rng.normal(0, 0.5, len(labels))).tolist(),
        "euclidean_distances": (-sim).tolist(),
        "dot_scores": rng.normal(0, 1, len(labels)).tolist(),
    }


def _max_ap(labels, preds, idx):
    from sklearn.metrics import average_precision_score

    from embedbench.tasks.pair import SCORES

    return max(
        average_precision_score(labels[idx], np.asarray(preds[k])[idx] * (1 if up else -1))
        for k, up in SCORES
    )


def test_pair_max_ap_resample_equals_sklearn_on_the_explicit_resample():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 150)
    a, b = _pair_preds(rng, labels), _pair_preds(rng, labels)
    items = resampler("PairClassification", labels.tolist())
    assert items.point(a) == pytest.approx(_max_ap(labels, a, np.arange(150)), abs=1e-12)
    scores = items.scores(items.prepare([a, b]), np.random.default_rng(9), 15)
    W = stats.counts(np.random.default_rng(9), 15, 150)
    for r in range(15):
        idx = _expand(W[r])
        assert scores[r, 0] == pytest.approx(_max_ap(labels, a, idx), abs=1e-12)
        assert scores[r, 1] == pytest.approx(_max_ap(labels, b, idx), abs=1e-12)


def test_bitext_weighted_f1_resample_equals_sklearn_on_the_explicit_resample():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(4)
    n = 120
    gold = np.arange(n)
    pred = np.where(rng.random(n) < 0.6, gold, rng.integers(0, n + 5, n))  # some unknown ids
    items = resampler("BitextMining", gold.tolist())
    f1 = f1_score(gold, pred, average="weighted", zero_division=0)
    assert items.point(pred.tolist()) == pytest.approx(f1, abs=1e-12)
    scores = items.scores(items.prepare([pred.tolist()]), np.random.default_rng(2), 10)
    W = stats.counts(np.random.default_rng(2), 10, n)
    for r in range(10):
        idx = _expand(W[r])
        want = f1_score(gold[idx], pred[idx], average="weighted", zero_division=0)
        assert scores[r, 0] == pytest.approx(want, abs=1e-12)


def test_bitext_interval_is_centred_on_the_estimate():
    """Resampled weighted F1 drops the false positives aimed at undrawn targets, so a
    code whose mistakes pile on a few hub targets gains more from resampling than one
    whose mistakes spread out: uncentred, the interval of a 96 % retention lay wholly
    above 97 %. Centred, it holds its own point."""
    n = 4000
    gold = np.arange(n)
    rng = np.random.default_rng(0)
    hubbed = np.where(rng.random(n) < 0.3, gold, rng.integers(0, 50, n))
    spread = np.where(rng.random(n) < 0.35, gold, rng.integers(0, n, n))
    items = resampler("BitextMining", gold.tolist())
    assert items.centred and "centred" in items.method
    b = stats.retention_interval(items, hubbed.tolist(), spread.tolist(), 400, 0, 0.5)
    point = 100 * items.point(spread.tolist()) / items.point(hubbed.tolist())
    lo, hi = b.values
    assert lo < point < hi and point < 97


def test_clustering_v_measure_resample_equals_sklearn_two_way():
    from sklearn.metrics import v_measure_score

    rng = np.random.default_rng(5)
    n_docs, n_sets, size = 60, 4, 80
    labels = rng.integers(0, 5, n_docs)
    sets = rng.integers(0, n_docs, (n_sets, size))
    noise = rng.integers(0, 5, (n_sets, size))
    clusters = np.where(rng.random((n_sets, size)) < 0.7, labels[sets], noise)
    gold = {"labels": labels.tolist(), "sets": sets.tolist()}
    items = resampler("Clustering", gold)
    want = np.mean([v_measure_score(labels[sets[s]], clusters[s]) for s in range(n_sets)])
    assert items.point(clusters.tolist()) == pytest.approx(want, abs=1e-12)
    scores = items.scores(items.prepare([clusters.tolist()]), np.random.default_rng(8), 6)
    r_ = np.random.default_rng(8)
    W, E = stats.counts(r_, 6, n_docs), stats.counts(r_, 6, n_sets)
    for r in range(6):
        vs = []
        for s in range(n_sets):  # a position weighs as its document is drawn
            rep = W[r][sets[s]].astype(int)
            vs.append(v_measure_score(np.repeat(labels[sets[s]], rep), np.repeat(clusters[s], rep)))
        assert scores[r, 0] == pytest.approx(np.dot(E[r], vs) / n_sets, abs=1e-12)


def test_clustering_interval_is_centred_and_sees_document_sampling():
    """A poor clustering keeps its retention inside its own interval (document
    resampling inflates v-measure; the interval is centred on the estimate), and the
    interval reflects test-set sampling: with sets of ~16 copies of every document,
    resampling the sets alone would be several times narrower."""
    rng = np.random.default_rng(11)
    n_docs, n_sets, size = 300, 10, 4800
    labels = rng.integers(0, 12, n_docs)
    sets = rng.integers(0, n_docs, (n_sets, size))
    flip = rng.integers(0, 12, n_docs)  # a document's wrong cluster is its own, as k-means'
    good = np.where(rng.random(n_docs) < 0.6, labels, flip)[sets]
    poor = np.where(rng.random(n_docs) < 0.15, labels, flip)[sets]
    items = resampler("Clustering", {"labels": labels.tolist(), "sets": sets.tolist()})
    assert items.centred and "centred" in items.method
    b = stats.retention_interval(items, good.tolist(), poor.tolist(), 500, 0, 0.05)
    point = 100 * items.point(poor.tolist()) / items.point(good.tolist())
    lo, hi = b.values
    assert lo < point < hi
    v_good, v_poor = (items.prepare([x.tolist()])[0] for x in (good, poor))
    ones = np.ones((1, n_docs))
    per_set = 100 * items._v(v_poor, ones)[0] / items._v(v_good, ones)[0].mean()
    assert hi - lo > 3 * (per_set.max() - per_set.min())  # far wider than the sets' spread


def test_stratified_scores_the_mean_of_its_units():
    rng = np.random.default_rng(6)
    g1, g2 = rng.uniform(0, 5, 80), rng.uniform(0, 5, 50)
    p1, p2 = g1 + rng.normal(0, 1, 80), g2 + rng.normal(0, 2, 50)
    parts = {"a/test": resampler("STS", g1), "b/test": resampler("STS", g2)}
    items = stats.Stratified(parts)
    preds = {"a/test": p1, "b/test": p2}
    assert items.point(preds) == pytest.approx(
        (spearmanr(g1, p1)[0] + spearmanr(g2, p2)[0]) / 2, abs=1e-12
    )
    scores = items.scores(items.prepare([preds]), np.random.default_rng(1), 5)
    r_ = np.random.default_rng(1)
    W1, W2 = stats.counts(r_, 5, 80), stats.counts(r_, 5, 50)  # units drawn in order
    for r in range(5):
        i1, i2 = _expand(W1[r]), _expand(W2[r])
        want = (spearmanr(g1[i1], p1[i1])[0] + spearmanr(g2[i2], p2[i2])[0]) / 2
        assert scores[r, 0] == pytest.approx(want, abs=1e-12)
    assert "stratified" in items.method
