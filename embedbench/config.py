"""The YAML experiment grid: schema, validation in one place, expansion into cells.

Every user mistake becomes one `UserError` line naming the field and what is
allowed, with "did you mean" for near-miss names.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from embedbench.errors import UserError
from embedbench.secrets import redact, remember


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSpec(_Strict):
    """One provider model; `options` go to the provider (batch size, region, ...)."""

    name: str = Field(description="provider family: local, bedrock, cohere")
    model: str = Field(min_length=1, description="model name, id or local folder")
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def key(self) -> str:
        """The label, plus a short hash of the options that change the vectors.

        The hash derives from the validated options (`providers.options`), so a
        misspelt option is a `UserError`, never another key.
        """
        from embedbench.providers.options import identity_key

        digest = identity_key(self.name, self.model, self.options)
        return f"{self.label}@{digest}" if digest else self.label


NO_TASKS = "tasks: required field is missing (list at least one task, or name a benchmark)"


class TaskSpec(_Strict):
    """One task entry: an mteb task (optionally restricted to some subsets and splits),
    or a team's own files (`kind` and `path`). `calibration` names the task's
    calibration source (`<split>`, `<Task>:<split>`, `file:<path>`; see
    `embedbench.tasks.calibration`)."""

    name: str = Field(min_length=1)
    kind: str | None = None
    path: str | None = None
    subsets: list[str] | None = Field(None, min_length=1)
    splits: list[str] | None = Field(None, min_length=1)
    calibration: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _user_task(self) -> TaskSpec:
        if (self.kind is None) != (self.path is None):
            raise ValueError("a task from your own files needs both 'kind' and 'path'")
        if self.path is not None and self.subsets:
            raise ValueError("a task from your own files has one subset; drop 'subsets'")
        return self


class Calibration(_Strict):
    """Where fitted parameters come from: never the evaluation split."""

    split: str = "train"
    max_texts: int = Field(5000, ge=2)  # one text cannot fit a range, a rotation or a score
    seed: int = Field(0, ge=0)


class Evaluation(_Strict):
    """Evaluator settings shared by the float baseline and every technique.

    `bootstrap` is the least number of resamples; more are drawn until interval
    endpoints have a Monte Carlo error of at most `mc_target` points (see stats.py).
    `seeds` replicates every technique with a fitted or random part over that many
    calibration samples and random draws; `margin` is the equivalence margin
    (points of retention) of the verdicts.
    """

    normalize: bool = True
    bootstrap: int = Field(2000, ge=100)
    seed: int = Field(42, ge=0)
    mc_target: float = Field(0.005, gt=0)
    seeds: int = Field(1, ge=1, le=50)
    margin: float = Field(1.0, gt=0, le=50)
    n_experiments: int | None = Field(None, ge=1)
    samples_per_label: int | None = Field(None, ge=1)


class Executor(_Strict):
    """Where evaluations run; providers are always called from the driver process."""

    backend: Literal["sequential", "threads", "processes", "dask"] = "sequential"
    n_jobs: int = Field(2, ge=1)
    address: str | None = None  # dask scheduler; none starts a LocalCluster of n_jobs workers


class Config(_Strict):
    """A provider × task × technique grid."""

    name: str
    providers: list[ProviderSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(default_factory=list)
    techniques: list[str] = Field(min_length=1)
    benchmark: str | None = Field(None, min_length=1)  # an mteb benchmark: adds its tasks
    calibration: Calibration = Field(default_factory=Calibration)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    executor: Executor = Field(default_factory=Executor)
    prices: dict[str, float] = Field(
        default_factory=dict, description="USD per 1M input tokens by model id (plan's table)"
    )
    output: str | None = None
    data_dir: str | None = None
    cache: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (it names the output folder)")
        if len(v) > 200:
            raise ValueError(f"at most 200 characters (it names the output folder), got {len(v)}")
        return v

    @field_validator("providers", mode="before")
    @classmethod
    def _provider_shorthand(cls, v: Any) -> Any:
        """Accept `family:model` strings as well as mappings."""
        if isinstance(v, list):
            return [
                dict(zip(("name", "model"), p.split(":", 1), strict=True))
                if isinstance(p, str) and ":" in p
                else p
                for p in v
            ]
        return v

    @field_validator("providers")
    @classmethod
    def _unique_providers(cls, v: list[ProviderSpec]) -> list[ProviderSpec]:
        keys = []
        for p in v:
            try:
                keys.append(p.key)
            except UserError:
                continue  # a bad name or option: `registry.check_config` reports it
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)} (the same cells twice)")
        return v

    @field_validator("techniques")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_names(cls, v: Any) -> Any:
        """A plain name stands for `{name: <name>}`."""
        return [{"name": t} if isinstance(t, str) else t for t in v] if isinstance(v, list) else v

    @field_serializer("tasks")
    def _dump_tasks(self, v: list[TaskSpec]) -> list[Any]:
        """A plain name again where nothing else is set (recorded configs stay short)."""
        return [
            t.name
            if t.model_dump(exclude_none=True) == {"name": t.name}
            else t.model_dump(exclude_none=True)
            for t in v
        ]

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, v: list[TaskSpec]) -> list[TaskSpec]:
        names = [t.name for t in v]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    @model_validator(mode="after")
    def _some_task(self) -> Config:
        if not self.tasks and not self.benchmark:
            raise ValueError(NO_TASKS)
        return self

    def task_specs(self) -> list[TaskSpec]:
        """The listed tasks (a benchmark's are added by `tasks.benchmarks.expand`)."""
        return list(self.tasks)

    def output_dir(self) -> Path:
        return Path(self.output) if self.output else Path("results") / self.name

    def canonical(self) -> dict[str, Any]:
        """The config as recorded and hashed: every secret replaced by `***`."""
        return redact(self.model_dump(mode="json"))

    def hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def cells(self, tasks: list[TaskSpec] | None = None) -> list[Cell]:
        """The grid in run order: provider, then task, then technique."""
        names = [t.name for t in (tasks or self.task_specs())]
        return [Cell(p, t, q) for p in self.providers for t in names for q in self.techniques]


@dataclass(frozen=True)
class Cell:
    provider: ProviderSpec
    task: str
    technique: str


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and "[" in part:  # pydantic's validator tags
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The schema class that owns the field at `loc` (for listing allowed keys)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation
        inner = getattr(ann, "__args__", (ann,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
    return model


def _one_line(err: dict[str, Any]) -> str:
    loc = err["loc"]
    where = _loc(loc)
    if err["type"] == "extra_forbidden":
        allowed = list(_model_at(loc).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown field{hint}; allowed: {', '.join(allowed)}"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" and ("listed twice" in msg or not loc):
        return msg if not loc else f"{where}: {msg}"
    if err["type"] == "value_error" and isinstance(err.get("input"), dict):
        return f"{where}: {msg}"
    return f"{where}: {msg} (got {redact(err.get('input'))!r})"


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate a loaded YAML mapping into a `Config`, or raise a `UserError` with one
    line per mistake (every mistake of the file in one pass)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with name, providers, tasks, techniques")
    remember(data)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A misspelled field shows up twice: unknown here, missing there. Name the typo only.
        typos = {
            (err["loc"][:-1], close)
            for err in errors
            if err["type"] == "extra_forbidden"
            for close in difflib.get_close_matches(
                str(err["loc"][-1]), list(_model_at(err["loc"]).model_fields), n=1
            )
        }
        lines = [
            f"{source}: {_one_line(err)}"
            for err in sorted(errors, key=lambda err: err["type"] != "extra_forbidden")
            if not (err["type"] == "missing" and (err["loc"][:-1], err["loc"][-1]) in typos)
        ]
        no_tasks = not data.get("tasks") and not data.get("benchmark") and "taks" not in data
        if no_tasks and f"{source}: {NO_TASKS}" not in lines:  # the check after the fields
            lines.append(f"{source}: {NO_TASKS}")
        raise UserError("\n".join(lines)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key written twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise UserError(
                    f"{self.name}: key '{key}' is written twice (lines {seen[key]} and {line}); "
                    "keep one"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        loader = _UniqueKeyLoader(path.read_text(encoding="utf-8"))
        loader.name = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not UTF-8 text (byte {e.start}); save the config as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_config(data, str(path))
