"""`embedbench compare NEW BASELINE`: the CI gate, on small synthetic run folders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from embedbench.cli import cli
from embedbench.compare import Row, compare_runs, diff_cell
from embedbench.errors import UserError
from embedbench.report import COLUMNS

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FLOAT = {"STSBenchmark": 0.820325, "Banking77Classification": 0.800422}
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
        "score": f"{float_score * ret / 100:.6f}",
        "float_score": f"{float_score:.6f}",
        "retention": f"{ret:.2f}",
        "ci_low": f"{lo:.2f}",
        "ci_high": f"{hi:.2f}",
        "verdict": "baseline" if base else ("no measurable change" if lo <= 100 <= hi else "loss"),
        "interval_method": "" if base else "paired bootstrap",
        "calibration": "train:5000",
    }


def write_run(folder: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cols = columns or list(COLUMNS) + [c for c in rows[0] if c not in COLUMNS]
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
                verdict="loss" if hi < 100 else "no measurable change",
            )
            return
    raise KeyError((task, tech))


def invoke(*args: str):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_run(tmp_path / "base", make_rows())


def test_identical_runs_pass(tmp_path, base):
    new = write_run(tmp_path / "new", make_rows())
    res = invoke(new, base)
    assert res.exit_code == 0, res.output
    assert "PASS: 8 cells matched, 0 regression(s)" in res.stdout
    assert "| STSBenchmark | local:" in res.stdout  # the diff table is printed
    assert res.stderr == ""


def test_csv_file_paths_are_accepted(tmp_path, base):
    new = write_run(tmp_path / "new", make_rows())
    res = invoke(new / "retention.csv", base / "retention.csv")
    assert res.exit_code == 0, res.output


def test_drop_beyond_tolerance_and_noise_fails(tmp_path, base):
    rows = make_rows()
    # binary: 98.57 [97.93, 99.19] -> 96.50 [95.90, 97.10]: drop 2.07 > 1 and
    # > sqrt(0.64² + 0.60²) = 0.88
    set_cell(rows, "STSBenchmark", "binary", 96.50, 95.90, 97.10)
    new = write_run(tmp_path / "new", rows)
    res = invoke(new, base, "--max-drop", "1")
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.stdout and "1 regression(s)" in res.stdout
    assert f"regressed: STSBenchmark / local:{MODEL} / binary (-2.07)" in res.stdout
    assert "REGRESSION" in res.stdout
    # A looser tolerance lets the same drop through.
    assert invoke(new, base, "--max-drop", "2.5").exit_code == 0


def test_drop_within_noise_passes(tmp_path, base):
    rows = make_rows()
    # rotated-ternary: 97.67 [96.38, 99.07] -> 96.50 [95.10, 97.90]: drop 1.17 > 1 but
    # < sqrt(1.29² + 1.40²) = 1.90, the noise of the difference
    set_cell(rows, "STSBenchmark", "rotated-ternary", 96.50, 95.10, 97.90)
    new = write_run(tmp_path / "new", rows)
    res = invoke(new, base, "--max-drop", "1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    cell = next(
        c for c in out["cells"] if c["technique"] == "rotated-ternary" and "STS" in c["task"]
    )
    assert cell["status"] == "within noise"
    assert cell["retention_delta"] == pytest.approx(-1.17)
    assert cell["noise"] == pytest.approx(math.hypot(97.67 - 96.38, 97.90 - 96.50), abs=1e-4)
    assert out["regressions"] == []


def test_small_drop_within_max_drop_passes(tmp_path, base):
    rows = make_rows()
    set_cell(rows, "Banking77Classification", "scalar", 99.20, 99.15, 99.25)  # drop 0.80
    res = invoke(write_run(tmp_path / "new", rows), base)
    assert res.exit_code == 0, res.output


def test_noise_rule_boundaries():
    """drop > max_drop AND drop > hypot(baseline's lower, new's upper half-width)."""
    key = {"task": "t", "provider": "p", "model": "m", "technique": "x"}

    def r(ret, lo, hi, verdict="loss", fs=0.8):
        return Row({}, fs * ret / 100, fs, ret, lo, hi, verdict, 2)

    b = r(98.0, 97.0, 99.0)  # lower half-width 1.0
    # noise = hypot(1.0, 0.5) = 1.118
    assert diff_cell(key, "c", b, r(96.9, 96.0, 97.4), 1.0).status == "within noise"
    assert diff_cell(key, "c", b, r(96.8, 96.0, 97.3), 1.0).status == "regression"
    # Exactly max_drop is not "more than" max_drop.
    assert diff_cell(key, "c", b, r(97.0, 96.9, 97.1), 1.0).status == "ok"
    assert diff_cell(key, "c", b, r(96.99, 96.9, 97.0), 1.0).status == "regression"
    # Float-baseline rows carry no interval: the score is gated by max_drop alone.
    fb = r(100.0, 100.0, 100.0, "baseline", fs=0.80)
    fn = r(100.0, 100.0, 100.0, "baseline", fs=0.785)
    d = diff_cell(key, "c", fb, fn, 1.0)
    assert d.status == "regression" and d.noise is None and d.score_drop == pytest.approx(1.5)
    assert diff_cell(key, "c", r(99.0, 98.0, 100.0), r(101.5, 101.0, 102.0), 1.0).status == (
        "improved"
    )


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
    out = json.loads(res.stdout)
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
    assert res.exit_code == 2 and json.loads(res.stdout)["status"] == "error"


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
    out = json.loads(res.stdout)
    assert out["exit_code"] == 1 and out["status"] == "regression"
    assert out["identity_columns"] == ["task", "provider", "model", "technique"]
    assert out["regressions"] == [f"STSBenchmark / local:{MODEL} / binary"]
    assert len(out["cells"]) == 8 and out["max_drop"] == 1.0
    cell = next(c for c in out["cells"] if c["status"] == "regression")
    assert cell["baseline"]["retention"] == 98.57 and cell["new"]["ci_high"] == 97.10
    assert cell["score_delta"] == pytest.approx(-100 * 0.820325 * 0.0207, abs=1e-3)


def test_float_baseline_moved_warns_and_can_fail(tmp_path, base):
    moved = dict(FLOAT, STSBenchmark=0.8150)  # -0.53 score points: within max-drop
    new = write_run(tmp_path / "new", make_rows(moved))
    res = invoke(new, base)
    assert res.exit_code == 0, res.output
    assert (
        f"warning: float baseline moved for STSBenchmark / local:{MODEL}: 0.820325 → 0.815000"
        in res.stdout
    )
    assert "Banking77Classification / local" not in res.stdout.split("warning:", 1)[1]
    res = invoke(new, base, "--fail-on-baseline-change", "--json")
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["baseline_moved"][0]["task"] == "STSBenchmark"
    assert out["baseline_moved"][0]["delta_points"] == pytest.approx(-0.5325)
    # A float drop beyond max-drop fails through the float row's score.
    dropped = write_run(tmp_path / "dropped", make_rows(dict(FLOAT, STSBenchmark=0.80)))
    res = invoke(dropped, base, "--json")
    assert res.exit_code == 1
    out = json.loads(res.stdout)
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
    out = json.loads(res.stdout)
    assert out["identity_columns"] == ["task", "provider", "model", "technique", "rescore"]
    assert res.exit_code == 1
    assert all("rescore=4" in name for name in out["regressions"])
    assert len(out["regressions"]) == 6
    assert any("bits_per_vector only in NEW" in w for w in out["warnings"])
    # Dropping the identity column makes cells collide: a clear error, exit 2.
    res = invoke(new, base, "--ignore-column", "rescore")
    assert res.exit_code == 2 and "appears twice" in res.stderr


def test_library_call_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_help_documents_the_rule():
    res = CliRunner().invoke(cli, ["compare", "--help"])
    assert res.exit_code == 0
    assert "drop > sqrt((ret_b - ci_low_b)^2 + (ci_high_n - ret_n)^2)" in res.output
    assert "--allow-missing" in res.output and "--json" in res.output
