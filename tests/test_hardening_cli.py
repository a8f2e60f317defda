"""Issue 9 through the real `embedbench` console script: no secret in any file or line,
one line per fault, SIGTERM handled like Ctrl-C with no worker left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_config
from tests.test_providers_cloud import FAST, offline_env, server  # noqa: F401 (fixtures)

EXE = str(Path(sys.executable).parent / "embedbench")
API_KEY = "sk-issue9-SECRET-api-key-0042"
URL_PASSWORD = "pw-issue9-SECRET-in-url"
SECRETS = (API_KEY, URL_PASSWORD)
MINILM = "local:sentence-transformers/all-MiniLM-L6-v2"


_write = write_config


def _error_line(stderr: str) -> str:
    """The one `error:` line of stderr (progress bars may come before it)."""
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def _no_secret(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"secret found in {where}"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "COHERE_API_KEY")}
    return env


# --- 1. a run with secrets in its config leaves no trace of them --------------------------


@pytest.mark.slow
def test_secrets_never_reach_a_file_or_a_line(server, tmp_path, data_dir):  # noqa: F811
    url = server.url.replace("http://", f"http://someone:{URL_PASSWORD}@")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".notes.tmp").write_text("the user's own file")
    cfg = {
        "name": "secrets",
        "providers": [
            {
                "name": "cohere",
                "model": "embed-english-light-v3.0",
                "options": {"api_key": API_KEY, "base_url": server.url, "n_jobs": 2, **FAST},
            },
            {
                "name": "bedrock",
                "model": "cohere.embed-english-v3",
                "options": {"endpoint_url": url, "n_jobs": 2, **FAST},
            },
        ],
        "tasks": ["STSBenchmark"],
        "techniques": ["binary"],
        "calibration": {"max_texts": 50},
        "evaluation": {"bootstrap": 100},
        "output": str(out),
        "cache": str(tmp_path / "cache.sqlite"),
    }
    config = _write(tmp_path / "secrets.yaml", cfg)
    env = _env()
    runs = {
        "validate": run_cli("validate", str(config), env=env),
        "plan": run_cli("plan", str(config), "--data-dir", str(data_dir), env=env),
        "run": run_cli("run", str(config), "--data-dir", str(data_dir), env=env),
    }
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        _no_secret(proc.stdout + proc.stderr, f"`{name}` output")
    # the server really got the key: it was used, just never written
    assert any(c.headers.get("authorization") == f"Bearer {API_KEY}" for c in server.log)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"manifest.json", "retention.csv", "report.html"} <= {p.name for p in files}
    for p in files:
        _no_secret(p.read_bytes().decode("utf-8", "replace"), str(p))
    _no_secret((tmp_path / "cache.sqlite").read_bytes().decode("latin-1"), "the cache")
    manifest = json.loads((out / "manifest.json").read_text())
    providers = manifest["config"]["providers"]
    assert providers[0]["options"]["api_key"] == "***"
    assert providers[1]["options"]["endpoint_url"].startswith("http://***@127.0.0.1:")
    assert (out / ".notes.tmp").read_text() == "the user's own file"  # left alone

    # a server echoing the credentials back in a 400: the one error line masks them
    server.inject("echo_auth")
    failed = run_cli(
        "run",
        str(config),
        "--data-dir",
        str(data_dir),
        "--cache",
        str(tmp_path / "c2.sqlite"),
        env=env,
    )
    assert failed.returncode == 2
    line = _error_line(failed.stderr)
    assert "rejected the request" in line and "Authorization" in line
    _no_secret(failed.stdout + failed.stderr, "the echoed error")


# --- 3. one line at validate, exit 2 -----------------------------------------------------


def _base(**extra) -> dict:
    return {
        "name": "v",
        "providers": [MINILM],
        "tasks": ["STSBenchmark"],
        "techniques": ["binary"],
        **extra,
    }


COHERE = {"name": "cohere", "model": "embed-english-v3.0"}
BAD_CONFIGS = {
    "timeout_type": (
        _base(providers=[{**COHERE, "options": {"timeout": "abc", "api_key": API_KEY}}]),
        "timeout must be a number greater than 0; got 'abc'",
    ),
    "timeout_negative": (
        _base(providers=[{**COHERE, "options": {"timeout": -5}}]),
        "timeout must be a number greater than 0; got -5",
    ),
    "key_type": (
        _base(providers=[{**COHERE, "options": {"api_key": 12345678}}]),
        "api_key must be a non-empty string",
    ),
    "batch_size_0": (
        _base(
            providers=[{"name": "local", "model": "all-MiniLM-L6-v2", "options": {"batch_size": 0}}]
        ),
        "batch_size must be a positive integer; got 0",
    ),
    "cuda": (
        _base(
            providers=[
                {"name": "local", "model": "all-MiniLM-L6-v2", "options": {"device": "cuda"}}
            ]
        ),
        "device 'cuda' is not available on this machine",
    ),
    "empty_model": (_base(providers=[{"name": "local", "model": ""}]), "providers[0].model"),
    "seed": (
        _base(evaluation={"seed": -1}),
        "evaluation.seed: Input should be greater than or equal to 0",
    ),
    "max_texts": (_base(calibration={"max_texts": 1}), "calibration.max_texts"),
    "twice": (
        _base(providers=[MINILM, MINILM]),
        "listed twice: local:sentence-transformers/all-MiniLM-L6-v2",
    ),
    "trunc": (
        _base(techniques=["binary", "trunc1000+binary"]),
        "trunc1000+binary does not apply to local:sentence-transformers/all-MiniLM-L6-v2",
    ),
    "provider_shape": (
        _base(providers={"name": "cohere", "options": {"api_key": API_KEY}}),
        "providers: Input should be a valid list",
    ),
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validate")
    procs = {
        key: subprocess.Popen(
            [EXE, "validate", str(_write(tmp / f"{key}.yaml", cfg))],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for key, (cfg, _) in BAD_CONFIGS.items()
    }
    return {key: (p.wait(timeout=300), *p.communicate()) for key, p in procs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(BAD_CONFIGS))
def test_validate_rejects_in_one_line(validated, key):
    code, stdout, stderr = validated[key]
    assert code == 2, stderr
    line = _error_line(stderr)
    assert BAD_CONFIGS[key][1] in line, line
    _no_secret(stdout + stderr, key)


# --- 3. the last-resort handler ----------------------------------------------------------

BROKEN = f"""
import sys
from embedbench import api, cli
from embedbench.secrets import remember
remember({{"api_key": "{API_KEY}"}})
def broken(path):
    raise RuntimeError("unexpected, with {API_KEY} inside")
api.validate = broken
sys.argv = ["embedbench", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("debug", [False, True])
def test_last_resort_handler_is_one_line_and_masks_secrets(tmp_path, debug):
    env = {**os.environ, **({"EMBEDBENCH_DEBUG": "1"} if debug else {})}
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN, "validate", "x.yaml"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert ("Traceback" in proc.stderr) is debug
    if not debug:
        line = _error_line(proc.stderr)
        assert (
            "internal error, RuntimeError: unexpected, with *** inside" in line
            and "--debug" in line
        )
    _no_secret(proc.stderr, "the internal error")


# --- 4. SIGTERM: one line, no worker left, resumable --------------------------------------


def _children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo += list(kids)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


@pytest.mark.slow
def test_sigterm_stops_workers_in_one_line_and_the_run_resumes(tmp_path, data_dir):
    config = _write(
        tmp_path / "term.yaml",
        _base(
            name="term",
            techniques=["classic", "scalar", "binary", "ternary", "int4", "2bit", "haar+binary"],
            calibration={"max_texts": 200},
            evaluation={"bootstrap": 100},
            executor={"backend": "processes", "n_jobs": 2},
            output=str(tmp_path / "out"),
            cache=str(tmp_path / "cache.sqlite"),
        ),
    )
    proc = subprocess.Popen(
        [EXE, "run", str(config), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) >= 2:  # the evaluation workers are up
            break
        time.sleep(0.2)
    assert proc.poll() is None and workers, "the run ended before its workers started"
    time.sleep(1.0)
    workers |= _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM)") and "rerun to resume" in last
    deadline = time.monotonic() + 20
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(workers), "evaluation workers survived the driver"
    # state is resumable: the rerun embeds nothing and finishes the grid
    again = run_cli("run", str(config), "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "texts embedded 0" in again.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["cells"] == 7 and manifest["evaluations"]["resumed"] >= 1
