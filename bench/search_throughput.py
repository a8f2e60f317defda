"""Search throughput: faiss IndexBinaryFlat (Hamming on packed sign bits) vs IndexFlatIP.

The same corpus of 200,000 random unit vectors (d = 1024) is indexed twice: as
float32 in an `IndexFlatIP` (exact inner product, 4 KiB a vector) and as embedbench
`binary` codes in an `IndexBinaryFlat` (exact Hamming, 128 bytes a vector). 1,000
random unit queries, top-10, exhaustive search in both; queries/s of each and their
ratio, in one run, median of 3 timed searches each (index building is not timed).
Random vectors measure speed only, not recall. faiss uses all OpenMP threads.
Usage: python bench/search_throughput.py [--rows N] [--dim D] [--queries Q] [--k K]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import median_seconds, unit_rows

from embedbench.quantize import parse_technique


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X, Q = unit_rows(rng, args.rows, args.dim), unit_rows(rng, args.queries, args.dim)
    binary = parse_technique("binary").fit(X[:10_000])
    codes, qcodes = binary.encode(X), binary.encode(Q)

    flat = faiss.IndexFlatIP(args.dim)
    flat.add(X)
    del X
    hamming = faiss.IndexBinaryFlat(8 * codes.shape[1])
    hamming.add(codes)

    # one untimed search each to warm caches and thread pools
    flat.search(Q, args.k)
    hamming.search(qcodes, args.k)
    t_float = median_seconds(lambda: flat.search(Q, args.k), args.repeats)
    t_binary = median_seconds(lambda: hamming.search(qcodes, args.k), args.repeats)
    qps_float, qps_binary = args.queries / t_float, args.queries / t_binary

    print(
        f"corpus {args.rows} × {args.dim} random unit vectors; {args.queries} queries, "
        f"top-{args.k}; median of {args.repeats}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads"
    )
    print(f"{'index':<44}{'bytes/vec':>10}{'seconds':>10}{'queries/s':>12}")
    print(f"{'IndexFlatIP (float32, inner product)':<44}{4 * args.dim:>10}", end="")
    print(f"{t_float:>10.3f}{qps_float:>12.0f}")
    print(f"{'IndexBinaryFlat (binary codes, Hamming)':<44}{codes.shape[1]:>10}", end="")
    print(f"{t_binary:>10.3f}{qps_binary:>12.0f}")
    print(f"binary / float: {qps_binary / qps_float:.2f}× queries/s")


if __name__ == "__main__":
    main()
