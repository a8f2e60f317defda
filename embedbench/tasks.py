"""MTEB tasks: mteb's own task objects and evaluators, fed from a local folder or the hub.

With a data folder, `<dir>/<TaskName>/<split>.jsonl` is loaded into the task before
mteb sees it (mteb then skips its own loading); without one, mteb loads from the
hub as usual. This module also names the texts a task evaluates on and the
calibration texts (the train split, never the evaluation split).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedbench.errors import UserError, unknown_name
from embedbench.providers.base import Purpose

# Task types this harness evaluates, and the provider purpose each implies.
PURPOSE_BY_TYPE: dict[str, Purpose] = {
    "STS": "sts",
    "Classification": "classification",
    "Retrieval": "document",  # calibration and corpus; queries use "query"
}
DATA_ENV = "EMBEDBENCH_DATA_DIR"
TASK_LISTING = "any mteb STS, Classification or Retrieval task (`embedbench list tasks`)"


@dataclass
class LoadedTask:
    """An mteb task with its data loaded, and where the data came from."""

    name: str
    task: Any  # mteb.AbsTask
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.task.metadata.type

    @property
    def eval_split(self) -> str:
        return self.task.metadata.eval_splits[0]

    @property
    def purpose(self) -> Purpose:
        return PURPOSE_BY_TYPE[self.type]

    def purpose_for(self, prompt_type: Any) -> Purpose:
        """The provider purpose of an mteb encode call (retrieval: query or document)."""
        if self.type == "Retrieval":
            value = getattr(prompt_type, "value", prompt_type)
            return "query" if value == "query" else "document"
        return self.purpose

    def gold(self) -> list[Any]:
        """STS gold scores or classification labels of the evaluation split, in order."""
        split = self.split(self.eval_split)
        return split["score"] if self.type == "STS" else split[self.task.label_column_name]

    def split(self, name: str):
        ds = self.task.dataset
        if "default" in ds and name not in ds:
            ds = ds["default"]
        if name not in ds:
            raise UserError(
                f"task {self.name}: no '{name}' split; available: {', '.join(sorted(ds))}"
            )
        return ds[name]

    def text_columns(self) -> list[str]:
        if self.type == "STS":
            return list(self.task.column_names)
        return [self.task.input_column_name]

    def texts(self, split: str) -> list[str]:
        """Every text of a split, in order, duplicates kept."""
        ds = self.split(split)
        out: list[str] = []
        for col in self.text_columns():
            out.extend(ds[col])
        return out

    def eval_texts(self) -> list[str]:
        return self.texts(self.eval_split)

    def needed_texts(self) -> dict[Purpose, list[str]]:
        """Every text mteb will ask to encode, by purpose, in first-seen order.

        Retrieval: the corpus as documents and the evaluation queries as queries.

        Classification: the evaluation split plus the union of mteb's undersampled
        training rows, simulated with mteb's own sampler (the whole train split if
        that private method changes).
        """
        if self.type == "Retrieval":
            from embedbench import retrieval

            return {
                "document": retrieval.corpus_texts(self.task, self.eval_split),
                "query": retrieval.query_texts(self.task, self.eval_split),
            }
        texts = self.eval_texts()
        if self.type == "Classification":
            task, train = self.task, self.split(self.task.train_split)
            try:
                sim, chosen = None, set()
                for i in range(task.n_experiments):
                    _, sim, picked = task._undersample_data(train, i, sim)
                    chosen.update(picked)
                rows = sorted(chosen)
            except (AttributeError, TypeError, ValueError):
                rows = range(len(train))
            column = train[task.input_column_name]
            texts = texts + [column[i] for i in rows]
        return {self.purpose: list(dict.fromkeys(texts))}

    def calibration_texts(self, split: str, max_texts: int, seed: int) -> list[str]:
        """Unique texts of the calibration split, a seeded sample of at most `max_texts`.

        Texts that also occur in the evaluation split are dropped, so nothing fitted
        can have seen an evaluation text. Retrieval calibrates on corpus documents
        (known at indexing time; METHOD.md allows it), never on queries: `split`
        does not apply.
        """
        if self.type == "Retrieval":
            from embedbench import retrieval

            return retrieval.calibration_texts(self.task, self.eval_split, max_texts, seed)
        if split == self.eval_split:
            raise UserError(
                f"calibration.split: '{split}' is the evaluation split of {self.name}; "
                "calibrating on it leaks test data (use 'train' or 'validation')"
            )
        held_out = {normalize_text(t) for t in self.eval_texts()}
        unique = [t for t in dict.fromkeys(self.texts(split)) if normalize_text(t) not in held_out]
        return sample_texts(unique, max_texts, seed)

    def calibration_overlap(self, cal_texts: list[str]) -> dict[str, Any]:
        """Which evaluated texts the calibration set touched, computed after Unicode (NFKC)
        and whitespace normalisation. Retrieval calibrates on the searched corpus:
        "transductive" (allowed, and said); its queries must never be touched."""
        cal = {normalize_text(t) for t in cal_texts}
        if self.type == "Retrieval":
            from embedbench import retrieval

            docs = {normalize_text(t) for t in retrieval.corpus_texts(self.task, self.eval_split)}
            queries = {normalize_text(t) for t in retrieval.all_query_texts(self.task)}
            n_docs, n_queries = len(cal & docs), len(cal & queries)
            return {
                "source": "corpus, transductive" if n_docs else "corpus",
                "touches_eval_texts": bool(n_docs or n_queries),
                "evaluated_documents_touched": n_docs,
                "evaluated_queries_touched": n_queries,
            }
        n = len(cal & {normalize_text(t) for t in self.eval_texts()})
        return {"source": "", "touches_eval_texts": n > 0, "evaluated_texts_touched": n}


def normalize_text(text: str) -> str:
    """NFKC, whitespace runs as one space, stripped: how near-twins are recognised
    (Banking77 has test texts whose train twins differ only by a newline)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def sample_texts(unique: list[str], max_texts: int, seed: int) -> list[str]:
    """A seeded sample of at most `max_texts` texts, sorted (order-independent)."""
    if len(unique) > max_texts:
        return sorted(random.Random(seed).sample(unique, max_texts))
    return unique


def known_tasks() -> list[str]:
    """The task names this harness can evaluate (types above)."""
    import mteb

    return sorted(
        t.metadata.name
        for t in mteb.get_tasks(
            task_types=list(PURPOSE_BY_TYPE), languages=None, exclude_superseded=False
        )
    )


def resolve_data_dir(flag: str | Path | None, config_value: str | Path | None) -> Path | None:
    """--data-dir, else the config's data_dir, else $EMBEDBENCH_DATA_DIR, else None (hub)."""
    value = flag or config_value or os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(
            f"data dir '{path}' is not a folder (from --data-dir, config or {DATA_ENV})"
        )
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_numbered_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; one `UserError` line naming the
    file and line for bytes that are not UTF-8, text that is not JSON, or a value that
    is not an object."""
    rows = []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1} of the line); "
                "save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(
                f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}"
            )
        rows.append((lineno, obj))
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in read_numbered_jsonl(path)]


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "text":
        return isinstance(value, str) and bool(value.strip())
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, int | str) and not isinstance(value, bool)  # a label


_KIND_NAMES = {
    "text": "a non-empty string",
    "number": "a finite number",
    "label": "an int or string",
}


def check_rows(path: Path, rows: list[tuple[int, dict[str, Any]]], columns: dict[str, str]) -> None:
    """Every row holds every column with a value of its kind (text, number, label), and
    labels all of one type; else one `UserError` naming the file, line and column."""
    if not rows:
        raise UserError(f"{path}: holds no rows (an empty split)")
    label_type: dict[str, type] = {}
    for lineno, row in rows:
        for col, kind in columns.items():
            if col not in row:
                raise UserError(f"{path}:{lineno}: no '{col}' column (has: {', '.join(row)})")
            value = row[col]
            if not _kind_ok(kind, value):
                raise UserError(
                    f"{path}:{lineno}: '{col}' must be {_KIND_NAMES[kind]}, got {value!r:.60}"
                )
            if kind == "label" and label_type.setdefault(col, type(value)) is not type(value):
                raise UserError(
                    f"{path}:{lineno}: '{col}' is a {type(value).__name__} where earlier rows "
                    f"hold {label_type[col].__name__} values"
                )


def _columns(task: Any) -> dict[str, str]:
    """The columns a local split of `task` needs, by kind."""
    if task.metadata.type == "STS":
        return {**{c: "text" for c in task.column_names}, "score": "number"}
    return {task.input_column_name: "text", task.label_column_name: "label"}


def _load_local(task: Any, folder: Path) -> dict[str, Any]:
    from datasets import Dataset, DatasetDict

    if (folder / "corpus.jsonl").is_file():
        from embedbench.retrieval import load_beir

        return load_beir(task, folder)
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise UserError(f"task folder {folder} holds no <split>.jsonl files")
    splits = {}
    for f in files:
        rows = read_numbered_jsonl(f)
        check_rows(f, rows, _columns(task))
        try:
            splits[f.stem] = Dataset.from_list([row for _, row in rows])
        except (ValueError, TypeError) as e:  # e.g. another column of mixed types
            raise UserError(f"{f}: cannot be read as one table ({type(e).__name__}: {e})") from None
    task.dataset = DatasetDict(splits)
    task.data_loaded = True
    return {
        "kind": "local",
        "folder": str(folder.resolve()),
        "files": {f.name: sha256_file(f) for f in files},
    }


def load_task(name: str, data_dir: Path | None) -> LoadedTask:
    """The mteb task `name` with data loaded from `data_dir/<name>/` or the hub."""
    import mteb

    try:
        task = mteb.get_task(name)
    except KeyError:
        raise unknown_name("task", name, known_tasks(), TASK_LISTING) from None
    if task.metadata.type not in PURPOSE_BY_TYPE:
        raise UserError(
            f"task {name} is of type {task.metadata.type}; supported types: "
            f"{', '.join(PURPOSE_BY_TYPE)}"
        )
    folder = data_dir / name if data_dir else None
    if folder is not None and folder.is_dir():
        source = _load_local(task, folder)
    else:
        try:
            task.load_data()
        except (ConnectionError, OSError) as e:
            where = f"no folder {folder} and " if folder else ""
            raise UserError(
                f"task {name}: {where}the hub cannot be reached ({type(e).__name__}); "
                f"give --data-dir or {DATA_ENV} with <dir>/{name}/<split>.jsonl"
            ) from e
        source = {
            "kind": "hub",
            "path": task.metadata.dataset["path"],
            "revision": task.metadata.dataset["revision"],
        }
    return LoadedTask(name=name, task=task, source=source)
