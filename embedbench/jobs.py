"""The evaluations of one provider × task: calibration samples, keys and jobs.

`TaskJobs` holds a provider × task's calibration vectors (one seeded sample per
replicate, embedded through the run's store), the key of every technique × seed, and
builds the self-contained `EvalJob` of each: the technique jobs carry exactly the
vectors mteb asked the float baseline for, so any worker can run them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbench import grid
from embedbench.config import Config, ProviderSpec
from embedbench.embeddings import EmbeddingStore
from embedbench.evaluate import EvalJob
from embedbench.native import native_kind
from embedbench.records import EvalRecord, RecordStore
from embedbench.registry import build_technique
from embedbench.tasks import LoadedTask, calibration_texts
from embedbench.tasks.calibration import calibration_facts, text_digest


@dataclass
class TaskJobs:
    """One provider × task of a run."""

    config: Config
    data_dir: Path | None
    spec: ProviderSpec
    model: str
    lt: LoadedTask
    store: EmbeddingStore
    natives: tuple[str, ...]
    timings: dict[str, float]
    calibration_facts: dict[str, Any]  # the manifest's entry for this provider × task
    baseline: EvalRecord | None = None
    calibration_label: str = ""
    keys: dict[tuple[str, int], str] = field(default_factory=dict)  # (technique, seed) -> key
    cal_by_seed: dict[int, np.ndarray] = field(default_factory=dict)

    def calibration(self, seed: int) -> np.ndarray:
        """Calibration vectors of replicate `seed`: another seeded sample of the source."""
        if seed not in self.cal_by_seed:
            cal, lt = self.config.calibration, self.lt
            label, texts = calibration_texts(
                lt, cal.split, cal.max_texts, cal.seed + seed, self.data_dir
            )
            t0 = time.perf_counter()
            self.cal_by_seed[seed] = self.store.get(texts, lt.purpose)
            self.timings["embed"] += time.perf_counter() - t0
            facts = self.calibration_facts
            if seed == 0:
                facts.update(calibration_facts(lt, label, texts, cal, self.config.evaluation.seeds))
                self.calibration_label = f"{facts['split']}:{len(texts)}"
            facts.setdefault("replicate_texts_sha256", {})[str(seed)] = text_digest(texts)
        return self.cal_by_seed[seed]

    def key(self, technique_spec: str, seed: int) -> str:
        return grid.key(self.config, self.spec, self.lt, technique_spec, seed)

    def job(self, technique: str, key: str, vectors=None, seed: int = 0) -> EvalJob:
        return EvalJob(
            key=key,
            task=self.lt.entry,
            data_dir=str(self.data_dir) if self.data_dir else None,
            evaluation=self.config.evaluation,
            technique=technique,
            provider_key=self.spec.key,
            model=self.model,
            calibration=self.calibration(seed),
            vectors=vectors or {},
            seed=seed,
        )

    def pending(self, records: RecordStore) -> tuple[list[EvalJob], int]:
        """(jobs for the techniques × seeds without a record, how many were resumed)."""
        requested = self.baseline.requested  # type: ignore[union-attr]
        jobs, resumed = [], 0
        for name, _role in grid.techniques(self.config, self.lt, self.natives):
            spec = build_technique(name).spec
            for seed in grid.seeds(self.config, name):
                key = self.keys[name, seed] = self.key(spec, seed)
                if spec == grid.BASELINE or records.get(key) is not None:
                    resumed += spec != grid.BASELINE
                    continue
                kind = native_kind(name.split("/")[0])
                outputs = {p: f"{p}#{kind}" if kind else p for p in requested}
                vectors = {
                    outputs[p]: (texts, self.store.get(texts, outputs[p]))
                    for p, texts in requested.items()
                }
                jobs.append(self.job(name, key, vectors, seed))
        return jobs, resumed
