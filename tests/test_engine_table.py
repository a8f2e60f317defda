"""`embedbench engines RUN`: the engine presets of a run, a table per engine."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from embedbench.cli import cli
from embedbench.engine_table import engine_table
from tests.test_compare import row, write_run


def _rows(verdicts: dict[str, str]):
    out = []
    for task, fs in (("STSBenchmark", 0.82), ("SciFact", 0.64)):
        out.append(row(task, "classic", "float32", 32, fs, 100, 100, 100))
        for tech, bits, total in (("pgvector:halfvec", 16, 776), ("pgvector:bit", 1, 1608)):
            r = row(task, tech, tech, bits, fs, 99.5, 99.0, 100.0)
            r["verdict"] = verdicts[tech]
            r["role"], r["scope"] = "technique", "task"
            r["total_bytes_per_vector"] = str(total)
            r["fast_size_multiplier"] = r["size_multiplier"]
            r["seed_low"] = r["seed_high"] = ""
            out.append(r)
        out.append(dict(out[-1], technique="binary", spec="binary"))
    for r in out:
        r.setdefault("role", "baseline")
        r.setdefault("scope", "task")
        r.setdefault("total_bytes_per_vector", "1536")
        r.setdefault("fast_size_multiplier", "1")
        r.setdefault("seed_low", "")
        r.setdefault("seed_high", "")
    return out


def test_a_table_per_engine_with_its_verdict_and_sources(tmp_path):
    run = write_run(
        tmp_path / "run", _rows({"pgvector:halfvec": "equivalent", "pgvector:bit": "loss"})
    )
    res = CliRunner().invoke(cli, ["engines", str(run)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.startswith("**pgvector** (0.8)")
    assert "| binary |" not in out  # a plain code is no engine preset
    assert out.count("| pgvector:bit |") == 2 and out.count("| pgvector:halfvec |") == 2
    assert "Verdict: `pgvector:halfvec` is the smallest setting equivalent" in out
    assert "| `pgvector:bit` | pgvector 0.8 | README 'Binary Quantization'" in out


def test_without_an_equivalent_setting_the_verdict_names_the_best_per_task(tmp_path):
    run = write_run(tmp_path / "run", _rows({"pgvector:halfvec": "loss", "pgvector:bit": "loss"}))
    out = CliRunner().invoke(cli, ["engines", str(run)]).output
    assert "Verdict: no setting is equivalent to float on every task; best per task:" in out
    assert CliRunner().invoke(cli, ["engines", str(tmp_path / "nope")]).exit_code == 2


def test_faiss_codecs_are_one_more_engine_at_the_recorded_version(tmp_path):
    rows = _rows({"pgvector:halfvec": "loss", "pgvector:bit": "loss"})
    for task in ("STSBenchmark", "SciFact"):
        r = next(r for r in rows if r["task"] == task and r["technique"] == "pgvector:bit")
        rows.append(
            dict(r, technique="faiss:RaBitQ4", spec="faiss:RaBitQ4", total_bytes_per_vector="212")
        )
    run = write_run(tmp_path / "run", rows)
    out = CliRunner().invoke(cli, ["engines", str(run)]).output
    assert "**faiss** (version not recorded)" in out
    assert out.count("| faiss:RaBitQ4 | ") == 2 and "| `faiss:RaBitQ4` |" not in out
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["versions"]["faiss-cpu"] = "1.15.1"
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert "**faiss** (faiss-cpu 1.15.1)" in CliRunner().invoke(cli, ["engines", str(run)]).output


def test_readme_engine_tables_are_the_output_for_results_engines():
    """README's "Which database setting?" tables are `embedbench engines results/engines`
    verbatim (results/engines is committed), not typed."""
    root = Path(__file__).resolve().parent.parent
    generated = engine_table(root / "results" / "engines")
    assert "**faiss** (faiss-cpu " in generated and "milvus:rabitq4" in generated
    assert generated in (root / "README.md").read_text(encoding="utf-8")
