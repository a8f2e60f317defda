"""Execute a grid: embed each text once, evaluate, collect retention rows.

The driver (this module) is the only caller of providers. Every task is loaded and its
calibration source resolved before any provider call. For each provider × task
(`jobs.TaskJobs`) it fetches calibration and evaluation texts through the cache,
evaluates the float baseline with mteb (fetching whatever else mteb asks for), then
hands one self-contained job per technique × seed to the executor. Each finished
evaluation is recorded in `<run>/cells/` at once, so a killed sweep resumes without
redoing it. Rows are built last, from the records, in grid order (`embedbench.rows`).
"""

from __future__ import annotations

import functools
import math
import re
import time
from pathlib import Path

from embedbench import grid
from embedbench.cache import EmbeddingCache
from embedbench.config import Config
from embedbench.embeddings import EmbeddingStore, ProgressFn, no_progress, open_provider
from embedbench.errors import EmbedbenchError
from embedbench.evaluate import EvalJob, prepare, run_job
from embedbench.executor import run_jobs
from embedbench.grid import BASELINE, CODE  # noqa: F401  (CODE: the report's fingerprint)
from embedbench.jobs import TaskJobs
from embedbench.predictions import CellPredictions
from embedbench.providers.base import FetchStats
from embedbench.records import (
    EvalRecord,
    RecordStore,
    git_state,
    remove_stale_temporaries,
    write_json_atomic,
)
from embedbench.registry import build_technique, check_calibration, check_dims, training_notes
from embedbench.results import CellResult, RunResult
from embedbench.rows import TaskRows, technique_rows
from embedbench.tasks import LoadedTask, calibration_texts, load_task


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


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

    def load_tasks(self) -> list[LoadedTask]:
        """Every task loaded, its files checked and its calibration source resolved,
        before any provider call."""
        entries, left_out = grid.task_entries(self.config)
        self.result.skipped += [f"benchmark task of an unsupported kind: {t}" for t in left_out]
        tasks, cal = [], self.config.calibration
        for entry in entries:
            t0 = time.perf_counter()
            lt = load_task(entry, self.data_dir)
            prepare(lt, self.config.evaluation)
            calibration_texts(lt, cal.split, cal.max_texts, cal.seed, self.data_dir)
            self.timings["load_tasks"] += time.perf_counter() - t0
            self.result.sources[lt.name] = lt.source
            tasks.append(lt)
        return tasks

    def record(self, rec: EvalRecord) -> None:
        if not math.isfinite(rec.score):  # never written as a number, never resumed
            raise EmbedbenchError(f"{rec.task} × {rec.technique}: mteb scored {rec.score}")
        self.records.put(rec)
        self.finished[rec.key] = rec
        self.result.evaluations["run"] += 1

    def get(self, key: str) -> EvalRecord:
        rec = self.finished.get(key) or self.records.get(key)
        if rec is None:
            raise RuntimeError(f"evaluation {key} has no record")
        return rec

    def baseline(self, tj: TaskJobs) -> None:
        """Fetch calibration and evaluation texts; evaluate (or resume) the float baseline."""
        lt, spec = tj.lt, tj.spec
        X_cal = tj.calibration(0)
        t0 = time.perf_counter()
        for purpose, texts in lt.needed_texts().items():
            tj.store.get(texts, purpose)
        self.timings["embed"] += time.perf_counter() - t0
        check_dims(self.config.techniques, X_cal.shape[1], spec.label)  # before any evaluation
        where = f"{spec.label} × {lt.name}"
        check_calibration(self.config.techniques, len(X_cal), X_cal.shape[1], where)
        for note in training_notes(self.config.techniques, len(X_cal), X_cal.shape[1]):
            self.result.warnings.append(f"{where}: {note}")
        key = tj.keys[BASELINE, 0] = tj.key(BASELINE, 0)
        tj.baseline = self.records.get(key)
        if tj.baseline is None:
            t0 = time.perf_counter()
            tj.baseline = run_job(tj.job(BASELINE, key), get=tj.store.get, lt=lt)
            self.timings["evaluate"] += time.perf_counter() - t0
            self.record(tj.baseline)
        else:
            self.result.evaluations["resumed"] += 1

    def rows(self, tj: TaskJobs) -> None:
        """Retention rows of one provider × task; the predictions behind them and seed
        0's mteb result JSON go to the run folder."""
        lt, t0 = tj.lt, time.perf_counter()
        tr = TaskRows(lt)
        self.result.predictions.task(lt.name, lt.type, tr.gold)
        dim = len(tj.cal_by_seed[0][0])
        cell = functools.partial(
            CellResult, provider=tj.spec.name, model=tj.model, dim=dim,
            calibration=tj.calibration_label,
        )  # fmt: skip
        for name, spec, rec, rows in technique_rows(
            self.config, tr, tj.natives, tj.baseline, tj.keys, self.get, cell
        ):
            self.result.rows += rows
            path = self.out / "mteb" / slug(tj.spec.key) / slug(spec) / f"{lt.name}.json"
            write_json_atomic(path, rec.task_result)
            self.result.predictions.cell(
                CellPredictions(
                    lt.name, tj.spec.name, tj.model, name, lt.type, rec.score,
                    rec.predictions, rec.unit_scores,
                )
            )  # fmt: skip
        self.timings["bootstrap"] += time.perf_counter() - t0

    def run(self) -> RunResult:
        tasks = self.load_tasks()
        groups: list[TaskJobs] = []
        jobs: list[EvalJob] = []
        for spec in self.config.providers:
            provider, natives = open_provider(spec, self.config)
            counters = FetchStats()
            try:
                for lt in tasks:
                    desc = f"{spec.label} {lt.name}"
                    store = EmbeddingStore(provider, self.cache, counters, self.progress, desc)
                    facts = self.result.calibration.setdefault(f"{spec.key}/{lt.name}", {})
                    tj = TaskJobs(
                        self.config, self.data_dir, spec, provider.model, lt, store, natives,
                        self.timings, facts,
                    )  # fmt: skip
                    self.baseline(tj)
                    groups.append(tj)
                    pending, resumed = tj.pending(self.records)
                    jobs += pending
                    self.result.evaluations["resumed"] += resumed
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
        for tj in groups:
            self.rows(tj)
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
