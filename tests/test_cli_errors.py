"""The real `embedbench` console script: exit codes and one-line errors, no tracebacks.

Each run pays the import cost, so all runs start at once in one module fixture and the
tests only read their results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedbench.quantize import PRESETS as SEED_PRESETS

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "embedbench")
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
PRESETS = list(SEED_PRESETS)  # the seed's seven, in table order

BAD_FIELD = """\
name: t
providers: [local:sentence-transformers/all-MiniLM-L6-v2]
tasks: [STSBenchmark]
techniques: [binary]
evaluation:
  bootsrap: 200
"""
TWO_NAMES = """\
name: t
providers: [local:sentence-transformers/all-MiniLM-L6-v2]
tasks: [STSBenchmrk]
techniques: [binry, binary]
"""
TWICE = """\
name: t
providers: [local:sentence-transformers/all-MiniLM-L6-v2]
tasks: [STSBenchmark]
techniques: [binary]
techniques: [scalar]
"""
FAISS_BAD = """\
name: t
providers: [local:sentence-transformers/all-MiniLM-L6-v2]
tasks: [STSBenchmark]
techniques: [binary, "faiss:PQ24", "faiss:bogus", "faiss:HNSW32", turbo5]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad_field.yaml").write_text(BAD_FIELD, encoding="utf-8")
    (tmp / "two_names.yaml").write_text(TWO_NAMES, encoding="utf-8")
    (tmp / "twice.yaml").write_text(TWICE, encoding="utf-8")
    (tmp / "faiss_bad.yaml").write_text(FAISS_BAD, encoding="utf-8")
    (tmp / "garbage.sqlite").write_bytes(b"not a database at all\n" * 50)
    env = {
        **os.environ,
        "MTEB_CACHE": str(tmp / "mteb"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "EMBEDBENCH_CACHE": str(tmp / "default-cache.sqlite"),
    }
    commands = {
        "bad_field": ["validate", str(tmp / "bad_field.yaml")],
        "two_names": ["validate", str(tmp / "two_names.yaml")],
        "twice": ["validate", str(tmp / "twice.yaml")],
        "faiss_bad": ["validate", str(tmp / "faiss_bad.yaml")],
        "missing": ["validate", str(tmp / "nope.yaml")],
        "list_techniques": ["list", "techniques"],
        "quickstart": ["validate", str(QUICKSTART)],
        "garbage_cache": ["cache", "stats", "--cache", str(tmp / "garbage.sqlite")],
    }
    procs = {
        key: subprocess.Popen(
            [EXE, *args],
            cwd=tmp,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for key, args in commands.items()
    }
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[key] = (proc.returncode, stdout, stderr)
    return out


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_console_script_exists():
    assert Path(EXE).is_file() and os.access(EXE, os.X_OK)


def test_validate_bad_field_exits_2_with_one_line(runs):
    code, stdout, stderr = runs["bad_field"]
    assert code == 2
    line = _one_error_line(stderr)
    assert "evaluation.bootsrap" in line and "did you mean 'bootstrap'" in line
    assert stdout == ""


def test_validate_missing_file_exits_2(runs):
    code, stdout, stderr = runs["missing"]
    assert code == 2
    line = _one_error_line(stderr)
    assert "nope.yaml" in line and "does not exist" in line


def test_list_techniques_shows_presets(runs):
    code, stdout, stderr = runs["list_techniques"]
    assert code == 0, stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    assert lines[0] == "techniques:"
    assert lines[1].split()[:3] == ["technique", "bits/dim", "size"]
    table = lines[2 : lines.index(next(ln for ln in lines if "fitted: learns" in ln))]
    names = {ln.split()[0] for ln in table}
    assert set(PRESETS) <= names
    assert {"float32", "int8"} <= names


def test_list_techniques_shows_size_fitting_and_a_description():
    """Per technique: bits/dim and size × for the stated dimension, fitted, random, a line."""
    from click.testing import CliRunner

    from embedbench import api
    from embedbench.cli import cli

    out = CliRunner().invoke(cli, ["list", "techniques"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "size × (d=384)" in lines[1] and "fitted" in lines[1] and "random" in lines[1]
    rows = {ln.split()[0]: ln.split(maxsplit=5) for ln in lines[2:]}
    assert rows["binary"][1:5] == ["1", "32", "no", "no"]
    assert rows["int8"][1:5] == ["8", "4", "yes", "no"]
    assert rows["rotated-binary"][1:5] == ["1", "32", "yes", "no"]
    assert rows["fp16"][1:5] == ["16", "2", "no", "no"]
    assert "Seed preset, the same as svd+binary" in rows["rotated-binary"][5]
    assert "half precision" in rows["fp16"][5]
    # the transforms that compose with a code: fitted, random, keeps cosines
    assert rows["haar"][1:4] == ["no", "yes", "yes"] and "Haar" in " ".join(rows["haar"][4:])
    assert rows["trunc<k>"][1:4] == ["no", "no", "no"]
    techniques, transforms = api.technique_details(768)
    assert {t.name for t in techniques} == set(api.catalog("techniques"))
    by_name = {t.name: t for t in techniques}
    assert by_name["int4"].dim == 768 and by_name["int4"].bits_per_dim == 4
    assert by_name["int4"].size_multiplier == 8
    assert by_name["native-binary"].description and not by_name["native-binary"].learns
    assert all(t.description for t in [*techniques, *transforms])


def test_validate_quickstart_ok(runs):
    code, stdout, stderr = runs["quickstart"]
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "ok, 14 cells" in stdout
    assert "1 providers × 2 tasks × 7 techniques" in stdout


def test_cache_stats_on_non_sqlite_file_is_one_line(runs):
    code, stdout, stderr = runs["garbage_cache"]
    assert code in (1, 2)
    line = _one_error_line(stderr)
    assert "garbage.sqlite" in line


def test_validate_names_every_mistake_in_one_pass(runs):
    """A mistyped task and a mistyped technique: both named, a line each, exit 2."""
    code, stdout, stderr = runs["two_names"]
    assert code == 2 and "Traceback" not in stderr and stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert "'binry' (did you mean 'binary'?)" in lines[0]
    assert "'STSBenchmrk' (did you mean 'STSBenchmark'?)" in lines[1]


def test_a_key_written_twice_is_a_user_error(runs):
    code, _, stderr = runs["twice"]
    assert code == 2
    line = _one_error_line(stderr)
    assert "key 'techniques' is written twice (lines 4 and 5)" in line


def test_validate_names_what_faiss_said_for_each_bad_codec(runs):
    """A factory string faiss cannot parse, one that is no standalone codec (known only
    once the model's dimension is), and an unknown TurboQuant width: a line each."""
    code, _, stderr = runs["faiss_bad"]
    assert code == 2 and "Traceback" not in stderr
    lines = stderr.splitlines()
    assert any("faiss:bogus" in x and "could not parse index string bogus" in x for x in lines)
    assert any("unknown technique 'turbo5'" in x and "turbo3.5" in x for x in lines)
    assert not any("techniques: faiss:PQ24" in x for x in lines)  # a good one
