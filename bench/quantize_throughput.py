"""Encode throughput of each code on a 200,000 × 1024 float32 array, as ratios.

Ratios are measured in one run against (a) a plain numpy read of the same array
(`X.sum()`) and (b) sentence-transformers' `quantize_embeddings` for int8 (ranges
given) and binary. Targets: binary ≥ 0.5× the plain read; int8 ≥ 3× ST's int8.
Usage: python bench/quantize_throughput.py [--rows N] [--dim D] [--repeats R]
"""

from __future__ import annotations

import numpy as np
from common import median_seconds, size_parser, unit_rows

from embedbench.quantize import CODES, parse_technique


def main() -> None:
    args = size_parser(5).parse_args()
    from sentence_transformers.util.quantization import quantize_embeddings

    rng = np.random.default_rng(0)
    X = unit_rows(rng, args.rows, args.dim)
    cal = unit_rows(rng, 10_000, args.dim)
    gb = X.nbytes / 1e9

    plain = median_seconds(lambda: X.sum(), args.repeats)
    ranges = np.vstack([cal.min(axis=0), cal.max(axis=0)])
    st_int8 = median_seconds(
        lambda: quantize_embeddings(X, precision="int8", ranges=ranges), args.repeats
    )
    st_binary = median_seconds(lambda: quantize_embeddings(X, precision="ubinary"), args.repeats)

    print(f"array {args.rows} × {args.dim} float32 ({gb:.2f} GB), median of {args.repeats}")
    print(f"{'step':<34}{'GB/s':>8}{'× plain read':>14}{'× ST same precision':>22}")
    print(f"{'plain read X.sum()':<34}{gb / plain:>8.2f}{1.0:>14.2f}")
    print(f"{'sentence-transformers int8':<34}{gb / st_int8:>8.2f}{plain / st_int8:>14.3f}")
    print(f"{'sentence-transformers ubinary':<34}{gb / st_binary:>8.2f}{plain / st_binary:>14.3f}")
    verdicts = []
    for name in [c for c in CODES if c != "float32"]:  # float32 storage is a view
        tech = parse_technique(name).fit(cal)
        secs = median_seconds(lambda tech=tech: tech.encode(X), args.repeats)
        vs_st = {"int8": st_int8 / secs, "binary": st_binary / secs}.get(name)
        col = f"{vs_st:>22.2f}" if vs_st is not None else ""
        print(f"{'embedbench ' + name:<34}{gb / secs:>8.2f}{plain / secs:>14.3f}{col}")
        if name == "binary":
            verdicts.append(f"binary {plain / secs:.2f}× plain read (target ≥ 0.5)")
        if name == "int8":
            verdicts.append(f"int8 {st_int8 / secs:.2f}× sentence-transformers (target ≥ 3)")
    print("; ".join(verdicts))


if __name__ == "__main__":
    main()
