"""Records are keyed by the code that decides them; the manifest says what made a run."""

from __future__ import annotations

import shutil
from pathlib import Path

from embedbench import records


def test_code_fingerprint_changes_with_any_source_change(tmp_path):
    pkg = tmp_path / "embedbench"
    shutil.copytree(records.PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = records.code_fingerprint(pkg)
    assert before == records.code_fingerprint(records.PACKAGE)
    quantize = pkg / "quantize" / "codes.py"
    quantize.write_text(quantize.read_text() + "\n# a changed quantizer\n")
    assert records.code_fingerprint(pkg) != before


def test_evaluation_keys_change_with_the_code(monkeypatch, tmp_path):
    """A changed quantizer (any source change) never resumes a stale score."""
    from types import SimpleNamespace

    from embedbench import grid, runner
    from embedbench.config import parse_config

    config = parse_config(
        {
            "name": "k",
            "providers": ["local:m"],
            "tasks": ["STSBenchmark"],
            "techniques": ["binary"],
            "output": str(tmp_path / "out"),
        }
    )
    lt = SimpleNamespace(
        name="STSBenchmark",
        source={"kind": "hub"},
        units=[("default", "test")],
        calibration_source="",
    )
    p = config.providers[0]
    key = grid.key(config, p, lt, "binary", 0)
    assert runner.CODE == grid.CODE == records.code_fingerprint()
    assert grid.key(config, p, lt, "binary", 1) != key
    monkeypatch.setattr(grid, "CODE", "another code")
    assert grid.key(config, p, lt, "binary", 0) != key


def test_manifest_records_commit_and_dirty_tree(tmp_path):
    """Taken at the start of a run: the run's own outputs never make the tree dirty."""
    import subprocess

    git = records.git_state()
    assert set(git) == {"commit", "dirty"}
    if Path(records.PACKAGE.parent / ".git").exists():
        assert git["commit"] and isinstance(git["dirty"], bool)

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run(["git", "add", "a.txt"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"],
        cwd=repo,
        check=True,
    )
    clean = records.git_state(repo)
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    (repo / "a.txt").write_text("b")
    assert records.git_state(repo)["dirty"] is True
