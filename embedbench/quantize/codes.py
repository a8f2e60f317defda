"""Codes: float vectors to packed bytes and back, `bits` per dimension.

A code's `encode` is the storage format (it defines the size: `bytes_per_vector`);
`decode` gives the floats an evaluator sees: binary as ±1, ternary as {-1, 0, +1},
int8/int4 dequantized. A code that `learns` fits its parameters (ranges, quantiles,
medians) in `fit`, on calibration vectors only. Encoding works in row blocks of
`BLOCK` rows so temporaries stay in cache. `CODES` maps each code's name to its class.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor

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

    def check(self, d: int) -> str | None:
        """Why this code cannot code d-dimensional vectors (None: it can)."""
        return None

    def training_note(self, n_train: int, d: int) -> str | None:
        """A note when n_train calibration vectors are fewer than its training asks for."""
        return None

    # decode(encode(x)) estimates x for inner products with a float query, so an
    # asymmetric search scores documents by <q, decoded> without re-normalising them
    ip_estimator: bool = False

    # an asymmetric search scores the stored codes with the engine's own estimator
    # (`search_scores`), which decoding does not give (faiss's RaBitQ); an engine
    # preset (`engine` set, `embedbench.engines`) is searched that way always
    engine_search: bool = False
    engine: str | None = None

    def originals_bytes(self, d: int) -> int:
        """Bytes a vector an engine keeps beside the code in any case (its original
        floats); 0 for a plain code."""
        return 0

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The engine's score of every code for every (transformed) float query."""
        raise NotImplementedError(f"{self.name} has no search estimator of its own")


def row_blocks(n: int, size: int = BLOCK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def parallel_rows(fn, arrays: tuple[np.ndarray, ...], threads: int, min_rows: int) -> None:
    """fn(*chunks) for contiguous row chunks of `arrays`, on up to `threads` threads.

    A thread gets at least min_rows rows. The rows are cut into about 4 chunks a
    thread, handed out as threads free up, so a thread slowed by other work on the
    machine takes fewer. fn must compute each row alone (numpy and the numba kernels
    release the GIL): the result does not depend on the split.
    """
    n = len(arrays[0])
    workers = min(threads, -(-n // max(1, min_rows)))
    if workers <= 1:
        fn(*arrays)
        return
    chunks = min(4 * workers, -(-n // max(1, min_rows // 4)))
    bounds = [n * i // chunks for i in range(chunks + 1)]
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(fn, *(a[lo:hi] for a in arrays)) for lo, hi in itertools.pairwise(bounds)
        ]
        for job in jobs:
            job.result()


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
        for b in row_blocks(len(X)):
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
        for b in row_blocks(n):
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
        for b in row_blocks(n):
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
        for b in row_blocks(n):
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
        for b in row_blocks(n):
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
        for b in row_blocks(n):
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
        for b in row_blocks(n):
            out[b] = np.packbits(X[b] > self.threshold, axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=d).astype(np.float32)
        return bits * 2.0 - 1.0

    def params_bytes(self) -> int:
        return self.threshold.nbytes


CODES: dict[str, type[Code]] = {
    c.name: c
    for c in (Float32, Int8, Ternary, Binary, Float16, Int4, TwoBit, TernarySym, BinaryCentered)
}
