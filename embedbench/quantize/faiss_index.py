"""faiss indexes as codecs: build one from a factory string, read its parts, check it.

Helpers for `faiss_codec.FaissCode`: build `index_factory(d, factory, METRIC_INNER_PRODUCT)`,
find its transforms and codec, say whether it is a standalone codec, whether its
training draws random numbers (and seed every draw), whether its search scores
<q, sa_decode(code)>, and how many calibration vectors its training asks for. faiss's
own messages are condensed to one line and its C++ output captured, never printed.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from contextlib import contextmanager

import numpy as np

PREFIX = "faiss:"
MIN_POINTS_PER_CENTROID = 39  # faiss ClusteringParameters.min_points_per_centroid
_PROBE_DIMS = (768, 1024, 384, 1536, 960, 512, 256, 128, 64, 32)  # for d-free answers


def _faiss():
    import faiss

    return faiss


# --- faiss's messages and output --------------------------------------------------------


def _condense(err: BaseException) -> str:
    """faiss's exception text reduced to its meaningful part, one line.

    `Error in <signature> at <file>:<line>: Error: '<cond>' failed: <message>` becomes
    `<message>` (or `'<cond>' failed` when there is no message).
    """
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^Error in .*? at \S+:\d+: ", "", text)
    m = re.match(r"^Error: '(.*)' failed(?:: (.*))?$", text)
    if m:
        text = m[2] or f"'{m[1]}' failed"
        if "METRIC_L2" in m[1]:
            text += " (this index needs the L2 metric; codecs here use inner product)"
    return text


@contextmanager
def _captured_output(log: list[str]):
    """Redirect file descriptors 1 and 2 (what faiss's C++ prints) into `log`.

    Process-wide while it lasts: anything another thread prints meanwhile is
    captured too.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    _c_fflush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _c_fflush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            log.extend(line for line in text.splitlines() if line.strip())


def _c_fflush() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to flush: nothing buffered there
        pass


@contextmanager
def _omp_threads(n: int | None):
    faiss = _faiss()
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# --- the parts of a factory-built index -------------------------------------------------


def _make_index(factory: str, d: int):
    """`index_factory(d, factory, METRIC_INNER_PRODUCT)`; faiss's RuntimeError passes."""
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(f"a faiss factory string is a non-empty string, got {factory!r}")
    if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
        raise ValueError(f"dimension must be a positive integer, got {d!r}")
    faiss = _faiss()
    return faiss.index_factory(int(d), factory, faiss.METRIC_INNER_PRODUCT)


def _parts(index):
    """(transforms, codec index) as downcast views: valid while `index` lives."""
    faiss = _faiss()
    idx = faiss.downcast_index(index)
    if isinstance(idx, faiss.IndexPreTransform):
        chain = [faiss.downcast_VectorTransform(idx.chain.at(i)) for i in range(idx.chain.size())]
        return chain, faiss.downcast_index(idx.index)
    return [], idx


def _sub_quantizers(codec) -> list:
    """The additive quantizers inside RQ, LSQ, PRQ and PLSQ indexes (else [])."""
    faiss = _faiss()
    if isinstance(codec, faiss.IndexResidualQuantizer):
        return [codec.rq]
    if isinstance(codec, faiss.IndexLocalSearchQuantizer):
        return [codec.lsq]
    if isinstance(
        codec, faiss.IndexProductResidualQuantizer | faiss.IndexProductLocalSearchQuantizer
    ):
        paq = codec.prq if isinstance(codec, faiss.IndexProductResidualQuantizer) else codec.plsq
        return [faiss.downcast_AdditiveQuantizer(paq.subquantizer(i)) for i in range(paq.nsplits)]
    return []


def _not_a_codec(index) -> str | None:
    """Why a built index is not accepted as a standalone codec, or None."""
    faiss = _faiss()
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexIDMap | faiss.IndexIDMap2):
        return "an id map stores ids, not a code (drop 'IDMap')"
    if isinstance(top, faiss.IndexRefine):
        return "a refine index stores a second code for re-ranking (use embedbench's /rescore)"
    transforms, codec = _parts(index)
    if isinstance(codec, faiss.IndexIVF):
        return (
            "an inverted file is a search structure: its sa code prepends the list number to "
            "a code of the residual (a size no IVF deployment stores) and its search probes "
            "only some lists; use the codec alone (e.g. PQ24) or RQ for a coarse+residual code"
        )
    for vt in transforms:
        kind = type(vt).__name__
        if isinstance(vt, faiss.ITQTransform):
            return "faiss's ITQ transform has no reverse, so sa_decode fails"
        if isinstance(vt, faiss.PCAMatrix) and vt.eigen_power != 0:
            return "a whitening PCA (PCAW) has no reverse in faiss, so sa_decode fails"
        if vt.is_trained:
            try:
                vt.reverse_transform(np.zeros((1, vt.d_out), dtype=np.float32))
            except RuntimeError as e:
                return f"{kind} has no reverse, so sa_decode fails ({_condense(e)})"
    return None


def _adjoint_transform(vt) -> bool:
    """The reverse of `vt` is its adjoint: <apply(q), y> == <q, reverse(y)>."""
    faiss = _faiss()
    if isinstance(vt, faiss.HadamardRotation | faiss.RemapDimensionsTransform):
        return True
    if isinstance(vt, faiss.OPQMatrix | faiss.RandomRotationMatrix):
        return not vt.have_bias
    return False


_DECODE_ESTIMATOR = (
    "IndexPQ",
    "IndexResidualQuantizer",
    "IndexLocalSearchQuantizer",
    "IndexProductResidualQuantizer",
    "IndexProductLocalSearchQuantizer",
    "IndexScalarQuantizer",
    "IndexFlat",
)
_NOT_RANDOM = ("IndexScalarQuantizer", "IndexFlat", "IndexRaBitQ", "IndexRaBitQFastScan")


def _is(obj, names: tuple[str, ...]) -> bool:
    faiss = _faiss()
    return any(isinstance(obj, getattr(faiss, n)) for n in names if hasattr(faiss, n))


def _ip_estimator(index) -> bool:
    faiss = _faiss()
    transforms, codec = _parts(index)
    if isinstance(codec, faiss.IndexPQFastScan) or not _is(codec, _DECODE_ESTIMATOR):
        return False
    return all(_adjoint_transform(vt) for vt in transforms)


def _random(index) -> bool:
    """Training draws random numbers from the code's seed (so another seed may change it)."""
    faiss = _faiss()
    transforms, codec = _parts(index)
    if any(isinstance(vt, faiss.OPQMatrix | faiss.RandomRotationMatrix) for vt in transforms):
        return True
    return not _is(codec, _NOT_RANDOM)


def _seed_parts(index, seed: int, keep: list) -> None:
    """Set every seed faiss exposes in `index` from `seed`; `keep` holds objects faiss
    points to during training (OPQ's product quantizer)."""
    faiss = _faiss()
    transforms, codec = _parts(index)
    for vt in transforms:
        if isinstance(vt, faiss.OPQMatrix):
            n = max(vt.d_in, vt.d_out)  # faiss's OPQ works in max(d_in, d_out) dims
            G = np.random.default_rng(seed).standard_normal((n, n))
            Q, R = np.linalg.qr(G)
            Q *= np.sign(np.diag(R))  # a Haar-distributed rotation
            faiss.copy_array_to_vector(
                np.ascontiguousarray(Q.T[: vt.d_out], dtype=np.float32).ravel(), vt.A
            )
            pq = faiss.ProductQuantizer(vt.d_out, vt.M, 8)
            pq.cp.seed = seed
            keep.append(pq)
            vt.pq = pq
            vt.verbose = False
        elif isinstance(vt, faiss.RandomRotationMatrix):
            vt.init(seed)
    if isinstance(codec, faiss.IndexPQ | faiss.IndexPQFastScan):
        codec.pq.cp.seed = seed
        if isinstance(codec, faiss.IndexPQ):
            codec.do_polysemous_training = False
    for aq in _sub_quantizers(codec):
        if isinstance(aq, faiss.ResidualQuantizer):
            aq.cp.seed = seed
        elif isinstance(aq, faiss.LocalSearchQuantizer):
            aq.random_seed = seed
        aq.verbose = False


def _opq_dims(index) -> int:
    """The most working dimensions of an OPQ in the chain (0 without one).

    faiss's `OPQMatrix::train` (1.15.1, unchanged on faiss's main branch) writes a
    d_out × max(d_in, d_out) matrix into a buffer of max(d_in, d_out) × n floats: with
    fewer training vectors than d_out it corrupts the heap and the process aborts, so
    `fit` refuses fewer than max(d_in, d_out).
    """
    faiss = _faiss()
    dims = [max(vt.d_in, vt.d_out) for vt in _parts(index)[0] if isinstance(vt, faiss.OPQMatrix)]
    return max(dims, default=0)


def _release_training_objects(index) -> None:
    """Drop pointers to objects that lived only for training (OPQ's product quantizer)."""
    faiss = _faiss()
    for vt in _parts(index)[0]:
        if isinstance(vt, faiss.OPQMatrix):
            vt.pq = None


# --- checks -----------------------------------------------------------------------------


def check_factory(factory: str, d: int) -> str | None:
    """None when `factory` builds at dimension d and is a standalone codec, else one line.

    The line names `faiss:<factory>` and d and says what faiss said (its message
    condensed) or why the index is not accepted. No training happens here; `fit`
    also round-trips one calibration vector after training.
    """
    name = f"{PREFIX}{factory} at d={d}"
    try:
        index = _make_index(factory, d)
    except (RuntimeError, ValueError, TypeError) as e:
        return f"{name}: {_condense(e)}"
    reason = _not_a_codec(index)
    if reason is None:
        try:
            index.sa_code_size()
        except RuntimeError as e:
            reason = _condense(e)
    return None if reason is None else f"{name}: not a standalone codec: {reason}"


def _centroid_counts(index) -> list[int]:
    """Centroids per k-means (or LSQ codebook) the training fits: one entry per kind."""
    faiss = _faiss()
    transforms, codec = _parts(index)
    counts = []
    for vt in transforms:
        if isinstance(vt, faiss.OPQMatrix):
            counts.append(256)  # OPQ trains an 8-bit PQ inside
    if isinstance(codec, faiss.IndexPQ | faiss.IndexPQFastScan):
        counts.append(int(codec.pq.ksub))
    for aq in _sub_quantizers(codec):
        counts.extend(1 << int(b) for b in faiss.vector_to_array(aq.nbits))
    return counts


def training_shortfall(factory: str, n_train: int, d: int) -> str | None:
    """One line when `n_train` calibration vectors are fewer than the training asks for.

    PQ, OPQ, RQ (per stage), PRQ: k-means with 2^nbits centroids, which faiss asks to
    train on at least 39 points a centroid (it warns below, and fails below one point
    a centroid); LSQ's codebooks get the same rule of thumb (faiss does not warn for
    them). SQ and RaBitQ learn per-dimension ranges or a mean: at least 2 vectors. OPQ
    needs at least its working dimensions (fewer crash faiss; `fit` refuses them). A
    codec faiss builds trained needs none. Raises ValueError for a factory string
    that `check_factory` refuses.
    """
    problem = check_factory(factory, d)
    if problem:
        raise ValueError(problem)
    index = _make_index(factory, d)
    if index.is_trained:
        return None
    name = PREFIX + factory
    if n_train < _opq_dims(index):
        return (
            f"{name}: {n_train} calibration vectors; OPQ needs at least {_opq_dims(index)} "
            f"(fewer crash faiss's OPQ training, so fit refuses them)"
        )
    k = max(_centroid_counts(index), default=0)
    if k == 0:
        if n_train < 2:
            return f"{name}: {n_train} calibration vectors; its ranges or mean need at least 2"
        return None
    need = MIN_POINTS_PER_CENTROID * k
    if n_train < k:
        return (
            f"{name}: {n_train} calibration vectors for {k} centroids a sub-quantizer: "
            f"training fails below {k} (faiss asks for {need}, 39 a centroid)"
        )
    if n_train < need:
        return (
            f"{name}: {n_train} calibration vectors for {k} centroids a sub-quantizer; "
            f"faiss asks for at least {need} (39 a centroid): codebooks may be undertrained"
        )
    return None
