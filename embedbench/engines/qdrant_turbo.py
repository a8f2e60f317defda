"""Qdrant TurboQuant presets: `qdrant:turbo1`, `qdrant:turbo1.5`, `qdrant:turbo2`,
`qdrant:turbo4` (`quantization_config.turbo.bits`: bits1, bits1_5, bits2, bits4; the
default is bits4).

Qdrant 1.19.0 (github.com/qdrant/qdrant, read at commit 74f3e85b9473):
lib/quantization/src/encoded_vectors_tq.rs, turboquant/ (quantization.rs,
encoding.rs, rotation.rs, permutation.rs, lloyd_max.rs, math.rs, simd/query{1,2,4}bit/
mod.rs), quantile.rs, p_square.rs; the collection options in lib/segment/src/types.rs
(TurboQuantQuantizationConfig: only `bits` and memory placement, no query-encoding
option) and lib/segment/src/vector_storage/quantized/quantized_vectors.rs (a Cosine
collection is quantized as TurboQuant's own Cosine, not folded into Dot; the mode is
always TQMode::Plus, the rotation TQRotation::Padded). Vectors arrive normalised, as
Qdrant's Cosine normalises them on insert.

Stored per vector (encode): a vector is zero-padded to D dimensions (bits4: d rounded
up to a multiple of 2; bits2: of 4; bits1: of 8; bits1_5: ⌊1.5·d⌋ rounded up to a
multiple of 8, stored at 1 bit: the rotation spreads the vector into the extra
half), rotated by Qdrant's fixed Hadamard rotation (`qdrant_turbo_math`: Walsh–
Hadamard transforms on power-of-two chunks between three Fisher–Yates permutations
from an LCG with Qdrant's three fixed seeds), scaled by √D (Cosine: the norm is taken
as 1), then TQ+ error-corrected per coordinate, x+ = (x + shift)·scale, and each
coordinate coded as its Lloyd–Max N(0, 1) centroid (lloyd_max.rs constants; index =
number of midpoint boundaries below the f32 value), packed LSB-first. After the codes
two f32: scaling_factor = 1/‖c/scale − shift‖ (the centroids mapped back, the
"renormalisation") and xm = −Σ x_i·shift_i (TQ+'s ⟨X, M⟩, kept for symmetric
scoring). bytes_per_vector = D·bits/8 + 8: at d = 384, 200 (bits4), 104 (bits2), 80
(bits1_5: D = 576), 56 (bits1). Also counted as `originals`: the f32 vector Qdrant
keeps (4·d). Not counted: the collection's shift and scale (2 × 4·D bytes, in
`params_bytes`) and the HNSW links.

fit (TQ+, learned from calibration vectors only; Qdrant learns it from the
collection): the anchor c_outer = the largest centroid magnitude, p = Φ(c_outer)
(A&S erf), quantile q = f32(2p − 1); over a uniform sample of at most 2,048 (bits1,
1.5), 4,096 (bits2), 8,192 (bits4) vectors, taken in index order (Qdrant's sample
uses a random Permutor key: here drawn from `seed`; with fewer calibration vectors
all of them, and the code is then deterministic regardless of the seed), each padded,
rotated and scaled, two 7-marker P-square estimates a coordinate at (1 − q)/2 and
1 − (1 − q)/2 give q_lo, q_hi; shift = −(q_lo + q_hi)/2, scale = 2·c_outer/(q_hi −
q_lo) if the width exceeds 1e-3, else 1.

Score (search_scores, precompute_query + score_precomputed, x86_64 kernels): the query
is padded, rotated (not scaled), qm = −Σ q_i·shift_i, then q_i / scale_i, narrowed to
f32 and quantized to integers with a per-query scale: bits1 / 1.5 with TQ+ use the
16-bit query (Query1bitSimd<16>: round(q·32767/max|q|)) against ±1 codes, score
(0.7978846/q_scale)·Σ q_int·(±1); bits2 / 4 round(q·8127/max|q|) (the x86 split into
two 7-bit halves is exact) against the x86 codebook bytes minus 128 (bits2: −128, −38,
38, 127; bits4: CODEBOOK_U8 − 128), times 1/(q_scale·128/max|c|). Then (raw + qm)·
scaling_factor, in f32 as Rust does. (aarch64 NEON uses a ±127 signed codebook and
15-bit queries instead: last-digit differences.)

decode: Qdrant's `dequantize` (centroids mapped back, c/scale − shift, times
scaling_factor·‖c/scale − shift‖/√D), then the inverse rotation, truncated to d.
"""

from __future__ import annotations

import math

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.engines.qdrant import COMMIT, VERSION, round_half_away
from embedbench.engines.qdrant_turbo_math import (
    quantile_intervals,
    rotate,
    seqsum,
    std_normal_cdf,
    unrotate,
)
from embedbench.quantize.codes import Code, row_blocks

F32 = np.float32
EPS = np.finfo(np.float32).eps
SRC = f"github.com/qdrant/qdrant@{COMMIT[:12]} lib/quantization/src/"
# lloyd_max.rs: Lloyd-Max centroids for N(0, 1)
CENTROIDS = {
    1: np.array([-0.797_884_6, 0.797_884_6], F32),
    2: np.array([-1.510, -0.4528, 0.4528, 1.510], F32),
    4: np.array(
        [-2.733, -2.069, -1.618, -1.256, -0.9424, -0.6568, -0.3881, -0.1284]
        + [0.1284, 0.3881, 0.6568, 0.9424, 1.256, 1.618, 2.069, 2.733],
        F32,
    ),
}
# simd/query{2,4}bit/mod.rs CODEBOOK_U8 (x86_64) minus CODEBOOK_OFFSET 128
CODEBOOK_INT = {
    2: np.array([0, 90, 166, 255]) - 128,
    4: np.array([0, 31, 52, 69, 84, 97, 110, 122, 134, 146, 159, 172, 187, 204, 225, 255]) - 128,
}
QUERY_ABS_MAX = F32(8127.0)  # x86_64 query range for bits2 / bits4
QUERY1_MAX_INT = F32((1 << 15) - 1)  # Query1bitSimd<16>, TQ+ 1-bit storage
SAMPLE = {1: 2048, 1.5: 2048, 2: 4096, 4: 8192}  # TQBits::sample_size
MIN_QUANTILE_WIDTH = F32(1e-3)


def boundaries(bits: int) -> np.ndarray:
    """calculate_boundaries: midpoints of consecutive centroids, in f32."""
    c = CENTROIDS[bits]
    return ((c[:-1] + c[1:]) / F32(2.0)).astype(F32)


def padded_dim(d: int, tq_bits: float) -> int:
    """TurboQuantizer::padded_dim."""
    up = {1: 8, 1.5: 8, 2: 4, 4: 2}[tq_bits]
    n = d * 3 // 2 if tq_bits == 1.5 else d
    return -(-n // up) * up


def quantize_query(q: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Query{1,2,4}bitSimd::new on f32 rows: integer codes and postprocess_scale."""
    m = np.maximum(np.abs(q).max(axis=1), EPS).astype(F32)
    if bits == 1:
        cap, q_scale = QUERY1_MAX_INT, (QUERY1_MAX_INT / m).astype(F32)
        post = (CENTROIDS[1][1] / q_scale).astype(F32)
    else:
        cap, q_scale = QUERY_ABS_MAX, (QUERY_ABS_MAX / m).astype(F32)
        cscale = F32(128.0) / np.abs(CENTROIDS[bits]).max()  # x86_64 CODEBOOK_SCALE
        post = (F32(1.0) / (q_scale * cscale)).astype(F32)
    ints = np.clip(round_half_away((q * q_scale[:, None]).astype(F32)), -cap, cap)
    return ints, post


class QdrantTurbo(Code):
    """Qdrant TurboQuant (TQ+, Cosine): rotated, per-coordinate corrected Lloyd–Max
    codes + f32 scaling factor + f32 ⟨X, M⟩; integer query kernels."""

    learns = True
    random = True  # the TQ+ sample (the rotation's seeds are Qdrant's own, fixed)
    engine_search = True

    def __init__(self, tq_bits: float = 4, seed: int = 0):
        if tq_bits not in SAMPLE:
            raise ValueError(f"qdrant turbo: bits {tq_bits}")
        self.tq_bits, self.seed = tq_bits, seed
        self.bits = 1 if tq_bits == 1.5 else int(tq_bits)  # stored bits a coordinate
        self.shift = self.scale = None

    def bytes_per_vector(self, d: int) -> int:
        return padded_dim(d, self.tq_bits) * self.bits // 8 + 8

    def params_bytes(self) -> int:
        return 0 if self.shift is None else 8 * len(self.shift)

    def preprocess(self, X: np.ndarray) -> np.ndarray:
        """preprocess_into (Cosine): zero-pad to D, rotate, times √D / 1."""
        X = np.asarray(X, dtype=np.float32)
        D = padded_dim(X.shape[1], self.tq_bits)
        buf = np.zeros((len(X), D))
        buf[:, : X.shape[1]] = X
        return rotate(buf) * (math.sqrt(D) / 1.0)

    def fit(self, X: np.ndarray) -> QdrantTurbo:
        X = np.asarray(X, dtype=np.float32)
        D = padded_dim(X.shape[1], self.tq_bits)
        c_outer = np.abs(CENTROIDS[self.bits]).max()
        quantile = np.clip(F32(2.0 * std_normal_cdf(float(c_outer)) - 1.0), F32(0), F32(0.99999))
        self.shift, self.scale = np.zeros(D, F32), np.ones(D, F32)
        if not len(X):
            return self
        R = SAMPLE[self.tq_bits]
        if len(X) > R:  # Permutor sample, sorted: the pushes follow index order
            X = X[np.sort(np.random.default_rng(self.seed).choice(len(X), R, replace=False))]
        V = np.concatenate([self.preprocess(X[b]) for b in row_blocks(len(X))])
        lo, hi = quantile_intervals(V, quantile)
        self.shift = (-(lo + hi) / F32(2.0)).astype(F32)
        width = (hi - lo).astype(F32)
        with np.errstate(divide="ignore"):
            self.scale = np.where(width > MIN_QUANTILE_WIDTH, F32(2.0) * c_outer / width, F32(1))
        self.scale = self.scale.astype(F32)
        return self

    def _reverted(self, idx: np.ndarray) -> np.ndarray:
        """The centroids mapped back to the scaled space: c / scale − shift (f64)."""
        c = CENTROIDS[self.bits][idx].astype(np.float64)
        return c / self.scale.astype(np.float64) - self.shift.astype(np.float64)

    def codes_of(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """quantize_impl: centroid indices (n × D), scaling_factor and xm (f32)."""
        buf = self.preprocess(X)
        n, D = buf.shape
        shift, scale = self.shift.astype(np.float64), self.scale.astype(np.float64)
        live = seqsum(buf * buf) >= 1e-12  # zero input: no correction, xm = 0
        xm = np.where(live, seqsum(buf * -shift), 0.0).astype(F32)
        buf = np.where(live[:, None], (buf + shift) * scale, buf)
        idx = np.searchsorted(boundaries(self.bits), buf.astype(F32), side="left")
        r = self._reverted(idx)
        cn = np.sqrt(seqsum(r * r)).astype(F32)
        cn = np.where(seqsum(buf * buf) < 1e-12, F32(math.sqrt(D)), cn)
        return idx, (F32(1.0) / cn).astype(F32), xm

    def pack(self, idx: np.ndarray) -> np.ndarray:
        per = 8 // self.bits
        n, D = idx.shape
        lanes = idx.reshape(n, D // per, per).astype(np.uint16)
        return (lanes << (self.bits * np.arange(per))).sum(axis=2).astype(np.uint8)

    def unpack(self, codes: np.ndarray, D: int) -> np.ndarray:
        per = 8 // self.bits
        data = codes[:, : D * self.bits // 8, None]
        return ((data >> (self.bits * np.arange(per))) & ((1 << self.bits) - 1)).reshape(-1, D)

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = np.shape(X)
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in row_blocks(n):
            idx, sf, xm = self.codes_of(X[b])
            out[b, :-8] = self.pack(idx)
            out[b, -8:-4] = sf.astype("<f4")[:, None].view(np.uint8)
            out[b, -4:] = xm.astype("<f4")[:, None].view(np.uint8)
        return out

    @staticmethod
    def extras(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sf = np.ascontiguousarray(codes[:, -8:-4]).view("<f4")[:, 0]
        return sf, np.ascontiguousarray(codes[:, -4:]).view("<f4")[:, 0]

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        """dequantize (Cosine, TQ+) and apply_inverse_rotation, the first d coordinates."""
        D = padded_dim(d, self.tq_bits)
        out = np.empty((len(codes), d), dtype=np.float32)
        for b in row_blocks(len(codes)):
            r = self._reverted(self.unpack(codes[b], D))
            l2 = self.extras(codes[b])[0].astype(np.float64) * np.sqrt(seqsum(r * r))
            out[b] = unrotate(r * (l2 / math.sqrt(D))[:, None])[:, :d]
        return out

    def query(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """precompute_query (Cosine, TQ+): integer query, postprocess scale, qm."""
        Q = np.asarray(Q, dtype=np.float32)
        D = padded_dim(Q.shape[1], self.tq_bits)
        buf = np.zeros((len(Q), D))
        buf[:, : Q.shape[1]] = Q
        rot = rotate(buf)
        qm = seqsum(rot * -self.shift.astype(np.float64)).astype(F32)
        ints, post = quantize_query((rot / self.scale.astype(np.float64)).astype(F32), self.bits)
        return ints, post, qm

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """score_precomputed: (post·Σ q_int·c_int + qm)·scaling_factor, in f32; the
        integer dot is exact in f64 (|Σ| < 2^53)."""
        ints, post, qm = self.query(Q)
        D = ints.shape[1]
        table = np.array([-1.0, 1.0]) if self.bits == 1 else CODEBOOK_INT[self.bits]
        out = np.empty((len(ints), len(codes)), dtype=np.float64)
        for b in row_blocks(len(codes)):
            C = table[self.unpack(codes[b], D)].astype(np.float64)
            raw = (post[:, None] * (ints @ C.T).astype(F32)).astype(F32)
            sf = self.extras(codes[b])[0]
            out[:, b] = ((raw + qm[:, None]).astype(F32) * sf[None, :]).astype(F32)
        return out


_NOT = (
    "the HNSW graph's own recall loss (search here is exhaustive over the codes); "
    "Qdrant learns the TQ+ shift/scale from a random sample of the collection's stored "
    "vectors, here of the calibration vectors; the aarch64 NEON kernels' query "
    "encoding (x86_64's is reproduced); Qdrant's symmetric (vector-vs-vector) score, "
    "used to build its graph"
)
_BYTES = {1: "d/8 + 8", 1.5: "⌈1.5·d/8⌉ + 8", 2: "d/4 + 8", 4: "d/2 + 8"}
_QUERY = {1: "16-bit", 1.5: "16-bit", 2: "~14-bit", 4: "~14-bit"}


def _turbo(tq_bits: float) -> EnginePreset:
    label = {1: "1", 1.5: "1.5", 2: "2", 4: "4"}[tq_bits]
    return EnginePreset(
        name=f"qdrant:turbo{label}",
        engine="Qdrant",
        version=VERSION,
        source=SRC + "encoded_vectors_tq.rs, turboquant/ (quantization.rs, rotation.rs, "
        "lloyd_max.rs, simd/), quantile.rs, p_square.rs; docs guides/quantization",
        summary=f"TurboQuant bits{label.replace('.', '_')} (TQ+, Cosine): fixed seeded Hadamard "
        f"rotation, per-coordinate shift/scale from P-square quantiles, {label}-bit "
        f"Lloyd-Max codes + f32 renorm factor + f32 ⟨X,M⟩ ({_BYTES[tq_bits]} bytes); "
        f"the query integer-quantized ({_QUERY[tq_bits]}), score (Σq·c + ⟨Q,M⟩)·factor; "
        "Qdrant's oversampling + rescore is /rescore<k>",
        not_reproduced=_NOT,
        make=lambda seed: QdrantTurbo(tq_bits, seed),
        originals=lambda d: 4 * d,  # the original f32 vector Qdrant keeps
    )


register(*(_turbo(b) for b in (1, 1.5, 2, 4)))
