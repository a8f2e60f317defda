"""Retrieval: queries searched in a corpus; main score nDCG@10 (BEIR data, mteb's evaluator).

Resampled item: a test query; a resample's score is the mean nDCG@10 of the queries it
holds. `load_beir` puts a local BEIR folder (`corpus.jsonl`, `queries.jsonl`,
`qrels/<split>.tsv`) into an mteb retrieval task; `corpus_texts` / `query_texts` are the
exact strings mteb hands the model (a document is mteb's `title + " " + text`).
Calibration is a seeded sample of corpus documents (known at indexing time: allowed,
and reported as transductive), never queries.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from embedbench.errors import UserError
from embedbench.providers.base import Purpose
from embedbench.stats import Resampler, counts
from embedbench.tasks import mteb_compat
from embedbench.tasks.base import Kind, LoadedTask, Unit
from embedbench.tasks.files import check_rows, read_numbered_jsonl, sha256_file

SUBSET = "default"
CORPUS_FILE, QUERIES_FILE, QRELS_DIR = "corpus.jsonl", "queries.jsonl", "qrels"


# --------------------------------------------------------------------------- data


def _read_qrels(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """BEIR qrels (`query-id corpus-id score`, tab separated, header) →
    {qid: {docid: (score, line)}}."""
    qrels: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        f = path.open(encoding="utf-8", newline="")
        text = f.read()
        f.close()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    reader = csv.reader(text.splitlines(), delimiter="\t")
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
        raise UserError(f"{path}:1: expected the header 'query-id<TAB>corpus-id<TAB>score'")
    for lineno, row in enumerate(reader, 2):
        if not row or not "".join(row).strip():
            continue
        try:
            qid, docid, score = row[0].strip(), row[1].strip(), int(row[2])
        except (IndexError, ValueError):
            raise UserError(f"{path}:{lineno}: expected query-id, corpus-id, score") from None
        qrels.setdefault(qid, {})[docid] = (score, lineno)
    if not qrels:
        raise UserError(f"{path}: holds no rows (an empty split)")
    return qrels


def _read_ids(path: Path, columns: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a corpus or queries file, with `_id` unique (as a string)."""
    rows = read_numbered_jsonl(path)
    check_rows(path, rows, columns)
    seen: dict[str, int] = {}
    for lineno, row in rows:
        key = str(row["_id"])
        if key in seen:
            raise UserError(f"{path}:{lineno}: duplicate _id '{key}' (first at line {seen[key]})")
        seen[key] = lineno
    return rows


def load_beir(task: Any, folder: Path) -> dict[str, Any]:
    """Load a BEIR folder into mteb retrieval `task`, one split per `qrels/<split>.tsv`.

    Mirrors mteb's own hub loader (`RetrievalDatasetLoader`): the corpus (columns
    `id`, `title`, `text`) is shared by every split, each split's queries are those
    with a qrels row (in file order), relevance scores are ints. Sets
    `task.dataset[SUBSET][split]` and `task.data_loaded`, so mteb never goes to the
    hub. Returns the data source {kind: local, folder, files: {relpath: sha256}}.
    """
    from datasets import Dataset

    folder = Path(folder)
    if task.metadata.is_multilingual:
        raise UserError(f"task {task.metadata.name}: multilingual retrieval tasks not supported")
    corpus_path, queries_path = folder / CORPUS_FILE, folder / QUERIES_FILE
    qrels_paths = sorted((folder / QRELS_DIR).glob("*.tsv"))
    missing = [p.name for p in (corpus_path, queries_path) if not p.is_file()]
    if missing or not qrels_paths:
        raise UserError(
            f"retrieval folder {folder} needs {CORPUS_FILE}, {QUERIES_FILE} and "
            f"{QRELS_DIR}/<split>.tsv (BEIR layout); missing: "
            + ", ".join(missing + ([] if qrels_paths else [f"{QRELS_DIR}/*.tsv"]))
        )
    docs = [d for _, d in _read_ids(corpus_path, {"_id": "label", "text": "text"})]
    corpus = Dataset.from_dict(
        {
            "id": [str(d["_id"]) for d in docs],
            "title": [d.get("title") or "" for d in docs],
            "text": [d.get("text") or "" for d in docs],
        }
    )
    queries_all = [q for _, q in _read_ids(queries_path, {"_id": "label", "text": "text"})]
    query_ids = [str(q["_id"]) for q in queries_all]
    query_text = [q["text"] for q in queries_all]
    doc_ids, known_queries = set(corpus["id"]), set(query_ids)
    splits: dict[str, dict[str, Any]] = {}
    for path in qrels_paths:
        qrels = _read_qrels(path)
        for qid, rel in qrels.items():
            for docid, (_, lineno) in rel.items():
                if qid not in known_queries:
                    raise UserError(f"{path}:{lineno}: query-id '{qid}' is not in {QUERIES_FILE}")
                if docid not in doc_ids:
                    raise UserError(f"{path}:{lineno}: corpus-id '{docid}' is not in {CORPUS_FILE}")
        keep = [i for i, qid in enumerate(query_ids) if qid in qrels]
        queries = Dataset.from_dict(
            {"id": [query_ids[i] for i in keep], "text": [query_text[i] for i in keep]}
        )
        splits[path.stem] = {
            "corpus": corpus,
            "queries": queries,
            "relevant_docs": {q: {d: s for d, (s, _) in rel.items()} for q, rel in qrels.items()},
            "top_ranked": None,
        }
    task.dataset = {SUBSET: splits}
    task.data_loaded = True
    files = [corpus_path, queries_path, *qrels_paths]
    return {
        "kind": "local",
        "folder": str(folder.resolve()),
        "files": {p.relative_to(folder).as_posix(): sha256_file(p) for p in files},
    }


def split_data(task: Any, split: str) -> dict[str, Any]:
    """The loaded RetrievalSplitData of `split` (corpus, queries, relevant_docs, top_ranked)."""
    subset = task.dataset.get(SUBSET, {})
    if split not in subset:
        raise UserError(
            f"task {task.metadata.name}: no '{split}' split; available: "
            + ", ".join(sorted(subset))
        )
    return subset[split]


def corpus_texts(task: Any, split: str) -> list[str]:
    """The corpus of `split` as mteb's encoder receives it (document strings, in order)."""
    from mteb.types import PromptType

    return mteb_compat.model_texts(
        split_data(task, split)["corpus"], task.metadata, PromptType.document
    )


def query_texts(task: Any, split: str) -> list[str]:
    """The queries of `split` as mteb's encoder receives them, in order."""
    from mteb.types import PromptType

    return mteb_compat.model_texts(
        split_data(task, split)["queries"], task.metadata, PromptType.query
    )


def all_query_texts(task: Any) -> set[str]:
    """The query strings of every loaded split (what calibration must never contain)."""
    return {t for split in task.dataset.get(SUBSET, {}) for t in query_texts(task, split)}


PURPOSE_BY_PROMPT = {"query": "query", "document": "document"}


def purpose_of(prompt_type: Any) -> Purpose:
    """Provider purpose ("query" / "document") for the mteb PromptType a lookup receives."""
    value = getattr(prompt_type, "value", prompt_type)
    if value not in PURPOSE_BY_PROMPT:
        raise ValueError(f"retrieval lookup needs a query or document prompt type, got {value!r}")
    return PURPOSE_BY_PROMPT[value]  # type: ignore[return-value]


# --------------------------------------------------------------------------- scores


# mteb's main score name -> (pytrec_eval measure, label), e.g. map_at_1000 -> map_cut.1000
MEASURES = {
    "ndcg_at_": ("ndcg_cut", "nDCG"),
    "map_at_": ("map_cut", "MAP"),
    "recall_at_": ("recall", "Recall"),
    "precision_at_": ("P", "P"),
    "hit_rate_at_": ("success", "HitRate"),
}


def measure_of(main_score: str) -> tuple[str, int, str] | None:
    """(pytrec_eval measure, k, label) of a per-query main score, or None."""
    for prefix, (measure, label) in MEASURES.items():
        if main_score.startswith(prefix) and main_score[len(prefix) :].isdigit():
            k = int(main_score[len(prefix) :])
            return measure, k, f"{label}@{k}"
    return None


def per_query_ndcg(
    predictions: Mapping[str, Mapping[str, float]],
    relevant_docs: Mapping[str, Mapping[str, int]],
    k: int = 10,
    *,
    ignore_identical_ids: bool = False,
    skip_first_result: bool = False,
    measure: str = "ndcg_cut",
) -> dict[str, float]:
    """nDCG@k (or another pytrec_eval `measure` at k) of each query, exactly as mteb
    computes it (pytrec_eval `ndcg_cut.k`, `map_cut.k`, ...).

    `predictions` is what mteb saves with `prediction_folder` for a retrieval split
    ({qid: {docid: score}}). `ignore_identical_ids` / `skip_first_result` repeat the
    task's settings of the same names. `mteb_mean(per_query_ndcg(...))` is mteb's
    `ndcg_at_k`.
    """
    import pytrec_eval

    run = {q: dict(docs) for q, docs in predictions.items()}
    if skip_first_result:
        run = {
            q: dict(sorted(docs.items(), key=lambda x: x[1], reverse=True)[1:])
            for q, docs in run.items()
        }
    if ignore_identical_ids:
        run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
    qrels = {q: dict(rel) for q, rel in relevant_docs.items()}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {f"{measure}.{k}"}).evaluate(run)
    return {q: float(s[f"{measure}_{k}"]) for q, s in scores.items()}


def mteb_mean(per_query: Mapping[str, float]) -> float:
    """mteb's aggregate of per-query scores: their mean, rounded to 5 decimals."""
    return round(sum(per_query.values()) / len(per_query), 5)


class QueryMeanResampler(Resampler):
    """Predictions: {query id: the main score of the query}; gold: the main score's name
    (None: nDCG@10)."""

    max_resamples = 512_000  # a resample is a mean

    def __init__(self, gold: Any = None):
        self.qids: list[str] | None = None
        label = measure_of(gold or "ndcg_at_10")
        self.method = f"paired bootstrap over test queries ({label[2] if label else gold})"

    def matrix(self, preds: Any) -> np.ndarray:
        if self.qids is None:
            self.qids = sorted(preds)
        if set(preds) != set(self.qids):
            raise ValueError("prediction sets cover different queries")
        return np.array([preds[q] for q in self.qids], dtype=np.float64)

    def point(self, preds: Any) -> float:
        return float(self.matrix(preds).mean())

    def scores(self, mats: list[Any], rng: np.random.Generator, b: int) -> np.ndarray:
        n = mats[0].shape[-1]
        W = counts(rng, b, n)
        return np.stack([W @ m for m in mats], axis=1) / n


class Retrieval(Kind):
    purpose = "document"  # calibration and corpus; queries use "query"
    item = "test queries"
    calibration_default = "a sample of its corpus (transductive: documents, never queries)"
    searches = True
    corpus_calibration = True

    def check_main_score(self, task: Any) -> None:
        main = task.metadata.main_score
        if measure_of(main) is None:
            raise UserError(
                f"task {task.metadata.name}: its main score '{main}' has no paired interval "
                "here; per-query scores supported: " + ", ".join(f"{p}<k>" for p in MEASURES)
            )

    def depth(self, task: Any) -> int:
        """How many documents per query the main score reads (k)."""
        return measure_of(task.metadata.main_score)[1]  # type: ignore[index]

    def text_columns(self, task: Any) -> list[str]:
        return ["text"]

    def purpose_for(self, prompt_type: Any) -> Purpose:
        value = getattr(prompt_type, "value", prompt_type)
        return "query" if value == "query" else "document"

    def needed_texts(self, lt: LoadedTask) -> dict[Purpose, list[str]]:
        docs: list[str] = []
        queries: list[str] = []
        for _, split in lt.units:
            docs += corpus_texts(lt.task, split)
            queries += query_texts(lt.task, split)
        return {"document": list(dict.fromkeys(docs)), "query": list(dict.fromkeys(queries))}

    def eval_texts(self, lt: LoadedTask) -> list[str]:
        return sorted(all_query_texts(lt.task))  # the documents may be calibrated on

    def calibration_pool(self, lt: LoadedTask, split: str) -> list[str]:
        """Corpus documents (`split` does not apply: the corpus is shared)."""
        return [t for _, s in lt.units for t in corpus_texts(lt.task, s)]

    def gold(self, lt: LoadedTask, unit: Unit) -> Any:
        """The main score's name (None: nDCG@10); predictions are per-query scores."""
        main = lt.task.metadata.main_score
        return None if main == "ndcg_at_10" else main

    def read(self, raw: Any, lt: LoadedTask, unit: Unit) -> Any:
        qrels = split_data(lt.task, unit[1])["relevant_docs"]
        measure, k, _ = measure_of(lt.task.metadata.main_score)  # type: ignore[misc]
        return per_query_ndcg(
            raw,
            qrels,
            k,
            ignore_identical_ids=lt.task.ignore_identical_ids,
            skip_first_result=lt.task.skip_first_result,
            measure=measure,
        )

    def resampler(self, gold: Any) -> Resampler:
        return QueryMeanResampler(gold)

    def consistent(self, point: float, score: float) -> bool:
        return abs(round(point, 5) - score) <= 1e-9  # mteb rounds to 5 decimals


class Reranking(Retrieval):
    """Re-ranking each query's candidate list (mteb's retrieval evaluator with
    `top_ranked`); main score MAP@1000 for most tasks. Encoded through mteb's own
    encoder path (search options do not apply: the candidates are given)."""

    item = "test queries (each re-ranks its candidate list)"
    searches = False
