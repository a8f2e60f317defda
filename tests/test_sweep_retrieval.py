"""A retrieval sweep through the runner: corpus calibration, search options, intervals."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import yaml

from embedbench import api
from tests.conftest import write_config

pytestmark = pytest.mark.slow  # end to end through the real model and mteb


@pytest.fixture(scope="module")
def small_scifact(tmp_path_factory, data_dir) -> Path:
    """SciFact in BEIR layout, cut to 60 test queries, their documents and 240 others."""
    src = data_dir / "SciFact"
    root = tmp_path_factory.mktemp("data")
    dst = root / "SciFact"
    (dst / "qrels").mkdir(parents=True)
    lines = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [r.split("\t") for r in lines[1:]]
    queries = sorted({q for q, _, _ in rows})[:60]
    rows = [r for r in rows if r[0] in queries]
    (dst / "qrels" / "test.tsv").write_text(
        "\n".join([header, *("\t".join(r) for r in rows)]) + "\n", encoding="utf-8"
    )
    corpus = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    relevant = {d for _, d, _ in rows}
    others = [c for c in corpus if json.loads(c)["_id"] not in relevant]
    keep = [c for c in corpus if json.loads(c)["_id"] in relevant]
    keep += random.Random(0).sample(others, 240)
    (dst / "corpus.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    qlines = (src / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    qkeep = [q for q in qlines if json.loads(q)["_id"] in queries]
    (dst / "queries.jsonl").write_text("\n".join(qkeep) + "\n", encoding="utf-8")
    return root


def test_retrieval_sweep(tmp_path, small_scifact):
    techniques = ["classic", "binary", "binary/asym", "binary/rescore1000", "scalar/rescore2-int8"]
    cfg = {
        "name": "retrieval",
        "providers": ["local:sentence-transformers/all-MiniLM-L6-v2"],
        "tasks": ["SciFact"],
        "techniques": techniques,
        "calibration": {"max_texts": 200},
        "evaluation": {"bootstrap": 200, "mc_target": 0.05},
        "output": str(tmp_path / "out"),
    }
    path = write_config(tmp_path / "r.yaml", cfg)
    result, out = api.run(path, small_scifact, tmp_path / "cache.sqlite")
    rows = {r["technique"]: r for r in csv.DictReader((out / "retention.csv").open())}
    assert list(rows) == techniques
    base = float(rows["classic"]["score"])
    assert 0.3 < base <= 1.0
    # a rescoring window that covers the corpus gives float search back exactly
    assert float(rows["binary/rescore1000"]["score"]) == pytest.approx(base, abs=1e-5)
    assert rows["binary/asym"]["spec"] == "binary/asym"
    assert rows["binary"]["bits_per_dim"] == "1"
    assert rows["binary"]["calibration"] == "corpus, transductive:200"
    # storage: a rescored search keeps float (or int8) copies beside the codes
    full = rows["binary/rescore1000"]
    assert (full["bytes_per_vector"], full["secondary_bytes_per_vector"]) == ("48", "1536")
    assert full["total_bytes_per_vector"] == "1584" and float(full["size_multiplier"]) < 1
    assert full["fast_size_multiplier"] == "32"
    int8 = rows["scalar/rescore2-int8"]
    assert (int8["secondary_bytes_per_vector"], int8["total_bytes_per_vector"]) == ("384", "768")
    assert rows["binary"]["secondary_bytes_per_vector"] == "0"
    # a rescored search returns its top 10: no metric of a deeper cutoff is kept
    rescored = json.loads(next((out / "mteb").rglob("binary_rescore1000/SciFact.json")).read_text())
    plain = json.loads(next((out / "mteb").rglob("binary/SciFact.json")).read_text())
    (entry,) = rescored["scores"]["test"]
    assert "ndcg_at_10" in entry and "recall_at_5" in entry
    assert not [k for k in entry if "_at_100" in k or "_at_20" in k]
    assert "recall_at_100" in plain["scores"]["test"][0]
    for name in techniques[1:]:
        assert rows[name]["interval_method"].startswith("paired bootstrap over test queries")
    manifest = json.loads((out / "manifest.json").read_text())
    cal = manifest["calibration"]["local:sentence-transformers/all-MiniLM-L6-v2/SciFact"]
    assert cal["split"] == "corpus, transductive" and cal["texts"] == 200
    assert cal["touches_eval_texts"] is True and cal["evaluated_queries_touched"] == 0
    folder = small_scifact / "SciFact"
    docs = (folder / "corpus.jsonl").read_text().splitlines()
    queries = {json.loads(q)["text"] for q in (folder / "queries.jsonl").read_text().splitlines()}
    assert result.texts_embedded == len(docs) + len(queries)  # corpus + queries, each once


def test_search_options_apply_to_retrieval_only(tmp_path, small_scifact, data_dir):
    from embedbench.errors import UserError
    from embedbench.registry import build_technique

    with pytest.raises(UserError, match="did you mean 'asym'"):
        build_technique("binary/asymm")
    cfg = {
        "name": "mixed",
        "providers": ["local:sentence-transformers/all-MiniLM-L6-v2"],
        "tasks": ["STSBenchmark"],
        "techniques": ["classic", "binary/asym"],
        "calibration": {"max_texts": 200},
        "evaluation": {"bootstrap": 200, "mc_target": 0.05},
        "output": str(tmp_path / "out"),
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result, out = api.run(path, data_dir, tmp_path / "cache.sqlite")
    assert [r.technique for r in result.rows] == ["classic"]  # nothing to search on STS
