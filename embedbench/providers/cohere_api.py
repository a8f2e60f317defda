"""Cohere's embed API (v2) through `cohere.ClientV2`.

Purpose → `input_type`: query → search_query, document → search_document,
classification → classification, clustering → clustering, and sts →
search_document (Cohere's advice for inputs of unknown role, and what MTEB's own
Cohere wrapper sends for STS, so scores compare with the leaderboard).

ClientV2 does not split large requests, so `batch_size` is at most 96 (the API's
cap). The SDK's retries are off; `retry.call_with_retries` does them. Requests go
through the ClientV2's own HTTP wrapper (its auth, base URL and timeouts) and the
JSON answer is read with numpy, because `ClientV2.embed` builds Python objects for
every float (about 8 ms a 1024-d vector, which would cap a run near 125 texts/s);
if the SDK lacks that wrapper, `ClientV2.embed` is used instead. The API key
comes from `api_key` or the SDK's chain (`CO_API_KEY`, then `COHERE_API_KEY`); it is
kept only by the client and never appears in a message or `repr`.

Native quantized outputs (`native_types`, any of int8, uint8, binary, ubinary) come
back in the same call, in `Batch.extras[type]`, exactly as the API sends them:
int8 → int8 (n × d), uint8 → uint8 (n × d), binary → int8 (n × d/8, packed bits
minus 128), ubinary → uint8 (n × d/8, packed bits). Requesting them does not change
the float vectors, so they are not part of the cache key.
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedbench.errors import ProviderError, UserError, unknown_name
from embedbench.providers.base import Batch, Provider, Purpose
from embedbench.providers.retry import (
    CALL_OPTIONS,
    Failure,
    MalformedResponse,
    RateLimiter,
    RetryPolicy,
    call_with_retries,
    check_call_options,
    parse_retry_after,
    scrub,
)

COHERE_INPUT_TYPES: dict[str, str] = {
    "query": "search_query",
    "document": "search_document",
    "classification": "classification",
    "clustering": "clustering",
    "sts": "search_document",
}
TRUNCATE_MODES = ("NONE", "START", "END")
COHERE_NATIVE_TYPES = ("int8", "uint8", "binary", "ubinary")
_NATIVE_DTYPES: dict[str, type[np.integer]] = {
    "int8": np.int8,
    "uint8": np.uint8,
    "binary": np.int8,
    "ubinary": np.uint8,
}
MAX_TEXTS_PER_CALL = 96


@dataclass(frozen=True)
class CohereModel:
    """Native dimension, and the `output_dimension` values allowed (empty: fixed)."""

    dim: int
    dims: tuple[int, ...] = ()


COHERE_MODELS: dict[str, CohereModel] = {
    "embed-english-v3.0": CohereModel(1024),
    "embed-multilingual-v3.0": CohereModel(1024),
    "embed-english-light-v3.0": CohereModel(384),
    "embed-multilingual-light-v3.0": CohereModel(384),
    "embed-v4.0": CohereModel(1536, (256, 512, 1024, 1536)),
}


def choose(what: str, value: Any, allowed: Sequence[Any]) -> Any:
    """`value` if it is one of `allowed`, else a `UserError` listing them."""
    if value not in allowed:
        listed = ", ".join(str(a) for a in allowed)
        raise UserError(f"{what} must be one of {listed}; got {value!r}")
    return value


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


def check_batch_size(what: str, value: int, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise UserError(f"{what}: batch_size must be an integer from 1 to {limit}; got {value!r}")
    return value


def check_positive_int(what: str, name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{what}: {name} must be a positive integer; got {value!r}")
    return value


def check_n_jobs(what: str, value: int) -> int:
    return check_positive_int(what, "n_jobs", value)


def cohere_input_type(purpose: str) -> str:
    """Cohere's `input_type` for a purpose."""
    try:
        return COHERE_INPUT_TYPES[purpose]
    except KeyError:
        raise unknown_name("purpose", purpose, COHERE_INPUT_TYPES) from None


def reject_unknown_options(what: str, options: Mapping[str, Any], allowed: Iterable[str]):
    """A `UserError` for the first option the provider does not know (typos included)."""
    if options:
        raise unknown_name(f"option for {what}", next(iter(options)), allowed)


def check_nonempty(what: str, text: str) -> None:
    if not text.strip():
        raise UserError(f"{what} cannot embed an empty (or whitespace-only) text")


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
        info = np.iinfo(_NATIVE_DTYPES[t])
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise ProviderError(f"{what} returned '{t}' values outside {info.min}..{info.max}")
        extras[t] = arr.astype(_NATIVE_DTYPES[t])
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


class CohereProvider(Provider):
    """Cohere embed models through the official SDK (`cohere.ClientV2`).

    Options: `api_key` (default: `CO_API_KEY`/`COHERE_API_KEY`), `base_url` (default:
    `CO_API_URL`, else Cohere's API), `truncate` NONE/START/END (default END),
    `output_dimension` (embed-v4.0: 256/512/1024/1536, default 1536), `native_types`,
    `batch_size` (≤ 96, default 96), `n_jobs` (default 4), `timeout` seconds per
    request (default 60), `max_attempts` (default 8), `backoff_base` (default 0.5 s),
    `backoff_max` (20 s), `retry_after_max` (60 s), `requests_per_minute` (default none).
    """

    family = "cohere"
    raw_http = True  # False: parse answers with the SDK's models (slow; see `_sdk_http`)
    _OPTIONS = (
        "api_key",
        "base_url",
        "truncate",
        "output_dimension",
        "native_types",
        *CALL_OPTIONS,
    )

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        truncate: str = "END",
        output_dimension: int | None = None,
        native_types: Iterable[str] | str | None = None,
        batch_size: int = MAX_TEXTS_PER_CALL,
        n_jobs: int = 4,
        timeout: float = 60.0,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        requests_per_minute: float | None = None,
        **unknown: Any,
    ):
        reject_unknown_options("cohere", unknown, self._OPTIONS)
        if model not in COHERE_MODELS:
            raise unknown_name("cohere model", model, COHERE_MODELS)
        spec = COHERE_MODELS[model]
        what = f"cohere:{model}"
        check_call_options(
            what,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            requests_per_minute=requests_per_minute,
        )
        if output_dimension is not None and not spec.dims:
            raise UserError(
                f"{what} has a fixed dimension {spec.dim}; output_dimension is only for embed-v4.0"
            )
        dim = spec.dim if output_dimension is None else output_dimension
        if spec.dims:
            choose(f"{what}: output_dimension", dim, spec.dims)
        super().__init__(
            model,
            base_url=base_url,
            truncate=truncate,
            output_dimension=output_dimension,
            native_types=native_types,
            batch_size=batch_size,
            n_jobs=n_jobs,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            requests_per_minute=requests_per_minute,
        )
        self.spec = spec
        self.dim = dim
        self.truncate = choose(f"{what}: truncate", truncate, TRUNCATE_MODES)
        self.native_types = check_native_types(what, native_types, COHERE_NATIVE_TYPES)
        self.batch_size = check_batch_size(what, batch_size, MAX_TEXTS_PER_CALL)
        self.n_jobs = check_n_jobs(what, n_jobs)
        self.base_url = base_url
        self.timeout = float(timeout)
        self.policy = RetryPolicy(max_attempts, backoff_base, backoff_max, retry_after_max)
        self.limiter = RateLimiter(requests_per_minute)
        self._api_key = api_key
        self._client: Any = None
        self._http: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CohereProvider(model={self.model!r}, base_url={self.base_url!r})"

    # --- contract -----------------------------------------------------------------

    def request_params(self, purpose: Purpose) -> dict[str, Any]:
        params: dict[str, Any] = {
            "input_type": self.input_type(purpose),
            "truncate": self.truncate,
        }
        if self.spec.dims:
            params["output_dimension"] = self.dim
        return params

    def expected_dim(self) -> int:
        return self.dim

    def check_text(self, text: str) -> None:
        check_nonempty(self.name, text)

    def native_codes(self, purpose: Purpose | None = None) -> list[str]:
        """Native quantized types this model can return alongside the floats."""
        return list(COHERE_NATIVE_TYPES)

    @staticmethod
    def input_type(purpose: Purpose) -> str:
        return cohere_input_type(purpose)

    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        client = self._get_client()
        payload: dict[str, Any] = {
            "model": self.model,
            "input_type": self.input_type(purpose),
            "texts": list(texts),
            "truncate": self.truncate,
            "embedding_types": ["float", *self.native_types],
        }
        if self.spec.dims:
            payload["output_dimension"] = self.dim
        options = {"max_retries": 0, "timeout": self.timeout}
        http = _sdk_http(client) if self.raw_http else None

        def attempt() -> Batch:
            if http is None:
                return self._parse_sdk(client.embed(**payload, request_options=options), len(texts))
            return self._post(http, payload, options, len(texts))

        return call_with_retries(attempt, self._classify, self.policy, self.limiter, self.name)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._client = None
            self._http = None

    # --- internals ----------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import cohere
                import httpx

                key = (
                    self._api_key
                    or os.environ.get("CO_API_KEY")
                    or os.environ.get("COHERE_API_KEY")
                )
                if not key:
                    raise UserError(
                        f"{self.name}: no Cohere API key; set CO_API_KEY or pass api_key"
                    )
                pool = max(10, self.n_jobs)
                self._http = httpx.Client(
                    timeout=self.timeout,
                    limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                )
                self._client = cohere.ClientV2(
                    api_key=key,
                    base_url=self.base_url or os.environ.get("CO_API_URL") or None,
                    timeout=self.timeout,
                    max_retries=0,
                    httpx_client=self._http,
                    log_warning_experimental_features=False,
                )
            return self._client

    def _secrets(self) -> list[str | None]:
        return [
            self._api_key,
            os.environ.get("CO_API_KEY"),
            os.environ.get("COHERE_API_KEY"),
        ]

    def _post(self, http: Any, payload: dict[str, Any], options: dict[str, Any], n: int) -> Batch:
        """POST /v2/embed through the client's own HTTP wrapper; read the JSON with numpy."""
        from cohere.core.api_error import ApiError

        response = http.request(
            "v2/embed",
            method="POST",
            json=payload,
            headers={"content-type": "application/json"},
            request_options=options,
        )
        if not 200 <= response.status_code < 300:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ApiError(
                status_code=response.status_code, headers=dict(response.headers), body=body
            )
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise MalformedResponse("answer is not valid JSON") from None
        emb = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(emb, dict):
            raise MalformedResponse("answer has no 'embeddings' object")
        vectors = float_matrix(self.name, emb.get("float"))
        extras = native_arrays(self.name, emb, self.native_types, n)
        billed = (data.get("meta") or {}).get("billed_units") or {}
        return Batch(vectors=vectors, tokens=int(billed.get("input_tokens") or 0), extras=extras)

    def _parse_sdk(self, response: Any, n: int) -> Batch:
        emb = getattr(response, "embeddings", None)
        if emb is None:
            raise MalformedResponse("answer has no embeddings")
        vectors = float_matrix(self.name, getattr(emb, "float_", None))
        found = {t: getattr(emb, t, None) for t in self.native_types}
        extras = native_arrays(self.name, found, self.native_types, n)
        tokens = 0
        billed = getattr(getattr(response, "meta", None), "billed_units", None)
        if billed is not None and getattr(billed, "input_tokens", None) is not None:
            tokens = int(billed.input_tokens)
        return Batch(vectors=vectors, tokens=tokens, extras=extras)

    def _classify(self, exc: BaseException) -> Failure | None:
        import httpx
        from cohere.core.api_error import ApiError
        from cohere.core.parse_error import ParsingError

        if isinstance(exc, MalformedResponse):
            return Failure("retry", "MalformedResponse", str(exc))
        if isinstance(exc, ParsingError):
            return Failure("retry", "MalformedResponse", "answer does not match the v2 schema")
        if isinstance(exc, httpx.TimeoutException):
            return Failure("retry", "Timeout", f"no answer within {self.timeout:g} s")
        if isinstance(exc, httpx.TransportError):
            return Failure("retry", type(exc).__name__, scrub(exc, self._secrets()))
        if not isinstance(exc, ApiError):
            return None
        status = exc.status_code
        message = scrub(_body_message(exc.body), self._secrets())
        code = f"HTTP {status}" if status is not None else type(exc).__name__
        if status is None:
            return Failure("fatal", type(exc).__name__, message)
        if 200 <= status < 300:
            return Failure("retry", "MalformedResponse", "answer is not valid JSON")
        if status in (408, 409, 429) or status >= 500:
            return Failure("retry", code, message, parse_retry_after(exc.headers))
        if status in (401, 403, 498):
            return Failure("user", code, f"{message} (check the API key in CO_API_KEY)".lstrip())
        if 400 <= status < 500:
            return Failure("user", code, message)
        return Failure("fatal", code, message)


def _sdk_http(client: Any) -> Any:
    """The SDK's configured HTTP wrapper (auth, base URL, timeouts), if this SDK has one.

    `ClientV2.embed` turns every float of the answer into Python objects through
    pydantic, about 8 ms a 1024-d vector under the GIL, which caps a run near 125
    texts/s whatever `n_jobs` is. Posting the same request through the client's own
    wrapper and reading the JSON with numpy costs well under 1 ms a vector. If a
    future SDK lacks the wrapper, the public `embed` is used.
    """
    wrapper = getattr(client, "_client_wrapper", None)
    http = getattr(wrapper, "httpx_client", None)
    request = getattr(http, "request", None)
    if request is None:
        return None
    try:
        params = inspect.signature(request).parameters
    except (TypeError, ValueError):
        return None
    if not {"method", "json", "headers", "request_options"} <= set(params):
        return None
    return http


def _body_message(body: Any) -> str:
    """The human part of an error body: its `message` when it has one."""
    if isinstance(body, Mapping):
        for key in ("message", "Message", "error", "detail"):
            if body.get(key):
                return str(body[key])
    if body is None:
        return ""
    return str(body)
