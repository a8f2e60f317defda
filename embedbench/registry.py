"""Names → factories for providers, techniques and tasks, with "did you mean" errors."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbench.config import Config, ProviderSpec
from embedbench.errors import UserError, unknown_name
from embedbench.providers.base import Provider
from embedbench.quantize import CODES, PRESETS, TRANSFORMS, Technique, parse_technique
from embedbench.quantize.grammar import CODE_FAMILIES, FAMILY_EXAMPLES

# family -> "module:Class", imported only when used (boto3 and cohere load slowly).
PROVIDERS: dict[str, str] = {
    "local": "embedbench.providers.local:LocalProvider",
    "bedrock": "embedbench.providers.bedrock:BedrockProvider",
    "cohere": "embedbench.providers.cohere_api:CohereProvider",
}


def provider_class(family: str) -> type[Provider]:
    if family not in PROVIDERS:
        raise unknown_name("provider", family, PROVIDERS)
    module, cls = PROVIDERS[family].split(":")
    return getattr(importlib.import_module(module), cls)


def build_provider(spec: ProviderSpec, native_types: tuple[str, ...] = ()) -> Provider:
    """Instantiate a provider; bad options become one `UserError` line.

    `native_types` asks for provider-native codes in the same calls as the floats.
    """
    cls = provider_class(spec.name)
    options = dict(spec.options)
    if native_types:
        given = options.get("native_types") or []
        given = [given] if isinstance(given, str) else given
        options["native_types"] = sorted(set(native_types) | set(given))
    try:
        return cls(spec.model, **options)
    except TypeError as e:
        raise UserError(
            f"providers ({spec.label}): bad options {sorted(spec.options)}: {e}"
        ) from None


def build_technique(name: str, seed: int = 0) -> Technique:
    """A technique by preset or `transform+...+code` name, with optional retrieval
    search options after a slash (`binary/asym`, `binary/rescore4`).

    `seed` is the replicate seed of its random parts (`parse_technique`); seed 0 is
    the technique the name always meant. `/rescore<k>-int8` re-ranks with an int8
    code fitted on calibration, so it sets `search_learns` (the technique then
    `depends_on_seed`)."""
    from embedbench.retrieval import SEARCH_OPTIONS, parse_search

    try:
        base, search = parse_search(name)
    except KeyError as e:
        raise unknown_name(
            f"search option in technique '{name}'",
            e.args[0],
            ["asym", "rescore<k>", "rescore<k>-int8"],
            SEARCH_OPTIONS,
        ) from None
    tech = _build_base(base, seed)
    if search.suffix:
        tech.name, tech.spec = name, f"{tech.spec}/{search.suffix}"
    tech.search_learns = search.rescore is not None and search.rescore_with == "int8"
    return tech


def _build_base(name: str, seed: int = 0) -> Technique:
    from embedbench.native import KINDS, PREFIX, native_kind, native_technique

    if native_kind(name) is not None:
        try:
            return native_technique(name)
        except KeyError:
            raise unknown_name("native technique", name, [PREFIX + k for k in KINDS]) from None
    try:
        return parse_technique(name, seed)
    except ValueError as e:  # a faiss factory string faiss rejects
        raise UserError(f"techniques: {name}: {e}") from None
    except KeyError as e:
        part = e.args[0]
        if part == name:
            raise unknown_name("technique", name, technique_catalog()) from None
        code = PRESETS.get(name, name).split("+")[-1]
        kind = "code" if part == code and code not in CODES else "transform"
        allowed = [*CODES, *CODE_FAMILIES] if kind == "code" else TRANSFORMS
        raise unknown_name(f"{kind} in technique '{name}'", part, allowed) from None


def technique_catalog() -> list[str]:
    """Preset names, bare codes, examples of the code families (TurboQuant, faiss codecs)
    and provider-native outputs; `transform+...+code` composes."""
    from embedbench.engines import presets
    from embedbench.native import KINDS, PREFIX

    names = set(PRESETS) | set(CODES) | set(FAMILY_EXAMPLES) | {PREFIX + k for k in KINDS}
    return sorted(names | set(presets()))


LIST_DIM = 384  # sizes in `embedbench list techniques` are for vectors of this dimension


def summary(part: object) -> str:
    """One line about a code or transform: its `summary`, else its docstring's first line."""
    text = getattr(part, "summary", None)
    if not isinstance(text, str):  # a class, or a part without its own summary
        text = (part.__doc__ or "").strip()
    return text.splitlines()[0] if text else ""


@dataclass(frozen=True)
class TechniqueInfo:
    """What `embedbench list techniques` shows of one technique, sized for `dim`."""

    name: str
    spec: str
    dim: int
    bits_per_dim: float
    size_multiplier: float
    learns: bool  # fitted on calibration vectors
    random: bool  # draws from a seed
    description: str


def technique_info(dim: int = LIST_DIM) -> list[TechniqueInfo]:
    """Every name of `technique_catalog()` with its size for `dim`-dimensional vectors,
    whether it is fitted or random, and one line about it (a preset names its spec)."""
    out = []
    for name in technique_catalog():
        tech = _build_base(name)
        what = " Then ".join(summary(p) for p in [*tech.transforms, tech.code])
        if name in PRESETS and tech.spec == name:
            what = f"Seed preset: {what}"
        elif name in PRESETS:
            what = f"Seed preset, the same as {tech.spec}."
        out.append(
            TechniqueInfo(
                name=name,
                spec=tech.spec,
                dim=dim,
                bits_per_dim=tech.bits_per_dim(dim),
                size_multiplier=tech.size_multiplier(dim),
                learns=tech.learns,
                random=tech.random,
                description=what,
            )
        )
    return out


@dataclass(frozen=True)
class TransformInfo:
    """What `embedbench list techniques` shows of one transform (`trunc<k>`: a family)."""

    name: str
    learns: bool
    random: bool
    keeps_cosines: bool
    description: str


def transform_info() -> list[TransformInfo]:
    """Every transform a `transform+...+code` name can use, sorted by name."""
    return [
        TransformInfo(name, cls.learns, cls.random, cls.keeps_cosines, summary(cls))
        for name, cls in sorted(TRANSFORMS.items())
    ]


def check_config(config: Config) -> None:
    """Check every name in the grid resolves, without calling any provider or the hub.

    Every mistake is collected, so one `UserError` names them all, a line each.
    """
    errors: list[str] = []

    def collect(check, *args) -> None:
        try:
            check(*args)
        except UserError as e:
            errors.append(str(e))

    def provider_name(i: int, name: str) -> None:
        if name not in PROVIDERS:
            raise UserError(f"providers[{i}].name: {unknown_name('provider', name, PROVIDERS)}")

    for i, p in enumerate(config.providers):
        collect(provider_name, i, p.name)
    for t in config.techniques:
        collect(build_technique, t)
    for t in config.task_specs():
        collect(_check_task, t)
    if config.benchmark:
        from embedbench.tasks.benchmarks import benchmark_tasks

        collect(benchmark_tasks, config.benchmark)
    if not errors:  # providers are built only from a grid whose names resolve
        for p in config.providers:
            collect(_check_provider, p, config.techniques)
    if errors:
        raise UserError("\n".join(errors))


def _check_task(entry: Any) -> None:
    """A task entry names an mteb task of a supported kind, or a user folder of one."""
    from embedbench.tasks import KINDS, TASK_LISTING, known_tasks

    if entry.path is not None:
        from embedbench.tasks.user import USER_KINDS

        if entry.kind not in USER_KINDS:
            raise UserError(
                f"tasks: {entry.name}: kind '{entry.kind}' cannot be read from files; "
                f"allowed: {', '.join(USER_KINDS)}"
            )
        if not Path(entry.path).expanduser().is_dir():
            raise UserError(f"tasks: {entry.name}: path {entry.path} is not a folder")
        return
    import mteb

    try:
        task_type = mteb.get_task(entry.name).metadata.type
    except KeyError:
        raise unknown_name("task", entry.name, known_tasks(), TASK_LISTING) from None
    if task_type not in KINDS:
        raise UserError(
            f"tasks: {entry.name} is a {task_type} task; supported kinds: {', '.join(KINDS)}"
        )


def _check_provider(spec: ProviderSpec, techniques: list[str]) -> None:
    provider = build_provider(spec)
    try:
        dim = provider.known_dim()
    finally:
        provider.close()
    if dim:
        check_dims(techniques, dim, spec.label)


def check_calibration(techniques: list[str], n_cal: int, dim: int, where: str) -> None:
    """A `UserError` for a technique whose fit needs more calibration vectors than it has:
    a PCA basis (svd, pca-haar, itq) needs more vectors than dimensions."""
    for name in techniques:
        if n_cal <= dim and any(t.needs_full_rank for t in build_technique(name).transforms):
            raise UserError(
                f"techniques: {name} fits a PCA basis of {dim} dimensions and needs more than "
                f"{dim} calibration texts; {where} has {n_cal} (raise calibration.max_texts "
                "or use a larger calibration split)"
            )


def training_notes(techniques: list[str], n_cal: int, dim: int) -> list[str]:
    """One line per technique whose code's training asks for more calibration vectors
    than it gets (it is still fitted on calibration only, never on evaluated texts)."""
    out = []
    for name in techniques:
        tech = build_technique(name)
        note = tech.code.training_note(n_cal, tech.out_dim(dim))
        if note:
            out.append(f"{name}: {note}")
    return out


def check_dims(techniques: list[str], dim: int, where: str) -> None:
    """A `UserError` for a technique that cannot code `dim`-dimensional vectors (trunc<k>)."""
    for name in techniques:
        tech = build_technique(name)
        try:
            problem = tech.code.check(tech.out_dim(dim))
        except ValueError as e:
            problem = str(e)
        if problem:
            raise UserError(f"techniques: {name} does not apply to {where}: {problem}")
