"""Elasticsearch presets: `es:int8_hnsw`, `es:int4_hnsw` and `es:bbq_hnsw`.

Elasticsearch 9.x `dense_vector` (float, similarity cosine: ES normalises the vectors
at index time and indexes them with Lucene's DOT_PRODUCT) with `index_options.type`:

- `int8_hnsw` (ES's default for float vectors): DenseVectorFieldMapper
  Int8HnswIndexOptions builds `ES814HnswScalarQuantizedVectorsFormat(m, ef,
  confidence_interval=null, bits=7, compress=false)`, which writes with Lucene's
  Lucene99ScalarQuantizedVectorsWriter: the null confidence interval becomes
  max(0.9, 1 - 1/(d + 1)) (0.99740 at d = 384), ScalarQuantizer.fromVectors takes the
  quantiles, each vector is stored as d bytes (0..127) and its float corrective
  offset: d + 4 bytes. A float query is quantized with the same quantiles
  (ScalarQuantizedVectorScorer.quantizeQuery) and scored by
  ScalarQuantizedVectorSimilarity.DotProduct: max((1 + dot·alpha² + query offset +
  document offset) / 2, 0).
- `int4_hnsw`: Int4HnswIndexOptions: confidence_interval defaults to 0, the dynamic
  quantiles (ScalarQuantizer.fromVectorsAutoInterval), bits=4, compress=true: two
  4-bit codes a byte (OffHeapQuantizedByteVectorValues.compressBytes: byte i holds code
  i in the high nibble and code i + d/2 in the low one; ES accepts only even d), and the
  float offset: d/2 + 4 bytes. Scored as int8, with the 4-bit codes.
- `bbq_hnsw`: BBQHnswIndexOptions builds ES818HnswBinaryQuantizedVectorsFormat:
  ES818BinaryQuantizedVectorsWriter centres each vector on the segment centroid (mean
  of the segment's vectors) and quantizes it to 1 bit a dimension with
  OptimizedScalarQuantizer (`lucene_quant.osq`): stored are the bits (d rounded up to
  a multiple of 64, MSB first), lower and upper interval, x·centroid (3 floats) and the
  count of ones (a short): ceil(d/64)·8 + 14 bytes. The query is quantized to 4 bits
  the same way, and ES818BinaryFlatVectorsScorer.quantizedScore estimates the dot
  product ax·ay·d + ay·lx·x1 + ax·ly·y1 + lx·ly·<q, bits> + q·c + x·c - c·c, scored
  max((1 + estimate) / 2, 0). This preset is the quantized score alone; ES's
  default for bbq_hnsw oversamples 3× and re-ranks by the float vectors
  (`rescore_vector.oversample: 3.0`, DenseVectorFieldMapper.DEFAULT_OVERSAMPLE):
  that search is `es:bbq_hnsw/rescore3`, which reads the float vectors ES keeps.

Counted per vector: the quantized payload and the per-vector corrections the format
writes (the searched tier), and in the total footprint the float vectors ES keeps on
disk beside every quantized format (4·d bytes, `originals`); not counted: the HNSW
graph and per-segment state (quantiles, centroid: `params_bytes`). Decoding
(symmetric tasks): int8/int4 dequantize as ScalarQuantizer.deQuantize (alpha·q +
lo); BBQ has no reconstruction in the engine, so the natural one is given: centroid
+ lower + bit·(upper - lower).

Sources read: elastic/elasticsearch DenseVectorFieldMapper.java at 23494d1
(index options, DEFAULT_OVERSAMPLE = 3), ES814ScalarQuantizedVectorsFormat.java at
e195154, es93/ES93ScalarQuantizedVectorsFormat.java at 3d7b478 (same writer and
scorer in 9.3), es818/ES818BinaryQuantizedVectorsWriter.java at 4eddd89,
es818/ES818BinaryFlatVectorsScorer.java at 60504f6, OptimizedScalarQuantizer.java at
b2fb21f; apache/lucene ScalarQuantizer.java at c576642, ScalarQuantizedVectorSimilarity
.java at a078974, hnsw/ScalarQuantizedVectorScorer.java at d2ea004,
lucene99/OffHeapQuantizedByteVectorValues.java at e8510f9.
"""

from __future__ import annotations

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.engines.lucene_quant import (
    F32,
    ScalarQuantizer,
    auto_quantiles,
    default_confidence_interval,
    osq,
    quantiles,
)
from embedbench.quantize.codes import Code

VERSION = "9.1"
OFFSET = 4  # bytes: one float correction per vector (int8/int4)
BBQ_TAIL = 14  # bytes: lower, upper, additional correction (floats) and a short
BBQ_MIN_DIMS = 64  # DenseVectorFieldMapper.BBQ_MIN_DIMS
QUERY_ROWS = 256  # queries scored at a time


def _floats(values: np.ndarray) -> np.ndarray:
    """Little-endian float32 bytes (Lucene's DataOutput.writeInt of floatToIntBits)."""
    return np.ascontiguousarray(values, "<f4").view(np.uint8).reshape(len(values), -1)


class ESScalarQuantized(Code):
    """ES814 scalar quantization (Lucene99ScalarQuantizedVectorsFormat): `bits` 7 with
    the default confidence interval, or 4 with dynamic quantiles, packed two a byte."""

    learns, random = True, False
    engine_search = True

    def __init__(self, bits: int):
        self.bits = 8 if bits == 7 else bits  # nominal: a byte a dimension for int7
        self.qbits = bits

    @property
    def packed(self) -> bool:
        return self.qbits == 4

    def payload(self, d: int) -> int:
        return (d + 1) // 2 if self.packed else d

    def bytes_per_vector(self, d: int) -> int:
        return self.payload(d) + OFFSET

    def check(self, d: int) -> str | None:
        if self.packed and d % 2:
            return "int4_hnsw only supports even dimensions"
        return None

    def fit(self, X: np.ndarray) -> ESScalarQuantized:
        X = np.asarray(X, F32)
        if self.packed:
            lo, hi = auto_quantiles(X, self.qbits)
        else:
            lo, hi = quantiles(X, default_confidence_interval(X.shape[1]))
        self.sq = ScalarQuantizer(lo, hi, self.qbits)
        return self

    def params_bytes(self) -> int:
        return 2 * 4  # the segment's two quantiles

    def encode(self, X: np.ndarray) -> np.ndarray:
        codes, corr = self.sq.quantize(X)
        n, d = codes.shape
        out = np.empty((n, self.bytes_per_vector(d)), np.uint8)
        if self.packed:
            half = self.payload(d)
            out[:, :half] = (codes[:, :half] << 4) | codes[:, half:]
        else:
            out[:, :d] = codes
        out[:, -OFFSET:] = _floats(corr)
        return out

    def unpack(self, codes: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
        """The quantized values (n × d) and corrective offsets of stored rows."""
        body = codes[:, : self.payload(d)]
        if self.packed:  # OffHeapQuantizedByteVectorValues.decompressBytes
            body = np.concatenate([body >> 4, body & 0x0F], axis=1)
        corr = np.ascontiguousarray(codes[:, -OFFSET:]).view("<f4")[:, 0].astype(F32)
        return body, corr

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        return self.sq.dequantize(self.unpack(codes, d)[0])

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Lucene's quantized DOT_PRODUCT score of the quantized query against each row."""
        d = np.asarray(Q).shape[1]
        dc, dcorr = self.unpack(codes, d)
        out = np.empty((len(Q), len(codes)), np.float64)
        for s in range(0, len(Q), QUERY_ROWS):
            qc, qcorr = self.sq.quantize(Q[s : s + QUERY_ROWS])
            out[s : s + QUERY_ROWS] = self.sq.score(qc, qcorr, dc, dcorr)
        return out


class ESBBQ(Code):
    """ES818 Better Binary Quantization: 1-bit OSQ documents around the segment
    centroid, 4-bit OSQ queries, the corrected dot-product estimate."""

    learns, random = True, False
    engine_search = True
    bits = 1

    @staticmethod
    def packed_bytes(d: int) -> int:
        return -(-d // 64) * 8  # BQVectorUtils.discretize(d, 64) / 8

    def bytes_per_vector(self, d: int) -> int:
        return self.packed_bytes(d) + BBQ_TAIL

    def check(self, d: int) -> str | None:
        if d < BBQ_MIN_DIMS:
            return f"bbq_hnsw needs at least {BBQ_MIN_DIMS} dimensions"
        return None

    def fit(self, X: np.ndarray) -> ESBBQ:
        """The centroid: float sums of the vectors divided by their count (flush)."""
        X = np.asarray(X, F32)
        self.centroid = (X.sum(axis=0, dtype=F32) / F32(len(X))).astype(F32)
        self.centroid_dp = F32(np.dot(self.centroid, self.centroid))
        return self

    def params_bytes(self) -> int:
        return 4 * len(self.centroid) + 4  # the centroid and its squared norm (meta)

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, F32)
        n, d = X.shape
        nb = self.packed_bytes(d)
        out = np.zeros((n, self.bytes_per_vector(d)), np.uint8)
        for s in range(0, n, 2048):
            codes, a, b, cdot, ones = osq(X[s : s + 2048], self.centroid, 1)
            rows = slice(s, s + len(codes))
            out[rows, : -(-d // 8)] = np.packbits(codes, axis=1)  # the rest pads with 0
            out[rows, nb : nb + 12] = _floats(np.stack([a, b, cdot], axis=1))
            out[rows, nb + 12 :] = np.ascontiguousarray(ones, "<u2").view(np.uint8).reshape(-1, 2)
        return out

    def unpack(self, codes: np.ndarray, d: int):
        """Bits (n × d), lower, upper, additional correction and count of ones."""
        nb = self.packed_bytes(d)
        bits = np.unpackbits(codes[:, :nb], axis=1, count=d)
        tail = np.ascontiguousarray(codes[:, nb:])
        lower, upper, add = (tail[:, :12].view("<f4").astype(F32)).T
        ones = tail[:, 12:].view("<u2")[:, 0].astype(np.int64)
        return bits, lower, upper, add, ones

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits, lower, upper, _, _ = self.unpack(codes, d)
        return self.centroid + lower[:, None] + bits.astype(F32) * (upper - lower)[:, None]

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """ES818BinaryFlatVectorsScorer.quantizedScore of the 4-bit query, in float."""
        Q = np.asarray(Q, F32)
        d = Q.shape[1]
        bits, ax, upper, dadd, ones = self.unpack(codes, d)
        lx, x1, bits = (upper - ax).astype(F32), ones.astype(F32), bits.astype(np.float64)
        dims, scale = F32(d), F32(F32(1) / F32(15))  # FOUR_BIT_SCALE
        out = np.empty((len(Q), len(codes)), np.float64)
        for s in range(0, len(Q), QUERY_ROWS):
            qc, ay, qb, qadd, qsum = osq(Q[s : s + QUERY_ROWS], self.centroid, 4)
            ly, y1 = ((qb - ay) * scale).astype(F32), qsum.astype(F32)
            dist = (qc.astype(np.float64) @ bits.T).astype(F32)  # exact integers
            ay, ly, y1 = ay[:, None], ly[:, None], y1[:, None]
            score = (ax * ay) * dims + (ay * lx) * x1 + (ax * ly) * y1 + (lx * ly) * dist
            score = score + ((qadd[:, None] + dadd) - self.centroid_dp)
            out[s : s + QUERY_ROWS] = np.maximum((F32(1) + score) / F32(2), F32(0))
        return out


_NOT = (
    "the HNSW graph's own recall loss (search is exhaustive over the codes); "
    "per-segment quantization: Lucene computes the {what} per segment from the indexed "
    "vectors and recomputes it at merges ({merge}); here it comes once from the "
    "calibration vectors (corpus documents for retrieval); {extra}"
)
register(
    EnginePreset(
        name="es:int8_hnsw",
        engine="Elasticsearch",
        version=VERSION,
        source="DenseVectorFieldMapper Int8HnswIndexOptions -> ES814ScalarQuantizedVectorsFormat"
        " (elastic/elasticsearch 23494d1, e195154); Lucene ScalarQuantizer.java (c576642)",
        summary="7-bit codes between the quantiles at confidence max(0.9, 1 - 1/(d+1)) "
        "plus a float offset (d + 4 bytes); quantized query, corrected dot product",
        not_reproduced=_NOT.format(
            what="quantiles",
            merge="requantizing when merged quantiles drift",
            extra="more than 25,000 vectors are reservoir-sampled with a fresh Random(42) "
            "(Lucene's is one static Random); ES's native int7 scorer is taken to compute "
            "the same score",
        ),
        make=lambda seed: ESScalarQuantized(7),
        originals=lambda d: 4 * d,  # ES keeps the float vectors beside the quantized ones
    ),
    EnginePreset(
        name="es:int4_hnsw",
        engine="Elasticsearch",
        version=VERSION,
        source="DenseVectorFieldMapper Int4HnswIndexOptions -> ES814ScalarQuantizedVectorsFormat"
        " (confidence_interval 0, bits 4, compress); Lucene ScalarQuantizer"
        ".fromVectorsAutoInterval (c576642)",
        summary="4-bit codes, two a byte, between dynamic quantiles, plus a float offset "
        "(d/2 + 4 bytes); 4-bit quantized query, corrected dot product",
        not_reproduced=_NOT.format(
            what="dynamic quantiles",
            merge="always, for 4 bits",
            extra="more than 1,000 vectors are reservoir-sampled with a fresh Random(42); "
            "float scores of the grid search summed in float64",
        ),
        make=lambda seed: ESScalarQuantized(4),
        originals=lambda d: 4 * d,  # ES keeps the float vectors beside the quantized ones
    ),
    EnginePreset(
        name="es:bbq_hnsw",
        engine="Elasticsearch",
        version=VERSION,
        source="DenseVectorFieldMapper BBQHnswIndexOptions -> ES818BinaryQuantizedVectorsWriter"
        " / ES818BinaryFlatVectorsScorer (4eddd89, 60504f6), OptimizedScalarQuantizer"
        " (b2fb21f)",
        summary="1-bit OSQ of the centroid-centred vector plus 3 floats and a short "
        "(ceil(d/64)·8 + 14 bytes); 4-bit OSQ query, corrected dot-product estimate; ES's "
        "default 3x oversample + float re-rank is es:bbq_hnsw/rescore3",
        not_reproduced=_NOT.format(
            what="centroid",
            merge="the weighted mean of the merged segments' centroids, then requantization",
            extra="the OSQ statistics and loss are summed in float64 (ES: float SIMD lanes), "
            "so an interval can differ in its last bits; the oversample-and-rescore "
            "default is the /rescore3 variant, not this preset",
        ),
        make=lambda seed: ESBBQ(),
        originals=lambda d: 4 * d,  # ES keeps the float vectors beside the quantized ones
    ),
)
