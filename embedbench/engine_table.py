"""The engine table of a run: every engine preset's rows, grouped by engine.

One row per (preset, search option, task): the bytes a vector takes in the searched
tier and in total (with the original floats the engine keeps and the copy a
`/rescore<k>` search needs), the size multipliers of both, retention with its 95%
interval and seed spread, and the row's verdict against the float baseline. Under
each engine, its verdict: the smallest footprint whose rows are `equivalent` to
float on every task of the run, else the best retention on each task with what it
costs. faiss codecs (`faiss:<factory>`) are listed as one more engine, faiss at the
version the run's manifest records: a flat faiss codec index keeps only its codes, so
their total is the searched tier.
"""

from __future__ import annotations

from pathlib import Path

from embedbench.engines import presets
from embedbench.io import read_json
from embedbench.quantize.faiss_codec import PREFIX as FAISS
from embedbench.results import load_run


def _base(technique: str) -> str:
    return technique.split("/", 1)[0]


def engine_table(run: str | Path) -> str:
    """Markdown: a table per engine and the engine's verdict under it."""
    df = load_run(run)
    known = presets()
    keep = df.technique.map(lambda t: _base(t) in known or t.startswith(FAISS))
    if "role" in df:
        keep &= df.role == "technique"
    if "scope" in df:
        keep &= df.scope == "task"
    df = df[keep].copy()
    if df.empty:
        return "(no engine preset in this run)"
    df["engine"] = [known[_base(t)].engine if _base(t) in known else "faiss" for t in df.technique]
    tasks = list(dict.fromkeys(df.task))
    out = []
    for engine, rows in df.groupby("engine", sort=True):
        base = _base(rows.technique.iloc[0])
        version = known[base].version if base in known else _faiss_version(run)
        out += [
            f"**{engine}** ({version})",
            "",
            "| setting | task | bytes/vector: searched tier (total) | size ×: searched "
            "(total) | retention % [95% CI] | seeds | verdict |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        rows = rows.sort_values(["total_bytes_per_vector", "technique", "task"])
        for r in rows.itertuples():
            seeds = f"{r.seed_low:.2f}–{r.seed_high:.2f}" if r.seed_low == r.seed_low else ""
            total = f"{r.bytes_per_vector:g} ({r.total_bytes_per_vector:g})"
            size = f"{r.fast_size_multiplier:.3g} ({r.size_multiplier:.3g})"
            out.append(
                f"| {r.technique} | {r.task} | {total} | {size} | "
                f"{r.retention:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | {seeds} | {r.verdict} |"
            )
        out += ["", _verdict(rows, tasks), ""]
    used = sorted({_base(t) for t in df.technique} & set(known))
    out += [
        "What each preset follows and what it does not reproduce:",
        "",
        "| preset | engine | source | not reproduced |",
        "|---|---|---|---|",
    ]
    for name in used:
        p = known[name]
        out.append(f"| `{name}` | {p.engine} {p.version} | {p.source} | {p.not_reproduced} |")
    return "\n".join(out).rstrip() + "\n"


def _faiss_version(run: str | Path) -> str:
    """faiss's version as the run's manifest records it (older manifests: unrecorded)."""
    folder = Path(run)
    folder = folder.parent if folder.suffix == ".csv" else folder
    path = folder / "manifest.json"
    manifest = read_json(path, "not a run manifest") if path.is_file() else {}
    version = manifest.get("versions", {}).get("faiss-cpu") if isinstance(manifest, dict) else None
    return f"faiss-cpu {version}" if version else "version not recorded"


def _verdict(rows, tasks: list[str]) -> str:
    equivalent = [
        (g.total_bytes_per_vector.max(), t)
        for t, g in rows.groupby("technique")
        if set(g.task) == set(tasks) and (g.verdict == "equivalent").all()
    ]
    if equivalent:
        size, tech = min(equivalent)
        return (
            f"Verdict: `{tech}` is the smallest setting equivalent to float on every task "
            f"({size:g} bytes a vector in total)."
        )
    parts = []
    for task in tasks:
        g = rows[rows.task == task]
        if g.empty:
            continue
        best = g.loc[g.retention.idxmax()]
        parts.append(
            f"{task}: `{best.technique}` {best.retention:.2f} % "
            f"({best.total_bytes_per_vector:g} bytes, {best.verdict})"
        )
    return "Verdict: no setting is equivalent to float on every task; best per task: " + (
        "; ".join(parts) + "."
    )
