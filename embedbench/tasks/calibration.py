"""Where a task's calibration texts come from: never a text it is evaluated on.

A task entry's `calibration:` names the source; without one, its kind's default:

- `<split>`: a split of the task itself (default: the config's `calibration.split`,
  `train`); an evaluation split is refused;
- `<Task>:<split>`: a split of another mteb task (loaded as that task loads);
- `file:<path>`: a UTF-8 text file, one text per line;
- retrieval tasks calibrate on their corpus (documents, never queries) unless told.

Texts equal to an evaluated text after Unicode (NFKC) and whitespace normalisation are
dropped, then a seeded sample of at most `max_texts` is drawn (sorted, so the order of
the source does not matter). A task with no source available stops the run before any
provider call, with one line saying what to add.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.tasks.base import LoadedTask
from embedbench.tasks.files import read_text_lines


def normalize_text(text: str) -> str:
    """NFKC, whitespace runs as one space, stripped: how near-twins are recognised
    (Banking77 has test texts whose train twins differ only by a newline)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def sample_texts(unique: list[str], max_texts: int, seed: int) -> list[str]:
    """A seeded sample of at most `max_texts` texts, sorted (order-independent)."""
    if len(unique) > max_texts:
        return sorted(random.Random(seed).sample(unique, max_texts))
    return unique


@dataclass(frozen=True)
class Source:
    label: str  # as recorded: "train", "corpus", "STSBenchmark:train", "file:cal.txt"
    texts: list[str]  # the pool, before evaluated texts are dropped


def _hint(lt: LoadedTask) -> str:
    return (
        f"give its task entry a source, e.g. {{name: {lt.name}, calibration: "
        "'<OtherTask>:train'} or calibration: 'file:<texts.txt>' (one text per line)"
    )


def source(lt: LoadedTask, default_split: str, data_dir: Path | None) -> Source:
    """The calibration pool of `lt` (see the module docstring)."""
    name = lt.calibration_source
    if name.startswith("file:"):
        path = Path(name[5:]).expanduser()
        if not path.is_file():
            raise UserError(f"task {lt.name}: calibration file {path} does not exist")
        return Source(name, [line for _, line in read_text_lines(path)])
    if ":" in name:
        from embedbench.tasks.load import load_task

        other, _, split = name.partition(":")
        olt = load_task(other, data_dir)
        if split not in olt.available_splits():
            raise UserError(
                f"task {lt.name}: calibration source {name}: {other} has no '{split}' split; "
                f"found: {', '.join(sorted(olt.available_splits()))}"
            )
        return Source(name, olt.kind.calibration_pool(olt, split))
    if lt.kind.corpus_calibration:
        if name:
            raise UserError(
                f"task {lt.name}: calibration '{name}': a {lt.type} task calibrates on its "
                "corpus (the default) or on another task's split or a file"
            )
        return Source("corpus", lt.kind.calibration_pool(lt, ""))
    split = name or default_split
    if split in lt.splits:
        raise UserError(
            f"calibration: '{split}' is an evaluation split of {lt.name}; calibrating on it "
            f"leaks test data ({_hint(lt)})"
        )
    available = lt.available_splits() - set(lt.splits)
    if split not in available:
        if not name and lt.kind.other_split_calibration and len(available) == 1:
            split = next(iter(available))  # the kind's default: its other split
        else:
            raise UserError(
                f"task {lt.name} ({lt.type}) has no '{split}' split to calibrate on"
                + (f" (it has {', '.join(sorted(available))})" if available else "")
                + f"; {_hint(lt)}"
            )
    return Source(split, lt.kind.calibration_pool(lt, split))


def calibration_texts(
    lt: LoadedTask, default_split: str, max_texts: int, seed: int, data_dir: Path | None
) -> tuple[str, list[str]]:
    """(source label, a seeded sample of unique texts of the source that `lt` is not
    evaluated on)."""
    src = lt.memo.get(("calibration", default_split))
    if src is None:
        src = lt.memo[("calibration", default_split)] = source(lt, default_split, data_dir)
    held_out = lt.memo.get("held_out")
    if held_out is None:  # the evaluated texts, normalised once per task
        held_out = lt.memo["held_out"] = {normalize_text(t) for t in lt.eval_texts()}
    unique = [t for t in dict.fromkeys(src.texts) if normalize_text(t) not in held_out]
    if not unique:
        raise UserError(
            f"task {lt.name}: calibration source {src.label} holds {len(unique)} texts not "
            f"evaluated on; {_hint(lt)}"
        )
    return src.label, sample_texts(unique, max_texts, seed)


def overlap(lt: LoadedTask, cal_texts: list[str]) -> dict[str, Any]:
    """Which evaluated texts the calibration set touched, computed after Unicode (NFKC)
    and whitespace normalisation. Retrieval calibrates on the searched corpus:
    "transductive" (allowed, and said); its queries must never be touched."""
    cal = {normalize_text(t) for t in cal_texts}
    if lt.kind.corpus_calibration:
        from embedbench.tasks.retrieval import corpus_texts

        docs = {normalize_text(t) for _, s in lt.units for t in corpus_texts(lt.task, s)}
        queries = {normalize_text(t) for t in lt.eval_texts()}
        n_docs, n_queries = len(cal & docs), len(cal & queries)
        return {
            "transductive": bool(n_docs),
            "touches_eval_texts": bool(n_docs or n_queries),
            "evaluated_documents_touched": n_docs,
            "evaluated_queries_touched": n_queries,
        }
    n = len(cal & {normalize_text(t) for t in lt.eval_texts()})
    return {"transductive": False, "touches_eval_texts": n > 0, "evaluated_texts_touched": n}


def text_digest(texts: list[str]) -> str:
    """sha256 of a text list (order kept): what the manifest records of a sample."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def calibration_facts(
    lt: LoadedTask, label: str, texts: list[str], cal: Any, seeds: int
) -> dict[str, Any]:
    """What the manifest records of a task's calibration: source, size, seeds, digest
    and the overlap with evaluated texts."""
    facts = overlap(lt, texts)
    transductive = facts.pop("transductive")
    return {
        "split": f"{label}, transductive" if transductive else label,
        "texts": len(texts),
        "seed": cal.seed,
        "replicate_seeds": [cal.seed + s for s in range(seeds)],
        "texts_sha256": text_digest(texts),
        "overlap_check": "NFKC and whitespace normalised",
        **facts,
    }
