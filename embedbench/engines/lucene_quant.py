"""Lucene's vector quantizers, transcribed to numpy for the `es:` presets.

- `ScalarQuantizer` (lucene/core/src/java/org/apache/lucene/util/quantization/
  ScalarQuantizer.java, apache/lucene at c576642): per-segment quantiles, codes
  round((clamp(x) - lo) · (2^bits - 1) / (hi - lo)) and the per-vector float correction;
  `fromVectors` (confidence-interval quantiles averaged over chunks of 20 vectors) and
  `fromVectorsAutoInterval` (the dynamic quantiles of int4: a 16 × 16 grid between two
  confidence intervals, scored by how well quantized nearest-neighbour scores track
  the float ones). `ScalarQuantizedVectorSimilarity.DotProduct` scores a pair.
- `osq`: Elasticsearch's OptimizedScalarQuantizer.scalarQuantize (server/src/main/java/
  org/elasticsearch/index/codec/vectors/OptimizedScalarQuantizer.java at b2fb21f, with the
  scalar DefaultESVectorUtilSupport at 805cc3e): centre on the centroid, an initial
  interval mean ± grid·std, 5 coordinate-descent steps on the anisotropic loss
  (lambda 0.1), then codes round((clamp(x) - a) / step) and the corrections (a, b,
  x·centroid, sum of codes).

Java rounds each float operation to float; the elementwise steps here do the same in
float32 (Math.round is floor(x + 1/2), not numpy's half-to-even). Sums that Java
accumulates in float with SIMD lanes (the OSQ statistics, the loss) are summed in
float64 here: equal to the last bits, not bit for bit.
"""

from __future__ import annotations

import numpy as np

F32, F64 = np.float32, np.float64
SAMPLE_SIZE = 25_000  # ScalarQuantizer.SCALAR_QUANTIZATION_SAMPLE_SIZE
SCRATCH = 20  # ScalarQuantizer.SCRATCH_SIZE: quantiles are taken over 20 vectors at a time
AUTO_SAMPLE = 1000  # fromVectorsAutoInterval's sample of documents
TOP_K = 10  # neighbours per sampled document in the dynamic-quantile search
MSE_GRID = {1: F32(0.798), 2: F32(1.493), 4: F32(2.514), 7: F32(3.611), 8: F32(3.922)}
LAMBDA, ITERS = F32(0.1), 5  # OptimizedScalarQuantizer DEFAULT_LAMBDA, DEFAULT_ITERS
ROWS = 2048  # rows per block


def java_round(x: np.ndarray) -> np.ndarray:
    """Math.round: floor(x + 1/2) (exact in float64 for float32 x); NaN rounds to 0."""
    r = np.floor(np.asarray(x, F64) + 0.5)
    return np.where(np.isnan(r), 0.0, r)


class JavaRandom:
    """java.util.Random, for Lucene's reservoir sample `new Random(42)`."""

    MULT, ADD, MASK = 0x5DEECE66D, 0xB, (1 << 48) - 1

    def __init__(self, seed: int):
        self.seed = (seed ^ self.MULT) & self.MASK

    def next31(self) -> int:
        self.seed = (self.seed * self.MULT + self.ADD) & self.MASK
        return self.seed >> 17

    def next_int(self, bound: int) -> int:
        r, m = self.next31(), bound - 1
        if bound & m == 0:
            return (bound * r) >> 31
        u = r
        while u - (r := u % bound) + m >= 1 << 31:  # Java's int overflow test
            u = self.next31()
        return r


def reservoir_sample(n: int, k: int) -> np.ndarray:
    """ScalarQuantizer.reservoirSampleIndices(n, k), sorted (a fresh Random(42))."""
    take, rnd = list(range(k)), JavaRandom(42)
    for i in range(k, n):
        j = rnd.next_int(i + 1)
        if j < k:
            take[j] = i
    return np.sort(np.array(take, dtype=np.int64))


def upper_and_lower_quantile(chunks: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """getUpperAndLowerQuantile of each row: the values at selectorIndex and
    length - selectorIndex - 1 of the sorted row, selectorIndex =
    (int) (length · (1 - ci) / 2 + 0.5) in float."""
    length = chunks.shape[1]
    s = np.sort(chunks, axis=1)
    if length <= 2:
        return s[:, 0], s[:, -1]
    sel = int(F32(F32(F32(length) * (F32(1) - F32(ci))) / F32(2)) + F32(0.5))
    return s[:, sel], s[:, length - sel - 1]


def default_confidence_interval(d: int) -> F32:
    """Lucene99ScalarQuantizedVectorsFormat.calculateDefaultConfidenceInterval."""
    return max(F32(0.9), F32(F32(1) - F32(1) / F32(d + 1)))


def _chunks(X: np.ndarray, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors fromVectors reads (all, or a reservoir sample of `sample`) and their
    whole chunks of `SCRATCH` vectors (a tail short of a chunk is left out)."""
    n, d = X.shape
    rows = X if n <= sample else X[reservoir_sample(n, sample)]
    size = min(SCRATCH, n)
    count = len(rows) // size
    return rows, np.ascontiguousarray(rows[: count * size], F32).reshape(count, size * d)


def _mean(values: np.ndarray) -> F32:
    """(float) sum / count, the sum accumulated in double in chunk order."""
    return F32(F32(np.cumsum(values.astype(F64))[-1]) / F32(len(values)))


def quantiles(X: np.ndarray, ci: float) -> tuple[F32, F32]:
    """ScalarQuantizer.fromVectors: the mean over chunks of 20 vectors of each chunk's
    confidence-interval quantiles (min and max when ci is 1)."""
    if F32(ci) == F32(1):
        return F32(X.min()), F32(X.max())
    _, chunks = _chunks(X, SAMPLE_SIZE)
    lo, hi = upper_and_lower_quantile(chunks, ci)
    return _mean(lo), _mean(hi)


class ScalarQuantizer:
    """Lucene's ScalarQuantizer(minQuantile, maxQuantile, bits) for DOT_PRODUCT."""

    def __init__(self, lo: float, hi: float, bits: int):
        self.lo, self.hi, self.bits = F32(lo), F32(hi), bits
        divisor = F32((1 << bits) - 1)
        with np.errstate(divide="ignore"):
            self.scale = F32(divisor / F32(self.hi - self.lo))
        self.alpha = F32(F32(self.hi - self.lo) / divisor)
        self.multiplier = F32(self.alpha * self.alpha)  # getConstantMultiplier

    def quantize(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes (n × d, 0 .. 2^bits - 1) and each vector's corrective offset: the float
        sum over i of lo·(x_i - lo/2) + (dx_i - dxq_i)·dxq_i (quantizeFloat)."""
        X = np.asarray(X, F32)
        codes = np.empty(X.shape, np.uint8)
        corr = np.empty(len(X), F32)
        half = F32(self.lo / F32(2))
        for s in range(0, len(X), ROWS):
            v = X[s : s + ROWS]
            dx = v - self.lo
            dxs = self.scale * (np.clip(v, self.lo, self.hi) - self.lo)
            q = java_round(dxs)
            dxq = q.astype(F32) * self.alpha
            term = self.lo * (v - half) + (dx - dxq) * dxq
            codes[s : s + ROWS] = q
            corr[s : s + ROWS] = np.cumsum(term, axis=1, dtype=F32)[:, -1]
        return codes, corr

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return self.alpha * codes.astype(F32) + self.lo

    def score(self, qc, qcorr, dc, dcorr) -> np.ndarray:
        """ScalarQuantizedVectorSimilarity.DotProduct: max((1 + dot·alpha² + queryOffset
        + vectorOffset) / 2, 0) in float, for every query row × stored row."""
        dot = (qc.astype(F64) @ dc.astype(F64).T).astype(F32)  # exact integers
        adj = dot * self.multiplier + qcorr[:, None] + dcorr[None, :]
        return np.maximum((F32(1) + adj) / F32(2), F32(0))


def _neighbours(S: np.ndarray) -> np.ndarray:
    """findNearestNeighbors: each row's top 10 others by score (ties: lower doc first)."""
    S = S.copy()
    np.fill_diagonal(S, -np.inf)
    k = min(TOP_K, len(S) - 1)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def candidate_grid(al, au, bl, bu) -> tuple[np.ndarray, np.ndarray]:
    """The 16 lower and 16 upper candidates: al + i·(au - al)/32, i = 0, 2, .., 30."""
    i = np.arange(0, 32, 2).astype(F32)
    lower = F32(al) + i * F32(F32(au) - F32(al)) / F32(32)
    upper = F32(bl) + i * F32(F32(bu) - F32(bl)) / F32(32)
    return lower, upper


def grid_search(lower: np.ndarray, upper: np.ndarray, correlation) -> tuple[F32, F32]:
    """candidateGridSearch: every 4th candidate pair first, then the 3 × 3 pairs after
    the best one; a pair with upper <= lower is skipped; the first best is kept."""
    best, pair, quadrant = -np.inf, (F32(0), F32(0)), (0, 0)
    for i in range(0, len(lower), 4):
        for j in range(0, len(upper), 4):
            if upper[j] > lower[i] and (c := correlation(lower[i], upper[j])) > best:
                best, pair, quadrant = c, (lower[i], upper[j]), (i, j)
    for i in range(quadrant[0] + 1, quadrant[0] + 4):
        for j in range(quadrant[1] + 1, quadrant[1] + 4):
            if upper[j] > lower[i] and (c := correlation(lower[i], upper[j])) > best:
                best, pair = c, (lower[i], upper[j])
    return pair


def auto_quantiles(X: np.ndarray, bits: int) -> tuple[F32, F32]:
    """ScalarQuantizer.fromVectorsAutoInterval for DOT_PRODUCT: quantiles at confidence
    intervals 1 - min(32, d/10)/(d + 1) and 1 - 1/(d + 1) bound the candidate grid;
    the pair whose quantized scores of each sampled document's 10 nearest neighbours
    best track the float scores (mean of 1 - var(errors)/var(scores)) wins."""
    n, d = X.shape
    ci = [
        F32(F32(1) - F32(min(F32(32), F32(F32(d) / F32(10))) / F32(d + 1))),
        F32(F32(1) - F32(1) / F32(d + 1)),
    ]
    sample, chunks = _chunks(X, AUTO_SAMPLE)
    (au, bl), (al, bu) = (tuple(map(_mean, upper_and_lower_quantile(chunks, c))) for c in ci)
    sample = np.asarray(sample, F32)
    S = np.maximum((F32(1) + sample @ sample.T) / F32(2), F32(0))  # DOT_PRODUCT.compare
    nb = _neighbours(S)
    rows = np.arange(len(sample))[:, None]
    nb_scores = S[rows, nb]
    score_var = nb_scores.astype(F64).var(axis=1, ddof=1).astype(F32)

    def correlation(lo: F32, hi: F32) -> float:
        sq = ScalarQuantizer(lo, hi, bits)
        codes, corr = sq.quantize(sample)
        dot = np.einsum("ij,ikj->ik", codes.astype(F64), codes[nb].astype(F64)).astype(F32)
        adj = dot * sq.multiplier + corr[:, None] + corr[nb]
        q_scores = np.maximum((F32(1) + adj) / F32(2), F32(0))
        err_var = (q_scores - nb_scores).astype(F64).var(axis=1, ddof=1).astype(F32)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = float(np.mean((F32(1) - err_var / score_var).astype(F64)))
        return 0.0 if np.isnan(mean) else mean

    return grid_search(*candidate_grid(al, au, bl, bu), correlation)


def _osq_loss(v, a, b, points, norm2) -> np.ndarray:
    """calculateOSQLoss: (1 - λ)·(Σ x·(x - x̂))² / |x|² + λ·Σ (x - x̂)²."""
    step = ((b - a) / F32(points - 1)).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = java_round((np.clip(v, a[:, None], b[:, None]) - a[:, None]) * (F32(1) / step)[:, None])
    xiq = (a[:, None] + step[:, None] * k.astype(F32)).astype(F64)
    diff = v - xiq
    xe, e = (v * diff).sum(axis=1), (diff * diff).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 - F64(LAMBDA)) * xe * xe / norm2 + F64(LAMBDA) * e


def _optimize(v, a, b, points, norm2) -> tuple[np.ndarray, np.ndarray]:
    """optimizeIntervals: up to 5 least-squares updates of (a, b) for the rounding
    pattern of the current interval; a row stops when its determinant is 0, the
    interval does not move (1e-8) or the loss would grow."""
    loss = _osq_loss(v, a, b, points, norm2)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = F64(((F32(1) - LAMBDA) / norm2.astype(F32)).astype(F32))
    live = np.isfinite(scale)
    lam = F64(LAMBDA)
    for _ in range(ITERS):
        if not live.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = (F32(points - 1) / (b - a)).astype(F32)
            k = java_round((np.clip(v, a[:, None], b[:, None]) - a[:, None]) * inv[:, None])
        s = (k.astype(F32) / F32(points - 1)).astype(F64)
        ms = 1 - s
        daa, dab, dbb = (ms * ms).sum(1), (ms * s).sum(1), (s * s).sum(1)
        dax, dbx = (ms * v).sum(1), (s * v).sum(1)
        m0, m1, m2 = (
            scale * dax * dax + lam * daa,
            scale * dax * dbx + lam * dab,
            scale * dbx * dbx + lam * dbb,
        )
        det = m0 * m2 - m1 * m1
        live &= det != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            a_opt = ((m2 * dax - m1 * dbx) / det).astype(F32)
            b_opt = ((m0 * dbx - m1 * dax) / det).astype(F32)
        moved = (np.abs(F64(a) - a_opt) >= 1e-8) | (np.abs(F64(b) - b_opt) >= 1e-8)
        live &= moved
        new = _osq_loss(v, np.where(live, a_opt, a), np.where(live, b_opt, b), points, norm2)
        live &= ~(new > loss)
        a, b, loss = np.where(live, a_opt, a), np.where(live, b_opt, b), np.where(live, new, loss)
    return a, b


def osq(X: np.ndarray, centroid: np.ndarray, bits: int):
    """OptimizedScalarQuantizer.scalarQuantize (DOT_PRODUCT) of each row: codes (n × d,
    0 .. 2^bits - 1), lower and upper interval (float32), the additional correction
    x·centroid (float32) and the sum of the codes (int)."""
    X = np.asarray(X, F32)
    c = np.asarray(centroid, F32)
    centered = X - c
    v = centered.astype(F64)
    cdot = (X.astype(F64) @ c.astype(F64)).astype(F32)
    mean, var = v.mean(axis=1).astype(F32), v.var(axis=1).astype(F32)
    std = np.sqrt(var).astype(F32)
    norm2 = (v * v).sum(axis=1)
    lo, hi = centered.min(axis=1), centered.max(axis=1)
    g = MSE_GRID[bits]
    a = np.clip((-g * std + mean).astype(F32), lo, hi).astype(F32)
    b = np.clip((g * std + mean).astype(F32), lo, hi).astype(F32)
    a, b = _optimize(v, a, b, 1 << bits, norm2)
    step = ((b - a) / F32((1 << bits) - 1)).astype(F32)
    xi = np.clip(centered, a[:, None], b[:, None]).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = java_round((xi - a[:, None]) / step[:, None]).astype(np.uint8)
    return codes, a, b, cdot, codes.sum(axis=1, dtype=np.int64)
