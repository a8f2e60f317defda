"""What every provider offers, and the one fetch path through the cache.

A provider turns a batch of texts into float32 vectors. `fetch` does everything
around that once for all providers: de-duplication, cache look-up, batching,
parallel calls (threads), validation of each answer, and writing each completed
batch to the cache at once: a failed batch stops the run only after every answer
already received is committed, and an interrupted run loses at most the batches
in flight.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from embedbench.cache import CacheError, EmbeddingCache, namespace_of
from embedbench.errors import ProviderError, UserError
from embedbench.providers.options import ProviderOptions

Purpose = Literal["query", "document", "classification", "clustering", "sts"]
Progress = Callable[[int, int], None]  # (texts done, texts to do)


@dataclass
class Batch:
    """A provider's answer for one batch: vectors in request order, tokens billed.

    `extras` holds provider-native quantized outputs requested in the same call
    (e.g. Cohere `int8`, `ubinary`), one row per text, keyed by embedding type.
    """

    vectors: np.ndarray
    tokens: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FetchStats:
    """Counters of one run, summed over every fetch (thread-safe)."""

    texts_embedded: int = 0
    texts_from_cache: int = 0
    calls: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        return {
            "texts_embedded": self.texts_embedded,
            "texts_from_cache": self.texts_from_cache,
            "calls": self.calls,
            "tokens": self.tokens,
        }


class Provider(ABC):
    """An embedding provider family (local, bedrock, cohere) bound to one model.

    Subclasses set `family`, implement `embed_batch`, and list in `request_params`
    every request parameter that changes the vectors: it is part of the cache key.
    `options` holds the family's validated options (`providers.options`).
    """

    family: ClassVar[str]
    batch_size: int = 64
    n_jobs: int = 1
    native_types: tuple[str, ...] = ()  # provider-quantized outputs requested with the floats
    options: ProviderOptions | None = None

    def __init__(self, model: str):
        self.model = model

    @abstractmethod
    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        """Embed one batch (at most `batch_size` texts); vectors in request order."""

    def request_params(self, purpose: Purpose) -> dict[str, Any]:
        """Request parameters that change the vectors for this purpose."""
        return {}

    def expected_dim(self) -> int | None:
        """The vector length every answer must have, when known in advance."""
        return None

    def known_dim(self) -> int | None:
        """The vector length, when known before any call (for checks at `validate`)."""
        return self.expected_dim()

    def check_text(self, text: str) -> None:
        """Raise `UserError` for a text this provider cannot embed (before any call)."""
        return None

    @property
    def name(self) -> str:
        return f"{self.family}:{self.model}"

    def namespace(self, purpose: Purpose, output: str = "float") -> tuple[str, str]:
        """Cache namespace of this provider's `output` ("float" or a native type)."""
        request = {"provider": self.family, "model": self.model, **self.request_params(purpose)}
        if output != "float":
            request["embedding_type"] = output
        return namespace_of(request)

    def close(self) -> None:
        """Release clients or models."""
        return None


def validate_batch(provider: Provider, texts: Sequence[str], batch: Batch, dim: int | None) -> None:
    """Reject an answer that must never reach the cache (NaN rows: see `finite_rows`)."""
    vecs = batch.vectors
    if vecs.ndim != 2 or len(vecs) != len(texts):
        raise ProviderError(
            f"{provider.name} returned {len(vecs) if vecs.ndim else 0} vectors "
            f"for {len(texts)} texts"
        )
    if dim is not None and vecs.shape[1] != dim:
        raise ProviderError(
            f"{provider.name} returned vectors of dimension {vecs.shape[1]}, expected {dim}"
        )


def _validate_extras(
    provider: Provider, texts: Sequence[str], batch: Batch, types: Sequence[str]
) -> None:
    for t in types:
        arr = batch.extras.get(t)
        if arr is None or len(arr) != len(texts):
            raise ProviderError(f"{provider.name} did not return native '{t}' codes for every text")


def _answers(
    call: Callable[[list[str]], Any], batches: list[list[str]], n_jobs: int, stop: threading.Event
) -> Iterator[tuple[list[str], Any]]:
    """(batch, answer or exception) for each batch, as each one ends.

    `n_jobs` daemon threads take batches in order; once `stop` is set no new batch
    starts, and the batches in flight still come back (so their answers are kept).
    With one job, batches run here, in the caller's thread.
    """
    if n_jobs <= 1 or len(batches) <= 1:
        for b in batches:
            if stop.is_set():
                return
            try:
                answer = call(b)
            except Exception as e:
                answer = e
            yield b, answer
        return
    todo: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
    for b in batches:
        todo.put(b)
    done: queue.SimpleQueue[tuple[list[str], Any] | None] = queue.SimpleQueue()

    def work() -> None:
        while not stop.is_set():
            try:
                b = todo.get_nowait()
            except queue.Empty:
                break
            try:
                done.put((b, call(b)))
            except Exception as e:
                done.put((b, e))
        done.put(None)

    workers = min(n_jobs, len(batches))
    for _ in range(workers):
        threading.Thread(target=work, daemon=True, name="embedbench-fetch").start()
    try:
        while workers:
            item = done.get()
            if item is None:
                workers -= 1
            else:
                yield item
    finally:
        stop.set()  # interrupted: start nothing more


class _Fetch:
    """One `fetch`: sends the missing texts, commits every valid answer at once.

    When a batch fails, no new batch starts; the batches in flight are still
    committed, then the first failure is raised, naming the text at fault when one
    is known (a batch the provider rejects is split in halves until the rejected
    text is found, so every other text of it is embedded and kept).
    """

    def __init__(self, provider, texts, purpose, cache, stats, spaces, outputs, dim, progress):
        self.provider, self.texts, self.purpose, self.cache = provider, texts, purpose, cache
        self.stats, self.spaces, self.outputs, self.dim = stats, spaces, outputs, dim
        self.progress = progress
        self.fresh: dict[str, dict[str, np.ndarray]] = {out: {} for out in outputs}
        self.done = self.total = 0
        self._index: dict[str, int] | None = None

    def where(self, text: str) -> str:
        """`text 41 of 96 ('first words...')`: which text, in the order it was asked for."""
        if self._index is None:
            self._index = {}
            for i, t in enumerate(self.texts):
                self._index.setdefault(t, i)
        snippet = text if len(text) <= 60 else text[:57] + "..."
        return f"text {self._index.get(text, -1)} of {len(self.texts)} ({snippet!r})"

    def cached(self, texts: list[str]) -> dict[str, dict[str, np.ndarray]]:
        """Texts another run committed since the look-up: out -> text -> vector."""
        got = {o: self.cache.get_many(self.spaces[o][0], texts, self._dim(o)) for o in self.outputs}
        complete = set(got["float"]).intersection(*got.values())
        return {o: {texts[i]: got[o][i] for i in complete} for o in self.outputs}

    def _dim(self, output: str) -> int | None:
        return self.dim if output == "float" else None

    def call(self, texts: list[str]) -> tuple[dict[str, dict[str, np.ndarray]], list[str], Any]:
        """Re-check the cache just before sending (cheap), then embed what is still missing."""
        have = self.cached(texts)
        todo = [t for t in texts if t not in have["float"]]
        return have, todo, self.provider.embed_batch(todo, self.purpose) if todo else None

    def run(self, missing: list[str]) -> None:
        size = self.provider.batch_size
        batches = [missing[i : i + size] for i in range(0, len(missing), size)]
        self.total = len(missing)
        if self.progress:
            self.progress(0, self.total)
        stop = threading.Event()
        failure: tuple[Exception, list[str]] | None = None
        for batch_texts, answer in _answers(self.call, batches, self.provider.n_jobs, stop):
            try:
                if isinstance(answer, Exception):
                    raise answer
                have, todo, batch = answer
                self.keep(have, from_cache=True)
                if batch is not None:
                    self.commit(todo, batch)
            except Exception as e:
                stop.set()
                if failure is None:
                    failure = (e, todo if not isinstance(answer, Exception) else batch_texts)
        if failure is not None:
            raise self.explain(*failure)

    def keep(self, vectors: dict[str, dict[str, np.ndarray]], from_cache: bool) -> None:
        for o in self.outputs:
            self.fresh[o].update(vectors[o])
        n = len(vectors["float"])
        if from_cache and n:
            self.stats.add(texts_from_cache=n)
        self.done += n
        if self.progress and n:
            self.progress(self.done, self.total)

    def commit(self, texts: list[str], batch: Batch) -> None:
        """Validate one answer and store it; rows with NaN are left out and named."""
        provider, outputs = self.provider, self.outputs
        batch.vectors = np.asarray(batch.vectors, dtype=np.float32)
        validate_batch(provider, texts, batch, self.dim)
        _validate_extras(provider, texts, batch, outputs[1:])
        self.stats.add(calls=1, tokens=batch.tokens)  # paid for, whatever follows
        self.dim = batch.vectors.shape[1]
        arrays = {"float": batch.vectors}
        arrays.update({t: np.asarray(batch.extras[t], dtype=np.float32) for t in outputs[1:]})
        good = np.isfinite(batch.vectors).all(axis=1)
        keep = [t for t, ok in zip(texts, good, strict=True) if ok]
        if keep:
            self.cache.put_batch([(self.spaces[o][0], keep, arrays[o][good]) for o in outputs])
            self.keep({o: dict(zip(keep, arrays[o][good], strict=True)) for o in outputs}, False)
            self.stats.add(texts_embedded=len(keep))
        if not good.all():
            bad = texts[int(np.argmin(good))]
            raise ProviderError(
                f"{provider.name} returned NaN or infinite values for {self.where(bad)}"
            )

    def explain(self, error: Exception, texts: list[str]) -> Exception:
        """The error to raise, naming the rejected text (found by halving the batch)."""
        if not isinstance(error, UserError) or isinstance(error, CacheError) or not texts:
            return error
        culprit = texts[0] if len(texts) == 1 else self.isolate(texts)
        if culprit is None:
            return error
        return UserError(f"{error}; rejected: {self.where(culprit)}")

    def isolate(self, texts: list[str]) -> str | None:
        """The one text of a rejected batch the provider rejects alone, embedding the
        others; None when both halves are rejected (the request, not a text, is at fault)."""
        while len(texts) > 1:
            half = len(texts) // 2
            rejected = []
            for part in (texts[:half], texts[half:]):
                try:
                    have, todo, batch = self.call(part)
                except UserError:
                    rejected.append(part)
                    if len(rejected) == 2:
                        return None
                    continue
                self.keep(have, from_cache=True)
                if batch is not None:
                    self.commit(todo, batch)
            if not rejected:
                return None
            texts = rejected[0]
        return texts[0]


def fetch(
    provider: Provider,
    texts: Sequence[str],
    purpose: Purpose,
    cache: EmbeddingCache,
    stats: FetchStats | None = None,
    progress: Progress | None = None,
    output: str = "float",
) -> np.ndarray:
    """Vectors for `texts` (n × d, in order), embedding only what the cache lacks.

    `output` is "float" or one of the provider's `native_types` (its own quantized
    codes, requested in the same calls as the floats and cached beside them, one
    namespace per type, in the same transaction). A text counts as cached only
    when every requested output of it is. Every answered batch is committed before
    any failure is raised (see `_Fetch`).
    """
    stats = stats if stats is not None else FetchStats()
    outputs = ["float", *provider.native_types]
    if output not in outputs:
        raise ProviderError(f"{provider.name}: output '{output}' was not requested")
    spaces = {out: provider.namespace(purpose, out) for out in outputs}
    expected = provider.expected_dim()
    found = {
        out: cache.get_many(ns, texts, expected if out == "float" else None)
        for out, (ns, _) in spaces.items()
    }
    complete = set(found["float"]).intersection(*(found[o] for o in outputs))
    missing = list(dict.fromkeys(t for i, t in enumerate(texts) if i not in complete))
    stats.add(texts_from_cache=len({texts[i] for i in complete}))
    job = _Fetch(provider, texts, purpose, cache, stats, spaces, outputs, expected, progress)
    if missing:
        for t in missing:
            provider.check_text(t)
        cache.require_writable()  # before anything is paid for that could not be kept
        for ns, label in spaces.values():
            cache.register(ns, label)
        if job.dim is None and found["float"]:
            job.dim = len(next(iter(found["float"].values())))
        job.run(missing)
    have = found[output]
    rows = [have[i] if i in complete else job.fresh[output][t] for i, t in enumerate(texts)]
    if not rows:
        return np.zeros((0, provider.expected_dim() or 0), dtype=np.float32)
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ProviderError(f"{provider.name}: cached vectors have mixed dimensions {sorted(dims)}")
    return np.stack(rows).astype(np.float32, copy=False)
