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
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from embedbench.errors import UserError, unknown_name

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


def _what(info: ValidationInfo) -> str:
    return (info.context or {}).get("what", "providers")


class ProviderOptions(BaseModel):
    """Options every family takes; subclasses add theirs."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    family: ClassVar[str]

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
            got = first.get("input")
            raise UserError(f"{what}: {where}: {first['msg'].lower()}; got {got!r}") from None

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
    batch_size: int = 256
    device: str = "cpu"

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: Any, info: ValidationInfo) -> Any:
        return check_positive_int(_what(info), "batch_size", v)

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, v: Any, info: ValidationInfo) -> Any:
        from embedbench.providers.local import check_device

        return check_device(_what(info), v)


class RemoteOptions(ProviderOptions):
    """Options of a remote service: batching, threads, timeout, retries, rate limit,
    and the provider-native quantized outputs requested with the floats."""

    native_types: list[str] | str | None = Field(None, json_schema_extra=IDENTITY)
    n_jobs: int = 4
    timeout: float = 60.0
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0
    requests_per_minute: float | None = None

    @field_validator("n_jobs", mode="before")
    @classmethod
    def _n_jobs(cls, v: Any, info: ValidationInfo) -> Any:
        return check_positive_int(_what(info), "n_jobs", v)

    @field_validator("native_types", mode="before")
    @classmethod
    def _native_types(cls, v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    @field_validator(
        "timeout",
        "max_attempts",
        "backoff_base",
        "backoff_max",
        "retry_after_max",
        "requests_per_minute",
        mode="before",
    )
    @classmethod
    def _call(cls, v: Any, info: ValidationInfo) -> Any:
        return check_option(_what(info), str(info.field_name), v)


class CohereOptions(RemoteOptions):
    """Cohere's API: `api_key` (default: `CO_API_KEY`/`COHERE_API_KEY`), `base_url`
    (default: `CO_API_URL`, else Cohere's API), `truncate` NONE/START/END (END),
    `output_dimension` (embed-v4.0 only), `batch_size` ≤ 96 (96)."""

    family = "cohere"
    api_key: str | None = Field(None, repr=False)
    base_url: str | None = None
    truncate: str = Field("END", json_schema_extra=IDENTITY)
    output_dimension: int | None = Field(None, json_schema_extra=IDENTITY)
    batch_size: int | None = MAX_TEXTS_PER_CALL

    @field_validator("api_key", "base_url", mode="before")
    @classmethod
    def _strings(cls, v: Any, info: ValidationInfo) -> Any:
        return check_option(_what(info), str(info.field_name), v)

    @field_validator("truncate", mode="before")
    @classmethod
    def _truncate(cls, v: Any, info: ValidationInfo) -> Any:
        return choose(f"{_what(info)}: truncate", v, TRUNCATE_MODES)


class BedrockOptions(RemoteOptions):
    """Amazon Bedrock: `region`, `endpoint_url`, `profile`, `dimensions`, `normalize`
    (Titan v2), `truncate` (Cohere models: NONE/START/END, END), `connect_timeout`
    (10 s), `batch_size` (default: the model's cap)."""

    family = "bedrock"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    dimensions: int | None = Field(None, json_schema_extra=IDENTITY)
    normalize: bool | None = Field(None, json_schema_extra=IDENTITY)
    truncate: str | None = Field(None, json_schema_extra=IDENTITY)
    connect_timeout: float = 10.0

    @field_validator("region", "endpoint_url", "profile", "connect_timeout", mode="before")
    @classmethod
    def _strings(cls, v: Any, info: ValidationInfo) -> Any:
        return check_option(_what(info), str(info.field_name), v)

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and not isinstance(v, bool):
            raise UserError(f"{_what(info)}: normalize must be true or false; got {v!r}")
        return v


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
