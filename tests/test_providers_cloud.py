"""Bedrock and Cohere providers against a loopback fake, with the real SDK clients.

Every test runs with dummy credentials and a socket guard: a connection or DNS
lookup for anything but the loopback address fails the test.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from embedbench.cache import EmbeddingCache
from embedbench.errors import ProviderError, UserError
from embedbench.providers.base import FetchStats, fetch
from embedbench.providers.bedrock import BedrockProvider
from embedbench.providers.cohere_api import CohereProvider
from embedbench.providers.retry import (
    RateLimiter,
    RetryPolicy,
    parse_retry_after,
    scrub,
)

try:
    from tests.fakeserver import FakeServer, fake_vector, quantized
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from fakeserver import FakeServer, fake_vector, quantized

ACCESS_KEY = "AKIAFAKEFAKEFAKE0000"
SECRET_KEY = "fake-secret-do-not-echo"
COHERE_KEY = "co-fake-key-do-not-echo"
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}
TITAN1 = "amazon.titan-embed-text-v1"
TITAN2 = "amazon.titan-embed-text-v2:0"
TITAN_IMAGE = "amazon.titan-embed-image-v1"
COHERE_BR = "cohere.embed-english-v3"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Dummy credentials, no AWS config, no proxies, and only loopback sockets."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "COHERE_API_KEY",
        "CO_API_URL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("CO_API_KEY", COHERE_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise AssertionError(f"test tried to reach {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in _LOOPBACK and host is not None:
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def server():
    with FakeServer(seed=1) as s:
        assert s.host == "127.0.0.1"
        yield s


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "cache.sqlite") as c:
        yield c


def bedrock(server: FakeServer, model: str, **options) -> BedrockProvider:
    return BedrockProvider(model, endpoint_url=server.url, **{**FAST, **options})


def cohere(server: FakeServer, model: str = "embed-english-v3.0", **options) -> CohereProvider:
    return CohereProvider(model, base_url=server.url, **{**FAST, **options})


def provider_for(server: FakeServer, make: str, titan: str = TITAN1, **options):
    """The provider a test's `make` names: "titan" (the `titan` model on Bedrock),
    "cohere_br" (Cohere on Bedrock) or "cohere" (the Cohere API)."""
    if make == "cohere":
        return cohere(server, **options)
    return bedrock(server, titan if make == "titan" else COHERE_BR, **options)


def texts_n(n: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} number {i} about topic {i % 7}" for i in range(n)]


# --- request shapes ---------------------------------------------------------------


def test_titan_v1_shape(server, cache):
    p = bedrock(server, TITAN1)
    stats = FetchStats()
    out = fetch(p, ["hello world", "good bye"], "query", cache, stats)
    assert out.shape == (2, 1536) and out.dtype == np.float32
    assert server.calls == 2
    assert {c.path for c in server.log} == {"/model/amazon.titan-embed-text-v1/invoke"}
    assert sorted(c.body["inputText"] for c in server.log) == ["good bye", "hello world"]
    assert all(set(c.body) == {"inputText"} for c in server.log)
    assert all(c.headers["authorization"].startswith("AWS4-HMAC-SHA256") for c in server.log)
    np.testing.assert_array_equal(out[0], fake_vector(TITAN1, None, "hello world", 1536))
    assert stats.tokens == 3 + 3
    assert p.request_params("query") == {} and p.expected_dim() == 1536
    assert p.native_codes() == []


def test_titan_v2_dims_normalize_and_native_binary(server, cache):
    p = bedrock(server, TITAN2, dimensions=256, normalize=False, native_types=["binary"])
    batch = p.embed_batch(["some text here"], "document")
    call = server.log[-1]
    assert call.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert call.body == {
        "inputText": "some text here",
        "dimensions": 256,
        "normalize": False,
        "embeddingTypes": ["float", "binary"],
    }
    expected = fake_vector(TITAN2, None, "some text here", 256)
    np.testing.assert_array_equal(batch.vectors[0], expected)
    assert batch.extras["binary"].dtype == np.uint8
    np.testing.assert_array_equal(batch.extras["binary"][0], np.packbits(expected > 0))
    assert p.request_params("query") == {"dimensions": 256, "normalize": False}
    assert p.native_codes() == ["binary"]
    # defaults: 1024 dims, normalized, no embeddingTypes unless asked
    q = bedrock(server, TITAN2)
    v = q.embed_batch(["some text here"], "query").vectors[0]
    assert server.log[-1].body == {
        "inputText": "some text here",
        "dimensions": 1024,
        "normalize": True,
    }
    assert v.shape == (1024,) and abs(np.linalg.norm(v) - 1) < 1e-5


def test_titan_image_text_shape(server):
    p = bedrock(server, TITAN_IMAGE, dimensions=384)
    b = p.embed_batch(["a photo of a cat"], "query")
    assert server.log[-1].body == {
        "inputText": "a photo of a cat",
        "embeddingConfig": {"outputEmbeddingLength": 384},
    }
    assert b.vectors.shape == (1, 384)
    with pytest.raises(UserError, match="at most 128 tokens"):
        p.check_text(" ".join(["word"] * 200))


def test_cohere_on_bedrock_shape_batches_and_input_types(server, cache):
    p = bedrock(server, COHERE_BR, native_types=["int8", "ubinary"], n_jobs=1)
    texts = texts_n(100)
    out = fetch(p, texts, "classification", cache)
    assert [len(c.body["texts"]) for c in server.log] == [96, 4]
    first = server.log[0].body
    assert set(first) == {"texts", "input_type", "truncate", "embedding_types"}
    assert first["input_type"] == "classification" and first["truncate"] == "END"
    assert first["embedding_types"] == ["float", "int8", "ubinary"]
    for i in (0, 50, 99):
        np.testing.assert_array_equal(
            out[i], fake_vector(COHERE_BR, "classification", texts[i], 1024)
        )
    b = p.embed_batch(["x y"], "query")
    assert server.log[-1].body["input_type"] == "search_query"
    want = quantized(fake_vector(COHERE_BR, "search_query", "x y", 1024))
    np.testing.assert_array_equal(b.extras["int8"][0], want["int8"])
    np.testing.assert_array_equal(b.extras["ubinary"][0], want["ubinary"])
    assert b.tokens == 3  # from the x-amzn-bedrock-input-token-count header
    for purpose, it in [
        ("document", "search_document"),
        ("clustering", "clustering"),
        ("sts", "search_document"),
    ]:
        assert p.request_params(purpose)["input_type"] == it


def test_cohere_on_bedrock_without_types_reads_float_answer(server):
    p = bedrock(server, "cohere.embed-multilingual-v3", truncate="NONE")
    b = p.embed_batch(["hola", "mundo"], "document")
    assert "embedding_types" not in server.log[-1].body
    assert server.log[-1].body["truncate"] == "NONE"
    assert b.vectors.shape == (2, 1024)


@pytest.mark.parametrize("truncate", ["END", "START"])
def test_cohere_on_bedrock_long_text_is_cut_client_side(server, cache, truncate):
    long = "".join(chr(97 + i % 26) for i in range(5000))
    p = bedrock(server, COHERE_BR, truncate=truncate)
    p.check_text(long)  # allowed: the provider cuts it
    out = fetch(p, [long, "short"], "document", cache)
    sent = server.log[-1].body["texts"]
    cut = long[:2048] if truncate == "END" else long[-2048:]
    assert sent == [cut, "short"]
    np.testing.assert_array_equal(out[0], fake_vector(COHERE_BR, "search_document", cut, 1024))
    assert p.request_params("document")["max_chars"] == 2048


def test_cohere_on_bedrock_long_text_with_truncate_none_is_user_error(server, cache):
    p = bedrock(server, COHERE_BR, truncate="NONE")
    with pytest.raises(UserError, match="at most 2048 characters"):
        fetch(p, ["ok", "x" * 2049], "document", cache)
    assert server.calls == 0


def test_cohere_direct_shape_tokens_and_native(server, cache):
    p = cohere(server, native_types=["int8", "uint8", "binary", "ubinary"], n_jobs=1)
    texts = texts_n(150)
    stats = FetchStats()
    out = fetch(p, texts, "query", cache, stats)
    assert [len(c.texts) for c in server.log] == [96, 54]
    body = server.log[0].body
    assert body["model"] == "embed-english-v3.0"
    assert body["input_type"] == "search_query" and body["truncate"] == "END"
    assert body["embedding_types"] == ["float", "int8", "uint8", "binary", "ubinary"]
    assert "output_dimension" not in body
    assert server.log[0].headers["authorization"] == f"Bearer {COHERE_KEY}"
    np.testing.assert_array_equal(
        out[7], fake_vector("embed-english-v3.0", "search_query", texts[7], 1024)
    )
    assert stats.tokens == sum(len(t.split()) + 1 for t in texts)
    b = p.embed_batch(["alpha beta"], "clustering")
    want = quantized(fake_vector("embed-english-v3.0", "clustering", "alpha beta", 1024))
    for t, dtype, width in [
        ("int8", np.int8, 1024),
        ("uint8", np.uint8, 1024),
        ("binary", np.int8, 128),
        ("ubinary", np.uint8, 128),
    ]:
        assert b.extras[t].dtype == dtype and b.extras[t].shape == (1, width)
        np.testing.assert_array_equal(b.extras[t][0], want[t])
    assert p.native_codes() == ["int8", "uint8", "binary", "ubinary"]


def test_cohere_v4_output_dimension(server):
    p = cohere(server, "embed-v4.0", output_dimension=512)
    b = p.embed_batch(["hello"], "sts")
    assert server.log[-1].body["output_dimension"] == 512
    assert server.log[-1].body["input_type"] == "search_document"
    assert b.vectors.shape == (1, 512) and p.expected_dim() == 512
    assert p.request_params("sts") == {
        "input_type": "search_document",
        "truncate": "END",
        "output_dimension": 512,
    }
    assert cohere(server, "embed-v4.0").expected_dim() == 1536


# --- options and input checks -----------------------------------------------------


def test_unknown_models_and_bad_options_are_user_errors(server):
    with pytest.raises(UserError, match=r"amazon\.titan-embed-text-v1"):
        BedrockProvider("amazon.titan-embed-text-v3")
    with pytest.raises(UserError, match="did you mean 'embed-english-v3.0'"):
        CohereProvider("embed-englsh-v3.0")
    with pytest.raises(UserError, match="256, 512, 1024; got 300"):
        BedrockProvider(TITAN2, dimensions=300)
    with pytest.raises(UserError, match="256, 384, 1024"):
        BedrockProvider(TITAN_IMAGE, dimensions=512)
    with pytest.raises(UserError, match="fixed dimension 1536"):
        BedrockProvider(TITAN1, dimensions=512)
    with pytest.raises(UserError, match="normalize applies only"):
        BedrockProvider(TITAN1, normalize=False)
    with pytest.raises(UserError, match="NONE, START, END"):
        BedrockProvider(COHERE_BR, truncate="MIDDLE")
    with pytest.raises(UserError, match="from 1 to 96"):
        CohereProvider("embed-english-v3.0", batch_size=200)
    with pytest.raises(UserError, match="from 1 to 1"):
        BedrockProvider(TITAN1, batch_size=8)
    with pytest.raises(UserError, match="256, 512, 1024, 1536"):
        CohereProvider("embed-v4.0", output_dimension=300)
    with pytest.raises(UserError, match="only for embed-v4.0"):
        CohereProvider("embed-english-v3.0", output_dimension=512)
    with pytest.raises(UserError, match="allowed: binary"):
        BedrockProvider(TITAN2, native_types=["int8"])
    with pytest.raises(UserError, match="no native quantized outputs"):
        BedrockProvider(TITAN1, native_types=["binary"])
    with pytest.raises(UserError, match="did you mean 'dimensions'"):
        BedrockProvider(TITAN2, dimension=256)
    # a cross-region inference profile id resolves to its model
    assert BedrockProvider("us.cohere.embed-english-v3").batch_size == 96


@pytest.mark.parametrize("make", ["titan", "cohere_br", "cohere"])
def test_empty_text_is_user_error_before_any_call(server, cache, make):
    p = provider_for(server, make, titan=TITAN2)
    for bad in ["", "   \n"]:
        with pytest.raises(UserError, match="empty"):
            fetch(p, ["fine", bad], "document", cache)
    assert server.calls == 0


def test_titan_v2_char_limit():
    p = BedrockProvider(TITAN2)
    with pytest.raises(UserError, match="at most 50000 characters"):
        p.check_text("x" * 50_001)


def test_sdk_configuration(server):
    p = bedrock(server, TITAN1, n_jobs=32)
    client = p.client()
    assert client.meta.config.max_pool_connections == 32
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.region_name == "us-east-1"
    c = cohere(server)
    assert c.client()._client_wrapper.get_base_url() == server.url
    p.close()
    c.close()


def test_endpoint_from_botocore_env_var(server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url)
    p = BedrockProvider(TITAN1, **FAST)
    assert p.embed_batch(["via env"], "query").vectors.shape == (1, 1536)
    assert server.calls == 1


def test_missing_credentials_are_user_errors(server, monkeypatch):
    monkeypatch.delenv("CO_API_KEY")
    with pytest.raises(UserError, match="CO_API_KEY"):
        cohere(server).embed_batch(["x"], "query")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(UserError, match="no usable AWS credentials"):
        bedrock(server, TITAN1).embed_batch(["x"], "query")
    assert server.calls == 0


# --- order and cache --------------------------------------------------------------


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_order_under_threads_matches_request_order(server, cache, make):
    server.jitter = 0.01  # answers complete out of order
    if make == "titan":
        p, model, it, dim = bedrock(server, TITAN1, n_jobs=8), TITAN1, None, 1536
    else:
        p = cohere(server, batch_size=3, n_jobs=8)
        model, it, dim = "embed-english-v3.0", "search_document", 1024
    texts = texts_n(40)
    texts = texts + texts[::3]  # duplicates, in other positions
    out = fetch(p, texts, "document", cache)
    want = np.stack([fake_vector(model, it, t, dim) for t in texts])
    np.testing.assert_array_equal(out, want)
    assert server.texts_received == 40  # each unique text sent once


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_second_fetch_is_served_by_cache(server, tmp_path, make):
    def provider():
        return bedrock(server, TITAN1, n_jobs=4) if make == "titan" else cohere(server)

    texts = texts_n(30)
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        first = fetch(provider(), texts, "query", c)
    calls = server.calls
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        stats = FetchStats()
        again = fetch(provider(), texts, "query", c, stats)
    assert server.calls == calls
    assert stats.calls == 0 and stats.texts_from_cache == 30
    np.testing.assert_array_equal(first, again)


def test_cache_key_separates_request_params(server, cache):
    a = bedrock(server, COHERE_BR)
    assert a.namespace("query") != a.namespace("document")
    assert a.namespace("document") == a.namespace("sts")
    assert bedrock(server, TITAN2, dimensions=256).namespace("query") != bedrock(
        server, TITAN2, dimensions=512
    ).namespace("query")
    assert bedrock(server, COHERE_BR, truncate="END").namespace("query") != bedrock(
        server, COHERE_BR, truncate="START"
    ).namespace("query")
    # native types do not change the floats, so they share the cache
    assert bedrock(server, COHERE_BR, native_types=["int8"]).namespace("query") == a.namespace(
        "query"
    )


# --- faults -----------------------------------------------------------------------

RETRIED = ["throttle", "not_ready", "408", "424", "500", "503", "malformed"]


@pytest.mark.parametrize(
    ("fault", "make"),
    # 424 ModelErrorException is Bedrock's only
    [
        (f, m)
        for f in RETRIED
        for m in ("titan", "cohere_br", "cohere")
        if (f, m) != ("424", "cohere")
    ],
)
def test_transient_faults_are_retried(server, cache, fault, make):
    p = provider_for(server, make)
    server.inject(fault, fault)
    out = fetch(p, ["one text"], "query", cache)
    assert server.calls == 3
    assert [c.fault for c in server.log] == [fault, fault, None]
    assert np.isfinite(out).all()


class FrozenClock:
    """A clock that never moves, and a sleep that only records: every wait a
    `RateLimiter` asks for, measured from one instant, without waiting."""

    def __init__(self):
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)

    def attach(self, limiter: RateLimiter) -> FrozenClock:
        limiter._clock, limiter._sleep = self.clock, self.sleep
        return self


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_retry_after_is_honoured(server, make):
    server.retry_after = "1"
    p = provider_for(server, make)
    frozen = FrozenClock().attach(p.limiter)
    server.inject("throttle_retry_after")
    p.embed_batch(["x"], "query")
    assert frozen.sleeps == [1.0]  # the server's Retry-After, held before the retry
    assert server.calls == 2


def test_retry_after_ms_and_cap(server):
    server.retry_after_header = "retry-after-ms"
    server.retry_after = "150"
    p = cohere(server)
    frozen = FrozenClock().attach(p.limiter)
    server.inject("throttle_retry_after")
    p.embed_batch(["x"], "query")
    assert frozen.sleeps == [pytest.approx(0.15)] and server.calls == 2
    # a Retry-After beyond retry_after_max is capped
    server.retry_after_header, server.retry_after = "Retry-After", "30"
    q = bedrock(server, TITAN1, retry_after_max=0.05)
    frozen = FrozenClock().attach(q.limiter)
    server.inject("throttle_retry_after")
    q.embed_batch(["x"], "query")
    assert frozen.sleeps == [0.05] and server.calls == 4


@pytest.mark.parametrize("make", ["titan", "cohere_br", "cohere"])
def test_validation_error_is_user_error_not_retried(server, cache, make):
    p = provider_for(server, make)
    server.inject("400")
    texts = ["a", "b"] if make != "titan" else ["a"]
    with pytest.raises(UserError, match="injected validation error") as err:
        fetch(p, texts, "query", cache)
    assert "\n" not in str(err.value)
    if make == "titan":
        assert server.calls == 1  # never retried
        assert cache.get_many(p.namespace("query")[0], texts) == {}
    else:
        # never retried as is; each half is sent once to find the rejected text, and
        # since this 400 named none (both halves pass), the halves are kept
        assert server.calls == 3 and "rejected:" not in str(err.value)
        assert len(cache.get_many(p.namespace("query")[0], texts)) == 2


def test_server_side_token_limit_is_user_error(server):
    p = bedrock(server, TITAN_IMAGE)
    with pytest.raises(UserError, match="Max input tokens: 128.*at most 128 tokens"):
        # 100 words of two tokens' worth pass the client check but not the server's
        p.embed_batch([" ".join(["ab"] * 100) + " " + " ".join(["cd"] * 60)], "query")
    assert server.calls == 1


def test_access_denied_is_user_error(server):
    server.inject("403")
    with pytest.raises(UserError, match="AccessDeniedException.*credentials"):
        bedrock(server, TITAN1).embed_batch(["x"], "query")
    assert server.calls == 1


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_exhausted_retries_give_one_line_provider_error(server, cache, make):
    server.rates = {"503": 1.0}
    p = provider_for(server, make, max_attempts=3)
    with pytest.raises(ProviderError) as err:
        fetch(p, ["x"], "query", cache)
    msg = str(err.value)
    assert server.calls == 3
    assert "\n" not in msg and "after 3 attempts" in msg and p.name in msg
    assert ("ServiceUnavailableException" if make == "titan" else "HTTP 503") in msg


def test_sdk_retries_are_off(server):
    server.inject("503")
    with pytest.raises(ProviderError, match="after 1 attempt:"):
        bedrock(server, TITAN1, max_attempts=1).embed_batch(["x"], "query")
    server.inject("503")
    with pytest.raises(ProviderError, match="after 1 attempt:"):
        cohere(server, max_attempts=1).embed_batch(["x"], "query")
    assert server.calls == 2


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_timeouts_are_retried(server, make):
    server.slow_seconds = 0.6
    p = provider_for(server, make, timeout=0.2)
    server.inject("slow")
    assert p.embed_batch(["x"], "query").vectors.shape[0] == 1
    assert server.calls == 2


@pytest.mark.parametrize(
    ("fault", "make"),
    # Titan takes one text a call: there is no count to get wrong
    [
        (f, m)
        for f in ("wrong_dim", "nan", "count")
        for m in ("cohere_br", "cohere", "titan")
        if (f, m) != ("count", "titan")
    ],
)
def test_bad_answers_raise_and_are_never_cached(server, cache, fault, make):
    batches = {} if make == "titan" else {"batch_size": 2}  # Titan: one text a call
    p = provider_for(server, make, n_jobs=1, **batches)
    texts = ["t1", "t2", "t3", "t4"] if make != "titan" else ["t1", "t2"]
    server.inject("ok", fault)
    with pytest.raises(ProviderError, match="dimension|NaN|vectors for"):
        fetch(p, texts, "query", cache)
    found = cache.get_many(p.namespace("query")[0], texts)
    first = texts[:2] if make != "titan" else texts[:1]
    assert sorted(texts[i] for i in found) == first  # the good batch only
    assert server.calls == 2  # not retried


def test_credentials_never_echoed(server, cache):
    server.inject("echo_auth")
    with pytest.raises(UserError) as err:
        bedrock(server, TITAN1).embed_batch(["x"], "query")
    assert ACCESS_KEY not in str(err.value) and SECRET_KEY not in str(err.value)
    assert "Authorization" in str(err.value)
    server.inject("echo_auth")
    with pytest.raises(UserError) as err:
        cohere(server).embed_batch(["x"], "query")
    assert COHERE_KEY not in str(err.value)
    explicit = CohereProvider("embed-english-v3.0", api_key="sk-explicit-secret-123")
    assert "sk-explicit" not in repr(explicit) and "sk-explicit" not in str(explicit.options)
    assert COHERE_KEY not in repr(cohere(server))


# --- the headline: a noisy service gives the same vectors as a clean one ----------


@pytest.mark.parametrize("make", ["titan", "cohere"])
def test_noisy_service_gives_identical_vectors(server, tmp_path, make):
    def provider():
        if make == "titan":
            return bedrock(server, TITAN1, n_jobs=8, max_attempts=12)
        return cohere(server, batch_size=8, n_jobs=8, max_attempts=12)

    server.record = False
    unique = texts_n(300, prefix=make)
    texts = unique + unique[::5]
    with EmbeddingCache(tmp_path / "clean.sqlite") as c:
        clean = fetch(provider(), texts, "document", c)
    assert server.texts_received == 300 and server.texts_failed == 0

    server.reset()
    server.rates = {"throttle": 0.20, "500": 0.05}
    with EmbeddingCache(tmp_path / "noisy.sqlite") as c:
        noisy = fetch(provider(), texts, "document", c)
    np.testing.assert_array_equal(noisy, clean)
    assert server.texts_failed > 0
    assert server.texts_received == len(unique) + server.texts_failed


# --- retry helpers ----------------------------------------------------------------


def test_rate_limiter_spaces_requests(server):
    limiter = RateLimiter(requests_per_minute=1200)  # one per 50 ms
    frozen = FrozenClock().attach(limiter)

    def work():
        for _ in range(3):
            limiter.acquire()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 12 starts, one slot each, 50 ms apart (the first starts at once)
    assert sorted(frozen.sleeps) == pytest.approx([0.05 * k for k in range(1, 12)])
    # and the provider uses it
    p = bedrock(server, TITAN1, requests_per_minute=600, n_jobs=4)
    frozen = FrozenClock().attach(p.limiter)
    p.embed_batch(["a"], "query")
    p.embed_batch(["b"], "query")
    p.embed_batch(["c"], "query")
    assert frozen.sleeps == pytest.approx([0.1, 0.2]) and server.calls == 3


def test_rate_limiter_defer_holds_every_thread():
    limiter = RateLimiter()
    frozen = FrozenClock().attach(limiter)
    limiter.defer(0.1)
    limiter.acquire()
    limiter.acquire()
    assert frozen.sleeps == [0.1, 0.1]  # every request waits out the pause
    with pytest.raises(UserError):
        RateLimiter(requests_per_minute=0)


def test_retry_policy_and_parsing():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0, retry_after_max=10, seed=3)
    for attempt, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        d = policy.delay(attempt)
        assert cap / 2 <= d <= cap
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=99.0) == 10
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3 <= parse_retry_after({"Retry-After": date}) <= 6
    with pytest.raises(UserError):
        RetryPolicy(max_attempts=0)


def test_scrub():
    line = scrub(
        "bad\nrequest Authorization: AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE0000/2024"
        "/us-east-1/bedrock/aws4_request, Signature=abcdef0123 Bearer tok-123 mysecret",
        ["mysecret"],
    )
    assert "\n" not in line
    for leaked in ("AKIAFAKE", "abcdef0123", "tok-123", "mysecret"):
        assert leaked not in line
    assert len(scrub("x" * 1000)) <= 300


def test_cohere_sdk_parsing_path_gives_the_same_answers(server, monkeypatch):
    """`raw_http = False` parses with the SDK's models: same vectors, extras, tokens, errors."""
    texts = texts_n(20)
    fast = cohere(server, native_types=["int8", "binary"]).embed_batch(texts, "query")
    slow_p = cohere(server, native_types=["int8", "binary"])
    monkeypatch.setattr(slow_p, "raw_http", False)
    slow = slow_p.embed_batch(texts, "query")
    np.testing.assert_array_equal(fast.vectors, slow.vectors)
    assert fast.tokens == slow.tokens > 0
    for t in ("int8", "binary"):
        np.testing.assert_array_equal(fast.extras[t], slow.extras[t])
        assert fast.extras[t].dtype == slow.extras[t].dtype
    assert server.log[0].body == server.log[1].body
    server.inject("throttle", "malformed", "500")
    assert slow_p.embed_batch(["x"], "query").vectors.shape == (1, 1024)
    server.inject("400")
    with pytest.raises(UserError, match="injected validation error"):
        slow_p.embed_batch(["x"], "query")
    server.inject("wrong_dim")
    assert slow_p.embed_batch(["x"], "query").vectors.shape == (1, 1023)  # fetch rejects it
