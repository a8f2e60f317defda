"""Qdrant presets: scalar int8 and binary quantization (1, 1.5, 2 bits, binary or
scalar-quantized queries), and TurboQuant (`embedbench.engines.qdrant_turbo`).

Qdrant 1.19.0 (github.com/qdrant/qdrant, read at commit 74f3e85b9473), the `quantization`
crate (lib/quantization/src) and the collection options of lib/segment/src/types.rs;
docs: qdrant.tech/documentation/guides/quantization. With `Cosine` distance Qdrant
normalises vectors on insert and scores scalar and binary codes as `Dot`
(lib/segment/src/vector_storage/quantized/quantized_vectors.rs
construct_vector_parameters); the vectors here arrive normalised.

- `int8` (encoded_vectors_u8.rs): ONE range [offset, offset + 127·alpha] for all
  dimensions (not per dimension), alpha = (max − min)/127, so codes are u8 in 0..127
  (7 bits used): code = round(clamp((x − offset)/alpha, 0, 127)). With `quantile` q
  (quantile.rs find_quantile_interval) the range is taken from at most 5,000 sampled
  vectors, all values pooled, cutting ⌊n_vectors·(1 − q)/2⌋ values (counted in
  vectors, not values: a handful) off each end; without q (the code's default: "use
  the whole range of values"), the global min and max. Each stored vector is a 4-byte
  f32 correction followed by the codes padded to a multiple of 16 dimensions (padding
  encodes 0.0): 4 + ⌈d/16⌉·16 bytes. The correction is Σcodes·alpha·offset +
  d_pad·offset². The query is quantized the same way (its own correction Σcodes·
  alpha·offset, no offset² term) and the score is alpha²·Σ q_code·v_code + q_corr +
  v_corr, the dot product of the two dequantized vectors (alpha·code + offset).
- `binary` (encoded_vectors_binary.rs, single vectors packed in u128 words: storage
  rounds up to 16 bytes): one_bit stores bit x > 0; two_bits stores, per dimension,
  (b1, b2) = 00 if z ≤ −2/3, 10 if −2/3 < z < 2/3, 11 if z ≥ 2/3 with z = (x − mean)/
  stddev (per-dimension mean and sample stddev, learned from the stored vectors; a
  dimension with stddev < f32::EPSILON stores (x > 0, 0)), b1 planes first then b2;
  one_and_half_bits stores b1 for every dimension and b2 of dimensions 2k, 2k+1 OR-ed
  into one bit: ⌈1.5·d⌉ bits. Bits are little-endian within bytes. Score (Dot) =
  d − 2·xor with xor = popcount(query code XOR stored code), the query encoded like a
  stored vector (`query_encoding` default / binary). With `query_encoding`
  scalar8bits / scalar4bits the query (extended as the storage is: [q, q] for two
  bits, [q, max(q_2k, q_2k+1)] for one and a half) is quantized to B bits on
  [−max|q|, max|q|] (code = round((q + m)/delta), delta = 2m/(2^B − 1)) and xor =
  Σ_j (b_j ? (2^B − 1) − code_j : code_j) / (2^B − 1): score = d − 2·xor.

Qdrant's oversampling and rescoring (`search_params.quantization.rescore`,
`oversampling`) is the `/rescore<k>` suffix, e.g. `qdrant:binary/rescore3`.

Counted per vector: what the quantized storage holds for it (int8: the f32
correction and the padded codes; binary: the padded bit words), and, as `originals`
(secondary bytes), the original f32 vector Qdrant always keeps beside the quantized
one (in RAM or on disk; rescoring reads it). Not counted: the collection-wide
parameters (int8: alpha and offset, 8 bytes; binary: per-dimension mean/stddev, in
`params_bytes`) and the HNSW graph links.

TurboQuant (`quantization_config.turbo`, bits 1 / 1.5 / 2 / 4, default 4) is in
`embedbench.engines.qdrant_turbo` (`qdrant:turbo1`, `qdrant:turbo1.5`, `qdrant:turbo2`,
`qdrant:turbo4`).
"""

from __future__ import annotations

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.quantize.codes import Code, row_blocks

VERSION = "1.19.0"
COMMIT = "74f3e85b9473c62560006c043e13737ce6b48412"
SRC = "github.com/qdrant/qdrant@74f3e85b9473 lib/quantization/src/"
ALIGNMENT = 16  # encoded_vectors_u8.rs ALIGNMENT: int8 codes padded to 16 dimensions
SAMPLE_SIZE = 5_000  # quantile.rs SAMPLE_SIZE
F32_EPS = np.finfo(np.float32).eps
SIGMAS = np.float32(2.0 / 3.0)  # encoded_vectors_binary.rs encode_two_bits_value
ENCODINGS = ("one_bit", "one_and_half_bits", "two_bits")


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Rust's f32::round (halves away from zero), exact on f32 inputs."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def sample_rows(X: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Qdrant's take_random_vectors: a random subset of `size` rows (all if fewer)."""
    if len(X) <= size:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size, replace=False))
    return X[rows]


def int8_range(X: np.ndarray, quantile: float | None, seed: int = 0) -> tuple[float, float]:
    """(min, max) of quantile.rs find_quantile_interval, or the whole range without
    a quantile, with fewer than 127 vectors or with quantile >= 1."""
    X = np.asarray(X, dtype=np.float32)
    whole = float(X.min()), float(X.max())
    if quantile is None or len(X) < 127 or quantile >= 1.0:
        return whole
    values = sample_rows(X, SAMPLE_SIZE, seed).ravel()
    n_sel, size = len(values) // X.shape[1], len(values)
    if size < 4:
        return whole
    cut = int(np.float32(n_sel) * (np.float32(1.0) - np.float32(quantile)) / np.float32(2.0))
    cut = max(min((size - 1) // 2, cut), 1)
    # select_nth(size - cut) then select_nth(cut) on the left part: the values kept
    # are the sorted positions cut + 1 .. size - cut - 1
    lo, hi = cut + 1, size - cut - 1
    if hi - lo + 1 < 2:
        return whole
    part = np.partition(values, (lo, hi))
    return float(part[lo]), float(part[hi])


class QdrantInt8(Code):
    """Qdrant scalar int8: one global range, u8 codes 0..127, f32 correction per vector."""

    bits = 8
    random = False
    engine_search = True

    def __init__(self, quantile: float | None, seed: int = 0):
        self.quantile, self.seed = quantile, seed
        self.learns = True

    def fit(self, X: np.ndarray) -> QdrantInt8:
        lo, hi = int8_range(X, self.quantile, self.seed)
        self.alpha = np.float32((np.float32(hi) - np.float32(lo)) / np.float32(127.0))
        self.offset = np.float32(lo)
        self.multiplier = np.float32(self.alpha * self.alpha)  # Dot: alpha²
        return self

    @staticmethod
    def padded(d: int) -> int:
        return d + (ALIGNMENT - d % ALIGNMENT) % ALIGNMENT

    def bytes_per_vector(self, d: int) -> int:
        return 4 + self.padded(d)

    def params_bytes(self) -> int:
        return 8  # alpha and offset (the metadata file also keeps the multiplier)

    def codes_of(self, X: np.ndarray) -> np.ndarray:
        """MetadataInt8::encode_value on every value, padding coded as 0.0: n × d_pad u8."""
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        full = np.zeros((n, self.padded(d)), dtype=np.float32)
        full[:, :d] = X
        with np.errstate(divide="ignore", invalid="ignore"):
            i = (full - self.offset) / self.alpha
        i = np.nan_to_num(i, nan=0.0)  # alpha 0 (constant data): Rust's NaN.clamp is NaN -> 0
        return round_half_away(np.clip(i, 0.0, 127.0)).astype(np.uint8)

    def corrections(self, codes: np.ndarray, shift: bool) -> np.ndarray:
        """Σcodes·alpha·offset (+ d_pad·offset² for a stored vector), in f32 as Rust does."""
        s = codes.sum(axis=1, dtype=np.int64).astype(np.float32)
        out = s * self.alpha * self.offset
        if shift:
            out = np.float32(codes.shape[1]) * self.offset * self.offset + out
        return out.astype(np.float32)

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = np.shape(X)
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in row_blocks(n):
            codes = self.codes_of(X[b])
            out[b, :4] = self.corrections(codes, shift=True).astype("<f4")[:, None].view(np.uint8)
            out[b, 4:] = codes
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        """The dequantization the score implies: alpha·code + offset."""
        return codes[:, 4 : 4 + d].astype(np.float32) * self.alpha + self.offset

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """multiplier·Σ q_code·v_code + q_corr + v_corr (postprocess_score), in f32."""
        qc = self.codes_of(Q)
        q_off = self.corrections(qc, shift=False)
        v_off = np.ascontiguousarray(codes[:, :4]).view("<f4")[:, 0]
        V = codes[:, 4:].astype(np.float32)  # u8·u8 sums stay exact in f32 below 2^24
        out = np.empty((len(qc), len(codes)), dtype=np.float64)
        for s in range(0, len(qc), 256):
            dot = qc[s : s + 256].astype(np.float32) @ V.T
            out[s : s + 256] = (self.multiplier * dot + q_off[s : s + 256, None]) + v_off
        return out


class QdrantBinary(Code):
    """Qdrant binary quantization: 1, 1.5 or 2 bits a dimension, u128 words; XOR score."""

    random = False
    engine_search = True

    def __init__(self, encoding: str = "one_bit", query_bits: int = 1):
        if encoding not in ENCODINGS or query_bits not in (1, 4, 8):
            raise ValueError(f"qdrant binary: {encoding}, {query_bits}-bit query")
        self.encoding, self.query_bits = encoding, query_bits
        self.bits = {"one_bit": 1, "one_and_half_bits": 2, "two_bits": 2}[encoding]
        # only the 1.5 / 2-bit storage encodings use the per-dimension statistics
        self.learns = encoding != "one_bit"
        self.mean = self.sd = None

    def fit(self, X: np.ndarray) -> QdrantBinary:
        if self.learns:
            X64 = np.asarray(X, dtype=np.float64)
            self.mean = X64.mean(axis=0).astype(np.float32)
            sd = X64.std(axis=0, ddof=1) if len(X64) > 1 else np.zeros(X64.shape[1])
            self.sd = sd.astype(np.float32)
        return self

    def params_bytes(self) -> int:
        return 0 if self.mean is None else 4 * 4 * len(self.mean)  # min, max, mean, stddev

    def extended(self, d: int) -> int:
        return {"one_bit": d, "two_bits": 2 * d, "one_and_half_bits": (3 * d + 1) // 2}[
            self.encoding
        ]

    def bytes_per_vector(self, d: int) -> int:
        return -(-max(self.extended(d), 1) // 128) * 16  # u128 words

    def bit_planes(self, X: np.ndarray) -> np.ndarray:
        """The stored bits before packing: n × extended(d) bools."""
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        if self.encoding == "one_bit":
            return X > 0
        flat = self.sd < F32_EPS
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (X - self.mean) / np.where(flat, np.float32(1), self.sd)
        b1 = np.where(flat, X > 0, z > -SIGMAS)
        b2 = np.where(flat, False, z >= SIGMAS)
        if self.encoding == "two_bits":
            return np.concatenate([b1, b2], axis=1)
        pairs = np.zeros((n, 2 * (-(-d // 2))), dtype=bool)
        pairs[:, :d] = b2
        return np.concatenate([b1, pairs[:, 0::2] | pairs[:, 1::2]], axis=1)

    def encode(self, X: np.ndarray) -> np.ndarray:
        n, d = np.shape(X)
        out = np.zeros((n, self.bytes_per_vector(d)), dtype=np.uint8)
        for b in row_blocks(n):
            packed = np.packbits(self.bit_planes(X[b]), axis=1, bitorder="little")
            out[b, : packed.shape[1]] = packed
        return out

    def unpack(self, codes: np.ndarray, d: int) -> np.ndarray:
        return np.unpackbits(codes, axis=1, count=self.extended(d), bitorder="little")

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        """Qdrant has no reconstruction: ±1 for one bit, −1 / 0 / +1 for the z-score
        buckets of two bits (b1 = 0: −1; b1 = 1: b2 ? +1 : 0), the shared second bit
        standing for both dimensions of a pair in 1.5 bits."""
        bits = self.unpack(codes, d).astype(np.float32)
        if self.encoding == "one_bit":
            return bits * 2.0 - 1.0
        b1 = bits[:, :d]
        b2 = bits[:, d:] if self.encoding == "two_bits" else np.repeat(bits[:, d:], 2, axis=1)
        return b1 + b1 * b2[:, :d] - 1.0

    def query_levels(self, Q: np.ndarray) -> np.ndarray:
        """The query's value at every storage bit, in 0 .. 2^B − 1 (B = 1: its own bits;
        B = 4, 8: _encode_scalar_query_vector of the query extended like the storage)."""
        Q = np.asarray(Q, dtype=np.float32)
        if self.query_bits == 1:
            return self.bit_planes(Q).astype(np.float32)
        n, d = Q.shape
        if self.encoding == "two_bits":
            Q = np.concatenate([Q, Q], axis=1)
        elif self.encoding == "one_and_half_bits":
            pad = np.concatenate([Q, Q[:, -1:]], axis=1) if d % 2 else Q
            Q = np.concatenate([Q, np.maximum(pad[:, 0::2], pad[:, 1::2])], axis=1)
        ranges = (1 << self.query_bits) - 1
        m = np.abs(Q).max(axis=1, keepdims=True)
        delta = (m - (-m)) / np.float32(ranges)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(delta > F32_EPS, (Q - (-m)) / delta, np.float32(0))
        return (round_half_away(level) % (ranges + 1)).astype(np.float32)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """calculate_metric for Dot: d − 2·xor, xor = Σ_j |level_j − M·b_j| / M (M =
        2^B − 1; for B = 1 the popcount of query XOR code), in f32 as Rust does."""
        n_q, d = np.shape(Q)
        M = np.float32((1 << self.query_bits) - 1)
        lev = self.query_levels(Q)
        lsum, w = lev.sum(axis=1, dtype=np.float64), M - 2 * lev  # Σ_j lev_j + b_j (M − 2 lev_j)
        dim = np.float32(d)
        out = np.empty((n_q, len(codes)), dtype=np.float64)
        for b in row_blocks(len(codes)):
            bits = self.unpack(codes[b], d).astype(np.float32)
            xor_sum = lsum[:, None] + (w @ bits.T).astype(np.float64)  # exact integers
            xor = (xor_sum.astype(np.float32) / M).astype(np.float32)
            out[:, b] = (dim - xor) - xor
        return out


_NOT = (
    "the HNSW graph's own recall loss (search here is exhaustive over the codes); "
    "Qdrant learns {what} from the collection's stored vectors, here from the "
    "calibration vectors only"
)
_RESCORE = "; Qdrant's oversampling + rescore is /rescore<k>"


def _originals(d: int) -> int:
    return 4 * d  # the original f32 vector Qdrant keeps beside the quantized one


def _int8(name: str, quantile: float | None, note: str) -> EnginePreset:
    return EnginePreset(
        name=name,
        engine="Qdrant",
        version=VERSION,
        source=SRC + "encoded_vectors_u8.rs, quantile.rs; docs guides/quantization#scalar",
        summary=f"scalar int8 ({note}): one global range, u8 codes 0..127 padded to 16 "
        "dims + f32 correction (4 + ⌈d/16⌉·16 bytes); the query is int8-quantized too, "
        "score alpha²·Σq·v + corrections" + _RESCORE,
        not_reproduced=_NOT.format(what="the value range (quantile over ≤ 5,000 sampled vectors)"),
        make=lambda seed: QdrantInt8(quantile, seed),
        originals=_originals,
    )


def _binary(name: str, encoding: str, query_bits: int) -> EnginePreset:
    query = (
        "the query binarized like a stored vector"
        if query_bits == 1
        else f"the query scalar-quantized to {query_bits} bits (scalar{query_bits}bits)"
    )
    stats = encoding != "one_bit"
    return EnginePreset(
        name=name,
        engine="Qdrant",
        version=VERSION,
        source=SRC + "encoded_vectors_binary.rs, vector_stats.rs; docs guides/quantization#binary",
        summary=f"binary quantization encoding={encoding}"
        + (" (bits from per-dimension z-scores at ±2/3 stddev)" if stats else " (bit x > 0)")
        + f", u128 words; {query}; score d − 2·XOR popcount"
        + _RESCORE,
        not_reproduced=(
            _NOT.format(what="the per-dimension mean and stddev")
            if stats
            else "the HNSW graph's own recall loss (search here is exhaustive over the codes)"
        ),
        make=lambda seed: QdrantBinary(encoding, query_bits),
        originals=_originals,
    )


register(
    _int8("qdrant:int8", 0.99, "quantile 0.99, the docs' example setting"),
    _int8("qdrant:int8-q1.0", None, "no quantile: the code's default, the whole range"),
    _binary("qdrant:binary", "one_bit", 1),
    _binary("qdrant:binary-1.5bit", "one_and_half_bits", 1),
    _binary("qdrant:binary-2bit", "two_bits", 1),
    _binary("qdrant:binary-q4", "one_bit", 4),
    _binary("qdrant:binary-q8", "one_bit", 8),
    _binary("qdrant:binary-1.5bit-q8", "one_and_half_bits", 8),
    _binary("qdrant:binary-2bit-q4", "two_bits", 4),
    _binary("qdrant:binary-2bit-q8", "two_bits", 8),
)
