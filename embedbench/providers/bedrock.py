"""Amazon Bedrock `InvokeModel` for Titan and Cohere embedding models.

One boto3 `bedrock-runtime` client is created on first use (from a private boto3
session, since the default session is not thread-safe) and shared by the
provider's threads, with `max_pool_connections` ≥ `n_jobs`. botocore's own retries
are off (`total_max_attempts=1`): `retry.call_with_retries` retries throttling,
`ModelNotReady`, 5xx, `ModelTimeoutException` (408, which botocore never retries),
`ModelErrorException` (424), timeouts and unreadable answers, honouring
`Retry-After`, for at most `max_attempts` attempts.

Endpoint: `endpoint_url`, else botocore's `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` /
`AWS_ENDPOINT_URL`, else AWS. Region: `region`, else the profile or `AWS_REGION` /
`AWS_DEFAULT_REGION`, else us-east-1. Credentials: boto3's usual chain (`profile`).

Models and request bodies:

- `amazon.titan-embed-text-v1`: `{"inputText"}`, 1536 dims, one text a call.
- `amazon.titan-embed-text-v2:0`: `dimensions` 256/512/1024 (1024), `normalize`
  (true); native `binary`. One text a call, at most 50,000 characters.
- `amazon.titan-embed-image-v1` (text only): `dimensions` 256/384/1024 (1024), sent as
  `embeddingConfig.outputEmbeddingLength`; 128 tokens at most.
- `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`: ≤ 96 texts a call,
  `input_type` by purpose (as `cohere_api`), `truncate` NONE/START/END (END); native
  int8/uint8/binary/ubinary. Bedrock rejects any text over 2048 characters before it
  truncates, so with END the provider sends the first 2048 characters and with START
  the last 2048 (the cut is part of the request, and `max_chars` of the cache key);
  with NONE such a text is a `UserError` before any call.

Token counts: Titan's `inputTextTokenCount`; otherwise the
`x-amzn-bedrock-input-token-count` response header, else the body's
`meta.billed_units.input_tokens`, else 0 (unknown, never estimated).

Native outputs land in `Batch.extras`: Cohere types as in `cohere_api`; Titan v2
`binary` as uint8 packed bits (n × d/8, `np.packbits` order), packed here if the
service sends one 0/1 value per dimension.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from embedbench.errors import ProviderError, UserError, unknown_name
from embedbench.providers.base import Batch, Provider, Purpose
from embedbench.providers.cohere_api import (
    COHERE_NATIVE_TYPES,
    MAX_TEXTS_PER_CALL,
    TRUNCATE_MODES,
    check_batch_size,
    check_n_jobs,
    check_native_types,
    check_nonempty,
    choose,
    cohere_input_type,
    float_matrix,
    native_arrays,
    reject_unknown_options,
)
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

Kind = Literal["titan", "titan-v2", "titan-image", "cohere"]
COHERE_MAX_CHARS = 2048


@dataclass(frozen=True)
class BedrockModel:
    """What the provider must know about a Bedrock embedding model."""

    kind: Kind
    dim: int
    dims: tuple[int, ...] = ()
    native: tuple[str, ...] = ()
    max_batch: int = 1
    max_chars: int | None = None
    max_tokens: int | None = None


BEDROCK_MODELS: dict[str, BedrockModel] = {
    "amazon.titan-embed-text-v1": BedrockModel("titan", 1536, max_tokens=8192),
    "amazon.titan-embed-text-v2:0": BedrockModel(
        "titan-v2", 1024, (256, 512, 1024), ("binary",), max_chars=50_000, max_tokens=8192
    ),
    "amazon.titan-embed-image-v1": BedrockModel(
        "titan-image", 1024, (256, 384, 1024), max_tokens=128
    ),
    "cohere.embed-english-v3": BedrockModel(
        "cohere", 1024, (), COHERE_NATIVE_TYPES, MAX_TEXTS_PER_CALL, COHERE_MAX_CHARS, 512
    ),
    "cohere.embed-multilingual-v3": BedrockModel(
        "cohere", 1024, (), COHERE_NATIVE_TYPES, MAX_TEXTS_PER_CALL, COHERE_MAX_CHARS, 512
    ),
}
# Cross-region inference profiles prefix a model id with a geography.
_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")

_RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)


def lookup_model(model: str) -> BedrockModel:
    """The spec of a model id (with or without a cross-region profile prefix)."""
    base = model
    for prefix in _PROFILE_PREFIXES:
        if model.startswith(prefix):
            base = model[len(prefix) :]
            break
    if base not in BEDROCK_MODELS:
        raise unknown_name("bedrock model", model, BEDROCK_MODELS)
    return BEDROCK_MODELS[base]


class BedrockProvider(Provider):
    """Titan and Cohere embedding models on Amazon Bedrock, through boto3.

    Options: `region`, `endpoint_url`, `profile`, `dimensions`, `normalize` (Titan v2),
    `truncate` (Cohere: NONE/START/END, default END), `native_types`, `batch_size`
    (Titan: 1; Cohere: ≤ 96, default 96), `n_jobs` (default 4), `connect_timeout`
    (10 s), `timeout` (read timeout, 60 s), `max_attempts` (8), `backoff_base` (0.5 s),
    `backoff_max` (20 s), `retry_after_max` (60 s), `requests_per_minute` (none).
    """

    family = "bedrock"
    _OPTIONS = (
        "region",
        "endpoint_url",
        "profile",
        "dimensions",
        "normalize",
        "truncate",
        "native_types",
        "connect_timeout",
        *CALL_OPTIONS,
    )

    def __init__(
        self,
        model: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        dimensions: int | None = None,
        normalize: bool | None = None,
        truncate: str | None = None,
        native_types: list[str] | tuple[str, ...] | str | None = None,
        batch_size: int | None = None,
        n_jobs: int = 4,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        retry_after_max: float = 60.0,
        requests_per_minute: float | None = None,
        **unknown: Any,
    ):
        reject_unknown_options("bedrock", unknown, self._OPTIONS)
        spec = lookup_model(model)
        what = f"bedrock:{model}"
        check_call_options(
            what,
            region=region,
            endpoint_url=endpoint_url,
            profile=profile,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            requests_per_minute=requests_per_minute,
        )
        if dimensions is not None and not spec.dims and dimensions != spec.dim:
            raise UserError(f"{what} has a fixed dimension {spec.dim}; got dimensions={dimensions}")
        dim = spec.dim if dimensions is None else dimensions
        if spec.dims:
            choose(f"{what}: dimensions", dim, spec.dims)
        if normalize is not None and spec.kind != "titan-v2":
            raise UserError(f"{what}: normalize applies only to amazon.titan-embed-text-v2:0")
        if normalize is not None and not isinstance(normalize, bool):
            raise UserError(f"{what}: normalize must be true or false; got {normalize!r}")
        if truncate is not None and spec.kind != "cohere":
            raise UserError(f"{what}: truncate applies only to the cohere.* models")
        if batch_size is None:
            batch_size = spec.max_batch
        super().__init__(
            model,
            region=region,
            endpoint_url=endpoint_url,
            profile=profile,
            dimensions=dimensions,
            normalize=normalize,
            truncate=truncate,
            native_types=native_types,
            batch_size=batch_size,
            n_jobs=n_jobs,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            requests_per_minute=requests_per_minute,
        )
        self.spec = spec
        self.dim = dim
        self.normalize = True if normalize is None else normalize
        self.truncate = choose(f"{what}: truncate", truncate or "END", TRUNCATE_MODES)
        self.native_types = check_native_types(what, native_types, spec.native)
        self.batch_size = check_batch_size(what, batch_size, spec.max_batch)
        self.n_jobs = check_n_jobs(what, n_jobs)
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile
        self.connect_timeout = float(connect_timeout)
        self.timeout = float(timeout)
        self.policy = RetryPolicy(max_attempts, backoff_base, backoff_max, retry_after_max)
        self.limiter = RateLimiter(requests_per_minute)
        self._client: Any = None
        self._credential_parts: list[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"BedrockProvider(model={self.model!r}, region={self.region!r}, "
            f"endpoint_url={self.endpoint_url!r})"
        )

    # --- contract -----------------------------------------------------------------

    def request_params(self, purpose: Purpose) -> dict[str, Any]:
        kind = self.spec.kind
        if kind == "titan-v2":
            return {"dimensions": self.dim, "normalize": self.normalize}
        if kind == "titan-image":
            return {"dimensions": self.dim}
        if kind == "cohere":
            return {
                "input_type": cohere_input_type(purpose),
                "truncate": self.truncate,
                "max_chars": COHERE_MAX_CHARS,
            }
        return {}

    def expected_dim(self) -> int:
        return self.dim

    def check_text(self, text: str) -> None:
        check_nonempty(self.name, text)
        limit = self.spec.max_chars
        if limit is not None and len(text) > limit:
            cohere = self.spec.kind == "cohere"
            if not cohere or self.truncate == "NONE":
                hint = " with truncate NONE (use END or START)" if cohere else ""
                raise UserError(
                    f"{self.name} accepts at most {limit} characters per text{hint}; "
                    f"got {len(text)} characters: {text[:40]!r}..."
                )
        if self.spec.max_tokens is not None and self.spec.kind != "cohere":
            # Every whitespace-separated word is at least one token, so this is sure.
            words = len(text.split())
            if words > self.spec.max_tokens:
                raise UserError(
                    f"{self.name} accepts at most {self.spec.max_tokens} tokens per text; "
                    f"got a text of {words} words: {text[:40]!r}..."
                )

    def native_codes(self, purpose: Purpose | None = None) -> list[str]:
        """Native quantized types this model can return alongside the floats."""
        return list(self.spec.native)

    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        client = self._get_client()
        if self.spec.kind == "cohere":
            return self._invoke(client, self._cohere_body(texts, purpose), len(texts))
        parts = [self._invoke(client, self._titan_body(t), 1) for t in texts]
        if len(parts) == 1:
            return parts[0]
        extras = {t: np.concatenate([p.extras[t] for p in parts]) for t in self.native_types}
        return Batch(
            vectors=np.concatenate([p.vectors for p in parts]),
            tokens=sum(p.tokens for p in parts),
            extras=extras,
        )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    # --- requests -----------------------------------------------------------------

    def cut(self, text: str) -> str:
        """What is sent for `text` to a Cohere model (≤ 2048 characters)."""
        if self.spec.kind != "cohere" or len(text) <= COHERE_MAX_CHARS:
            return text
        if self.truncate == "START":
            return text[-COHERE_MAX_CHARS:]
        return text[:COHERE_MAX_CHARS]

    def _titan_body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"inputText": text}
        if self.spec.kind == "titan-v2":
            body["dimensions"] = self.dim
            body["normalize"] = self.normalize
            if self.native_types:
                body["embeddingTypes"] = ["float", *self.native_types]
        elif self.spec.kind == "titan-image":
            body["embeddingConfig"] = {"outputEmbeddingLength": self.dim}
        return body

    def _cohere_body(self, texts: list[str], purpose: Purpose) -> dict[str, Any]:
        body: dict[str, Any] = {
            "texts": [self.cut(t) for t in texts],
            "input_type": cohere_input_type(purpose),
            "truncate": self.truncate,
        }
        if self.native_types:
            body["embedding_types"] = ["float", *self.native_types]
        return body

    def _invoke(self, client: Any, body: dict[str, Any], n: int) -> Batch:
        payload = json.dumps(body)

        def attempt() -> Batch:
            response = client.invoke_model(
                modelId=self.model,
                body=payload,
                contentType="application/json",
                accept="application/json",
            )
            raw = response["body"].read()
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise MalformedResponse("answer is not valid JSON") from None
            if not isinstance(data, dict):
                raise MalformedResponse("answer is not a JSON object")
            if self.spec.kind == "cohere":
                return self._parse_cohere(data, headers, n)
            return self._parse_titan(data, headers)

        return call_with_retries(attempt, self._classify, self.policy, self.limiter, self.name)

    def _parse_titan(self, data: dict[str, Any], headers: dict[str, str]) -> Batch:
        by_type = data.get("embeddingsByType") or {}
        floats = data.get("embedding", by_type.get("float"))
        if not isinstance(floats, list):
            raise MalformedResponse("answer has no 'embedding'")
        vectors = float_matrix(self.name, [floats])
        extras: dict[str, np.ndarray] = {}
        if "binary" in self.native_types:
            bits = by_type.get("binary")
            if not isinstance(bits, list):
                raise MalformedResponse("answer lacks the requested 'binary' embedding")
            extras["binary"] = _titan_binary(self.name, bits, self.dim)
        tokens = data.get("inputTextTokenCount")
        if tokens is None:
            tokens = _header_tokens(headers)
        return Batch(vectors=vectors, tokens=int(tokens or 0), extras=extras)

    def _parse_cohere(self, data: dict[str, Any], headers: dict[str, str], n: int) -> Batch:
        emb = data.get("embeddings")
        if isinstance(emb, dict):
            vectors = float_matrix(self.name, emb.get("float"))
            extras = native_arrays(self.name, emb, self.native_types, n)
        elif isinstance(emb, list):
            if self.native_types:
                raise MalformedResponse("answer lacks the requested embedding types")
            vectors = float_matrix(self.name, emb)
            extras = {}
        else:
            raise MalformedResponse("answer has no 'embeddings'")
        tokens = _header_tokens(headers)
        if tokens is None:
            billed = (data.get("meta") or {}).get("billed_units") or {}
            tokens = billed.get("input_tokens")
        return Batch(vectors=vectors, tokens=int(tokens or 0), extras=extras)

    # --- client and errors --------------------------------------------------------

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config
                from botocore.exceptions import BotoCoreError

                try:
                    session = boto3.session.Session(
                        profile_name=self.profile, region_name=self.region
                    )
                    region = session.region_name or "us-east-1"
                    config = Config(
                        region_name=region,
                        max_pool_connections=max(10, self.n_jobs),
                        retries={"total_max_attempts": 1, "mode": "standard"},
                        connect_timeout=self.connect_timeout,
                        read_timeout=self.timeout,
                        user_agent_extra="embedbench",
                    )
                    self._client = session.client(
                        "bedrock-runtime",
                        region_name=region,
                        endpoint_url=self.endpoint_url,
                        config=config,
                    )
                    creds = session.get_credentials()
                except BotoCoreError as e:
                    raise UserError(
                        f"{self.name}: cannot set up the AWS client: {scrub(e)}"
                    ) from None
                if creds is not None:
                    frozen = creds.get_frozen_credentials()
                    self._credential_parts = [
                        p for p in (frozen.access_key, frozen.secret_key, frozen.token) if p
                    ]
            return self._client

    def _classify(self, exc: BaseException) -> Failure | None:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        secrets = self._credential_parts
        if isinstance(exc, MalformedResponse):
            return Failure("retry", "MalformedResponse", str(exc))
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return Failure(
                "user",
                type(exc).__name__,
                "no usable AWS credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run aws configure)",
            )
        if isinstance(exc, HTTPClientError | ConnectionError):
            return Failure("retry", type(exc).__name__, scrub(exc, secrets))
        if not isinstance(exc, ClientError):
            return None
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(error.get("Code") or "Unknown")
        status = meta.get("HTTPStatusCode")
        message = scrub(error.get("Message") or "", secrets)
        if code in _RETRY_CODES or status in (408, 429) or (status or 0) >= 500:
            return Failure("retry", code, message, parse_retry_after(meta.get("HTTPHeaders")))
        if code in _AUTH_CODES or status in (401, 403):
            return Failure(
                "user", code, f"{message} (check AWS credentials and model access)".lstrip()
            )
        if code == "ServiceQuotaExceededException":
            return Failure("fatal", code, message)
        if status is not None and 400 <= status < 500:
            if self.spec.max_tokens and "token" in message.lower():
                message += f" (this model takes at most {self.spec.max_tokens} tokens a text)"
            return Failure("user", code, message)
        return Failure("fatal", code, message)


def _header_tokens(headers: dict[str, str]) -> int | None:
    value = {k.lower(): v for k, v in (headers or {}).items()}.get(
        "x-amzn-bedrock-input-token-count"
    )
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _titan_binary(what: str, bits: list[Any], dim: int) -> np.ndarray:
    """Titan v2's binary embedding as packed uint8 bits (1 × dim/8)."""
    arr = np.asarray(bits, dtype=np.int64).reshape(1, -1)
    if arr.shape[1] == dim:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ProviderError(f"{what} returned binary values other than 0 and 1")
        return np.packbits(arr.astype(np.uint8), axis=1)
    if arr.shape[1] * 8 == dim:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ProviderError(f"{what} returned packed binary values outside 0..255")
        return arr.astype(np.uint8)
    raise ProviderError(f"{what} returned a binary embedding of length {arr.shape[1]} for {dim}")
