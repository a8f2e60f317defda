"""Codes and transforms: a technique is `transform+...+code`, fitted on calibration only.

A *code* turns float vectors into packed bytes (`encode`, the storage format that
defines the size) and back into the floats an evaluator sees (`decode`): binary as
±1, ternary as {-1, 0, +1}, int8/int4 dequantized. A *transform* (centring,
rotation, truncation) is a map applied before the code; each class says whether it
keeps every cosine (`keeps_cosines`; `control_spec` names the float control of a
chain that does not). Everything fitted (ranges, thresholds, means, rotations, ITQ)
is fitted by `Technique.fit` on calibration vectors, never on the vectors being
evaluated. Random transforms draw from `DEFAULT_SEED + seed`, `seed` the replicate
seed given to `parse_technique` (0 unless given), so a name and a seed always mean
the same map. Every part says whether it `learns` (fits something on calibration)
and whether it is `random`; `Technique.depends_on_seed` is True when either holds,
i.e. when another calibration sample or seed can change the technique. Numpy in,
numpy out; encoding works in row blocks so temporaries stay in cache.

Names: `transform+...+code`, each part a key of TRANSFORMS or CODES. A transform key
ending in `<k>` takes a positive integer parameter written in its place:
`trunc128+binary` keeps the first 128 dimensions, then codes them as binary.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

BLOCK = 4096  # rows per block: big enough for BLAS, small enough for L2


class Code(ABC):
    """A fixed-width code: `bits` per dimension, packed row by row.

    Every concrete code sets `learns` (fits parameters on calibration vectors:
    ranges, quantiles, medians) and `random` (draws random numbers); they are left
    unset here so a new code cannot inherit a wrong answer silently.
    """

    name: str
    bits: int
    learns: bool
    random: bool

    def fit(self, X: np.ndarray) -> Code:
        """Fit parameters on calibration vectors (most codes have none)."""
        return self

    @abstractmethod
    def encode(self, X: np.ndarray) -> np.ndarray:
        """Pack float32 rows (n × d) into uint8 rows (n × bytes_per_vector)."""

    @abstractmethod
    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        """Unpack to the float32 vectors (n × d) the codes stand for."""

    def bytes_per_vector(self, d: int) -> int:
        return math.ceil(d * self.bits / 8)

    def params_bytes(self) -> int:
        """Fixed cost of fitted parameters, reported apart from the per-vector size."""
        return 0


def _blocks(n: int, size: int = BLOCK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class Float32(Code):
    """The float baseline: the vectors as returned, 4 bytes a dimension."""

    name, bits = "float32", 32
    learns, random = False, False

    def encode(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(X, dtype=np.float32).view(np.uint8)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        return np.ascontiguousarray(codes).view(np.float32).reshape(len(codes), d)


class Int8(Code):
    """Per-dimension min/max from calibration, 256 levels; out-of-range values clip."""

    name, bits = "int8", 8
    learns, random = True, False

    def fit(self, X: np.ndarray) -> Int8:
        lo, hi = X.min(axis=0), X.max(axis=0)
        step = (hi - lo) / 255.0
        self.lo = lo.astype(np.float32)
        # a dimension constant on calibration has one level: every value decodes to it
        self.step = np.where(step > 0, step, 0.0).astype(np.float32)
        # q = round((x - lo) / step) - 128 == round(x * inv + shift), one fused pass
        self.inv = np.divide(1.0, self.step, out=np.zeros_like(self.step), where=self.step > 0)
        self.shift = (-self.lo * self.inv - 128.0).astype(np.float32)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.int8)
        for b in _blocks(len(X)):
            tmp = np.multiply(X[b], self.inv, dtype=np.float32)
            tmp += self.shift
            np.rint(tmp, out=tmp)
            np.clip(tmp, -128, 127, out=tmp)
            out[b] = tmp
        return out.view(np.uint8)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        q = codes.view(np.int8).astype(np.float32)
        return (q + 128.0) * self.step + self.lo

    def params_bytes(self) -> int:
        return 2 * 4 * len(self.lo)


class Ternary(Code):
    """Three levels per dimension, thresholds at calibration quantiles 1/3 and 2/3.

    Stored as two packed bit planes (x > t1, x > t2): 2 bits a dimension; the
    decoded value is their sum minus one, in {-1, 0, +1}.
    """

    name, bits = "ternary", 2
    learns, random = True, False

    def fit(self, X: np.ndarray) -> Ternary:
        t = np.quantile(X, [1 / 3, 2 / 3], axis=0).astype(np.float32)
        self.t1, self.t2 = t[0], t[1]
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        planes = np.empty((min(n, BLOCK), 2 * d), dtype=bool)
        for b in _blocks(n):
            m = b.stop - b.start
            np.greater(X[b], self.t1, out=planes[:m, :d])
            np.greater(X[b], self.t2, out=planes[:m, d:])
            out[b] = np.packbits(planes[:m], axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=2 * d).astype(np.float32)
        return bits[:, :d] + bits[:, d:] - 1.0

    def params_bytes(self) -> int:
        return 2 * 4 * len(self.t1)


class Binary(Code):
    """Sign bit (x > 0), decoded to ±1: cosine on ±1 is affine in Hamming distance."""

    name, bits = "binary", 1
    learns, random = False, False

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in _blocks(n):
            out[b] = np.packbits(X[b] > 0, axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=d).astype(np.float32)
        return bits * 2.0 - 1.0


class Float16(Code):
    """IEEE half precision, 2 bytes a dimension: a near-lossless control.

    Its retention should be 100% within noise; a visible loss points at a pipeline
    bug (wrong vectors, wrong order, scale), not at quantization. Values beyond
    ±65504 would overflow to inf; embeddings are far inside that range.
    """

    name, bits = "fp16", 16
    learns, random = False, False

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, 2 * d), dtype=np.uint8)
        half = out.view(np.float16)
        for b in _blocks(n):
            half[b] = X[b]
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        return (
            np.ascontiguousarray(codes).view(np.float16).reshape(len(codes), d).astype(np.float32)
        )


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    """Two 4-bit values a byte, first in the high nibble; an odd last value pairs with 0."""
    if q.shape[1] % 2:
        q = np.concatenate([q, np.zeros((len(q), 1), dtype=np.uint8)], axis=1)
    return (q[:, 0::2] << 4) | q[:, 1::2]


class Int4(Code):
    """Per-dimension range clipped at calibration quantiles 0.5% and 99.5%, 16 levels.

    With only 16 levels a min/max range spends most of them on a few outliers, so
    the range is [q_0.005, q_0.995] of each dimension's calibration values (about
    1% of calibration values clip); values outside it clip to the end levels, never
    wrap. Level j decodes to lo + j·step, step = (hi − lo) / 15. Two values a byte,
    the first dimension in the high nibble. A dimension whose range is empty
    (hi == lo) always decodes to lo.
    """

    name, bits = "int4", 4
    learns, random = True, False
    quantiles = (0.005, 0.995)

    def fit(self, X: np.ndarray) -> Int4:
        lo, hi = np.quantile(X, self.quantiles, axis=0)
        step = (hi - lo) / 15.0
        self.lo = lo.astype(np.float32)
        self.step = step.astype(np.float32)
        safe = np.where(step > 0, step, 1.0)
        self.inv = np.where(step > 0, 1.0 / safe, 0.0).astype(np.float32)
        self.shift = (-self.lo * self.inv).astype(np.float32)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        tmp = np.empty((min(n, BLOCK), d), dtype=np.float32)
        q = np.empty((min(n, BLOCK), d), dtype=np.uint8)
        for b in _blocks(n):
            m = b.stop - b.start
            t = tmp[:m]
            np.multiply(X[b], self.inv, out=t, dtype=np.float32)
            t += self.shift
            np.rint(t, out=t)
            np.clip(t, 0, 15, out=t)
            q[:m] = t
            out[b] = _pack_nibbles(q[:m])
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        q = np.empty((len(codes), 2 * codes.shape[1]), dtype=np.uint8)
        q[:, 0::2] = codes >> 4
        q[:, 1::2] = codes & 15
        return q[:, :d].astype(np.float32) * self.step + self.lo

    def params_bytes(self) -> int:
        return 2 * 4 * len(self.lo)


class TwoBit(Code):
    """Four levels per dimension: thresholds at the calibration quartiles.

    Each dimension's calibration values are split at their quartiles t1 < t2 < t3,
    so each level holds a quarter of them; level j decodes to the mean of the
    calibration values that fall in bin j (the MSE-optimal value for these
    thresholds, and it follows skewed dimensions, which fixed ±0.5, ±1.5 levels
    would not). An empty bin (ties) decodes to the middle of its two thresholds, or
    to its one threshold for an end bin. Stored as two packed bit planes, high bit
    (x > t2) then low bit (odd level), 2 bits a dimension.
    """

    name, bits = "2bit", 2
    learns, random = True, False

    def fit(self, X: np.ndarray) -> TwoBit:
        t = np.quantile(X, [0.25, 0.5, 0.75], axis=0).astype(np.float32)
        self.t = t
        level = (X > t[0]).astype(np.int8) + (X > t[1]) + (X > t[2])
        fallback = np.stack([t[0], (t[0] + t[1]) / 2, (t[1] + t[2]) / 2, t[2]])
        levels = np.empty((4, X.shape[1]), dtype=np.float32)
        for j in range(4):
            mask = level == j
            count = mask.sum(axis=0)
            total = np.where(mask, X, 0).sum(axis=0, dtype=np.float64)
            levels[j] = np.where(count > 0, total / np.maximum(count, 1), fallback[j])
        self.levels = levels
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        planes = np.empty((min(n, BLOCK), 2 * d), dtype=bool)
        above = np.empty((min(n, BLOCK), d), dtype=bool)
        t1, t2, t3 = self.t
        for b in _blocks(n):
            m = b.stop - b.start
            hi, lo = planes[:m, :d], planes[:m, d:]
            np.greater(X[b], t2, out=hi)
            # the level is odd exactly when x > t1 and x > t3 disagree with x > t2
            np.greater(X[b], t1, out=lo)
            np.logical_xor(lo, hi, out=lo)
            np.greater(X[b], t3, out=above[:m])
            np.logical_xor(lo, above[:m], out=lo)
            out[b] = np.packbits(planes[:m], axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=2 * d)
        level = 2 * bits[:, :d] + bits[:, d:]
        return self.levels[level, np.arange(d)]

    def params_bytes(self) -> int:
        return self.t.nbytes + self.levels.nbytes


class TernarySym(Ternary):
    """Three levels with symmetric thresholds ±t per dimension, decoded to {-1, 0, +1}.

    t is the 1/3 quantile of |x| over each dimension's calibration values, so a
    third of them decode to 0, as with the quantile `ternary` preset. Unlike that
    preset the thresholds are symmetric about 0, not about each dimension's own
    centre: the sign of a coordinate keeps its meaning. |x| <= t decodes to 0.
    Stored like `ternary`: two packed bit planes (x >= -t, x > t), 2 bits a dimension.
    """

    name, bits = "ternary-sym", 2
    learns, random = True, False
    zero_fraction = 1 / 3

    def fit(self, X: np.ndarray) -> TernarySym:
        self.t = np.quantile(np.abs(X), self.zero_fraction, axis=0).astype(np.float32)
        # Ternary's planes are x > t1 and x > t2; x >= -t is x > the float below -t
        self.t1, self.t2 = np.nextafter(-self.t, np.float32(-np.inf)), self.t
        return self

    def params_bytes(self) -> int:
        return self.t.nbytes


class BinaryCentered(Code):
    """One bit per dimension: x > the dimension's calibration median, decoded to ±1.

    The median (not the mean) makes every bit split calibration 50/50, the most
    informative bit, and ignores outliers; `center+binary` gives the mean version.
    Cosine on the decoded ±1 vectors is affine in Hamming distance, as for `binary`.
    """

    name, bits = "binary-centered", 1
    learns, random = True, False

    def fit(self, X: np.ndarray) -> BinaryCentered:
        self.threshold = np.median(X, axis=0).astype(np.float32)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in _blocks(n):
            out[b] = np.packbits(X[b] > self.threshold, axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=d).astype(np.float32)
        return bits * 2.0 - 1.0

    def params_bytes(self) -> int:
        return self.threshold.nbytes


class Transform(ABC):
    """A map applied to float vectors before the code, fitted on calibration.

    Every concrete transform sets three class attributes (left unset here so a new
    transform cannot inherit a wrong answer silently):

    - `learns`: fits something on calibration vectors (a mean, a basis, ITQ);
    - `random`: draws random numbers (from `DEFAULT_SEED + seed`);
    - `keeps_cosines`: every cosine between two vectors is the same after the map
      (an orthogonal map or an isometry), for any fit. A chain with a part that
      does not keep cosines changes the float geometry itself and is reported beside
      its float control (`control_spec`).
    """

    name: str
    learns: bool
    random: bool
    keeps_cosines: bool
    needs_full_rank = False  # True: fits a PCA basis, needs more calibration vectors than d

    def fit(self, X: np.ndarray) -> Transform:
        return self

    def _require(self, attr: str) -> None:
        if not hasattr(self, attr):
            raise RuntimeError(f"transform {self.name} used before fit")

    @abstractmethod
    def apply(self, X: np.ndarray) -> np.ndarray: ...

    def out_dim(self, d: int) -> int:
        """Output dimensions for d-dimensional input (after fit for a fitted size)."""
        return d

    def params_bytes(self) -> int:
        return 0


def _matrix_out_dim(t: Transform, d: int) -> int:
    """Columns of a fitted d × r matrix `t.R`; d before fit (r is known only then)."""
    R = getattr(t, "R", None)
    if R is None:
        return d
    if d != R.shape[0]:
        raise ValueError(f"{t.name} was fitted on {R.shape[0]} dimensions, got {d}")
    return R.shape[1]


class MatrixRotation(Transform):
    """A transform that is one fitted d × r matrix R with orthonormal columns: X @ R.

    r = d (a rotation) unless the matrix comes from the calibration's PCA basis,
    which drops the directions without calibration variance (`_pca_basis`). The
    output has r dimensions once fitted: `out_dim(d)` is d before fit and r after,
    so sizes and codes of a fitted technique use r.
    """

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("R")
        return np.asarray(X, dtype=np.float32) @ self.R

    def out_dim(self, d: int) -> int:
        return _matrix_out_dim(self, d)

    def params_bytes(self) -> int:
        return self.R.nbytes


class SVDRotation(MatrixRotation):
    """The seed's "rotation", done as intended: X @ V, V the right singular vectors.

    V (d × r) comes from the centred calibration matrix: the eigenvectors of its
    scatter matrix, largest first, signs fixed so each column's largest entry is
    positive, without the directions that have no calibration variance (r ≤ d; see
    `_pca_basis`). Only V is applied, to the *uncentred* vectors, as the seed's
    presets define it: the mean is used to find V but not subtracted, so a code
    after `svd` still sees each vector's offset. With r = d this is a rotation and
    keeps every cosine; with r < d it projects out the dropped directions, which
    carry no calibration variance but can carry part of the common offset (e.g. a
    dimension constant on calibration): the rotated vectors lose that constant part,
    so cosines can change a little, and `keeps_cosines` is False (a chain with `svd`
    is read against its float control). `center+svd+...` subtracts the calibration
    mean first: then the dropped directions hold nothing on calibration vectors, and
    the code sees zero-mean coordinates (worth about 3 points of Banking77
    retention for binary), but cosines are those of the centred vectors.
    PCA piles variance into the first coordinates, which equal-width codes handle
    badly; it is kept as the seed's presets define it.
    """

    name = "svd"
    learns, random, keeps_cosines = True, False, False
    needs_full_rank = True  # fits a PCA basis: more calibration vectors than dimensions

    def fit(self, X: np.ndarray) -> SVDRotation:
        self.R = _pca_basis(X).astype(np.float32)
        return self


DEFAULT_SEED = 0  # every random transform draws from this unless given another seed
PARAM = "<k>"  # a TRANSFORMS key ending in this takes a positive integer in its place
_PARAM_NAME = re.compile(r"(?P<base>[a-z][a-z-]*?)(?P<k>[1-9][0-9]*)")


def _haar(d: int, seed: int) -> np.ndarray:
    """A d × d orthogonal matrix drawn from the Haar measure (float64).

    QR of a standard Gaussian matrix, with the signs of R's diagonal moved into Q;
    without that correction Q is orthogonal but not uniformly distributed.
    """
    G = np.random.default_rng(seed).standard_normal((d, d))
    Q, R = np.linalg.qr(G)
    return Q * np.sign(np.diag(R))


RANK_RTOL = 1e-9  # PCA directions with eigenvalue <= RANK_RTOL × the largest are dropped


def _pca_basis(X: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """Right singular vectors of the centred matrix, largest first (d × r, float64).

    Eigenvectors of the scatter matrix S = Xcᵀ Xc; signs fixed so each column's
    largest-magnitude entry is positive, so the same data always gives the same
    basis. Eigenvectors whose eigenvalue is ≤ rtol × the largest are dropped, so r
    is the numerical rank of the centred calibration matrix. Their eigenvalues are
    rounding noise, and so are the eigenvectors: a model with dead dimensions
    (all-MiniLM-L6-v2 has 3, values ~1e-8 or below) gives a (near-)null space in
    which eigh returns an arbitrary basis that changes with the last bits of the
    calibration sample, and a code fitted per coordinate (int8 ranges, ternary
    quantiles, sign bits of the offset) would then depend on that noise.

    Why rtol = 1e-9: eigh in float64 resolves eigenvalues to about eps64 · ‖S‖ · O(d)
    ≈ 1e-13 × the largest for d in the thousands, and float32 inputs add rounding
    variance of about 2⁻⁴⁸ ≈ 4e-15 of each coordinate's second moment, ≲ 1e-11 of
    the largest eigenvalue for such d unless the common offset dwarfs the spread; so
    anything below ~1e-11 of the largest eigenvalue is noise. 1e-9 stays two orders
    above that floor, and a direction it drops carries at most 1e-9 of the first
    direction's variance (a standard deviation ≤ 3e-5 of it), nothing a cosine can
    see; kept, it would get a full per-coordinate code (int8 range, ternary
    quantiles) of noise. On 3,000 STSBenchmark train sentences embedded with all-MiniLM-L6-v2 the
    spectrum has a gap of 13 orders: the 3 dead directions sit at 1e-17 to 1e-19 of
    the largest eigenvalue, the smallest live one at 2e-4; any rtol in between drops
    exactly those 3 (r = 381).

    Raises ValueError when there are no more calibration vectors than dimensions (the
    rank would then be cut by the sample size, a silent dimension cut) or no variance
    at all (r = 0).
    """
    n, d = X.shape
    if n <= d:  # rank ≤ n − 1 < d: dropping would quietly cut dimensions, not noise
        raise ValueError(
            f"a PCA basis of {d}-dimensional vectors needs more than {d} calibration "
            f"vectors, got {n} (raise calibration.max_texts)"
        )
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    evals, V = np.linalg.eigh(Xc.T @ Xc)
    order = np.argsort(evals)[::-1]
    evals, V = evals[order], V[:, order]
    r = int(np.count_nonzero(evals > rtol * evals[0])) if evals[0] > 0 else 0
    if r == 0:
        raise ValueError(
            f"the {len(X)} calibration vectors are all equal: no PCA direction to keep"
        )
    V = V[:, :r]
    signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(r)])
    return V * signs


class Center(Transform):
    """Subtract the calibration mean of each dimension.

    Not orthogonal (a translation): cosines change, and that is the point. Embedding
    dimensions often have a non-zero mean, so a sign bit or a symmetric threshold
    says little about them; after centring, `center+binary` thresholds each
    dimension at its calibration mean.
    """

    name = "center"
    learns, random, keeps_cosines = True, False, False

    def fit(self, X: np.ndarray) -> Center:
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        return self

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("mean")
        return np.subtract(X, self.mean, dtype=np.float32)

    def params_bytes(self) -> int:
        return self.mean.nbytes


class HaarRotation(MatrixRotation):
    """A random orthogonal d × d rotation from the Haar measure, seeded.

    Orthogonal: cosines are kept. A random rotation spreads each vector's energy
    evenly over the coordinates, so equal-width per-dimension codes waste fewer
    bits than after PCA (which piles variance into the first coordinates). Fitting
    reads only the dimension d of the calibration set; `R` depends on d and seed.
    """

    name = "haar"
    learns, random, keeps_cosines = False, True, True

    def __init__(self, seed: int = DEFAULT_SEED):
        self.seed = seed

    def fit(self, X: np.ndarray) -> HaarRotation:
        self.R = _haar(X.shape[1], self.seed).astype(np.float32)
        return self


class PCAHaarRotation(MatrixRotation):
    """PCA basis (as `svd`) followed by a seeded r × r Haar rotation: `R = V · Q`.

    V is d × r without the directions that have no calibration variance (see
    `_pca_basis`), so R (d × r) has orthonormal columns and, like `svd`, projects
    those directions out of the uncentred vectors: cosines are kept when r = d and
    can change slightly otherwise (`keeps_cosines` is False). Within the kept span,
    V · Q is a uniformly random orthonormal basis (the Haar measure is invariant
    under a fixed rotation, and Q is drawn independently of the data): with r = d,
    `pca-haar` is `haar` with a different draw, and the gap between the two
    measures draw-to-draw noise; with r < d it is `haar` restricted to the span of
    the calibration vectors.
    """

    name = "pca-haar"
    learns, random, keeps_cosines = True, True, False
    needs_full_rank = True

    def __init__(self, seed: int = DEFAULT_SEED):
        self.seed = seed

    def fit(self, X: np.ndarray) -> PCAHaarRotation:
        V = _pca_basis(X)
        self.R = (V @ _haar(V.shape[1], self.seed)).astype(np.float32)
        return self


class ITQ(Transform):
    """Iterative Quantization (Gong & Lazebnik 2011): a rotation learned for sign bits.

    ITQ assumes zero-mean data, so the transform is `(x − μ) · R` with μ the
    calibration mean: an orthogonal map after centring (not orthogonal overall:
    cosines change as with `center`). R = V · R_itq: V (d × r) the PCA basis of the
    centred calibration vectors, every component with calibration variance kept (r
    is d less the directions `_pca_basis` drops; after centring those hold nothing
    on calibration vectors), R_itq (r × r) the orthogonal matrix that
    minimises ||B − P R_itq||²_F with P = (X − μ) V and B = sign(P R_itq) ∈ {±1},
    by alternating B and R_itq (orthogonal Procrustes: R_itq = W Uᵀ for
    Bᵀ P = U S Wᵀ) for `iterations` steps from a seeded Haar start. `losses` holds
    ||B − P R_itq||²_F before each step and after the last (iterations + 1 values,
    non-increasing). Float64 throughout; each step costs O(n d² + d³): with 5,000
    calibration vectors on 2 cores a fit takes about 4 s at d = 384, 17 s at 768,
    40 s at 1024.
    """

    name = "itq"
    learns, random, keeps_cosines = True, True, False
    needs_full_rank = True

    def __init__(self, seed: int = DEFAULT_SEED, iterations: int = 50):
        self.seed = seed
        self.iterations = iterations

    def fit(self, X: np.ndarray) -> ITQ:
        X64 = np.asarray(X, dtype=np.float64)
        mean = X64.mean(axis=0)
        V = _pca_basis(X64)
        P = (X64 - mean) @ V
        R = _haar(V.shape[1], self.seed)
        losses = []
        for step in range(self.iterations + 1):
            Z = P @ R
            B = np.where(Z >= 0, 1.0, -1.0)
            losses.append(float(np.square(B - Z).sum()))
            if step == self.iterations:
                break
            U, _, Wt = np.linalg.svd(B.T @ P)
            R = Wt.T @ U.T
        self.losses = np.array(losses)
        W = V @ R
        self.mean = mean.astype(np.float32)
        self.R = W.astype(np.float32)
        self.offset = (mean @ W).astype(np.float32)
        return self

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("R")
        Z = np.asarray(X, dtype=np.float32) @ self.R
        Z -= self.offset
        return Z

    def out_dim(self, d: int) -> int:
        return _matrix_out_dim(self, d)

    def params_bytes(self) -> int:
        return self.R.nbytes + self.mean.nbytes


def _sylvester(n: int) -> np.ndarray:
    """The n × n Sylvester Hadamard matrix (entries ±1, H[i, j] = (−1)^popcount(i & j))."""
    H = np.ones((1, 1), dtype=np.float32)
    while len(H) < n:
        H = np.block([[H, H], [H, -H]])
    return H


class _WalshHadamard:
    """Unnormalised Walsh–Hadamard transform of rows of length n = 2^p (Sylvester order).

    A fast transform with radix-r butterflies: H_n = H_r1 ⊗ H_r2 ⊗ ..., r_i ≤ 64, so
    a row viewed as an r1 × r2 × ... array is multiplied by a small ±1 matrix along
    each axis in turn. That costs n·Σr_i operations (O(n log n) for bounded radix)
    against n² for a dense rotation, and each axis is one batched matmul over a
    block of rows, so numpy runs it at BLAS speed instead of log2(n) strided
    add/subtract passes (those are slower than the dense matmul in numpy).
    """

    MAX_RADIX_LOG2 = 6

    def __init__(self, n: int):
        p = n.bit_length() - 1
        parts = max(1, -(-p // self.MAX_RADIX_LOG2))
        self.n = n
        self.radices = [1 << (p // parts + (i < p % parts)) for i in range(parts)]
        self.H = {r: _sylvester(r) for r in set(self.radices)}

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Transform the rows of `a` (m × n, C-contiguous) using `b` (same shape) as scratch.

        Returns whichever of the two holds the result: `a` if the number of radices
        is even, else `b`.
        """
        m, n = a.shape
        before = 1
        for r in self.radices:
            after = n // (before * r)
            if after == 1:  # last axis: right-multiply (H is symmetric)
                np.matmul(a.reshape(m, before, r), self.H[r], out=b.reshape(m, before, r))
            else:
                shape = (m * before, r, after)
                np.matmul(self.H[r], a.reshape(shape), out=b.reshape(shape))
            a, b = b, a
            before *= r
        return a


def _next_pow2(d: int) -> int:
    return 1 << (d - 1).bit_length()


class RandomizedHadamard(Transform):
    """Randomized Hadamard rotation: random ±1 signs D, then H/√n (a fast WHT), seeded.

    Orthogonal and d-preserving: cosines are kept and sizes are those of d. When d
    is a power of two the map is exactly x ↦ H D x / √d (as row vectors, X @ D H/√d).
    Otherwise, with n the largest power of two ≤ d (so n > d/2), it is three such
    n-dimensional rotations, each with its own signs, on the coordinate windows
    [0, n), [d − n, d), [0, n) in turn: each is orthogonal on R^d (identity outside
    its window), so their product is, and after the three every output coordinate
    depends on every input one. Chosen over zero-padding so a `hadamard+binary`
    code has exactly as many bits as `binary`; `hadamard-pad` is the padded variant.
    Costs O(d log d) per vector against O(d²) for a dense rotation; rows are processed
    in cache-sized blocks, float32 throughout, chunks of rows on up to THREADS
    threads (results do not depend on the split). bench/rotation_throughput.py
    measures it against `X @ R`: about 5× faster at d = 1024, but only 1–2× at 384
    and 768, where the three windows cost three transforms.
    """

    name = "hadamard"
    learns, random, keeps_cosines = False, True, True
    pad = False
    BLOCK_FLOATS = 1 << 15  # floats per row block (128 KiB): the scratch blocks stay in L2
    THREADS = min(4, os.cpu_count() or 1)  # row chunks run in parallel, like a BLAS rotation

    def __init__(self, seed: int = DEFAULT_SEED):
        self.seed = seed

    def out_dim(self, d: int) -> int:
        return _next_pow2(d) if self.pad else d

    def fit(self, X: np.ndarray) -> RandomizedHadamard:
        d = X.shape[1]
        if self.pad:
            n = _next_pow2(d)
            offsets = [0]
        else:
            n = 1 << (d.bit_length() - 1)
            offsets = [0] if n == d else [0, d - n, 0]
        rng = np.random.default_rng(self.seed)
        scale = 1.0 / math.sqrt(n)
        self.signs = [((rng.integers(0, 2, n) * 2 - 1) * scale).astype(np.float32) for _ in offsets]
        self.offsets, self.d, self.n = offsets, d, n
        self._wht = _WalshHadamard(n)
        return self

    def apply(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X (n × d) rotated, as float32 (n × out_dim); written into `out` if given.

        `out` must be a C-contiguous float32 array of that shape, not overlapping X.
        """
        self._require("signs")
        X = np.asarray(X, dtype=np.float32)
        rows, d = X.shape
        if d != self.d:
            raise ValueError(f"{self.name} was fitted on {self.d} dimensions, got {d}")
        shape = (rows, self.out_dim(d))
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        step = max(1, self.BLOCK_FLOATS // self.n)
        workers = min(self.THREADS, -(-rows // (4 * step)))
        if workers <= 1:
            self._apply_rows(X, out, step)
            return out
        # rows are independent: contiguous chunks on threads (numpy releases the GIL)
        bounds = [rows * i // workers for i in range(workers + 1)]
        with ThreadPoolExecutor(workers) as pool:
            jobs = [
                pool.submit(self._apply_rows, X[lo:hi], out[lo:hi], step)
                for lo, hi in itertools.pairwise(bounds)
            ]
            for job in jobs:
                job.result()
        return out

    def _apply_rows(self, X: np.ndarray, out: np.ndarray, step: int) -> None:
        rows, d = X.shape
        n = self.n
        s0 = np.empty((min(rows, step), n), dtype=np.float32)
        s1 = np.empty_like(s0)
        even = len(self._wht.radices) % 2 == 0
        for b in _blocks(rows, step):
            m = b.stop - b.start
            if len(self.offsets) == 1:
                # one window over the whole (padded) row: start in the buffer the
                # transform ends in, so the result lands in `out` without a copy
                first, other = (out[b], s1[:m]) if even else (s0[:m], out[b])
                np.multiply(X[b], self.signs[0][:d], out=first[:, :d])
                first[:, d:] = 0.0
                self._wht(first, other)
                continue
            ob = out[b]
            ob[:, n:] = X[b, n:]
            src = X[b]
            for lo, signs in zip(self.offsets, self.signs, strict=True):
                np.multiply(src[:, lo : lo + n], signs, out=s0[:m])
                ob[:, lo : lo + n] = self._wht(s0[:m], s1[:m])
                src = ob

    def matrix(self) -> np.ndarray:
        """The map as a d × out_dim matrix M (apply(X) == X @ M), built by applying it to I."""
        return self.apply(np.eye(self.d, dtype=np.float32))

    def params_bytes(self) -> int:
        return sum(s.nbytes for s in self.signs)


class RandomizedHadamardPadded(RandomizedHadamard):
    """Randomized Hadamard after zero-padding to the next power of two n ≥ d.

    x ↦ H D [x, 0] / √n: an isometry (inner products and cosines kept) from R^d
    into R^n, not square: the output, and so the code's size, has n dimensions
    (384 → 512, 768 → 1024; sizes and bits per vector are computed on n). For d a
    power of two it is `hadamard`. This is the usual construction (e.g. faiss
    HadamardRotation); it buys extra, redundant, coordinates with extra bits.
    """

    name = "hadamard-pad"
    pad = True


class Truncate(Transform):
    """Keep the first k dimensions and L2-renormalise each row (Matryoshka truncation).

    Not orthogonal (a projection, then a rescale): this is how Matryoshka models are
    meant to be used at a smaller size, the first dimensions carrying the most.
    Named `trunc<k>`, e.g. `trunc128`; k > d is an error (ValueError) at fit, and
    when a size is asked for d. Rows of zeros stay zero.
    """

    name = "trunc" + PARAM
    learns, random, keeps_cosines = False, False, False

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"trunc{k}: k must be a positive integer")
        self.k = k
        self.name = f"trunc{k}"

    def _check(self, d: int) -> None:
        if self.k > d:
            raise ValueError(
                f"{self.name}: cannot keep the first {self.k} dimensions of "
                f"{d}-dimensional vectors (k must be at most {d})"
            )

    def out_dim(self, d: int) -> int:
        self._check(d)
        return self.k

    def fit(self, X: np.ndarray) -> Truncate:
        self._check(X.shape[1])
        self.d = X.shape[1]
        return self

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("d")
        self._check(X.shape[1])
        out = np.array(X[:, : self.k], dtype=np.float32)
        for b in _blocks(len(out)):
            norms = np.linalg.norm(out[b], axis=1, keepdims=True)
            np.divide(out[b], norms, out=out[b], where=norms > 0)
        return out


CODES: dict[str, type[Code]] = {
    c.name: c
    for c in (Float32, Int8, Ternary, Binary, Float16, Int4, TwoBit, TernarySym, BinaryCentered)
}
# Keys are what a spec is written with; `trunc<k>` stands for trunc1, trunc2, ...
TRANSFORMS: dict[str, type[Transform]] = {
    t.name: t
    for t in (
        SVDRotation,
        Center,
        HaarRotation,
        RandomizedHadamard,
        RandomizedHadamardPadded,
        PCAHaarRotation,
        ITQ,
        Truncate,
    )
}

PRESETS: dict[str, str] = {
    "classic": "float32",
    "scalar": "int8",
    "ternary": "ternary",
    "binary": "binary",
    "rotated-scalar": "svd+int8",
    "rotated-ternary": "svd+ternary",
    "rotated-binary": "svd+binary",
}


@dataclass
class Technique:
    """Transforms then a code; `spec` is its canonical name, e.g. `svd+binary`.

    `seed` is the replicate seed its random parts were built with (they draw from
    `DEFAULT_SEED + seed`); the spec does not include it. `search_learns` is set by
    whoever adds search options that fit something on calibration themselves
    (`registry.build_technique` for `/rescore<k>-int8`: the int8 re-ranking copies).
    """

    name: str
    spec: str
    transforms: list[Transform] = field(default_factory=list)
    code: Code = field(default_factory=Float32)
    fitted: bool = False
    seed: int = 0
    search_learns: bool = False

    @property
    def learns(self) -> bool:
        """Some part is fitted on calibration vectors (a transform, the code, a search)."""
        parts = [*self.transforms, self.code]
        return self.search_learns or any(p.learns for p in parts)

    @property
    def random(self) -> bool:
        """Some part draws random numbers (from `DEFAULT_SEED + seed`)."""
        return any(p.random for p in [*self.transforms, self.code])

    @property
    def depends_on_seed(self) -> bool:
        """Another calibration sample or replicate seed can change the technique, so it
        is run over several seeds (float32, fp16, binary, truncation, native codes:
        no, one run is the answer)."""
        return self.learns or self.random

    def fit(self, X_cal: np.ndarray) -> Technique:
        """Fit every part in order on calibration vectors only."""
        Z = np.asarray(X_cal, dtype=np.float32)
        for t in self.transforms:
            Z = t.fit(Z).apply(Z)
        self.code.fit(Z)
        self.fitted = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float32)
        for t in self.transforms:
            Z = t.apply(Z)
        return Z

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The stored codes (uint8 rows)."""
        if not self.fitted:
            raise RuntimeError(f"technique {self.name} used before fit")
        return self.code.encode(self.transform(X))

    def decode(self, codes: np.ndarray, d_in: int) -> np.ndarray:
        return self.code.decode(codes, self.out_dim(d_in))

    def roundtrip(self, X: np.ndarray) -> np.ndarray:
        """What an evaluator sees: decode(encode(X)), always through the packed bytes."""
        return self.decode(self.encode(X), X.shape[1])

    def out_dim(self, d_in: int) -> int:
        d = d_in
        for t in self.transforms:
            d = t.out_dim(d)
        return d

    def bytes_per_vector(self, d_in: int) -> int:
        return self.code.bytes_per_vector(self.out_dim(d_in))

    def bits_per_vector(self, d_in: int) -> int:
        """Stored bits per vector (8 × bytes per vector, so including any padding bits)."""
        return 8 * self.bytes_per_vector(d_in)

    def bits_per_dim(self, d_in: int) -> float:
        """Stored bits per dimension of the original float vector."""
        return 8 * self.bytes_per_vector(d_in) / d_in

    def size_multiplier(self, d_in: int) -> float:
        return 4 * d_in / self.bytes_per_vector(d_in)

    def params_bytes(self) -> int:
        return sum(t.params_bytes() for t in self.transforms) + self.code.params_bytes()


def technique_names() -> list[str]:
    """Preset names and every code name (transform compositions come on top)."""
    return sorted(set(PRESETS) | set(CODES))


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def build_transform(part: str, seed: int = 0) -> Transform:
    """One transform from its name: a TRANSFORMS key, or `base<k>` written `base128`.

    A random transform draws from `DEFAULT_SEED + seed`. Raises `KeyError(part)` for
    anything else (including `trunc`, `trunc0`, `trunc<k>`).
    """
    _check_seed(seed)
    cls = TRANSFORMS.get(part)
    if cls is not None and not part.endswith(PARAM):
        return cls(seed=DEFAULT_SEED + seed) if cls.random else cls()
    m = _PARAM_NAME.fullmatch(part)
    if m and m["base"] + PARAM in TRANSFORMS:
        return TRANSFORMS[m["base"] + PARAM](int(m["k"]))
    raise KeyError(part)


def _split_spec(name: str) -> tuple[str, list[str], str]:
    """(spec, transform parts, code) of a preset or `transform+...+code` name.

    Raises `KeyError(code)` for an unknown code; transforms are not checked here.
    """
    spec = PRESETS.get(name, name)
    *parts, code = spec.split("+")
    if code not in CODES:
        raise KeyError(code)
    return spec, parts, code


def parse_technique(name: str, seed: int = 0) -> Technique:
    """Build a technique from a preset name or a `transform+...+code` spec.

    `seed` is the replicate seed: random transforms (haar, pca-haar, hadamard,
    hadamard-pad, ITQ's Haar start) draw from `DEFAULT_SEED + seed`, so seed 0 is
    the technique every name meant before seeds existed, and the same name and seed
    always give byte-identical codes on the same calibration. Parts that are not
    random ignore it (another seed changes them only through another calibration
    sample, which the caller draws). Raises `KeyError` with the offending part for
    an unknown name: the code is checked first, then the transforms left to right;
    `ValueError` for a seed that is not a non-negative integer.
    """
    _check_seed(seed)
    spec, parts, code = _split_spec(name)
    transforms = [build_transform(t, seed) for t in parts]
    return Technique(
        name=name, spec=spec, transforms=transforms, code=CODES[code](), seed=int(seed)
    )


def control_spec(spec_or_name: str) -> str | None:
    """The float control of a technique: its transform chain with the float32 code.

    A chain with a transform that does not keep cosines (`keeps_cosines` False:
    centring, ITQ (it centres), svd and pca-haar (they project out the directions
    without calibration variance), truncation) changes the float geometry itself,
    which can help or hurt before any code; its retention is read against this
    control, e.g. `itq+binary` -> `itq+float32`, `trunc192+int8` ->
    `trunc192+float32`, the preset `rotated-binary` -> `svd+float32`,
    `center+svd+ternary` -> `center+svd+float32`. The control keeps every
    transform in order, isometries included (`center+haar+binary` ->
    `center+haar+float32`), so it must be built with the same seed and fitted on the
    same calibration as the technique.

    None when no control is needed: a code alone, a chain of isometries only (haar,
    hadamard, hadamard-pad: cosines kept, the float baseline is the control), a
    chain already ending in float32, and provider-native codes (no float chain).
    Search options after a slash are dropped: the control of `itq+binary/rescore4`
    (or `/asym`) is `itq+float32`, a plain exhaustive search with the transformed
    float vectors, i.e. the geometry the code approximates. `/rescore<k>` re-ranks
    its candidates with the untransformed float vectors (or int8 copies of them),
    so for a rescored technique the control measures the transformed geometry that
    picks the candidates, not the re-ranking. Raises `KeyError` with the offending
    part for an unknown name, as `parse_technique` does.
    """
    from embedbench.native import native_kind

    base = spec_or_name.split("/")[0]
    if native_kind(base) is not None:
        return None
    _, parts, code = _split_spec(base)
    transforms = [build_transform(t) for t in parts]
    if code == Float32.name or all(t.keeps_cosines for t in transforms):
        return None
    return "+".join([*parts, Float32.name])
