"""`embedbench compare NEW BASELINE`: the CI gate, on small synthetic run folders.

Tables alone (no predictions/, as an older embedbench wrote) are compared by the point
rule; run folders with per-item predictions by the paired bootstrap of the drop.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedbench.cli import cli
from embedbench.compare import Paired, Row, compare_runs, diff_cell
from embedbench.errors import UserError
from embedbench.predictions import FOLDER, CellPredictions, PredictionWriter
from embedbench.tasks import resampler
from tests.conftest import run_cli

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FLOAT = {"STSBenchmark": 0.820325, "Banking77Classification": 0.800422}
# The columns of a retention.csv before the descriptive columns of issue 8 were added.
COLUMNS = (
    "task provider model technique spec dim bits_per_dim bytes_per_vector size_multiplier "
    "params_bytes score float_score retention ci_low ci_high verdict interval_method "
    "calibration"
).split()
NEW_COLUMNS = (
    "role control secondary_bytes_per_vector total_bytes_per_vector fast_size_multiplier "
    "ci_mc_error control_retention control_ci_low control_ci_high retention_chance_corrected "
    "n_seeds seed_low seed_high seed_sd"
).split()
# technique -> (spec, bits/dim, retention, ci_low, ci_high)
GRID = {
    "classic": ("float32", 32, 100.0, 100.0, 100.0),
    "scalar": ("int8", 8, 99.99, 99.96, 100.00),
    "binary": ("binary", 1, 98.57, 97.93, 99.19),
    "rotated-ternary": ("svd+ternary", 2, 97.67, 96.38, 99.07),
}


def make_rows(float_scores: dict[str, float] | None = None) -> list[dict[str, str]]:
    rows = []
    for task, fs in (float_scores or FLOAT).items():
        for tech, (spec, bits, ret, lo, hi) in GRID.items():
            rows.append(row(task, tech, spec, bits, fs, ret, lo, hi))
    return rows


def row(
    task: str,
    tech: str,
    spec: str,
    bits: float,
    float_score: float,
    ret: float,
    lo: float,
    hi: float,
    provider: str = "local",
    model: str = MODEL,
    score: float | None = None,
) -> dict[str, str]:
    base = tech == "classic"
    return {
        "task": task,
        "provider": provider,
        "model": model,
        "technique": tech,
        "spec": spec,
        "dim": "384",
        "bits_per_dim": f"{bits:g}",
        "bytes_per_vector": str(math.ceil(384 * bits / 8)),
        "size_multiplier": f"{32 / bits:g}",
        "params_bytes": "0",
        "score": f"{float_score * ret / 100 if score is None else score:.6f}",
        "float_score": f"{float_score:.6f}",
        "retention": f"{ret:.2f}",
        "ci_low": f"{lo:.2f}",
        "ci_high": f"{hi:.2f}",
        "verdict": "baseline" if base else ("inconclusive" if lo <= 100 <= hi else "loss"),
        "interval_method": "" if base else "paired bootstrap",
        "calibration": "train:5000",
    }


def write_run(folder: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cols = columns or COLUMNS + [c for c in rows[0] if c not in COLUMNS]
    with (folder / "retention.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    manifest = {"name": folder.name, "config_sha256": "ab" * 32, "versions": {"mteb": "2.26.24"}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def set_cell(rows, task, tech, ret, lo, hi):
    for r in rows:
        if r["task"] == task and r["technique"] == tech:
            fs = float(r["float_score"])
            r.update(
                retention=f"{ret:.2f}",
                ci_low=f"{lo:.2f}",
                ci_high=f"{hi:.2f}",
                score=f"{fs * ret / 100:.6f}",
                verdict="loss" if hi < 100 else "inconclusive",
            )
            return
    raise KeyError((task, tech))


def invoke(*args: str):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


def strict_json(text: str):
    """JSON as the spec has it: NaN and Infinity are not JSON."""

    def reject(name: str):
        raise AssertionError(f"non-JSON constant {name} in the output")

    return json.loads(text, parse_constant=reject)


def cells_by_technique(out: dict) -> dict[str, dict]:
    return {c["technique"]: c for c in out["cells"]}


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_run(tmp_path / "base", make_rows())


# --------------------------------------------------------------------------- tables alone


def test_identical_tables_pass_by_the_point_rule(tmp_path, base):
    new = write_run(tmp_path / "new", make_rows())
    res = invoke(new, base)
    assert res.exit_code == 0, res.output
    assert "PASS: 8 cells matched (0 paired, 8 point), 0 regression(s)" in res.stdout
    assert "| STSBenchmark | local:" in res.stdout  # the diff table is printed
    warnings = [x for x in res.stdout.splitlines() if x.startswith("warning: point rule")]
    assert len(warnings) == 1 and "BASELINE has no predictions/ folder" in warnings[0]
    assert "6 of 6 technique cell(s)" in warnings[0]
    assert res.stderr == ""


def test_csv_file_paths_are_accepted(tmp_path, base):
    new = write_run(tmp_path / "new", make_rows())
    res = invoke(new / "retention.csv", base / "retention.csv")
    assert res.exit_code == 0, res.output


def test_point_rule_drop_beyond_max_drop_fails(tmp_path, base):
    rows = make_rows()
    # binary 98.57 -> 96.50: 2.07 points. The intervals overlap widely; the gate does
    # not care (they are test-set sampling, shared by both runs).
    set_cell(rows, "STSBenchmark", "binary", 96.50, 95.90, 97.10)
    new = write_run(tmp_path / "new", rows)
    res = invoke(new, base, "--max-drop", "1")
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.stdout and "1 regression(s)" in res.stdout
    assert f"regressed: STSBenchmark / local:{MODEL} / binary (-2.07, rule point)" in res.stdout
    assert "REGRESSION" in res.stdout
    # A looser tolerance lets the same drop through.
    assert invoke(new, base, "--max-drop", "2.5").exit_code == 0


def test_point_rule_drop_within_intervals_fails(tmp_path, base):
    # rotated-ternary 97.67 [96.38, 99.07] -> 96.50 [95.10, 97.90]: 1.17 points, inside
    # both intervals; the retired noise rule passed it.
    rows = make_rows()
    set_cell(rows, "STSBenchmark", "rotated-ternary", 96.50, 95.10, 97.90)
    res = invoke(write_run(tmp_path / "new", rows), base, "--json")
    assert res.exit_code == 1, res.output
    out = strict_json(res.stdout)
    assert out["regressions"] == [f"STSBenchmark / local:{MODEL} / rotated-ternary"]
    assert "noise" not in json.dumps(out)


def test_small_drop_within_max_drop_passes(tmp_path, base):
    rows = make_rows()
    set_cell(rows, "Banking77Classification", "scalar", 99.20, 99.15, 99.25)  # drop 0.79
    res = invoke(write_run(tmp_path / "new", rows), base)
    assert res.exit_code == 0, res.output


def test_rule_boundaries():
    key = {"task": "t", "provider": "p", "model": "m", "technique": "x"}

    def r(ret, verdict="loss", fs=0.8):
        return Row({}, fs * ret / 100, fs, ret, ret - 1, ret + 1, verdict, 2)

    b = r(98.0)
    # Point rule: strictly more than max_drop fails.
    assert diff_cell(key, "c", b, r(97.0), 1.0).status == "ok"
    d = diff_cell(key, "c", b, r(96.99), 1.0)
    assert d.status == "regression" and d.rule == "point"
    # Paired rule: a point drop within max_drop still fails when its 95% bound is beyond.
    wide = Paired(retention_bound=1.2, score_bound=0.9, resamples=2000, mc_error=0.0)
    d = diff_cell(key, "c", b, r(97.5), 1.0, paired=wide)
    assert d.status == "regression" and d.rule == "paired"
    assert d.notes == ["retention drop's 95% bound 1.20 > max-drop"]
    tight = Paired(retention_bound=0.99, score_bound=0.8, resamples=2000, mc_error=0.0)
    assert diff_cell(key, "c", b, r(97.5), 1.0, paired=tight).status == "ok"
    assert diff_cell(key, "c", b, r(96.5), 1.0, paired=tight).status == "regression"
    # Float-baseline rows: their score drop alone.
    fb, fn = r(100.0, "baseline", fs=0.80), r(100.0, "baseline", fs=0.785)
    d = diff_cell(key, "c", fb, fn, 1.0)
    assert d.status == "regression" and d.rule == "point"
    assert d.score_drop == pytest.approx(1.5)
    assert diff_cell(key, "c", r(99.0), r(101.5), 1.0).status == "improved"


def test_mismatched_grids_exit_2_naming_the_cells(tmp_path, base):
    rows = [r for r in make_rows() if r["technique"] != "binary"]
    rows.append(
        row("STSBenchmark", "ternary", "ternary", 2, FLOAT["STSBenchmark"], 99.7, 99.3, 100)
    )
    new = write_run(tmp_path / "new", rows)
    res = invoke(new, base)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: the grids differ")
    assert f"1 only in NEW ({new}): STSBenchmark / local:{MODEL} / ternary" in err
    assert f"2 only in BASELINE ({base}): STSBenchmark / local:{MODEL} / binary;" in err
    assert f"Banking77Classification / local:{MODEL} / binary" in err
    assert "--allow-missing" in err
    # --allow-missing compares the common cells and lists the others.
    res = invoke(new, base, "--allow-missing", "--json")
    assert res.exit_code == 0, res.output
    out = strict_json(res.stdout)
    assert out["matched"] == 6 and len(out["only_in_baseline"]) == 2
    assert out["only_in_new"] == [f"STSBenchmark / local:{MODEL} / ternary"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("task,provider,model\nSTS,local,m\n", "missing column(s) technique, score"),
        ("", "empty file"),
        (None, "not a number: 'abc'"),
        (b"\xff\xfe\x00garbage\x00" * 20, "not a UTF-8 text file"),
        (",".join(COLUMNS) + "\n", "no rows"),
        (",".join(COLUMNS) + "\nSTS,local,m\n", "line 2: 3 fields, the header has 18"),
    ],
)
def test_malformed_csv_exits_2_with_one_line(tmp_path, base, content, message):
    new = tmp_path / "new"
    new.mkdir()
    if content is None:
        rows = make_rows()
        rows[3]["score"] = "abc"
        write_run(new, rows)
    elif isinstance(content, bytes):
        (new / "retention.csv").write_bytes(content)
    else:
        (new / "retention.csv").write_text(content, encoding="utf-8")
    res = invoke(new, base)
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert message in err
    assert "Traceback" not in res.output
    res = invoke(new, base, "--json")
    assert res.exit_code == 2 and strict_json(res.stdout)["status"] == "error"


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("retention", "1e9", "column 'retention' is absurd: '1e9'"),
        ("score", "-2e7", "column 'score' is absurd"),
        ("retention", "inf", "column 'retention' is not a finite number: 'inf'"),
        ("float_score", "nan", "column 'float_score' is not a finite number: 'nan'"),
        ("ci_low", "99.5", "column 'ci_low' 99.5 > 'ci_high' 99.19: inverted"),
        ("ci_high", "5000", "column 'ci_high' 5000: interval [97.93, 5000] wider than 1000"),
    ],
)
def test_absurd_rows_exit_2_naming_file_line_column(tmp_path, base, column, value, message):
    rows = make_rows()
    rows[2][column] = value  # STSBenchmark binary, line 4
    new = write_run(tmp_path / "new", rows)
    res = invoke(new, base, "--json")
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1
    assert f"{new / 'retention.csv'} line 4: {message}" in err
    assert strict_json(res.stdout)["status"] == "error"


def test_missing_paths_exit_2(tmp_path, base):
    res = invoke(tmp_path / "nope", base)
    assert res.exit_code == 2 and "no such run folder or file" in res.stderr
    (tmp_path / "empty").mkdir()
    res = invoke(tmp_path / "empty", base)
    assert res.exit_code == 2 and "no retention.csv in this folder" in res.stderr


def test_duplicate_cell_is_malformed(tmp_path, base):
    rows = make_rows()
    rows.append(dict(rows[1]))
    res = invoke(write_run(tmp_path / "new", rows), base)
    assert res.exit_code == 2 and "duplicate cell" in res.stderr and "line 10" in res.stderr


def test_json_output_parses(tmp_path, base):
    rows = make_rows()
    set_cell(rows, "STSBenchmark", "binary", 96.50, 95.90, 97.10)
    res = invoke(write_run(tmp_path / "new", rows), base, "--json")
    assert res.exit_code == 1
    out = strict_json(res.stdout)
    assert out["exit_code"] == 1 and out["status"] == "regression"
    assert out["identity_columns"] == ["task", "provider", "model", "technique"]
    assert out["regressions"] == [f"STSBenchmark / local:{MODEL} / binary"]
    assert len(out["cells"]) == 8 and out["max_drop"] == 1.0
    cell = next(c for c in out["cells"] if c["status"] == "regression")
    assert cell["rule"] == "point" and cell["retention_drop_bound95"] is None
    assert cell["baseline"]["retention"] == 98.57 and cell["new"]["ci_high"] == 97.10
    assert cell["score_delta"] == pytest.approx(-100 * 0.820325 * 0.0207, abs=1e-3)
    assert any("point rule" in w for w in out["warnings"])


def test_float_baseline_moved_warns_and_can_fail(tmp_path, base):
    moved = dict(FLOAT, STSBenchmark=0.8150)  # -0.53 score points: within max-drop
    new = write_run(tmp_path / "new", make_rows(moved))
    res = invoke(new, base)
    assert res.exit_code == 0, res.output
    assert (
        f"warning: float baseline moved for STSBenchmark / local:{MODEL}: 0.820325 → 0.815000"
        in res.stdout
    )
    moved_lines = [x for x in res.stdout.splitlines() if "float baseline moved" in x]
    assert len(moved_lines) == 1
    res = invoke(new, base, "--fail-on-baseline-change", "--json")
    assert res.exit_code == 1
    out = strict_json(res.stdout)
    assert out["baseline_moved"][0]["task"] == "STSBenchmark"
    assert out["baseline_moved"][0]["delta_points"] == pytest.approx(-0.5325)
    # A float drop beyond max-drop fails through the float row's score.
    dropped = write_run(tmp_path / "dropped", make_rows(dict(FLOAT, STSBenchmark=0.80)))
    res = invoke(dropped, base, "--json")
    assert res.exit_code == 1
    out = strict_json(res.stdout)
    assert f"STSBenchmark / local:{MODEL} / classic" in out["regressions"]


def test_extra_columns_tolerated_and_identity_columns_matched(tmp_path):
    # A future identity column (rescore multiplier) present on both sides splits cells;
    # a measurement column (bits_per_vector) present on one side only is ignored.
    def rows_with(extra_ret: float) -> list[dict[str, str]]:
        out = []
        for r in make_rows():
            for k, ret in (("1", float(r["retention"])), ("4", extra_ret)):
                if r["technique"] == "classic" and k == "4":
                    continue
                out.append({**r, "rescore": k, "bits_per_vector": "384"})
                if k == "4":
                    out[-1].update(retention=f"{ret:.2f}", ci_low=f"{ret - 0.2:.2f}")
                    out[-1].update(ci_high=f"{ret + 0.2:.2f}")
        return out

    base = write_run(tmp_path / "base", [dict(r) for r in rows_with(99.9)])
    base_rows = list(csv.DictReader((base / "retention.csv").open()))
    for r in base_rows:
        del r["bits_per_vector"]
    write_run(base, base_rows, columns=[*COLUMNS, "rescore"])
    new = write_run(tmp_path / "new", rows_with(97.0))  # rescore=4 rows drop 2.9 points
    res = invoke(new, base, "--json")
    out = strict_json(res.stdout)
    assert out["identity_columns"] == ["task", "provider", "model", "technique", "rescore"]
    assert res.exit_code == 1
    assert all("rescore=4" in name for name in out["regressions"])
    assert len(out["regressions"]) == 6
    assert any("bits_per_vector only in NEW" in w for w in out["warnings"])
    # Dropping the identity column makes cells collide: a clear error, exit 2.
    res = invoke(new, base, "--ignore-column", "rescore")
    assert res.exit_code == 2 and "appears twice" in res.stderr


def test_issue8_columns_are_not_identity(tmp_path, base):
    """The descriptive columns of newer tables never split cells; old tables still compare."""

    def rows_with_new_columns(salt: float) -> list[dict[str, str]]:
        rows = make_rows()
        for r in rows:
            r.update({c: f"{salt:.3f}" for c in NEW_COLUMNS})
            r.update(role="technique", control="")
        return rows

    a = write_run(tmp_path / "a", rows_with_new_columns(0.1))
    b = write_run(tmp_path / "b", rows_with_new_columns(0.7))  # every new column differs
    for new, old in ((a, base), (a, b)):
        res = invoke(new, old, "--json")
        assert res.exit_code == 0, res.output
        out = strict_json(res.stdout)
        assert out["identity_columns"] == ["task", "provider", "model", "technique"]
        assert out["matched"] == 8


def test_library_call_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_help_documents_the_rule():
    res = CliRunner().invoke(cli, ["compare", "--help"])
    assert res.exit_code == 0
    assert "95th percentile of the drop" in res.output and 'Rule "point"' in res.output
    assert "sqrt" not in res.output and "noise" not in res.output.replace("run-to-run noise", "")
    for option in ("--allow-missing", "--json", "--bootstrap", "--seed", "--max-drop"):
        assert option in res.output


# --------------------------------------------------------------------------- with predictions


UNIT = "default/test"  # the one unit of each synthetic task


def write_predictions_run(
    folder: Path,
    tasks: dict[str, tuple[str, list | None, dict[str, object]]],
    half_width: float = 1.0,
) -> Path:
    """A run folder whose table is consistent with its per-item predictions.

    `tasks`: task -> (kind, gold, {technique: predictions}); "classic" is the float
    baseline. Scores are what the kind's resampler computes (retrieval: rounded to 5 decimals,
    as mteb does); each technique's interval is its retention ± `half_width`.
    """
    rows, writer = [], PredictionWriter()
    for task, (kind, gold, techs) in tasks.items():
        writer.task(task, kind, {UNIT: gold})
        items = resampler(kind, gold)
        scores = {t: items.point(p) for t, p in techs.items()}
        if kind == "Retrieval":
            scores = {t: round(s, 5) for t, s in scores.items()}
        fs = scores["classic"]
        for tech, preds in techs.items():
            ret = 100 * scores[tech] / fs
            lo, hi = (ret, ret) if tech == "classic" else (ret - half_width, ret + half_width)
            spec, bits = {"classic": ("float32", 32), "scalar": ("int8", 8)}.get(tech, (tech, 1))
            rows.append(row(task, tech, spec, bits, fs, ret, lo, hi, score=scores[tech]))
            writer.cell(
                CellPredictions(
                    task,
                    "local",
                    MODEL,
                    tech,
                    kind,
                    scores[tech],
                    {UNIT: preds},
                    {UNIT: scores[tech]},
                )
            )
    write_run(folder, rows)
    for name, data in writer.files():
        path = folder / FOLDER / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def synthetic_task(kind: str, seed: int = 0) -> tuple[list | None, dict[str, object]]:
    """Gold and float / scalar / binary predictions of a small task of `kind`."""
    rng = np.random.default_rng(seed)
    n = 300
    if kind == "STS":
        gold = np.round(rng.uniform(0, 5, n), 1)
        f = gold + rng.normal(0, 1.5, n)
        preds = {"classic": f, "scalar": f + rng.normal(0, 0.05, n)}
        preds["binary"] = f + rng.normal(0, 0.7, n)
        return gold.tolist(), {t: p.tolist() for t, p in preds.items()}
    if kind == "Classification":
        gold = rng.integers(0, 10, n)
        exps = 5

        def predict(acc: float) -> np.ndarray:
            return np.where(rng.random((exps, n)) < acc, gold, (gold + 1 + gold % 3) % 10)

        preds = {"classic": predict(0.8), "scalar": predict(0.8), "binary": predict(0.74)}
        return gold.tolist(), {t: p.tolist() for t, p in preds.items()}
    qids = [f"q{i}" for i in range(n)]
    f = rng.beta(1.3, 0.715, n)
    preds = {
        "classic": f,
        "scalar": np.clip(f + rng.normal(0, 0.01, n), 0, 1),
        "binary": np.clip(f + rng.normal(-0.05, 0.12, n), 0, 1),
    }
    return None, {t: dict(zip(qids, p.tolist(), strict=True)) for t, p in preds.items()}


def worsen(kind: str, gold, preds, float_preds, points: float):
    """`preds` with the fewest items made wrong so that retention drops ≥ `points`."""
    items = resampler(kind, gold)
    fs, start = items.point(float_preds), items.point(preds)
    n = len(preds) if kind == "Retrieval" else len(gold)
    for k in range(1, n + 1):
        if kind == "STS":  # the k items with the most gold-aligned predictions get noise
            worse = list(preds)
            for i in range(k):
                worse[i] = worse[i] + (-4.0 if gold[i] > 2.5 else 4.0)
        elif kind == "Classification":
            worse = [
                [(g + 5) % 10 if i < k else p for i, (p, g) in enumerate(zip(e, gold, strict=True))]
                for e in preds
            ]
        else:
            top = sorted(preds, key=lambda q: -preds[q])[:k]
            worse = {q: (0.0 if q in top else v) for q, v in preds.items()}
        if 100 * (start - items.point(worse)) / fs >= points:
            return worse
    raise AssertionError("cannot worsen enough")


def technique_cells(out: dict) -> list[dict]:
    return [c for c in out["cells"] if c["technique"] != "classic"]


@pytest.mark.parametrize("kind", ["STS", "Classification", "Retrieval"])
def test_paired_rule_mechanism(tmp_path, kind):
    gold, preds = synthetic_task(kind)
    task = {"STS": "STSBenchmark", "Classification": "Banking77Classification"}.get(kind, "SciFact")
    base = write_predictions_run(tmp_path / "base", {task: (kind, gold, preds)})

    # An identical rerun: every resample has drop exactly 0.
    same = tmp_path / "same"
    shutil.copytree(base, same)
    res = invoke(same, base, "--json")
    assert res.exit_code == 0, res.output
    out = strict_json(res.stdout)
    assert [c["rule"] for c in technique_cells(out)] == ["paired", "paired"]
    assert all(c["retention_drop_bound95"] == 0 for c in technique_cells(out))
    assert not any("point rule" in w for w in out["warnings"])

    # The binary cell loses 2 points of retention: a regression by the paired rule.
    worse = dict(preds, binary=worsen(kind, gold, preds["binary"], preds["classic"], 2.0))
    new = write_predictions_run(tmp_path / "new", {task: (kind, gold, worse)})
    res = invoke(new, base, "--json")
    assert res.exit_code == 1, res.output
    out = strict_json(res.stdout)
    assert out["regressions"] == [f"{task} / local:{MODEL} / binary"]
    cell = cells_by_technique(out)["binary"]
    assert cell["rule"] == "paired" and cell["retention_delta"] <= -2.0
    assert cell["retention_drop_bound95"] >= -cell["retention_delta"]
    assert cells_by_technique(out)["scalar"]["status"] == "ok"
    # A tolerance the drop is well inside passes (the bound is finite and sensible).
    assert invoke(new, base, "--max-drop", "10").exit_code == 0


def test_paired_rule_needs_the_same_gold(tmp_path):
    gold, preds = synthetic_task("STS")
    base = write_predictions_run(tmp_path / "base", {"STSBenchmark": ("STS", gold, preds)})
    other = [g + 0.05 if i == 0 else g for i, g in enumerate(gold)]
    new = write_predictions_run(tmp_path / "new", {"STSBenchmark": ("STS", other, preds)})
    res = invoke(new, base, "--json")
    out = strict_json(res.stdout)
    assert {c["rule"] for c in technique_cells(out)} == {"point"}
    assert any("gold differs" in w for w in out["warnings"])


def test_unreadable_predictions_exit_2(tmp_path):
    gold, preds = synthetic_task("Retrieval")
    base = write_predictions_run(tmp_path / "base", {"SciFact": ("Retrieval", gold, preds)})
    new = tmp_path / "new"
    shutil.copytree(base, new)
    (new / FOLDER / "index.json").write_text("{not json", encoding="utf-8")
    res = invoke(new, base)
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "not a valid predictions index" in res.stderr


# --------------------------------------------------------------------------- SciFact


@pytest.fixture(scope="module")
def scifact(tmp_path_factory, data_dir) -> dict:
    """Per-query nDCG@10 of float, int8 and binary codes for the 300 SciFact test queries.

    Float ~ Beta(1.3, 0.715) (mean 0.645, mass at both ends, like real nDCG@10); binary
    is the float value plus noise, shifted so its mean is 0.587 and clipped to [0, 1].
    """
    with (data_dir / "SciFact" / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        qids = sorted({r["query-id"] for r in csv.DictReader(f, delimiter="\t")})
    assert len(qids) == 300
    rng = np.random.default_rng(17)
    f = rng.beta(1.3, 0.715, len(qids))
    noise = rng.normal(0, 0.12, len(qids))
    lo, hi = 0.0, 0.5
    for _ in range(60):  # the shift giving binary a mean of 0.587
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(f + noise - mid, 0, 1).mean() > 0.587 else (lo, mid)
    preds = {
        "classic": f,
        "scalar": np.clip(f + rng.normal(0, 0.01, len(qids)), 0, 1),
        "binary": np.clip(f + noise - lo, 0, 1),
    }
    preds = {t: dict(zip(qids, p.tolist(), strict=True)) for t, p in preds.items()}
    root = tmp_path_factory.mktemp("scifact")
    # ±2 points: about the paired 95% interval of binary's retention (91%) on these queries
    base = write_predictions_run(
        root / "base", {"SciFact": ("Retrieval", None, preds)}, half_width=2.0
    )
    old = root / "old"  # the same run made by an embedbench without predictions/
    shutil.copytree(base, old)
    shutil.rmtree(old / FOLDER)
    return {"root": root, "base": base, "old": old, "preds": preds}


def scifact_run(scifact: dict, name: str, binary: dict[str, float]) -> Path:
    preds = dict(scifact["preds"], binary=binary)
    folder = scifact["root"] / name
    if not folder.exists():
        write_predictions_run(folder, {"SciFact": ("Retrieval", None, preds)}, half_width=2.0)
    return folder


def spread_drop(scifact: dict, points: float) -> dict[str, float]:
    """Binary's per-query values scaled down so retention drops by `points`, on every query."""
    f, b = scifact["preds"]["classic"], scifact["preds"]["binary"]
    mf, mb = np.mean(list(f.values())), np.mean(list(b.values()))
    c = 1 - points / 100 * mf / mb
    return {q: v * c for q, v in b.items()}


def few_queries_drop(scifact: dict, points: float) -> dict[str, float]:
    """Binary loses `points` of retention on its best few queries (relevant documents lost)."""
    f, b = scifact["preds"]["classic"], scifact["preds"]["binary"]
    need, out = points / 100 * sum(f.values()), dict(b)
    for q in sorted(b, key=lambda q: -b[q]):
        take = min(out[q], need)
        out[q] -= take
        need -= take
        if need <= 1e-12:
            return out
    raise AssertionError("not enough to take")


BINARY = f"SciFact / local:{MODEL} / binary"


def compare_json(*args) -> tuple[int, dict]:
    res = run_cli("compare", *map(str, args), "--json")
    assert res.returncode in (0, 1), res.stdout + res.stderr
    return res.returncode, strict_json(res.stdout)


@pytest.mark.parametrize("shape", ["few queries", "all queries"])
def test_scifact_two_point_drop_on_binary_fails(scifact, shape):
    binary = (few_queries_drop if shape == "few queries" else spread_drop)(scifact, 2.0)
    new = scifact_run(scifact, f"drop2-{shape.replace(' ', '-')}", binary)
    res = run_cli("compare", str(new), str(scifact["base"]))
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"regressed: {BINARY} (-2.00, rule paired)" in res.stdout
    assert "1 regression(s)" in res.stdout
    code, out = compare_json(new, scifact["base"])
    cell = cells_by_technique(out)["binary"]
    assert code == 1 and out["regressions"] == [BINARY] and cell["rule"] == "paired"
    # The tables' intervals (±2) overlap widely: test-set sampling, shared by both runs.
    assert cell["new"]["ci_high"] > cell["baseline"]["ci_low"]


def test_scifact_csv_edit_without_predictions_fails_by_the_point_rule(scifact, tmp_path):
    new = tmp_path / "edited"
    shutil.copytree(scifact["base"], new)
    rows = list(csv.DictReader((new / "retention.csv").open(encoding="utf-8")))
    for r in rows:
        if r["technique"] == "binary":  # 2 points of retention off the table only
            ret, fs = float(r["retention"]) - 2.0, float(r["float_score"])
            r.update(retention=f"{ret:.2f}", score=f"{fs * ret / 100:.6f}")
    write_run(new, rows)
    code, out = compare_json(new, scifact["base"])
    cell = cells_by_technique(out)["binary"]
    assert code == 1 and out["regressions"] == [BINARY]
    assert cell["rule"] == "point"
    assert any("NEW predictions of binary give" in n for n in cell["notes"])
    warnings = [w for w in out["warnings"] if w.startswith("point rule")]
    assert len(warnings) == 1 and "do not reproduce" in warnings[0]
    assert cells_by_technique(out)["scalar"]["rule"] == "paired"


def test_scifact_identical_rerun_passes_paired(scifact, tmp_path):
    rerun = tmp_path / "rerun"
    shutil.copytree(scifact["base"], rerun)
    code, out = compare_json(rerun, scifact["base"])
    assert code == 0 and out["regressions"] == []
    assert [c["rule"] for c in technique_cells(out)] == ["paired", "paired"]
    assert [c["retention_drop_bound95"] for c in technique_cells(out)] == [0, 0]
    assert cells_by_technique(out)["classic"]["rule"] == "point"  # the float row
    assert out["warnings"] == []


@pytest.mark.parametrize("points, code", [(2.0, 1), (0.5, 0)])
def test_scifact_baseline_without_predictions_uses_the_point_rule(scifact, points, code):
    new = scifact_run(scifact, f"spread{points}", spread_drop(scifact, points))
    res = run_cli("compare", str(new), str(scifact["old"]))
    assert res.returncode == code, res.stdout + res.stderr
    warnings = [x for x in res.stdout.splitlines() if x.startswith("warning: point rule")]
    assert len(warnings) == 1
    assert "2 of 2 technique cell(s): BASELINE has no predictions/ folder" in warnings[0]
    assert "(0 paired, 3 point)" in res.stdout
    if code:
        assert f"regressed: {BINARY} (-2.00, rule point)" in res.stdout


def test_scifact_small_spread_change_passes(scifact):
    new = scifact_run(scifact, "spread0.2", spread_drop(scifact, 0.2))
    code, out = compare_json(new, scifact["base"], "--max-drop", "1")
    cell = cells_by_technique(out)["binary"]
    assert code == 0 and cell["rule"] == "paired" and cell["status"] == "ok"
    assert 0.2 <= cell["retention_drop_bound95"] < 0.5


def test_scifact_drop_on_few_queries_fails_by_its_bound(scifact):
    """0.8 points lost on a few queries: within max-drop, but not shown to be ≤ 1."""
    new = scifact_run(scifact, "few0.8", few_queries_drop(scifact, 0.8))
    code, out = compare_json(new, scifact["base"])
    cell = cells_by_technique(out)["binary"]
    assert code == 1 and cell["rule"] == "paired"
    assert cell["retention_delta"] == pytest.approx(-0.8, abs=0.01)
    assert cell["retention_drop_bound95"] > 1.0
    assert any("95% bound" in n for n in cell["notes"])
    # The point rule, all an older baseline allows, cannot see it.
    code, out = compare_json(new, scifact["old"])
    assert code == 0 and cells_by_technique(out)["binary"]["rule"] == "point"


def test_baseline_from_before_controls_still_compares(tmp_path):
    """A baseline written by an older embedbench (no role column, no controls, no
    predictions) compares with a new run that adds float controls: by the point rule,
    with warnings, not as a grid mismatch."""
    old_columns = [c for c in COLUMNS if c != "role"]
    old = [{k: v for k, v in r.items() if k != "role"} for r in make_rows()]
    base = write_run(tmp_path / "old", old, columns=old_columns)
    rows = make_rows()
    for r in rows:
        r["role"] = "baseline" if r["verdict"] == "baseline" else "technique"
    control = dict(rows[1], technique="svd+float32", spec="svd+float32", role="control")
    new = write_run(tmp_path / "new", [*rows, control], columns=[*old_columns, "role"])
    res = invoke(new, base)
    assert res.exit_code == 0, res.output
    assert "predates controls" in res.stdout and "point rule" in res.stdout
    drop = [dict(r) for r in rows] + [control]
    set_cell(drop, "STSBenchmark", "binary", 95.0, 94.0, 96.0)
    assert invoke(write_run(tmp_path / "drop", drop, [*old_columns, "role"]), base).exit_code == 1
