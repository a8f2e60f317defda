"""Atomic file writes (a file on disk is either the old one or the new one, whole), and
`read_json`, reading a JSON file back with a one-line error.

`write_atomic` writes to a temporary file beside the target (named with
`TMP_SUFFIX`, so `remove_stale_temporaries` can drop what a killed run left behind,
never a user's file), flushes and fsyncs it, renames it into place and fsyncs the
folder, so a crash or power loss never leaves a half-written table, record or figure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embedbench.errors import UserError

TMP_SUFFIX = ".embedbench.tmp"  # only files named so are ever removed as stale


def temp_path(path: Path) -> Path:
    """Where `path` is written before its atomic rename."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` atomically and durably."""
    tmp = temp_path(path)
    with tmp.open("wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as JSON (sorted keys) at `path`, creating its folder; see `write_atomic`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, sort_keys=True))


def read_json(path: Path, invalid: str) -> Any:
    """The JSON value in `path`; a `UserError` "`path`: `invalid` (why)" when it cannot be
    read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: {invalid} ({e})") from None


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> None:
    """Drop temporaries a killed run of this tool left behind (never a user's file)."""
    if folder.is_dir():
        for tmp in folder.glob(f".*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
