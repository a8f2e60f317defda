"""A team's own data as a task: `{name, kind, path}` built into a real mteb task.

Each malformed-file case is one line naming the file, the line and the fault, exit 2,
before any provider call. A custom STS task (the STSBenchmark test split as a user's
folder) and a custom Retrieval task (a slice of SciFact in BEIR layout) run end to end
through the CLI; the STS one must score exactly what mteb's own STSBenchmark does.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from embedbench.config import TaskSpec
from embedbench.errors import UserError
from embedbench.tasks import load_task
from tests.conftest import run_cli, write_config


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _sts_rows(data_dir: Path, split: str, n: int | None = None) -> list[dict]:
    lines = (data_dir / "STSBenchmark" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines][:n]
    return [{k: r[k] for k in ("sentence1", "sentence2", "score")} for r in rows]


def _user_sts(folder: Path, data_dir: Path, n_test: int | None = None) -> Path:
    _jsonl(folder / "test.jsonl", _sts_rows(data_dir, "test", n_test))
    _jsonl(folder / "train.jsonl", _sts_rows(data_dir, "train", 1500))
    return folder


def _user_faq(folder: Path, data_dir: Path, n_queries: int = 40, n_docs: int = 200) -> Path:
    """A small BEIR folder from SciFact: queries with their relevant documents plus
    others, each document cut to its title and first 200 characters (quick to embed)."""
    src = data_dir / "SciFact"
    with (src / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        qrels = [r for r in csv.reader(f, delimiter="\t")][1:]
    qids = sorted({q for q, _, _ in qrels})[:n_queries]
    keep = [r for r in qrels if r[0] in qids]
    wanted = {d for _, d, _ in keep}
    corpus = [json.loads(x) for x in (src / "corpus.jsonl").read_text().splitlines()]
    docs = [c for c in corpus if c["_id"] in wanted]
    docs += [c for c in corpus if c["_id"] not in wanted][: n_docs - len(docs)]
    _jsonl(
        folder / "corpus.jsonl",
        [{"_id": c["_id"], "title": c["title"], "text": c["text"][:200]} for c in docs],
    )
    queries = [json.loads(x) for x in (src / "queries.jsonl").read_text().splitlines()]
    _jsonl(
        folder / "queries.jsonl",
        [{"_id": q["_id"], "text": q["text"]} for q in queries if q["_id"] in qids],
    )
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in keep)
    )
    return folder


def _load(kind: str, folder: Path):
    return load_task(TaskSpec(name="Ours", kind=kind, path=str(folder)), None)


# ------------------------------------------------------------------ malformed files


def _error(kind: str, folder: Path) -> str:
    with pytest.raises(UserError) as info:
        _load(kind, folder)
    msg = str(info.value)
    assert "\n" not in msg and info.value.exit_code == 2
    return msg


def test_missing_column(tmp_path):
    _jsonl(
        tmp_path / "test.jsonl",
        [{"sentence1": "a", "sentence2": "b", "score": 1.0}] * 2
        + [{"sentence1": "a", "sentence2": "b"}],
    )
    msg = _error("STS", tmp_path)
    assert f"{tmp_path / 'test.jsonl'}:3: no 'score' column" in msg


def test_empty_split(tmp_path):
    (tmp_path / "test.jsonl").write_text("\n")
    assert "test.jsonl: holds no rows (an empty split)" in _error("STS", tmp_path)


def test_not_utf8(tmp_path):
    good = json.dumps({"sentence1": "a", "sentence2": "b", "score": 1}).encode()
    (tmp_path / "test.jsonl").write_bytes(good + b"\n" + b'{"sentence1": "caf\xe9"}\n')
    assert "test.jsonl:2: not UTF-8 text" in _error("STS", tmp_path)


def test_a_label_only_in_test(tmp_path):
    _jsonl(
        tmp_path / "train.jsonl",
        [{"text": "hi", "label": "greet"}, {"text": "bye", "label": "leave"}],
    )
    _jsonl(
        tmp_path / "test.jsonl",
        [{"text": "hello", "label": "greet"}, {"text": "refund?", "label": "refund"}],
    )
    msg = _error("Classification", tmp_path)
    assert "test.jsonl:2: label 'refund' does not occur in train.jsonl" in msg


def test_pair_labels_are_zero_or_one(tmp_path):
    _jsonl(
        tmp_path / "test.jsonl",
        [
            {"sentence1": "a", "sentence2": "b", "labels": 1},
            {"sentence1": "a", "sentence2": "c", "labels": 2},
        ],
    )
    assert "test.jsonl:2: 'labels' must be 0 or 1, got 2" in _error("PairClassification", tmp_path)


def test_duplicate_ids(tmp_path, data_dir):
    folder = _user_faq(tmp_path, data_dir, 5, 20)
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    (folder / "corpus.jsonl").write_text("\n".join([*lines, lines[3]]) + "\n")
    msg = _error("Retrieval", folder)
    assert f"corpus.jsonl:{len(lines) + 1}: duplicate _id" in msg and "first at line 4" in msg


def test_qrels_naming_unknown_ids(tmp_path, data_dir):
    folder = _user_faq(tmp_path, data_dir, 5, 20)
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "nosuchquery\t" + "x\t1\n")
    n = len(qrels.read_text().splitlines())
    assert f"test.tsv:{n}: query-id 'nosuchquery' is not in queries.jsonl" in _error(
        "Retrieval", folder
    )
    qrels.write_text(qrels.read_text().replace("nosuchquery\tx", f"{_first_qid(folder)}\tnodoc"))
    assert f"test.tsv:{n}: corpus-id 'nodoc' is not in corpus.jsonl" in _error("Retrieval", folder)


def _first_qid(folder: Path) -> str:
    return json.loads((folder / "queries.jsonl").read_text().splitlines()[0])["_id"]


def test_unknown_kind_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match="kind 'Reranking' cannot be read from files; allowed: STS"):
        _load("Reranking", tmp_path)
    with pytest.raises(UserError, match="is not a folder"):
        _load("STS", tmp_path / "nope")


def test_a_malformed_file_stops_the_run_before_any_provider_call(tmp_path):
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "test.jsonl").write_text('{"sentence1": "a", "sentence2": "b"}\n')
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "name": "bad",
            "providers": [{"name": "local", "model": "sentence-transformers/all-MiniLM-L6-v2"}],
            "tasks": [{"name": "Ours", "kind": "STS", "path": str(tmp_path / "ours")}],
            "techniques": ["binary"],
            "output": str(tmp_path / "out"),
        },
    )
    cache = tmp_path / "cache.sqlite"
    proc = run_cli("run", str(cfg), "--cache", str(cache))
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert "test.jsonl:1: no 'score' column" in line
    assert not cache.exists() or cache.stat().st_size < 50_000  # nothing embedded


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("user")
    sts = _user_sts(tmp / "sts", data_dir)
    faq = _user_faq(tmp / "faq", data_dir)
    cfg = write_config(
        tmp / "user.yaml",
        {
            "name": "ours",
            "providers": [{"name": "local", "model": "sentence-transformers/all-MiniLM-L6-v2"}],
            "tasks": [
                {"name": "OurSTS", "kind": "STS", "path": str(sts)},
                {"name": "OurFAQ", "kind": "Retrieval", "path": str(faq)},
            ],
            "techniques": ["classic", "int8", "binary", "binary/rescore4"],
            "calibration": {"max_texts": 1000},
            "evaluation": {"mc_target": 0.05},
            "output": str(tmp / "out"),
        },
    )
    proc = run_cli("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (tmp / "out" / "retention.csv").open(encoding="utf-8") as f:
        rows = {(r["task"], r["technique"]): r for r in csv.DictReader(f)}
    return tmp / "out", rows


@pytest.mark.slow
def test_user_sts_scores_what_mteb_scores_on_the_same_data(user_run):
    """The STSBenchmark test split as a user's folder: mteb's evaluator, the same score
    as mteb's own STSBenchmark (published all-MiniLM-L6-v2: 0.8203247)."""
    _, rows = user_run
    assert float(rows["OurSTS", "classic"]["score"]) == pytest.approx(0.8203247, abs=5e-6)


@pytest.mark.slow
def test_user_tasks_run_end_to_end_with_paired_intervals(user_run):
    out, rows = user_run
    assert ("OurSTS", "binary/rescore4") not in rows  # search options: retrieval only
    for (_task, tech), r in rows.items():
        if tech == "classic":
            assert r["verdict"] == "baseline"
            continue
        lo, ret, hi = float(r["ci_low"]), float(r["retention"]), float(r["ci_high"])
        assert lo <= ret <= hi and r["interval_method"]
    assert "queries" in rows["OurFAQ", "binary"]["interval_method"]
    assert float(rows["OurFAQ", "binary/rescore4"]["total_bytes_per_vector"]) == 48 + 1536
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["OurSTS"]["kind"] == "user"
    assert set(manifest["data"]["OurFAQ"]["files"]) == {
        "corpus.jsonl",
        "queries.jsonl",
        "qrels/test.tsv",
    }
    cal = manifest["calibration"]
    assert cal[next(k for k in cal if k.endswith("/OurSTS"))]["touches_eval_texts"] is False
    assert cal[next(k for k in cal if k.endswith("/OurFAQ"))]["evaluated_queries_touched"] == 0
