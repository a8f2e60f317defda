"""The tables a person reads: retention.md, its retention table and best-per-budget table.

Built from the run's `CellResult` rows at the precision of retention.csv
(`results.row_values`); the CLI prints `markdown_table` after a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from embedbench.plots import FIGURES
from embedbench.results import CellResult, mse_cell, row_values

if TYPE_CHECKING:
    from embedbench.results import RunResult


def _ci(r: CellResult) -> str:
    ret = r.retention
    return "" if ret.verdict == "baseline" else f" [{ret.ci_low:.2f}, {ret.ci_high:.2f}]"


def _seeds(r: CellResult) -> str:
    return f"{r.spread.low:.2f}–{r.spread.high:.2f} ({r.spread.n})" if r.spread else ""


def _control(r: CellResult) -> str:
    c = r.control_retention
    if c is None:
        return ""
    return f"{c.retention:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}] vs {r.control}"


def task_label(r: CellResult) -> str:
    """The task, with its subset and split where the row is not the task's only unit."""
    if r.scope == "task" and r.subset == "default":
        return r.task
    return f"{r.task} ({r.subset}, {r.split})"


def markdown_table(rows: list[CellResult]) -> str:
    """The retention table a person reads (also printed by the CLI)."""
    head = (
        "| task | provider:model | technique | bits/dim | bytes fast + secondary | size × "
        "| score | retention % [95% CI] | verdict | seeds: min–max (n) | vs float control % "
        "| MSE (× bound) |\n|---|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|\n"
    )
    lines = []
    for r in rows:
        v = row_values(r)
        tech = r.technique + (" (control)" if r.role == "control" else "")
        lines.append(
            f"| {task_label(r)} | {r.provider}:{r.model} | {tech} | {v['bits_per_dim']} "
            f"| {r.bytes_per_vector} + {r.secondary_bytes} | {v['size_multiplier']} "
            f"| {v['score']} | {v['retention']}{_ci(r)} | {r.retention.verdict} "
            f"| {_seeds(r)} | {_control(r)} | {mse_cell(v)} |"
        )
    return head + "\n".join(lines) + "\n"


def markdown(result: RunResult, images: list[str] | None = None) -> str:
    """The run's retention.md; `images` are figure files beside it, linked relatively."""
    cfg, ev = result.config, result.config.evaluation
    methods = sorted({r.interval_method for r in result.rows if r.interval_method})
    mc = max((r.retention.mc_error for r in result.rows), default=0.0)
    text = (
        f"# Retention: {cfg.name}\n\n"
        "score = mteb main score (fraction); retention = 100 × score / float score on the same "
        "task, split and evaluator settings; float and decoded vectors are "
        f"{'L2-normalised' if ev.normalize else 'not normalised'} alike. "
        "Calibration: each task's source (default: its "
        f"{cfg.calibration.split} split; retrieval: the searched corpus, transductive; "
        "the calibration column and the manifest say which), at most "
        f"{cfg.calibration.max_texts} texts (seed {cfg.calibration.seed}); no evaluation text "
        "other than a searched corpus (checked after Unicode and whitespace normalisation; "
        "see the manifest). Tasks with several subsets or splits: a row per (subset, split) "
        "and the task's score, their mean, labelled (all); its interval resamples every "
        "unit at once. Intervals: "
        f"{'; '.join(methods) or 'none'}, at least "
        f"{ev.bootstrap} resamples (seed {ev.seed}), Monte Carlo error of the endpoints at "
        f"most {mc:.3f} points. Verdicts: loss / gain when the interval excludes 100, "
        f"equivalent when it lies within 100 ± {ev.margin:g}, otherwise inconclusive. "
        f"Seeds: techniques with a fitted or random part run over {ev.seeds} calibration "
        "samples and random draws; the interval is seed 0's, the spread is across seeds. "
        "Sizes: bytes per vector in the searched tier + bytes kept for re-ranking; size × = "
        "4·dim / their total. A transform that changes the float geometry (centring, ITQ, "
        "the null-space projection of svd, truncation) gets a float control, the same "
        "chain without a code; 'vs float control' is the code's own cost. MSE: the mean "
        "squared error of the reconstructed unit vectors of the evaluated texts, and its "
        "ratio to Shannon's bound 2^(−2·bits/dim) for a Gaussian source of the same "
        "variance (below 1: the codec uses the embeddings' structure).\n"
    )
    if any(r.spec.startswith("svd+") for r in result.rows):
        text += (
            "\nThe seed's rotated presets (`rotated-*` = `svd+...`) rotate *uncentred* vectors "
            "onto the principal axes of the centred calibration set (directions without "
            "calibration variance dropped); centring first (`center+svd+...`) thresholds "
            "each axis at its mean instead of at zero.\n"
        )
    return (
        text
        + "\n"
        + markdown_table(result.rows)
        + "\n## Best per size budget (footprint: searched + re-ranking bytes; selected on test)"
        "\n\n" + budget_table(result.rows) + image_links(images)
    )


def _cell(r: CellResult) -> str:
    return f"{r.technique}: {r.retention.retention:.2f}{_ci(r)}" + (
        f", seeds {_seeds(r)}" if r.spread else ""
    )


def budget_table(rows: list[CellResult], by: str = "total") -> str:
    """Per task and size budget (size × ≥ 1, 2, 4, ...), the best technique that fits,
    next to the best seed preset that fits.

    A technique fits budget m when its size multiplier is at least m: of the
    deployment footprint (`by="total"`: code plus what re-ranking keeps) or of the
    searched tier alone (`by="fast"`). Controls are not candidates. The winner is
    picked on the same test items it reports, so it is labelled "selected on test":
    a maximum of several noisy estimates is biased upward.
    """
    import pandas as pd

    from embedbench.quantize import PRESETS

    size = "size_multiplier" if by == "total" else "fast_size_multiplier"
    cands = pd.DataFrame(
        [
            (r, r.task, r.provider, r.model, r.technique, getattr(r, size), r.retention.retention)
            for r in rows
            if r.role != "control" and r.scope == "task"
        ],
        columns=["row", "task", "provider", "model", "technique", "size", "retention"],
    )
    cands["group"] = cands.groupby(["task", "provider", "model"], sort=False).ngroup()
    cands["budget"] = [list(_budgets(s)) for s in cands["size"]]
    # a row per (candidate, budget it fits), then the best of each group and budget
    fits = cands.explode("budget").dropna(subset="budget").astype({"budget": int})
    fits = fits.reset_index(drop=True)

    def best(fits: pd.DataFrame) -> pd.Series:  # (group, budget) → its best row
        top = fits.groupby(["group", "budget"])["retention"].idxmax()
        return fits.loc[top].set_index(["group", "budget"])["row"]

    first = cands.groupby("group")["row"].first()  # the label and dim of the group's rows
    presets = best(fits[fits.technique.isin(list(PRESETS))])
    label = "footprint" if by == "total" else "searched tier"
    lines = [
        f"| task | provider:model | budget: size × ≥ ({label}) | bits/vector ≤ | best technique "
        "that fits, selected on test: retention % [95% CI] (its size ×) | best seed preset |",
        "|---|---|---:|---:|---|---|",
    ]
    for (g, m), top in best(fits).items():
        head, preset = first[g], presets.get((g, m))
        lines.append(
            f"| {task_label(head)} | {head.provider}:{head.model} | {m} | {32 * head.dim // m} "
            f"| {_cell(top)} ({getattr(top, size):.4g}) | {_cell(preset) if preset else '—'} |"
        )
    return "\n".join(lines) + "\n"


def _budgets(size: float) -> Iterator[int]:
    """The budgets a size multiplier fits: 1, 2, 4, ... up to `size`."""
    m = 1
    while m <= size + 1e-9:
        yield m
        m *= 2


def image_links(images: list[str] | None) -> str:
    if not images:
        return ""
    return "\n" + "\n\n".join(f"![{FIGURES.get(name, name)}]({name})" for name in images) + "\n"
