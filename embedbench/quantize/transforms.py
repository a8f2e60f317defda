"""Transforms: maps applied to float vectors before the code, fitted on calibration.

The `Transform` base says what every transform declares (`learns`, `random`,
`keeps_cosines`); this module holds it and the simple transforms: centring
(`center`) and Matryoshka truncation (`trunc<k>`). The PCA-based and random rotations
are in `embedbench.quantize.rotations`, the fast randomized Hadamard rotation in
`embedbench.quantize.hadamard`. Random transforms draw from `DEFAULT_SEED + seed`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from embedbench.quantize.codes import row_blocks

DEFAULT_SEED = 0  # every random transform draws from this unless given another seed
PARAM = "<k>"  # a TRANSFORMS key ending in this takes a positive integer in its place


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

    def inverse(self, d: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(P, c) with x ≈ apply(x) @ P + c, when the transform knows its inverse
        better than the least-squares one `quantize.distortion` derives; else None."""
        return None


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


class KeepK(Transform):
    """A transform that keeps k of d dimensions, named `<family><k>` (k ≥ 1, k ≤ d)."""

    family: str
    kept: str  # what is kept, with {k}: "the first {k} dimensions"

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"{self.family}{k}: k must be a positive integer")
        self.k = k
        self.name = f"{self.family}{k}"

    def _check(self, d: int) -> None:
        if self.k > d:
            raise ValueError(
                f"{self.name}: cannot keep {self.kept.format(k=self.k)} of "
                f"{d}-dimensional vectors (k must be at most {d})"
            )

    def out_dim(self, d: int) -> int:
        self._check(d)
        return self.k


class Truncate(KeepK):
    """Keep the first k dimensions and L2-renormalise each row (Matryoshka truncation).

    Not orthogonal (a projection, then a rescale): this is how Matryoshka models are
    meant to be used at a smaller size, the first dimensions carrying the most.
    Named `trunc<k>`, e.g. `trunc128`; k > d is an error (ValueError) at fit, and
    when a size is asked for d. Rows of zeros stay zero.
    """

    name, family, kept = "trunc" + PARAM, "trunc", "the first {k} dimensions"
    learns, random, keeps_cosines = False, False, False

    def fit(self, X: np.ndarray) -> Truncate:
        self._check(X.shape[1])
        self.d = X.shape[1]
        return self

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("d")
        self._check(X.shape[1])
        out = np.array(X[:, : self.k], dtype=np.float32)
        for b in row_blocks(len(out)):
            norms = np.linalg.norm(out[b], axis=1, keepdims=True)
            np.divide(out[b], norms, out=out[b], where=norms > 0)
        return out
