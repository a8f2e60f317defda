"""TurboQuant encode and decode throughput against a plain read, as ratios.

On a 10,000 × 1024 float32 array of random unit vectors, times every TurboQuant_mse
width (`turbo1` … `turbo4`, fractional ones included) and `turbo3-prod`
(TurboQuant_prod), encoding and decoding, each against a plain read of the same
array (`X.sum()`: numpy's one-thread pass over it at memory speed) and, for
scale, a plain copy (`np.array(X, copy=True)`). Calls are interleaved (read,
copy, encode, decode, in turn, `--repeats` times) so machine noise hits all
alike; medians are reported and a ratio is read time / step time (1 = as fast as
reading the input once). Encode and decode run on `--threads` threads
(`TurboQuant.THREADS` by default), the read on one. The randomized Hadamard
rotation alone (`hadamard`, into a preallocated array) is timed the same way for
comparison: TurboQuant_mse does not write the rotated array out, it rotates,
quantizes and packs each row in cache. Decoding writes a fresh float32 array, so
its time includes the page faults of new memory. Target: TurboQuant_mse encode ≥
0.2× the plain read. The numba kernels are compiled (or loaded from numba's
cache) before timing; the first call's compile time is printed.
Usage: python bench/turbo_throughput.py [--rows N] [--dim D] [--repeats R] [--threads T]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from common import size_parser, unit_rows

from embedbench.quantize import RandomizedHadamard
from embedbench.quantize.turbo import MSE_BITS, TurboQuant

VARIANTS = [(bits, False) for bits in MSE_BITS] + [(3, True)]
TARGET = 0.2


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = size_parser(7)
    ap.set_defaults(rows=10_000)
    ap.add_argument("--threads", type=int, default=TurboQuant.THREADS)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X = unit_rows(rng, args.rows, args.dim)
    first = _seconds(lambda: TurboQuant(2).encode(X[:16]))  # numba: compile or load
    print(
        f"array {args.rows} × {args.dim} float32 ({X.nbytes / 1e6:.0f} MB), median of "
        f"{args.repeats}; encode/decode {args.threads} threads; first call (kernels "
        f"compiled or loaded from cache) {first:.2f} s"
    )
    print(
        f"{'code':<14}{'bytes/vec':>10}{'read ms':>9}{'copy ms':>9}{'encode ms':>11}"
        f"{'× read':>8}{'decode ms':>11}{'× read':>8}"
    )
    rot = RandomizedHadamard().fit(X[:1])
    rot.THREADS = args.threads
    buf = np.ones_like(X)  # touched once: no page faults in the timed calls
    rot.apply(X, out=buf)
    times: dict[str, list[float]] = {"read": [], "copy": [], "encode": []}
    for _ in range(args.repeats):
        times["read"].append(_seconds(lambda: X.sum()))
        times["copy"].append(_seconds(lambda: np.array(X, copy=True)))
        times["encode"].append(_seconds(lambda: rot.apply(X, out=buf)))
    read, copy, secs = (statistics.median(times[k]) for k in ("read", "copy", "encode"))
    print(
        f"{'hadamard only':<14}{'':>10}{read * 1e3:>9.2f}{copy * 1e3:>9.1f}"
        f"{secs * 1e3:>11.1f}{read / secs:>8.3f}"
    )
    verdicts = []
    for bits, prod in VARIANTS:
        code = TurboQuant(bits, prod=prod).fit(X[:1])
        code.THREADS = args.threads
        codes = code.encode(X)  # warm-up (codebooks, S)
        times = {"read": [], "copy": [], "encode": [], "decode": []}
        for _ in range(args.repeats):
            times["read"].append(_seconds(lambda: X.sum()))
            times["copy"].append(_seconds(lambda: np.array(X, copy=True)))
            times["encode"].append(_seconds(lambda code=code: code.encode(X)))
            times["decode"].append(
                _seconds(lambda code=code, codes=codes: code.decode(codes, args.dim))
            )
        read, copy, enc, dec = (
            statistics.median(times[k]) for k in ("read", "copy", "encode", "decode")
        )
        print(
            f"{code.name:<14}{code.bytes_per_vector(args.dim):>10}{read * 1e3:>9.2f}"
            f"{copy * 1e3:>9.1f}{enc * 1e3:>11.1f}{read / enc:>8.3f}{dec * 1e3:>11.1f}"
            f"{read / dec:>8.3f}",
            flush=True,
        )
        if not prod:
            verdicts.append((code.name, read / enc))
    met = "met" if min(r for _, r in verdicts) >= TARGET else "NOT met"
    listed = ", ".join(f"{name} {r:.2f}×" for name, r in verdicts)
    print(f"TurboQuant_mse encode vs plain read: {listed} (target ≥ {TARGET}×: {met})")


if __name__ == "__main__":
    main()
