"""pgvector presets: `pgvector:halfvec` and `pgvector:bit`.

pgvector 0.8 (github.com/pgvector/pgvector, read at commit e48241b):

- `halfvec`: README "Half-Precision Vectors" and `src/halfvec.h`: a varlena of
  `2 * dimensions + 8` bytes (4-byte varlena header, int16 dim, int16 unused, then
  IEEE half floats); a float value beyond ±65519 is refused ("out of range for type
  halfvec"; the preset clips nothing: embeddings are far inside). Cosine distance
  (`<=>`, `src/halfutils.c` HalfvecCosineSimilarityDefault): the query is cast to
  halfvec too, and similarity = Σ a_i b_i / sqrt(Σ a_i² · Σ b_i²), each half widened
  to float and summed in float.
- `bit`: README "Binary Quantization": an expression index on
  `binary_quantize(embedding)::bit(d)` (`src/vector.c` binary_quantize: bit i is
  x_i > 0, most significant bit first), searched by Hamming distance (`<~>`,
  `src/bitutils.c`) with the query binary-quantized as well; a bit value takes
  `dimensions / 8 + 8` bytes (README "Binary Vectors": varlena header and int32 bit
  length, then the bytes). The README's re-ranking query (Hamming top k·m, then
  `ORDER BY embedding <=> query`) is `pgvector:bit/rescore<m>`: the table keeps the
  float `vector` column (`4 * dimensions + 8` bytes), counted in the total
  footprint (`originals`), which the re-ranking reads.

Not reproduced: the HNSW / IVFFlat index's own recall loss (search here is
exhaustive over the codes), and Postgres's TOAST compression of large values.
"""

from __future__ import annotations

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.quantize.codes import Code, row_blocks

VERSION = "0.8"
HEADER = (
    8  # bytes: a varlena header and, for halfvec, int16 dim + int16 unused; for bit, int32 length
)


def _header(n: int, total: int, second: np.ndarray) -> np.ndarray:
    """n × 8 header bytes: the 4-byte varlena length (SET_VARSIZE, little-endian: total
    << 2) and 4 more bytes (`second`, already little-endian uint8 × 4)."""
    head = np.empty((n, HEADER), dtype=np.uint8)
    head[:, :4] = np.frombuffer(np.uint32(total << 2).tobytes(), dtype=np.uint8)
    head[:, 4:] = second
    return head


class HalfVec(Code):
    """pgvector `halfvec(d)`: half floats after an 8-byte header; cosine in float."""

    learns, random = False, False
    engine_search = True
    bits = 16

    def bytes_per_vector(self, d: int) -> int:
        return 2 * d + HEADER

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        if np.abs(X).max(initial=0.0) > 65519:
            raise ValueError("pgvector:halfvec: a value is out of range for type halfvec")
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        second = np.frombuffer(np.array([d, 0], "<i2").tobytes(), dtype=np.uint8)
        out[:, :HEADER] = _header(1, 2 * d + HEADER, second)
        half = out[:, HEADER:].view(np.float16) if n else np.empty((0, d), np.float16)
        for b in row_blocks(n):
            half[b] = X[b]
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        payload = np.ascontiguousarray(codes[:, HEADER:])
        return payload.view(np.float16).reshape(len(codes), d).astype(np.float32)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Cosine similarity of the halfvec-cast queries with the stored halfvecs."""
        d = (codes.shape[1] - HEADER) // 2
        A = np.asarray(Q, dtype=np.float32).astype(np.float16).astype(np.float32)
        B = self.decode(codes, d)
        dot = A @ B.T
        na, nb = np.einsum("ij,ij->i", A, A), np.einsum("ij,ij->i", B, B)
        with np.errstate(invalid="ignore", divide="ignore"):
            return dot.astype(np.float64) / np.sqrt(np.outer(na, nb).astype(np.float64))


class BitQuantize(Code):
    """pgvector `binary_quantize(v)::bit(d)`: bit i = v_i > 0, MSB first; Hamming search."""

    learns, random = False, False
    engine_search = True
    bits = 1

    def bytes_per_vector(self, d: int) -> int:
        return -(-d // 8) + HEADER

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), dtype=np.uint8)
        second = np.frombuffer(np.int32(d).astype("<i4").tobytes(), dtype=np.uint8)
        out[:, :HEADER] = _header(1, self.bytes_per_vector(d), second)
        for b in row_blocks(n):
            out[b, HEADER:] = np.packbits(X[b] > 0, axis=1)
        return out

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits = np.unpackbits(codes[:, HEADER:], axis=1, count=d).astype(np.float32)
        return bits * 2.0 - 1.0

    @staticmethod
    def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Hamming distances of packed bit rows a (m × k) and b (n × k): m × n."""
        return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int64)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """−(Hamming distance) of binary_quantize(query) to each stored bit value."""
        q = self.encode(Q)[:, HEADER:]
        out = np.empty((len(q), len(codes)), dtype=np.float64)
        step = max(1, (1 << 22) // max(1, len(codes) * q.shape[1]))
        for s in range(0, len(q), step):
            out[s : s + step] = -self.hamming(q[s : s + step], codes[:, HEADER:])
        return out


_NOT = (
    "the HNSW / IVFFlat index's own recall loss (search is exhaustive over the codes); "
    "TOAST compression"
)
register(
    EnginePreset(
        name="pgvector:halfvec",
        engine="pgvector",
        version=VERSION,
        source="README 'Half-Precision Vectors'; src/halfvec.h, src/halfutils.c",
        summary="halfvec(d): IEEE half floats (2·d + 8 bytes), cosine computed in float",
        not_reproduced=_NOT,
        make=lambda seed: HalfVec(),
    ),
    EnginePreset(
        name="pgvector:bit",
        engine="pgvector",
        version=VERSION,
        source="README 'Binary Quantization'; src/vector.c binary_quantize, src/bitutils.c",
        summary="binary_quantize(v)::bit(d) (d/8 + 8 bytes), Hamming search; "
        "re-rank by float cosine with /rescore<k>",
        not_reproduced=_NOT,
        make=lambda seed: BitQuantize(),
        originals=lambda d: 4 * d + HEADER,  # the table's vector column the index is on
    ),
)
