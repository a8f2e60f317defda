"""Synthetic vectors shared by the quantizer tests."""

from __future__ import annotations

import numpy as np


def _gauss(n: int, d: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, d))).astype(np.float32)


def _embeddings(n: int, d: int, seed: int) -> np.ndarray:
    """Unit rows with a shared offset and unequal variances, like real embeddings."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (rng.standard_normal((n, d)) * np.geomspace(3.0, 0.3, d)) @ basis.T + 0.8
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _cos(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T
