"""The provider comparison of one run with two models: the README's tables, generated.

`embedbench providers RUN [--readme README.md]` prints it (or writes it into the
README between its `providers:begin` / `providers:end` markers):

- the float rows next to mteb's published scores (`PUBLISHED`, with their source);
- per task and size budget (size × ≥ m, the deployment footprint), each model's best
  technique that fits, its retention and the absolute score it keeps, and the paired
  95% interval of the retention difference (second model − first);
- per task and bytes per vector (footprint ≤ B): the same by bytes, where a 768-d
  model at 32× sits beside a 384-d model at 16×, with the paired interval of the
  score difference.

Every best technique is selected on the test items it reports (biased upward). The
difference intervals resample the test items once for the four prediction sets
(each model's float and technique: `compare.paired.paired_difference`); "better"
is said only when the interval excludes 0.
"""

from __future__ import annotations

from pathlib import Path

from embedbench.compare.paired import NotPaired, paired_difference
from embedbench.compare.tables import Row, Table, load_table
from embedbench.errors import UserError

BUDGETS = (4, 8, 16, 32, 64, 128)  # size × ≥
BYTES = (12, 24, 48, 96, 192, 384, 768, 1536)  # total bytes per vector ≤
N_BOOT, SEED = 2000, 42
BEGIN, END = "<!-- providers:begin -->", "<!-- providers:end -->"

# mteb's published float scores (embeddings-benchmark/results: <model>/<revision>/<Task>.json)
_MINILM = "results/sentence-transformers__all-MiniLM-L6-v2/8b3219a92973c328a8e22fadcfa821b5dc75636a"
_MPNET = "results/sentence-transformers__all-mpnet-base-v2"
PUBLISHED = {
    ("sentence-transformers/all-MiniLM-L6-v2", "STSBenchmark"): (
        0.8203247,
        f"`{_MINILM}/STSBenchmark.json` (mteb 1.12.75)",
    ),
    ("sentence-transformers/all-MiniLM-L6-v2", "Banking77Classification"): (
        0.8004221,
        f"`{_MINILM}/Banking77Classification.json` (mteb 1.12.75)",
    ),
    ("sentence-transformers/all-MiniLM-L6-v2", "SciFact"): (
        0.64508,
        f"`{_MINILM}/SciFact.json` (mteb 1.12.75)",
    ),
    ("sentence-transformers/all-mpnet-base-v2", "STSBenchmark"): (
        0.8342191,
        f"`{_MPNET}/84f2bcc00d77236f9e89c8a360a00fb1139bf47d/STSBenchmark.json` (mteb 1.12.75; "
        "`no_revision_available/`, mteb 1.12.41: 0.8342190)",
    ),
    ("sentence-transformers/all-mpnet-base-v2", "Banking77Classification"): (
        0.8170130,
        f"`{_MPNET}/no_revision_available/Banking77Classification.json` (mteb 1.12.41)",
    ),
    ("sentence-transformers/all-mpnet-base-v2", "SciFact"): (
        0.6557,
        f"`{_MPNET}/84f2bcc00d77236f9e89c8a360a00fb1139bf47d/SciFact.json` (mteb 1.12.75; "
        "nDCG@10 rounded to 4 decimals there)",
    ),
}


def _num(row: Row, column: str) -> float:
    return float(row.values[column])


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def _cell(row: Row | None, size: bool = True) -> str:
    if row is None:
        return "—"
    v = row.values
    text = f"{v['technique']}: {v['retention']} [{v['ci_low']}, {v['ci_high']}]"
    if v.get("seed_low"):
        text += f", seeds {v['seed_low']}–{v['seed_high']}"
    where = f"{_num(row, 'size_multiplier'):g}×, {v['total_bytes_per_vector']} B"
    return text + (f" ({where})" if size else "")


def _best(rows: list[Row], fits) -> Row | None:
    fit = [r for r in rows if fits(r)]
    return max(fit, key=lambda r: r.retention) if fit else None  # first of a tie


def _difference(table: Table, a: Row | None, b: Row | None, what: str) -> tuple[str, str]:
    """(b − a [95% paired CI], which is better) for two models' rows of one task."""
    if a is None or b is None:
        return "—", "—"
    try:
        boot = paired_difference(table, a, b, what, N_BOOT, SEED)
    except NotPaired as e:
        return f"not paired ({e.reason})", "—"
    point = (b.retention - a.retention) if what == "retention" else 100 * (b.score - a.score)
    lo, hi = boot.values
    better = _short(b.values["model"]) if lo > 0 else _short(a.values["model"]) if hi < 0 else ""
    return f"{point:+.2f} [{lo:+.2f}, {hi:+.2f}]", better or "neither (interval covers 0)"


def comparison(run: str | Path) -> str:
    """The markdown of the provider comparison of `run` (two models, see module doc)."""
    table = load_table(run)
    techniques = [
        r
        for r in table.rows
        if r.values.get("role") == "technique" and r.values.get("scope", "task") == "task"
    ]
    models = list(dict.fromkeys(r.values["model"] for r in table.rows))
    if len(models) != 2:
        raise UserError(f"{run}: a provider comparison needs two models; found {len(models)}")
    first, second = (_short(m) for m in models)
    tasks = list(dict.fromkeys(r.values["task"] for r in table.rows))
    of = {
        (t, m): [r for r in techniques if r.cell[0] == t and r.cell[2] == m]
        for t in tasks
        for m in models
    }

    out = [_provenance(table), ""]
    out += [
        "Float rows against mteb's published scores (`embeddings-benchmark/results`):\n",
        "| model | dim | task | float score here | published | equal to 4 decimals | source |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for m in models:
        for t in tasks:
            base = next(
                (
                    r
                    for r in table.rows
                    if r.is_baseline
                    and r.cell[0] == t
                    and r.cell[2] == m
                    and r.values.get("scope", "task") == "task"
                ),
                None,
            )
            if base is None:
                continue
            pub, source = PUBLISHED.get((m, t), (None, ""))
            same = "" if pub is None else ("yes" if abs(base.score - pub) < 5e-5 else "**no**")
            pub_text = "" if pub is None else str(pub)
            out.append(
                f"| {_short(m)} | {base.values['dim']} | {t} | {base.score:.6f} | {pub_text} "
                f"| {same} | {source} |"
            )

    head = (
        f"| task | {{}} | {first}: retention % [95% CI] (size ×, bytes) | score "
        f"| {second}: retention % [95% CI] (size ×, bytes) | score | {{}} | {{}} |\n"
        "|---|---:|---|---:|---|---:|---:|---|"
    )
    by_size, said = _lines(table, of, "size_multiplier", BUDGETS, "retention")
    out += [
        "",
        f"By size budget (footprint size × ≥ m; best technique of each model, selected on test; "
        f"Δ = {second} − {first}, paired 95% interval):\n",
        head.format("size × ≥", "Δ retention, points", "compresses better"),
        *by_size,
    ]
    out += ["", *_summary(said, "{}×", "retains more")]
    by_bytes, said = _lines(table, of, "total_bytes_per_vector", BYTES, "score")
    out += [
        "",
        f"By bytes per vector (footprint ≤ B; Δ score = 100 × ({second} − {first}), paired 95% "
        "interval):\n",
        head.format("bytes ≤", "Δ score, points", "higher score"),
        *by_bytes,
        "",
        *_summary(said, "{} B", "scores higher"),
    ]
    return "\n".join(out) + "\n"


def _summary(said: list[tuple[str, int, str]], unit: str, verb: str) -> list[str]:
    """A line per task: at which limits each model is ahead (interval excludes 0), and
    where the difference is not resolved."""
    out = []
    for task in dict.fromkeys(t for t, _, _ in said):
        groups: dict[str, list[str]] = {}
        for t, limit, better in said:
            if t == task and better != "—":
                groups.setdefault(better, []).append(unit.format(limit))
        parts = [
            f"{who} {verb} at {', '.join(at)}"
            if not who.startswith("neither")
            else f"no difference resolved at {', '.join(at)}"
            for who, at in groups.items()
        ]
        out.append(f"- {task}: {'; '.join(parts) or 'no pair to compare'}.")
    return out


def _lines(
    table: Table, of: dict, column: str, limits: tuple[int, ...], what: str
) -> tuple[list[str], list[tuple[str, int, str]]]:
    """A row per task and limit: each model's best technique within it (size × ≥ limit,
    or bytes ≤ limit) and the paired difference of `what`; and (task, limit, better)."""
    out, said = [], []
    tasks = list(dict.fromkeys(t for t, _ in of))
    models = list(dict.fromkeys(m for _, m in of))
    for t in tasks:
        last = None
        for limit in limits:
            if column == "size_multiplier":
                fits = lambda r, m=limit: _num(r, column) >= m - 1e-9  # noqa: E731
            else:
                fits = lambda r, b=limit: _num(r, column) <= b  # noqa: E731
            a, b = (_best(of[t, m], fits) for m in models)
            if a is None and b is None:
                continue
            if (a, b) == last:  # a row only where a pick changes; the summary names every limit
                said.append((t, limit, said[-1][2]))
                continue
            last = (a, b)
            diff, better = _difference(table, a, b, what)
            cells = (t, limit, _cell(a), _score(a), _cell(b), _score(b), diff, better)
            out.append("| " + " | ".join(str(c) for c in cells) + " |")
            said.append((t, limit, better))
    return out, said


def _provenance(table: Table) -> str:
    """One line from the run's manifest: rows, commit, versions, seeds, cells, texts."""
    m = table.manifest or {}
    git, v, ev = m.get("git") or {}, m.get("versions") or {}, m.get("evaluations") or {}
    state = "dirty" if git.get("dirty") else "clean"
    seeds = (m.get("seeds") or {}).get("replicates", "?")
    libs = ", ".join(f"{k} {v.get(k, '?')}" for k in ("mteb", "sentence-transformers", "torch"))
    return (
        f"Run `{table.path.parent.name}/`: {len(table.rows)} rows from {state} commit "
        f"{str(git.get('commit', '?'))[:7]}, {libs}; {seeds} seeds; cells evaluated "
        f"{ev.get('run', '?')}, resumed {ev.get('resumed', '?')}; texts embedded "
        f"{m.get('texts_embedded', '?')}, from cache {m.get('texts_from_cache', '?')}."
    )


def _score(row: Row | None) -> str:
    return "—" if row is None else f"{row.score:.4f}"


def _split(readme: Path) -> tuple[str, str, str]:
    """The README's text before, between and after its markers; a `UserError` when the
    file cannot be read or has no begin marker followed by an end marker."""
    try:
        content = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{readme}: cannot read it ({e})") from None
    head, begin, rest = content.partition(BEGIN)
    inside, end, tail = rest.partition(END)
    if not begin or not end:
        raise UserError(f"{readme}: no '{BEGIN}' ... '{END}' markers, in this order")
    return head, inside, tail


def write_readme(readme: Path, text: str) -> None:
    """Replace what is between the README's markers with `text`."""
    head, _, tail = _split(readme)
    try:
        readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")
    except OSError as e:
        raise UserError(f"{readme}: cannot write it ({e})") from None


def readme_section(readme: Path) -> str:
    """What is between the README's markers now."""
    return _split(readme)[1].removeprefix("\n")
