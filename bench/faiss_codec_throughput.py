"""faiss standalone codecs (`faiss:<factory>`): training time, encode and decode speed.

For each codec, on one 10,000 × 1024 float32 matrix of random unit vectors: training
time on it as calibration (seconds, one OpenMP thread: `FaissCode`'s default), then
encode and decode of the same matrix, as GB/s of float32 and as a ratio to a plain
read of it (`X.sum()`: numpy's one-thread pass at memory speed; × read = read time /
step time). Encode and decode use faiss's thread setting
(`--threads`, default all cores). The slow trainers run shortened unless `--full`
(the table says how): OPQ with `niter` 2 of faiss's 50 (each outer iteration trains
a PQ and takes an SVD of a d × d matrix; the full default took 12 minutes at d=1024
on one core), LSQ with `train_iters` 2 of 25; training time grows about linearly
with them. The whole run takes about 2.5 minutes on 2 cores. Random vectors
measure speed only, not quality.
Usage: python bench/faiss_codec_throughput.py [--rows N] [--dim D] [--repeats R]
       [--threads T] [--full] [--only FACTORY ...]
"""

from __future__ import annotations

import time

import faiss
import numpy as np
from common import median_seconds, size_parser, unit_rows

from embedbench.quantize.faiss_codec import FaissCode, training_shortfall

CODECS = ["PQ64", "OPQ64,PQ64", "RQ8x8", "LSQ8x8", "SQ4", "SQ8", "SQfp16", "RaBitQ"]


def _opq_niter(n: int):
    def configure(index) -> None:
        pre = faiss.downcast_index(index)
        faiss.downcast_VectorTransform(pre.chain.at(0)).niter = n

    return configure, f"OPQ niter {n} of 50"


def _lsq_train_iters(n: int):
    def configure(index) -> None:
        faiss.downcast_index(index).lsq.train_iters = n

    return configure, f"LSQ train_iters {n} of 25"


SHORTENED = {"OPQ64,PQ64": _opq_niter(2), "LSQ8x8": _lsq_train_iters(2)}


def main() -> None:
    ap = size_parser(3)
    ap.set_defaults(rows=10_000)
    ap.add_argument("--threads", type=int, default=None, help="encode/decode threads")
    ap.add_argument("--full", action="store_true", help="faiss's default training for all")
    ap.add_argument("--only", nargs="+", default=CODECS, metavar="FACTORY")
    args = ap.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    X = unit_rows(np.random.default_rng(0), args.rows, args.dim)
    gb = X.nbytes / 1e9
    plain = median_seconds(lambda: X.sum(), max(args.repeats, 9))

    print(
        f"array {args.rows} × {args.dim} float32 ({gb:.3f} GB), median of {args.repeats}; "
        f"faiss {faiss.__version__}, training 1 thread, encode/decode "
        f"{faiss.omp_get_max_threads()} threads"
    )
    print(
        f"{'codec':<22}{'B/vec':>7}{'params KB':>11}{'train s':>9}"
        f"{'enc GB/s':>10}{'× read':>8}{'dec GB/s':>10}{'× read':>8}  note"
    )
    print(f"{'plain read (X.sum())':<22}{'':>7}{'':>11}{'':>9}{gb / plain:>10.2f}{1.0:>8.3f}")
    for factory in args.only:
        configure, note = (None, "")
        if not args.full and factory in SHORTENED:
            configure, note = SHORTENED[factory]
        short = training_shortfall(factory, args.rows, args.dim)
        code = FaissCode(factory, configure=configure)
        t0 = time.perf_counter()
        code.fit(X)
        train = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = code.encode(X)
        enc = time.perf_counter() - t0
        if enc < 2:  # a slow encoder (LSQ's local search) is timed once
            enc = median_seconds(lambda c=code: c.encode(X), args.repeats)
        dec = median_seconds(lambda c=code, k=codes: c.decode(k, args.dim), args.repeats)
        notes = "; ".join(n for n in (note, short and "calibration below faiss's ask") if n)
        print(
            f"{code.name:<22}{codes.shape[1]:>7}{code.params_bytes() / 1024:>11.1f}"
            f"{train:>9.2f}{gb / enc:>10.3f}{plain / enc:>8.3f}"
            f"{gb / dec:>10.2f}{plain / dec:>8.3f}  {notes}",
            flush=True,
        )


if __name__ == "__main__":
    main()
