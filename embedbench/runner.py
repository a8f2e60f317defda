"""Execute a grid: embed each text once, fit on calibration, evaluate with mteb, collect.

For each provider × task: fetch calibration and evaluation texts through the cache,
evaluate the float baseline with mteb, then for each technique fit on calibration
vectors only, evaluate its decoded vectors with the same mteb task and settings, and
compute retention with a paired bootstrap on mteb's own predictions.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbench import stats
from embedbench.cache import EmbeddingCache
from embedbench.config import Config, ProviderSpec
from embedbench.encoder import TechniqueEncoder, model_meta
from embedbench.errors import EmbedbenchError
from embedbench.providers.base import FetchStats, Provider, Purpose, fetch
from embedbench.quantize import Technique, parse_technique
from embedbench.registry import build_provider, build_technique
from embedbench.tasks import LoadedTask, load_task

# (phase, description, done, total); phases: "embed", "evaluate"
ProgressFn = Callable[[str, str, int, int], None]


def _noop(phase: str, desc: str, done: int, total: int) -> None:
    pass


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class EmbeddingStore:
    """Float vectors of one provider and purpose, fetched once per run through the cache."""

    def __init__(
        self,
        provider: Provider,
        purpose: Purpose,
        cache: EmbeddingCache,
        counters: FetchStats,
        progress: ProgressFn,
        desc: str,
    ):
        self.provider, self.purpose, self.cache = provider, purpose, cache
        self.counters, self.progress, self.desc = counters, progress, desc
        self._rows: dict[str, np.ndarray] = {}

    def get(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            vecs = fetch(
                self.provider,
                missing,
                self.purpose,
                self.cache,
                self.counters,
                lambda done, total: self.progress("embed", self.desc, done, total),
            )
            self._rows.update(zip(missing, vecs, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._rows[t] for t in texts])


@dataclass
class CellResult:
    """One row of the retention table."""

    task: str
    provider: str
    model: str
    technique: str
    spec: str
    dim: int
    bits_per_dim: float
    bytes_per_vector: int
    size_multiplier: float
    params_bytes: int
    score: float
    float_score: float
    retention: stats.Retention
    interval_method: str
    calibration: str


@dataclass
class RunResult:
    config: Config
    rows: list[CellResult] = field(default_factory=list)
    fetch: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def texts_embedded(self) -> int:
        return sum(f["texts_embedded"] for f in self.fetch.values())

    @property
    def texts_from_cache(self) -> int:
        return sum(f["texts_from_cache"] for f in self.fetch.values())


@dataclass
class _Evaluated:
    score: float
    predictions: Any


class _Timer:
    def __init__(self, timings: dict[str, float], phase: str):
        self.timings, self.phase = timings, phase

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.phase] += time.perf_counter() - self.t0


def _prepare(lt: LoadedTask, config: Config) -> None:
    """Evaluator settings, identical for the baseline and every technique."""
    task = lt.task
    if lt.type == "STS":
        # mteb's STS main score is cosine on what encode returns; "spearman" follows the
        # encoder's own similarity, i.e. the technique's (same value for float vectors).
        task.metadata = task.metadata.model_copy(update={"main_score": "spearman"})
    ev = config.evaluation
    if lt.type == "Classification":
        if ev.n_experiments is not None:
            task.n_experiments = ev.n_experiments
        if ev.samples_per_label is not None:
            task.samples_per_label = ev.samples_per_label


def _evaluate(lt: LoadedTask, encoder: TechniqueEncoder, out: Path, folder: str) -> _Evaluated:
    import mteb
    from mteb.cache import ResultCache

    pred_dir = out / "predictions" / folder
    result = mteb.evaluate(
        encoder,
        lt.task,
        cache=ResultCache(out / "mteb"),
        overwrite_strategy="always",
        prediction_folder=pred_dir,
        show_progress_bar=False,
        raise_error=True,
    )
    score = float(result.task_results[0].get_score())
    preds_file = pred_dir / f"{lt.name}_predictions.json"
    preds = json.loads(preds_file.read_text(encoding="utf-8"))["default"][lt.eval_split]
    if lt.type == "STS":
        preds = preds["similarity_scores"]
    _check_consistent(lt, score, preds)
    return _Evaluated(score, preds)


def _gold(lt: LoadedTask) -> list[Any]:
    split = lt.split(lt.eval_split)
    return split["score"] if lt.type == "STS" else split[lt.task.label_column_name]


def _check_consistent(lt: LoadedTask, score: float, preds: Any) -> None:
    """The predictions the interval is built on must reproduce mteb's main score."""
    from scipy.stats import spearmanr

    gold = np.asarray(_gold(lt))
    if lt.type == "STS":
        again = float(spearmanr(gold, preds)[0])
    else:
        again = float(np.mean([(np.asarray(p) == gold).mean() for p in preds]))
    if abs(again - score) > 1e-9:
        raise EmbedbenchError(
            f"{lt.name}: mteb main score {score} differs from its predictions ({again})"
        )


def _interval(lt: LoadedTask, base: _Evaluated, ev: _Evaluated, config: Config):
    n, seed = config.evaluation.bootstrap, config.evaluation.seed
    if lt.type == "STS":
        return stats.sts_retention(_gold(lt), base.predictions, ev.predictions, n, seed)
    return stats.classification_retention(_gold(lt), base.predictions, ev.predictions, n, seed)


def _text_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


class _Sweep:
    """One run of a grid: shared state of the cells, one method per level of the loop."""

    def __init__(
        self, config: Config, data_dir: Path | None, cache: EmbeddingCache, progress: ProgressFn
    ):
        self.config, self.data_dir, self.cache, self.progress = config, data_dir, cache, progress
        self.out = config.output_dir()
        self.result = RunResult(config)
        self.timings = self.result.timings
        self.tasks: dict[str, LoadedTask] = {}
        self.n_cells, self.done = len(config.cells()), 0

    def timer(self, phase: str) -> _Timer:
        return _Timer(self.timings, phase)

    def task(self, name: str) -> LoadedTask:
        if name not in self.tasks:
            with self.timer("load_tasks"):
                self.tasks[name] = load_task(name, self.data_dir)
                _prepare(self.tasks[name], self.config)
            self.result.sources[name] = self.tasks[name].source
        return self.tasks[name]

    def provider(self, spec: ProviderSpec) -> None:
        provider = build_provider(spec)
        counters = FetchStats()
        try:
            for task_name in self.config.tasks:
                lt = self.task(task_name)
                store = EmbeddingStore(
                    provider,
                    lt.purpose,
                    self.cache,
                    counters,
                    self.progress,
                    f"{spec.label} {task_name}",
                )
                self.provider_task(spec, provider.model, lt, store)
        finally:
            provider.close()
            self.result.fetch[spec.key] = counters.as_dict()

    def evaluate(
        self,
        spec: ProviderSpec,
        model: str,
        lt: LoadedTask,
        store: EmbeddingStore,
        tech: Technique,
        dim: int,
    ) -> _Evaluated:
        normalize = self.config.evaluation.normalize
        meta = model_meta(model, spec.key, tech, normalize, dim)
        enc = TechniqueEncoder(lambda texts, _pt: store.get(texts), tech, meta, normalize)
        with self.timer("evaluate"):
            return _evaluate(lt, enc, self.out, f"{slug(spec.key)}/{slug(tech.spec)}")

    def provider_task(
        self, spec: ProviderSpec, model: str, lt: LoadedTask, store: EmbeddingStore
    ) -> None:
        cal = self.config.calibration
        cal_texts = lt.calibration_texts(cal.split, cal.max_texts, cal.seed)
        with self.timer("embed"):
            store.get(cal_texts + lt.eval_texts())
            X_cal = store.get(cal_texts)
        d = X_cal.shape[1]
        self.result.calibration[f"{spec.key}/{lt.name}"] = {
            "split": cal.split,
            "texts": len(cal_texts),
            "seed": cal.seed,
            "texts_sha256": _text_digest(cal_texts),
            "touches_eval_texts": False,
        }
        with self.timer("fit"):
            baseline = parse_technique("float32").fit(X_cal)
        base = self.evaluate(spec, model, lt, store, baseline, d)
        for name in self.config.techniques:
            self.progress("evaluate", f"{lt.name} {name}", self.done, self.n_cells)
            tech = build_technique(name)
            if tech.spec == baseline.spec:
                ev, interval = base, None
            else:
                with self.timer("fit"):
                    tech.fit(X_cal)
                ev = self.evaluate(spec, model, lt, store, tech, d)
                with self.timer("bootstrap"):
                    interval = _interval(lt, base, ev, self.config)
            self.result.rows.append(
                CellResult(
                    task=lt.name,
                    provider=spec.name,
                    model=model,
                    technique=name,
                    spec=tech.spec,
                    dim=d,
                    bits_per_dim=tech.bits_per_dim(d),
                    bytes_per_vector=tech.bytes_per_vector(d),
                    size_multiplier=tech.size_multiplier(d),
                    params_bytes=tech.params_bytes(),
                    score=ev.score,
                    float_score=base.score,
                    retention=stats.retention(ev.score, base.score, interval),
                    interval_method=stats.BOOTSTRAP_METHODS[lt.type] if interval else "",
                    calibration=f"{cal.split}:{len(cal_texts)}",
                )
            )
            self.done += 1
            self.progress("evaluate", f"{lt.name} {name}", self.done, self.n_cells)


def run_sweep(
    config: Config, data_dir: Path | None, cache: EmbeddingCache, progress: ProgressFn = _noop
) -> RunResult:
    """Run every cell of `config`; results and mteb files go to `config.output_dir()`."""
    for name in config.techniques:
        build_technique(name)  # fail on a bad name before any provider call
    sweep = _Sweep(config, data_dir, cache, progress)
    for spec in config.providers:
        sweep.provider(spec)
    return sweep.result
