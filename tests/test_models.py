"""Packaged models (`embedbench.models`): pieces joined, unpacked, verified, then used.

The mechanism is tested on a small zip made here; the real all-mpnet-base-v2 tests
run where `make models` installed it (CI does) and skip with one line elsewhere.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from embedbench import models
from embedbench.errors import UserError
from embedbench.models import MPNET, PackagedModel, install, installed_path, verify

# incompressible weights: the middle of the zip is inside them
FILES = {"model.safetensors": random.Random(0).randbytes(60_000), "1_Pooling/config.json": b"{}"}

needs_mpnet = pytest.mark.skipif(
    installed_path(MPNET.hub) is None,
    reason="all-mpnet-base-v2 is not installed (run `make models`)",
)


def _spec(files: dict[str, bytes] = FILES, **over) -> PackagedModel:
    fields = dict(
        name="tiny-model",
        hub="example/tiny-model",
        revision="0" * 40,
        packages=("tiny-part-001", "tiny-part-002", "tiny-part-003"),
        version="0.0.1",
        piece="input/tiny-model.zip.{i:03d}",
        files={k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    )
    return PackagedModel(**(fields | over))


def _pieces(tmp_path: Path, spec: PackagedModel, files: dict[str, bytes] = FILES) -> list[Path]:
    """The zip of `files` under `<name>/` (plus a desktop.ini the install skips), split in 3."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in files.items():
            z.writestr(f"{spec.name}/{rel}", data)
        z.writestr(f"{spec.name}/desktop.ini", b"[.ShellClassInfo]")
    blob = buf.getvalue()
    cut = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    out = []
    for i in range(3):
        p = tmp_path / "pieces" / f"{spec.name}.zip.{i + 1:03d}"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(blob[cut[i] : cut[i + 1]])
        out.append(p)
    return out


def _left(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_install_joins_verifies_and_is_idempotent(tmp_path):
    spec, root = _spec(), tmp_path / "models"
    folder = install(spec, root, _pieces(tmp_path, spec))
    assert folder == root / spec.name and _left(root) == [spec.name]
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert not (folder / "desktop.ini").exists()  # only the listed files are unpacked
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    # installed: verified and kept, the pieces are not needed any more
    assert install(spec, root, pieces=[]) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime


def test_corrupted_piece_is_refused_and_nothing_is_left(tmp_path):
    spec, root = _spec(), tmp_path / "models"
    pieces = _pieces(tmp_path, spec)
    data = bytearray(pieces[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    pieces[1].write_bytes(bytes(data))
    with pytest.raises(UserError) as info:
        install(spec, root, pieces)
    assert spec.name in str(info.value) and "\n" not in str(info.value)
    assert _left(root) == []  # no folder, no temporary


def test_wrong_checksum_is_refused_and_nothing_is_left(tmp_path):
    spec, root = _spec(), tmp_path / "models"
    pieces = _pieces(tmp_path, spec, {**FILES, "model.safetensors": b"other weights"})
    with pytest.raises(UserError, match=r"model\.safetensors has sha256 .*, expected"):
        install(spec, root, pieces)
    assert _left(root) == []


def test_missing_piece_is_one_error(tmp_path):
    spec, root = _spec(), tmp_path / "models"
    pieces = _pieces(tmp_path, spec)
    pieces[2].unlink()
    with pytest.raises(UserError, match="piece .*tiny-model.zip.003 is missing"):
        install(spec, root, pieces)
    with pytest.raises(UserError, match="2 pieces given, 3 expected"):
        install(spec, root, pieces[:2])
    # from packages: every missing one is named, with the command that installs them
    with pytest.raises(UserError) as info:
        install(spec, root)
    msg = str(info.value)
    assert "tiny-part-001, tiny-part-002, tiny-part-003" in msg and "make models" in msg
    assert _left(root) == []


def test_damaged_installed_folder_is_reported_not_replaced(tmp_path):
    spec, root = _spec(), tmp_path / "models"
    folder = install(spec, root, _pieces(tmp_path, spec))
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(UserError, match="delete .* and reinstall"):
        install(spec, root, pieces=[])
    assert (folder / "model.safetensors").read_bytes() == b"tampered"


def test_cli_one_line_and_exit_2():
    from tests.conftest import run_cli

    proc = run_cli("models", "install", "no-such-model")
    assert proc.returncode == 2
    assert proc.stderr == "error: unknown model 'no-such-model'; packaged: all-mpnet-base-v2\n"


def test_resolution_by_name(tmp_path, monkeypatch):
    """Both names map to the installed folder; without it, to the hub name."""
    from embedbench.providers.local import LocalProvider, resolve_model_path

    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    for name in ("sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"):
        assert resolve_model_path(name) == name
    folder = tmp_path / "all-mpnet-base-v2"
    for rel in MPNET.files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"")
    for name in ("sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"):
        assert resolve_model_path(name) == str(folder)
    assert LocalProvider("all-mpnet-base-v2").model == "sentence-transformers/all-mpnet-base-v2"
    assert resolve_model_path("sentence-transformers/other") == "sentence-transformers/other"


def test_absent_model_offline_says_how_to_install(tmp_path, monkeypatch):
    from embedbench.providers.local import LocalProvider

    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(UserError, match="make models. installs it offline"):
        LocalProvider("all-mpnet-base-v2").embed_batch(["a text"], "document")


@needs_mpnet
def test_installed_mpnet_verifies_and_embeds_offline():
    """The installed folder matches every checksum; the provider loads it offline and
    returns unit 768-d vectors (a few texts only)."""
    from embedbench.providers.local import LocalProvider

    verify(MPNET, installed_path(MPNET.hub))
    provider = LocalProvider("sentence-transformers/all-mpnet-base-v2")
    assert provider.known_dim() == 768
    texts = ["A man is playing a guitar.", "A person plays an instrument.", "Stocks fell."]
    vectors = provider.embed_batch(texts, "document").vectors
    assert vectors.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = vectors @ vectors.T
    assert cos[0, 1] > cos[0, 2] + 0.3


@needs_mpnet
def test_corrupted_real_piece_is_refused_before_use(tmp_path):
    """The real pieces with one byte flipped in the last one: refused, nothing left."""
    pieces = models.find_pieces(MPNET)
    bad = tmp_path / "piece.005"
    shutil.copyfile(pieces[-1], bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    root = tmp_path / "models"
    with pytest.raises(UserError, match="all-mpnet-base-v2"):
        install(MPNET, root, [*pieces[:-1], bad])
    assert _left(root) == []
