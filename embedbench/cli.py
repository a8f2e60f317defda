"""The `embedbench` command: parses, calls one function of `api`, prints."""

from __future__ import annotations

import logging
import sys
import warnings

import click

from embedbench import api
from embedbench.errors import EmbedbenchError

DATA_HELP = "folder with <TaskName>/<split>.jsonl (else $EMBEDBENCH_DATA_DIR, else the hub)"
CACHE_HELP = "embedding cache file (else the config's, $EMBEDBENCH_CACHE, ~/.cache/embedbench)"


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="embedbench")
def cli() -> None:
    """How far can you compress your embeddings? Retention on real MTEB tasks."""
    _quiet_libraries()


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--data-dir", type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--cache", type=click.Path(dir_okay=False), help=CACHE_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="run folder (else the config's)")
def run(config: str, data_dir: str | None, cache: str | None, output: str | None) -> None:
    """Run the grid in CONFIG and write retention.csv, retention.md and manifest.json."""
    bars = _Bars()
    try:
        result, out = api.run(config, data_dir, cache, output, progress=bars)
    finally:
        bars.close()
    from embedbench.report import markdown_table

    click.echo(markdown_table(result.rows))
    click.echo(
        f"wrote {out}/retention.csv ({len(result.rows)} rows); texts embedded "
        f"{result.texts_embedded}, from cache {result.texts_from_cache}"
    )


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
def validate(config: str) -> None:
    """Check CONFIG without calling any provider."""
    cfg = api.validate(config)
    click.echo(
        f"{config}: ok, {len(cfg.cells())} cells "
        f"({len(cfg.providers)} providers × {len(cfg.tasks)} tasks × "
        f"{len(cfg.techniques)} techniques)"
    )


@cli.command(name="list")
@click.argument("kind", required=False, type=click.Choice(["providers", "techniques", "tasks"]))
def list_(kind: str | None) -> None:
    """List providers, techniques (presets and codes; compose as transform+code) or tasks."""
    for k in [kind] if kind else ["providers", "techniques", "tasks"]:
        click.echo(f"{k}:")
        for name in api.catalog(k):
            click.echo(f"  {name}")


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


def main() -> None:
    """Entry point: user mistakes exit 2 with one line, failed runs exit 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted; every completed batch is in the cache", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except EmbedbenchError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted; every completed batch is in the cache", err=True)
        sys.exit(130)
