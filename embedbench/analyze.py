"""The seed's SVD study: how fast the singular values of embedding matrices decay.

For each provider × task of a config, the evaluation texts' float vectors (through
the cache, as a run fetches them) are passed through each technique, fitted on the
calibration vectors only, and decoded (`Technique.roundtrip`, what mteb sees); rows
are L2-normalised when `evaluation.normalize` is on, as the evaluator sees them.
The singular values of each resulting matrix are reported twice:

- `centering=none`: the matrix as it is, the seed's study. Its top singular value
  carries the mean direction shared by all vectors, which cosine similarity sees.
- `centering=mean`: after subtracting the column means (of the matrix studied), the
  PCA spectrum: how the variation between texts spreads over directions. A code
  that is off-centre per dimension (plain `binary` is `x > 0`) inflates the mean
  direction, so the two views disagree exactly where that matters.

Evaluation texts are de-duplicated (first-seen order), so a sentence occurring in
several STS pairs counts once. At most min(n, d) singular values exist, so
`max_texts` below the dimension caps the rank.

Summary per spectrum: effective rank = exp(entropy of the normalised squared
singular values) (Roy & Vetterli 2007; d for a flat spectrum, 1 for rank one),
the number of components holding 90% / 99% of the energy (sum of squares), the
energy share of the top 1 and top 10 components, and the numerical rank (values
above σ_1 · max(n, d) · float32 eps; smaller ones are rounding, and the figure
leaves them out).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedbench.cache import EmbeddingCache
from embedbench.config import Config
from embedbench.embeddings import EmbeddingStore, ProgressFn
from embedbench.encoder import l2_normalize
from embedbench.grid import task_entries
from embedbench.io import write_atomic
from embedbench.plots import DPI, png_bytes
from embedbench.providers.base import FetchStats
from embedbench.registry import build_provider, build_technique, check_calibration
from embedbench.tasks import calibration_texts, load_task

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CENTERINGS = ("none", "mean")
CENTERING_TITLES = {"none": "uncentred (the seed's)", "mean": "centred (PCA)"}
ENERGY_LEVELS = (0.90, 0.99)
TOP_K = (1, 10)
LINE_STYLES = ("-", "--", "-.", ":")
SPECTRUM_COLUMNS = [
    "provider",
    "model",
    "task",
    "technique",
    "spec",
    "centering",
    "rank",
    "singular_value",
    "cumulative_energy",
]
SUMMARY_COLUMNS = [
    *SPECTRUM_COLUMNS[:6],  # provider, model, task, technique, spec, centering
    "n_texts",
    "dim",
    "numerical_rank",
    "effective_rank",
    "components_90",
    "components_99",
    "top1_energy",
    "top10_energy",
]


def _noop(phase: str, desc: str, done: int, total: int) -> None:
    pass


# ---------------------------------------------------------------- spectrum arithmetic


def singular_values(X: np.ndarray, center: bool = False) -> np.ndarray:
    """Singular values of `X` (n × d), largest first, in float64; centred columns if asked."""
    A = np.asarray(X, dtype=np.float64)
    if center:
        A = A - A.mean(axis=0, keepdims=True)
    if A.size == 0:
        return np.zeros(0)
    return np.linalg.svd(A, compute_uv=False)


def energy_fractions(s: np.ndarray) -> np.ndarray:
    """Each component's share of the energy: s_i² / Σ s²."""
    sq = np.square(np.asarray(s, dtype=np.float64))
    total = sq.sum()
    return sq / total if total > 0 else sq


def cumulative_energy(s: np.ndarray) -> np.ndarray:
    """Share of the energy in the top 1, 2, ... components (last entry 1)."""
    return np.cumsum(energy_fractions(s))


def effective_rank(s: np.ndarray) -> float:
    """exp(Shannon entropy of the energy fractions): d for a flat spectrum, 1 for rank one."""
    p = energy_fractions(s)
    p = p[p > 0]
    if p.size == 0:
        return 0.0
    return float(np.exp(-np.sum(p * np.log(p))))


def components_for(s: np.ndarray, fraction: float) -> int:
    """The fewest top components whose energy share reaches `fraction`."""
    cum = cumulative_energy(s)
    if cum.size == 0:
        return 0
    # a relative tolerance, so 0.9 of a flat spectrum of 10 is 9 despite rounding
    return int(np.searchsorted(cum, fraction - 1e-12, side="left")) + 1


def rank_tolerance(s: np.ndarray, shape: tuple[int, int]) -> float:
    """Below this a singular value is numerically zero: σ_1 · max(n, d) · float32 eps.

    float32 eps, not float64: the vectors are float32, so anything smaller is rounding.
    """
    return float(s[0]) * max(shape) * float(np.finfo(np.float32).eps) if s.size else 0.0


def numerical_rank(s: np.ndarray, shape: tuple[int, int]) -> int:
    """Singular values above `rank_tolerance` (as `numpy.linalg.matrix_rank`, float32 eps)."""
    return int(np.count_nonzero(s > rank_tolerance(s, shape)))


def top_share(s: np.ndarray, k: int) -> float:
    """Energy share of the top `k` components."""
    return float(energy_fractions(s)[:k].sum())


# ---------------------------------------------------------------- results


@dataclass
class Spectrum:
    """The singular values of one provider × task × technique × centering matrix."""

    provider: str
    model: str
    task: str
    technique: str
    spec: str
    centering: str
    n_texts: int
    dim: int
    values: np.ndarray

    def summary(self) -> dict[str, float | int]:
        s = self.values
        return {
            "numerical_rank": numerical_rank(s, (self.n_texts, self.dim)),
            "effective_rank": effective_rank(s),
            "components_90": components_for(s, ENERGY_LEVELS[0]),
            "components_99": components_for(s, ENERGY_LEVELS[1]),
            "top1_energy": top_share(s, TOP_K[0]),
            "top10_energy": top_share(s, TOP_K[1]),
        }


@dataclass
class Analysis:
    config: Config
    spectra: list[Spectrum] = field(default_factory=list)
    fetch: dict[str, dict[str, int]] = field(default_factory=dict)


def _sample(texts: list[str], max_texts: int | None, seed: int) -> list[str]:
    """At most `max_texts` of `texts`, a seeded sample kept in first-seen order."""
    if max_texts is None or len(texts) <= max_texts:
        return texts
    keep = sorted(random.Random(seed).sample(range(len(texts)), max_texts))
    return [texts[i] for i in keep]


def analyze_config(
    config: Config,
    data_dir: Path | None,
    cache: EmbeddingCache,
    progress: ProgressFn = _noop,
    max_texts: int | None = None,
) -> Analysis:
    """Spectra of the float and every technique's decoded vectors, in grid order.

    `max_texts` caps the evaluation texts per task with a sample seeded by
    `evaluation.seed`; calibration follows `config.calibration` as in a run.
    """
    from threadpoolctl import threadpool_limits

    techniques = [build_technique(name) for name in config.techniques]  # fail early on names
    result = Analysis(config)
    cal = config.calibration
    tasks = [load_task(entry, data_dir) for entry in task_entries(config)[0]]
    for spec in config.providers:
        provider = build_provider(spec)
        counters = FetchStats()
        try:
            for lt in tasks:
                task_name = lt.name
                store = EmbeddingStore(
                    provider, cache, counters, progress, f"{spec.label} {task_name}"
                )
                _, cal_texts = calibration_texts(lt, cal.split, cal.max_texts, cal.seed, data_dir)
                # the vectors a technique codes: a searched task's corpus, else what is scored
                evaluated = lt.needed_texts()[lt.purpose] if lt.kind.searches else lt.eval_texts()
                eval_texts = list(dict.fromkeys(evaluated))
                eval_texts = _sample(eval_texts, max_texts, config.evaluation.seed)
                X_cal = store.get(cal_texts, lt.purpose)
                where = f"{spec.label} × {task_name}"
                check_calibration(config.techniques, len(cal_texts), X_cal.shape[1], where)
                X_eval = store.get(eval_texts, lt.purpose)
                # one BLAS thread, as a run fits: the same rotations, the same codes
                with threadpool_limits(limits=1, user_api="blas"):
                    for name, tech in zip(config.techniques, techniques, strict=True):
                        Y = tech.fit(X_cal).roundtrip(X_eval)
                        if config.evaluation.normalize:
                            Y = l2_normalize(Y)
                        for centering in CENTERINGS:
                            result.spectra.append(
                                Spectrum(
                                    provider=spec.name,
                                    model=provider.model,
                                    task=lt.name,
                                    technique=name,
                                    spec=tech.spec,
                                    centering=centering,
                                    n_texts=Y.shape[0],
                                    dim=Y.shape[1],
                                    values=singular_values(Y, center=centering == "mean"),
                                )
                            )
        finally:
            provider.close()
            result.fetch[spec.key] = counters.as_dict()
    return result


# ---------------------------------------------------------------- tables


def _identity(sp: Spectrum) -> list[str]:
    return [sp.provider, sp.model, sp.task, sp.technique, sp.spec, sp.centering]


def _csv_line(values: list[str]) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def spectrum_csv(spectra: list[Spectrum]) -> str:
    """One row per singular value: rank from 1, value / largest, cumulative energy share."""
    lines = [_csv_line(SPECTRUM_COLUMNS)]
    for sp in spectra:
        s = sp.values
        top = s[0] if s.size and s[0] > 0 else 1.0
        for i, (v, c) in enumerate(zip(s / top, cumulative_energy(s), strict=True), start=1):
            lines.append(_csv_line([*_identity(sp), str(i), f"{v:.6e}", f"{c:.6f}"]))
    return "".join(lines)


def summary_rows(spectra: list[Spectrum]) -> list[dict[str, str]]:
    """The summary of each spectrum as formatted strings, keyed by SUMMARY_COLUMNS."""
    rows = []
    for sp in spectra:
        m = sp.summary()
        values = [
            *_identity(sp),
            str(sp.n_texts),
            str(sp.dim),
            str(m["numerical_rank"]),
            f"{m['effective_rank']:.2f}",
            str(m["components_90"]),
            str(m["components_99"]),
            f"{m['top1_energy']:.4f}",
            f"{m['top10_energy']:.4f}",
        ]
        rows.append(dict(zip(SUMMARY_COLUMNS, values, strict=True)))
    return rows


def summary_csv(spectra: list[Spectrum]) -> str:
    rows = summary_rows(spectra)
    return _csv_line(SUMMARY_COLUMNS) + "".join(
        _csv_line([r[c] for c in SUMMARY_COLUMNS]) for r in rows
    )


def summary_markdown(spectra: list[Spectrum]) -> str:
    """The summary as a Markdown table (energy shares in %)."""
    out = [
        "| provider | model | task | technique | centering | texts | d | rank | effective rank "
        "| k 90% | k 99% | top-1 % | top-10 % |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary_rows(spectra):
        top1, top10 = 100 * float(r["top1_energy"]), 100 * float(r["top10_energy"])
        out.append(
            f"| {r['provider']} | {r['model']} | {r['task']} | {r['technique']} "
            f"| {r['centering']} | {r['n_texts']} | {r['dim']} | {r['numerical_rank']} "
            f"| {r['effective_rank']} "
            f"| {r['components_90']} | {r['components_99']} | {top1:.2f} | {top10:.2f} |"
        )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- figure


def spectrum_figure(spectra: list[Spectrum]) -> Figure:
    """σ_i / σ_1 (log axis) against rank i: one panel per provider × task (columns) and
    centering (rows), one line per technique; numerically zero values are not drawn."""
    import matplotlib
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from embedbench.plots import RC

    columns = list(dict.fromkeys((sp.provider, sp.model, sp.task) for sp in spectra))
    techniques = list(dict.fromkeys(sp.technique for sp in spectra))
    cmap = colormaps["tab10" if len(techniques) <= 10 else "tab20"]
    colors = {t: cmap(i % cmap.N) for i, t in enumerate(techniques)}
    # line styles too: techniques with the same spectrum (float, int8) would hide each other
    styles = {t: LINE_STYLES[i % len(LINE_STYLES)] for i, t in enumerate(techniques)}
    by_key = {(sp.provider, sp.model, sp.task, sp.centering, sp.technique): sp for sp in spectra}
    with matplotlib.rc_context(RC):
        fig = Figure(
            figsize=(4.2 * max(1, len(columns)), 3.4 * len(CENTERINGS) + 0.6),
            dpi=DPI,
            layout="constrained",
        )
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(CENTERINGS), max(1, len(columns)), squeeze=False, sharex="col")
        for j, (provider, model, task) in enumerate(columns):
            for i, centering in enumerate(CENTERINGS):
                ax = axes[i][j]
                for t in techniques:
                    sp = by_key.get((provider, model, task, centering, t))
                    if sp is None or not sp.values.size or sp.values[0] <= 0:
                        continue
                    tol = rank_tolerance(sp.values, (sp.n_texts, sp.dim))
                    # numerically zero values would stretch the log axis by 15 decades
                    s = np.where(sp.values > tol, sp.values / sp.values[0], np.nan)
                    ranks = np.arange(1, s.size + 1)
                    ax.plot(ranks, s, color=colors[t], linestyle=styles[t], linewidth=1.2, label=t)
                ax.set_yscale("log")
                ax.set_title(f"{task}\n{model.rsplit('/', 1)[-1]}, {CENTERING_TITLES[centering]}")
                ax.set_ylabel("σ_i / σ_1 (log)")
                if i == len(CENTERINGS) - 1:
                    ax.set_xlabel("rank i")
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(
                handles,
                labels,
                loc="outside lower center",
                ncol=min(len(labels), 4),
                frameon=False,
            )
    return fig


# ---------------------------------------------------------------- writing

MD_HEADER = (
    "# Singular-value decay\n\n"
    "Evaluation vectors (unique texts) as the evaluator sees them: each technique fitted on "
    "calibration vectors, decoded, L2-normalised when `evaluation.normalize` is on. "
    "`none`: the matrix as is (the seed's study); `mean`: columns centred (PCA). "
    "Effective rank = exp(entropy of σ²/Σσ²); k 90% / k 99%: fewest components holding "
    "that share of Σσ²; top-1 / top-10: energy share of the largest components; "
    "rank: singular values above σ_1 · max(n, d) · float32 eps.\n\n"
)
FILES = ("singular_values.csv", "spectrum_summary.csv", "spectrum_summary.md", "spectrum.png")


def write_analysis(analysis: Analysis, folder: Path) -> list[Path]:
    """Write the four files of FILES into `folder` (created), atomically; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    writers: list[tuple[str, Callable[[Path], None]]] = [
        (FILES[0], lambda p: write_atomic(p, spectrum_csv(analysis.spectra))),
        (FILES[1], lambda p: write_atomic(p, summary_csv(analysis.spectra))),
        (FILES[2], lambda p: write_atomic(p, MD_HEADER + summary_markdown(analysis.spectra))),
        (FILES[3], lambda p: write_atomic(p, png_bytes(spectrum_figure(analysis.spectra)))),
    ]
    paths = []
    for name, write in writers:
        path = folder / name
        write(path)
        paths.append(path)
    return paths
