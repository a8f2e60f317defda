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
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbench.errors import EmbedbenchError, UserError

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


_TABLES = {"namespaces": ["ns", "label"], "embeddings": ["ns", "key", "dim", "vec"]}
_FIX = "move it away or point --cache (or $EMBEDBENCH_CACHE) elsewhere"


class EmbeddingCache:
    """Thread-safe sqlite store of float32 vectors keyed by namespace and text.

    The schema is checked when the file is opened, before any model or client is
    set up. A file that cannot be written (read-only file, folder or file system)
    opens read-only: reading needs no write, so a fully warm run works; a write is a
    `CacheError`. Rows read back are checked (byte length, dimension, finite values);
    a bad row counts as missing, is fetched again and replaced.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self.writable = True
        try:
            if self.path.is_dir():
                raise CacheError(f"cache path {self.path} is a folder; give a file path")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(
                f"cache {self.path}: cannot create its folder ({e.strerror or e}); {_FIX}"
            ) from None
        try:
            self._db = self._open_retrying()
        except sqlite3.DatabaseError as e:
            what = "is not a valid embedbench cache" if self.path.exists() else "cannot be created"
            raise CacheError(f"cache file {self.path} {what}: {e}; {_FIX}") from None

    def _open_retrying(self, seconds: float = 60.0) -> sqlite3.Connection:
        """`_open`, again while another process holds the lock sqlite needs to set the
        journal mode or create the schema: sqlite answers "database is locked" at once
        there, without waiting (two runs opening one cold cache at the same moment)."""
        deadline = time.monotonic() + seconds
        pause = 0.01
        while True:
            try:
                return self._open()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.5)

    def _open(self) -> sqlite3.Connection:
        exists = self.path.exists()
        if exists and not os.access(self.path, os.R_OK):
            raise CacheError(f"cache file {self.path} is not readable; {_FIX}")
        db = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
            ours = self._check_schema(db)
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            if not ours:  # create in one write transaction: a run racing us sees all or none
                db.execute("BEGIN IMMEDIATE")
                if not self._check_schema(db):
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                db.commit()
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # can this connection write? (takes no time)
            db.rollback()
            return db
        except sqlite3.OperationalError as e:
            if db is not None:
                db.close()
            if not exists or not _is_readonly(e):
                raise
        for mode in ("mode=ro", "immutable=1"):  # read-only file, folder or file system
            uri = f"{self.path.resolve().as_uri()}?{mode}"
            try:
                db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=60)
                if not self._check_schema(db):
                    raise CacheError(f"cache file {self.path} is empty and read-only; {_FIX}")
                db.execute("SELECT COUNT(*) FROM namespaces").fetchone()
            except sqlite3.OperationalError:
                continue
            self.writable = False
            return db
        raise CacheError(f"cache file {self.path} can be neither written nor read; {_FIX}")

    def _check_schema(self, db: sqlite3.Connection) -> bool:
        """True when the file holds this schema, False when it holds no table at all."""
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if not names:
            return False
        found = {n: [r[1] for r in db.execute(f"PRAGMA table_info('{n}')")] for n in names}
        if found != _TABLES:
            raise CacheError(
                f"cache file {self.path} holds another schema (tables {sorted(found)}): "
                f"not an embedbench cache of this version; {_FIX}"
            )
        return True

    @contextmanager
    def _guard(self, writing: bool = False) -> Iterator[None]:
        """sqlite failures as one-line errors: damage and read-only (2), full disk (1)."""
        try:
            yield
        except sqlite3.Error as e:
            code = getattr(e, "sqlite_errorname", "")
            if code == "SQLITE_FULL" or "full" in str(e):
                raise CacheWriteError(
                    f"cache {self.path}: the disk is full ({e}); free space or point --cache "
                    "elsewhere, then rerun: every batch committed before is kept"
                ) from None
            if writing and _is_readonly(e):
                raise CacheError(f"cache {self.path} is read-only ({e}); {_FIX}") from None
            if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in str(e):
                raise CacheError(f"cache file {self.path} is damaged ({e}); {_FIX}") from None
            raise CacheWriteError(f"cache {self.path}: {e}") from None

    def require_writable(self) -> None:
        """Raise `CacheError` before anything is paid for that could not be stored."""
        if not self.writable:
            raise CacheError(
                f"cache {self.path} is read-only and texts are missing from it; {_FIX}"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, ns: str, label: str) -> None:
        self.require_writable()
        with self._lock, self._guard(writing=True), self._db:
            self._db.execute("INSERT OR IGNORE INTO namespaces VALUES (?, ?)", (ns, label))

    def get_many(
        self, ns: str, texts: Sequence[str], dim: int | None = None
    ) -> dict[int, np.ndarray]:
        """Valid vectors found for `texts`, by position in `texts`.

        A row whose bytes are not `dim` (else its recorded dimension) float32 values,
        or that holds NaN or infinity, is left out: the caller fetches it again.
        """
        keys = [text_key(t) for t in texts]
        pos: dict[bytes, list[int]] = {}
        for i, k in enumerate(keys):
            pos.setdefault(k, []).append(i)
        found: dict[int, np.ndarray] = {}
        unique = list(pos)
        with self._lock, self._guard():
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, dim, vec FROM embeddings WHERE ns = ? AND key IN ({marks})",
                    (ns, *chunk),
                ).fetchall()
                for key, row_dim, blob in rows:
                    vec = _vector(blob, row_dim if dim is None else dim)
                    if vec is not None:
                        for i in pos[key]:
                            found[i] = vec
        return found

    def put_many(self, ns: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch atomically (one transaction)."""
        self.put_batch([(ns, texts, vectors)])

    def put_batch(self, parts: Sequence[tuple[str, Sequence[str], np.ndarray]]) -> None:
        """Store several (namespace, texts, vectors) parts in one transaction.

        A row already present is replaced: only a missing or bad row is ever fetched.
        """
        rows = []
        for ns, texts, vectors in parts:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise ValueError(f"{len(texts)} texts but vectors of shape {vectors.shape}")
            dim = vectors.shape[1]
            rows += [
                (ns, text_key(t), dim, v.tobytes()) for t, v in zip(texts, vectors, strict=True)
            ]
        self.require_writable()
        with self._lock, self._guard(writing=True), self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)

    def stats(self) -> list[NamespaceStats]:
        with self._lock, self._guard():
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


def _is_readonly(e: sqlite3.Error) -> bool:
    text = str(e).lower()
    return getattr(e, "sqlite_errorname", "").startswith("SQLITE_READONLY") or any(
        w in text for w in ("readonly", "read-only", "unable to open", "permission")
    )


def _vector(blob: object, dim: int) -> np.ndarray | None:
    """The float32 vector of a stored row, or None when the row is damaged."""
    if not isinstance(blob, bytes) or not dim or len(blob) != 4 * dim:
        return None
    vec = np.frombuffer(blob, dtype=np.float32)
    return vec if np.isfinite(vec).all() else None


class CacheError(UserError):
    """The cache file cannot be used (exit code 2: point --cache elsewhere)."""


class CacheWriteError(EmbedbenchError):
    """A write failed for a reason outside the user's input, e.g. a full disk (exit 1)."""


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
