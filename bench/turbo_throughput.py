"""TurboQuant encode and decode throughput against a plain copy, as ratios.

On a 10,000 × 1024 float32 array of random unit vectors, times `turbo1`, `turbo2`,
`turbo4` (TurboQuant_mse) and `turbo3-prod` (TurboQuant_prod) encoding and
decoding, each against a plain read-and-write of the same array
(`np.array(X, copy=True)`). Calls are interleaved (copy, encode, decode, in turn,
`--repeats` times) so machine noise hits all alike; medians are reported and a ratio
is copy time / step time (1 = as fast as the copy). The randomized Hadamard
rotation alone (`hadamard`, which every TurboQuant encode starts with) is timed the
same way: it bounds what the codes can reach. Target: TurboQuant_mse encode ≥ 0.2×
the copy. Usage: python bench/turbo_throughput.py [--rows N] [--dim D] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import unit_rows

from embedbench.quantize import RandomizedHadamard
from embedbench.quantize.turbo import TurboQuant

VARIANTS = [(1, False), (2, False), (4, False), (3, True)]
TARGET = 0.2


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X = unit_rows(rng, args.rows, args.dim)
    mb = X.nbytes / 1e6
    print(f"array {args.rows} × {args.dim} float32 ({mb:.0f} MB), median of {args.repeats}")
    print(
        f"{'code':<14}{'bytes/vec':>10}{'copy ms':>9}{'encode ms':>11}{'× copy':>8}"
        f"{'decode ms':>11}{'× copy':>8}"
    )
    rot = RandomizedHadamard().fit(X[:1])
    copies, rotations = [], []
    for _ in range(args.repeats):
        copies.append(_seconds(lambda: np.array(X, copy=True)))
        rotations.append(_seconds(lambda: rot.apply(X)))
    copy, secs = statistics.median(copies), statistics.median(rotations)
    print(f"{'hadamard only':<14}{'':>10}{copy * 1e3:>9.1f}{secs * 1e3:>11.1f}{copy / secs:>8.3f}")
    verdicts = []
    for bits, prod in VARIANTS:
        code = TurboQuant(bits, prod=prod).fit(X[:1])
        codes = code.encode(X)  # warm-up (codebook, S)
        times: dict[str, list[float]] = {"copy": [], "encode": [], "decode": []}
        for _ in range(args.repeats):
            times["copy"].append(_seconds(lambda: np.array(X, copy=True)))
            times["encode"].append(_seconds(lambda code=code: code.encode(X)))
            times["decode"].append(
                _seconds(lambda code=code, codes=codes: code.decode(codes, args.dim))
            )
        copy, enc, dec = (statistics.median(times[k]) for k in ("copy", "encode", "decode"))
        print(
            f"{code.name:<14}{code.bytes_per_vector(args.dim):>10}{copy * 1e3:>9.1f}"
            f"{enc * 1e3:>11.1f}{copy / enc:>8.3f}{dec * 1e3:>11.1f}{copy / dec:>8.3f}"
        )
        if not prod:
            verdicts.append(f"{code.name} {copy / enc:.2f}×")
    print(f"TurboQuant_mse encode vs plain copy: {', '.join(verdicts)} (target ≥ {TARGET})")


if __name__ == "__main__":
    main()
