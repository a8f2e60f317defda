"""Retrieval on codes: BEIR loading, faiss code search, rescoring, per-query nDCG, bootstrap.

Mechanism tests run on the real SciFact data reduced to all 300 test queries, their
relevant documents and 600 other documents, embedded with a fast deterministic
stand-in (hashed bag of words, then a fixed random projection to 384 dimensions: a
real, if weak, retrieval signal). One test embeds a small subset with the real
all-MiniLM-L6-v2. The full-corpus float baseline (5183 documents, several minutes of
embedding on two cores) is left to the end-to-end sweep.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import mteb
import numpy as np
import pytest
from mteb.cache import ResultCache
from mteb.models import SearchProtocol
from mteb.types import PromptType

from embedbench import retrieval as R
from embedbench.encoder import TechniqueEncoder, model_meta
from embedbench.errors import UserError
from embedbench.quantize import parse_technique
from embedbench.tasks import retrieval as T


def _cal(task, split: str, max_texts: int, seed: int) -> list[str]:
    """Corpus calibration texts of a retrieval task object, as a run draws them."""
    from embedbench.tasks import KINDS, LoadedTask, calibration_texts

    lt = LoadedTask(task.metadata.name, task, KINDS["Retrieval"], {})
    return calibration_texts(lt, "train", max_texts, seed, None)[1]


MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SHA = {
    "corpus.jsonl": "dec31c8182f3d744c7d2c09423756fd1d17cbef75808db13ba01cc0aab4d1ac6",
    "queries.jsonl": "8ff84a7c903f722981cd8d595c022660140c51867b27608a6d4910db86080313",
    "qrels/test.tsv": "68c0ac63f1c24b9e8ce497649694f09b2d0850bab7ec2b103cc66996f5f8b3a3",
    "qrels/train.tsv": "ac0902d9b1cb717df182aaff1306175877fdb8f55bb5c3e8597ad694fc8e539f",
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scifact(data_dir):
    task = mteb.get_task("SciFact")
    source = T.load_beir(task, data_dir / "SciFact")
    return task, source


def reduced_task(full, n_queries: int | None, n_other: int, seed: int = 0):
    """SciFact's test split on fewer documents: the relevant ones plus a seeded sample."""
    sd = T.split_data(full, "test")
    queries = sd["queries"]
    if n_queries is not None:
        queries = queries.select(range(n_queries))
    qids = list(queries["id"])
    qrels = {q: sd["relevant_docs"][q] for q in qids}
    relevant = {d for rel in qrels.values() for d in rel}
    ids = sd["corpus"]["id"]
    rel_rows = [i for i, d in enumerate(ids) if d in relevant]
    others = sorted(set(range(len(ids))) - set(rel_rows))
    pick = np.random.default_rng(seed).choice(others, n_other, replace=False)
    corpus = sd["corpus"].select(sorted(rel_rows + pick.tolist()))
    task = mteb.get_task("SciFact")
    task.dataset = {
        "default": {
            "test": {
                "corpus": corpus,
                "queries": queries,
                "relevant_docs": qrels,
                "top_ranked": None,
            }
        }
    }
    task.data_loaded = True
    return task


class BowLookup:
    """Hashed bag of words (sublinear tf) → fixed random projection to 384 dimensions."""

    def __init__(self, d: int = 384, buckets: int = 4096, seed: int = 0):
        self.P = np.random.default_rng(seed).standard_normal((buckets, d)).astype(np.float32)
        self.buckets = buckets
        self.calls: list[tuple[PromptType, list[str]]] = []

    def vectors(self, texts: list[str]) -> np.ndarray:
        C = np.zeros((len(texts), self.buckets), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                C[i, zlib.crc32(w.encode()) % self.buckets] += 1.0
        np.log1p(C, out=C)
        return C @ self.P

    def __call__(self, texts: list[str], prompt_type) -> np.ndarray:
        self.calls.append((prompt_type, list(texts)))
        return self.vectors(list(texts))


@pytest.fixture(scope="module")
def small(scifact):
    return reduced_task(scifact[0], None, 600)


@pytest.fixture(scope="module")
def bow():
    return BowLookup()


@pytest.fixture(scope="module")
def fitted(small, bow):
    """Techniques fitted on corpus calibration texts only."""
    X_cal = bow.vectors(_cal(small, "test", 500, seed=0))
    return {n: parse_technique(n).fit(X_cal) for n in ("float32", "int8", "binary", "svd+binary")}


def meta_for(tech):
    return model_meta(MODEL, "local", tech, True, 384)


def evaluate(model, task, tmp: Path, name: str):
    """mteb.evaluate with predictions; returns (main score, predictions, per-query nDCG@10)."""
    res = mteb.evaluate(
        model,
        task,
        cache=ResultCache(tmp / "mteb"),
        overwrite_strategy="always",
        prediction_folder=tmp / "pred" / name,
        show_progress_bar=False,
        raise_error=True,
    )
    score = float(res.task_results[0].get_score())
    saved = tmp / "pred" / name / "SciFact_predictions.json"
    preds = json.loads(saved.read_text(encoding="utf-8"))["default"]["test"]
    per_query = T.per_query_ndcg(preds, T.split_data(task, "test")["relevant_docs"])
    return score, preds, per_query


def top(preds: dict[str, float], k: int = 10) -> list[str]:
    """pytrec_eval's order: score desc, doc id desc."""
    return [d for d, _ in sorted(preds.items(), key=lambda x: (x[1], x[0]), reverse=True)][:k]


# ----------------------------------------------------------------------------- data


def test_load_beir_real_scifact(scifact):
    task, source = scifact
    assert task.data_loaded
    assert source["kind"] == "local" and source["files"] == SHA
    test, train = T.split_data(task, "test"), T.split_data(task, "train")
    assert len(test["queries"]) == 300 and len(test["corpus"]) == 5183
    assert sum(len(v) for v in test["relevant_docs"].values()) == 339
    assert len(test["relevant_docs"]) == 300
    assert len(train["queries"]) == 809
    assert sum(len(v) for v in train["relevant_docs"].values()) == 919
    assert test["relevant_docs"]["1"] == {"31715818": 1}
    docs = T.corpus_texts(task, "test")
    row = test["corpus"][0]
    assert docs[0] == f"{row['title']} {row['text']}".strip()
    assert T.query_texts(task, "test")[0] == test["queries"][0]["text"]
    with pytest.raises(UserError, match="no 'dev' split"):
        T.split_data(task, "dev")


def test_load_beir_rejects_incomplete_folder(tmp_path):
    task = mteb.get_task("SciFact")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "title": "", "text": "a"}\n')
    with pytest.raises(UserError, match="queries.jsonl"):
        T.load_beir(task, tmp_path)
    (tmp_path / "queries.jsonl").write_text('{"_id": "q", "text": "b"}\n')
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\t2\t1\n")
    with pytest.raises(UserError, match="corpus-id '2' is not in corpus.jsonl"):
        T.load_beir(task, tmp_path)


def test_calibration_is_corpus_only(scifact, tmp_path):
    task = scifact[0]
    cal = _cal(task, "test", 1000, seed=3)
    assert len(cal) == 1000 == len(set(cal))
    assert cal == _cal(task, "test", 1000, seed=3)
    assert set(cal) <= set(T.corpus_texts(task, "test"))
    assert not set(cal) & T.all_query_texts(task)
    # a document whose text is also a query is never a calibration text
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "1", "title": "", "text": "same text"}\n{"_id": "2", "title": "t", "text": "x"}\n'
    )
    (tmp_path / "queries.jsonl").write_text('{"_id": "q", "text": "same text"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\t2\t1\n")
    tiny = mteb.get_task("SciFact")
    T.load_beir(tiny, tmp_path)
    assert _cal(tiny, "test", 10, 0) == ["t x"]


# ----------------------------------------------------------------------------- search


def _hamming_truth(codes: np.ndarray, qcodes: np.ndarray, ids: list[str], k: int):
    """Brute force: popcount of xor on the packed bytes, order (h asc, id desc)."""
    h = np.bitwise_count(qcodes[:, None, :] ^ codes[None, :, :]).sum(axis=2)
    out = []
    for row in h:
        order = sorted(range(len(ids)), key=lambda i: (-int(row[i]), ids[i]), reverse=True)
        out.append([(ids[i], int(row[i])) for i in order[:k]])
    return h, out


@pytest.mark.parametrize("d", [16, 384])
def test_binary_search_is_exact_hamming_topk(d):
    import faiss

    rng = np.random.default_rng(d)
    X, Q = rng.standard_normal((3000, d)), rng.standard_normal((40, d))
    X[7] = X[3]  # duplicate documents: an exact tie
    ids = [f"doc{i:05d}" for i in rng.permutation(3000)]
    tech = parse_technique("binary").fit(X[:500])
    codes, qcodes = tech.encode(X), tech.encode(Q)
    # faiss alone: its top-k distances are the brute-force Hamming top-k distances
    index = faiss.IndexBinaryFlat(8 * codes.shape[1])
    index.add(codes)
    h, truth = _hamming_truth(codes, qcodes, ids, 3000)
    dist, rows = index.search(qcodes, 50)
    assert np.array_equal(dist, np.sort(h, axis=1)[:, :50])
    assert np.array_equal(np.take_along_axis(h, rows, axis=1), dist)
    # CodeSearch: exactly the first k of (h asc, id desc), ties at the cut included
    search = R.CodeSearch(lambda *_: None, tech, None)
    search.build(X.astype(np.float32), ids)
    assert search.hamming
    qids = [f"q{i}" for i in range(len(Q))]
    for k in (1, 10, 100):
        got = search.search_vectors(Q.astype(np.float32), qids, k)
        for qid, expect in zip(qids, truth, strict=True):
            ranked = sorted(got[qid].items(), key=lambda x: (x[1], x[0]), reverse=True)
            assert [doc for doc, _ in ranked] == [doc for doc, _ in expect[:k]]
            assert [s for _, s in ranked] == [1 - 2 * hh / d for _, hh in expect[:k]]
    if d == 16:  # few distinct distances: the cut falls inside tie groups
        kth = np.sort(h, axis=1)[:, 9]
        assert ((h == kth[:, None]).sum(axis=1) > 1).all()


def test_rescoring_the_whole_corpus_is_float_search(small, bow, fitted):
    corpus, queries = T.split_data(small, "test")["corpus"], T.split_data(small, "test")["queries"]
    X = bow.vectors(T.corpus_texts(small, "test"))
    Q = bow.vectors(T.query_texts(small, "test"))
    ids, qids, n = list(corpus["id"]), list(queries["id"]), len(corpus)

    def run(tech_name, **kw):
        s = R.CodeSearch(bow, fitted[tech_name], None, **kw)
        s.build(X, ids)
        return s.search_vectors(Q, qids, 100)

    exact = run("float32")
    covered = run("binary", rescore_multiplier=-(-n // 100))
    narrow = run("binary", rescore_multiplier=2)
    assert covered == exact  # same documents, same order, same scores
    assert narrow != exact
    # int8 rescoring over the whole corpus = float query against int8 documents
    int8_all = run(
        "binary", rescore_multiplier=n, rescore_with="int8", rescore_technique=fitted["int8"]
    )
    assert int8_all == run("int8", asymmetric=True)


@pytest.mark.slow
def test_float_search_equals_mteb_encoder_path(small, bow, fitted, tmp_path):
    """CodeSearch(float32) gives mteb's own encoder-path scores, per query, exactly."""
    for name in ("float32", "int8"):
        tech = fitted[name]
        enc = evaluate(TechniqueEncoder(bow, tech, meta_for(tech)), small, tmp_path, f"enc-{name}")
        bow.calls.clear()
        cs = evaluate(R.CodeSearch(bow, tech, meta_for(tech)), small, tmp_path, f"cs-{name}")
        assert cs[0] == enc[0]
        assert cs[2] == enc[2]  # per-query nDCG@10
        for qid in enc[1]:
            assert top(cs[1][qid]) == top(enc[1][qid])
        # the texts CodeSearch embedded are the ones mteb hands an encoder
        docs = [t for pt, ts in bow.calls if pt == PromptType.document for t in ts]
        qs = [t for pt, ts in bow.calls if pt == PromptType.query for t in ts]
        assert docs == T.corpus_texts(small, "test")
        assert qs == T.query_texts(small, "test")
    assert 0.2 < cs[0] < 0.9  # a real retrieval signal, not noise


@pytest.mark.slow
def test_per_query_ndcg_reproduces_mteb_main_score(small, bow, fitted, tmp_path):
    for i, kw in enumerate([{}, {"asymmetric": True}, {"rescore_multiplier": 4, "top_k": 10}]):
        tech = fitted["binary"]
        score, preds, per_query = evaluate(
            R.CodeSearch(bow, tech, meta_for(tech), **kw), small, tmp_path, f"b{i}"
        )
        assert len(per_query) == 300
        assert T.mteb_mean(per_query) == score
        if "top_k" in kw:
            assert {len(v) for v in preds.values()} == {10}


@pytest.mark.slow
def test_symmetric_and_asymmetric_differ_through_mteb(small, bow, fitted, tmp_path):
    results = {}
    for tech_name in ("binary", "svd+binary"):
        tech = fitted[tech_name]
        for asym in (False, True):
            model = R.CodeSearch(bow, tech, meta_for(tech), asymmetric=asym)
            assert isinstance(model, SearchProtocol)
            assert model.mteb_model_meta.experiment_kwargs["search"] == (
                "asymmetric" if asym else "symmetric"
            )
            results[tech_name, asym] = evaluate(model, small, tmp_path, f"{tech_name}-{asym}")
    for tech_name in ("binary", "svd+binary"):
        sym, asym = results[tech_name, False], results[tech_name, True]
        assert sym[1] != asym[1] and sym[2] != asym[2]
        assert sym[0] != asym[0]


def test_lookups_use_the_right_purpose_and_fit_never_sees_queries(small, fitted):
    bow = BowLookup()
    tech = fitted["int8"]
    model = R.CodeSearch(bow, tech, meta_for(tech), rescore_multiplier=3, top_k=10)
    model.index(
        T.split_data(small, "test")["corpus"],
        task_metadata=small.metadata,
        hf_split="test",
        hf_subset="default",
        encode_kwargs={},
    )
    model.search(
        T.split_data(small, "test")["queries"],
        task_metadata=small.metadata,
        hf_split="test",
        hf_subset="default",
        top_k=1000,
        encode_kwargs={},
    )
    assert [pt for pt, _ in bow.calls] == [PromptType.document, PromptType.query]
    assert T.purpose_of(PromptType.document) == "document"
    assert T.purpose_of(PromptType.query) == "query"
    with pytest.raises(ValueError, match="fitted"):
        R.CodeSearch(bow, parse_technique("binary"), None)
    with pytest.raises(ValueError, match="rescore_technique"):
        R.CodeSearch(bow, tech, None, rescore_multiplier=2, rescore_with="int8")


# ----------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def minilm():
    from embedbench.providers.local import LocalProvider

    provider = LocalProvider(MODEL)
    memo: dict[str, np.ndarray] = {}

    def lookup(texts, prompt_type):
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            vectors = provider.embed_batch(todo, T.purpose_of(prompt_type)).vectors
            memo.update(zip(todo, vectors, strict=True))
        return np.stack([memo[t] for t in texts]).astype(np.float32)

    return lookup


@pytest.mark.slow
def test_real_minilm_subset(scifact, minilm, tmp_path):
    """all-MiniLM-L6-v2 on 30 queries, 100 documents: float CodeSearch = mteb's encoder path."""
    task = reduced_task(scifact[0], 30, 70, seed=1)
    tech = parse_technique("float32").fit(minilm(_cal(task, "test", 100, 0), PromptType.document))
    enc = evaluate(TechniqueEncoder(minilm, tech, meta_for(tech)), task, tmp_path, "enc")
    cs = evaluate(R.CodeSearch(minilm, tech, meta_for(tech)), task, tmp_path, "cs")
    assert cs[0] == enc[0] and cs[2] == enc[2]
    assert T.mteb_mean(cs[2]) == cs[0]
    assert cs[0] > 0.7  # 100 documents: most relevant ones come first
    binary = parse_technique("binary").fit(minilm(_cal(task, "test", 100, 0), PromptType.document))
    b = evaluate(R.CodeSearch(minilm, binary, meta_for(binary)), task, tmp_path, "bin")
    assert 0.5 * cs[0] < b[0] <= cs[0] + 0.05
