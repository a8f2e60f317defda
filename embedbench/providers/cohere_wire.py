"""Cohere's embedding wire format, shared by the Cohere API and Cohere-on-Bedrock.

Purpose → `input_type`: query → search_query, document → search_document,
classification → classification, clustering → clustering, and sts →
search_document (Cohere's advice for inputs of unknown role, and what MTEB's own
Cohere wrapper sends for STS, so scores compare with the leaderboard).

Native quantized outputs (any of int8, uint8, binary, ubinary) come back in the
same call, in `Batch.extras[type]`, exactly as the service sends them: int8 → int8
(n × d), uint8 → uint8 (n × d), binary → int8 (n × d/8, packed bits minus 128),
ubinary → uint8 (n × d/8, packed bits).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from embedbench.errors import ProviderError, UserError, unknown_name
from embedbench.providers.base import Batch
from embedbench.providers.retry import MalformedResponse

COHERE_INPUT_TYPES: dict[str, str] = {
    "query": "search_query",
    "document": "search_document",
    "classification": "classification",
    "clustering": "clustering",
    "sts": "search_document",
}
TRUNCATE_MODES = ("NONE", "START", "END")
COHERE_NATIVE_TYPES = ("int8", "uint8", "binary", "ubinary")
NATIVE_DTYPES: dict[str, type[np.integer]] = {
    "int8": np.int8,
    "uint8": np.uint8,
    "binary": np.int8,
    "ubinary": np.uint8,
}
MAX_TEXTS_PER_CALL = 96


def cohere_input_type(purpose: str) -> str:
    """Cohere's `input_type` for a purpose."""
    try:
        return COHERE_INPUT_TYPES[purpose]
    except KeyError:
        raise unknown_name("purpose", purpose, COHERE_INPUT_TYPES) from None


def check_native_types(what: str, requested: Iterable[str] | str | None, allowed: Sequence[str]):
    """The requested native embedding types as a tuple, each one allowed for the model."""
    if requested is None:
        return ()
    if isinstance(requested, str):
        requested = [requested]
    out: list[str] = []
    for t in requested:
        if t == "float":
            continue
        if t not in allowed:
            if not allowed:
                raise UserError(f"{what} has no native quantized outputs; got {t!r}")
            raise UserError(
                f"{what}: native type {t!r} is not available; allowed: {', '.join(allowed)}"
            )
        if t not in out:
            out.append(t)
    return tuple(out)


def native_arrays(what: str, found: Mapping[str, Any], types: Sequence[str], n: int):
    """Per-type integer arrays of a by-type answer; a missing type is a broken answer."""
    extras: dict[str, np.ndarray] = {}
    for t in types:
        rows = found.get(t)
        if rows is None:
            raise MalformedResponse(f"answer lacks the requested '{t}' embeddings")
        try:
            arr = np.asarray(rows, dtype=np.int64)
        except (TypeError, ValueError) as e:
            raise ProviderError(f"{what} returned unusable '{t}' embeddings ({e})") from None
        if arr.ndim != 2 or len(arr) != n:
            raise ProviderError(f"{what} returned {len(arr)} '{t}' embeddings for {n} texts")
        info = np.iinfo(NATIVE_DTYPES[t])
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ProviderError(f"{what} returned '{t}' values outside {info.min}..{info.max}")
        extras[t] = arr.astype(NATIVE_DTYPES[t])
    return extras


def float_matrix(what: str, rows: Any) -> np.ndarray:
    """Float rows as an n × d float32 matrix (ragged rows are a `ProviderError`)."""
    if rows is None:
        raise MalformedResponse("answer has no float embeddings")
    try:
        arr = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise ProviderError(f"{what} returned vectors of unequal lengths") from None
    if arr.ndim == 1 and len(arr) == 0:
        arr = arr.reshape(0, 0)
    return arr


def parse_answer(
    what: str, data: Any, types: Sequence[str], n: int, tokens: int | None = None
) -> Batch:
    """A Cohere embed answer (decoded JSON) as a `Batch` of `n` texts.

    `embeddings` is an object by type (`float`, and each requested native type) or,
    when no native type was asked for, a bare list of float rows (Bedrock's
    `embeddings_floats` answer). `tokens` is the count the transport reported
    (Bedrock's header); without it, the body's `meta.billed_units.input_tokens`.
    """
    emb = data.get("embeddings") if isinstance(data, dict) else None
    if isinstance(emb, dict):
        vectors = float_matrix(what, emb.get("float"))
        extras = native_arrays(what, emb, types, n)
    elif isinstance(emb, list):
        if types:
            raise MalformedResponse("answer lacks the requested embedding types")
        vectors, extras = float_matrix(what, emb), {}
    else:
        raise MalformedResponse("answer has no 'embeddings'")
    if tokens is None:
        billed = (data.get("meta") or {}).get("billed_units") or {}
        tokens = billed.get("input_tokens")
    return Batch(vectors=vectors, tokens=int(tokens or 0), extras=extras)
