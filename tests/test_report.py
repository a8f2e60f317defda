"""Figures, report.html and `embedbench report`, on small synthetic run folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.image import imread

from embedbench import plots
from embedbench.cli import cli
from embedbench.config import Config
from embedbench.report import write_outputs, write_report
from embedbench.results import COLUMNS, CellResult, RunResult, csv_text
from embedbench.stats import Retention
from embedbench.tables import markdown_table
from tests.test_compare import make_rows, row, write_run

MANIFEST = {
    "name": "synthetic",
    "config_sha256": "c0ffee" * 10 + "abcd",
    "versions": {"mteb": "2.26.24", "embedbench": "0.1.0", "python": "3.11.7"},
    "git": {"commit": "0123456789abcdef", "dirty": False},
    "texts_embedded": 12,
    "texts_from_cache": 3456,
    "timings_seconds": {"embed": 0.5, "evaluate": 12.25},
    "wall_seconds": 13.0,
    "cells": 8,
}


def panel_points(ax) -> int:
    return sum(isinstance(c, ErrorbarContainer) for c in ax.containers)


def test_tradeoff_one_panel_per_task_one_errorbar_per_technique():
    rows = make_rows()
    rows = [
        r
        for r in rows
        if not (r["task"] == "Banking77Classification" and r["technique"] == "scalar")
    ]
    fig = plots.tradeoff_figure(rows)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["STSBenchmark", "Banking77Classification"]
    assert [panel_points(ax) for ax in axes] == [4, 3]  # techniques per task
    assert axes[0].get_xscale() == "log"
    # Each point sits at its size multiplier (dodged by < 10% when several share an x).
    xs = sorted(c.lines[0].get_xdata()[0] for c in axes[1].containers)
    assert xs[0] == pytest.approx(1) and xs[1] == pytest.approx(16) and xs[2] == pytest.approx(32)
    # The interval is the error bar: binary on STS spans [97.93, 99.19].
    binary = next(c for c in axes[0].containers if c.get_label().startswith("binary"))
    segs = binary.lines[2][0].get_segments()[0]
    assert sorted(y for _, y in segs) == pytest.approx([97.93, 99.19])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["classic", "scalar", "binary", "rotated-ternary"]


def test_tradeoff_several_models_side_by_side_and_bits_axis():
    rows = make_rows()
    rows += [
        row(r["task"], r["technique"], r["spec"], float(r["bits_per_dim"]), 0.7, 99.0, 98.5, 99.5)
        | {"provider": "cohere", "model": "embed-v4.0"}
        for r in make_rows()
    ]
    fig = plots.tradeoff_figure(rows, x="bits")
    assert [panel_points(ax) for ax in fig.axes] == [8, 8]  # 4 techniques × 2 models
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "local:sentence-transformers/all-MiniLM-L6-v2" in labels
    assert "cohere:embed-v4.0" in labels
    assert "bits per vector" in fig.axes[0].get_xlabel()
    xs = {round(c.lines[0].get_xdata()[0]) for c in fig.axes[0].containers}
    assert min(xs) >= 384 * 0.9 and max(xs) <= 384 * 32 * 1.1
    with pytest.raises(ValueError):
        plots.tradeoff_figure(rows, x="nope")
    bars = plots.bars_figure(rows)
    assert sum(len(c) for c in bars.axes[0].containers if isinstance(c, BarContainer)) == 16


def test_bars_one_bar_per_row_with_error_bars():
    fig = plots.bars_figure(make_rows())
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 4 and all(len(b) == 2 for b in bars)  # techniques × tasks
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "STSBenchmark",
        "Banking77Classification",
    ]


def test_png_is_deterministic():
    rows = make_rows()
    a = plots.png_bytes(plots.tradeoff_figure(rows))
    b = plots.png_bytes(plots.tradeoff_figure(rows))
    assert a == b and a.startswith(b"\x89PNG") and b"Software" not in a


def test_write_report_files_decode_and_html_is_self_contained(tmp_path):
    run = write_run(tmp_path / "run", make_rows())
    (run / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    paths = write_report(run)
    assert [p.name for p in paths] == ["tradeoff.png", "retention_bars.png", "report.html"]
    for name in ("tradeoff.png", "retention_bars.png"):
        img = imread(run / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.count("src='data:image/png;base64,") == 2
    assert "<table class='retention'>" in page and "<td>rotated-ternary</td>" in page
    assert "98.57 [97.93, 99.19]" in page
    assert MANIFEST["config_sha256"] in page and "mteb 2.26.24" in page
    assert "<dt>texts from cache</dt><dd>3456</dd>" in page
    assert "evaluate 12.25" in page
    assert "src='tradeoff.png'" not in page and "http" not in page.replace("https", "")


def test_report_cli(tmp_path):
    run = write_run(tmp_path / "run", make_rows())
    res = CliRunner().invoke(cli, ["report", str(run), "--x", "bits"])
    assert res.exit_code == 0, res.output
    assert f"wrote {run / 'report.html'}" in res.stdout
    assert (run / "tradeoff.png").stat().st_size > 0
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "no such" in res.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "retention.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "missing column(s) task" in res.stderr


def test_report_tolerates_extra_columns(tmp_path):
    rows = [
        r | {"bits_per_vector": str(384 * int(r["bits_per_dim"])), "x": "1"} for r in make_rows()
    ]
    run = write_run(tmp_path / "run", rows)
    write_report(run, x="bits")
    assert "<th>bits_per_vector</th>" in (run / "report.html").read_text(encoding="utf-8")


def _result(tmp_path: Path) -> RunResult:
    cfg = Config(
        name="synthetic",
        providers=["local:sentence-transformers/all-MiniLM-L6-v2"],
        tasks=["STSBenchmark", "Banking77Classification"],
        techniques=["classic", "scalar", "binary", "rotated-ternary"],
        output=str(tmp_path / "out"),
    )
    cells = []
    for r in make_rows():
        cells.append(
            CellResult(
                task=r["task"],
                provider=r["provider"],
                model=r["model"],
                technique=r["technique"],
                spec=r["spec"],
                role="baseline" if r["verdict"] == "baseline" else "technique",
                dim=384,
                bytes_per_vector=int(r["bytes_per_vector"]),
                secondary_bytes=0,
                params_bytes=0,
                score=float(r["score"]),
                float_score=float(r["float_score"]),
                retention=Retention(
                    float(r["retention"]), float(r["ci_low"]), float(r["ci_high"]), r["verdict"]
                ),
                interval_method=r["interval_method"],
                calibration=r["calibration"],
            )
        )
    return RunResult(config=cfg, rows=cells)


def test_write_outputs_draws_figures_fast_and_keeps_the_table_stable(tmp_path):
    result = _result(tmp_path)
    out = write_outputs(result, 1.0, tmp_path / "cache.sqlite")
    csv1 = (out / "retention.csv").read_bytes()
    png1 = (out / "tradeoff.png").read_bytes()
    for name in ("retention.csv", "retention.md", "manifest.json", "report.html"):
        assert (out / name).stat().st_size > 0
    assert imread(out / "retention_bars.png").size > 0
    md = (out / "retention.md").read_text(encoding="utf-8")
    assert md.startswith("# Retention: synthetic")
    assert "](tradeoff.png)" in md and "](retention_bars.png)" in md
    assert markdown_table(result.rows) in md
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h1>Retention: synthetic</h1>" in page and "base64," in page
    assert result.config.hash() in page
    write_outputs(result, 2.0, tmp_path / "cache.sqlite")
    assert (out / "retention.csv").read_bytes() == csv1 == csv_text(result.rows).encode()
    assert (out / "tradeoff.png").read_bytes() == png1
    header = next(csv.reader((out / "retention.csv").open(encoding="utf-8")))
    assert header == COLUMNS
    assert not list(out.glob(".*.tmp"))


def test_write_outputs_survives_a_plotting_failure(tmp_path, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("no display")

    monkeypatch.setattr(plots, "tradeoff_figure", boom)
    out = write_outputs(_result(tmp_path), 1.0, tmp_path / "cache.sqlite")
    assert (out / "retention.csv").is_file() and (out / "manifest.json").is_file()
    md = (out / "retention.md").read_text(encoding="utf-8")
    assert "tradeoff.png" not in md
    assert "embedbench report" in caplog.text


def _cell(technique, nbytes, ret, verdict="loss", secondary=0, role="technique"):
    from embedbench.results import CellResult
    from embedbench.stats import Retention

    return CellResult(
        task="T",
        provider="local",
        model="m",
        technique=technique,
        spec=technique,
        role="baseline" if verdict == "baseline" else role,
        dim=384,
        bytes_per_vector=nbytes,
        secondary_bytes=secondary,
        params_bytes=0,
        score=ret / 100,
        float_score=1.0,
        retention=Retention(ret, ret - 1, ret + 1, verdict),
        interval_method="x",
        calibration="train:1",
    )


def test_rescored_rows_count_their_float_copies_and_never_claim_32x():
    """A re-ranked binary index keeps every float vector: its footprint is 48 + 1536 bytes,
    ≈ 0.97×, so by footprint it fits no budget, not even 1×; by searched tier it is 32×."""
    from embedbench.results import row_values
    from embedbench.tables import budget_table

    rescored = _cell("binary/rescore4", 48, 99.0, secondary=1536)
    v = row_values(rescored)
    assert v["bytes_per_vector"] == "48" and v["secondary_bytes_per_vector"] == "1536"
    assert v["total_bytes_per_vector"] == "1584"
    assert float(v["size_multiplier"]) == pytest.approx(1536 / 1584, abs=1e-3)
    assert v["fast_size_multiplier"] == "32"
    rows = [_cell("classic", 1536, 100.0, "baseline"), _cell("binary", 48, 97.0), rescored]
    table = budget_table(rows)
    head = table.splitlines()[0]
    assert "footprint" in head and "selected on test" in head
    assert "rescore" not in table
    by_m = {line.split(" | ")[2]: line for line in table.splitlines()[2:]}
    assert "binary: 97.00 [96.00, 98.00] (32)" in by_m["32"]
    fast = {line.split(" | ")[2]: line for line in budget_table(rows, by="fast").splitlines()[2:]}
    assert "searched tier" in budget_table(rows, by="fast")
    assert "binary/rescore4: 99.00" in fast["32"]


def test_budget_table_picks_the_best_that_fits_each_budget_next_to_the_seed_presets():
    """A budget m holds every technique at least m times smaller than float: a row with a
    size of its own (381-byte rotated-scalar) competes in every budget it fits."""
    from embedbench.tables import budget_table

    rows = [
        _cell("classic", 1536, 100.0, "baseline"),
        _cell("fp16", 768, 100.0),
        _cell("rotated-scalar", 381, 100.01),
        _cell("scalar", 384, 99.99),
        _cell("binary", 48, 97.0),
        _cell("rotated-binary", 48, 80.0),
        _cell("itq+binary", 48, 98.0),
        _cell("trunc192+binary", 24, 90.0),
        _cell("svd+float32", 1524, 100.0, role="control"),
    ]
    lines = budget_table(rows).splitlines()[2:]
    assert [line.split(" | ")[2] for line in lines] == ["1", "2", "4", "8", "16", "32", "64"]
    by_m = {line.split(" | ")[2]: line for line in lines}
    assert "rotated-scalar: 100.01" in by_m["1"] and "rotated-scalar: 100.01" in by_m["4"]
    assert by_m["4"].split(" | ")[3] == "3072"
    assert "itq+binary: 98.00 [97.00, 99.00] (32)" in by_m["8"]
    assert by_m["32"].endswith("| binary: 97.00 [96.00, 98.00] |")  # the best seed preset
    assert by_m["64"].endswith("| — |")  # no preset at 64×
    assert "svd+float32" not in "\n".join(lines)  # controls are not candidates


def test_markdown_says_the_rotated_presets_rotate_uncentred_vectors(tmp_path):
    from embedbench.tables import markdown

    result = _result(tmp_path)
    result.rows[0].spec = "svd+binary"
    assert "rotate *uncentred* vectors" in markdown(result)


def test_load_run_gives_a_typed_dataframe(tmp_path):
    import embedbench

    result = _result(tmp_path)
    out = write_outputs(result, 1.0, tmp_path / "cache.sqlite")
    df = embedbench.load_run(out)
    assert list(df.columns) == COLUMNS and len(df) == len(result.rows)
    assert df["retention"].dtype.kind == "f" and df["dim"].dtype.kind == "i"
    assert df.loc[df.verdict == "baseline", "ci_mc_error"].isna().all()
    best = df[df.role == "technique"].nlargest(1, "retention")
    assert best["technique"].item() in {r.technique for r in result.rows}


def test_every_column_of_the_table_has_a_role():
    """The schema is declared once (results.py): a cell is (task, provider, model,
    technique) plus the evaluation unit (subset, split); every other column describes or
    measures it, so compare never takes it for identity."""
    from embedbench.results import BASE_KEY, COLUMNS, extra_identity

    assert [c for c in COLUMNS if c in BASE_KEY] == list(BASE_KEY)
    assert extra_identity(COLUMNS) == ["subset", "split"]
