"""A team's own data as a real mteb task: `{name, kind, path}` in a config's tasks.

The folder holds `<split>.jsonl` files (BEIR layout for Retrieval) with the columns
of its kind; it becomes an instance of mteb's own abstract task class for that kind,
with metadata copied from a reference task of the kind, so mteb's evaluator scores it
exactly as it scores a published task. Every fault in the files is one line naming
the file, the line and what is wrong, raised before any provider call.

| kind | files | columns |
|---|---|---|
| STS | `test.jsonl` (+ `train.jsonl` to calibrate) | sentence1, sentence2, score |
| Classification | `train.jsonl`, `test.jsonl` | text, label |
| PairClassification | `test.jsonl` (+ `train.jsonl`) | sentence1, sentence2, labels (0/1) |
| Clustering | `test.jsonl` (+ another split) | sentences, labels |
| Retrieval | `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv` | BEIR |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.tasks.base import LoadedTask
from embedbench.tasks.files import read_numbered_jsonl
from embedbench.tasks.kinds import KINDS

# kind -> (mteb abstract class, a reference task whose metadata is the template)
USER_KINDS = {
    "STS": ("mteb.abstasks.sts:AbsTaskSTS", "STSBenchmark"),
    "Classification": (
        "mteb.abstasks.classification:AbsTaskClassification",
        "Banking77Classification",
    ),
    "PairClassification": (
        "mteb.abstasks.pair_classification:AbsTaskPairClassification",
        "SprintDuplicateQuestions",
    ),
    "Clustering": ("mteb.abstasks.clustering:AbsTaskClustering", "TwentyNewsgroupsClustering.v2"),
    "Retrieval": ("mteb.abstasks.retrieval:AbsTaskRetrieval", "SciFact"),
}


def _class(path: str) -> type:
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _eval_splits(kind: str, folder: Path, splits: list[str] | None) -> list[str]:
    if kind == "Retrieval":
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    else:
        found = sorted(p.stem for p in folder.glob("*.jsonl"))
    wanted = splits or (["test"] if "test" in found else found[:1])
    missing = [s for s in wanted if s not in found]
    if not found or missing:
        layout = "qrels/<split>.tsv" if kind == "Retrieval" else "<split>.jsonl"
        which = ", ".join(missing or wanted or ["test"])
        raise UserError(
            f"task folder {folder}: no {layout} for split {which}"
            + (f"; found: {', '.join(found)}" if found else "")
        )
    return wanted


def _binary_labels(lt: LoadedTask, folder: Path) -> None:
    """PairClassification: labels are 0 or 1."""
    col = lt.task.label_column_name
    for split in lt.splits:
        path = folder / f"{split}.jsonl"
        for lineno, row in read_numbered_jsonl(path):
            if row[col] not in (0, 1):
                raise UserError(f"{path}:{lineno}: '{col}' must be 0 or 1, got {row[col]!r:.40}")


def _labels_in_train(lt: LoadedTask, folder: Path) -> None:
    """Classification: every test label occurs in train (else the classifier cannot
    answer it)."""
    task, col = lt.task, lt.task.label_column_name
    train_path = folder / f"{task.train_split}.jsonl"
    if not train_path.is_file():
        raise UserError(f"task folder {folder}: Classification needs {train_path.name}")
    train = set(lt.dataset("default", task.train_split)[col])
    for split in lt.splits:
        path = folder / f"{split}.jsonl"
        for lineno, row in read_numbered_jsonl(path):
            if row[col] not in train:
                raise UserError(
                    f"{path}:{lineno}: label {row[col]!r:.40} does not occur in "
                    f"{train_path.name} (the classifier never sees it)"
                )


CHECKS = {"PairClassification": _binary_labels, "Classification": _labels_in_train}


def load_user_task(spec: Any, data_dir: Path | None) -> LoadedTask:
    """Build the mteb task of a user entry `{name, kind, path}` and load its files."""
    import mteb

    from embedbench.tasks.load import load_local

    if spec.kind not in USER_KINDS:
        raise UserError(
            f"task {spec.name}: kind '{spec.kind}' cannot be read from files; "
            f"allowed: {', '.join(USER_KINDS)}"
        )
    folder = Path(spec.path).expanduser()
    if not folder.is_dir():
        raise UserError(f"task {spec.name}: path {folder} is not a folder")
    base, template = USER_KINDS[spec.kind]
    splits = _eval_splits(spec.kind, folder, spec.splits)
    meta = mteb.get_task(template).metadata.model_copy(
        update={
            "name": spec.name,
            "description": f"User data from {folder} ({spec.kind}).",
            "reference": None,
            "dataset": {"path": f"local/{spec.name}", "revision": "local"},
            "eval_splits": splits,
            "descriptive_stats": {},
        }
    )
    attrs: dict[str, Any] = {"metadata": meta}
    if spec.kind == "Clustering":  # embed every document, as a user would expect
        attrs |= {"max_fraction_of_documents_to_embed": None, "max_document_to_embed": None}
    cls = type(f"User{spec.kind}Task", (_class(base),), attrs)
    task = cls()
    kind = KINDS[spec.kind]
    source = load_local(task, kind, folder)
    source["kind"] = "user"
    lt = LoadedTask(spec.name, task, kind, source, spec.calibration or "", entry=spec)
    if spec.kind in CHECKS:
        CHECKS[spec.kind](lt, folder)
    return lt
