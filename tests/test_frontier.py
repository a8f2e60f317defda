"""`embedbench frontier`: the best row per budget against truncation, paired (no model)."""

from __future__ import annotations

import csv

import numpy as np
from click.testing import CliRunner

from embedbench.cli import cli
from embedbench.frontier import frontier, markdown
from tests.test_compare import write_predictions_run

SIZES = {"trunc192+binary": 64, "pca192+binary": 64, "haar+trunc192+binary": 64, "fp16": 2}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _run(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    gold = np.round(rng.uniform(0, 5, n), 1)
    f = gold + rng.normal(0, 1.2, n)
    trunc = f + rng.normal(0, 0.9, n)
    preds = {
        "classic": f,
        "trunc192+binary": trunc,
        "pca192+binary": f + rng.normal(0, 0.25, n),  # far closer to the float scores
        "haar+trunc192+binary": trunc + rng.normal(0, 0.05, n),  # truncation, nearly
        "fp16": f + rng.normal(0, 0.01, n),
    }
    folder = write_predictions_run(
        tmp_path / "run",
        {"STSBenchmark": ("STS", gold.tolist(), {k: v.tolist() for k, v in preds.items()})},
    )
    path = folder / "retention.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["size_multiplier"] = f"{SIZES.get(r['technique'], 1):g}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return folder


def test_best_row_against_truncation_with_a_paired_interval(tmp_path):
    best, every = frontier(_run(tmp_path), (2, 64), n_boot=1000, seed=1)
    by_budget = {x.budget: x for x in best}
    top = by_budget[64]
    assert top.row.values["technique"] == "pca192+binary"
    assert top.truncation.values["technique"] == "trunc192+binary"
    lo, hi = top.difference.values
    d = top.row.retention - top.truncation.retention
    assert 0 < lo < d < hi  # a real gain: the paired interval is above 0
    assert by_budget[2].truncation is None  # no truncation row belongs to the 2x budget
    rows = {x.row.values["technique"]: x for x in every if x.budget == 64}
    assert set(rows) == {"trunc192+binary", "pca192+binary", "haar+trunc192+binary"}
    lo, hi = rows["haar+trunc192+binary"].difference.values
    assert lo < 0 < hi  # the same errors as truncation, nearly: no gain shown
    assert hi - lo < 1.0  # paired: much narrower than either row's own interval (±1)
    text = markdown(best, every)
    assert "| STSBenchmark | 64 | pca192+binary:" in text and " beats |" in text
    assert "(the truncation row)" in text


def test_cli_prints_the_tables_and_refuses_bad_budgets(tmp_path):
    folder = _run(tmp_path)
    res = invoke("frontier", str(folder), "--budgets", "64", "--bootstrap", "500")
    assert res.exit_code == 0, res.output
    assert res.output.count("| STSBenchmark | 64 |") == 4
    bad = invoke("frontier", str(folder), "--budgets", "64,x")
    assert bad.exit_code == 2 and "--budgets takes integers" in bad.output
    missing = invoke("frontier", str(tmp_path / "nope"))
    assert missing.exit_code == 2
