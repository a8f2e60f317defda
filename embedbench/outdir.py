"""The run folder, checked before anything is embedded or evaluated.

A folder that cannot be written (a file in the way, no permission, a read-only
file system, a name too long) would otherwise surface only when the first table is
written, after every embedding and the float baseline were paid for.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedbench.errors import UserError
from embedbench.io import TMP_SUFFIX


def check_output_dir(path: Path) -> Path:
    """Create `path` (and parents) and prove it writable, or raise one `UserError` line."""
    probe = path / f".write-check.{os.getpid()}{TMP_SUFFIX}"
    try:
        if path.exists() and not path.is_dir():
            raise UserError(f"output folder {path} is a file; give --output a folder path")
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(
            f"output folder {path} cannot be written ({e.strerror or e}); "
            "give --output a writable folder"
        ) from None
    return path
