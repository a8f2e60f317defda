"""Task kinds without local data here (Reranking, MultilabelClassification,
Summarization), through mteb's own task objects and evaluators on small generated
data and the real local model: each kind's predictions must reproduce mteb's main
score (checked inside every evaluation), and its paired interval must hold its point.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedbench import stats
from embedbench.config import Evaluation
from embedbench.evaluate import EvalJob, prepare, run_job
from embedbench.tasks import KINDS, LoadedTask, unit_key

pytestmark = pytest.mark.slow  # the real model through mteb

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = (
    "bank card loan rate river water fish boat music song guitar drum code bug test "
    "python tree leaf forest rain cloud storm paper book story city road car train"
).split()


@pytest.fixture(scope="module")
def embed():
    from embedbench.providers.local import LocalProvider

    provider = LocalProvider(MODEL)
    memo: dict[str, np.ndarray] = {}

    def get(texts: list[str], purpose: str) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, provider.embed_batch(todo, "sts").vectors, strict=True))
        return np.stack([memo[t] for t in texts]).astype(np.float32)

    return get


def _sentence(rng: np.random.Generator, topic: int, n: int = 5) -> str:
    near = [WORDS[(topic * 3 + i) % len(WORDS)] for i in range(3)]
    return " ".join(rng.choice(near + list(rng.choice(WORDS, 2)), n))


def _evaluate(lt: LoadedTask, embed, technique: str):
    prepare(lt, Evaluation())
    cal = embed([_sentence(np.random.default_rng(i), i % 9) for i in range(600)], "sts")
    job = EvalJob("k", None, None, Evaluation(), technique, "local", MODEL, cal)
    return run_job(job, get=embed, lt=lt)


def _check(lt: LoadedTask, embed) -> None:
    """Float and int8 through mteb; predictions reproduce mteb's unit scores (run_job
    checks it) and the paired interval holds the point estimate."""
    base, tech = (_evaluate(lt, embed, t) for t in ("float32", "binary"))
    (unit,) = lt.units
    key = unit_key(unit)
    items = lt.kind.resampler(lt.gold(unit))
    assert lt.kind.consistent(items.point(base.predictions[key]), base.unit_scores[key])
    b = stats.retention_interval(items, base.predictions[key], tech.predictions[key], 300, 0, 0.05)
    point = 100 * tech.unit_scores[key] / base.unit_scores[key]
    assert b.values[0] <= point <= b.values[1] and b.values[0] < b.values[1]


def _with_data(name: str, kind: str, dataset) -> LoadedTask:
    import mteb

    task = mteb.get_task(name)
    task.dataset, task.data_loaded = dataset, True
    return LoadedTask(name, task, KINDS[kind], {"kind": "generated"})


def test_reranking(embed):
    from datasets import Dataset

    rng = np.random.default_rng(0)
    docs = {f"d{i}": _sentence(rng, i % 9) for i in range(120)}
    queries, qrels, top = {}, {}, {}
    for q in range(40):
        topic = q % 9
        queries[f"q{q}"] = _sentence(rng, topic, 4)
        cands = [f"d{i}" for i in rng.choice(120, 12, replace=False)]
        qrels[f"q{q}"] = {d: 1 for d in cands if int(d[1:]) % 9 == topic} or {cands[0]: 1}
        top[f"q{q}"] = cands
    split = {
        "corpus": Dataset.from_dict(
            {"id": list(docs), "title": [""] * len(docs), "text": list(docs.values())}
        ),
        "queries": Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
        "relevant_docs": qrels,
        "top_ranked": top,
    }
    lt = _with_data("AskUbuntuDupQuestions", "Reranking", {"default": {"test": split}})
    assert lt.task.metadata.main_score == "map_at_1000" and not lt.kind.searches
    _check(lt, embed)
    assert "MAP@1000" in lt.kind.resampler(lt.gold(lt.units[0])).method


def test_multilabel_classification(embed):
    from datasets import Dataset, DatasetDict

    rng = np.random.default_rng(1)

    def rows(n: int) -> dict:
        topics = rng.integers(0, 9, n)
        labels = [sorted({int(t) % 4, int(t) % 3 + 4}) for t in topics]
        return {"text": [_sentence(rng, int(t)) for t in topics], "label": labels}

    data = DatasetDict(
        {"train": Dataset.from_dict(rows(300)), "test": Dataset.from_dict(rows(150))}
    )
    lt = _with_data("SciRepEvalFoSClassification", "MultilabelClassification", data)
    lt.task.n_experiments = 3
    _check(lt, embed)


def test_summarization(embed):
    from datasets import Dataset

    rng = np.random.default_rng(2)
    rows = {"text": [], "human_summaries": [], "machine_summaries": [], "relevance": []}
    for i in range(30):
        topic = i % 9
        rows["text"].append(_sentence(rng, topic, 12))
        rows["human_summaries"].append([_sentence(rng, topic) for _ in range(2)])
        machine = [_sentence(rng, topic if j < 3 else topic + 4) for j in range(6)]
        rows["machine_summaries"].append(machine)
        rows["relevance"].append([5.0 - j * 0.5 + float(rng.uniform(0, 0.3)) for j in range(6)])
    rows["relevance"][0] = [3.0] * 6  # constant human scores: mteb skips this text
    lt = _with_data("SummEvalSummarization.v2", "Summarization", {"test": Dataset.from_dict(rows)})
    _check(lt, embed)
    base = _evaluate(lt, embed, "float32")
    assert base.predictions[unit_key(lt.units[0])][0] is None  # skipped, as mteb does
