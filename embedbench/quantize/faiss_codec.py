"""faiss standalone codecs as codes: `faiss:<factory>`, e.g. `faiss:PQ24`, `faiss:RaBitQ`.

`FaissCode(factory, seed)` builds `faiss.index_factory(d, factory, METRIC_INNER_PRODUCT)`
at `fit` (d from the calibration vectors), trains it on the calibration vectors only,
and uses faiss's standalone-codec interface: `encode` is `sa_encode` (the packed
bytes, `sa_code_size()` of them a vector), `decode` is `sa_decode` (but for RaBitQ
with extended bits, below). The index stays
empty: nothing evaluated is ever added to it.

What the factory strings give at d = 384 (inner-product metric, faiss 1.15):
`PQ24` 24 bytes, `OPQ24,PQ24` 24, `OPQ16_64,PQ16` 16 (OPQ projects to 64 dims first),
`RQ3x8` 3 (with the inner-product metric an additive quantizer stores no norm;
`RQ3x8_Nqint8` adds a 1-byte norm), `LSQ4x8` 4, `SQ4` 192, `SQ8` 384, `SQfp16`
768, `Flat` 1536 (float32: a control), `PQ24x4fs` 12 (fast-scan PQ: the same
4-bit PQ codes as `PQ24x4`), `RaBitQ` 56 (one sign bit a dimension, 48 bytes, plus
two float32 factors a vector), `RaBitQ4` 212 (48 + 12 bytes of sign bits and
factors, then 3 more bits a dimension, 144 bytes, and 8 bytes of factors).
`check_factory` refuses what is not a standalone codec: a string faiss cannot
build, an index without `sa_code_size` (`HNSW32`), an inverted file (`IVF100,PQ24`:
its sa code prepends the list number to a code of the residual, a size no IVF
deployment stores, and an IVF's search probes only some lists, which this code
would not measure), id maps, refine indexes, and transforms faiss cannot reverse
(PCA whitening, ITQ).

Parameters (`params_bytes`) are `len(faiss.serialize_index(index))` of the trained,
empty index: the bytes `faiss.write_index` stores to rebuild the codec exactly
(codebooks, rotations, ranges, RaBitQ's centre), headers included (45 to ~250
bytes: a parameter-free codec reports its header, `SQfp16` 81 bytes, not 0). At
d=384: PQ24 393,302 (the 24 × 256 × 16 float32 codebook, 393,216, and a header),
OPQ24,PQ24 983,197 (plus the 384 × 384 rotation), RQ3x8 1,179,778, SQ8 3,153,
RaBitQ 1,610.

Determinism and seeds: every seed faiss exposes is set from `seed`: the k-means seed
(`ClusteringParameters.seed`) of PQ, of the product quantizer OPQ trains inside
(given to `OPQMatrix.pq`), and of RQ; LSQ's `random_seed`; OPQ's initial rotation
(faiss would draw it with the fixed seed 1234: it is set here from `seed`) and `RR`'s
random rotation (`RandomRotationMatrix.init(seed)`). `PCAR`'s rotation and `HR`'s
signs keep faiss's fixed seeds (`HR<seed>` names its own). Training runs with
`threads` OpenMP threads (1 by default, restored afterwards): with 2 threads
training is deterministic too, but RQ's codebooks (and any training that goes
through multi-threaded BLAS) depend on the thread count, so a fixed count makes
the same calibration and seed give byte-identical codes on any machine with the
same faiss build. Encoding does not depend on the thread count. The factory turns
on PQ's polysemous training; it is turned off here: it only permutes the centroid
labels for Hamming pre-filtering (reconstructions unchanged) and costs about 40
times PQ's own training.

Encoding is per vector except for LSQ: LSQ's encoder starts from random codes drawn
in sequence for the whole batch, so a vector's code can depend on the batch it is
encoded with (deterministic for a given batch and seed).

Search estimator (`ip_estimator`): True when the index's own inner-product search
scores a stored code by exactly <q, sa_decode(code)>, so a search on decoded
vectors is the engine's search: PQ, RQ, LSQ, PRQ, PLSQ (look-up tables of <q,
codeword>), SQ and Flat (the decoded values), behind transforms whose reverse is
their adjoint (OPQ and RR: orthonormal rows, <q, Rᵀy> = <Rq, y>; Pad; HR). Not
for PCA (it subtracts a mean), L2norm (it rescales the query), fast-scan PQ (8-bit
quantized look-up tables: scores off by ~1e-3) nor RaBitQ.

RaBitQ (faiss 1.15, read from `RaBitQuantizer.cpp` and checked numerically): no
rotation (prepend `RR` for one); training only takes the calibration mean c; the code
holds the signs s of r = x - c and factors ||r||² - ||x||² and dp = ||r||²·√d /
||r||₁. `sa_decode` gives c + r̂, r̂ = dp·s/√d (scaled so <q, r̂> estimates <q, r>
without bias: its norm is ||r|| / cos(r, s), 1.25 ||r|| on embedding-like data, not
the least-squares reconstruction). The index's search scores <q, c + r̂> + <c, r - r̂>
(exact to 1e-6 with float queries), a per-document offset <c, r - r̂> that decoding
loses; by default (`qb = 4`) it also quantizes the query to 4 bits, for 1-bit RaBitQ
only: with extended bits the full score takes the float query
(`RaBitQDistanceComputerQ::distance_to_code_full`), the query's bits only serving a
1-bit pre-filter that scores nothing here. With more bits (`RaBitQ4`) faiss's
`sa_decode` ignores the extra bits (its decoded vectors are those of `RaBitQ`) while
its search uses them, so `decode` reads every bit itself
(`faiss_rabitq.decode_rabitq`, the reconstruction faiss's search implies;
`sa_decode_drops_bits` flags the case; on random unit vectors the decoded RaBitQ4
vectors' MSE is ~1/45 of RaBitQ's). An asymmetric search over RaBitQ
(`faiss:RaBitQ/asym`, `faiss:RaBitQ4/asym`; `engine_search`) scores the stored codes
with the index's own search (`search_scores`: the per-document term and the query as
faiss ships it); symmetric rows compare decoded vectors. `faiss_search_scores` gives
the index's own scores for any accepted codec but fast-scan RaBitQ (`RaBitQfs`: it
cannot take stored codes; `RaBitQ` has the same codes and can).

`training_shortfall` says when the calibration set is smaller than the training asks
for (faiss's k-means warns below 39 points a centroid; it also samples at most 256
points a centroid, so 65,536 for 8-bit PQ, and OPQ trains on at most 65,536). OPQ
with fewer calibration vectors than its working dimensions (max(d_in, d_out)) makes
faiss overflow a buffer and abort the process: `fit` refuses it and
`training_shortfall` says so. What faiss prints while training is captured into
`FaissCode.faiss_log`, never printed.
faiss is imported when first needed, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedbench.quantize.codes import Code
from embedbench.quantize.faiss_index import (
    _PROBE_DIMS,
    PREFIX,
    _captured_output,
    _condense,
    _faiss,
    _ip_estimator,
    _make_index,
    _omp_threads,
    _opq_dims,
    _parts,
    _random,
    _release_training_objects,
    _seed_parts,
    check_factory,
    training_shortfall,
)
from embedbench.quantize.faiss_rabitq import decode_rabitq, extra_bits

__all__ = ["PREFIX", "FaissCode", "check_factory", "faiss_search_scores", "training_shortfall"]

SCORE_BLOCK_BYTES = 256 << 20  # faiss_search_scores: distances + labels per query block


# --- the code ---------------------------------------------------------------------------


_FAMILY_WORDS = (  # first match wins: what a factory string's codec is
    ("OPQ", "a learned rotation (OPQ), then product quantization"),
    ("RaBitQ", "RaBitQ: the sign of the residual to the mean, with two float factors"),
    ("LSQ", "additive quantization, codebooks by local search (LSQ)"),
    ("RQ", "residual (additive) quantization, one k-means codebook a stage"),
    ("PQ", "product quantization: one k-means codebook per sub-vector"),
    ("SQfp16", "half-precision floats"),
    ("SQ", "per-dimension scalar quantization, ranges from calibration"),
)


class FaissCode(Code):
    """A faiss standalone codec, `faiss:<factory>`, trained on calibration vectors only.

    `bits` (after fit) is 8 · sa_code_size / d, fractional in general;
    `bytes_per_vector(d)` is faiss's `sa_code_size()` for d, known before fit (from an
    untrained index built for d). `learns` is False only for a codec faiss builds
    already trained (`SQfp16`, `SQbf16`, `Flat`, `HR`/`Pad` before them); `random`
    says whether training draws from `seed` (PQ, OPQ, RQ, LSQ, RR), so another seed
    can change the codes; SQ, RaBitQ and Flat do not. `ip_estimator` describes the
    engine's search, `sa_decode_drops_bits` faiss's decoding (module docstring). `threads`:
    OpenMP threads for training (None: faiss's current setting). `configure`, if given,
    is called with the built, seeded, untrained index just before training, e.g. to
    lower OPQ's `niter` in a benchmark; the name does not record it, so a configured
    code is not the codec `faiss:<factory>` names.
    """

    def __init__(
        self,
        factory: str,
        seed: int = 0,
        *,
        threads: int | None = 1,
        configure: Callable[[Any], None] | None = None,
    ):
        if not isinstance(factory, str) or not factory.strip():
            raise ValueError(f"a faiss factory string is a non-empty string, got {factory!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        if not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.factory = factory
        self.name = PREFIX + factory
        self.seed = int(seed)
        self.threads = threads
        self.configure = configure
        self.index = None  # the trained, empty index (after fit)
        self.d: int | None = None
        self.faiss_log: list[str] = []  # what faiss printed during the last fit
        self._sizes: dict[int, int] = {}
        self._probe = None  # an untrained index, for answers that do not depend on d

    # -- structure, before or after fit

    def _structure(self):
        """An untrained index of this factory: for the fitted d if any, else for some
        dimension faiss accepts (the flags below do not depend on d)."""
        if self._probe is None:
            dims = (self.d,) if self.d is not None else _PROBE_DIMS
            for d in dims:
                try:
                    self._probe = _make_index(self.factory, d)
                    break
                except RuntimeError:
                    continue
            else:
                raise ValueError(check_factory(self.factory, dims[0]) or f"{self.name}: no d")
        return self._probe

    @property
    def learns(self) -> bool:
        return not self._structure().is_trained

    @property
    def random(self) -> bool:
        return _random(self._structure())

    @property
    def ip_estimator(self) -> bool:
        return _ip_estimator(self._structure())

    @property
    def engine_search(self) -> bool:
        """RaBitQ: an asymmetric search uses faiss's own estimator (`search_scores`)."""
        return isinstance(_parts(self._structure())[1], _faiss().IndexRaBitQ)

    def search_scores(self, Q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return faiss_search_scores(self, Q, codes)

    @property
    def sa_decode_drops_bits(self) -> bool:
        """faiss's sa_decode ignores part of the code (RaBitQ, more than 1 bit a dimension):
        `decode` then uses `faiss_rabitq.decode_rabitq`, which reads every bit."""
        faiss = _faiss()
        codec = _parts(self._structure())[1]
        if isinstance(codec, faiss.IndexRaBitQ | faiss.IndexRaBitQFastScan):
            return extra_bits(codec) > 0
        return False

    @property
    def bits(self) -> float:
        if self.index is None:
            raise RuntimeError(
                f"{self.name}: bits depend on d; fit first or use bytes_per_vector(d)"
            )
        return 8 * self.index.sa_code_size() / self.d

    def bytes_per_vector(self, d: int) -> int:
        if self.index is not None and d == self.d:
            return int(self.index.sa_code_size())
        if d not in self._sizes:
            problem = check_factory(self.factory, d)
            if problem:
                raise ValueError(problem)
            self._sizes[d] = int(_make_index(self.factory, d).sa_code_size())
        return self._sizes[d]

    # -- fit, encode, decode

    def fit(self, X: np.ndarray) -> FaissCode:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"{self.name}: calibration must be a non-empty n × d array")
        d = X.shape[1]
        problem = check_factory(self.factory, d)
        if problem:
            raise ValueError(problem)
        index = _make_index(self.factory, d)
        if len(X) < _opq_dims(index):
            raise ValueError(
                f"{self.name}: OPQ needs at least {_opq_dims(index)} calibration vectors at "
                f"d={d}, got {len(X)} (fewer crash faiss's OPQ training)"
            )
        log: list[str] = []
        keep: list = []
        try:
            _seed_parts(index, self.seed, keep)
            if self.configure is not None:
                self.configure(index)
            with _omp_threads(self.threads), _captured_output(log):
                if not index.is_trained:
                    index.train(X)
                # the codec must round-trip: catch a missing decode now, not mid-evaluation
                index.sa_decode(index.sa_encode(X[:1]))
        except RuntimeError as e:
            raise ValueError(f"{self.name}: training failed at d={d}: {_condense(e)}") from e
        finally:
            _release_training_objects(index)
            del keep
        self.index, self.d, self.faiss_log = index, d, log
        return self

    def _fitted(self):
        if self.index is None:
            raise RuntimeError(f"{self.name} used before fit")
        return self.index

    def encode(self, X: np.ndarray) -> np.ndarray:
        index = self._fitted()
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"{self.name}: expected n × {self.d} vectors, got {X.shape}")
        if len(X) == 0:
            return np.empty((0, index.sa_code_size()), dtype=np.uint8)
        return index.sa_encode(X)

    def decode(self, codes: np.ndarray, d: int) -> np.ndarray:
        index = self._fitted()
        if d != self.d:
            raise ValueError(f"{self.name}: fitted for d={self.d}, asked to decode d={d}")
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if len(codes) == 0:
            return np.empty((0, d), dtype=np.float32)
        if not self.sa_decode_drops_bits:
            return index.sa_decode(codes)
        transforms, codec = _parts(index)
        X = decode_rabitq(codec, codes)  # sa_decode would ignore the extra bits
        for vt in reversed(transforms):
            X = vt.reverse_transform(X)
        return np.ascontiguousarray(X, dtype=np.float32)

    def params_bytes(self) -> int:
        """Bytes of the trained, empty index as faiss serializes it (headers included)."""
        return len(_faiss().serialize_index(self._fitted()))

    @property
    def summary(self) -> str:
        """One line for `embedbench list techniques`: what the factory string builds."""
        kinds = [(k, v) for k, v in _FAMILY_WORDS if k in self.factory]
        what = kinds[0][1] if kinds else "a faiss standalone codec"
        return f"faiss `{self.factory}`: {what}, trained on calibration vectors only."

    def check(self, d: int) -> str | None:
        return check_factory(self.factory, d)

    def training_note(self, n_train: int, d: int) -> str | None:
        return training_shortfall(self.factory, n_train, d)


# --- the engine's own scores ------------------------------------------------------------


def faiss_search_scores(
    code: FaissCode, Q: np.ndarray, codes: np.ndarray, *, rabitq_qb: int | None = None
) -> np.ndarray:
    """The index's own inner-product scores of every code for every query: n_q × n_docs.

    The stored codes go into a copy of the trained codec (`add_sa_codes`, or for
    fast-scan PQ, which lacks it, `add` of the decoded vectors after checking that
    they re-encode to the same codes); queries pass through the index's transforms;
    each block of queries is searched with k = n_docs, so every score is the
    engine's asymmetric estimator (e.g. RaBitQ's, which decoding does not give).
    `rabitq_qb` sets RaBitQ's query quantization (faiss's default 4 bits; 0: float
    queries). Equal to `Q @ decode(codes).T` (up to float rounding) exactly when
    `code.ip_estimator` is True.
    """
    faiss = _faiss()
    index = code._fitted()
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if Q.ndim != 2 or Q.shape[1] != code.d:
        raise ValueError(f"{code.name}: expected n × {code.d} queries, got {Q.shape}")
    n_docs = len(codes)
    scores = np.empty((len(Q), n_docs), dtype=np.float32)
    if n_docs == 0 or len(Q) == 0:
        return scores
    # a copy that owns itself (clone_index does not support every index); the views
    # `_parts` returns below live while it does
    owner = faiss.deserialize_index(faiss.serialize_index(index))
    transforms, inner = _parts(owner)
    for vt in transforms:
        Q = vt.apply(Q)
    if isinstance(inner, faiss.IndexFlatCodes):
        inner.add_sa_codes(codes)
    else:
        vectors = inner.sa_decode(codes)
        if not np.array_equal(inner.sa_encode(vectors), codes):
            hint = (
                " (faiss:RaBitQ has the same codes and can)"
                if isinstance(inner, faiss.IndexRaBitQFastScan)
                else ""
            )
            raise NotImplementedError(
                f"{code.name}: this index cannot take stored codes, and its decoded vectors "
                f"do not re-encode to them{hint}"
            )
        inner.add(vectors)
    params = None
    if rabitq_qb is not None and isinstance(inner, faiss.IndexRaBitQ):
        params = faiss.RaBitQSearchParameters()
        params.qb = rabitq_qb
    block = max(1, SCORE_BLOCK_BYTES // (12 * n_docs))
    for start in range(0, len(Q), block):
        dist, labels = inner.search(Q[start : start + block], n_docs, params=params)
        if (labels < 0).any():
            raise RuntimeError(f"{code.name}: the search did not score every code")
        np.put_along_axis(scores[start : start + len(dist)], labels, dist, axis=1)
    return scores
