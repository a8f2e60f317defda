"""RaBitQ as vector databases ship it: `milvus:rabitq`, `milvus:rabitq-q8`, `lancedb:rabitq`.

Two implementations are genuinely different; a third ships faiss's own.

- Milvus (IVF_RABITQ; knowhere, github.com/zilliztech/knowhere at d7cfd88, the
  engine of Milvus 2.6+): `src/index/ivf/ivfrbq_wrapper.cc` builds
  `RR(dim),IVF<nlist>,RaBitQ[,Refine]`: a faiss `RandomRotationMatrix(d, d)`
  (trained with faiss's fixed seed, `init(12345)`), then knowhere's IndexIVFRaBitQ,
  "a thin knowhere shim over baseline IndexIVFRaBitQ"
  (`thirdparty/faiss/faiss/cppcontrib/knowhere/IndexIVFRaBitQ.h`), 1 bit a
  dimension (`rbq_bits` defaults to 1; the Milvus docs expose only the query
  setting), the query left in float unless `rbq_bits_query` (default 0; 1..8 gives
  SQ1..SQ8 queries) is set. COSINE is inner product on normalised vectors. So the
  preset is the project's faiss codec `RR,RaBitQ` (`FaissCode`: one sign bit a
  dimension plus two float32 factors, 56 bytes at d = 384) with the rotation seeded
  12345 (+ the replicate seed), searched by faiss's IndexRaBitQ with `qb = 0`;
  `milvus:rabitq-q8` is the same code searched with `rbq_bits_query = 8`.
  Not reproduced: the IVF partitioning (each vector is coded against its list's
  k-means centroid; here against the calibration mean, IVF with one list, and the
  search probes every code), and the refine step (`refine_k` is `/rescore<k>`).
- LanceDB (IVF_RQ; github.com/lancedb/lance at d2039d7, 2025-11,
  `rust/lance-index/src/vector/bq/{builder,transform,storage}.rs`): its own
  RaBitQ. COSINE becomes L2 on normalised vectors (`vector/ivf.rs`); the residual
  r = x − c to the partition centroid is rotated by a random orthogonal matrix P
  (Householder QR of a Gaussian matrix, drawn from an unseeded RNG: here from the
  replicate seed); stored: the sign bits of Pr (`is_sign_positive`, LSB first,
  d/8 bytes), add = ‖r‖² and scale = −2‖r‖² / (‖Pr‖₁/√D) as float32: d/8 + 8 bytes
  (56 at d = 384). The query's rotated residual q_r = P(q − c) is not quantized
  itself, but the distance table (sums of q_r over each 4-dimension group, 16
  entries a group) is quantized to u8 over its global min/max (`distance_all`,
  `quantize_dist_table`); the distance is
  ((2·Σ table − Σq_r)/√D)·scale + add + ‖q − c‖², ranked ascending. Decoded:
  c + P^T s·(−scale/2)/√D, the reconstruction the estimator implies. Not
  reproduced: the IVF partitions (c is the calibration mean) and the exact
  (unquantized) table Lance uses for the last n mod 32 vectors of a partition; Lance's
  `num_bits` > 1 (more random projections, not RaBitQ's extended bits).
- faiss itself: `faiss:RaBitQ`, `faiss:RaBitQ4` (`embedbench.quantize.faiss_codec`),
  no separate preset here.

Counted per vector: the code with its per-vector factors. Not counted: the IVF
lists' ids and centroids, the rotation (`params_bytes`).
"""

from __future__ import annotations

import math

import numpy as np

from embedbench.engines import EnginePreset, register
from embedbench.quantize.codes import Code, row_blocks
from embedbench.quantize.faiss_codec import FaissCode, faiss_search_scores

KNOWHERE_COMMIT = "d7cfd88814d3ebea52b89f9ffd63907ac0704e0d"
LANCE_COMMIT = "d2039d750a6a296585e7fca63428fb2139c7acd0"
RR_SEED = 12345  # faiss RandomRotationMatrix::train: init(12345)


class MilvusRaBitQ(FaissCode):
    """knowhere IVF_RABITQ with one list: faiss `RR,RaBitQ`, rotation seeded as faiss
    trains it, searched with `rbq_bits_query` bits (0: float query)."""

    summary = ""  # set by the registry (FaissCode's is a read-only property)

    def __init__(self, seed: int = 0, query_bits: int = 0):
        super().__init__("RR,RaBitQ", seed, configure=self._rotation)
        self.query_bits = query_bits

    def _rotation(self, index) -> None:
        import faiss

        rr = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
        rr.init(RR_SEED + self.seed)

    @property
    def engine_search(self) -> bool:
        return True

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return faiss_search_scores(self, Q, codes, rabitq_qb=self.query_bits).astype(np.float64)


class LanceRaBitQ(Code):
    """Lance IVF_RQ (1 bit) with one partition: signs of P(x − c), add and scale factors."""

    learns, random = True, True
    engine_search = True
    bits = 1

    def __init__(self, seed: int = 0):
        self.seed = seed

    def bytes_per_vector(self, d: int) -> int:
        return -(-d // 8) + 8

    def fit(self, X: np.ndarray) -> LanceRaBitQ:
        X = self._normalized(X)
        d = X.shape[1]
        if d % 8:
            raise ValueError("lancedb:rabitq: Lance's codes need d divisible by 8")
        self.centroid = X.mean(axis=0).astype(np.float32)
        G = np.random.default_rng(self.seed).standard_normal((d, d))
        self.P = np.linalg.qr(G)[0].astype(np.float32)  # random_orthogonal: Q of a QR
        return self

    @staticmethod
    def _normalized(X: np.ndarray) -> np.ndarray:  # NormalizeTransformer (COSINE -> L2)
        X = np.asarray(X, np.float32)
        n = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.where(n > 0, n, 1)

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = self._normalized(X)
        n, d = X.shape
        out = np.empty((n, self.bytes_per_vector(d)), np.uint8)
        for b in row_blocks(n):
            R = X[b] - self.centroid
            PR = R @ self.P.T
            res2 = np.einsum("ij,ij->i", R, R)
            ip = np.abs(PR).sum(axis=1) / np.float32(math.sqrt(d))
            scale = np.divide(-2 * res2, ip, out=np.zeros_like(res2), where=ip != 0)
            out[b, : d // 8] = np.packbits(~np.signbit(PR), axis=1, bitorder="little")
            out[b, d // 8 :] = np.stack([res2, scale], axis=1).astype("<f4").view(np.uint8)
        return out

    @staticmethod
    def fields(codes: np.ndarray):
        k = codes.shape[1] - 8
        f = np.ascontiguousarray(codes[:, k:]).view("<f4").astype(np.float64)
        return codes[:, :k], f[:, 0], f[:, 1]

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits, _, scale = self.fields(codes)
        s = np.unpackbits(bits, axis=1, bitorder="little").astype(np.float64) * 2 - 1
        r = (s * (-scale / 2 / math.sqrt(d))[:, None]) @ self.P.astype(np.float64)
        return (r + self.centroid).astype(np.float32)

    def distance_tables(self, Q: np.ndarray):
        """Per query: the u8 table (D/4 groups × 16), its min and range, Σq_r, ‖q − c‖²."""
        Qr = self._normalized(Q) - self.centroid
        qr = Qr @ self.P.T
        groups = qr.reshape(len(qr), -1, 4)
        subsets = (np.arange(16)[:, None] >> np.arange(4)) & 1  # entry j sums bits of j
        table = np.einsum("qgb,jb->qgj", groups, subsets.astype(np.float32))
        lo, hi = table.min(axis=(1, 2)), table.max(axis=(1, 2))
        span = np.where(hi > lo, hi - lo, 1)
        quant = np.floor((table - lo[:, None, None]) * (255 / span)[:, None, None] + 0.5)
        quant = np.where((hi > lo)[:, None, None], quant, 0)  # qmin == qmax: all zero
        rng = np.where(hi > lo, (hi - lo) / 255, 0)
        return quant, lo, rng, qr.sum(axis=1), np.einsum("ij,ij->i", Qr, Qr)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """−(Lance's distance_all estimate of the squared L2 distance)."""
        quant, lo, rng, sum_q, q2 = self.distance_tables(Q)
        groups = quant.shape[1]
        D = 4 * groups
        T = quant.reshape(len(quant), -1).T.astype(np.float32)  # (groups·16) × n_q
        out = np.empty((len(Q), len(codes)))
        for b in row_blocks(len(codes)):
            bits, add, scale = self.fields(codes[b])
            nib = np.stack([bits & 0x0F, bits >> 4], axis=2).reshape(len(bits), groups)
            onehot = np.zeros((len(bits), groups * 16), np.float32)
            onehot[np.arange(len(bits))[:, None], np.arange(groups) * 16 + nib] = 1
            qsum = (onehot @ T).T.astype(np.float64)  # integer sums of u8 entries
            dist = qsum * rng[:, None] + (groups * lo)[:, None]
            est = (2 * dist - sum_q[:, None]) / math.sqrt(D) * scale + add + q2[:, None]
            out[:, b] = -est
        return out

    def params_bytes(self) -> int:
        return self.P.nbytes + self.centroid.nbytes if hasattr(self, "P") else 0


_KW = f"github.com/zilliztech/knowhere@{KNOWHERE_COMMIT[:7]}: "
_MILVUS_NOT = (
    "the IVF partitioning (codes against the calibration mean, not each list's centroid; "
    "every code is scored) and the refine step (/rescore<k>)"
)
register(
    EnginePreset(
        name="milvus:rabitq",
        engine="Milvus",
        version="2.6 (knowhere main)",
        source=_KW + "src/index/ivf/ivfrbq_wrapper.cc, ivf_config.h; faiss IndexIVFRaBitQ",
        summary="IVF_RABITQ: faiss RR + RaBitQ (1 sign bit a dimension + 2 float32 "
        "factors, 56 bytes at d=384), float query (rbq_bits_query 0)",
        not_reproduced=_MILVUS_NOT,
        make=lambda seed: MilvusRaBitQ(seed, query_bits=0),
        originals=lambda d: 4 * d,  # the collection keeps the raw vectors
    ),
    EnginePreset(
        name="milvus:rabitq-q8",
        engine="Milvus",
        version="2.6 (knowhere main)",
        source=_KW + "src/index/ivf/ivfrbq_wrapper.cc, ivf_config.h; faiss IndexIVFRaBitQ",
        summary="IVF_RABITQ as milvus:rabitq, searched with rbq_bits_query=8 (SQ8 query)",
        not_reproduced=_MILVUS_NOT,
        make=lambda seed: MilvusRaBitQ(seed, query_bits=8),
        originals=lambda d: 4 * d,  # the collection keeps the raw vectors
    ),
    EnginePreset(
        name="lancedb:rabitq",
        engine="LanceDB",
        version=f"lance main ({LANCE_COMMIT[:7]}, 2025-11)",
        source=f"github.com/lancedb/lance@{LANCE_COMMIT[:7]}: "
        "rust/lance-index/src/vector/bq/builder.rs, transform.rs, storage.rs",
        summary="IVF_RQ: sign bits of a random orthogonal rotation of x − c plus add and "
        "scale float32 factors (d/8 + 8 bytes), u8-quantized 4-bit distance tables",
        not_reproduced="the IVF partitioning (c is the calibration mean; every code is "
        "scored), the unquantized tables of a partition's last n mod 32 vectors, and "
        "Lance's unseeded rotation (drawn here from the replicate seed)",
        make=lambda seed: LanceRaBitQ(seed),
        originals=lambda d: 4 * d,  # the collection keeps the raw vectors
    ),
)
