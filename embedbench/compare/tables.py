"""The two sides of a comparison: a run's retention table read and checked, row by row.

`load_table` reads a run folder (or its retention.csv) with `results.read_retention`,
checks every row (non-empty key, finite and sane numbers, an interval that is neither
inverted nor absurdly wide, no duplicate cell) and attaches the run's manifest and
per-item predictions when present. `Table.float_row` finds a row's float baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.manifest import read_manifest
from embedbench.predictions import RunPredictions
from embedbench.results import BASE_KEY, INTERVAL, NUMERIC, extra_identity, read_retention

REQUIRED = (*BASE_KEY, *NUMERIC, *INTERVAL, "verdict")
EPS = 1e-6  # the tables carry 2 (retention) and 6 (score) decimals
ABSURD = 1e6  # |number| beyond this is not a score or a retention
MAX_CI_WIDTH = 1000.0  # points of retention


@dataclass
class Row:
    values: dict[str, str]
    score: float
    float_score: float
    retention: float
    ci_low: float | None
    ci_high: float | None
    verdict: str
    line: int

    @property
    def is_baseline(self) -> bool:
        return self.verdict == "baseline"

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return tuple(self.values[c] for c in BASE_KEY)  # type: ignore[return-value]

    def brief(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*NUMERIC, *INTERVAL, "verdict")}


@dataclass
class Table:
    label: str  # what the user passed
    path: Path  # the csv read
    columns: list[str]
    rows: list[Row]
    manifest: dict[str, Any] | None = None
    predictions: RunPredictions | None = None

    def float_row(self, row: Row) -> Row | None:
        """The float-baseline row of `row`: same task, provider, model; verdict baseline."""
        found = [
            r
            for r in self.rows
            if r.is_baseline
            and r.cell[:3] == row.cell[:3]
            and all(r.values.get(c) == row.values.get(c) for c in ("subset", "split"))
            and abs(r.score - row.float_score) <= 2 * EPS
        ]
        first = [r for r in found if r.values["technique"] == "classic"]
        first += [r for r in found if r.values.get("spec") == "float32"]
        return (first + found + [None])[0]


def _number(text: str | None, where: str, column: str, optional: bool = False) -> float | None:
    text = (text or "").strip()
    if not text and optional:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: column '{column}' is not a number: '{text}'") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: column '{column}' is not a finite number: '{text}'")
    if abs(value) > ABSURD:
        raise UserError(f"{where}: column '{column}' is absurd: '{text}' (|value| > {ABSURD:g})")
    return value


def load_table(path: str | Path) -> Table:
    """Read and check a run's retention table (and its manifest and predictions)."""
    csv_path, header, records = read_retention(path, REQUIRED)
    ident = [*BASE_KEY, *extra_identity(header)]
    rows: list[Row] = []
    seen: dict[tuple[str, ...], int] = {}
    for line, rec in records:
        where = f"{csv_path} line {line}"
        for c in BASE_KEY:
            if not rec[c].strip():
                raise UserError(f"{where}: column '{c}' is empty")
        key = tuple(rec[c] for c in ident)
        if key in seen:
            raise UserError(f"{where}: duplicate cell {cell_name(rec)} (also line {seen[key]})")
        seen[key] = line
        lo = _number(rec["ci_low"], where, "ci_low", optional=True)
        hi = _number(rec["ci_high"], where, "ci_high", optional=True)
        if lo is not None and hi is not None:
            if lo > hi:
                raise UserError(f"{where}: column 'ci_low' {lo:g} > 'ci_high' {hi:g}: inverted")
            if hi - lo > MAX_CI_WIDTH:
                raise UserError(
                    f"{where}: column 'ci_high' {hi:g}: interval [{lo:g}, {hi:g}] wider "
                    f"than {MAX_CI_WIDTH:g} points"
                )
        rows.append(
            Row(
                values=rec,
                score=_number(rec["score"], where, "score"),
                float_score=_number(rec["float_score"], where, "float_score"),
                retention=_number(rec["retention"], where, "retention"),
                ci_low=lo,
                ci_high=hi,
                verdict=rec["verdict"].strip(),
                line=line,
            )
        )
    try:
        manifest = read_manifest(csv_path.parent)
    except UserError:
        manifest = None  # the table is what is compared; the manifest is context only
    preds = RunPredictions.load(csv_path.parent)
    return Table(str(path), csv_path, header, rows, manifest, preds)


def cell_name(values: dict[str, str], extra: list[str] | tuple[str, ...] = ()) -> str:
    """`STSBenchmark / local:model / binary` (plus `col=value` for extra identity)."""
    name = f"{values['task']} / {values['provider']}:{values['model']} / {values['technique']}"
    more = [f"{c}={values.get(c, '')}" for c in extra]
    return name + (f" ({', '.join(more)})" if more else "")
