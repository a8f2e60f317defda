"""One evaluation job: a technique on a task through mteb, self-contained for any worker.

A job carries everything it needs (task name and data folder, evaluator settings,
the calibration vectors, the float vectors of every text mteb will ask for), so
threads, processes or dask workers can run it without a provider or the cache.
The driver runs the float baseline with a lazy lookup instead, and records which
texts mteb asked for; the technique jobs then carry exactly those.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbench.config import Evaluation
from embedbench.encoder import TechniqueEncoder, model_meta
from embedbench.errors import EmbedbenchError
from embedbench.native import NativeCode
from embedbench.providers.base import Purpose
from embedbench.records import EvalRecord
from embedbench.registry import build_technique
from embedbench.tasks import LoadedTask, load_task, mteb_compat, unit_key

Get = Callable[[list[str], Purpose], np.ndarray]


@dataclass
class EvalJob:
    key: str
    task: Any  # the config's task entry (`TaskSpec`)
    data_dir: str | None
    evaluation: Evaluation
    technique: str
    provider_key: str
    model: str
    calibration: np.ndarray
    vectors: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    seed: int = 0  # replicate seed of the technique's random draws


def prepare(lt: LoadedTask, ev: Evaluation) -> None:
    """Evaluator settings, identical for the float baseline and every technique."""
    lt.kind.prepare(lt.task, ev)


class _Recorder:
    """The encoder's lookup: maps mteb's prompt type to a purpose and notes every text."""

    def __init__(self, get: Get, lt: LoadedTask, output: str | None = None):
        self.get, self.lt, self.output = get, lt, output
        self.requested: dict[str, dict[str, None]] = {}

    def __call__(self, texts: list[str], prompt_type: Any) -> np.ndarray:
        purpose = self.lt.purpose_for(prompt_type)
        self.requested.setdefault(purpose, {}).update(dict.fromkeys(texts))
        # a provider-native technique reads that output (`sts#int8`), not the floats
        return self.get(texts, f"{purpose}#{self.output}" if self.output else purpose)


def _strict_get(vectors: dict[str, tuple[list[str], np.ndarray]]) -> Get:
    index = {
        p: (dict(zip(texts, range(len(texts)), strict=True)), X)
        for p, (texts, X) in vectors.items()
    }

    def get(texts: list[str], purpose: Purpose) -> np.ndarray:
        rows, X = index[purpose]
        try:
            return X[[rows[t] for t in texts]]
        except KeyError as e:
            raise EmbedbenchError(f"job lacks the vector of a text mteb asked for: {e}") from None

    return get


def check_consistent(lt: LoadedTask, unit_scores: dict[str, float], preds: dict[str, Any]):
    """The predictions an interval is built on must reproduce mteb's main score, unit by
    unit (a change in mteb's internals stops here, never as a wrong figure)."""
    for unit in lt.units:
        key = unit_key(unit)
        again = lt.kind.resampler(lt.gold(unit)).point(preds[key])
        if not lt.kind.consistent(again, unit_scores[key]):
            raise EmbedbenchError(
                f"{lt.name} {key}: mteb main score {unit_scores[key]} differs from its "
                f"predictions ({again})"
            )


def unit_scores(lt: LoadedTask, scores: dict[str, Any]) -> dict[str, float]:
    """mteb's main score of every unit, from its TaskResult's (unrounded) scores."""
    out = {}
    for split, entries in scores.items():
        for entry in entries:
            out[unit_key((entry["hf_subset"], split))] = float(entry["main_score"])
    missing = [unit_key(u) for u in lt.units if unit_key(u) not in out]
    if missing:
        raise EmbedbenchError(f"{lt.name}: mteb reported no score for {', '.join(missing)}")
    return out


RESCORE_DEPTH = 10  # least documents a rescored search returns (the main score's k if more)
_AT_K = re.compile(r"_at_(\d+)(?:_|$)")


def _rescore_technique(job: EvalJob) -> Any:
    """The technique whose decoded document copies a `/rescore<k>` search re-ranks with
    (None: the float vectors themselves)."""
    from embedbench.retrieval import parse_search

    _, opts = parse_search(job.technique)
    if opts.rescore is not None and opts.rescore_with == "int8":
        return build_technique("int8").fit(job.calibration)
    return None


def rescored(technique: str) -> bool:
    """The technique's search re-ranks a candidate window (`/rescore<k>`)."""
    from embedbench.retrieval import parse_search

    return parse_search(technique)[1].rescore is not None


def secondary_bytes(job: EvalJob, d_in: int) -> int:
    """Bytes per document kept beside the codes: the copy a rescored search re-ranks
    with, and an engine preset's original floats (which a float re-ranking reads, so
    it costs no second copy); 0 for a plain code without rescoring."""
    from embedbench.retrieval import parse_search

    base, opts = parse_search(job.technique)
    originals = build_technique(base).code.originals_bytes(d_in)
    if opts.rescore is None:
        return originals
    if opts.rescore_with == "float":
        return max(originals, 4 * d_in)
    return originals + build_technique("int8").bytes_per_vector(d_in)


def drop_deep_metrics(task_result: dict[str, Any], depth: int) -> dict[str, Any]:
    """Remove mteb metrics at cutoffs beyond the `depth` documents a search returned
    (recall@100, MAP@1000, ... of a top-10 list would describe 10 documents only)."""
    for entries in task_result.get("scores", {}).values():
        for entry in entries:
            for name in [k for k in entry if (m := _AT_K.search(k)) and int(m[1]) > depth]:
                del entry[name]
    return task_result


def _search_model(
    job: EvalJob, tech: Any, recorder: _Recorder, meta: Any, rescore_tech: Any, depth: int
):
    """mteb search model for a retrieval task: the technique's codes, per its options."""
    from embedbench.retrieval import CodeSearch, parse_search

    _, opts = parse_search(job.technique)
    return CodeSearch(
        recorder,
        tech,
        meta,
        rescore_multiplier=opts.rescore,
        rescore_with=opts.rescore_with,
        rescore_technique=rescore_tech,
        asymmetric=opts.asymmetric,
        normalize=job.evaluation.normalize,
        # the rescoring window is top_k × multiplier: rank for the main score (its k)
        top_k=depth if opts.rescore is not None else None,
    )


def _depth(lt: LoadedTask) -> int:
    """Documents a rescored search returns: the main score's k, at least RESCORE_DEPTH."""
    return max(RESCORE_DEPTH, lt.kind.depth(lt.task))


def run_job(job: EvalJob, get: Get | None = None, lt: LoadedTask | None = None) -> EvalRecord:
    """Fit the technique on the job's calibration vectors and evaluate it with mteb.

    BLAS runs single-threaded here: multi-threaded sums round differently, which
    can move a fitted rotation or a classifier by a few ulps and flip a code, so
    one thread is what makes every executor (driver, threads, processes, dask)
    give byte-identical tables.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # the v1 task names match the data; mteb's "superseded" notice is noise here
        warnings.filterwarnings("ignore", message=".*superseded.*")
        return _run_job(job, get, lt)


def _run_job(job: EvalJob, get: Get | None, lt: LoadedTask | None) -> EvalRecord:
    import mteb
    from mteb.cache import ResultCache

    t0 = time.perf_counter()
    if lt is None:
        lt = load_task(job.task, Path(job.data_dir) if job.data_dir else None)
        prepare(lt, job.evaluation)
    tech = build_technique(job.technique, seed=job.seed).fit(job.calibration)
    native = tech.code.bind(job.model).kind if isinstance(tech.code, NativeCode) else None
    recorder = _Recorder(get or _strict_get(job.vectors), lt, native)
    normalize = job.evaluation.normalize
    meta = model_meta(job.model, job.provider_key, tech, normalize, job.calibration.shape[1])
    searches = lt.kind.searches
    rescore = _rescore_technique(job) if searches else None  # fitted once
    if searches:
        encoder = _search_model(job, tech, recorder, meta, rescore, _depth(lt))
    else:
        encoder = TechniqueEncoder(recorder, tech, meta, normalize)
    mteb_compat.reseed(lt.task)  # every evaluation of a task draws the same samples
    with tempfile.TemporaryDirectory(prefix="embedbench-") as tmp:
        result = mteb.evaluate(
            encoder,
            lt.task,
            cache=ResultCache(Path(tmp) / "mteb"),
            overwrite_strategy="always",
            prediction_folder=Path(tmp) / "pred",
            show_progress_bar=False,
            raise_error=True,
        )
        score = float(result.task_results[0].get_score())
        scores = unit_scores(lt, result.task_results[0].scores)
        preds_file = Path(tmp) / "pred" / f"{lt.task.metadata.name}_predictions.json"
        raw = json.loads(preds_file.read_text(encoding="utf-8"))
        (result_file,) = (Path(tmp) / "mteb").rglob(f"{lt.task.metadata.name}.json")
        task_result = json.loads(result_file.read_text(encoding="utf-8"))
    preds = {unit_key(u): lt.kind.read(raw[u[0]][u[1]], lt, u) for u in lt.units}
    d_in = job.calibration.shape[1]
    secondary = secondary_bytes(job, d_in)
    if rescored(job.technique):
        drop_deep_metrics(task_result, _depth(lt))
    if not math.isfinite(score):  # never a number in a table (the driver stops the run)
        raise EmbedbenchError(f"{lt.name} × {job.technique}: mteb scored {score}")
    check_consistent(lt, scores, preds)
    mse = None if native else distortion(tech, job.calibration, recorder, lt)
    return EvalRecord(
        key=job.key,
        task=lt.name,
        technique=job.technique,
        spec=tech.spec,
        score=score,
        predictions=preds,
        task_result=task_result,
        seconds=time.perf_counter() - t0,
        params_bytes=tech.params_bytes() + (rescore.params_bytes() if rescore else 0),
        requested={p: list(texts) for p, texts in recorder.requested.items()},
        seed=job.seed,
        bytes_per_vector=tech.bytes_per_vector(d_in),
        secondary_bytes=secondary,
        unit_scores=scores,
        mse=mse,
    )


def distortion(tech: Any, X_cal: np.ndarray, recorder: _Recorder, lt: LoadedTask) -> float:
    """Mean squared error of the technique's reconstructions of the evaluated texts'
    unit vectors (`quantize.distortion`); texts mteb encoded only to train a
    classifier are left out."""
    from embedbench.quantize.distortion import Reconstruction

    if "eval_texts" not in lt.memo:
        lt.memo["eval_texts"] = frozenset(lt.eval_texts())
    evaluated = lt.memo["eval_texts"]
    parts = [
        recorder.get(sel, purpose)
        for purpose, texts in sorted(recorder.requested.items())
        if (sel := [t for t in texts if t in evaluated])
    ]
    if not parts:
        return float("nan")
    return Reconstruction(tech, X_cal).mse(np.concatenate(parts))
