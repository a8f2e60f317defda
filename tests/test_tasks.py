"""Task loading from the real local files (every kind), calibration sources, the hub
fallback offline, and benchmarks."""

from __future__ import annotations

import pytest

from embedbench.config import TaskSpec
from embedbench.errors import UserError
from embedbench.tasks import (
    KINDS,
    calibration_texts,
    load_task,
    normalize_text,
    overlap,
)


@pytest.fixture(scope="module")
def sts(data_dir):
    return load_task("STSBenchmark", data_dir)


@pytest.fixture(scope="module")
def banking(data_dir):
    return load_task("Banking77Classification", data_dir)


def test_local_files_load_into_mteb_tasks(sts, banking):
    assert sts.source["kind"] == "local" and len(sts.dataset("default", "test")) == 1379
    assert len(banking.dataset("default", "test")) == 3080
    assert len(banking.dataset("default", "train")) == 10003
    assert sts.purpose == "sts" and banking.purpose == "classification"
    assert sts.units == [("default", "test")]
    gold = banking.gold(("default", "test"))
    assert gold[:1] == [banking.dataset("default", "test")["label"][0]]


# one real task per kind with local data, and a source its calibration may use
EVERY_KIND = {
    "STS": (TaskSpec(name="STSBenchmarkMultilingualSTS", subsets=["de", "en"]), ""),
    "Classification": (TaskSpec(name="Banking77Classification"), ""),
    "PairClassification": (TaskSpec(name="indonli"), ""),
    "Clustering": (TaskSpec(name="MewsC16JaClustering"), ""),
    "Retrieval": (TaskSpec(name="SciFact"), ""),
    "BitextMining": (
        TaskSpec(
            name="Tatoeba", subsets=["deu-eng"], calibration="STSBenchmarkMultilingualSTS:train"
        ),
        "",
    ),
}


def test_every_kind_has_a_local_task_here():
    """All but the three kinds without data on this machine (tests/test_more_kinds.py)."""
    no_data = {"MultilabelClassification", "Reranking", "Summarization"}
    assert set(EVERY_KIND) == set(KINDS) - no_data


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_calibration_and_evaluated_texts_are_disjoint_for_every_kind(kind, data_dir):
    """Whatever the source (the task's own split, another task, the corpus), no
    calibration text is an evaluated text, even after Unicode/whitespace normalisation;
    retrieval may calibrate on its corpus (transductive, said) but never on a query."""
    spec, _ = EVERY_KIND[kind]
    lt = load_task(spec, data_dir)
    assert lt.type == kind
    label, cal = calibration_texts(lt, "train", 3000, 0, data_dir)
    evaluated = {normalize_text(t) for t in lt.eval_texts()}
    assert evaluated and len(cal) == len(set(cal)) > 100
    assert not {normalize_text(t) for t in cal} & evaluated
    facts = overlap(lt, cal)
    assert facts["touches_eval_texts"] is (kind == "Retrieval")
    if kind == "Retrieval":
        assert label == "corpus" and facts["evaluated_queries_touched"] == 0
    assert cal == calibration_texts(lt, "train", 3000, 0, data_dir)[1]  # seeded
    if len(cal) == 3000:
        assert cal != calibration_texts(lt, "train", 3000, 1, data_dir)[1]


def test_clustering_calibrates_on_its_other_split_by_default(data_dir):
    lt = load_task("MewsC16JaClustering", data_dir)
    label, cal = calibration_texts(lt, "train", 5000, 0, data_dir)
    assert label == "validation" and len(cal) > 900


def test_a_task_without_a_calibration_source_stops_with_what_to_add(data_dir):
    lt = load_task(TaskSpec(name="Tatoeba", subsets=["deu-eng"]), data_dir)
    with pytest.raises(UserError) as info:
        calibration_texts(lt, "train", 1000, 0, data_dir)
    msg = str(info.value)
    assert "\n" not in msg and "no 'train' split to calibrate on" in msg
    assert "calibration: '<OtherTask>:train'" in msg and "file:" in msg


def test_calibration_from_a_text_file_drops_evaluated_texts(sts, data_dir, tmp_path):
    test_text = sts.dataset("default", "test")["sentence1"][0]
    path = tmp_path / "cal.txt"
    path.write_text("\n".join(["a first text", " " + test_text + " ", "a second text", ""]))
    lt = load_task(TaskSpec(name="STSBenchmark", calibration=f"file:{path}"), data_dir)
    label, cal = calibration_texts(lt, "train", 100, 0, data_dir)
    assert label == f"file:{path}" and cal == ["a first text", "a second text"]


def test_calibrating_on_an_evaluation_split_is_refused(data_dir):
    lt = load_task(TaskSpec(name="STSBenchmark", calibration="test"), data_dir)
    with pytest.raises(UserError, match="leaks test data"):
        calibration_texts(lt, "train", 100, 0, data_dir)


def test_subsets_and_splits_restrict_the_units(data_dir):
    lt = load_task(TaskSpec(name="STSBenchmarkMultilingualSTS", subsets=["fr", "en"]), data_dir)
    assert lt.units == [("en", "dev"), ("fr", "dev"), ("en", "test"), ("fr", "test")]
    lt = load_task(
        TaskSpec(name="STSBenchmarkMultilingualSTS", subsets=["en"], splits=["test"]), data_dir
    )
    assert lt.units == [("en", "test")]
    with pytest.raises(UserError, match="unknown subsets xx"):
        load_task(TaskSpec(name="STSBenchmarkMultilingualSTS", subsets=["xx"]), data_dir)
    with pytest.raises(UserError, match="not evaluation splits"):
        load_task(TaskSpec(name="STSBenchmark", splits=["train"]), data_dir)


def test_only_the_subsets_present_are_evaluated(data_dir):
    lt = load_task("SIB200ClusteringS2S", data_dir)
    assert len(lt.subsets) == 7 and "eng_Latn" in lt.subsets


def test_needed_texts_cover_what_mteb_encodes(banking):
    (texts,) = banking.needed_texts().values()
    # the test split plus the union of mteb's undersampled training rows (10 × 616)
    assert set(banking.eval_texts()) <= set(texts)
    assert 3080 + 616 < len(texts) < 3080 + 10 * 616


def test_missing_local_folder_offline_is_one_clear_line(data_dir):
    with pytest.raises(UserError, match=r"no folder .*STS12 and the hub cannot be reached"):
        load_task("STS12", data_dir)


def test_calibration_drops_near_twins_of_test_texts(banking, data_dir):
    """Banking77 has test texts whose train twins differ only in whitespace: calibration
    compares after Unicode and whitespace normalisation, and the overlap it reports is
    computed."""
    test = set(banking.eval_texts())
    norm_test = {normalize_text(t) for t in test}
    train = banking.dataset("default", "train")["text"]
    twins = [t for t in train if t not in test and normalize_text(t) in norm_test]
    assert twins, "expected whitespace twins of test texts in Banking77's train split"
    _, cal = calibration_texts(banking, "train", 100_000, 0, data_dir)
    assert not set(twins) & set(cal)
    assert overlap(banking, cal)["touches_eval_texts"] is False
    assert overlap(banking, cal + twins[:1])["evaluated_texts_touched"] == 1


def test_retrieval_calibration_is_reported_transductive(data_dir):
    lt = load_task("SciFact", data_dir)
    _, cal = calibration_texts(lt, "train", 500, 0, data_dir)
    facts = overlap(lt, cal)
    assert facts["transductive"] is True
    assert facts["evaluated_documents_touched"] == 500
    assert facts["evaluated_queries_touched"] == 0


def test_benchmark_expands_to_its_supported_tasks():
    from embedbench.config import parse_config
    from embedbench.tasks.benchmarks import expand

    cfg = parse_config(
        {
            "name": "b",
            "providers": ["local:m"],
            "benchmark": "MTEB(eng, v2)",
            "tasks": ["STSBenchmark"],
            "techniques": ["binary"],
        }
    )
    specs, left_out = expand(cfg)
    names = [s.name for s in specs]
    assert names[0] == "STSBenchmark" and len(names) == len(set(names))
    assert "ArguAna" in names and "SciFact" not in names and left_out == []  # every kind
    _, left_out = expand(cfg.model_copy(update={"benchmark": "RuSciBench"}))
    assert left_out and all(t.endswith("(Regression)") for t in left_out)
    with pytest.raises(UserError, match="unknown benchmark 'MTEB\\(eng, v9\\)'"):
        expand(cfg.model_copy(update={"benchmark": "MTEB(eng, v9)"}))
