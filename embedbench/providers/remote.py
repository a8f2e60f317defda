"""What the remote providers (Bedrock, Cohere's API) share: validated options, the
model's dimension and native outputs, batching, one retry policy and rate limit for
all of a provider's threads, and one client created on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from embedbench.errors import UserError
from embedbench.providers.base import Provider, Purpose
from embedbench.providers.cohere_wire import check_native_types
from embedbench.providers.options import RemoteOptions, choose
from embedbench.providers.retry import Failure, RateLimiter, RetryPolicy, call_with_retries

T = TypeVar("T")


class ModelSpec(Protocol):
    """What a remote provider must know about a model."""

    dim: int  # native dimension
    dims: tuple[int, ...]  # dimensions it can be asked for (empty: fixed)
    native: tuple[str, ...]  # native quantized outputs it can return
    max_batch: int  # texts a call


def check_batch_size(what: str, value: Any, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise UserError(f"{what}: batch_size must be an integer from 1 to {limit}; got {value!r}")
    return value


def check_nonempty(what: str, text: str) -> None:
    if not text.strip():
        raise UserError(f"{what} cannot embed an empty (or whitespace-only) text")


class RemoteProvider(Provider):
    """A model behind a remote API. Subclasses set `Options` (their options model),
    `lookup` (model id → spec), `dimension_option`, `_fixed_dimension` and
    `_connect` (the SDK client), and send requests through `retrying`."""

    Options: ClassVar[type[RemoteOptions]]
    dimension_option: ClassVar[str]  # the option that asks for a dimension
    options: RemoteOptions

    def __init__(self, model: str, **options: Any):
        what = f"{self.family}:{model}"
        opts = self.Options.parse(what, options)
        spec = self.lookup(model)
        super().__init__(model)
        self.options = opts
        self.spec = spec
        self.dim = self._check_dim(what, opts)
        self.native_types = check_native_types(what, opts.native_types, spec.native)
        size = spec.max_batch if opts.batch_size is None else opts.batch_size
        self.batch_size = check_batch_size(what, size, spec.max_batch)
        self.n_jobs = opts.n_jobs
        self.timeout = float(opts.timeout)
        self.policy = RetryPolicy(
            opts.max_attempts, opts.backoff_base, opts.backoff_max, opts.retry_after_max
        )
        self.limiter = RateLimiter(opts.requests_per_minute)
        self._client: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def lookup(model: str) -> ModelSpec:
        """The spec of a model id; `unknown_name` for one the family does not serve."""
        raise NotImplementedError

    def _fixed_dimension(self, what: str, asked: int) -> None:
        """Raise a `UserError` when a fixed-dimension model is asked for `asked`."""

    def _check_dim(self, what: str, opts: RemoteOptions) -> int:
        asked = getattr(opts, self.dimension_option)
        if asked is not None and not self.spec.dims:
            self._fixed_dimension(what, asked)
        dim = self.spec.dim if asked is None else asked
        if self.spec.dims:
            choose(f"{what}: {self.dimension_option}", dim, self.spec.dims)
        return dim

    def _connect(self) -> Any:
        """A new SDK client (called once, under the lock)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # --- contract -----------------------------------------------------------------

    def expected_dim(self) -> int:
        return self.dim

    def check_text(self, text: str) -> None:
        check_nonempty(self.name, text)

    def native_codes(self, purpose: Purpose | None = None) -> list[str]:
        """Native quantized types this model can return alongside the floats."""
        return list(self.spec.native)

    def client(self) -> Any:
        """The SDK client, created on first use and shared by the provider's threads."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def retrying(self, attempt: Callable[[], T]) -> T:
        """`attempt()` under the provider's retry policy and rate limit."""
        return call_with_retries(attempt, self._classify, self.policy, self.limiter, self.name)

    def _classify(self, exc: BaseException) -> Failure | None:
        raise NotImplementedError

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._release()
            self._client = None
