"""Search on quantized codes: the model mteb's retrieval evaluator calls, and its options.

(The retrieval task kind, its BEIR data and per-query nDCG are in
`embedbench.tasks.retrieval`.)

- `CodeSearch` is an mteb `SearchProtocol` model: it indexes the corpus as a
  technique's codes (faiss `IndexBinaryFlat` on the packed bits for 1-bit sign
  codes, else `IndexFlatIP` on the decoded, L2-normalised vectors), searches
  symmetrically (query coded the same way) or asymmetrically (float query against
  decoded documents), and optionally re-ranks a candidate window with float or int8
  document vectors.
- `parse_search` reads a technique's search options (`binary/asym`, `/rescore4-int8`).

Ranking rule. pytrec_eval (and so mteb) orders a query's returned documents by score,
descending, ties by document id, descending. `CodeSearch` returns, per query, exactly
the first `top_k` documents of that order over the whole corpus (for Hamming scores,
which are integers, this is exact; float scores are taken from faiss up to its float32
rounding and then recomputed exactly, see `_exact_scores`). Ties at the cut are not
left to faiss: the search widens until the tie group at the cut is complete. So the
metrics at any k <= top_k are those of a ranking of the full corpus, independent of
top_k and of faiss internals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from embedbench.encoder import l2_normalize
from embedbench.quantize import Technique
from embedbench.tasks.mteb_compat import model_texts

Lookup = Callable[[list[str], Any], np.ndarray]  # (texts, PromptType) -> float32 n × d
RescoreWith = Literal["float", "int8"]


# --------------------------------------------------------------------------- search


def _exact_scores(q: np.ndarray, D: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Inner products of query q with rows `rows` of D, computed exactly, rounded to float32.

    Products of float32 pairs are exact in float64 and the float64 sum is far finer
    than float32's ulp, so after rounding to float32 a document's score does not
    depend on where, or with which BLAS kernel, it was computed: equal vectors get
    equal scores, which pytrec_eval then orders by id. (Returned as float64.)
    """
    exact = np.einsum("ij,j->i", D[rows].astype(np.float64), q.astype(np.float64))
    return exact.astype(np.float32).astype(np.float64)


ENGINE_BLOCK_BYTES = 1 << 27  # query × document scores held at once by `_engine_ranking`


class _Ranker:
    """faiss search that never cuts a tie group at position k."""

    def __init__(self, index: Any, n: int):
        self.index, self.n = index, n

    def candidates(self, X: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (rows, faiss distances): at least the first k documents by distance.

        Fetches k plus some slack; a query whose faiss tie group at position k may go
        on past what was fetched is searched again, twice as wide, until the group
        ends (or the corpus does). So every document tied with the k-th is present.
        """
        k = min(k, self.n)
        if k == 0:
            return [(np.empty(0, np.int64), np.empty(0)) for _ in range(len(X))]
        fetch = min(self.n, k + max(16, k // 4))
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(X)
        todo = np.arange(len(X))
        while len(todo):
            dist, rows = self.index.search(X[todo], fetch)
            again = []
            for j, q in enumerate(todo):
                dj, rj = dist[j], rows[j]
                if fetch < self.n and dj[fetch - 1] == dj[k - 1]:
                    again.append(q)  # the tie group at the cut may go on
                    continue
                out[q] = (rj, dj)
            todo = np.array(again, dtype=np.int64)
            fetch = min(self.n, 2 * fetch)
        return out  # type: ignore[return-value]


class CodeSearch:
    """An mteb `SearchProtocol` model that searches a technique's codes.

    Index: float document vectors from `lookup(texts, PromptType.document)`, encoded
    with the fitted `technique`. Packed sign codes (`binary`, `binary-centered`, with
    any transforms) go into a faiss `IndexBinaryFlat`; every other code into an
    `IndexFlatIP` over the decoded vectors, L2-normalised when `normalize` (but not
    for an asymmetric search over an inner-product estimator, see below).

    Search, queries from `lookup(texts, PromptType.query)`:
    - symmetric (`asymmetric=False`): the query is coded like the documents. Sign
      codes: Hamming distance h on the packed bits, score 1 − 2h/d (the cosine of the
      ±1 vectors; d − 2h without `normalize`). Other codes: inner product of the
      normalised decoded query and documents, i.e. exactly what mteb's encoder path
      (`TechniqueEncoder` + `SearchEncoderWrapper`) scores.
    - asymmetric: the float query, passed through the technique's transforms only and
      normalised, against the decoded documents (for sign codes the ±1 vectors / √d;
      a code that is an inner-product estimator, `code.ip_estimator`: PQ/RQ/SQ's
      look-up-table score, TurboQuant-prod's estimator, scores <q, decoded document>
      with the documents not re-normalised, as the engines do), with `IndexFlatIP`
      over the decoded documents in both cases: numpy would be the same arithmetic,
      faiss keeps one search path and is fast. A code whose engine scores codes with
      an estimator decoding does not give (`code.engine_search`: faiss's RaBitQ, with
      its per-document term, extra bits and 4-bit query) is scored by the engine
      itself (`code.search_scores`) over all stored codes, blocks of queries at a time.
    - rescoring (`rescore_multiplier=m`): the first top_k·m documents of the code
      ranking are re-ranked by the cosine of the normalised float query with the float
      document vectors (`rescore_with="float"`) or with `rescore_technique`'s decoded
      document vectors (`"int8"`: pass an int8 technique fitted on the same calibration;
      the query is transformed by it, not coded). Returns the first top_k.

    Every score is computed exactly (see `_exact_scores`) and each query's list is the
    first top_k documents of (score desc, doc id desc) over the corpus, the order
    pytrec_eval ranks by. `top_k` overrides mteb's requested depth (1000 for most
    retrieval tasks); it sets the rescoring window (top_k·m), so with rescoring pass
    e.g. `top_k=10` for an nDCG@10 main score: metrics at k <= top_k are unaffected.
    `mteb_model_meta` is `meta` with the search settings added to `experiment_kwargs`,
    so every configuration gets its own mteb result folder.
    """

    def __init__(
        self,
        lookup: Lookup,
        technique: Technique,
        meta: Any,
        *,
        rescore_multiplier: int | None = None,
        rescore_with: RescoreWith = "float",
        rescore_technique: Technique | None = None,
        asymmetric: bool = False,
        normalize: bool = True,
        top_k: int | None = None,
    ):
        if not technique.fitted:
            raise ValueError(f"technique {technique.name} must be fitted before search")
        if rescore_multiplier is not None and rescore_multiplier < 1:
            raise ValueError("rescore_multiplier must be a positive integer or None")
        if rescore_with not in ("float", "int8"):
            raise ValueError(f"rescore_with must be 'float' or 'int8', got {rescore_with!r}")
        if rescore_multiplier is not None and rescore_with == "int8":
            if rescore_technique is None or not rescore_technique.fitted:
                raise ValueError("rescore_with='int8' needs a fitted rescore_technique")
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be a positive integer or None")
        self.lookup = lookup
        self.technique = technique
        self.rescore_multiplier = rescore_multiplier
        self.rescore_with = rescore_with
        self.rescore_technique = rescore_technique if rescore_with == "int8" else None
        self.asymmetric = asymmetric
        self.normalize = normalize
        self.top_k = top_k
        self._meta = meta
        self._built = False

    # -- mteb SearchProtocol ------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """The search settings, as recorded in the model meta's experiment_kwargs."""
        s: dict[str, Any] = {"search": "asymmetric" if self.asymmetric else "symmetric"}
        if self.rescore_multiplier is not None:
            s["rescore"] = f"{self.rescore_with}x{self.rescore_multiplier}"
        if self.top_k is not None:
            s["top_k"] = self.top_k
        return s

    @property
    def mteb_model_meta(self):
        kwargs = {**(getattr(self._meta, "experiment_kwargs", None) or {}), **self.settings}
        return self._meta.model_copy(update={"experiment_kwargs": kwargs})

    def index(
        self,
        corpus: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: Any = None,
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> None:
        from mteb.types import PromptType

        texts = model_texts(corpus, task_metadata, PromptType.document)
        X = np.asarray(self.lookup(texts, PromptType.document), dtype=np.float32)
        self.build(X, list(corpus["id"]))

    def search(
        self,
        queries: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        top_k: int,
        encode_kwargs: Any = None,
        top_ranked: Any = None,
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        from mteb.types import PromptType

        if top_ranked is not None:
            raise NotImplementedError("CodeSearch does not rerank pre-ranked lists")
        texts = model_texts(queries, task_metadata, PromptType.query)
        Q = np.asarray(self.lookup(texts, PromptType.query), dtype=np.float32)
        return self.search_vectors(Q, list(queries["id"]), self.top_k or top_k)

    # -- the work, on vectors -----------------------------------------------------

    def build(self, X: np.ndarray, doc_ids: list[str]) -> None:
        """Index float document vectors X (n × d) with ids `doc_ids`."""
        import faiss

        X = np.ascontiguousarray(X, dtype=np.float32)
        n, d = X.shape
        if n != len(doc_ids):
            raise ValueError(f"{n} vectors for {len(doc_ids)} document ids")
        self.d = d
        self.d_out = self.technique.out_dim(d)
        self.doc_ids = np.asarray(doc_ids, dtype=object)
        # rank of each id in descending id order: ties in score go to the larger id
        order = sorted(range(n), key=lambda i: doc_ids[i], reverse=True)
        self.id_rank = np.empty(n, dtype=np.int64)
        self.id_rank[order] = np.arange(n)
        codes = self.technique.encode(X)
        code = self.technique.code
        engine = code.engine_search and (self.asymmetric or code.engine is not None)
        # an engine preset's codes are scored by the engine even when they are sign bits
        self.hamming = (
            not engine and not self.asymmetric and is_sign_code_of(self.technique, codes, d)
        )
        self.engine_codes = None
        if engine:
            self.engine_codes, self.docs = codes, None
            index = None
        elif self.hamming:
            index = faiss.IndexBinaryFlat(8 * codes.shape[1])
            index.add(np.ascontiguousarray(codes))
            self.docs = None
        else:
            docs = self.technique.decode(codes, d).astype(np.float32)
            # an inner-product estimator's decoded documents keep their scale (re-normalising
            # them would bias the estimate the codec was built for)
            estimator = self.asymmetric and self.technique.code.ip_estimator
            normalize = self.normalize and not estimator
            self.docs = np.ascontiguousarray(l2_normalize(docs) if normalize else docs)
            index = faiss.IndexFlatIP(self.d_out)
            index.add(self.docs)
        self._ranker = _Ranker(index, n) if index is not None else None
        self._built = True
        self.rescore_docs = None
        if self.rescore_multiplier is not None:
            R = X if self.rescore_technique is None else self.rescore_technique.roundtrip(X)
            R = np.asarray(R, dtype=np.float32)
            self.rescore_docs = np.ascontiguousarray(l2_normalize(R) if self.normalize else R)

    def _query_vectors(self, Q: np.ndarray) -> np.ndarray:
        """What the index is searched with: codes (Hamming) or float vectors."""
        if self.hamming:
            return np.ascontiguousarray(self.technique.encode(Q))
        if self.asymmetric or self.engine_codes is not None:
            # an engine preset scores the float query itself (quantizing it its own way)
            Z = self.technique.transform(Q)
        else:
            Z = self.technique.roundtrip(Q)
        Z = np.asarray(Z, dtype=np.float32)
        return np.ascontiguousarray(l2_normalize(Z) if self.normalize else Z)

    def _code_ranking(self, Q: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (rows, scores), the first k documents by code score, then id desc."""
        V = self._query_vectors(Q)
        if self.engine_codes is not None:
            return self._engine_ranking(V, k)
        d = float(self.d_out)
        ranked = []
        for i, (rows, dist) in enumerate(self._ranker.candidates(V, k)):
            if self.hamming:  # faiss's Hamming distances are exact integers
                h = dist.astype(np.float64)
                scores = 1.0 - 2.0 * h / d if self.normalize else d - 2.0 * h
            else:
                scores = _exact_scores(V[i], self.docs, rows)
            ranked.append(self._first_k(rows, scores, k))
        return ranked

    def _engine_ranking(self, V: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (rows, scores) by the code's own estimator over every stored code;
        every document tied with the k-th is kept for `_first_k`."""
        n = len(self.engine_codes)
        k = min(k, n)
        block = max(1, ENGINE_BLOCK_BYTES // (4 * max(n, 1)))
        ranked = []
        for start in range(0, len(V), block):
            S = self.technique.code.search_scores(V[start : start + block], self.engine_codes)
            S = S.astype(np.float64)
            for s in S:
                if k == 0:
                    ranked.append((np.empty(0, np.int64), np.empty(0)))
                    continue
                kth = np.partition(s, n - k)[n - k]
                rows = np.flatnonzero(s >= kth)
                ranked.append(self._first_k(rows, s[rows], k))
        return ranked

    def _first_k(self, rows: np.ndarray, scores: np.ndarray, k: int):
        order = np.lexsort((self.id_rank[rows], -scores))[:k]
        return rows[order], scores[order]

    def search_vectors(
        self, Q: np.ndarray, query_ids: list[str], top_k: int
    ) -> dict[str, dict[str, float]]:
        """mteb's RetrievalOutputType {qid: {docid: score}} for float query vectors Q."""
        if not self._built:
            raise ValueError("CodeSearch.search before index")
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        if len(Q) != len(query_ids):
            raise ValueError(f"{len(Q)} vectors for {len(query_ids)} query ids")
        if self.rescore_multiplier is None:
            ranked = self._code_ranking(Q, top_k)
        else:
            window = self._code_ranking(Q, top_k * self.rescore_multiplier)
            Z = Q if self.rescore_technique is None else self.rescore_technique.transform(Q)
            Z = np.asarray(Z, dtype=np.float32)
            Z = l2_normalize(Z) if self.normalize else Z
            ranked = []
            for i, (rows, _) in enumerate(window):
                scores = _exact_scores(Z[i], self.rescore_docs, rows)
                ranked.append(self._first_k(rows, scores, top_k))
        return {
            qid: {self.doc_ids[r]: float(s) for r, s in zip(rows, scores, strict=True)}
            for qid, (rows, scores) in zip(query_ids, ranked, strict=True)
        }


def is_sign_code_of(technique: Technique, codes: np.ndarray, d_in: int) -> bool:
    """Whether `codes` (from `technique.encode` on d_in-dim vectors) are packed sign bits.

    1 bit per dimension, ceil(d/8) bytes a row, decoding to ±1 with a set bit exactly
    where the decoded coordinate is +1 (so pad bits are zero and the Hamming distance
    of two rows is the number of coordinates where their ±1 vectors differ).
    """
    d_out = technique.out_dim(d_in)
    if technique.code.bits != 1 or codes.ndim != 2 or codes.shape[1] != -(-d_out // 8):
        return False
    sample = np.ascontiguousarray(codes[:256])
    dec = technique.decode(sample, d_in)
    if dec.shape[1] != d_out or not np.all(np.abs(dec) == 1.0):
        return False
    ones = np.unpackbits(sample, axis=1).sum(axis=1)
    return bool(np.array_equal(ones, (dec > 0).sum(axis=1)))


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class SearchOptions:
    """How a retrieval technique searches: `binary/asym`, `binary/rescore4-int8`, ..."""

    asymmetric: bool = False
    rescore: int | None = None
    rescore_with: RescoreWith = "float"

    @property
    def suffix(self) -> str:
        parts = ["asym"] if self.asymmetric else []
        if self.rescore is not None:
            with_ = "" if self.rescore_with == "float" else f"-{self.rescore_with}"
            parts.append(f"rescore{self.rescore}{with_}")
        return "/".join(parts)


SEARCH_OPTIONS = "asym, rescore<k>, rescore<k>-int8"


def parse_search(name: str) -> tuple[str, SearchOptions]:
    """Split `code-spec/option/...` into the technique and its search options.

    Raises `KeyError(part)` for an option it does not know.
    """
    base, *parts = name.split("/")
    asym, rescore, rescore_with = False, None, "float"
    for part in parts:
        m = re.fullmatch(r"rescore(\d+)(-int8)?", part)
        if part == "asym":
            asym = True
        elif m and int(m.group(1)) >= 1:
            rescore, rescore_with = int(m.group(1)), "int8" if m.group(2) else "float"
        else:
            raise KeyError(part)
    return base, SearchOptions(asym, rescore, rescore_with)  # type: ignore[arg-type]
