"""Load a task: mteb's own task object, its data from a local folder or the hub.

With a data folder, `<dir>/<TaskName>/` is loaded into the task before mteb sees it
(mteb then skips its own loading): `<split>.jsonl` files, a BEIR folder for
retrieval, or `<hf_subset>/<split>.jsonl` for a task with several subsets (only the
subsets present are evaluated). Without one, mteb loads from the hub as usual. A
task entry may restrict the subsets and splits evaluated; a user's own task is built
by `embedbench.tasks.user`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from embedbench.errors import UserError, unknown_name
from embedbench.tasks.base import LoadedTask
from embedbench.tasks.files import check_rows, read_numbered_jsonl, sha256_file
from embedbench.tasks.kinds import KINDS, kind_of
from embedbench.tasks.retrieval import CORPUS_FILE, load_beir

DATA_ENV = "EMBEDBENCH_DATA_DIR"
TASK_LISTING = "any mteb task of a supported kind (`embedbench list tasks`)"


def known_tasks() -> list[str]:
    """The mteb task names of the kinds this harness evaluates."""
    import mteb

    return sorted(
        t.metadata.name
        for t in mteb.get_tasks(task_types=list(KINDS), languages=None, exclude_superseded=False)
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


def _read_split(task: Any, kind: Any, path: Path) -> Any:
    from datasets import Dataset

    rows = read_numbered_jsonl(path)
    check_rows(path, rows, kind.file_columns(task))
    try:
        return Dataset.from_list([row for _, row in rows])
    except (ValueError, TypeError) as e:  # e.g. another column of mixed types
        raise UserError(f"{path}: cannot be read as one table ({type(e).__name__}: {e})") from None


def _load_splits(task: Any, kind: Any, folder: Path) -> tuple[Any, list[Path]]:
    """`DatasetDict` of every `<split>.jsonl` file of `folder`."""
    from datasets import DatasetDict

    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise UserError(f"task folder {folder} holds no <split>.jsonl files")
    return DatasetDict({f.stem: _read_split(task, kind, f) for f in files}), files


def load_local(task: Any, kind: Any, folder: Path) -> dict[str, Any]:
    """Put the files of `folder` into `task` (one subset, several, or BEIR)."""
    if (folder / CORPUS_FILE).is_file():
        return load_beir(task, folder)
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.jsonl")))
    files: list[Path] = []
    if subfolders and task.metadata.is_multilingual:
        present = {p.name: p for p in subfolders}
        wanted = list(task.hf_subsets)
        missing = [s for s in wanted if s not in present]
        if missing and len(missing) == len(wanted):
            raise UserError(
                f"task {task.metadata.name}: none of its subsets is in {folder} "
                f"(expected <subset>/<split>.jsonl, e.g. {wanted[0]}/)"
            )
        if missing and _restricted(task):
            raise UserError(
                f"task {task.metadata.name}: subsets not in {folder}: {', '.join(missing)}"
            )
        task.hf_subsets = [s for s in wanted if s in present]  # evaluate what is present
        dataset = {}
        for s in task.hf_subsets:
            dataset[s], sub_files = _load_splits(task, kind, present[s])
            files += sub_files
        task.dataset = dataset
    else:
        task.dataset, files = _load_splits(task, kind, folder)
    task.data_loaded = True
    return {
        "kind": "local",
        "folder": str(folder.resolve()),
        "files": {p.relative_to(folder).as_posix(): sha256_file(p) for p in files},
    }


def _restricted(task: Any) -> bool:
    return list(task.hf_subsets) != list(task.metadata.hf_subsets)


def _mteb_task(name: str, subsets: list[str] | None, splits: list[str] | None) -> Any:
    import mteb

    try:
        task = mteb.get_task(name)
    except KeyError:
        raise unknown_name("task", name, known_tasks(), TASK_LISTING) from None
    kind_of(task.metadata.type, name)  # a supported kind, else one line
    if splits:
        bad = [s for s in splits if s not in task.metadata.eval_splits]
        if bad:
            raise UserError(
                f"task {name}: splits {', '.join(bad)} are not evaluation splits; "
                f"allowed: {', '.join(task.metadata.eval_splits)}"
            )
        task.filter_eval_splits(splits)
    if subsets:
        bad = [s for s in subsets if s not in task.metadata.hf_subsets]
        if bad:
            raise UserError(
                f"task {name}: unknown subsets {', '.join(bad)}; allowed: "
                + ", ".join(task.metadata.hf_subsets[:20])
                + (" ..." if len(task.metadata.hf_subsets) > 20 else "")
            )
        task.hf_subsets = [s for s in task.metadata.hf_subsets if s in subsets]
    return task


def load_task(entry: Any, data_dir: Path | None) -> LoadedTask:
    """The task of a config entry (a name, or a `TaskSpec`) with its data loaded.

    mteb tasks load from `data_dir/<name>/` when that folder exists, else from the hub;
    a user task (`kind` and `path` given) from its own folder.
    """
    spec = _as_spec(entry)
    if spec.path is not None:
        from embedbench.tasks.user import load_user_task

        return load_user_task(spec, data_dir)
    task = _mteb_task(spec.name, spec.subsets, spec.splits)
    kind = kind_of(task.metadata.type, spec.name)
    kind.check_main_score(task)
    folder = data_dir / spec.name if data_dir else None
    if folder is not None and folder.is_dir():
        source = load_local(task, kind, folder)
    else:
        try:
            task.load_data()
        except (ConnectionError, OSError) as e:
            where = f"no folder {folder} and " if folder else ""
            raise UserError(
                f"task {spec.name}: {where}the hub cannot be reached ({type(e).__name__}); "
                f"give --data-dir or {DATA_ENV} with <dir>/{spec.name}/<split>.jsonl"
            ) from e
        source = {
            "kind": "hub",
            "path": task.metadata.dataset["path"],
            "revision": task.metadata.dataset["revision"],
        }
    lt = LoadedTask(spec.name, task, kind, source, spec.calibration or "", entry=spec)
    missing = [s for s in lt.splits if s not in lt.available_splits()]
    if missing:
        raise UserError(
            f"task {spec.name}: no evaluation split {', '.join(missing)} in its data; "
            f"found: {', '.join(sorted(lt.available_splits())) or 'none'}"
        )
    return lt


def _as_spec(entry: Any) -> Any:
    from embedbench.config import TaskSpec

    return TaskSpec(name=entry) if isinstance(entry, str) else entry
