"""A loopback HTTP server speaking Bedrock `InvokeModel` and Cohere `/v2/embed`.

Real SDK clients (boto3 with `endpoint_url`, `cohere.ClientV2` with `base_url`) talk
to it, so serialization, signing, connection pooling, error parsing and retries are
all exercised. Vectors are derived from a hash of (model, input type, text), so a
text always gets the same vector, and dimensions follow the request.

Faults are programmable: `inject(kind, ...)` queues faults for the next requests
(FIFO; "ok" is a no-fault entry), and `rates = {kind: probability}` draws one from a
seeded generator for every request the queue does not cover. Kinds: throttle (429,
no Retry-After), throttle_retry_after (429 with `Retry-After: retry_after`),
not_ready (429 ModelNotReady), 408, 424, 500, 503, 400, 403, echo_auth (400 that
echoes the Authorization header), malformed (200, cut JSON), wrong_dim, nan, count
(one vector short, batch APIs), slow (sleep `slow_seconds`, then answer), hang
(sleep `hang_seconds`, then drop the connection unanswered).

`same_vector = True`: every text gets one and the same vector (scores become NaN).
`reject = {text, ...}`: every request holding one of these texts gets a 400 naming
its position, as the real services do (Bedrock `#/texts/41: ...`).

It binds 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import numpy as np

FAULTS = (
    "throttle",
    "throttle_retry_after",
    "not_ready",
    "408",
    "424",
    "500",
    "503",
    "400",
    "403",
    "echo_auth",
    "malformed",
    "wrong_dim",
    "nan",
    "count",
    "slow",
    "hang",
)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "throttle": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "throttle_retry_after": (429, "ThrottlingException", "Rate exceeded."),
    "not_ready": (429, "ModelNotReadyException", "Model is not ready to serve inference."),
    "408": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
    "424": (424, "ModelErrorException", "The model returned an error."),
    "500": (500, "InternalServerException", "An internal server error occurred."),
    "503": (503, "ServiceUnavailableException", "The service is unavailable."),
    "400": (400, "ValidationException", "Malformed input request: injected validation error"),
    "403": (403, "AccessDeniedException", "You don't have access to the model."),
}
_COHERE_BEDROCK = {"cohere.embed-english-v3": 1024, "cohere.embed-multilingual-v3": 1024}
COHERE_MODELS = {
    "embed-english-v3.0": (1024, ()),
    "embed-multilingual-v3.0": (1024, ()),
    "embed-english-light-v3.0": (384, ()),
    "embed-multilingual-light-v3.0": (384, ()),
    "embed-v4.0": (1536, (256, 512, 1024, 1536)),
}
_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}
_TYPES = {"float", "int8", "uint8", "binary", "ubinary"}


class _Reply(Exception):
    """Short-circuit a handler with an error answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _gaussian(key: str, dim: int) -> np.ndarray:
    seed = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(int.from_bytes(seed[:8], "little")).standard_normal(dim)


@functools.lru_cache(maxsize=200_000)
def _word_vector(model: str, word: str, dim: int) -> np.ndarray:
    return _gaussian(f"{model}\x00word\x00{word}", dim)


def fake_vector(model: str, input_type: str | None, text: str, dim: int) -> np.ndarray:
    """The float32 vector the server answers for a text (deterministic).

    A hashed bag of words plus a little per-text noise: texts sharing words get
    similar vectors, so a sweep over the fake providers has real signal to lose.
    """
    words = re.findall(r"\w+", text.lower())
    vec = sum((_word_vector(model, w, dim) for w in words), np.zeros(dim))
    vec = vec + 0.5 * _gaussian(f"{model}\x00{input_type}\x00{text}", dim)
    return vec.astype(np.float32)


def fake_tokens(text: str) -> int:
    return len(text.split()) + 1


def quantized(vec: np.ndarray) -> dict[str, list[int]]:
    """Integer encodings of a vector, in Cohere's conventions."""
    int8 = np.clip(np.round(vec * 40), -128, 127).astype(np.int64)
    ubinary = np.packbits(vec > 0).astype(np.int64)
    return {
        "int8": int8.tolist(),
        "uint8": (int8 + 128).tolist(),
        "ubinary": ubinary.tolist(),
        "binary": (ubinary - 128).tolist(),
    }


@dataclass
class Call:
    """One request as received."""

    path: str
    model: str
    body: Any
    headers: dict[str, str]
    fault: str | None
    texts: list[str] = field(default_factory=list)


class FakeServer:
    """Threaded fake of Bedrock runtime and Cohere v2 on 127.0.0.1 (port 0)."""

    def __init__(self, latency: float = 0.0, seed: int = 0, jitter: float = 0.0):
        self.latency = latency
        self.jitter = jitter
        self.rates: dict[str, float] = {}
        self.retry_after = "1"
        self.retry_after_header = "Retry-After"
        self.slow_seconds = 1.0
        self.hang_seconds = 30.0
        self.reject: set[str] = set()
        self.same_vector = False
        self.record = True
        self._queue: deque[str] = deque()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.texts_received = 0
        self.texts_failed = 0
        self.log: list[Call] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> FakeServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *kinds: str) -> None:
        """Queue faults for the next requests, in order ("ok" for none)."""
        for k in kinds:
            if k != "ok" and k not in FAULTS:
                raise ValueError(f"unknown fault {k!r}")
        with self._lock:
            self._queue.extend(kinds)

    def reset(self) -> None:
        """Forget counters, log, queued faults and rates."""
        with self._lock:
            self._queue.clear()
            self.rates = {}
            self.calls = self.texts_received = self.texts_failed = 0
            self.log = []

    def calls_to(self, model: str) -> list[Call]:
        return [c for c in self.log if c.model == model]

    # --- per request --------------------------------------------------------------

    def _next_fault(self) -> str | None:
        with self._lock:
            if self._queue:
                kind = self._queue.popleft()
                return None if kind == "ok" else kind
            if not self.rates:
                return None
            u = self._rng.random()
            acc = 0.0
            for kind in sorted(self.rates):
                acc += self.rates[kind]
                if u < acc:
                    return kind
            return None

    def _arrive(self, call: Call) -> None:
        """Count a request (and its texts) as soon as it is read."""
        with self._lock:
            self.calls += 1
            self.texts_received += len(call.texts)
            if self.record:
                self.log.append(call)

    def _failed(self, call: Call) -> None:
        with self._lock:
            self.texts_failed += len(call.texts)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else 40 ms delayed-ACK stalls per answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    server._serve(self, raw)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (timeout test)

        return Handler

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _serve(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        path = h.path.split("?")[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        bedrock = path.startswith("/model/") and path.endswith("/invoke")
        model = unquote(path[len("/model/") : -len("/invoke")]) if bedrock else ""
        call = Call(path=path, model=model, body=None, headers=headers, fault=None)
        delay = self.latency + (self._rng.random() * self.jitter if self.jitter else 0.0)
        if delay:
            time.sleep(delay)
        arrived = False
        try:
            try:
                call.body = json.loads(raw)
            except ValueError:
                raise _Reply(400, "SerializationException", "body is not JSON") from None
            if bedrock:
                call.texts = _bedrock_texts(model, call.body)
            elif path == "/v2/embed":
                call.model = str(call.body.get("model"))
                call.texts = _cohere_texts(call.body, headers)
            else:
                raise _Reply(404, "UnknownOperationException", f"no route {path}")
            call.fault = self._next_fault()
            self._arrive(call)
            arrived = True
            self._rejected(call, bedrock)
            if call.fault == "hang":
                time.sleep(self.hang_seconds)
                self._failed(call)
                h.close_connection = True
                return
            self._fault(call)
            if call.fault == "slow":
                time.sleep(self.slow_seconds)
            body, extra = self._bedrock(call) if bedrock else self._cohere(call)
            broken = call.fault in ("malformed", "wrong_dim", "nan", "count")
            if call.fault == "malformed":
                body = body[: max(1, len(body) // 2)]
            if broken:
                self._failed(call)
            self._send(h, 200, body, extra)
        except _Reply as r:
            if not arrived:
                self._arrive(call)
            self._failed(call)
            self._error(h, r, bedrock)

    def _fault(self, call: Call) -> None:
        kind = call.fault
        if kind == "throttle_retry_after":
            raise _Reply(*_ERRORS[kind], headers={self.retry_after_header: self.retry_after})
        if kind in _ERRORS:
            raise _Reply(*_ERRORS[kind])
        if kind == "echo_auth":
            raise _Reply(
                400,
                "ValidationException",
                f"bad request; you sent Authorization: {call.headers.get('authorization')}",
            )

    def _rejected(self, call: Call, bedrock: bool) -> None:
        for i, text in enumerate(call.texts):
            if text in self.reject:
                where = "#/inputText" if "titan" in call.model else f"#/texts/{i}"
                raise _Reply(
                    400,
                    "ValidationException" if bedrock else "",
                    f"{'Malformed input request' if bedrock else 'invalid request'}: "
                    f"{where}: text rejected",
                )

    def _error(self, h: BaseHTTPRequestHandler, r: _Reply, bedrock: bool) -> None:
        headers = dict(r.headers)
        if bedrock:
            headers["x-amzn-ErrorType"] = f"{r.code}:http://internal.amazon.com/coral/"
            headers["x-amzn-RequestId"] = "00000000-0000-0000-0000-000000000000"
        self._send(h, r.status, json.dumps({"message": r.message}).encode(), headers)

    # --- Bedrock ------------------------------------------------------------------

    def _bedrock(self, call: Call) -> tuple[bytes, dict[str, str]]:
        body, model, fault = call.body, call.model, call.fault
        if model in (
            "amazon.titan-embed-text-v1",
            "amazon.titan-embed-text-v2:0",
            "amazon.titan-embed-image-v1",
        ):
            text = body["inputText"]
            dim = 1536 if model.endswith("v1") and "image" not in model else 1024
            if model.endswith("v2:0"):
                dim = body.get("dimensions", 1024)
            if "image" in model:
                dim = body.get("embeddingConfig", {}).get("outputEmbeddingLength", 1024)
            vec = fake_vector(model, None, text, dim)
            if model.endswith("v2:0") and body.get("normalize", True):
                vec = (vec / np.linalg.norm(vec)).astype(np.float32)
            floats = _floats(vec, fault)
            out: dict[str, Any] = {"embedding": floats, "inputTextTokenCount": fake_tokens(text)}
            if "embeddingTypes" in body:
                out["embeddingsByType"] = {"float": floats}
                if "binary" in body["embeddingTypes"]:
                    out["embeddingsByType"]["binary"] = (vec > 0).astype(int).tolist()
            if "image" in model:
                out["message"] = None
            tokens = fake_tokens(text)
            return json.dumps(out).encode(), {"x-amzn-bedrock-input-token-count": str(tokens)}
        # Cohere on Bedrock
        dim = _COHERE_BEDROCK[model]
        vecs = [fake_vector(model, body["input_type"], t, dim) for t in body["texts"]]
        types = body.get("embedding_types")
        out = {"id": "fake", "texts": body["texts"]}
        floats_rows = [_floats(v, fault) for v in vecs]
        if fault == "count":
            floats_rows = floats_rows[:-1]
        if types:
            by_type: dict[str, Any] = {"float": floats_rows} if "float" in types else {}
            codes = [quantized(v) for v in vecs] if set(types) - {"float"} else []
            for t in types:
                if t != "float":
                    by_type[t] = [c[t] for c in codes]
            out["embeddings"] = by_type
            out["response_type"] = "embeddings_by_type"
        else:
            out["embeddings"] = floats_rows
            out["response_type"] = "embeddings_floats"
        tokens = sum(fake_tokens(t) for t in body["texts"])
        return json.dumps(out).encode(), {"x-amzn-bedrock-input-token-count": str(tokens)}

    # --- Cohere -------------------------------------------------------------------

    def _cohere(self, call: Call) -> tuple[bytes, dict[str, str]]:
        body, fault, model = call.body, call.fault, call.model
        dim = body.get("output_dimension", COHERE_MODELS[model][0])
        types = body.get("embedding_types") or ["float"]
        vecs = [
            fake_vector(model, body["input_type"], "same" if self.same_vector else t, dim)
            for t in call.texts
        ]
        emb: dict[str, Any] = {}
        codes = [quantized(v) for v in vecs] if set(types) - {"float"} else []
        for t in types:
            if t == "float":
                rows = [_floats(v, fault) for v in vecs]
                emb["float"] = rows[:-1] if fault == "count" else rows
            else:
                emb[t] = [c[t] for c in codes]
        out = {
            "id": "fake-id",
            "embeddings": emb,
            "texts": call.texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": sum(fake_tokens(t) for t in call.texts)},
            },
            "response_type": "embeddings_by_type",
        }
        return json.dumps(out).encode(), {}


def _floats(vec: np.ndarray, fault: str | None) -> list[float]:
    out = vec.tolist()
    if fault == "wrong_dim":
        out = out[:-1]
    elif fault == "nan":
        out[0] = float("nan")
    return out


def _bedrock_texts(model: str, body: Any) -> list[str]:
    """The texts of a Bedrock request, after the checks Bedrock makes (a `_Reply` if bad)."""
    if not isinstance(body, dict):
        raise _Reply(400, "ValidationException", "Malformed input request: expected an object")
    if model.startswith("amazon.titan-embed"):
        allowed = {
            "amazon.titan-embed-text-v1": {"inputText"},
            "amazon.titan-embed-text-v2:0": {
                "inputText",
                "dimensions",
                "normalize",
                "embeddingTypes",
            },
            "amazon.titan-embed-image-v1": {"inputText", "inputImage", "embeddingConfig"},
        }.get(model)
        if allowed is None:
            raise _Reply(400, "ValidationException", "The provided model identifier is invalid.")
        extra = sorted(set(body) - allowed)
        if extra:
            raise _Reply(
                400,
                "ValidationException",
                f"Malformed input request: extraneous key [{extra[0]}] is not permitted",
            )
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            raise _Reply(
                400,
                "ValidationException",
                "Malformed input request: #/inputText: expected minLength: 1",
            )
        if model.endswith("v2:0"):
            if body.get("dimensions", 1024) not in (256, 512, 1024):
                raise _Reply(
                    400,
                    "ValidationException",
                    "Malformed input request: #/dimensions: 256, 512 or 1024",
                )
            if not set(body.get("embeddingTypes", ["float"])) <= {"float", "binary"}:
                raise _Reply(
                    400,
                    "ValidationException",
                    "Malformed input request: #/embeddingTypes: float or binary",
                )
        if "image" in model:
            length = body.get("embeddingConfig", {}).get("outputEmbeddingLength", 1024)
            if length not in (256, 384, 1024):
                raise _Reply(
                    400,
                    "ValidationException",
                    "Malformed input request: #/embeddingConfig/outputEmbeddingLength",
                )
            if fake_tokens(text) - 1 > 128:
                raise _Reply(
                    400,
                    "ValidationException",
                    f"Too many input tokens. Max input tokens: 128, request input token "
                    f"count: {fake_tokens(text) - 1}",
                )
        return [text]
    if model in _COHERE_BEDROCK:
        extra = sorted(set(body) - {"texts", "input_type", "truncate", "embedding_types"})
        if extra:
            raise _Reply(
                400,
                "ValidationException",
                f"Malformed input request: extraneous key [{extra[0]}] is not permitted",
            )
        texts = body.get("texts")
        if not isinstance(texts, list) or not 1 <= len(texts) <= 96:
            raise _Reply(
                400,
                "ValidationException",
                "Malformed input request: #/texts: expected 1 to 96 items",
            )
        for i, t in enumerate(texts):
            if not isinstance(t, str) or len(t) > 2048:
                raise _Reply(
                    400,
                    "ValidationException",
                    f"Malformed input request: #/texts/{i}: expected maxLength: 2048, "
                    f"actual: {len(t)}",
                )
        if body.get("input_type") not in _INPUT_TYPES:
            raise _Reply(
                400,
                "ValidationException",
                "Malformed input request: #/input_type: is not a valid enum value",
            )
        if body.get("truncate", "NONE") not in ("NONE", "START", "END"):
            raise _Reply(
                400,
                "ValidationException",
                "Malformed input request: #/truncate: is not a valid enum value",
            )
        if not set(body.get("embedding_types", ["float"])) <= _TYPES:
            raise _Reply(
                400,
                "ValidationException",
                "Malformed input request: #/embedding_types: is not a valid enum value",
            )
        return list(texts)
    raise _Reply(400, "ValidationException", "The provided model identifier is invalid.")


def _cohere_texts(body: Any, headers: dict[str, str]) -> list[str]:
    """The texts of a Cohere v2 request, after the API's checks (a `_Reply` if bad)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
        raise _Reply(401, "", "no api key supplied")
    if not isinstance(body, dict):
        raise _Reply(400, "", "invalid request: expected a JSON object")
    model = body.get("model")
    if model not in COHERE_MODELS:
        raise _Reply(404, "", f"model '{model}' not found")
    _, dims = COHERE_MODELS[model]
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        raise _Reply(400, "", "invalid request: texts must be a non-empty list")
    if len(texts) > 96:
        raise _Reply(
            400,
            "",
            f"invalid request: total number of texts must be at most 96 - received {len(texts)}",
        )
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise _Reply(400, "", "invalid request: texts must not contain empty strings")
    input_type = body.get("input_type")
    if input_type not in _INPUT_TYPES:
        raise _Reply(400, "", f"invalid request: input_type '{input_type}' is not valid")
    if body.get("truncate", "END") not in ("NONE", "START", "END"):
        raise _Reply(400, "", "invalid request: truncate must be NONE, START or END")
    if "output_dimension" in body:
        if not dims:
            raise _Reply(400, "", f"invalid request: output_dimension is not supported for {model}")
        if body["output_dimension"] not in dims:
            raise _Reply(400, "", f"invalid request: output_dimension must be one of {list(dims)}")
    types = body.get("embedding_types") or ["float"]
    if not set(types) <= _TYPES:
        raise _Reply(400, "", f"invalid request: embedding_types {types} not valid")
    return list(texts)
