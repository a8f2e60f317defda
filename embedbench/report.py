"""Write a run's outputs: retention.csv, retention.md, manifest.json, figures, report.html.

Tables carry only what the cache and config determine, formatted at fixed
precision, so the same config on the same cache gives byte-identical tables;
times and versions go to the manifest. Each output has its module: the table's
schema and CSV in `embedbench.results`, retention.md in `embedbench.tables`, the
manifest in `embedbench.manifest`, the figures in `embedbench.plots`, the page in
`embedbench.report_html`. Every file is written atomically (`embedbench.io`).
`embedbench report RUN` redraws the figures and report.html from a run folder's
retention.csv and manifest.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from embedbench.io import write_atomic
from embedbench.manifest import manifest, read_manifest
from embedbench.report_html import html_report
from embedbench.results import BASE_KEY, csv_text, read_retention, row_values
from embedbench.tables import image_links, markdown

if TYPE_CHECKING:
    from embedbench.results import RunResult

log = logging.getLogger("embedbench")


def write_predictions(folder: Path, files: list[tuple[str, bytes]]) -> None:
    """Write the run's predictions; older prediction files no longer indexed are removed."""
    for name, data in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
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


REPORT_REQUIRED = (*BASE_KEY, "retention")  # what the figures and report.html need


def write_figures(out: Path, rows: list[dict[str, str]], x: str = "size") -> dict[str, Path]:
    """Draw tradeoff.png and retention_bars.png into `out`; returns name → path. The
    figures show each task as mteb scores it (rows of scope "task"; per-unit rows of a
    task with several subsets or splits are in the tables)."""
    from embedbench import plots

    rows = [r for r in rows if r.get("scope", "task") == "task"]
    written = {}
    for name, draw in (
        ("tradeoff.png", lambda: plots.tradeoff_figure(rows, x=x)),
        ("retention_bars.png", lambda: plots.bars_figure(rows)),
    ):
        path = out / name
        write_atomic(path, plots.png_bytes(draw()))
        written[name] = path
    return written


def write_report(folder: str | Path, x: str = "size") -> list[Path]:
    """Redraw a run folder's figures and report.html from its retention.csv and manifest."""
    csv_path, _, records = read_retention(folder, REPORT_REQUIRED)
    out = csv_path.parent
    rows = [r for _, r in records]
    facts = read_manifest(out)
    written = list(write_figures(out, rows, x=x).values())
    write_atomic(out / "report.html", html_report(rows, facts, out))
    md = out / "retention.md"
    if md.is_file():  # a run written before the figures existed: link them
        text = md.read_text(encoding="utf-8")
        missing_links = [p.name for p in written if f"]({p.name})" not in text]
        if missing_links:
            write_atomic(md, text + image_links(missing_links))
    return [*written, out / "report.html"]
