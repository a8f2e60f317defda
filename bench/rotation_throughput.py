"""Randomized Hadamard rotation vs a dense d × d rotation (`X @ R`), as a ratio.

On a 200,000 × 1024 float32 array (819 MB), times `hadamard` as embedbench applies
it (signs, then a fast Walsh–Hadamard transform, a row at a time in numba kernels
on 16-float vectors, row chunks on threads), the same on one thread, and a plain
radix-2 butterfly version (log2 d add/subtract passes over row blocks, the
textbook numpy FWHT) against the dense rotation with a Haar matrix on OpenBLAS.
Each is timed `--repeats` times, interleaved so machine noise hits all alike;
medians are reported, with the ratio to the dense rotation. Target: hadamard ≥ 3×
faster than `X @ R`.
Usage: python bench/rotation_throughput.py [--rows N] [--dim D] [--repeats R]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from common import size_parser, unit_rows

from embedbench.quantize import HaarRotation, RandomizedHadamard


def radix2_hadamard(
    X: np.ndarray, signs: np.ndarray, out: np.ndarray, rows_per_block: int = 64
) -> np.ndarray:
    """X @ D H/√n into `out` by log2(n) add/subtract passes on (m, n/2h, 2, h) views."""
    rows, n = X.shape
    bufs = [np.empty((rows_per_block, n), np.float32) for _ in range(2)]
    for start in range(0, rows, rows_per_block):
        stop = min(start + rows_per_block, rows)
        m = stop - start
        a, b = bufs[0][:m], bufs[1][:m]
        np.multiply(X[start:stop], signs, out=a)
        h = 1
        while h < n:
            src = a.reshape(m, n // (2 * h), 2, h)
            dst = b.reshape(m, n // (2 * h), 2, h)
            np.add(src[:, :, 0], src[:, :, 1], out=dst[:, :, 0])
            np.subtract(src[:, :, 0], src[:, :, 1], out=dst[:, :, 1])
            a, b = b, a
            h *= 2
        out[start:stop] = a
    return out


def main() -> None:
    args = size_parser(3).parse_args()
    X = unit_rows(np.random.default_rng(0), args.rows, args.dim)
    gb = X.nbytes / 1e9
    R = HaarRotation().fit(X[:2]).R
    had = RandomizedHadamard().fit(X[:2])
    one = RandomizedHadamard().fit(X[:2])
    one.THREADS = 1
    power_of_two = args.dim & (args.dim - 1) == 0

    # the fast path computes the same map as its explicit matrix
    check = X[:256]
    assert np.allclose(had.apply(check), check @ had.matrix(), atol=1e-5)
    if power_of_two:
        got = radix2_hadamard(check, had.signs[0], np.empty_like(check))
        assert np.allclose(got, had.apply(check), atol=1e-5)

    # every step writes into the same preallocated, already touched buffer: on a VM,
    # first-touch page faults of a fresh 819 MB result can cost more than the math
    out = np.ones_like(X)
    steps = {
        "dense X @ R (OpenBLAS)": lambda: np.matmul(X, R, out=out),
        f"hadamard ({had.THREADS} threads)": lambda: had.apply(X, out=out),
        "hadamard (1 thread)": lambda: one.apply(X, out=out),
    }
    if power_of_two:
        steps["radix-2 butterflies (1 thread)"] = lambda: radix2_hadamard(X, had.signs[0], out)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}

    dense = med["dense X @ R (OpenBLAS)"]
    print(
        f"array {args.rows} × {args.dim} float32 ({gb:.2f} GB), median of {args.repeats} "
        f"(interleaved); hadamard windows of {had.n} at offsets {had.offsets}"
    )
    print(f"{'step':<34}{'seconds':>9}{'GB/s':>8}{'× dense speed':>15}")
    for name, secs in med.items():
        print(f"{name:<34}{secs:>9.3f}{gb / secs:>8.2f}{dense / secs:>15.2f}")
    fast = med[f"hadamard ({had.THREADS} threads)"]
    print(f"hadamard {dense / fast:.2f}× faster than dense X @ R (target ≥ 3)")


if __name__ == "__main__":
    main()
