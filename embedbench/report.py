"""Run outputs: retention.csv, retention.md, manifest.json, the figures and report.html.

Tables carry only what the cache and config determine, formatted at fixed
precision, so the same config on the same cache gives byte-identical tables;
times and versions go to the manifest. The figures (`tradeoff.png`,
`retention_bars.png`, see `embedbench.plots`) and the self-contained `report.html`
are drawn from the table's rows; `embedbench report RUN` redraws them from a run
folder's retention.csv and manifest.json.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from embedbench.compare import read_retention
from embedbench.errors import UserError
from embedbench.records import temp_path
from embedbench.results import COLUMNS, CellResult, row_values
from embedbench.runner import CODE, RunResult

log = logging.getLogger("embedbench")

PACKAGES = [
    "embedbench",
    "mteb",
    "sentence-transformers",
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "datasets",
    "boto3",
    "cohere",
    "joblib",
]


def csv_text(rows: list[CellResult]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(row_values(r))
    return buf.getvalue()


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


def markdown_table(rows: list[CellResult]) -> str:
    """The retention table a person reads (also printed by the CLI)."""
    head = (
        "| task | provider:model | technique | bits/dim | bytes fast + secondary | size × "
        "| score | retention % [95% CI] | verdict | seeds: min–max (n) | vs float control % "
        "|\n|---|---|---|---:|---:|---:|---:|---:|---|---:|---|\n"
    )
    lines = []
    for r in rows:
        v = row_values(r)
        tech = r.technique + (" (control)" if r.role == "control" else "")
        lines.append(
            f"| {r.task} | {r.provider}:{r.model} | {tech} | {v['bits_per_dim']} "
            f"| {r.bytes_per_vector} + {r.secondary_bytes} | {v['size_multiplier']} "
            f"| {v['score']} | {v['retention']}{_ci(r)} | {r.retention.verdict} "
            f"| {_seeds(r)} | {_control(r)} |"
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
        f"Calibration: {cfg.calibration.split} split (retrieval: the searched corpus, "
        f"transductive), at most {cfg.calibration.max_texts} texts (seed "
        f"{cfg.calibration.seed}); no evaluation text other than a searched corpus (checked "
        "after Unicode and whitespace normalisation; see the manifest). Intervals: "
        f"{'; '.join(methods) or 'none'}, at least "
        f"{ev.bootstrap} resamples (seed {ev.seed}), Monte Carlo error of the endpoints at "
        f"most {mc:.3f} points. Verdicts: loss / gain when the interval excludes 100, "
        f"equivalent when it lies within 100 ± {ev.margin:g}, otherwise inconclusive. "
        f"Seeds: techniques with a fitted or random part run over {ev.seeds} calibration "
        "samples and random draws; the interval is seed 0's, the spread is across seeds. "
        "Sizes: bytes per vector in the searched tier + bytes kept for re-ranking; size × = "
        "4·dim / their total. A transform that changes the float geometry (centring, ITQ, "
        "the null-space projection of svd, truncation) gets a float control, the same "
        "chain without a code; 'vs float control' is the code's own cost.\n"
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
    from embedbench.quantize import PRESETS

    def size(r: CellResult) -> float:
        return r.size_multiplier if by == "total" else r.fast_size_multiplier

    def best(cands: list[CellResult]) -> CellResult | None:
        return max(cands, key=lambda r: r.retention.retention) if cands else None

    groups: dict[tuple[str, str, str], list[CellResult]] = {}
    for r in rows:
        if r.role != "control":
            groups.setdefault((r.task, r.provider, r.model), []).append(r)
    label = "footprint" if by == "total" else "searched tier"
    lines = [
        f"| task | provider:model | budget: size × ≥ ({label}) | bits/vector ≤ | best technique "
        "that fits, selected on test: retention % [95% CI] (its size ×) | best seed preset |",
        "|---|---|---:|---:|---|---|",
    ]
    for (task, provider, model), group in groups.items():
        m = 1
        while m <= max(size(r) for r in group) + 1e-9:
            fits = [r for r in group if size(r) >= m - 1e-9]
            top, preset = best(fits), best([r for r in fits if r.technique in PRESETS])
            lines.append(
                f"| {task} | {provider}:{model} | {m} | {32 * group[0].dim // m} "
                f"| {_cell(top)} ({size(top):.4g}) | {_cell(preset) if preset else '—'} |"
            )
            m *= 2
    return "\n".join(lines) + "\n"


def image_links(images: list[str] | None) -> str:
    if not images:
        return ""
    return "\n" + "\n\n".join(f"![{FIGURES.get(name, name)}]({name})" for name in images) + "\n"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def manifest(result: RunResult, wall_seconds: float, cache_path: Path) -> dict[str, Any]:
    cfg = result.config
    return {
        "name": cfg.name,
        "config": cfg.canonical(),
        "config_sha256": cfg.hash(),
        "versions": versions(),
        "git": result.git,
        "code_sha256": CODE,
        "data": result.sources,
        "calibration": result.calibration,
        "seeds": {
            "calibration": cfg.calibration.seed,
            "bootstrap": cfg.evaluation.seed,
            "replicates": cfg.evaluation.seeds,
        },
        "texts_embedded": result.texts_embedded,
        "texts_from_cache": result.texts_from_cache,
        "providers": result.fetch,
        "cache": str(cache_path),
        "timings_seconds": {k: round(v, 3) for k, v in sorted(result.timings.items())},
        "wall_seconds": round(wall_seconds, 3),
        "cells": len(result.rows),
        "evaluations": result.evaluations,
        "skipped_cells": result.skipped,
    }


def write_atomic(path: Path, text: str) -> None:
    tmp = temp_path(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_predictions(folder: Path, files: list[tuple[str, bytes]]) -> None:
    """Write the run's predictions; older prediction files no longer indexed are removed."""
    for name, data in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(path, data)
    keep = {folder / name for name, _ in files}
    for old in folder.rglob("*.json.gz"):
        if old not in keep:
            old.unlink()


def write_outputs(result: RunResult, wall_seconds: float, cache_path: Path) -> Path:
    out = result.config.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions", result.predictions.files())
    write_atomic(out / "retention.csv", csv_text(result.rows))
    facts = manifest(result, wall_seconds, cache_path)
    body = json.dumps(facts, indent=2, sort_keys=True)
    write_atomic(out / "manifest.json", body + "\n")
    images: list[str] = []
    try:  # the table and manifest are safe on disk; figures are redrawn by `embedbench report`
        rows = [row_values(r) for r in result.rows]
        images = list(write_figures(out, rows))
        write_atomic(out / "report.html", html_report(rows, facts, out))
    except Exception as e:  # never lose a finished run to a plotting problem
        log.warning(
            "figures not written (%s: %s); retry with `embedbench report %s`",
            type(e).__name__,
            e,
            out,
        )
    write_atomic(out / "retention.md", markdown(result, images))
    return out


# ---------------------------------------------------------------- figures and report.html

FIGURES = {
    "tradeoff.png": "Retention vs size per task",
    "retention_bars.png": "Retention per technique",
}
REPORT_REQUIRED = ("task", "provider", "model", "technique", "retention")


def write_figures(out: Path, rows: list[dict[str, str]], x: str = "size") -> dict[str, Path]:
    """Draw tradeoff.png and retention_bars.png into `out`; returns name → path."""
    from embedbench import plots

    written = {}
    for name, draw in (
        ("tradeoff.png", lambda: plots.tradeoff_figure(rows, x=x)),
        ("retention_bars.png", lambda: plots.bars_figure(rows)),
    ):
        path = out / name
        write_atomic_bytes(path, plots.png_bytes(draw()))
        written[name] = path
    return written


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _facts(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest's key facts as (label, text) pairs."""
    out: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", {}, []):
            out.append((label, str(value)))

    add("config", facts.get("name"))
    add("config sha256", facts.get("config_sha256"))
    git = facts.get("git") or {}
    if isinstance(git, dict) and git.get("commit"):
        add("git commit", f"{git['commit']}{' (dirty)' if git.get('dirty') else ''}")
    vers = facts.get("versions") or {}
    if isinstance(vers, dict):
        add("versions", ", ".join(f"{k} {v}" for k, v in vers.items() if v))
    add("texts embedded", facts.get("texts_embedded"))
    add("texts from cache", facts.get("texts_from_cache"))
    providers = facts.get("providers") or {}
    if isinstance(providers, dict):
        for name, p in providers.items():
            if isinstance(p, dict):
                add(
                    f"provider {name}",
                    ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(p.items())),
                )
    timings = facts.get("timings_seconds") or {}
    if isinstance(timings, dict):
        add("timings (s)", ", ".join(f"{k} {v}" for k, v in timings.items()))
    add("wall time (s)", facts.get("wall_seconds"))
    add("cells", facts.get("cells"))
    cfg = facts.get("config") or {}
    if isinstance(cfg, dict):
        cal, ev = cfg.get("calibration") or {}, cfg.get("evaluation") or {}
        if cal:
            add(
                "calibration",
                f"{cal.get('split')} split, at most {cal.get('max_texts')} texts "
                f"(seed {cal.get('seed')})",
            )
    for where, c in (facts.get("calibration") or {}).items():
        if isinstance(c, dict) and "touches_eval_texts" in c:
            touched = "touches evaluated texts" if c["touches_eval_texts"] else "no evaluated text"
            add(f"calibration {where}", f"{c.get('split')}, {c.get('texts')} texts: {touched}")
        if ev:
            add(
                "evaluation",
                f"{'L2-normalised' if ev.get('normalize') else 'not normalised'}; "
                f"{ev.get('bootstrap')} bootstrap resamples (seed {ev.get('seed')})",
            )
    return out


def _html_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_e(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _retention_table(rows: list[dict[str, str]]) -> str:
    head = (
        "<tr><th>task</th><th>provider:model</th><th>technique</th><th>bits/dim</th>"
        "<th>size ×</th><th>score</th><th>retention % [95% CI]</th><th>verdict</th></tr>"
    )
    lines = []
    for r in rows:
        verdict = r.get("verdict", "")
        ci = (
            ""
            if verdict == "baseline" or not r.get("ci_low")
            else f" [{r.get('ci_low')}, {r.get('ci_high')}]"
        )
        cls = verdict.replace(" ", "-")
        lines.append(
            f"<tr class='{_e(cls)}'><td>{_e(r['task'])}</td>"
            f"<td>{_e(r['provider'])}:{_e(r['model'])}</td><td>{_e(r['technique'])}</td>"
            f"<td class='n'>{_e(r.get('bits_per_dim'))}</td>"
            f"<td class='n'>{_e(r.get('size_multiplier'))}</td>"
            f"<td class='n'>{_e(r.get('score'))}</td>"
            f"<td class='n'>{_e(r['retention'])}{_e(ci)}</td><td>{_e(verdict)}</td></tr>"
        )
    return (
        "<table class='retention'>\n<thead>"
        + head
        + "</thead>\n<tbody>\n"
        + "\n".join(lines)
        + "\n</tbody>\n</table>"
    )


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f3f3f3}
tr.loss td{background:#fdecea} tr.gain td{background:#eaf7ea} tr.baseline td{background:#f5f5f5}
img{max-width:100%;height:auto;display:block;margin:1em 0}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 1em;font-size:0.9em}
dl.facts dt{font-weight:600} dl.facts dd{margin:0;word-break:break-all}
"""


def html_report(
    rows: list[dict[str, str]], facts: dict[str, Any] | None, folder: Path | None = None
) -> str:
    """One self-contained page: key facts, the figures (base64 PNG) and the tables."""
    facts = facts or {}
    name = facts.get("name") or (folder.name if folder else "run")
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>embedbench: {_e(name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Retention: {_e(name)}</h1>",
        "<p>score = mteb main score (fraction); retention = 100 × score / float score on the "
        "same task, split and evaluator settings, with a paired 95% bootstrap interval. Verdicts: "
        "loss or gain when the interval excludes 100, equivalent when it lies inside the "
        "stated margin around 100, otherwise inconclusive.</p>",
    ]
    fact_rows = _facts(facts)
    if fact_rows:
        parts.append("<h2>Run</h2><dl class='facts'>")
        parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in fact_rows]
        parts.append("</dl>")
    parts.append("<h2>Figures</h2>")
    for fname, title in FIGURES.items():
        path = folder / fname if folder else None
        if path and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{_e(title)}' src='data:image/png;base64,{data}'>")
            parts.append(f"<figcaption>{_e(title)}</figcaption></figure>")
    parts.append("<h2>Retention</h2>")
    parts.append(_retention_table(rows))
    columns = list(dict.fromkeys(c for r in rows for c in r))
    parts.append("<details><summary>All columns (retention.csv)</summary>")
    parts.append(_html_table(rows, columns))
    parts.append("</details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(folder: str | Path, x: str = "size") -> list[Path]:
    """Redraw a run folder's figures and report.html from its retention.csv and manifest."""
    csv_path, _, records = read_retention(folder, REPORT_REQUIRED)
    out = csv_path.parent
    rows = [r for _, r in records]
    facts: dict[str, Any] | None = None
    mpath = out / "manifest.json"
    if mpath.is_file():
        try:
            facts = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{mpath}: not a valid JSON file ({e})") from None
        if not isinstance(facts, dict):
            raise UserError(f"{mpath}: not a manifest (expected a JSON object)")
    written = list(write_figures(out, rows, x=x).values())
    write_atomic(out / "report.html", html_report(rows, facts, out))
    md = out / "retention.md"
    if md.is_file():  # a run written before the figures existed: link them
        text = md.read_text(encoding="utf-8")
        missing_links = [p.name for p in written if f"]({p.name})" not in text]
        if missing_links:
            write_atomic(md, text + image_links(missing_links))
    return [*written, out / "report.html"]
