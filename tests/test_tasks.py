"""Task loading from the real local files, calibration sets, and the hub fallback offline."""

from __future__ import annotations

import pytest

from embedbench.errors import UserError
from embedbench.tasks import load_task


@pytest.fixture(scope="module")
def sts(data_dir):
    return load_task("STSBenchmark", data_dir)


@pytest.fixture(scope="module")
def banking(data_dir):
    return load_task("Banking77Classification", data_dir)


def test_local_files_load_into_mteb_tasks(sts, banking):
    assert sts.source["kind"] == "local" and len(sts.split("test")) == 1379
    assert len(banking.split("test")) == 3080 and len(banking.split("train")) == 10003
    assert sts.purpose == "sts" and banking.purpose == "classification"
    assert banking.gold()[:1] == [banking.split("test")["label"][0]]


@pytest.mark.parametrize("which", ["sts", "banking"])
def test_calibration_never_holds_an_evaluation_text(which, request):
    lt = request.getfixturevalue(which)
    cal = lt.calibration_texts("train", 2000, seed=0)
    assert len(cal) == 2000 == len(set(cal))
    assert not set(cal) & set(lt.eval_texts())
    assert cal == lt.calibration_texts("train", 2000, seed=0)  # seeded
    assert cal != lt.calibration_texts("train", 2000, seed=1)
    with pytest.raises(UserError, match="leaks test data"):
        lt.calibration_texts(lt.eval_split, 2000, seed=0)


def test_needed_texts_cover_what_mteb_encodes(banking):
    (texts,) = banking.needed_texts().values()
    # the test split plus the union of mteb's undersampled training rows (10 × 616)
    assert set(banking.eval_texts()) <= set(texts)
    assert 3080 + 616 < len(texts) < 3080 + 10 * 616


def test_missing_local_folder_offline_is_one_clear_line(data_dir):
    with pytest.raises(UserError, match=r"no folder .*STS12 and the hub cannot be reached"):
        load_task("STS12", data_dir)


def test_calibration_drops_near_twins_of_test_texts(data_dir):
    """Banking77 has test texts whose train twins differ only in whitespace: calibration
    compares after Unicode and whitespace normalisation, and the overlap it reports is
    computed."""
    from embedbench.tasks import load_task, normalize_text

    lt = load_task("Banking77Classification", data_dir)
    test = set(lt.eval_texts())
    norm_test = {normalize_text(t) for t in test}
    twins = [t for t in lt.texts("train") if t not in test and normalize_text(t) in norm_test]
    assert twins, "expected whitespace twins of test texts in Banking77's train split"
    cal = lt.calibration_texts("train", 100_000, 0)
    assert not set(twins) & set(cal)
    assert lt.calibration_overlap(cal)["touches_eval_texts"] is False
    assert lt.calibration_overlap(cal + twins[:1])["evaluated_texts_touched"] == 1


def test_retrieval_calibration_is_reported_transductive(data_dir):
    from embedbench.tasks import load_task

    lt = load_task("SciFact", data_dir)
    cal = lt.calibration_texts("train", 500, 0)
    overlap = lt.calibration_overlap(cal)
    assert overlap["source"] == "corpus, transductive"
    assert overlap["evaluated_documents_touched"] == 500
    assert overlap["evaluated_queries_touched"] == 0
