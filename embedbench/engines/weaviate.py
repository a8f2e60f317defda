"""Weaviate presets: `weaviate:rq8`, `weaviate:rq1`, `weaviate:bq`, `weaviate:pq`.

Weaviate (github.com/weaviate/weaviate, read at commit adcffc5, the main branch of
2026-08; RQ since 1.32, 1-bit RQ since 1.33), files under
`adapters/repos/db/vector/compressionhelpers/` unless said otherwise. Vectors and
queries reach the quantizers L2-normalised (the `cosine` distance, "cosine-dot"),
as they are here; every distance below is the cosine distance, the score its
negation (or the dot estimate it is 1 minus).

- Fast rotation (`entities/vectorindex/compression/fast_rotation.go`): pad to a
  multiple of 64 dimensions, then 3 rounds of (random swaps pairing every
  coordinate once, random ±1 signs, normalised Walsh-Hadamard transforms on blocks
  of 256, else 64); swaps and signs come from Go's `math/rand/v2` PCG seeded with
  `DefaultFastRotationSeed` (0x535ab5105169b1df, the seed every Weaviate index
  uses), ported bit for bit (`weaviate_rotation.GoRand`, pinned to Go golden outputs).
  Replicate seed s > 0 adds s to that seed; seed 0 is Weaviate's rotation.
- `rq8` (`rotational_quantization.go`, 8 bits, the RQ default): per vector the
  rotated entries are coded c = ⌊(v − lower)/step + 0.5⌋ with lower = min, step =
  (max − min)/255; stored as 16 bytes of big-endian float32 (lower, step,
  step·Σc, ‖x‖²) then one byte a dimension (400 bytes at d = 384). The query is
  encoded the same way and the distance is 1 − ⟨restore(x), restore(q)⟩ computed
  from the stored sums (RQDistancer.Distance).
- `rq1` (`binary_rotational_quantization.go`, RaBitQ-style): at least 256
  dimensions; one sign bit a rotated entry (bit set for > 0), in little-endian
  uint64 words after a word holding step = ‖rx‖²/‖rx‖₁ (low float32) and ‖rx‖²
  (high float32): 8 + d/8 bytes (56 at d = 384). The query is quantized to 5 bits
  with randomized rounding (offsets from a PCG with the same seed, fixed per
  index): c = ⌊(v + m)/(2m/31) + u_i⌋, m = max|v|; the dot estimate is
  step_q·step_x·Σ(2c − 31)(±1) (BinaryRQDistancer.Distance, via five Hamming
  counts). Decode (Restore + UnRotate) is ±‖x‖/√D per entry, un-rotated.
- `bq` (`binary_quantization.go`): bit set for x_i < 0, LSB first in uint64
  words: 8·⌈d/64⌉ bytes (48), query encoded alike, Hamming distance. Weaviate has
  no decode ("unimplemented"): decoded here as +1 for a clear bit, −1 for a set one.
- `pq` (`product_quantization.go`, `kmeans_encoder.go`, `vector/kmeans/kmeans.go`;
  defaults in `entities/vectorindex/hnsw/pq_config.go` and
  `vector/common/vector_util.go` CalculateOptimalSegments): segments = d/4 for
  256 ≤ d < 768 with d % 4 == 0 (96 at d = 384, 4 dims each), 256 centroids, the
  k-means encoder: random initial centres (distinct points), Lloyd iterations with
  L2 assignment, at most 10 iterations counting the initial assignment, stop when
  ≤ 1 % of points move, an empty cluster keeps its centre; training limit 100,000.
  One byte a segment (96 bytes), nearest centroid by L2; the distance is
  max(0, 1 − Σ_s ⟨q_s, centroid_s⟩) from a look-up table (DistanceLookUpTable).
  Trained here on the calibration vectors (Weaviate trains on a sample of the
  indexed vectors once the training limit is reached).

Counted per vector: the codes with their per-vector floats as Weaviate stores them.
Not counted: the HNSW graph; the rotation (swaps and signs: 3·(4·D/2 + 4·D) bytes)
and PQ codebooks are `params_bytes`. Weaviate rescores by default
(`adapters/repos/db/vector/hnsw/search.go` rescore): the HNSW candidates (ef of
them), cut to `rescoreLimit` when that is ≥ limit, are re-ranked by the float
vector; `rescoreLimit` defaults to 20 for RQ-8 and 512 for RQ-1
(`entities/vectorindex/hnsw/rq_config.go`), BQ and PQ rescore every candidate. A
preset here is the compressed search alone; Weaviate's default is the `/rescore<k>`
suffix with k·limit = rescoreLimit (at limit 10: `weaviate:rq8/rescore2`,
`weaviate:rq1/rescore51`), whose float copy the table counts.

Not reproduced: the HNSW index's own recall loss (search here is exhaustive);
Go's float32 summation order in the rotation and sums (rare off-by-one codes at
rounding boundaries); PQ's k-means draws its initial centres from Weaviate's
per-run random seed, here from the replicate seed; the tile encoder
(`encoder: tile`, not the default) and 4-bit RQ.
"""

from __future__ import annotations

import math

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.engines.weaviate_rotation import (  # noqa: F401 (re-exported)
    DEFAULT_SEED,
    MASK,
    ROUNDING_STREAM,
    FastRotation,
    GoRand,
)
from embedbench.quantize.codes import Code, row_blocks

VERSION = "1.33"
COMMIT = "adcffc5432aa797c60e3c4e479514054254fae2a"


def _seed(seed: int) -> int:
    return (DEFAULT_SEED + seed) & MASK


class _Rotational(Code):
    learns, random = True, True  # fit only learns the dimension (the rotation's size)
    engine_search = True
    min_dim = 0

    def __init__(self, seed: int = 0, rotation: FastRotation | None = None):
        self.seed, self.rotation = _seed(seed), rotation

    def fit(self, X: np.ndarray):
        d = max(X.shape[1], self.min_dim)
        if self.rotation is None or self.rotation.out_dim != 64 * -(-d // 64):
            self.rotation = FastRotation(d, self.seed)
        return self

    def params_bytes(self) -> int:
        return self.rotation.params_bytes() if self.rotation is not None else 0

    def _rotated(self, X: np.ndarray) -> np.ndarray:
        if self.rotation is None:
            self.fit(X)
        return self.rotation.rotate(X)


class RQ8(_Rotational):
    """Weaviate 8-bit rotational quantization: 16 bytes of floats, a byte a dimension."""

    bits = 8

    def bytes_per_vector(self, d: int) -> int:
        return 16 + 64 * -(-d // 64)

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        out = np.zeros((len(X), self.bytes_per_vector(X.shape[1])), np.uint8)
        for b in row_blocks(len(X)):
            rx = self._rotated(X[b])
            lower, upper = rx.min(axis=1), rx.max(axis=1)
            step = (upper - lower) / np.float32(255)
            ok = step > 0  # else Weaviate stores the zero code
            c = ((rx - lower[:, None]) / np.where(ok, step, 1)[:, None] + np.float32(0.5)).astype(
                np.uint8
            )
            head = np.stack(
                [
                    lower,
                    step,
                    step * c.sum(axis=1, dtype=np.float32),
                    np.einsum("ij,ij->i", X[b], X[b]),
                ],
                axis=1,
            ).astype(">f4")
            rows = np.concatenate([head.view(np.uint8), c], axis=1)
            out[b] = np.where(ok[:, None], rows, 0)
        return out

    @staticmethod
    def fields(codes: np.ndarray):
        head = np.ascontiguousarray(codes[:, :16]).view(">f4").astype(np.float64)
        return head[:, 0], head[:, 1], head[:, 2], codes[:, 16:]

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        lower, step, _, c = self.fields(codes)
        restored = lower[:, None] + step[:, None] * c.astype(np.float64)
        return self.rotation.unrotate(restored, d)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The dot estimate 1 − (cosine distance) of RQDistancer.Distance."""
        ql, qs, qsum, qc = self.fields(self.encode(Q))
        xl, xs, xsum, xc = self.fields(codes)
        D = xc.shape[1]
        out = np.empty((len(Q), len(codes)))
        qc = qc.astype(np.float64)
        for b in row_blocks(len(codes)):
            dots = qc @ xc[b].T.astype(np.float64)
            out[:, b] = (
                xl[b][None, :] * (D * ql + qsum)[:, None]
                + xsum[b][None, :] * ql[:, None]
                + np.outer(qs, xs[b]) * dots
            )
        return out


class RQ1(_Rotational):
    """Weaviate 1-bit rotational quantization (RaBitQ-style), 5-bit queries."""

    bits = 1
    min_dim = 256  # minCodeBits

    def bytes_per_vector(self, d: int) -> int:
        return 8 + 64 * -(-max(d, self.min_dim) // 64) // 8

    def fit(self, X: np.ndarray):
        super().fit(X)
        rng = GoRand(self.seed, ROUNDING_STREAM)
        self.rounding = np.array([rng.float32() for _ in range(self.rotation.out_dim)], np.float32)
        return self

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        out = np.zeros((len(X), self.bytes_per_vector(X.shape[1])), np.uint8)
        for b in row_blocks(len(X)):
            rx = self._rotated(X[b])
            sq = np.einsum("ij,ij->i", rx, rx, dtype=np.float32)
            l1 = np.abs(rx).sum(axis=1, dtype=np.float32)
            ok = l1 > 0  # else the code is left all zero
            step = np.where(ok, sq / np.where(ok, l1, 1), 0).astype("<f4")
            head = np.stack([step, np.where(ok, sq, 0).astype("<f4")], axis=1)
            out[b, :8] = head.view(np.uint8)
            out[b, 8:] = np.packbits(rx > 0, axis=1, bitorder="little")
        return out

    def signs(self, codes: np.ndarray) -> np.ndarray:
        return np.unpackbits(codes[:, 8:], axis=1, bitorder="little").astype(np.float64) * 2 - 1

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        sq = np.ascontiguousarray(codes[:, 4:8]).view("<f4")[:, 0].astype(np.float64)
        s = self.signs(codes)
        return self.rotation.unrotate(s * (np.sqrt(sq) / math.sqrt(s.shape[1]))[:, None], d)

    def encode_query(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """encodeQuery: the 5-bit integers c (n × D) and step = max|v| / 31."""
        rx = self._rotated(np.asarray(Q, np.float32))
        m = np.abs(rx).max(axis=1)
        step = m / np.float32(31)
        safe = np.where(step > 0, step, 1)[:, None]
        c = ((rx + m[:, None]) / (np.float32(2) * safe) + self.rounding).astype(np.uint64)
        return (c & np.uint64(31)).astype(np.int64), np.where(m > 0, step, 0)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """The dot estimate of BinaryRQDistancer.Distance: step_q·step_x·Σ(2c − 31)·(±1)."""
        c, qstep = self.encode_query(Q)
        qv = (2 * c - 31).astype(np.float64)
        xstep = np.ascontiguousarray(codes[:, :4]).view("<f4")[:, 0].astype(np.float64)
        out = np.empty((len(Q), len(codes)))
        for b in row_blocks(len(codes)):
            out[:, b] = np.outer(qstep, xstep[b]) * (qv @ self.signs(codes[b]).T)
        return out


class BQ(Code):
    """Weaviate binary quantization: bit set for x < 0, uint64 words, Hamming."""

    learns, random = False, False
    engine_search = True
    bits = 1

    def bytes_per_vector(self, d: int) -> int:
        return 8 * -(-d // 64)

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        out = np.zeros((len(X), self.bytes_per_vector(X.shape[1])), np.uint8)
        for b in row_blocks(len(X)):
            packed = np.packbits(X[b] < 0, axis=1, bitorder="little")
            out[b, : packed.shape[1]] = packed
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes, axis=1, count=d, bitorder="little").astype(np.float32)
        return 1.0 - 2.0 * bits

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        q = self.encode(Q)
        out = np.empty((len(q), len(codes)))
        step = max(1, (1 << 22) // max(1, len(codes) * q.shape[1]))
        for s in range(0, len(q), step):
            x = q[s : s + step, None, :] ^ codes[None, :, :]
            out[s : s + step] = -np.bitwise_count(x).sum(axis=2, dtype=np.int64)
        return out


def default_segments(d: int) -> int:
    """common.CalculateOptimalSegments: Weaviate's PQ segments when none are given."""
    if d >= 2048 and d % 8 == 0:
        return d // 8
    if d >= 768 and d % 6 == 0:
        return d // 6
    if d >= 256 and d % 4 == 0:
        return d // 4
    return d // 2 if d % 2 == 0 else d


class PQ(Code):
    """Weaviate product quantization with its defaults (k-means encoder, 256 centroids)."""

    learns, random = True, True
    engine_search = True
    bits = 8  # per segment
    centroids, training_limit = 256, 100_000
    delta, iterations = 0.01, 10

    def __init__(self, seed: int = 0, segments: int | None = None):
        self.seed, self.segments = seed, segments

    def bytes_per_vector(self, d: int) -> int:
        return self.segments or default_segments(d)

    def training_note(self, n_train: int, d: int) -> str | None:
        if n_train < self.centroids:
            return f"Weaviate's k-means needs at least {self.centroids} vectors (got {n_train})"
        return None

    def fit(self, X: np.ndarray) -> PQ:
        X = np.asarray(X[: self.training_limit], np.float32)
        n, d = X.shape
        m = self.segments or default_segments(d)
        if d % m or n < self.centroids:
            raise ValueError("weaviate:pq: segments must divide d and n must reach 256")
        rng = np.random.default_rng(self.seed)
        Xs = X.reshape(n, m, d // m)
        self.codebook = np.stack([self._kmeans(Xs[:, s], rng) for s in range(m)])
        return self

    def _kmeans(self, Xs: np.ndarray, rng) -> np.ndarray:
        """kmeans.Fit with RandomInitialization (see the module docstring)."""
        n = len(Xs)
        C = Xs[rng.choice(n, self.centroids, replace=False)].copy()
        assign, moved = None, n
        for _ in range(self.iterations):
            new = self._nearest(Xs, C)
            moved = n if assign is None else int((new != assign).sum())
            assign = new
            sums = np.zeros(C.shape, np.float64)
            np.add.at(sums, assign, Xs)
            sizes = np.bincount(assign, minlength=self.centroids)
            filled = sizes > 0  # an empty cluster keeps its centre
            C[filled] = (sums[filled] / sizes[filled, None]).astype(np.float32)
            if moved <= self.delta * n:
                break
        return C

    @staticmethod
    def _nearest(Xs: np.ndarray, C: np.ndarray) -> np.ndarray:
        """Nearest centre by L2 (the first of equals, as KMeansEncoder.Encode)."""
        cc = (C * C).sum(axis=1)
        out = np.empty(len(Xs), np.int64)
        for b in row_blocks(len(Xs)):
            out[b] = (cc[None, :] - 2 * Xs[b] @ C.T).argmin(axis=1)
        return out

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        m = len(self.codebook)
        out = np.empty((len(X), m), np.uint8)
        for b in row_blocks(len(X)):
            Xb = X[b].reshape(b.stop - b.start, m, -1)
            for s in range(m):
                out[b, s] = self._nearest(Xb[:, s], self.codebook[s])
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        m = len(self.codebook)
        return self.codebook[np.arange(m), codes].reshape(len(codes), d)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """−max(0, 1 − Σ_s LUT[s, code_s]), LUT[s, c] = ⟨q_s, centroid_{s,c}⟩: the sum
        of the table entries is ⟨q, decode(code)⟩, computed here as that product."""
        Q = np.asarray(Q, np.float32)
        d = Q.shape[1]
        out = np.empty((len(Q), len(codes)))
        for b in row_blocks(len(codes)):
            out[:, b] = -np.maximum(0, 1 - Q @ self.decode(codes[b], d).T)
        return out

    def params_bytes(self) -> int:
        return self.codebook.nbytes if hasattr(self, "codebook") else 0


_SRC = f"github.com/weaviate/weaviate@{COMMIT[:7]}: adapters/repos/db/vector/compressionhelpers/"
_NOT = "the HNSW index's own recall loss (search is exhaustive over the codes)"
register(
    EnginePreset(
        name="weaviate:rq8",
        engine="Weaviate",
        version=VERSION,
        source=_SRC
        + "rotational_quantization.go, entities/vectorindex/compression/fast_rotation.go",
        summary="8-bit rotational quantization: fast rotation, per-vector min/step codes "
        "(16 + d bytes), 8-bit query, dot estimate from stored sums; rescoreLimit is /rescore<k>",
        not_reproduced=_NOT + "; Go's float32 summation order (rare off-by-one codes)",
        make=lambda seed: RQ8(seed),
        originals=lambda d: 4 * d,  # Weaviate keeps the original vectors on disk (rescoring)
    ),
    EnginePreset(
        name="weaviate:rq1",
        engine="Weaviate",
        version=VERSION,
        source=_SRC + "binary_rotational_quantization.go, fast_rotation.go",
        summary="1-bit rotational quantization (RaBitQ-style): sign bits of the rotated "
        "vector + step and ‖x‖² (8 + d/8 bytes), 5-bit randomized-rounding query",
        not_reproduced=_NOT + "; Go's float32 summation order",
        make=lambda seed: RQ1(seed),
        originals=lambda d: 4 * d,  # Weaviate keeps the original vectors on disk (rescoring)
    ),
    EnginePreset(
        name="weaviate:bq",
        engine="Weaviate",
        version=VERSION,
        source=_SRC + "binary_quantization.go, quantizer.go (BQDistancer)",
        summary="binary quantization: bit set for x < 0 (8·⌈d/64⌉ bytes), Hamming search "
        "with the query binarized",
        not_reproduced=_NOT + "; Weaviate has no BQ decode (±1 given here)",
        make=lambda seed: BQ(),
        originals=lambda d: 4 * d,  # Weaviate keeps the original vectors on disk (rescoring)
    ),
    EnginePreset(
        name="weaviate:pq",
        engine="Weaviate",
        version=VERSION,
        source=_SRC + "product_quantization.go, kmeans_encoder.go; vector/kmeans/kmeans.go; "
        "vector/common/vector_util.go",
        summary="product quantization, default segments (d/4 at d=384: 96 bytes), 256 "
        "centroids, k-means encoder trained on calibration, look-up-table distance",
        not_reproduced=_NOT + "; k-means initial centres drawn from the replicate seed "
        "(Weaviate's seed is random per run); the tile encoder",
        make=lambda seed: PQ(seed),
        originals=lambda d: 4 * d,  # Weaviate keeps the original vectors on disk (rescoring)
    ),
)
