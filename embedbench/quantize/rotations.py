"""Rotations fitted on calibration: the PCA basis (`svd`), Haar, PCA+Haar and ITQ.

Each is one d × r matrix R with orthonormal columns applied as X @ R (ITQ after
centring); r < d when the calibration's PCA basis drops directions without variance
(`_pca_basis`). Random ones draw from `DEFAULT_SEED + seed`.
"""

from __future__ import annotations

import numpy as np

from embedbench.quantize.transforms import (
    DEFAULT_SEED,
    PARAM,
    KeepK,
    MatrixRotation,
    Transform,
    _matrix_out_dim,
)


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


class _CentredProjection(Transform):
    """`(x − μ) · R` for a fitted d × r matrix R with orthonormal columns."""

    def set_projection(self, mean: np.ndarray, R: np.ndarray) -> None:
        self.mean = mean.astype(np.float32)
        self.R = R.astype(np.float32)
        self.offset = (mean @ R).astype(np.float32)

    def apply(self, X: np.ndarray) -> np.ndarray:
        self._require("R")
        Z = np.asarray(X, dtype=np.float32) @ self.R
        Z -= self.offset
        return Z

    def out_dim(self, d: int) -> int:
        return _matrix_out_dim(self, d)

    def params_bytes(self) -> int:
        return self.R.nbytes + self.mean.nbytes

    def inverse(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """z · Rᵀ + μ: the whole mean comes back, also outside the kept directions
        (the least-squares inverse of the affine map only restores μ · R Rᵀ)."""
        self._require("R")
        return self.R.T.astype(np.float64), self.mean.astype(np.float64)


class ITQ(_CentredProjection):
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
        self.set_projection(mean, V @ R)
        return self


class PCAReduce(KeepK, _CentredProjection):
    """PCA dimension reduction: `(x − μ) · V_k`, the top k principal directions.

    μ is the calibration mean and V_k (d × k) the first k columns of the calibration's
    PCA basis (`_pca_basis`), largest variance first: the k-dimensional subspace that
    keeps the most calibration variance, where truncation (`trunc<k>`) keeps whatever
    the first k coordinates hold. Named `pca<k>`, e.g. `pca192+itq+binary` (ITQ's
    original recipe: PCA to the code length, then the learned rotation). Not
    orthogonal (centring, then a projection): read against its float control
    `pca<k>+float32`. k larger than the calibration's numerical rank is a ValueError.
    """

    name, family, kept = "pca" + PARAM, "pca", "{k} principal directions"
    learns, random, keeps_cosines = True, False, False
    needs_full_rank = True

    def fit(self, X: np.ndarray) -> PCAReduce:
        self._check(X.shape[1])
        X64 = np.asarray(X, dtype=np.float64)
        V = _pca_basis(X64)
        if V.shape[1] < self.k:
            raise ValueError(
                f"{self.name}: the calibration vectors have only {V.shape[1]} principal "
                f"directions with variance, fewer than {self.k}"
            )
        self.set_projection(X64.mean(axis=0), V[:, : self.k])
        return self
