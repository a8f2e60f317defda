"""Compare two runs cell by cell: the CI gate behind `embedbench compare NEW BASELINE`.

Inputs. Each side is a run folder (its `retention.csv`, and `manifest.json` and
`predictions/` when present) or a `retention.csv` file (its folder is the run folder).
Cells are matched on (task, provider, model, technique) plus every *identity* column
both tables have: a column this version does not know (`NOT_IDENTITY` lists the known
measurements and descriptions), unless `--ignore-column` names it.

Why not the tables' intervals. A row's 95% interval is test-set sampling: how its
retention would vary over *other* test items. Two runs of a deterministic pipeline
score the *same* items, so that sampling is shared and cancels in their difference;
it is not run-to-run noise (read as such, it let a genuine 2-point drop pass on 17 of
60 cells). The gate asks whether the change lowered the score on these items.

Rule "paired". When both runs have per-item predictions (`embedbench.predictions`) of
a technique cell and of its float baseline (the row of the same task, provider and
model with verdict "baseline" and the cell's float_score), the gold is identical (same
items; for retrieval the same query ids), and each prediction set reproduces its
table's score (1e-5 plus rounding), the four sets -- baseline float bf and technique
bt, new float nf and technique nt -- are scored on the same bootstrap resamples of the
test items (`stats.paired_bootstrap`) for

    retention drop = 100·bt/bf − 100·nt/nf      score drop = 100·(bt − nt)

(points, positive = worse). The cell regresses when a drop of the tables exceeds
max_drop (default 1) or its one-sided 95% upper bound (95th percentile over resamples)
does: it passes only if the bootstrap shows at 95% that the drop is at most max_drop.
An identical rerun has drop 0 on every resample (so none is drawn: `resamples` 0). A
change that moves many items both ways (other random seeds) can fail with no mean drop
if the test set is too small to bound its effect.

Rule "point". Otherwise (a side has no predictions, e.g. an older embedbench; they do
not reproduce the table; the gold differs) a cell regresses when a drop exceeds
max_drop; one warning line counts these cells and says why (a cell's note adds details).
Float-baseline rows always use it on their score: deterministic for a given model,
data and mteb version. A float score that moved by more than 1e-4 is a warning (a
failure with `--fail-on-baseline-change`): retentions then have other baselines.

Checks. A row with a non-finite or absurd number (|x| > 1e6), or an inverted or
absurdly wide (> 1000 points) interval, is malformed. `--json` never prints NaN.

Modules: `tables` reads and checks each side, `gate` matches the cells and applies
the rule (`compare_tables`), `paired` runs the paired bootstrap of a cell, and
`output` formats the result (markdown table, summary, JSON).

Exit codes: 0 no regression; 1 a regression (or a moved baseline with
`--fail-on-baseline-change`); 2 a file missing or malformed (one line), or cells on
one side only (named; `--allow-missing` compares the common cells).
"""

from embedbench.compare.gate import (
    BASELINE_MOVE,
    CellDiff,
    Comparison,
    compare_runs,
    compare_tables,
    diff_cell,
)
from embedbench.compare.paired import NotPaired, Paired, paired_drops
from embedbench.compare.tables import REQUIRED, Row, Table, cell_name, load_table

__all__ = [
    "BASELINE_MOVE",
    "REQUIRED",
    "CellDiff",
    "Comparison",
    "NotPaired",
    "Paired",
    "Row",
    "Table",
    "cell_name",
    "compare_runs",
    "compare_tables",
    "diff_cell",
    "load_table",
    "paired_drops",
]
