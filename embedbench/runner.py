"""Execute a grid: embed each text once, evaluate, collect retention rows.

The driver (this module) is the only caller of providers. For each provider ×
task it fetches calibration and evaluation texts through the cache, evaluates the
float baseline with mteb (fetching whatever else mteb asks for), then hands one
self-contained job per technique to the executor. Each finished evaluation is
recorded in `<run>/cells/` at once, so a killed sweep resumes without redoing it.
Retention and intervals are computed last, from the records, in grid order.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from embedbench import stats
from embedbench.cache import EmbeddingCache
from embedbench.config import Config, ProviderSpec
from embedbench.errors import EmbedbenchError
from embedbench.evaluate import EvalJob, prepare, run_job
from embedbench.executor import run_jobs
from embedbench.native import native_kind
from embedbench.predictions import CellPredictions, PredictionWriter
from embedbench.providers.base import FetchStats, Provider, fetch
from embedbench.quantize import control_spec
from embedbench.records import (
    EvalRecord,
    RecordStore,
    code_fingerprint,
    evaluation_key,
    git_state,
    remove_stale_temporaries,
    write_json_atomic,
)
from embedbench.registry import (
    build_provider,
    build_technique,
    check_calibration,
    check_dims,
)
from embedbench.results import CellResult
from embedbench.tasks import LoadedTask, load_task

# (phase, description, done, total); phases: "embed", "evaluate"
ProgressFn = Callable[[str, str, int, int], None]
BASELINE = "float32"


def _noop(phase: str, desc: str, done: int, total: int) -> None:
    pass


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class EmbeddingStore:
    """Float vectors of one provider, per purpose, fetched once per run through the cache."""

    def __init__(
        self,
        provider: Provider,
        cache: EmbeddingCache,
        counters: FetchStats,
        progress: ProgressFn,
        desc: str,
    ):
        self.provider, self.cache, self.counters = provider, cache, counters
        self.progress, self.desc = progress, desc
        self._rows: dict[str, dict[str, np.ndarray]] = defaultdict(dict)

    def get(self, texts: list[str], purpose: str) -> np.ndarray:
        """Vectors of `texts`; `purpose#kind` (e.g. `sts#int8`) gives a native output."""
        rows = self._rows[purpose]
        missing = list(dict.fromkeys(t for t in texts if t not in rows))
        if missing:
            base, _, output = purpose.partition("#")
            # native outputs arrive with the floats: count only what a lookup pays for
            counters = FetchStats() if output else self.counters
            vecs = fetch(
                self.provider,
                missing,
                base,  # type: ignore[arg-type]
                self.cache,
                counters,
                lambda done, total: self.progress("embed", self.desc, done, total),
                output=output or "float",
            )
            if output:
                self.counters.add(
                    texts_embedded=counters.texts_embedded,
                    calls=counters.calls,
                    tokens=counters.tokens,
                )
            rows.update(zip(missing, vecs, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([rows[t] for t in texts])


@dataclass
class RunResult:
    config: Config
    rows: list[CellResult] = field(default_factory=list)
    fetch: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    evaluations: dict[str, int] = field(default_factory=lambda: {"run": 0, "resumed": 0})
    skipped: list[str] = field(default_factory=list)  # cells that do not apply
    predictions: PredictionWriter = field(default_factory=PredictionWriter)
    git: dict[str, Any] = field(default_factory=dict)  # commit and dirty flag at the start

    @property
    def texts_embedded(self) -> int:
        return sum(f["texts_embedded"] for f in self.fetch.values())

    @property
    def texts_from_cache(self) -> int:
        return sum(f["texts_from_cache"] for f in self.fetch.values())


class _Timer:
    def __init__(self, timings: dict[str, float], phase: str):
        self.timings, self.phase = timings, phase

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.phase] += time.perf_counter() - self.t0


def _text_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# a new release of a library that scores, or any change to the code, re-evaluates
_SCORING = (
    "embedbench",
    "mteb",
    "scikit-learn",
    "scipy",
    "numpy",
    "pytrec-eval-terrier",
    "faiss-cpu",
)
_VERSIONS = {p: _version(p) for p in _SCORING}  # the libraries that decide a score
CODE = code_fingerprint()


@dataclass
class _Group:
    """One provider × task: its calibration, baseline record and pending jobs."""

    spec: ProviderSpec
    model: str
    lt: LoadedTask
    cal_texts: list[str]
    X_cal: np.ndarray
    baseline: EvalRecord
    store: EmbeddingStore
    calibration_label: str = ""
    natives: tuple[str, ...] = ()  # native outputs this provider returns in this run
    keys: dict[tuple[str, int], str] = field(default_factory=dict)  # (technique, seed) -> key
    cal_by_seed: dict[int, np.ndarray] = field(default_factory=dict)


class _Sweep:
    """One run of a grid: shared state, one method per step."""

    def __init__(
        self,
        config: Config,
        data_dir: Path | None,
        cache: EmbeddingCache,
        progress: ProgressFn,
        resume: bool,
    ):
        self.config, self.data_dir, self.cache, self.progress = config, data_dir, cache, progress
        self.out = config.output_dir()
        remove_stale_temporaries(self.out)
        self.records = RecordStore(self.out / "cells", enabled=resume)
        self.result = RunResult(config, git=git_state())
        self.timings = self.result.timings
        self.tasks: dict[str, LoadedTask] = {}
        self.n_cells, self.done = len(config.cells()), 0
        self.finished: dict[str, EvalRecord] = {}

    def timer(self, phase: str) -> _Timer:
        return _Timer(self.timings, phase)

    def task(self, name: str) -> LoadedTask:
        if name not in self.tasks:
            with self.timer("load_tasks"):
                self.tasks[name] = load_task(name, self.data_dir)
                prepare(self.tasks[name], self.config.evaluation)
            self.result.sources[name] = self.tasks[name].source
        return self.tasks[name]

    def key(self, spec: ProviderSpec, lt: LoadedTask, technique_spec: str, seed: int = 0) -> str:
        """Everything that determines an evaluation's result (not the bootstrap settings)."""
        ev = self.config.evaluation
        return evaluation_key(
            {
                "versions": _VERSIONS,
                "code": CODE,
                "provider": spec.key,
                "task": lt.name,
                "technique": technique_spec,
                "seed": seed,
                "data": lt.source,
                "calibration": self.config.calibration.model_dump(mode="json"),
                "evaluation": {
                    "normalize": ev.normalize,
                    "n_experiments": ev.n_experiments,
                    "samples_per_label": ev.samples_per_label,
                },
            }
        )

    def job(self, group: _Group, technique: str, key: str, vectors=None, seed: int = 0) -> EvalJob:
        return EvalJob(
            key=key,
            task=group.lt.name,
            data_dir=str(self.data_dir) if self.data_dir else None,
            evaluation=self.config.evaluation,
            technique=technique,
            provider_key=group.spec.key,
            model=group.model,
            calibration=self.calibration(group, seed),
            vectors=vectors or {},
            seed=seed,
        )

    def calibration(self, group: _Group, seed: int) -> np.ndarray:
        """Calibration vectors of replicate `seed`: another seeded sample of the same split."""
        if seed not in group.cal_by_seed:
            cal = self.config.calibration
            texts = group.lt.calibration_texts(cal.split, cal.max_texts, cal.seed + seed)
            with self.timer("embed"):
                group.cal_by_seed[seed] = group.store.get(texts, group.lt.purpose)
            facts = self.result.calibration[f"{group.spec.key}/{group.lt.name}"]
            facts.setdefault("replicate_texts_sha256", {})[str(seed)] = _text_digest(texts)
        return group.cal_by_seed[seed]

    def record(self, rec: EvalRecord) -> None:
        if not math.isfinite(rec.score):  # never written as a number, never resumed
            raise EmbedbenchError(f"{rec.task} × {rec.technique}: mteb scored {rec.score}")
        self.records.put(rec)
        self.finished[rec.key] = rec
        self.result.evaluations["run"] += 1

    def group(
        self, spec: ProviderSpec, provider: Provider, lt: LoadedTask, store: EmbeddingStore
    ) -> _Group:
        """Fetch calibration and evaluation texts; evaluate (or resume) the float baseline."""
        cal = self.config.calibration
        cal_texts = lt.calibration_texts(cal.split, cal.max_texts, cal.seed)
        with self.timer("embed"):
            needed = lt.needed_texts()
            needed[lt.purpose] = list(dict.fromkeys(needed[lt.purpose] + cal_texts))
            for purpose, texts in needed.items():
                store.get(texts, purpose)
            X_cal = store.get(cal_texts, lt.purpose)
        check_dims(self.config.techniques, X_cal.shape[1], spec.label)  # before any evaluation
        where = f"{spec.label} × {lt.name}"
        check_calibration(self.config.techniques, len(cal_texts), X_cal.shape[1], where)
        overlap = lt.calibration_overlap(cal_texts)
        source = overlap.pop("source") or cal.split
        self.result.calibration[f"{spec.key}/{lt.name}"] = {
            "split": source,
            "texts": len(cal_texts),
            "seed": cal.seed,
            "replicate_seeds": [cal.seed + s for s in range(self.config.evaluation.seeds)],
            "texts_sha256": _text_digest(cal_texts),
            "overlap_check": "NFKC and whitespace normalised",
            **overlap,
        }
        key = self.key(spec, lt, BASELINE)
        baseline = self.records.get(key)
        group = _Group(spec, provider.model, lt, cal_texts, X_cal, baseline, store)  # type: ignore[arg-type]
        group.cal_by_seed[0] = X_cal
        group.calibration_label = f"{source}:{len(cal_texts)}"
        if baseline is None:
            with self.timer("evaluate"):
                baseline = run_job(self.job(group, BASELINE, key), get=store.get, lt=lt)
            self.record(baseline)
        else:
            self.result.evaluations["resumed"] += 1
        group.baseline = baseline
        return group

    def seeds(self, technique: str) -> range:
        """Replicates of a technique: K when it has a fitted or random part, else one."""
        depends = build_technique(technique).depends_on_seed
        return range(self.config.evaluation.seeds if depends else 1)

    def pending_jobs(self, group: _Group) -> list[EvalJob]:
        """Jobs for the techniques (× seeds) of `group` without a record."""
        requested = group.baseline.requested
        jobs = []
        for name, _role in self.techniques(group):
            spec = build_technique(name).spec
            for seed in self.seeds(name):
                key = group.keys[name, seed] = self.key(group.spec, group.lt, spec, seed)
                if spec == BASELINE or self.records.get(key) is not None:
                    self.result.evaluations["resumed"] += spec != BASELINE
                    continue
                kind = native_kind(name.split("/")[0])
                outputs = {p: f"{p}#{kind}" if kind else p for p in requested}
                vectors = {
                    outputs[p]: (texts, group.store.get(texts, outputs[p]))
                    for p, texts in requested.items()
                }
                jobs.append(self.job(group, name, key, vectors, seed))
        return jobs

    def rows(self, group: _Group) -> None:
        """Retention rows of one group, in the grid's technique order, controls last."""
        lt, base, d = group.lt, group.baseline, group.X_cal.shape[1]
        ev = self.config.evaluation
        gold = list(lt.gold()) if lt.type != "Retrieval" else None
        items = stats.Items(lt.type, gold)
        chance = stats.chance_level(lt.type, gold)
        writer = self.result.predictions
        writer.task(lt.name, lt.type, gold)
        for name, role in self.techniques(group):
            tech = build_technique(name)
            recs = [
                base if tech.spec == BASELINE else self.records_get(group.keys[name, s])
                for s in self.seeds(name)
            ]
            rec = recs[0]
            interval = control = control_ret = None
            if rec is not base:
                with self.timer("bootstrap"):
                    interval = stats.retention_interval(
                        items,
                        base.predictions,
                        rec.predictions,
                        ev.bootstrap,
                        ev.seed,
                        ev.mc_target,
                    )
                    control = control_spec(name)
                    if control and applies(control, lt, group.natives):
                        ctl = self.records_get(group.keys[control, 0])
                        ctl_interval = stats.retention_interval(
                            items,
                            ctl.predictions,
                            rec.predictions,
                            ev.bootstrap,
                            ev.seed,
                            ev.mc_target,
                        )
                        control_ret = stats.retention(rec.score, ctl.score, ctl_interval, ev.margin)
            if rec is base or rec.seed == 0:
                write_json_atomic(
                    self.out / "mteb" / slug(group.spec.key) / slug(tech.spec) / f"{lt.name}.json",
                    rec.task_result,
                )
            provider = group.spec.name
            writer.cell(
                CellPredictions(
                    lt.name, provider, group.model, name, lt.type, rec.score, rec.predictions
                )
            )
            self.result.rows.append(
                CellResult(
                    task=lt.name,
                    provider=provider,
                    model=group.model,
                    technique=name,
                    spec=tech.spec,
                    role="baseline" if rec is base else role,
                    dim=d,
                    bytes_per_vector=rec.bytes_per_vector or tech.bytes_per_vector(d),
                    secondary_bytes=rec.secondary_bytes,
                    params_bytes=rec.params_bytes,
                    score=rec.score,
                    float_score=base.score,
                    retention=stats.retention(rec.score, base.score, interval, ev.margin),
                    interval_method=stats.BOOTSTRAP_METHODS[lt.type] if interval else "",
                    calibration=group.calibration_label,
                    control=control if control_ret else "",
                    control_retention=control_ret,
                    chance_corrected=stats.chance_corrected(rec.score, base.score, chance)
                    if rec is not base
                    else None,
                    spread=stats.seed_spread([100.0 * r.score / base.score for r in recs])
                    if len(recs) > 1
                    else None,
                )
            )

    def techniques(self, group: _Group) -> list[tuple[str, str]]:
        """(technique, role) of a group: the grid's techniques that apply (search options
        need a retrieval task, native outputs a provider that has them), then the float
        control of every technique whose transforms change the float geometry."""
        listed = [t for t in self.config.techniques if applies(t, group.lt, group.natives)]
        controls = [c for t in listed if (c := control_spec(t)) and c not in listed]
        return [(t, "technique") for t in listed] + [
            (c, "control") for c in dict.fromkeys(controls)
        ]

    def records_get(self, key: str) -> EvalRecord:
        rec = self.finished.get(key) or self.records.get(key)
        if rec is None:
            raise RuntimeError(f"evaluation {key} has no record")
        return rec

    def run(self) -> RunResult:
        groups: list[_Group] = []
        jobs: list[EvalJob] = []
        for name in self.config.tasks:  # every data file checked before any provider call
            self.task(name)
        for spec in self.config.providers:
            provider, natives = _open_provider(spec, self.config)
            counters = FetchStats()
            try:
                for task_name in self.config.tasks:
                    lt = self.task(task_name)
                    store = EmbeddingStore(
                        provider, self.cache, counters, self.progress, f"{spec.label} {task_name}"
                    )
                    group = self.group(spec, provider, lt, store)
                    group.natives = natives
                    groups.append(group)
                    jobs.extend(self.pending_jobs(group))
            finally:
                provider.close()
                self.result.fetch[spec.key] = counters.as_dict()
        self.n_cells = sum(len(g.keys) for g in groups)
        self.result.skipped = [
            f"{g.spec.key} × {g.lt.name} × {t}"
            for g in groups
            for t in self.config.techniques
            if not applies(t, g.lt, g.natives)
        ]
        self.done = self.n_cells - len(jobs)
        self.progress("evaluate", "", self.done, self.n_cells)
        with self.timer("evaluate"):
            for rec in run_jobs(jobs, self.config.executor):
                self.record(rec)
                self.done += 1
                self.progress("evaluate", f"{rec.task} {rec.technique}", self.done, self.n_cells)
        for group in groups:
            self.rows(group)
        return self.result


def applies(technique: str, lt: LoadedTask, natives: tuple[str, ...]) -> bool:
    """Search options (`binary/asym`) need a retrieval task; `native-*` a provider output."""
    if "/" in technique and lt.type != "Retrieval":
        return False
    kind = native_kind(technique.split("/")[0])
    return kind is None or kind in natives


def _native_kinds(config: Config) -> tuple[str, ...]:
    return tuple(sorted({k for t in config.techniques if (k := native_kind(t.split("/")[0]))}))


def _open_provider(spec: ProviderSpec, config: Config) -> tuple[Provider, tuple[str, ...]]:
    """The provider, asked for the native outputs the grid uses that it has."""
    provider = build_provider(spec)
    wanted = _native_kinds(config)
    has = set(provider.native_codes()) if wanted and hasattr(provider, "native_codes") else set()
    natives = tuple(k for k in wanted if k in has)
    if natives:
        provider.close()
        provider = build_provider(spec, natives)
    return provider, natives


def run_sweep(
    config: Config,
    data_dir: Path | None,
    cache: EmbeddingCache,
    progress: ProgressFn = _noop,
    resume: bool = True,
) -> RunResult:
    """Run every cell of `config`; results and mteb files go to `config.output_dir()`."""
    for name in config.techniques:
        build_technique(name)  # fail on a bad name before any provider call
    return _Sweep(config, data_dir, cache, progress, resume).run()
