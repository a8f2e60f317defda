"""Issue 9: nothing paid for is lost, every fault is one line, no secret is written.

Real boto3 and cohere clients against the loopback fake server, real sqlite files,
real data files; each fault is produced, not simulated by a mock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from embedbench import api
from embedbench.cache import CacheError, CacheWriteError, EmbeddingCache, text_key
from embedbench.config import load_config
from embedbench.errors import EmbedbenchError, ProviderError, UserError
from embedbench.providers.base import FetchStats, fetch
from embedbench.records import remove_stale_temporaries
from embedbench.secrets import mask, redact, remember
from tests.conftest import write_config
from tests.test_providers_cloud import (  # noqa: F401 (fixtures)
    FAST,
    bedrock,
    cache,
    cohere,
    offline_env,
    server,
    texts_n,
)

COHERE_BR = "cohere.embed-english-v3"
TITAN1 = "amazon.titan-embed-text-v1"


def _cached(store: EmbeddingCache, provider, texts: list[str]) -> set[str]:
    ns, _ = provider.namespace("query")
    return {texts[i] for i in store.get_many(ns, texts)}


def _answered(fake, bad: str) -> set[str]:
    """Texts of every request the server answered (those holding `bad` were rejected)."""
    return {t for c in fake.log if bad not in c.texts and c.fault is None for t in c.texts}


# --- 2. paid-for embeddings are never thrown away ---------------------------------------


@pytest.mark.parametrize(
    ("make", "n", "options"),
    [
        ("cohere", 400, {"batch_size": 32, "n_jobs": 4}),
        ("cohere_br", 400, {"batch_size": 32, "n_jobs": 4}),
        ("titan", 40, {"n_jobs": 4}),
    ],
)
def test_one_rejected_text_keeps_every_answered_text_and_rerun_pays_only_the_rest(
    server,  # noqa: F811
    cache,  # noqa: F811
    make,
    n,
    options,
):
    p = {
        "cohere": lambda: cohere(server, **options),
        "cohere_br": lambda: bedrock(server, COHERE_BR, **options),
        "titan": lambda: bedrock(server, TITAN1, **options),
    }[make]()
    texts = texts_n(n)
    bad = texts[n // 2]
    server.reject = {bad}
    with pytest.raises(UserError) as info:
        fetch(p, texts, "query", cache)
    msg = str(info.value)
    assert "\n" not in msg and f"rejected: text {n // 2} of {n} ({bad!r})" in msg
    answered = _answered(server, bad)
    assert len(answered) >= n // 4  # batches in flight and the rejected batch's others
    assert _cached(cache, p, texts) == answered  # every answered text, nothing else
    # the rerun (the service now accepts the text) pays only for what was never answered
    server.reset()
    server.reject = set()
    stats = FetchStats()
    out = fetch(p, texts, "query", cache, stats)
    sent = [t for c in server.log for t in c.texts]
    assert sorted(sent) == sorted(set(texts) - answered)
    assert stats.texts_embedded == len(sent) and stats.texts_from_cache == len(answered)
    assert out.shape[0] == n and np.isfinite(out).all()


def test_a_request_rejected_whatever_its_texts_names_no_text(server, cache):  # noqa: F811
    p = cohere(server, batch_size=8, n_jobs=1, output_dimension=None)
    server.inject("400", "400", "400")  # the batch, then both halves
    with pytest.raises(UserError, match="injected validation error") as info:
        fetch(p, texts_n(8), "query", cache)
    assert "rejected:" not in str(info.value) and server.calls == 3


def test_a_hanging_server_times_out_in_one_line_and_keeps_earlier_batches(server, cache):  # noqa: F811
    server.hang_seconds = 3
    p = cohere(server, batch_size=4, n_jobs=1, timeout=0.3, max_attempts=2)
    texts = texts_n(12)
    server.inject("ok", "hang", "hang")
    with pytest.raises(ProviderError, match="Timeout after 2 attempts") as info:
        fetch(p, texts, "query", cache)
    assert "\n" not in str(info.value)
    assert _cached(cache, p, texts) == set(texts[:4])
    assert server.calls == 3  # nothing sent after the failure


def test_full_disk_is_one_line_exit_1_and_keeps_committed_batches(server, tmp_path):  # noqa: F811
    p = cohere(server, batch_size=50, n_jobs=1)
    texts = texts_n(400)
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        fetch(p, texts[:50], "query", c)
        pages = c._db.execute("PRAGMA page_count").fetchone()[0]
        c._db.execute(f"PRAGMA max_page_count = {pages + 60}")  # sqlite's own SQLITE_FULL
        with pytest.raises(CacheWriteError, match="disk is full") as info:
            fetch(p, texts, "query", c)
        assert info.value.exit_code == 1 and "\n" not in str(info.value)
        kept = _cached(c, p, texts)
    assert set(texts[:100]) <= kept and len(kept) < len(texts)


def test_two_runs_on_one_cold_cache_do_not_pay_twice(server, tmp_path):  # noqa: F811
    """Each batch re-checks the cache just before it is sent: runs going opposite ways
    meet in the middle and pay for little more than every text once."""
    server.latency = 0.02
    texts = texts_n(200)
    path = tmp_path / "shared.sqlite"
    outs = {}

    def one(name: str, order: list[str]) -> None:
        with EmbeddingCache(path) as c:
            outs[name] = dict(
                zip(
                    order,
                    fetch(cohere(server, batch_size=10, n_jobs=1), order, "query", c),
                    strict=True,
                )
            )

    a = threading.Thread(target=one, args=("a", texts))
    a.start()
    one("b", texts[::-1])
    a.join()
    assert server.texts_received <= len(texts) + 2 * 10  # not 2 × 200
    assert all(np.array_equal(outs["a"][t], outs["b"][t]) for t in texts)


# --- 3. the cache: schema, damage, read-only, bad rows -----------------------------------


def test_another_schema_is_refused_at_open(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE embeddings (k TEXT, v BLOB)")
    with pytest.raises(CacheError, match="another schema") as info:
        EmbeddingCache(path)
    assert info.value.exit_code == 2


def test_cache_parent_path_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CacheError, match="cannot create its folder"):
        EmbeddingCache(tmp_path / "afile" / "c.sqlite")


def test_damaged_cache_is_one_line(server, tmp_path):  # noqa: F811
    path = tmp_path / "c.sqlite"
    p = cohere(server)
    texts = texts_n(300)
    with EmbeddingCache(path) as c:
        fetch(p, texts, "query", c)
    data = bytearray(path.read_bytes())
    data[8192:] = b"\xff" * (len(data) - 8192)  # pages beyond the schema overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="damaged|not a valid") as info:
        with EmbeddingCache(path) as c:
            fetch(p, texts, "query", c)
    assert "\n" not in str(info.value)


def test_bad_rows_read_back_are_fetched_again_and_replaced(server, cache):  # noqa: F811
    p = cohere(server)
    texts = texts_n(10)
    first = fetch(p, texts, "query", cache)
    ns, _ = p.namespace("query")
    nan = np.full(1024, np.nan, dtype=np.float32).tobytes()
    with sqlite3.connect(cache.path) as db:
        db.execute("UPDATE embeddings SET vec = ? WHERE key = ?", (nan, text_key(texts[2])))
        db.execute("UPDATE embeddings SET vec = ? WHERE key = ?", (b"12345", text_key(texts[5])))
    server.reset()
    stats = FetchStats()
    again = fetch(p, texts, "query", cache, stats)
    assert sorted(t for c in server.log for t in c.texts) == sorted([texts[2], texts[5]])
    assert np.array_equal(first, again) and stats.texts_from_cache == 8
    assert len(cache.get_many(ns, texts)) == 10  # replaced in place


@pytest.fixture
def immutable():
    """`chattr +i` paths (read-only even for root), undone after the test."""
    paths: list[Path] = []

    def make(*targets: Path) -> None:
        for t in targets:
            if subprocess.run(["chattr", "+i", str(t)], capture_output=True).returncode:
                pytest.skip("chattr +i is not available here")
            paths.append(t)

    yield make
    for t in reversed(paths):
        subprocess.run(["chattr", "-i", str(t)], capture_output=True)


def test_read_only_cache_serves_a_warm_run_and_refuses_before_paying(server, tmp_path, immutable):  # noqa: F811
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "c.sqlite"
    p = cohere(server)
    texts = texts_n(20)
    with EmbeddingCache(path) as c:
        warm = fetch(p, texts, "query", c)
    before = sorted(x.name for x in folder.iterdir())
    immutable(path, folder)  # the file and its folder: no -wal or -shm can be made
    server.reset()
    with EmbeddingCache(path) as c:
        assert not c.writable
        assert np.array_equal(fetch(p, texts, "query", c), warm)
        with pytest.raises(CacheError, match="read-only") as info:
            fetch(p, texts + ["a text not in the cache"], "query", c)
    assert info.value.exit_code == 2 and server.calls == 0
    assert sorted(x.name for x in folder.iterdir()) == before


# --- 3. data files, output folder, options: one line before any provider call ------------

STS_ROWS = [
    {"sentence1": f"a man plays {i}", "sentence2": f"a man plays guitar {i}", "score": i % 5}
    for i in range(30)
]


def _sweep_config(tmp_path: Path, server, **extra) -> Path:  # noqa: F811
    cfg = {
        "name": "hard",
        "providers": [
            {
                "name": "cohere",
                "model": "embed-english-light-v3.0",
                "options": {"base_url": server.url, **FAST},
            }
        ],
        "tasks": ["STSBenchmark"],
        "techniques": ["binary"],
        "calibration": {"max_texts": 20},
        "evaluation": {"bootstrap": 100},
        "output": str(tmp_path / "out"),
        "cache": str(tmp_path / "cache.sqlite"),
        **extra,
    }
    return write_config(tmp_path / "c.yaml", cfg)


def _data(tmp_path: Path, test_lines: list[bytes] | None = None) -> Path:
    folder = tmp_path / "data" / "STSBenchmark"
    folder.mkdir(parents=True)
    lines = [json.dumps(r).encode() for r in STS_ROWS]
    (folder / "train.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    body = lines[:5] + (test_lines or []) + lines[5:10]
    (folder / "test.jsonl").write_bytes(b"\n".join(body) + b"\n")
    return folder.parent


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([b"\xff\xfe not utf-8"], "test.jsonl:6: not UTF-8"),
        ([b"[1, 2, 3]"], "test.jsonl:6: expected a JSON object per line, got list"),
        ([b'{"sentence1": "x", "sentence2": "y"'], "test.jsonl:6: not valid JSON"),
        ([b'{"sentence1": null, "sentence2": "y", "score": 1}'], "'sentence1' must be a non-empty"),
        ([b'{"sentence1": "x", "score": 1}'], "test.jsonl:6: no 'sentence2' column"),
        ([b'{"sentence1": "x", "sentence2": "y", "score": "high"}'], "'score' must be a finite"),
        ([b'{"sentence1": "x", "sentence2": 7, "score": 1}'], "'sentence2' must be a non-empty"),
    ],
)
def test_bad_data_file_is_one_line_before_any_provider_call(server, tmp_path, lines, problem):  # noqa: F811
    data = _data(tmp_path, lines)
    with pytest.raises(UserError) as info:
        api.run(_sweep_config(tmp_path, server), data_dir=data)
    assert problem in str(info.value) and "\n" not in str(info.value)
    assert server.calls == 0


def test_empty_data_file_is_one_line(server, tmp_path):  # noqa: F811
    data = _data(tmp_path)
    (data / "STSBenchmark" / "test.jsonl").write_bytes(b"\n")
    with pytest.raises(UserError, match="test.jsonl: holds no rows"):
        api.run(_sweep_config(tmp_path, server), data_dir=data)
    assert server.calls == 0


def test_output_folder_problems_before_any_provider_call(server, tmp_path, immutable):  # noqa: F811
    data = _data(tmp_path)
    config = _sweep_config(tmp_path, server)
    (tmp_path / "a-file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    immutable(locked)
    for output, match in [
        (tmp_path / "a-file", "is a file"),
        (tmp_path / ("x" * 300), "cannot be written"),
        (tmp_path / "a-file" / "run", "cannot be written"),
        (locked / "run", "cannot be written"),
    ]:
        with pytest.raises(UserError, match=match):
            api.run(config, data_dir=data, output=output)
    assert server.calls == 0


def test_nan_score_fails_the_run_and_writes_no_number(server, tmp_path):  # noqa: F811
    server.same_vector = True  # every similarity equal: Spearman is undefined
    with pytest.raises(EmbedbenchError, match="mteb scored nan") as info:
        api.run(_sweep_config(tmp_path, server), data_dir=_data(tmp_path))
    assert info.value.exit_code == 1
    out = tmp_path / "out"
    assert not (out / "retention.csv").exists() and not list((out / "cells").glob("*.json"))


def test_trunc_beyond_the_dimension_fails_before_evaluating(server, tmp_path):  # noqa: F811
    config = _sweep_config(tmp_path, server, techniques=["binary", "trunc1000+binary"])
    with pytest.raises(UserError, match="trunc1000\\+binary does not apply to cohere"):
        api.validate(config)  # the provider knows its dimension (384)
    assert server.calls == 0


def test_users_temporaries_are_left_alone(tmp_path):
    (tmp_path / ".notes.tmp").write_text("mine")
    (tmp_path / ".retention.csv.tmp").write_text("also mine")
    (tmp_path / ".manifest.json.123.embedbench.tmp").write_text("a killed run's")
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp", ".retention.csv.tmp"]


# --- 3. report on odd runs ---------------------------------------------------------------

QUICKSTART = Path(__file__).resolve().parent.parent / "results" / "quickstart"


@pytest.mark.parametrize("case", ["dollar", "huge"])
def test_report_on_dollar_names_and_huge_values(tmp_path, case):
    import csv

    rows = list(csv.DictReader((QUICKSTART / "retention.csv").open(encoding="utf-8")))
    if case == "dollar":
        rows[0]["task"] = rows[1]["task"] = "ST$S$ $x^2$"
        rows[1]["technique"] = "$sc$al_e"
    else:
        rows[1].update(retention="1e308", ci_low="-1e308", ci_high="1e308")
        rows[2]["retention"] = "-1e308"
    with (tmp_path / "retention.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    paths = api.report(tmp_path)
    assert [p.name for p in paths] == ["tradeoff.png", "retention_bars.png", "report.html"]
    assert all(p.stat().st_size > 1000 for p in paths)


# --- 1. secrets: redaction helpers -------------------------------------------------------


def test_redaction_covers_keys_tokens_and_url_user_info():
    cfg = {
        "providers": [
            {
                "options": {
                    "api_key": "sk-live-123456",
                    "aws_session_token": "tok-abcdef",
                    "endpoint_url": "http://me:hunter22@127.0.0.1:9/x",
                    "max_tokens": 512,
                }
            }
        ]
    }
    out = redact(cfg)["providers"][0]["options"]
    assert out == {
        "api_key": "***",
        "aws_session_token": "***",
        "endpoint_url": "http://***@127.0.0.1:9/x",
        "max_tokens": 512,  # not a secret: it changes the vectors
    }
    remember(cfg)
    line = mask("failed: sk-live-123456 / tok-abcdef / hunter22 at http://me:hunter22@h")
    assert "sk-live" not in line and "tok-abc" not in line and "hunter22" not in line


def test_secret_is_out_of_the_hash_and_the_cells(tmp_path):
    def cfg(key: str) -> Path:
        path = tmp_path / f"{key}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "name": "s",
                    "providers": [
                        {
                            "name": "cohere",
                            "model": "embed-english-v3.0",
                            "options": {"api_key": key},
                        }
                    ],
                    "tasks": ["STSBenchmark"],
                    "techniques": ["binary"],
                }
            )
        )
        return path

    a, b = load_config(cfg("key-one-aaaa")), load_config(cfg("key-two-bbbb"))
    assert a.hash() == b.hash() and a.providers[0].key == b.providers[0].key
    assert "key-one" not in str(a.canonical())
