"""The randomized Hadamard rotation (`hadamard`, `hadamard-pad`): O(d log d) per vector.

Random signs, then a fast Walsh–Hadamard transform, row by row in numba kernels
(`wht_kernels`: 16-float vector butterflies in L1 cache), row chunks on up to
`THREADS` threads.
"""

from __future__ import annotations

import math
import os

import numpy as np

from embedbench.quantize.codes import parallel_rows
from embedbench.quantize.transforms import DEFAULT_SEED, Transform


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
    Costs O(d log d) per vector against O(d²) for a dense rotation; float32
    throughout, rows one at a time in L1 cache (numba kernels, compiled on first use
    and cached), chunks of rows on up to THREADS threads (results do not depend on
    the split). bench/rotation_throughput.py measures it against `X @ R`.
    """

    name = "hadamard"
    learns, random, keeps_cosines = False, True, True
    pad = False
    BLOCK_FLOATS = 1 << 15  # a thread gets at least 4 × this many floats of rows
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
        self._kernel_args = (np.concatenate(self.signs), np.array(offsets, dtype=np.int64))
        return self

    def apply(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """X (n × d) rotated, as float32 (n × out_dim); written into `out` if given.

        `out` must be a C-contiguous float32 array of that shape, not overlapping X.
        """
        from embedbench.quantize.wht_kernels import rotate_rows  # numba: imported on use

        self._require("signs")
        return self._rows(rotate_rows, X, "was fitted on", self.d, self.out_dim(self.d), out)

    def invert(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The rows X with apply(X) = Z: Z (n × out_dim) mapped back by the transpose.

        `out` as for `apply`, of shape n × d.
        """
        from embedbench.quantize.wht_kernels import rotate_back_rows

        self._require("signs")
        return self._rows(rotate_back_rows, Z, "maps to", self.out_dim(self.d), self.d, out)

    def _rows(self, kernel, src, what: str, width: int, out_width: int, out) -> np.ndarray:
        """kernel(src rows, signs, offsets, out rows): src n × width into out n × out_width.

        Row chunks on up to THREADS threads, each with at least 4 × BLOCK_FLOATS floats.
        """
        src = np.ascontiguousarray(src, dtype=np.float32)
        rows, d = src.shape
        if d != width:
            raise ValueError(f"{self.name} {what} {width} dimensions, got {d}")
        shape = (rows, out_width)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        args = self._kernel_args
        threads, min_rows = self.THREADS, 4 * max(1, self.BLOCK_FLOATS // self.n)
        parallel_rows(lambda x, o: kernel(x, *args, o), (src, out), threads, min_rows)
        return out

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
