"""Float vectors of one provider, fetched once per run through the persistent cache.

The driver process is the only caller of providers: `EmbeddingStore.get` looks texts
up by purpose (`sts`, `query`, `document`, ...; `purpose#kind` for a native output
such as `sts#int8`) and fetches only what neither this run nor the cache has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from embedbench.cache import EmbeddingCache
from embedbench.config import Config, ProviderSpec
from embedbench.grid import native_kinds
from embedbench.providers.base import FetchStats, Provider, fetch
from embedbench.registry import build_provider

# (phase, description, done, total); phases: "embed", "evaluate"
ProgressFn = Callable[[str, str, int, int], None]


def no_progress(phase: str, desc: str, done: int, total: int) -> None:
    pass


class EmbeddingStore:
    """Float vectors of one provider, per purpose, fetched once per run through the cache."""

    def __init__(
        self,
        provider: Provider,
        cache: EmbeddingCache,
        counters: FetchStats,
        progress: ProgressFn,
        desc: str,
    ):
        self.provider, self.cache, self.counters = provider, cache, counters
        self.progress, self.desc = progress, desc
        self._rows: dict[str, dict[str, np.ndarray]] = defaultdict(dict)

    def get(self, texts: list[str], purpose: str) -> np.ndarray:
        """Vectors of `texts`; `purpose#kind` (e.g. `sts#int8`) gives a native output."""
        rows = self._rows[purpose]
        missing = list(dict.fromkeys(t for t in texts if t not in rows))
        if missing:
            base, _, output = purpose.partition("#")
            # native outputs arrive with the floats: count only what a lookup pays for
            counters = FetchStats() if output else self.counters
            vecs = fetch(
                self.provider,
                missing,
                base,  # type: ignore[arg-type]
                self.cache,
                counters,
                lambda done, total: self.progress("embed", self.desc, done, total),
                output=output or "float",
            )
            if output:
                self.counters.add(
                    texts_embedded=counters.texts_embedded,
                    calls=counters.calls,
                    tokens=counters.tokens,
                )
            rows.update(zip(missing, vecs, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([rows[t] for t in texts])


def open_provider(spec: ProviderSpec, config: Config) -> tuple[Provider, tuple[str, ...]]:
    """The provider, asked for the native outputs the grid uses that it has."""
    provider = build_provider(spec)
    wanted = native_kinds(config)
    has = set(provider.native_codes()) if wanted and hasattr(provider, "native_codes") else set()
    natives = tuple(k for k in wanted if k in has)
    if natives:
        provider.close()
        provider = build_provider(spec, natives)
    return provider, natives
