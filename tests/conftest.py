"""Shared fixtures: the real evaluation data, an isolated environment, the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# before anything imports huggingface_hub (it reads these once): never wait on the hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _data_dir() -> Path:
    value = os.environ.get("EMBEDBENCH_DATA_DIR") or str(ROOT.parent / "shared" / "data")
    return Path(value).resolve()


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    """Offline, with mteb's and embedbench's caches in a temp folder, never the user's."""
    home = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        MTEB_CACHE=str(home / "mteb"),
        EMBEDBENCH_CACHE=str(home / "embeddings.sqlite"),
        EMBEDBENCH_DATA_DIR=str(_data_dir()),
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real STSBenchmark / Banking77Classification / SciFact files (required)."""
    path = _data_dir()
    if not (path / "STSBenchmark" / "test.jsonl").is_file():
        pytest.fail(f"evaluation data not found under {path}; set EMBEDBENCH_DATA_DIR")
    return path


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 1200
) -> subprocess.CompletedProcess[str]:
    """Run the installed `embedbench` console script."""
    exe = str(Path(sys.executable).parent / "embedbench")
    return subprocess.run(
        [exe, *args],
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path: Path, cfg: dict | str) -> Path:
    """A YAML config file (a mapping dumped in its key order, or text as given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path
