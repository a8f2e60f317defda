"""RaBitQ as vector databases ship it: `milvus:rabitq[-q8]`, `milvus:rabitq4`,
`lancedb:rabitq[-b2|-b4]`.

Two implementations are genuinely different; a third ships faiss's own.

- Milvus (IVF_RABITQ; knowhere, github.com/zilliztech/knowhere at d7cfd88, the engine
  of Milvus 2.6+): `src/index/ivf/ivfrbq_wrapper.cc` (`create`, l. 29-48) builds
  `RR(dim),IVF<nlist>,RaBitQ[,Refine]`: a faiss `RandomRotationMatrix(d, d)` (trained
  with faiss's fixed seed, `init(12345)`), then knowhere's IndexIVFRaBitQ, "a thin
  knowhere shim over baseline IndexIVFRaBitQ"
  (`thirdparty/faiss/faiss/cppcontrib/knowhere/IndexIVFRaBitQ.h`), constructed with
  `nb_bits = rbq_bits`. `rbq_bits` (`src/index/ivf/ivf_config.h`, IvfRaBitQConfig, l.
  372-385) is a train-time setting, 1..9 bits a dimension, default 1: 1 is the sign
  code, 2..9 add faiss's extended bits. The query is left in float unless
  `rbq_bits_query` (search-time, default 0; 1..8 gives SQ1..SQ8 queries) is set.
  COSINE is inner product on normalised vectors. So the preset is the project's faiss
  codec `RR,RaBitQ` (`FaissCode`: one sign bit a dimension plus two float32 factors,
  56 bytes at d = 384) or, for `rbq_bits = 4`, `RR,RaBitQ4` (sign bits, 3 float32
  factors, 3 more bits a dimension and 2 float32 factors: 48 + 12 + 144 + 8 = 212
  bytes at d = 384), with the rotation seeded 12345 (+ the replicate seed), searched
  by faiss's IndexRaBitQ with `qb = 0`; `milvus:rabitq-q8` is the 1-bit code searched
  with `rbq_bits_query = 8`. With `rbq_bits` > 1 a code's final score uses the float
  rotated query whatever `rbq_bits_query`
  (`thirdparty/faiss/faiss/impl/RaBitQuantizer.cpp`, `RaBitQDistanceComputerQ::
  distance_to_code_full`, l. 514-548): the query's bits only change the 1-bit
  estimates that decide which codes are fully scored, so a `milvus:rabitq4-q8` would
  score exactly as `milvus:rabitq4` here and is not a preset. knowhere's bundled faiss
  has faiss 1.15's RaBitQ (`RaBitQuantizer.cpp`, `RaBitQuantizerMultiBit.cpp`,
  `RaBitQUtils.cpp`, `IndexRaBitQ.cpp`, `IndexIVFRaBitQ.cpp` byte-identical to faiss
  v1.15.0's). Not reproduced: the IVF partitioning (each vector is coded against its
  list's k-means centroid; here against the calibration mean, IVF with one list, and
  the search probes every code), the refine step (`refine_k` is `/rescore<k>`), and,
  with extended bits, the scan's pruning: a code is fully scored only if its 1-bit
  estimate, within its error bound, can still enter the top k (here every code is
  fully scored).
- LanceDB (IVF_RQ; github.com/lancedb/lance at d2039d7, 2025-11,
  `rust/lance-index/src/vector/bq/{builder,transform,storage}.rs`): its own RaBitQ,
  with `num_bits` b (Rust `VectorIndexParams::ivf_rq(num_partitions, num_bits,
  distance_type)`, `rust/lance/src/index/vector.rs` l. 168; Python `create_index(...,
  "IVF_RQ", num_bits=b)`, `python/src/dataset.rs` l. 3099-3103; default 1, no range
  check). COSINE becomes L2 on normalised vectors (`vector/ivf.rs`); the residual r =
  x − c to the partition centroid is rotated by P, the first d columns of a random
  orthogonal D × D matrix, D = b·d (`RabitQuantizer::new`, builder.rs l. 52-74, and
  `transform`, l. 144-181: Householder QR of a Gaussian matrix drawn from an unseeded
  RNG; here from the replicate seed, as the QR of a D × d Gaussian, whose Q is the
  same law as those d columns); stored: the D sign bits of Pr (`is_sign_positive`, LSB
  first, D/8 bytes), add = ‖r‖² and scale = −2‖r‖² / (‖Pr‖₁/√D) (transform.rs) as
  float32: b·d/8 + 8 bytes (56, 104, 200 at d = 384 for b = 1, 2, 4). So b > 1 is b·d
  random projections' signs (RaBitQ in D dimensions), not RaBitQ's extended bits. The
  query's rotated residual q_r = P(q − c) (D values) is not quantized itself, but the
  distance table (sums of q_r over each 4-value group, 16 entries a group) is
  quantized to u8 over its global min/max (`distance_all`, `quantize_dist_table`),
  whatever b; the distance is ((2·Σ table − Σq_r)/√D)·scale + add + ‖q − c‖², ranked
  ascending. The u8 entries are summed in u16 lanes
  (`rust/lance-linalg/src/simd/dist_table.rs`): the AVX2 kernel (`_mm256_add_epi16`,
  l. 123-141) and the AVX-512 one (`dist_table.c`, l. 34-37) wrap modulo 2^16
  (reproduced here), the scalar one (other CPUs, and AVX-512 CPUs on Windows, where
  `lance-linalg/build.rs` does not build the AVX-512 kernel, l. 81-86) saturates. D/4
  groups of at most 255 stay below 2^16 while D ≤ 1028 (b = 1 and 2 at d = 384; b = 1
  up to d = 1028); at b = 4, d = 384 (1,536 values, sums up to 97,920) a code close to
  the query can wrap and rank last. Decoded: c + P^T s·(−scale/2)/√D, the
  reconstruction the estimator implies. Upstream tests only num_bits = 1
  (`python/python/tests/test_vector_index.py`,
  `rust/lance/src/index/vector/ivf/v2.rs`) and `RabitDistCalculator` notes "it's
  always 1 for now", but every path uses b. Not reproduced: the IVF partitions (c is
  the calibration mean) and the exact (unquantized) table Lance uses for the last n
  mod 32 vectors of a partition.
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
U16 = 1 << 16  # Lance sums quantized table entries in u16 lanes


class MilvusRaBitQ(FaissCode):
    """knowhere IVF_RABITQ with one list: faiss `RR,RaBitQ` (`RR,RaBitQ<nb_bits>` for
    `rbq_bits` > 1), rotation seeded as faiss trains it, searched with
    `rbq_bits_query` bits (0: float query)."""

    summary = ""  # set by the registry (FaissCode's is a read-only property)

    def __init__(self, seed: int = 0, query_bits: int = 0, nb_bits: int = 1):
        if not 1 <= nb_bits <= 9:
            raise ValueError(f"rbq_bits is 1..9 in knowhere, got {nb_bits}")
        factory = "RR,RaBitQ" if nb_bits == 1 else f"RR,RaBitQ{nb_bits}"
        super().__init__(factory, seed, configure=self._rotation)
        self.query_bits, self.nb_bits = query_bits, nb_bits

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
    """Lance IVF_RQ with one partition: the signs of P(x − c), P the first d columns
    of a random (b·d × b·d) orthogonal matrix (b = `num_bits`), add and scale factors."""

    learns, random = True, True
    engine_search = True

    def __init__(self, seed: int = 0, num_bits: int = 1):
        if num_bits < 1:
            raise ValueError(f"lancedb: num_bits must be at least 1, got {num_bits}")
        self.seed, self.bits = seed, num_bits

    def bytes_per_vector(self, d: int) -> int:
        return -(-d * self.bits // 8) + 8

    def fit(self, X: np.ndarray) -> LanceRaBitQ:
        X = self._normalized(X)
        d = X.shape[1]
        if d * self.bits % 8:
            raise ValueError("lancedb: Lance's codes need num_bits·d divisible by 8")
        self.centroid = X.mean(axis=0).astype(np.float32)
        # Lance draws a D × D orthogonal matrix (D = code_dim = b·d), Q of the QR of a
        # Gaussian matrix, and uses its first d columns: those are Q of the QR of the
        # Gaussian's first d columns, drawn here (the same as D × D when b = 1)
        G = np.random.default_rng(self.seed).standard_normal((d * self.bits, d))
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
        D = len(self.P)
        out = np.empty((n, self.bytes_per_vector(d)), np.uint8)
        for b in row_blocks(n):
            R = X[b] - self.centroid
            PR = R @ self.P.T
            res2 = np.einsum("ij,ij->i", R, R)
            ip = np.abs(PR).sum(axis=1) / np.float32(math.sqrt(D))
            scale = np.divide(-2 * res2, ip, out=np.zeros_like(res2), where=ip != 0)
            out[b, : D // 8] = np.packbits(~np.signbit(PR), axis=1, bitorder="little")
            out[b, D // 8 :] = np.stack([res2, scale], axis=1).astype("<f4").view(np.uint8)
        return out

    @staticmethod
    def fields(codes: np.ndarray):
        k = codes.shape[1] - 8
        f = np.ascontiguousarray(codes[:, k:]).view("<f4").astype(np.float64)
        return codes[:, :k], f[:, 0], f[:, 1]

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        bits, _, scale = self.fields(codes)
        s = np.unpackbits(bits, axis=1, bitorder="little").astype(np.float64) * 2 - 1
        D = s.shape[1]
        r = (s * (-scale / 2 / math.sqrt(D))[:, None]) @ self.P.astype(np.float64)
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
        for b in row_blocks(len(codes), max(1, (1 << 21) // (groups * 16))):
            bits, add, scale = self.fields(codes[b])
            nib = np.stack([bits & 0x0F, bits >> 4], axis=2).reshape(len(bits), groups)
            onehot = np.zeros((len(bits), groups * 16), np.float32)
            onehot[np.arange(len(bits))[:, None], np.arange(groups) * 16 + nib] = 1
            qsum = (onehot @ T).T.astype(np.float64)  # integer sums of u8 entries, exact
            qsum %= U16  # summed in u16 lanes (x86 AVX2/AVX-512 kernels: they wrap)
            dist = qsum * rng[:, None] + (groups * lo)[:, None]
            est = (2 * dist - sum_q[:, None]) / math.sqrt(D) * scale + add + q2[:, None]
            out[:, b] = -est
        return out

    def params_bytes(self) -> int:  # Lance stores the whole D × D rotation
        return 4 * len(self.P) ** 2 + self.centroid.nbytes if hasattr(self, "P") else 0


_KW = f"github.com/zilliztech/knowhere@{KNOWHERE_COMMIT[:7]}: "
_MILVUS_NOT = (
    "the IVF partitioning (codes against the calibration mean, not each list's centroid; "
    "every code is scored) and the refine step (/rescore<k>)"
)
_MILVUS_PRUNE = (
    "; and the multi-bit scan's pruning (a code is fully scored only if its 1-bit "
    "estimate, within its error bound, can still reach the top k; here every code is)"
)


def _milvus(name: str, nb_bits: int, query_bits: int, summary: str) -> EnginePreset:
    return EnginePreset(
        name=name,
        engine="Milvus",
        version="2.6 (knowhere main)",
        source=_KW + "src/index/ivf/ivfrbq_wrapper.cc, ivf_config.h; faiss IndexIVFRaBitQ",
        summary=summary,
        not_reproduced=_MILVUS_NOT + (_MILVUS_PRUNE if nb_bits > 1 else ""),
        make=lambda seed: MilvusRaBitQ(seed, query_bits=query_bits, nb_bits=nb_bits),
        originals=lambda d: 4 * d,  # the collection keeps the raw vectors
    )


def _lance(name: str, num_bits: int, summary: str) -> EnginePreset:
    return EnginePreset(
        name=name,
        engine="LanceDB",
        version=f"lance main ({LANCE_COMMIT[:7]}, 2025-11)",
        source=f"github.com/lancedb/lance@{LANCE_COMMIT[:7]}: "
        "rust/lance-index/src/vector/bq/builder.rs, transform.rs, storage.rs; "
        "rust/lance-linalg/src/simd/dist_table.rs",
        summary=summary,
        not_reproduced="the IVF partitioning (c is the calibration mean; every code is "
        "scored), the unquantized tables of a partition's last n mod 32 vectors, "
        "Lance's unseeded rotation (drawn here from the replicate seed), and the scalar "
        "kernel of CPUs without AVX2 (it saturates the u16 table sums that the x86 "
        "kernels, reproduced here, wrap: at most 255·b·d/4, so only above b·d = 1028)",
        make=lambda seed: LanceRaBitQ(seed, num_bits=num_bits),
        originals=lambda d: 4 * d,  # the collection keeps the raw vectors
    )


register(
    _milvus(
        "milvus:rabitq",
        1,
        0,
        "IVF_RABITQ: faiss RR + RaBitQ (1 sign bit a dimension + 2 float32 "
        "factors, 56 bytes at d=384), float query (rbq_bits_query 0)",
    ),
    _milvus(
        "milvus:rabitq-q8",
        1,
        8,
        "IVF_RABITQ as milvus:rabitq, searched with rbq_bits_query=8 (SQ8 query)",
    ),
    _milvus(
        "milvus:rabitq4",
        4,
        0,
        "IVF_RABITQ with rbq_bits=4: faiss RR + RaBitQ4 (sign bits + 3 float32 factors, "
        "3 extended bits a dimension + 2 float32 factors, 212 bytes at d=384), float query",
    ),
    _lance(
        "lancedb:rabitq",
        1,
        "IVF_RQ: sign bits of a random orthogonal rotation of x − c plus add and "
        "scale float32 factors (d/8 + 8 bytes), u8-quantized 4-bit distance tables",
    ),
    _lance(
        "lancedb:rabitq-b2",
        2,
        "IVF_RQ num_bits=2: sign bits of 2d random orthogonal projections of x − c plus "
        "add and scale float32 factors (2d/8 + 8 bytes), u8-quantized distance tables",
    ),
    _lance(
        "lancedb:rabitq-b4",
        4,
        "IVF_RQ num_bits=4: sign bits of 4d random orthogonal projections of x − c plus "
        "add and scale float32 factors (4d/8 + 8 bytes), u8-quantized distance tables "
        "summed in wrapping u16 lanes",
    ),
)
