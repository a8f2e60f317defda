"""Engine presets: the quantization setting a vector database ships, as a code.

A preset is named `<engine>:<setting>` (e.g. `qdrant:binary-2bit`, `es:bbq_hnsw`,
`pgvector:bit`) and reproduces what the engine stores for a vector (the code, its
size counted as the engine stores it) and how the engine scores a float query
against a stored code (`Code.search_scores`, used by every retrieval search over the
preset: `engine_search` is True and `engine` is set). Symmetric tasks (STS,
classification, clustering) compare decoded vectors, the engine's reconstruction.
The engine's oversampling-and-rescore search option is the existing `/rescore<k>`
suffix (e.g. `qdrant:binary/rescore3`). Most engines keep every original float
vector beside its quantized one (on disk, for re-scoring, merges and re-indexing):
`originals` gives those bytes, which the table counts in the total footprint
(`secondary_bytes_per_vector`) with or without `/rescore<k>` (whose re-ranking then
reads them: no second copy); the code alone is the fast, searched tier.

Each preset records the engine, the version it follows, the source it was read
from (a documentation section or a source file of the engine's public repository)
and what it does not reproduce (an HNSW graph's own recall loss is never in scope:
every search here is exhaustive over the codes). Its pinned unit test recomputes a
worked example from that source.

Modules register their presets in `PRESETS` by importing here; `preset(name)`
builds the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embedbench.quantize.codes import Code

SEPARATOR = ":"


@dataclass(frozen=True)
class EnginePreset:
    name: str  # `<engine>:<setting>`
    engine: str  # e.g. "Qdrant"
    version: str  # the engine version the preset follows, e.g. "1.15"
    source: str  # documentation section or source file it was read from
    summary: str  # one line: what is stored and how it is scored
    not_reproduced: str  # what the preset leaves out (always: the index graph's own loss)
    make: Callable[[int], Code]  # seed -> a fresh code
    # bytes a vector the engine stores beside the code in any case (the original
    # float vector it keeps on disk for re-scoring, merges, re-indexing): d -> bytes
    originals: Callable[[int], int] = lambda d: 0


PRESETS: dict[str, EnginePreset] = {}
_LOADED = False


def register(*presets: EnginePreset) -> None:
    for p in presets:
        if p.name in PRESETS:
            raise ValueError(f"engine preset {p.name} registered twice")
        if SEPARATOR not in p.name:
            raise ValueError(f"engine preset name {p.name} is not <engine>:<setting>")
        PRESETS[p.name] = p


def _load() -> None:
    # each module calls register(...) at import; a module not written yet is skipped
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for module in ("qdrant", "qdrant_turbo", "lucene", "pgvector", "weaviate", "rabitq"):
        try:
            importlib.import_module(f"embedbench.engines.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"embedbench.engines.{module}":
                raise


def is_preset(name: str) -> bool:
    _load()
    return name in PRESETS


def preset(name: str, seed: int) -> Code:
    """The code of engine preset `name`, drawing from `seed` if it is random."""
    _load()
    p = PRESETS[name]
    code = p.make(seed)
    code.name, code.engine = p.name, p.engine
    code.originals_bytes = p.originals
    code.summary = f"{p.engine} {p.version}: {p.summary} (source: {p.source})"
    return code


def presets() -> dict[str, EnginePreset]:
    _load()
    return dict(PRESETS)
