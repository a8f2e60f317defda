"""report.html: one self-contained page with the run's key facts, figures and tables.

The figures are embedded as base64 PNG, so the page can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from embedbench.plots import FIGURES
from embedbench.results import mse_cell


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
        "<th>size ×</th><th>score</th><th>retention % [95% CI]</th><th>verdict</th>"
        "<th>MSE (× bound)</th></tr>"
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
            f"<td class='n'>{_e(r['retention'])}{_e(ci)}</td><td>{_e(verdict)}</td>"
            f"<td class='n'>{_e(mse_cell(r))}</td></tr>"
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
