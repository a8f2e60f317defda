"""Cohere's embed API (v2) through `cohere.ClientV2`.

Purpose → `input_type`, the answer's format and native outputs: see `cohere_wire`
(shared with Cohere-on-Bedrock); options: `options.CohereOptions`.

ClientV2 does not split large requests, so `batch_size` is at most 96 (the API's
cap). The SDK's retries are off; `retry.call_with_retries` does them. Requests go
through the ClientV2's own HTTP wrapper (its auth, base URL and timeouts) and the
JSON answer is read with numpy, because `ClientV2.embed` builds Python objects for
every float (about 8 ms a 1024-d vector, which would cap a run near 125 texts/s);
if the SDK lacks that wrapper, `ClientV2.embed` is used instead. The API key
comes from `api_key` or the SDK's chain (`CO_API_KEY`, then `COHERE_API_KEY`); it is
kept only by the client and never appears in a message or `repr`.

Native quantized outputs (`native_types`) come back in the same call. Requesting
them does not change the float vectors, so they are not part of the cache key.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedbench.errors import UserError, unknown_name
from embedbench.providers import cohere_wire as wire
from embedbench.providers import retry
from embedbench.providers.base import Batch, Purpose
from embedbench.providers.options import MAX_TEXTS_PER_CALL, CohereOptions
from embedbench.providers.remote import RemoteProvider


@dataclass(frozen=True)
class CohereModel:
    """Native dimension, and the `output_dimension` values allowed (empty: fixed)."""

    dim: int
    dims: tuple[int, ...] = ()
    native: tuple[str, ...] = wire.COHERE_NATIVE_TYPES
    max_batch: int = MAX_TEXTS_PER_CALL


COHERE_MODELS: dict[str, CohereModel] = {
    "embed-english-v3.0": CohereModel(1024),
    "embed-multilingual-v3.0": CohereModel(1024),
    "embed-english-light-v3.0": CohereModel(384),
    "embed-multilingual-light-v3.0": CohereModel(384),
    "embed-v4.0": CohereModel(1536, (256, 512, 1024, 1536)),
}
_STATUS = retry.StatusRules(
    retry_statuses=frozenset({408, 409, 429}),
    auth_statuses=frozenset({401, 403, 498}),
    auth_hint="check the API key in CO_API_KEY",
)


class CohereProvider(RemoteProvider):
    """Cohere embed models through the official SDK (`cohere.ClientV2`); options and
    their defaults: `options.CohereOptions`."""

    family = "cohere"
    raw_http = True  # False: parse answers with the SDK's models (slow; see `_sdk_http`)
    Options = CohereOptions
    options: CohereOptions
    dimension_option = "output_dimension"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        self.truncate = self.options.truncate
        self.base_url = self.options.base_url
        self._http: Any = None

    @staticmethod
    def lookup(model: str) -> CohereModel:
        if model not in COHERE_MODELS:
            raise unknown_name("cohere model", model, COHERE_MODELS)
        return COHERE_MODELS[model]

    def _fixed_dimension(self, what: str, asked: int) -> None:
        raise UserError(
            f"{what} has a fixed dimension {self.spec.dim}; output_dimension is only for embed-v4.0"
        )

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

    @staticmethod
    def input_type(purpose: Purpose) -> str:
        return wire.cohere_input_type(purpose)

    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        client = self.client()
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

        return self.retrying(attempt)

    # --- internals ----------------------------------------------------------------

    def _connect(self) -> Any:
        import cohere
        import httpx

        key = (
            self.options.api_key or os.environ.get("CO_API_KEY") or os.environ.get("COHERE_API_KEY")
        )
        if not key:
            raise UserError(f"{self.name}: no Cohere API key; set CO_API_KEY or pass api_key")
        pool = max(10, self.n_jobs)
        self._http = httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        )
        return cohere.ClientV2(
            api_key=key,
            base_url=self.base_url or os.environ.get("CO_API_URL") or None,
            timeout=self.timeout,
            max_retries=0,
            httpx_client=self._http,
            log_warning_experimental_features=False,
        )

    def _release(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None

    def _secrets(self) -> list[str | None]:
        return [
            self.options.api_key,
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
            raise retry.MalformedResponse("answer is not valid JSON") from None
        return wire.parse_answer(self.name, data, self.native_types, n)

    def _parse_sdk(self, response: Any, n: int) -> Batch:
        emb = getattr(response, "embeddings", None)
        if emb is None:
            raise retry.MalformedResponse("answer has no embeddings")
        vectors = wire.float_matrix(self.name, getattr(emb, "float_", None))
        found = {t: getattr(emb, t, None) for t in self.native_types}
        extras = wire.native_arrays(self.name, found, self.native_types, n)
        tokens = 0
        billed = getattr(getattr(response, "meta", None), "billed_units", None)
        if billed is not None and getattr(billed, "input_tokens", None) is not None:
            tokens = int(billed.input_tokens)
        return Batch(vectors=vectors, tokens=tokens, extras=extras)

    def _classify(self, exc: BaseException) -> retry.Failure | None:
        import httpx
        from cohere.core.api_error import ApiError
        from cohere.core.parse_error import ParsingError

        if isinstance(exc, ParsingError):
            return retry.Failure(
                "retry", "MalformedResponse", "answer does not match the v2 schema"
            )
        if isinstance(exc, httpx.TimeoutException):
            return retry.Failure("retry", "Timeout", f"no answer within {self.timeout:g} s")
        failure = retry.malformed_or_transport(exc, (httpx.TransportError,), self._secrets())
        if failure is not None or not isinstance(exc, ApiError):
            return failure
        status = exc.status_code
        message = retry.scrub(_body_message(exc.body), self._secrets())
        if status is None:
            return retry.Failure("fatal", type(exc).__name__, message)
        if 200 <= status < 300:
            return retry.Failure("retry", "MalformedResponse", "answer is not valid JSON")
        return retry.classify_status(_STATUS, status, f"HTTP {status}", message, exc.headers)


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
