"""The sqlite embedding cache and the one fetch path through it (`providers.base.fetch`)."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedbench.cache import CacheError, EmbeddingCache, namespace_of, text_key
from embedbench.cli import cli
from embedbench.errors import EmbedbenchError, ProviderError
from embedbench.providers.base import Batch, FetchStats, Provider, fetch

DIM = 8


def vec_of(text: str, dim: int = DIM) -> np.ndarray:
    """A deterministic vector per text, so any mix-up of order shows."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class Recorder(Provider):
    """A real provider: deterministic vectors, every call recorded, faults on request."""

    family = "rec"

    def __init__(
        self,
        model: str = "m",
        batch_size: int = 4,
        fail_on_call: int | None = None,
        bad: str | None = None,
        dim: int | None = None,
        **options,
    ):
        super().__init__(model)
        self.params = options  # request parameters: part of the cache key
        self.batch_size = batch_size
        self.fail_on_call = fail_on_call
        self.bad = bad
        self.dim = dim
        self.calls: list[list[str]] = []

    def request_params(self, purpose):
        return {"purpose": purpose, **self.params}

    def expected_dim(self):
        return self.dim

    def embed_batch(self, texts, purpose):
        self.calls.append(list(texts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("provider down")
        vecs = np.stack([vec_of(t) for t in texts])
        if self.bad == "dim":
            vecs = vecs[:, :-1]
        elif self.bad == "nan":
            vecs[-1, 0] = np.nan
        elif self.bad == "inf":
            vecs[0, 0] = np.inf
        elif self.bad == "count":
            vecs = vecs[:-1]
        return Batch(vectors=vecs, tokens=len(texts))

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def _count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        yield c


# --- put / get ---------------------------------------------------------------------------


def test_put_get_roundtrip_exact(cache):
    rng = np.random.default_rng(0)
    texts = ["a", "b", "ünïcode ✓", ""]
    V = rng.standard_normal((4, 5)).astype(np.float32)
    V[0, 0] = np.float32(1e-38)  # subnormal-ish and exact bits must survive
    cache.put_many("ns", texts, V)
    got = cache.get_many("ns", texts)
    assert sorted(got) == [0, 1, 2, 3]
    for i in range(4):
        assert got[i].dtype == np.float32
        assert got[i].tobytes() == V[i].tobytes()


def test_key_covers_namespace_and_exact_text(cache):
    ns_a, _ = namespace_of({"provider": "rec", "model": "m", "dimensions": 256})
    ns_b, _ = namespace_of({"provider": "rec", "model": "m", "dimensions": 512})
    ns_a2, _ = namespace_of({"dimensions": 256, "model": "m", "provider": "rec"})
    assert ns_a != ns_b
    assert ns_a == ns_a2  # parameter order does not matter
    cache.put_many(ns_a, ["hello"], np.ones((1, 3), np.float32))
    cache.put_many(ns_b, ["hello"], np.full((1, 3), 2, np.float32))
    assert cache.get_many(ns_a, ["hello"])[0].tolist() == [1, 1, 1]
    assert cache.get_many(ns_b, ["hello"])[0].tolist() == [2, 2, 2]
    # text is matched exactly: trailing space, case, unicode normalisation all differ
    assert cache.get_many(ns_a, ["hello ", "Hello", " hello"]) == {}
    assert text_key("é") != text_key("e\u0301")


def test_get_many_duplicates_and_missing_positions(cache):
    cache.put_many("ns", ["x", "y"], np.arange(6, dtype=np.float32).reshape(2, 3))
    got = cache.get_many("ns", ["y", "z", "x", "y"])
    assert sorted(got) == [0, 2, 3]
    assert got[0].tolist() == got[3].tolist() == [3, 4, 5]
    assert got[2].tolist() == [0, 1, 2]


def test_get_many_more_texts_than_one_lookup_chunk(cache):
    texts = [f"t{i}" for i in range(1234)]
    V = np.stack([vec_of(t, 2) for t in texts])
    cache.put_many("ns", texts, V)
    got = cache.get_many("ns", texts[::-1])
    assert len(got) == 1234
    assert np.array_equal(np.stack([got[i] for i in range(1234)]), V[::-1])


# --- fetch -------------------------------------------------------------------------------


def test_fetch_second_time_is_free_and_identical(cache):
    texts = [f"text {i}" for i in range(10)]
    p = Recorder()
    s1 = FetchStats()
    first = fetch(p, texts, "sts", cache, s1)
    assert first.shape == (10, DIM) and first.dtype == np.float32
    assert np.array_equal(first, np.stack([vec_of(t) for t in texts]))
    assert len(p.calls) == 3  # ceil(10 / 4)
    assert s1.as_dict() == {"texts_embedded": 10, "texts_from_cache": 0, "calls": 3, "tokens": 10}

    p2 = Recorder()
    s2 = FetchStats()
    second = fetch(p2, texts, "sts", cache, s2)
    assert p2.calls == []
    assert second.tobytes() == first.tobytes()
    assert s2.as_dict() == {"texts_embedded": 0, "texts_from_cache": 10, "calls": 0, "tokens": 0}


def test_fetch_dedups_and_keeps_order(cache):
    texts = ["b", "a", "b", "c", "a", "a", "d"]
    p = Recorder(batch_size=2)
    stats = FetchStats()
    out = fetch(p, texts, "sts", cache, stats)
    assert sorted(p.embedded) == ["a", "b", "c", "d"]  # each unique text once
    assert np.array_equal(out, np.stack([vec_of(t) for t in texts]))
    assert stats.texts_embedded == 4 and stats.texts_from_cache == 0

    # partly cached: only the new texts are embedded, the cached ones counted once each
    p2 = Recorder(batch_size=2)
    stats2 = FetchStats()
    texts2 = ["e", "a", "a", "b", "e", "f"]
    out2 = fetch(p2, texts2, "sts", cache, stats2)
    assert sorted(p2.embedded) == ["e", "f"]
    assert np.array_equal(out2, np.stack([vec_of(t) for t in texts2]))
    assert stats2.texts_embedded == 2 and stats2.texts_from_cache == 2


def test_fetch_namespaces_by_purpose_and_params(cache):
    fetch(Recorder(), ["q"], "query", cache)
    p = Recorder()
    fetch(p, ["q"], "document", cache)
    assert p.embedded == ["q"]  # other purpose: another request, another entry
    p = Recorder(truncate="END")
    fetch(p, ["q"], "query", cache)
    assert p.embedded == ["q"]  # other request parameter: another entry
    p = Recorder()
    fetch(p, ["q"], "query", cache)
    assert p.embedded == []
    assert len(cache.stats()) == 3


def test_fetch_empty(cache):
    out = fetch(Recorder(dim=DIM), [], "sts", cache)
    assert out.shape == (0, DIM)


# --- crash safety ------------------------------------------------------------------------


def test_failed_batch_keeps_earlier_batches_and_rerun_embeds_the_rest(tmp_path):
    path = tmp_path / "c.sqlite"
    texts = [f"t{i}" for i in range(20)]
    bad = Recorder(batch_size=4, fail_on_call=3)
    with EmbeddingCache(path) as c, pytest.raises(RuntimeError, match="provider down"):
        fetch(bad, texts, "sts", c)
    assert len(bad.calls) == 3
    assert _count(path) == 8
    done = set(bad.calls[0] + bad.calls[1])
    with EmbeddingCache(path) as c:
        ns, _ = bad.namespace("sts")
        assert set(c.get_many(ns, texts)) == {i for i, t in enumerate(texts) if t in done}
        good = Recorder(batch_size=4)
        stats = FetchStats()
        out = fetch(good, texts, "sts", c, stats)
    assert sorted(good.embedded) == sorted(set(texts) - done)
    assert stats.texts_embedded == 12 and stats.texts_from_cache == 8
    assert np.array_equal(out, np.stack([vec_of(t) for t in texts]))


SIGKILL_CHILD = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    import numpy as np
    from embedbench.cache import EmbeddingCache, text_key

    path, committed = sys.argv[1], int(sys.argv[2])
    cache = EmbeddingCache(path)
    cache.register("ns", "child")
    for b in range(1000):
        if b == committed:
            # a batch half written: open transaction on a second connection, then die
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO embeddings VALUES (?, ?, ?, ?)",
                [("ns", text_key(f"b{b}-{i}"), 4, bytes(16)) for i in range(10)],
            )
            os.kill(os.getpid(), signal.SIGKILL)
        texts = [f"b{b}-{i}" for i in range(10)]
        vecs = np.full((10, 4), b, dtype=np.float32)
        cache.put_many("ns", texts, vecs)
    """
)


def test_sigkill_mid_run_leaves_valid_cache_with_committed_batches(tmp_path):
    path = tmp_path / "killed.sqlite"
    committed = 7
    proc = subprocess.run(
        [sys.executable, "-c", SIGKILL_CHILD, str(path), str(committed)],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert Path(f"{path}-wal").exists()  # the kill really left a live WAL behind
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with EmbeddingCache(path) as c:
        stats = c.stats()
        assert [(s.label, s.vectors, s.dim) for s in stats] == [("child", 10 * committed, 4)]
        for b in range(committed + 1):
            got = c.get_many("ns", [f"b{b}-{i}" for i in range(10)])
            if b < committed:
                assert len(got) == 10
                assert all(v.tolist() == [b] * 4 for v in got.values())
            else:
                assert got == {}  # the uncommitted batch is gone
        # and the cache keeps working after recovery
        c.put_many("ns", ["after"], np.ones((1, 4), np.float32))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 10 * committed + 1


# --- the file format ---------------------------------------------------------------------


def test_file_is_sqlite_with_raw_float32_blobs(tmp_path):
    path = tmp_path / "c.sqlite"
    texts = ["alpha", "beta", "gamma"]
    p = Recorder(dim=DIM)
    with EmbeddingCache(path) as c:
        fetch(p, texts, "sts", c)
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    ns, label = p.namespace("sts")
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"namespaces", "embeddings"}
        cols = [r[1] for r in db.execute("PRAGMA table_info(embeddings)")]
        assert cols == ["ns", "key", "dim", "vec"]
        assert db.execute("SELECT ns, label FROM namespaces").fetchall() == [(ns, label)]
        rows = db.execute("SELECT key, dim, typeof(vec), vec FROM embeddings").fetchall()
    assert len(rows) == 3
    by_key = {text_key(t): t for t in texts}
    for key, dim, kind, blob in rows:
        assert kind == "blob"
        assert dim == DIM
        assert len(blob) == 4 * DIM
        assert np.array_equal(np.frombuffer(blob, dtype=np.float32), vec_of(by_key[key]))


def test_non_sqlite_file_raises_cache_error(tmp_path):
    path = tmp_path / "not-a-cache.sqlite"
    path.write_bytes(b"this is a text file, certainly not sqlite\n" * 40)
    before = path.read_bytes()
    with pytest.raises(CacheError) as info:
        EmbeddingCache(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and "not a valid embedbench cache" in msg
    assert path.read_bytes() == before  # left untouched


def test_pickle_file_is_rejected_without_unpickling(tmp_path):
    """A pickle whose loading would run code: the cache must refuse it, not load it."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()) * 20)
    with pytest.raises(CacheError):
        EmbeddingCache(path)
    assert not marker.exists()


def test_cache_error_is_a_user_facing_error():
    assert issubclass(CacheError, EmbedbenchError)


# --- validation of provider answers ------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "dim", "match"),
    [
        ("dim", DIM, "dimension 7, expected 8"),
        ("count", None, "3 vectors for 4 texts"),
    ],
)
def test_bad_answer_raises_and_caches_nothing(tmp_path, bad, dim, match):
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path) as c:
        with pytest.raises(ProviderError, match=match) as info:
            fetch(Recorder(bad=bad, dim=dim), ["a", "b", "c", "d"], "sts", c)
        assert "\n" not in str(info.value)
        assert c.get_many(Recorder().namespace("sts")[0], ["a", "b", "c", "d"]) == {}
    assert _count(path) == 0


@pytest.mark.parametrize(("bad", "row"), [("nan", 3), ("inf", 0)])
def test_non_finite_row_is_named_and_the_other_paid_rows_are_kept(tmp_path, bad, row):
    texts = ["a", "b", "c", "d"]
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        with pytest.raises(ProviderError, match="NaN or infinite") as info:
            fetch(Recorder(bad=bad), texts, "sts", c)
        assert f"text {row} of 4 ('{texts[row]}')" in str(info.value)
        kept = c.get_many(Recorder().namespace("sts")[0], texts)
        assert sorted(kept) == [i for i in range(4) if i != row]


class SwitchDim(Recorder):
    """Answers DIM-wide vectors, then narrower ones from the second call on."""

    def embed_batch(self, texts, purpose):
        batch = super().embed_batch(texts, purpose)
        if len(self.calls) >= 2:
            batch.vectors = batch.vectors[:, :4]
        return batch


def test_dimension_change_between_batches_is_rejected(tmp_path):
    path = tmp_path / "c.sqlite"
    p = SwitchDim(batch_size=2)  # no expected_dim: the first batch sets it
    with EmbeddingCache(path) as c, pytest.raises(ProviderError, match="dimension 4, expected 8"):
        fetch(p, ["a", "b", "c", "d"], "sts", c)
    assert _count(path) == 2  # the first, valid batch only


def test_dimension_must_match_cached_vectors(cache):
    fetch(Recorder(), ["a"], "sts", cache)
    p = SwitchDim(batch_size=1)
    p.calls.append(["(pretend an earlier call)"])  # every answer now has dimension 4
    with pytest.raises(ProviderError, match="dimension 4, expected 8"):
        fetch(p, ["a", "b"], "sts", cache)
    assert cache.get_many(p.namespace("sts")[0], ["b"]) == {}


# --- `embedbench cache stats` ------------------------------------------------------------


def test_cache_stats_cli(tmp_path):
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path) as c:
        fetch(Recorder(model="model-one"), [f"x{i}" for i in range(5)], "sts", c)
        fetch(Recorder(model="model-two"), [f"y{i}" for i in range(3)], "query", c)
    labels = {
        5: namespace_of({"provider": "rec", "model": "model-one", "purpose": "sts"})[1],
        3: namespace_of({"provider": "rec", "model": "model-two", "purpose": "query"})[1],
    }
    result = CliRunner().invoke(cli, ["cache", "stats", "--cache", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert str(path) in lines[0]
    for n, label in labels.items():
        (line,) = [ln for ln in lines if label in ln]
        assert line.split()[:4] == [str(n), "vectors", "dim", str(DIM)]
    assert lines[-1].split() == ["8", "vectors", "in", "all"]


def test_cache_stats_cli_env_default(tmp_path, monkeypatch):
    path = tmp_path / "env.sqlite"
    with EmbeddingCache(path) as c:
        fetch(Recorder(), ["only"], "sts", c)
    monkeypatch.setenv("EMBEDBENCH_CACHE", str(path))
    result = CliRunner().invoke(cli, ["cache", "stats"])
    assert result.exit_code == 0, result.output
    assert str(path) in result.output
    assert result.output.splitlines()[-1].split() == ["1", "vectors", "in", "all"]
