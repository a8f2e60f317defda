"""The randomized Hadamard rotation (`hadamard`, `hadamard-pad`): O(d log d) per vector.

Random signs, then a fast Walsh–Hadamard transform done as a few small ±1 matrix
products (BLAS speed), on row blocks and up to `THREADS` threads.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embedbench.quantize.codes import row_blocks
from embedbench.quantize.transforms import DEFAULT_SEED, Transform


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
        for b in row_blocks(rows, step):
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
