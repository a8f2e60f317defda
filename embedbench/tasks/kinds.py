"""The task kinds this harness evaluates: one class each, registered here by mteb type.

Adding a kind: a module with its `Kind` subclass (and resampler), plus its line here.
"""

from __future__ import annotations

from embedbench.errors import UserError
from embedbench.tasks.base import Kind
from embedbench.tasks.bitext import BitextMining
from embedbench.tasks.classification import Classification
from embedbench.tasks.clustering import Clustering
from embedbench.tasks.multilabel import MultilabelClassification
from embedbench.tasks.pair import PairClassification
from embedbench.tasks.retrieval import Reranking, Retrieval
from embedbench.tasks.sts import STS
from embedbench.tasks.summarization import Summarization

KINDS: dict[str, Kind] = {
    k.type: k
    for k in (
        STS(),
        Classification(),
        MultilabelClassification(),
        PairClassification(),
        Clustering(),
        Retrieval(),
        Reranking(),
        BitextMining(),
        Summarization(),
    )
}


def kind_of(task_type: str, name: str = "") -> Kind:
    """The kind of an mteb task type; one `UserError` line for a type not supported."""
    if task_type not in KINDS:
        who = f"task {name} is of type {task_type}" if name else f"unknown kind '{task_type}'"
        raise UserError(f"{who}; supported kinds: {', '.join(KINDS)}")
    return KINDS[task_type]


def resampler(task_type: str, gold: object):
    """The paired-bootstrap resampler of one unit of a task of `task_type`."""
    return kind_of(task_type).resampler(gold)
