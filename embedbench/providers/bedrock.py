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

Options and their defaults: `options.BedrockOptions`. Native outputs land in
`Batch.extras`: Cohere types as in `cohere_wire` (whose parser reads the Cohere
models' answers, as for Cohere's own API); Titan v2
`binary` as uint8 packed bits (n × d/8, `np.packbits` order), packed here if the
service sends one 0/1 value per dimension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from embedbench.errors import ProviderError, UserError, unknown_name
from embedbench.providers.base import Batch, Purpose
from embedbench.providers.cohere_wire import (
    COHERE_NATIVE_TYPES,
    cohere_input_type,
    float_matrix,
    parse_answer,
)
from embedbench.providers.options import MAX_TEXTS_PER_CALL, TRUNCATE_MODES, BedrockOptions, choose
from embedbench.providers.remote import RemoteProvider
from embedbench.providers.retry import (
    Failure,
    MalformedResponse,
    StatusRules,
    classify_status,
    malformed_or_transport,
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

_STATUS = StatusRules(
    retry_statuses=frozenset({408, 429}),
    auth_statuses=frozenset({401, 403}),
    auth_hint="check AWS credentials and model access",
    retry_codes=frozenset(
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
    ),
    auth_codes=frozenset(
        {
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "IncompleteSignature",
            "MissingAuthenticationTokenException",
            "ExpiredTokenException",
            "InvalidClientTokenId",
        }
    ),
    fatal_codes=frozenset({"ServiceQuotaExceededException"}),
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


class BedrockProvider(RemoteProvider):
    """Titan and Cohere embedding models on Amazon Bedrock, through boto3; options and
    their defaults: `options.BedrockOptions`."""

    family = "bedrock"
    lookup = staticmethod(lookup_model)
    Options = BedrockOptions
    options: BedrockOptions
    dimension_option = "dimensions"

    def __init__(self, model: str, **options: Any):
        super().__init__(model, **options)
        what, opts = self.name, self.options
        if opts.normalize is not None and self.spec.kind != "titan-v2":
            raise UserError(f"{what}: normalize applies only to amazon.titan-embed-text-v2:0")
        if opts.truncate is not None and self.spec.kind != "cohere":
            raise UserError(f"{what}: truncate applies only to the cohere.* models")
        self.normalize = True if opts.normalize is None else opts.normalize
        self.truncate = choose(f"{what}: truncate", opts.truncate or "END", TRUNCATE_MODES)
        self.region = opts.region
        self.endpoint_url = opts.endpoint_url
        self.profile = opts.profile
        self.connect_timeout = float(opts.connect_timeout)
        self._credential_parts: list[str] = []

    def _fixed_dimension(self, what: str, asked: int) -> None:
        if asked != self.spec.dim:
            raise UserError(f"{what} has a fixed dimension {self.spec.dim}; got dimensions={asked}")

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

    def check_text(self, text: str) -> None:
        super().check_text(text)
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

    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        client = self.client()
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
                return parse_answer(self.name, data, self.native_types, n, _header_tokens(headers))
            return self._parse_titan(data, headers)

        return self.retrying(attempt)

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

    # --- client and errors --------------------------------------------------------

    def _connect(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        try:
            session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            region = session.region_name or "us-east-1"
            config = Config(
                region_name=region,
                max_pool_connections=max(10, self.n_jobs),
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=self.connect_timeout,
                read_timeout=self.timeout,
                user_agent_extra="embedbench",
            )
            client = session.client(
                "bedrock-runtime", region_name=region, endpoint_url=self.endpoint_url, config=config
            )
            creds = session.get_credentials()
        except BotoCoreError as e:
            raise UserError(f"{self.name}: cannot set up the AWS client: {scrub(e)}") from None
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            self._credential_parts = [
                p for p in (frozen.access_key, frozen.secret_key, frozen.token) if p
            ]
        return client

    def _token_hint(self, message: str) -> str:
        if self.spec.max_tokens and "token" in message.lower():
            message += f" (this model takes at most {self.spec.max_tokens} tokens a text)"
        return message

    def _classify(self, exc: BaseException) -> Failure | None:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        secrets = self._credential_parts
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return Failure(
                "user",
                type(exc).__name__,
                "no usable AWS credentials (set AWS_PROFILE, AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, or run aws configure)",
            )
        failure = malformed_or_transport(exc, (HTTPClientError, ConnectionError), secrets)
        if failure is not None or not isinstance(exc, ClientError):
            return failure
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(error.get("Code") or "Unknown")
        status = meta.get("HTTPStatusCode")
        message = scrub(error.get("Message") or "", secrets)
        rules = replace(_STATUS, input_hint=self._token_hint)
        return classify_status(rules, status, code, message, meta.get("HTTPHeaders"))


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
