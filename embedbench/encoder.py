"""The MTEB encoder that serves one technique's decoded vectors.

mteb hands `encode` batches of texts; the encoder looks the float vectors up
(fetched once, through the cache), passes them through the fitted technique's
packed codes and back (`Technique.roundtrip`), and L2-normalises them the same
way for the float baseline and every code. `similarity` and
`similarity_pairwise` are cosine on the decoded codes: for binary codes that is
1 - 2·hamming/d, so rankings are exactly a Hamming index's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedbench.quantize import Technique

# what mteb's ModelMeta records and a model mteb does not know (an API model) does not say
NOT_STATED = (
    "loader release_date languages n_parameters memory_usage_mb max_tokens license open_weights "
    "public_training_code public_training_data training_datasets"
).split()

Lookup = Callable[[list[str], Any], np.ndarray]  # (texts, prompt_type) -> float32 n × d


def l2_normalize(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def model_meta(
    model_name: str, provider: str, technique: Technique, normalize: bool, embed_dim: int | None
):
    """mteb ModelMeta for one (provider model, technique) run, told apart by experiment kwargs."""
    import mteb
    from mteb.models.model_meta import ModelMeta

    try:
        meta = mteb.get_model_meta(model_name)
    except (KeyError, ValueError):
        name = model_name if "/" in model_name else f"{provider.split(':')[0]}/{model_name}"
        fields = dict.fromkeys(NOT_STATED, None)
        fields |= {"revision": "api", "framework": [], "similarity_fn_name": "cosine"}
        meta = ModelMeta(name=name, embed_dim=embed_dim, use_instructions=False, **fields)
    kwargs = {"provider": provider, "technique": technique.spec, "normalize": normalize}
    return meta.model_copy(update={"experiment_kwargs": kwargs})


class TechniqueEncoder:
    """An mteb `EncoderProtocol` serving `technique`'s decoded vectors."""

    def __init__(self, lookup: Lookup, technique: Technique, meta: Any, normalize: bool = True):
        self.lookup = lookup
        self.technique = technique
        self.normalize = normalize
        self._meta = meta

    @property
    def mteb_model_meta(self):
        return self._meta

    def encode(
        self,
        inputs,
        *,
        task_metadata,
        hf_split: str,
        hf_subset: str,
        prompt_type=None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = [t for batch in inputs for t in batch["text"]]
        return self.serve(self.lookup(texts, prompt_type))

    def serve(self, X: np.ndarray) -> np.ndarray:
        """Float vectors → the technique's decoded vectors, normalised as configured."""
        Y = self.technique.roundtrip(X)
        return l2_normalize(Y) if self.normalize else Y

    def similarity(self, e1, e2) -> np.ndarray:
        """Cosine of every pair (n1 × n2); of two single vectors, one number
        (Summarization passes one machine and one human summary at a time)."""
        e1, e2 = np.asarray(e1, np.float32), np.asarray(e2, np.float32)
        out = l2_normalize(np.atleast_2d(e1)) @ l2_normalize(np.atleast_2d(e2)).T
        return out[0, 0] if e1.ndim == e2.ndim == 1 else out

    def similarity_pairwise(self, e1, e2) -> np.ndarray:
        a, b = l2_normalize(np.asarray(e1, np.float32)), l2_normalize(np.asarray(e2, np.float32))
        return np.einsum("ij,ij->i", a, b)
