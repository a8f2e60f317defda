"""Lloyd–Max codebooks for the coordinate law of a random unit vector (TurboQuant §3.1).

One coordinate of a uniformly random unit vector in R^d has the density f_d (below);
`lloyd_max(d, bits)` is the MSE-optimal scalar quantizer of that law with 2^bits
levels, computed once per (d, bits) and cached. `TurboQuant` quantizes every rotated
coordinate with it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

LLOYD_TOL = 1e-12  # Lloyd–Max stops when no centroid moves more than this × 1/√d


def coordinate_density(x: np.ndarray, d: int) -> np.ndarray:
    """f_d(x): the density of one coordinate of a uniformly random unit vector in R^d."""
    from scipy.special import gammaln  # lazily: scipy.special takes 0.3 s to import

    log_c = gammaln(d / 2) - gammaln((d - 1) / 2) - 0.5 * math.log(math.pi)
    x = np.asarray(x, dtype=np.float64)
    inside = np.abs(x) < 1
    safe = np.where(inside, x, 0.0)
    return np.where(inside, np.exp(log_c + (d - 3) / 2 * np.log1p(-(safe**2))), 0.0)


@dataclass(frozen=True)
class Codebook:
    """Lloyd–Max codebook for f_d: 2^bits centroids, symmetric about 0 (float64, sorted).

    `boundaries` are the 2^bits − 1 midpoints of consecutive centroids (so 0 is
    one); `mass` the probability of each cell under f_d; `mse` = d · E[(x − c(x))²],
    the expected ‖x − x̃‖² of a unit vector when every coordinate uses this codebook.
    """

    d: int
    bits: int
    centroids: np.ndarray
    boundaries: np.ndarray
    mass: np.ndarray
    mse: float
    iterations: int


@functools.cache
def lloyd_max(d: int, bits: int) -> Codebook:
    """The Lloyd–Max codebook with 2^bits levels for f_d, computed once per (d, bits).

    Lloyd iterations on the positive half (the codebook is symmetric), with exact
    cell integrals instead of samples or a grid: the mass of [s, t] is a
    regularized incomplete beta function, P(X > t) = I_{(1−t)/2}(a, a) with
    a = (d − 1)/2, and the first moment is closed-form, ∫_t^1 x f_d(x) dx =
    C/(d − 1) · (1 − t²)^a. Centroids are the cells' conditional means, boundaries
    the midpoints of centroids; iterations stop when no centroid moves by more than
    LLOYD_TOL/√d (at most a few hundred iterations, a few ms, for bits ≤ 4).
    """
    from scipy.special import betainc, gammaln  # lazily: 0.3 s to import

    if d < 2:
        raise ValueError(f"TurboQuant needs d ≥ 2 dimensions, got {d}")
    if bits < 1 or bits > 8:
        raise ValueError(f"Lloyd–Max codebook bits must be in 1..8, got {bits}")
    a = (d - 1) / 2
    log_c = gammaln(d / 2) - gammaln(a) - 0.5 * math.log(math.pi) - math.log(d - 1)
    half = 1 << (bits - 1)
    sigma = 1 / math.sqrt(d)

    def cells(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boundaries 0 = t_0 < ... < t_half = 1, cell masses and conditional means."""
        t = np.concatenate([[0.0], (c[:-1] + c[1:]) / 2, [1.0]])
        upper = betainc(a, a, (1 - t) / 2)  # P(X > t)
        upper[half] = 0.0
        moment = np.zeros(half + 1)  # ∫_t^1 x f_d(x) dx
        moment[:half] = np.exp(log_c + a * np.log1p(-(t[:half] ** 2)))
        mass = upper[:-1] - upper[1:]
        return t, mass, (moment[:-1] - moment[1:]) / mass

    # start from evenly spaced levels over ±3σ (inside (0, 1) for every d ≥ 2)
    c = np.minimum((np.arange(half) + 0.5) * 3 * sigma / half, (np.arange(half) + 0.5) / half)
    iterations, moved = 0, math.inf
    while moved >= LLOYD_TOL * sigma:
        if iterations == 100_000:  # pragma: no cover - < 1000 iterations for bits ≤ 4
            raise RuntimeError(f"Lloyd–Max did not converge for d={d}, bits={bits}")
        new = cells(c)[2]
        moved, c, iterations = np.abs(new - c).max(), new, iterations + 1
    t, mass, _ = cells(c)
    mse = 1.0 - d * 2.0 * float((mass * c**2).sum())  # E x² = 1/d; cells hold their means
    centroids = np.concatenate([-c[::-1], c])
    boundaries = np.concatenate([-t[1:half][::-1], [0.0], t[1:half]])
    mass = np.concatenate([mass[::-1], mass])
    for arr in (centroids, boundaries, mass):
        arr.flags.writeable = False
    return Codebook(d, bits, centroids, boundaries, mass, mse, iterations)
