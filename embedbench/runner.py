"""Execute a grid: embed each text once, evaluate, collect retention rows.

The driver (this module) is the only caller of providers. Every task is loaded and its
calibration source resolved before any provider call. For each provider × task it
fetches calibration and evaluation texts through the cache, evaluates the float
baseline with mteb (fetching whatever else mteb asks for), then hands one
self-contained job per technique × seed to the executor. Each finished evaluation is
recorded in `<run>/cells/` at once, so a killed sweep resumes without redoing it.
Rows are built last, from the records, in grid order (`embedbench.rows`).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbench import grid
from embedbench.cache import EmbeddingCache
from embedbench.config import Config, ProviderSpec
from embedbench.embeddings import EmbeddingStore, ProgressFn, no_progress, open_provider
from embedbench.errors import EmbedbenchError
from embedbench.evaluate import EvalJob, prepare, run_job
from embedbench.executor import run_jobs
from embedbench.grid import BASELINE, CODE  # noqa: F401  (CODE: the report's fingerprint)
from embedbench.native import native_kind
from embedbench.predictions import CellPredictions, PredictionWriter
from embedbench.providers.base import FetchStats
from embedbench.quantize import control_spec
from embedbench.records import (
    EvalRecord,
    RecordStore,
    git_state,
    remove_stale_temporaries,
    write_json_atomic,
)
from embedbench.registry import build_technique, check_calibration, check_dims
from embedbench.results import CellResult
from embedbench.rows import TaskRows, task_rows
from embedbench.tasks import LoadedTask, calibration_texts, load_task, overlap


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


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


def _text_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


@dataclass
class _Group:
    """One provider × task: its calibration, baseline record and evaluation keys."""

    spec: ProviderSpec
    model: str
    lt: LoadedTask
    store: EmbeddingStore
    natives: tuple[str, ...]
    baseline: EvalRecord | None = None
    calibration_label: str = ""
    keys: dict[tuple[str, int], str] = field(default_factory=dict)  # (technique, seed) -> key
    cal_by_seed: dict[int, np.ndarray] = field(default_factory=dict)


class _Sweep:
    """One run of a grid: shared state, one method per step."""

    def __init__(self, config, data_dir, cache, progress, resume):
        self.config, self.data_dir, self.cache, self.progress = config, data_dir, cache, progress
        self.out = config.output_dir()
        remove_stale_temporaries(self.out)
        self.records = RecordStore(self.out / "cells", enabled=resume)
        self.result = RunResult(config, git=git_state())
        self.timings = self.result.timings
        self.finished: dict[str, EvalRecord] = {}

    def calibration(self, group: _Group, seed: int) -> np.ndarray:
        """Calibration vectors of replicate `seed`: another seeded sample of the source."""
        if seed not in group.cal_by_seed:
            cal, lt = self.config.calibration, group.lt
            label, texts = calibration_texts(
                lt, cal.split, cal.max_texts, cal.seed + seed, self.data_dir
            )
            t0 = time.perf_counter()
            group.cal_by_seed[seed] = group.store.get(texts, lt.purpose)
            self.timings["embed"] += time.perf_counter() - t0
            facts = self.result.calibration.setdefault(f"{group.spec.key}/{lt.name}", {})
            if seed == 0:
                facts.update(self._calibration_facts(label, texts, lt))
                group.calibration_label = f"{facts['split']}:{len(texts)}"
            facts.setdefault("replicate_texts_sha256", {})[str(seed)] = _text_digest(texts)
        return group.cal_by_seed[seed]

    def _calibration_facts(self, label: str, texts: list[str], lt: LoadedTask) -> dict[str, Any]:
        cal = self.config.calibration
        facts = overlap(lt, texts)
        transductive = facts.pop("transductive")
        return {
            "split": f"{label}, transductive" if transductive else label,
            "texts": len(texts),
            "seed": cal.seed,
            "replicate_seeds": [cal.seed + s for s in range(self.config.evaluation.seeds)],
            "texts_sha256": _text_digest(texts),
            "overlap_check": "NFKC and whitespace normalised",
            **facts,
        }

    def job(self, group: _Group, technique: str, key: str, vectors=None, seed: int = 0) -> EvalJob:
        return EvalJob(
            key=key,
            task=group.lt.entry,
            data_dir=str(self.data_dir) if self.data_dir else None,
            evaluation=self.config.evaluation,
            technique=technique,
            provider_key=group.spec.key,
            model=group.model,
            calibration=self.calibration(group, seed),
            vectors=vectors or {},
            seed=seed,
        )

    def record(self, rec: EvalRecord) -> None:
        if not math.isfinite(rec.score):  # never written as a number, never resumed
            raise EmbedbenchError(f"{rec.task} × {rec.technique}: mteb scored {rec.score}")
        self.records.put(rec)
        self.finished[rec.key] = rec
        self.result.evaluations["run"] += 1

    def baseline(self, group: _Group) -> None:
        """Fetch calibration and evaluation texts; evaluate (or resume) the float baseline."""
        lt, spec = group.lt, group.spec
        X_cal = self.calibration(group, 0)
        t0 = time.perf_counter()
        for purpose, texts in lt.needed_texts().items():
            group.store.get(texts, purpose)
        self.timings["embed"] += time.perf_counter() - t0
        check_dims(self.config.techniques, X_cal.shape[1], spec.label)  # before any evaluation
        where = f"{spec.label} × {lt.name}"
        check_calibration(self.config.techniques, len(X_cal), X_cal.shape[1], where)
        key = group.keys[BASELINE, 0] = grid.key(self.config, spec, lt, BASELINE, 0)
        group.baseline = self.records.get(key)
        if group.baseline is None:
            t0 = time.perf_counter()
            group.baseline = run_job(self.job(group, BASELINE, key), get=group.store.get, lt=lt)
            self.timings["evaluate"] += time.perf_counter() - t0
            self.record(group.baseline)
        else:
            self.result.evaluations["resumed"] += 1

    def pending_jobs(self, group: _Group) -> list[EvalJob]:
        """Jobs for the techniques (× seeds) of `group` without a record."""
        requested = group.baseline.requested  # type: ignore[union-attr]
        jobs = []
        for name, _role in grid.techniques(self.config, group.lt, group.natives):
            spec = build_technique(name).spec
            for seed in grid.seeds(self.config, name):
                key = group.keys[name, seed] = grid.key(
                    self.config, group.spec, group.lt, spec, seed
                )
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

    def get(self, key: str) -> EvalRecord:
        rec = self.finished.get(key) or self.records.get(key)
        if rec is None:
            raise RuntimeError(f"evaluation {key} has no record")
        return rec

    def rows(self, group: _Group) -> None:
        """Retention rows of one group, in the grid's technique order, controls last;
        the predictions behind them and seed 0's mteb result JSON go to the run folder."""
        lt, base, ev = group.lt, group.baseline, self.config.evaluation
        tr = TaskRows(lt)
        self.result.predictions.task(lt.name, lt.type, tr.gold)
        d = len(group.cal_by_seed[0][0])

        def cell(**values: Any) -> CellResult:
            return CellResult(
                provider=group.spec.name,
                model=group.model,
                dim=d,
                calibration=group.calibration_label,
                **values,
            )

        for name, role in grid.techniques(self.config, lt, group.natives):
            spec = build_technique(name).spec
            recs = [
                base if spec == BASELINE else self.get(group.keys[name, s])
                for s in grid.seeds(self.config, name)
            ]
            ctl = control_spec(name)
            control = None
            if recs[0] is not base and ctl and grid.applies(ctl, lt, group.natives):
                control = (ctl, self.get(group.keys[ctl, 0]))
            t0 = time.perf_counter()
            self.result.rows += task_rows(tr, base, (name, spec, role), recs, control, ev, cell)
            self.timings["bootstrap"] += time.perf_counter() - t0
            write_json_atomic(
                self.out / "mteb" / slug(group.spec.key) / slug(spec) / f"{lt.name}.json",
                recs[0].task_result,
            )
            self.result.predictions.cell(
                CellPredictions(
                    lt.name,
                    group.spec.name,
                    group.model,
                    name,
                    lt.type,
                    recs[0].score,
                    recs[0].predictions,
                    recs[0].unit_scores,
                )
            )

    def load_tasks(self) -> list[LoadedTask]:
        """Every task loaded, its files checked and its calibration source resolved,
        before any provider call."""
        entries, left_out = grid.task_entries(self.config)
        self.result.skipped += [f"benchmark task of an unsupported kind: {t}" for t in left_out]
        tasks = []
        cal = self.config.calibration
        for entry in entries:
            t0 = time.perf_counter()
            lt = load_task(entry, self.data_dir)
            prepare(lt, self.config.evaluation)
            calibration_texts(lt, cal.split, cal.max_texts, cal.seed, self.data_dir)
            self.timings["load_tasks"] += time.perf_counter() - t0
            self.result.sources[lt.name] = lt.source
            tasks.append(lt)
        return tasks

    def run(self) -> RunResult:
        tasks = self.load_tasks()
        groups: list[_Group] = []
        jobs: list[EvalJob] = []
        for spec in self.config.providers:
            provider, natives = open_provider(spec, self.config)
            counters = FetchStats()
            try:
                for lt in tasks:
                    desc = f"{spec.label} {lt.name}"
                    store = EmbeddingStore(provider, self.cache, counters, self.progress, desc)
                    group = _Group(spec, provider.model, lt, store, natives)
                    self.baseline(group)
                    groups.append(group)
                    jobs.extend(self.pending_jobs(group))
            finally:
                provider.close()
                self.result.fetch[spec.key] = counters.as_dict()
        self.result.skipped += [
            f"{g.spec.key} × {g.lt.name} × {t}"
            for g in groups
            for t in self.config.techniques
            if not grid.applies(t, g.lt, g.natives)
        ]
        n_cells = sum(len(g.keys) for g in groups)
        done = n_cells - len(jobs)
        self.progress("evaluate", "", done, n_cells)
        t0 = time.perf_counter()
        for rec in run_jobs(jobs, self.config.executor):
            self.record(rec)
            done += 1
            self.progress("evaluate", f"{rec.task} {rec.technique}", done, n_cells)
        self.timings["evaluate"] += time.perf_counter() - t0
        for group in groups:
            self.rows(group)
        return self.result


def run_sweep(
    config: Config,
    data_dir: Path | None,
    cache: EmbeddingCache,
    progress: ProgressFn = no_progress,
    resume: bool = True,
) -> RunResult:
    """Run every cell of `config`; results and mteb files go to `config.output_dir()`."""
    for name in config.techniques:
        build_technique(name)  # fail on a bad name before any provider call
    return _Sweep(config, data_dir, cache, progress, resume).run()
