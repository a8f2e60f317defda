"""Retries, backoff and rate limits shared by the cloud providers.

The SDKs' own retries are switched off (botocore `total_max_attempts=1`, cohere
`max_retries=0`) so that one policy governs every attempt: which errors are retried
(throttling, timeouts including Bedrock's 408 `ModelTimeoutException`, 5xx, broken
responses), how long to wait (exponential backoff with jitter, or the server's
`Retry-After`), and how many attempts a request gets before it becomes one
`ProviderError` line. Errors caused by the input (400 validation) are never retried:
they become a `UserError` carrying the server's message, scrubbed of credentials.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from embedbench.errors import ProviderError, UserError

T = TypeVar("T")

Verdict = Literal["retry", "user", "fatal"]

_MAX_MESSAGE = 300


# Access key ids (AKIA/ASIA...), bearer tokens and sigv4 credential scopes.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(credential=)[^\s\"',;]+"),
    re.compile(r"(?i)(signature=)[0-9a-f]+"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"),
)


def scrub(text: object, secrets: Iterable[str | None] = ()) -> str:
    """`text` on one line, at most 300 characters, with credentials replaced by `***`."""
    out = " ".join(str(text).split())
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", out)
    if len(out) > _MAX_MESSAGE:
        out = out[: _MAX_MESSAGE - 3] + "..."
    return out


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class MalformedResponse(Exception):
    """An answer that cannot be read (not JSON, missing fields): retried like a 5xx."""


@dataclass(frozen=True)
class Failure:
    """How one failed attempt is handled: retried, blamed on the input, or fatal."""

    verdict: Verdict
    code: str
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class StatusRules:
    """How one service's error answers are classified (`classify_status`).

    Retried: a code in `retry_codes`, a status in `retry_statuses`, any 5xx (with the
    server's `Retry-After`). Blamed on the credentials: a code in `auth_codes` or a
    status in `auth_statuses` (the message gets `auth_hint`). Fatal: a code in
    `fatal_codes`. Any other 4xx is the input's fault (`input_hint` may add to the
    message); anything else is fatal.
    """

    retry_statuses: frozenset[int]
    auth_statuses: frozenset[int]
    auth_hint: str
    retry_codes: frozenset[str] = frozenset()
    auth_codes: frozenset[str] = frozenset()
    fatal_codes: frozenset[str] = frozenset()
    input_hint: Callable[[str], str] | None = None


def classify_status(
    rules: StatusRules,
    status: int | None,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Failure:
    """The `Failure` of an error answer with HTTP `status` and service error `code`."""
    if code in rules.retry_codes or status in rules.retry_statuses or (status or 0) >= 500:
        return Failure("retry", code, message, parse_retry_after(headers))
    if code in rules.auth_codes or status in rules.auth_statuses:
        return Failure("user", code, f"{message} ({rules.auth_hint})".lstrip())
    if code in rules.fatal_codes:
        return Failure("fatal", code, message)
    if status is not None and 400 <= status < 500:
        return Failure("user", code, rules.input_hint(message) if rules.input_hint else message)
    return Failure("fatal", code, message)


def malformed_or_transport(
    exc: BaseException, transport: tuple[type[BaseException], ...], secrets: Iterable[str | None]
) -> Failure | None:
    """Retry an unreadable answer or a broken connection (`transport` errors); else None."""
    if isinstance(exc, MalformedResponse):
        return Failure("retry", "MalformedResponse", str(exc))
    if isinstance(exc, transport):
        return Failure("retry", type(exc).__name__, scrub(exc, secrets))
    return None


class RateLimiter:
    """Thread-safe pacing shared by a provider's threads.

    `requests_per_minute` spaces request starts evenly (no bursts); `defer` makes
    every thread wait, e.g. when the server sent `Retry-After`, since a quota is
    shared by all of them.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise UserError(
                f"requests_per_minute must be a positive number, got {requests_per_minute}"
            )
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0

    def acquire(self) -> None:
        """Block until this thread may start a request."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            if self.interval:
                self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def defer(self, seconds: float) -> None:
        """Hold every request for `seconds` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


@dataclass
class RetryPolicy:
    """Attempts and waits. `backoff_base` doubles per attempt up to `backoff_max`,
    with jitter in [delay/2, delay]; a server's `Retry-After` is honoured up to
    `retry_after_max` seconds."""

    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _rng_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if int(self.max_attempts) < 1:
            raise UserError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise UserError("backoff_base, backoff_max and retry_after_max must be >= 0")
        self.max_attempts = int(self.max_attempts)
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        cap = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        with self._rng_lock:
            return cap / 2 + self._rng.uniform(0, cap / 2)


def call_with_retries(
    attempt: Callable[[], T],
    classify: Callable[[BaseException], Failure | None],
    policy: RetryPolicy,
    limiter: RateLimiter,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt` until it succeeds, the failure is not retryable, or attempts run out.

    `classify` maps an exception to a `Failure` (None: not ours, re-raised as is).
    `what` names the request in errors, e.g. `bedrock:amazon.titan-embed-text-v1`.
    """
    last: Failure | None = None
    for n in range(1, policy.max_attempts + 1):
        limiter.acquire()
        try:
            return attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.verdict == "user":
                raise UserError(
                    f"{what} rejected the request ({failure.code}): {failure.message}"
                ) from None
            if failure.verdict == "fatal":
                raise ProviderError(f"{what} failed ({failure.code}): {failure.message}") from None
            last = failure
            if n == policy.max_attempts:
                break
            wait = policy.delay(n, failure.retry_after)
            if failure.retry_after is not None:
                limiter.defer(wait)
            else:
                sleep(wait)
    assert last is not None
    detail = f": {last.message}" if last.message else ""
    raise ProviderError(
        f"{what} failed with {last.code} after {policy.max_attempts} attempt"
        f"{'s' if policy.max_attempts != 1 else ''}{detail}"
    )
