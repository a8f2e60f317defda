"""The persistent embedding cache: one float32 vector per (provider request, text).

Stored in sqlite as raw float32 bytes, never pickled, so opening a cache cannot run
code. Each write is one transaction: a run killed at any moment leaves a valid cache
holding every batch committed before the kill, and the next run resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbench.errors import UserError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    ns TEXT PRIMARY KEY,
    label TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    ns TEXT NOT NULL,
    key BLOB NOT NULL,
    dim INTEGER NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""
_CHUNK = 500  # sqlite host-parameter budget per lookup


def default_cache_path() -> Path:
    """`$EMBEDBENCH_CACHE`, else `~/.cache/embedbench/embeddings.sqlite`."""
    env = os.environ.get("EMBEDBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "embedbench" / "embeddings.sqlite"


def namespace_of(request: dict[str, Any]) -> tuple[str, str]:
    """Canonical (hash, label) of a provider request: provider, model and parameters."""
    label = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(label.encode()).hexdigest()[:32], label


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class NamespaceStats:
    label: str
    vectors: int
    dim: int
    bytes: int


class EmbeddingCache:
    """Thread-safe sqlite store of float32 vectors keyed by namespace and text."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise CacheError(f"cache file {self.path} is not a valid embedbench cache: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, ns: str, label: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?)", (ns, label))

    def get_many(self, ns: str, texts: Sequence[str]) -> dict[int, np.ndarray]:
        """Vectors found for `texts`, by position in `texts`."""
        keys = [text_key(t) for t in texts]
        pos: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            pos.setdefault(k, []).append(i)
        found: dict[int, np.ndarray] = {}
        unique = list(pos)
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, vec FROM embeddings WHERE ns = ? AND key IN ({marks})",
                    (ns, *chunk),
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    for i in pos[key]:
                        found[i] = vec
        return found

    def put_many(self, ns: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch atomically (one transaction)."""
        self.put_batch([(ns, texts, vectors)])

    def put_batch(self, parts: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """Store several (namespace, texts, vectors) parts in one transaction."""
        rows = []
        for ns, texts, vectors in parts:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise ValueError(f"{len(texts)} texts but vectors of shape {vectors.shape}")
            dim = vectors.shape[1]
            rows += [
                (ns, text_key(t), dim, v.tobytes()) for t, v in zip(texts, vectors, strict=True)
            ]
        with self._lock, self._db:
            self._db.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def stats(self) -> list[NamespaceStats]:
        with self._lock:
            rows = self._db.execute(
                "SELECT n.label, COUNT(e.key), COALESCE(MAX(e.dim), 0), "
                "COALESCE(SUM(LENGTH(e.vec)), 0) FROM namespaces n "
                "LEFT JOIN embeddings e ON e.ns = n.ns GROUP BY n.ns ORDER BY n.label"
            ).fetchall()
        return [NamespaceStats(*r) for r in rows]

    def file_bytes(self) -> int:
        return sum(
            p.stat().st_size
            for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
            if p.exists()
        )


class CacheError(UserError):
    """The cache file cannot be used (exit code 2: point --cache elsewhere)."""


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
