"""Every touch of mteb's private internals, in one place.

Each helper either falls back to public behaviour when the internal changes, or
feeds a number that is checked against mteb's own: every prediction set a kind reads
back must reproduce mteb's main score (`Kind.consistent`), so a change in any of
these internals stops the run with a one-line error instead of a wrong figure.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np


def reseed(task: Any) -> None:
    """Reset the task's random state as mteb's `AbsTask.__init__` sets it, so every
    evaluation of one task object draws the same samples (clustering bootstrap sets)."""
    try:
        from mteb._set_seed import _set_seed

        task.rng_state, task.np_rng = _set_seed(task.seed)
    except ImportError:  # public fallback: the same two generators
        task.rng_state, task.np_rng = random.Random(task.seed), np.random.default_rng(task.seed)


def undersampled_rows(task: Any, train: Any) -> list[int] | None:
    """The union of the training rows mteb's classification experiments pick (mteb's own
    sampler), or None when that private method changed (then: the whole train split)."""
    try:
        sim, chosen = None, set()
        for i in range(task.n_experiments):
            _, sim, picked = task._undersample_data(train, i, sim)
            chosen.update(picked)
        return sorted(chosen)
    except (AttributeError, TypeError, ValueError):
        return None


def model_texts(dataset: Any, task_metadata: Any, prompt_type: Any) -> list[str]:
    """The strings mteb's encoder path hands `encode` for a retrieval corpus or query set.

    Built with mteb's own dataloader (as `SearchEncoderWrapper` does): a document is
    `(title + " " + text).strip()`, a query its text plus any instruction. A change
    here shows up as texts the prefetch missed (fetched on demand) and as vectors a
    technique job lacks (a one-line error), never as a wrong score.
    """
    from mteb._create_dataloaders import create_dataloader

    if len(dataset) == 0:
        return []
    loader = create_dataloader(
        dataset, task_metadata=task_metadata, prompt_type=prompt_type, batch_size=4096
    )
    return [t for batch in loader for t in batch["text"]]


def clustering_draws(task: Any, sizes: list[tuple[Any, int]]) -> dict[Any, dict[str, Any]]:
    """Replay mteb's clustering samples: per unit (in evaluation order, `sizes` gives each
    unit's split size), the documents embedded and the documents of each bootstrap set.

    mteb draws them from `task.rng_state` (reset by `reseed` before every evaluation):
    `sample` of the split when `max_document_to_embed` / `max_fraction_of_documents_to_embed`
    is set, then `choices(k=max_documents_per_cluster)` per set, units in order.
    Reproducing v_measure from these draws is checked for every prediction set.
    """
    rng = random.Random(task.seed)
    out = {}
    for unit, n in sizes:
        docs: list[int] = list(range(n))
        if task.max_document_to_embed is not None or (
            task.max_fraction_of_documents_to_embed is not None
        ):
            if task.max_fraction_of_documents_to_embed is not None:
                k = int(task.max_fraction_of_documents_to_embed * n)
            else:
                k = int(task.max_document_to_embed)
            docs = rng.sample(range(n), k=min(n, k))
        sets = [
            [docs[i] for i in rng.choices(range(len(docs)), k=task.max_documents_per_cluster)]
            for _ in range(task.n_clusters)
        ]
        out[unit] = {"docs": docs, "sets": sets}
    return out


def bitext_columns(task: Any) -> list[str]:
    """The two text columns of a (non-parallel) bitext mining subset."""
    if getattr(task, "parallel_subsets", False):
        from embedbench.errors import UserError

        raise UserError(f"task {task.metadata.name}: parallel bitext subsets are not supported")
    pairs = getattr(task, "_DEFAULT_PAIR", [("sentence1", "sentence2")])
    return [c for pair in pairs for c in pair]


def multilabel_eval_split(task: Any, ds: Any, split: str) -> Any:
    """The test items mteb's multilabel evaluator scores: the split, or (over
    `max_eval_samples`) mteb's own stratified subsample of it, seeded as mteb seeds it."""
    if task.max_eval_samples is None or len(ds) <= task.max_eval_samples:
        return ds
    from datasets import DatasetDict
    from mteb.abstasks.abstask import _multilabel_subsampling

    return _multilabel_subsampling(
        DatasetDict({split: ds}),
        seed=task.seed,
        splits=[split],
        label=task.label_column_name,
        n_samples=task.max_eval_samples,
    )[split]
