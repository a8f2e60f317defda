"""The grid: which cells a config holds, which apply, and the key of every evaluation.

What validate, plan and run all count: the task entries (a benchmark expanded), the
techniques that apply to a task and provider (search options need a retrieval task,
native outputs a provider that returns them) plus the float control of each technique
whose transforms change the float geometry, the seeds each technique is replicated
over, and the key that names an evaluation by everything that decides its result.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from embedbench.config import Config, ProviderSpec
from embedbench.native import native_kind
from embedbench.quantize import control_spec
from embedbench.records import code_fingerprint, evaluation_key
from embedbench.registry import build_technique
from embedbench.tasks import LoadedTask

BASELINE = "float32"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# a new release of a library that scores, or any change to the code, re-evaluates
SCORING = (
    "embedbench",
    "mteb",
    "scikit-learn",
    "scipy",
    "numpy",
    "pytrec-eval-terrier",
    "faiss-cpu",
)
VERSIONS = {p: _version(p) for p in SCORING}  # the libraries that decide a score
CODE = code_fingerprint()


def task_entries(config: Config) -> tuple[list[Any], list[str]]:
    """(the task entries, a benchmark's tasks left out for their kind)."""
    from embedbench.tasks.benchmarks import expand

    return expand(config)


def applies(technique: str, lt: LoadedTask, natives: tuple[str, ...]) -> bool:
    """Search options (`binary/asym`) need a searched task; `native-*` a provider output."""
    if "/" in technique and not lt.kind.searches:
        return False
    kind = native_kind(technique.split("/")[0])
    return kind is None or kind in natives


def techniques(config: Config, lt: LoadedTask, natives: tuple[str, ...]) -> list[tuple[str, str]]:
    """(technique, role) of a provider × task: the grid's techniques that apply, then the
    float control of every technique whose transforms change the float geometry."""
    listed = [t for t in config.techniques if applies(t, lt, natives)]
    controls = [c for t in listed if (c := control_spec(t)) and c not in listed]
    return [(t, "technique") for t in listed] + [(c, "control") for c in dict.fromkeys(controls)]


def seeds(config: Config, technique: str) -> range:
    """Replicates of a technique: K when it has a fitted or random part, else one."""
    depends = build_technique(technique).depends_on_seed
    return range(config.evaluation.seeds if depends else 1)


def native_kinds(config: Config) -> tuple[str, ...]:
    return tuple(sorted({k for t in config.techniques if (k := native_kind(t.split("/")[0]))}))


def key(config: Config, spec: ProviderSpec, lt: LoadedTask, technique_spec: str, seed: int) -> str:
    """Everything that determines an evaluation's result (not the bootstrap settings)."""
    ev = config.evaluation
    return evaluation_key(
        {
            "versions": VERSIONS,
            "code": CODE,
            "provider": spec.key,
            "task": lt.name,
            "units": [list(u) for u in lt.units],
            "technique": technique_spec,
            "seed": seed,
            "data": lt.source,
            "calibration": config.calibration.model_dump(mode="json"),
            "calibration_source": lt.calibration_source,
            "evaluation": {
                "normalize": ev.normalize,
                "n_experiments": ev.n_experiments,
                "samples_per_label": ev.samples_per_label,
            },
        }
    )
