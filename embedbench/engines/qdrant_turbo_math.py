"""The fixed parts of Qdrant 1.19.0's TurboQuant (github.com/qdrant/qdrant at
74f3e85b9473, lib/quantization/src/turboquant/ and p_square.rs), bit-for-bit:

- `lcg_map(seed, n)` (permutation.rs): a Fisher–Yates shuffle of 0..n−1 driven by
  Knuth's MMIX LCG (state ← A·state + C mod 2^64, the first draw after one step),
  swapping i with j = (state >> 32) mod (i + 1) for i = n − 1 down to 1.
- `rotate` / `unrotate` (rotation.rs HadamardRotation): an in-place Walsh–Hadamard
  transform on each chunk of the greedy power-of-two split of the length (384 ->
  [256, 128], 576 -> [512, 64]), each chunk times 1/√size; then three times: gather
  by an LCG permutation (the three fixed PERMUTATION_SEEDS) and the chunked transform
  again. Butterflies in f64 with the scalar reference's pair order (the SIMD kernels
  are bit-equal to it).
- `p_square_intervals` (quantile.rs find_quantile_interval_per_coordinate_with_
  preprocess, p_square.rs P2Quantile<7>): two 7-marker P-square estimators a
  coordinate (probabilities (1 − q)/2 and 1 − (1 − q)/2) fed the sampled vectors in
  index order; desired positions use a fused multiply-add for markers 0–3, as the
  AVX2+FMA path of update_desired_positions does on x86_64.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MASK64 = (1 << 64) - 1
LCG_A = 6_364_136_223_846_793_005  # permutation.rs ReversibleLcg::A (Knuth MMIX)
LCG_C = 1_442_695_040_888_963_407
PERMUTATION_SEEDS = (654605292835415893, 8636605637963351413, 1775280196666917949)
P2_MARKERS = 7  # quantile.rs P2_MARKERS


def lcg_map(seed: int, n: int) -> np.ndarray:
    """Permutation::permute applied to 0..n−1: the gather map (out[k] = x[map[k]])."""
    arr = list(range(n))
    state = seed
    for i in range(n - 1, 0, -1):
        state = (state * LCG_A + LCG_C) & MASK64
        j = (state >> 32) % (i + 1)
        arr[i], arr[j] = arr[j], arr[i]
    return np.array(arr, dtype=np.int64)


def chunk_sizes(n: int) -> list[int]:
    """rotation.rs compute_chunk_sizes: decreasing powers of two summing to n."""
    out = []
    while n:
        top = 1 << (n.bit_length() - 1)
        out.append(top)
        n ^= top
    return out


def wht(X: np.ndarray) -> np.ndarray:
    """in_place_walsh_hadamard_transform on every row (power-of-two width), unscaled."""
    n, size = X.shape
    h = 1
    while h < size:
        V = X.reshape(n, size // (2 * h), 2, h)
        a, b = V[:, :, 0, :], V[:, :, 1, :]
        X = np.stack([a + b, a - b], axis=2).reshape(n, size)
        h *= 2
    return X


def wht_chunks(X: np.ndarray) -> np.ndarray:
    """wht_normalized_chunks: each chunk transformed, then times 1/√size (in f64)."""
    out = np.empty_like(X)
    start = 0
    for size in chunk_sizes(X.shape[1]):
        out[:, start : start + size] = wht(X[:, start : start + size]) * (1.0 / math.sqrt(size))
        start += size
    return out


@lru_cache(maxsize=16)
def maps(n: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """HadamardRotation::new(n): the forward gather maps and their inverses."""
    forward = tuple(lcg_map(s, n) for s in PERMUTATION_SEEDS)
    backward = tuple(np.argsort(m) for m in forward)
    return forward, backward


def rotate(X: np.ndarray) -> np.ndarray:
    """HadamardRotation::apply on f64 rows."""
    X = wht_chunks(np.asarray(X, dtype=np.float64))
    for m in maps(X.shape[1])[0]:
        X = wht_chunks(X[:, m])
    return X


def unrotate(Y: np.ndarray) -> np.ndarray:
    """HadamardRotation::apply_inverse on f64 rows."""
    Y = wht_chunks(np.asarray(Y, dtype=np.float64))
    for m in reversed(maps(Y.shape[1])[1]):
        Y = wht_chunks(Y[:, m])
    return Y


def seqsum(A: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as Rust's Iterator::sum (numpy's are pairwise)."""
    return np.cumsum(A, axis=1)[:, -1] if A.shape[1] else np.zeros(len(A))


def std_normal_cdf(x: float) -> float:
    """math.rs std_normal_cdf: Abramowitz & Stegun 7.1.26 erf."""
    z = x / math.sqrt(2.0)
    a = abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    r = 1.0 - poly * math.exp(-a * a)
    return 0.5 * (1.0 + (r if z >= 0.0 else -r))


def grid(q: float) -> list[float]:
    """P2QuantileImpl::generate_grid_probabilities for 7 markers."""
    extra = (P2_MARKERS - 5) // 2
    p = [0.0] * P2_MARKERS
    p[1] = q * 0.5
    for i in range(extra):
        p[i + 2] = q * (0.7 + 0.3 * (i + 1) / (extra + 2.0))
    p[P2_MARKERS // 2] = q
    for i in range(extra):
        p[P2_MARKERS // 2 + 1 + i] = 1.0 + (q - 1.0) * (0.7 + 0.3 * (extra - i) / (extra + 2.0))
    p[P2_MARKERS - 2] = 1.0 + (q - 1.0) * 0.5
    p[P2_MARKERS - 1] = 1.0
    return p


@lru_cache(maxsize=8)
def desired(q: float, count: int) -> np.ndarray:
    """Desired marker positions 1 + p·(c − 1) after c = 0..count observations (row c),
    fused (one rounding) for markers 0..3 as _mm256_fmadd_pd does, plain for 4..6."""
    out = np.empty((count + 1, P2_MARKERS))
    for i, p in enumerate(grid(q)):
        if i < 4:
            num, den = p.as_integer_ratio()
            out[1:, i] = [(num * c + den) / den for c in range(count)]  # exact, one rounding
        else:
            out[1:, i] = [1.0 + p * c for c in range(count)]
    out[0] = 1.0
    return out


def _step(h, n, i, rows, sign):
    """p_square.rs adjust_step on `rows` for marker i with direction `sign` (±1)."""
    ph, nh, ch = h[rows, i - 1], h[rows, i + 1], h[rows, i]
    pn, nn, cn = n[rows, i - 1], n[rows, i + 1], n[rows, i]
    denom = nn - pn
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = (cn - pn + sign) / (nn - cn) * (nh - ch)
        b = (nn - cn - sign) / (cn - pn) * (ch - ph)
        par = np.where(denom != 0.0, ch + (a + b) * sign / denom, ch)
        lin = np.where(sign > 0, ch + (nh - ch) / (nn - cn), ch + (ph - ch) / (pn - cn))
    ok = (par > ph) & (par < nh) & np.isfinite(par)
    h[rows, i] = np.where(ok, par, lin)
    n[rows, i] += sign


def p_square(V: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """P2Quantile<7>::estimate for every column of V (pushed row by row), column c
    estimating quantile qs[c]."""
    count, cols = V.shape
    if count < P2_MARKERS:  # P2QuantileLinear: interpolated sample quantile
        S = np.sort(V, axis=0)
        k = qs * (count - 1)
        lo, hi = np.floor(k).astype(int), np.ceil(k).astype(int)
        c = np.arange(cols)
        return np.where(lo == hi, S[lo, c], S[lo, c] + (k - lo) * (S[hi, c] - S[lo, c]))
    h = np.sort(V[:P2_MARKERS], axis=0).T.copy()
    n = np.tile(np.arange(1.0, P2_MARKERS + 1), (cols, 1))
    kinds = {float(q): qs == q for q in np.unique(qs)}
    tables = {q: desired(q, count) for q in kinds}
    marker = np.arange(P2_MARKERS)
    for t in range(P2_MARKERS, count):
        x = V[t]
        below, above = x < h[:, 0], x > h[:, -1]
        h[below, 0] = x[below]
        h[above, -1] = x[above]
        k = (h[:, 1:] < x[:, None]).sum(axis=1)  # find_marker_avx2
        k = np.where(below, 0, np.where(above, P2_MARKERS - 1, k))
        n += marker[None, :] > k[:, None]
        nd = np.empty_like(n)
        for q, rows in kinds.items():
            nd[rows] = tables[q][t + 1]
        for i in range(1, P2_MARKERS - 1):
            while True:
                di = nd[:, i] - n[:, i]
                up = (di >= 1.0) & (n[:, i + 1] - n[:, i] > 1.0)
                down = ~up & (di <= -1.0) & (n[:, i - 1] - n[:, i] < -1.0)
                rows = np.flatnonzero(up | down)
                if not len(rows):
                    break
                _step(h, n, i, rows, np.where(up[rows], 1.0, -1.0))
    return h[:, P2_MARKERS // 2]


def quantile_intervals(V: np.ndarray, quantile: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(q_lo, q_hi) f32 per column of the pushed values V (rows in push order)."""
    lo_q = (1.0 - float(quantile)) / 2.0
    hi_q = 1.0 - lo_q
    d = V.shape[1]
    est = p_square(np.concatenate([V, V], axis=1), np.repeat([lo_q, hi_q], d))
    return est[:d].astype(np.float32), est[d:].astype(np.float32)
