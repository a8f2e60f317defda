"""Reading a task's local files: JSONL rows with their line numbers, column checks, digests.

Every fault in a file is one `UserError` line naming the file, the line and what is
wrong, raised before any provider is called.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from embedbench.errors import UserError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_text_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of every non-blank line of a UTF-8 text file."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    lines = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1} of the line); "
                "save the file as UTF-8"
            ) from None
        if line.strip():
            lines.append((lineno, line))
    return lines


def read_numbered_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; one `UserError` line naming the
    file and line for bytes that are not UTF-8, text that is not JSON, or a value that
    is not an object."""
    rows = []
    for lineno, line in read_text_lines(path):
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


def _value_ok(kind: str, value: Any) -> bool:
    if kind == "text":
        return isinstance(value, str) and bool(value.strip())
    if kind == "number":
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind == "labels":  # a multilabel row: a list of labels
        return isinstance(value, list) and all(_value_ok("label", v) for v in value)
    return isinstance(value, int | str) and not isinstance(value, bool)  # a label


_VALUE_NAMES = {
    "text": "a non-empty string",
    "number": "a finite number",
    "label": "an int or string",
    "labels": "a list of ints or strings",
}


def check_rows(path: Path, rows: list[tuple[int, dict[str, Any]]], columns: dict[str, str]) -> None:
    """Every row holds every column with a value of its kind (text, number, label,
    labels), and labels all of one type; else one `UserError` naming the file, line and
    column."""
    if not rows:
        raise UserError(f"{path}: holds no rows (an empty split)")
    label_type: dict[str, type] = {}
    for lineno, row in rows:
        for col, kind in columns.items():
            if col not in row:
                raise UserError(f"{path}:{lineno}: no '{col}' column (has: {', '.join(row)})")
            value = row[col]
            if not _value_ok(kind, value):
                raise UserError(
                    f"{path}:{lineno}: '{col}' must be {_VALUE_NAMES[kind]}, got {value!r:.60}"
                )
            if kind == "label" and label_type.setdefault(col, type(value)) is not type(value):
                raise UserError(
                    f"{path}:{lineno}: '{col}' is a {type(value).__name__} where earlier rows "
                    f"hold {label_type[col].__name__} values"
                )
