"""Provider options: declared once per family, validated, with their defaults.

Each family's options are one pydantic model (`LocalOptions`, `BedrockOptions`,
`CohereOptions`); `parse` turns a config's `options` mapping into it, and any
mistake into one `UserError` line: an unknown option gets "did you mean". Checks
that depend on the model (its dimensions, batch cap, native outputs) stay with the
provider.

A field declared with `IDENTITY` changes the vectors; every other option changes
only how they are fetched. `identity_key` hashes the identity options a config
sets, so the provider's key in results derives from validated options: a typo is
rejected, never hashed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from embedbench.errors import UserError, unknown_name
from embedbench.secrets import is_secret_key

IDENTITY = {"identity": True}  # json_schema_extra of an option that changes the vectors
TRUNCATE_MODES = ("NONE", "START", "END")  # Cohere's, on its API and on Bedrock
MAX_TEXTS_PER_CALL = 96  # Cohere's cap on texts a call, on its API and on Bedrock

# name: (minimum, minimum allowed, whole number) of the numeric options
_NUMBERS: dict[str, tuple[float, bool, bool]] = {
    "timeout": (0, False, False),
    "connect_timeout": (0, False, False),
    "max_attempts": (1, True, True),
    "backoff_base": (0, True, False),
    "backoff_max": (0, True, False),
    "retry_after_max": (0, True, False),
    "requests_per_minute": (0, False, False),
}


def choose(what: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    """`value` if it is one of `allowed`, else a `UserError` listing them."""
    if value not in allowed:
        listed = ", ".join(str(a) for a in allowed)
        raise UserError(f"{what} must be one of {listed}; got {value!r}")
    return value


def check_positive_int(what: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{what}: {name} must be a positive integer; got {value!r}")
    return value


def check_option(what: str, name: str, value: Any) -> Any:
    """A `UserError` for a call option of the wrong type or range (None: the default).

    Numeric options are checked against `_NUMBERS`; the others (region, profile, URLs,
    keys) must be non-empty strings, URLs http(s). A value is never echoed for a key.
    """
    if value is None:
        return value
    if name in _NUMBERS:
        low, inclusive, whole = _NUMBERS[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ok = number and math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok or (whole and not isinstance(value, int)):
            kind = "a whole number" if whole else "a number"
            bound = f"at least {low:g}" if inclusive else f"greater than {low:g}"
            raise UserError(f"{what}: {name} must be {kind} {bound}; got {value!r}")
    elif not isinstance(value, str) or not value.strip():
        raise UserError(f"{what}: {name} must be a non-empty string")
    elif name.endswith("_url") and not value.startswith(("http://", "https://")):
        raise UserError(f"{what}: {name} must be an http:// or https:// URL")
    return value


def check_bool(what: str, name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, bool):
        raise UserError(f"{what}: {name} must be true or false; got {value!r}")
    return value


def _device(what: str, name: str, value: Any) -> Any:
    from embedbench.providers.local import check_device

    return check_device(what, value)


def _truncate(what: str, name: str, value: Any) -> Any:
    return choose(f"{what}: {name}", value, TRUNCATE_MODES)


def _as_list(what: str, name: str, value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _as_given(what: str, name: str, value: Any) -> Any:
    return value


Check = Callable[[str, str, Any], Any]  # (what, option, value) -> value, or a UserError


class ProviderOptions(BaseModel):
    """Options every family takes; subclasses add theirs, and in `CHECKS` the check of
    each option whose message must name the provider (the others are typed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    family: ClassVar[str]
    CHECKS: ClassVar[dict[str, Check]] = {}

    batch_size: int | None = None

    @classmethod
    def parse(cls, what: str, options: Mapping[str, Any]) -> ProviderOptions:
        """The validated options, or one `UserError` line (`what` names the provider)."""
        for name in options:
            if name not in cls.model_fields:
                raise unknown_name(f"option for {cls.family}", name, cls.model_fields)
        try:
            return cls.model_validate(dict(options), context={"what": what})
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            got = "" if is_secret_key(where) else f"; got {first.get('input')!r}"
            raise UserError(f"{what}: {where}: {first['msg'].lower()}{got}") from None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any, info: ValidationInfo) -> Any:
        if not isinstance(values, dict):
            return values
        what = (info.context or {}).get("what", cls.family)
        return {k: cls.CHECKS.get(k, _as_given)(what, k, v) for k, v in values.items()}

    def identity(self) -> dict[str, Any]:
        """The options set that change the vectors, as given."""
        fields = type(self).model_fields
        return {
            k: getattr(self, k)
            for k in sorted(self.model_fields_set)
            if (fields[k].json_schema_extra or {}).get("identity")
        }


class LocalOptions(ProviderOptions):
    """A sentence-transformers model in this process: `batch_size` (texts a fetch
    batch, 256), `device` (cpu, cuda, cuda:<n>, mps)."""

    family = "local"
    CHECKS = {"batch_size": check_positive_int, "device": _device}
    batch_size: int = 256
    device: str = "cpu"


class RemoteOptions(ProviderOptions):
    """Options of a remote service: batching, threads, timeout, retries, rate limit,
    and the provider-native quantized outputs requested with the floats. The model
    bounds `batch_size` (the provider checks it)."""

    CHECKS = {
        "n_jobs": check_positive_int,
        "native_types": _as_list,
        **dict.fromkeys(
            (
                "timeout",
                "max_attempts",
                "backoff_base",
                "backoff_max",
                "retry_after_max",
                "requests_per_minute",
            ),
            check_option,
        ),
    }
    native_types: list[str] | str | None = Field(None, json_schema_extra=IDENTITY)
    n_jobs: int = 4
    timeout: float = 60.0
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0
    requests_per_minute: float | None = None


class CohereOptions(RemoteOptions):
    """Cohere's API: `api_key` (default: `CO_API_KEY`/`COHERE_API_KEY`), `base_url`
    (default: `CO_API_URL`, else Cohere's API), `truncate` NONE/START/END (END),
    `output_dimension` (embed-v4.0 only), `batch_size` ≤ 96 (96)."""

    family = "cohere"
    CHECKS = {
        **RemoteOptions.CHECKS,
        "api_key": check_option,
        "base_url": check_option,
        "truncate": _truncate,
    }
    api_key: str | None = Field(None, repr=False)
    base_url: str | None = None
    truncate: str = Field("END", json_schema_extra=IDENTITY)
    output_dimension: int | None = Field(None, json_schema_extra=IDENTITY)
    batch_size: int | None = MAX_TEXTS_PER_CALL


class BedrockOptions(RemoteOptions):
    """Amazon Bedrock: `region`, `endpoint_url`, `profile`, `dimensions`, `normalize`
    (Titan v2), `truncate` (Cohere models: NONE/START/END, END), `connect_timeout`
    (10 s), `batch_size` (default: the model's cap)."""

    family = "bedrock"
    CHECKS = {
        **RemoteOptions.CHECKS,
        **dict.fromkeys(("region", "endpoint_url", "profile", "connect_timeout"), check_option),
        "normalize": check_bool,
    }
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    dimensions: int | None = Field(None, json_schema_extra=IDENTITY)
    normalize: bool | None = Field(None, json_schema_extra=IDENTITY)
    truncate: str | None = Field(None, json_schema_extra=IDENTITY)
    connect_timeout: float = 10.0


OPTIONS: dict[str, type[ProviderOptions]] = {
    "local": LocalOptions,
    "bedrock": BedrockOptions,
    "cohere": CohereOptions,
}


def identity_key(family: str, model: str, options: Mapping[str, Any]) -> str | None:
    """A short hash of the vector-changing options a config sets (None: it sets none).

    The options are validated first, so a misspelt option is a `UserError`, never a
    different key.
    """
    if family not in OPTIONS:
        raise unknown_name("provider", family, OPTIONS)
    identity = OPTIONS[family].parse(f"{family}:{model}", options).identity()
    if not identity:
        return None
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]
