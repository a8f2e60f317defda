"""What every provider offers, and the one fetch path through the cache.

A provider turns a batch of texts into float32 vectors. `fetch` does everything
around that once for all providers: de-duplication, cache look-up, batching,
parallel calls (joblib threads), validation of each answer, and writing each
completed batch to the cache at once, so an interrupted run loses at most the
batches in flight and nothing is ever paid for twice.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from joblib import Parallel, delayed

from embedbench.cache import EmbeddingCache, namespace_of
from embedbench.errors import ProviderError

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
    """

    family: ClassVar[str]
    batch_size: int = 64
    n_jobs: int = 1
    native_types: tuple[str, ...] = ()  # provider-quantized outputs requested with the floats

    def __init__(self, model: str, **options: Any):
        self.model = model
        self.options = options

    @abstractmethod
    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        """Embed one batch (at most `batch_size` texts); vectors in request order."""

    def request_params(self, purpose: Purpose) -> dict[str, Any]:
        """Request parameters that change the vectors for this purpose."""
        return {}

    def expected_dim(self) -> int | None:
        """The vector length every answer must have, when known in advance."""
        return None

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
    """Reject an answer that must never reach the cache."""
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
    if not np.isfinite(vecs).all():
        raise ProviderError(f"{provider.name} returned NaN or infinite values")


def _validate_extras(
    provider: Provider, texts: Sequence[str], batch: Batch, types: Sequence[str]
) -> None:
    for t in types:
        arr = batch.extras.get(t)
        if arr is None or len(arr) != len(texts):
            raise ProviderError(f"{provider.name} did not return native '{t}' codes for every text")


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
    when every requested output of it is.
    """
    stats = stats if stats is not None else FetchStats()
    outputs = ["float", *provider.native_types]
    if output not in outputs:
        raise ProviderError(f"{provider.name}: output '{output}' was not requested")
    spaces = {out: provider.namespace(purpose, out) for out in outputs}
    for ns, label in spaces.values():
        cache.register(ns, label)
    found = {out: cache.get_many(ns, texts) for out, (ns, _) in spaces.items()}
    complete = set(found["float"]).intersection(*(found[o] for o in outputs))
    missing = list(dict.fromkeys(t for i, t in enumerate(texts) if i not in complete))
    stats.add(texts_from_cache=len({texts[i] for i in complete}))
    fresh: dict[str, dict[str, np.ndarray]] = {out: {} for out in outputs}
    if missing:
        for t in missing:
            provider.check_text(t)
        dim = provider.expected_dim()
        if dim is None and found["float"]:
            dim = len(next(iter(found["float"].values())))
        size = provider.batch_size
        batches = [missing[i : i + size] for i in range(0, len(missing), size)]

        def one(batch_texts: list[str]) -> tuple[list[str], Batch]:
            return batch_texts, provider.embed_batch(batch_texts, purpose)

        done = 0
        if progress:
            progress(0, len(missing))
        runner = Parallel(n_jobs=provider.n_jobs, prefer="threads", return_as="generator_unordered")
        for batch_texts, batch in runner(delayed(one)(b) for b in batches):
            batch.vectors = np.asarray(batch.vectors, dtype=np.float32)
            validate_batch(provider, batch_texts, batch, dim)
            _validate_extras(provider, batch_texts, batch, outputs[1:])
            dim = batch.vectors.shape[1]
            arrays = {"float": batch.vectors}
            arrays.update({t: np.asarray(batch.extras[t], dtype=np.float32) for t in outputs[1:]})
            cache.put_batch([(spaces[o][0], batch_texts, arrays[o]) for o in outputs])
            for o in outputs:
                fresh[o].update(zip(batch_texts, arrays[o], strict=True))
            stats.add(texts_embedded=len(batch_texts), calls=1, tokens=batch.tokens)
            done += len(batch_texts)
            if progress:
                progress(done, len(missing))
    have = found[output]
    rows = [have[i] if i in complete else fresh[output][t] for i, t in enumerate(texts)]
    if not rows:
        return np.zeros((0, provider.expected_dim() or 0), dtype=np.float32)
    dims = {len(r) for r in rows}
    if len(dims) != 1:
        raise ProviderError(f"{provider.name}: cached vectors have mixed dimensions {sorted(dims)}")
    return np.stack(rows).astype(np.float32, copy=False)
