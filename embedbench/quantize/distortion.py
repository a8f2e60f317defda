"""Distortion: how far a technique's reconstructions are from the vectors, against
Shannon's limit at the same rate.

`Reconstruction` maps a fitted technique's decoded vectors back to the input space:
each transform is undone by its own inverse when it states one (`pca<k>` and `itq`:
z · Rᵀ + μ) and otherwise by the least-squares inverse of its affine map (the
transpose of a rotation, the mean added back after centring, zeros for the
dimensions truncation dropped), last transform first. A code that decodes to
levels rather than values (binary as ±1, ternary as {-1, 0, +1}) has no scale of its
own, so every technique gets the one constant `scale` that minimises the relative
squared error on its calibration vectors: a decoder's constant, fitted where
everything else is fitted. For a codec whose decode is a conditional mean (Lloyd-Max,
k-means: TurboQuant, PQ) that constant is ≈ 1. A code that is an unbiased
inner-product estimator (TurboQuant_prod, faiss look-up-table codes) keeps scale 1:
search uses its decoded vectors unscaled and unnormalised, so they are measured so.

`mse` is the mean over vectors of ‖x − x̂‖² / ‖x‖², the squared error of the unit
vector x/‖x‖ (a truncation keeps a direction, so its reconstruction is a unit vector
in the kept dimensions).

`shannon_bound(b)` = 2^(−2b): the distortion-rate function of a Gaussian source with
independent coordinates of equal variance at b bits per dimension, per unit of
variance (Cover & Thomas, Elements of Information Theory, Theorem 10.3.2 and §10.3.3).
Unit vectors carry one unit of variance in total, so no code of b bits per dimension
can reach a total MSE below 2^(−2b) on such a source, the hardest of its variance.
Real embeddings are not that source (their variance sits in few directions), so a
data-aware codec can go below it: `mse / shannon_bound(b)` under 1 says the codec
uses that structure; far above 1, it leaves bits on the table.
"""

from __future__ import annotations

import numpy as np

from embedbench.quantize.codes import row_blocks
from embedbench.quantize.technique import Technique


def shannon_bound(bits_per_dim: float) -> float:
    """Gaussian distortion-rate bound per unit of variance: 2^(−2b)."""
    return float(2.0 ** (-2.0 * bits_per_dim))


def _inverse(t, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, c) with x ≈ t.apply(x) @ P + c for a fitted transform on d dimensions: the
    transform's own inverse when it has one, else the least-squares inverse of its
    affine map t.apply(X) = X @ M + b, P = pinv(M), c = −b @ P."""
    own = t.inverse(d)
    if own is not None:
        return own
    b = np.asarray(t.apply(np.zeros((1, d), np.float32)), np.float64)[0]
    M = np.asarray(t.apply(np.eye(d, dtype=np.float32)), np.float64) - b
    P = np.linalg.pinv(M)
    return P, -b @ P


class Reconstruction:
    """A fitted technique's decoded vectors in the input space: x̂ = scale · y P + c,
    y the decoded code, P and c the composed inverses of the transforms (last undone
    first), scale fitted on calibration; 1 for a code whose decode is an unbiased
    inner-product estimator (`ip_estimator`: its decoded vectors are used as they
    are, so they are measured as they are)."""

    def __init__(self, technique: Technique, X_cal: np.ndarray):
        if not technique.fitted:
            raise ValueError(f"technique {technique.name} must be fitted first")
        self.technique = technique
        d = X_cal.shape[1]
        P, c = np.eye(d), np.zeros(d)  # x = z @ P + c, z the current transform's input
        for t in technique.transforms:
            Pt, ct = _inverse(t, d)  # z = w @ Pt + ct, w the transform's output
            P, c = Pt @ P, ct @ P + c
            d = t.out_dim(d)
        self.P, self.offset = P, c
        if getattr(technique.code, "ip_estimator", False):
            self.scale = 1.0
            return
        X = np.asarray(X_cal, np.float32)
        Y = self._linear(X)
        R = X - self.offset
        w = 1.0 / np.maximum(np.einsum("ij,ij->i", X, X, dtype=np.float64), 1e-30)
        num = float(np.dot(w, np.einsum("ij,ij->i", R, Y)))
        den = float(np.dot(w, np.einsum("ij,ij->i", Y, Y)))
        self.scale = num / den if den > 0 else 1.0

    def _linear(self, X: np.ndarray) -> np.ndarray:
        """decode(encode(X)) mapped back by the transforms' linear parts."""
        return np.asarray(self.technique.roundtrip(X), np.float64) @ self.P

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.scale * self._linear(X) + self.offset

    def mse(self, X: np.ndarray) -> float:
        """Mean of ‖x − x̂‖² / ‖x‖² over the rows of X (zero rows left out)."""
        X = np.asarray(X, np.float32)
        total, n = 0.0, 0
        for s in row_blocks(len(X)):
            x = X[s].astype(np.float64)
            sq = np.einsum("ij,ij->i", x, x)
            keep = sq > 0
            err = x - self(X[s])
            total += float(np.sum(np.einsum("ij,ij->i", err, err)[keep] / sq[keep]))
            n += int(keep.sum())
        return total / n if n else float("nan")
