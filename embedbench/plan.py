"""What a sweep will cost before it spends anything: texts, calls, tokens, dollars.

Reads the tasks and the cache only; no provider is called. A task without local data
(a benchmark's, offline) is priced from mteb's published descriptive statistics of
its evaluated splits (texts and characters; the row says "estimated"). Token counts are
estimated at 4 characters a token (the usual English rule of thumb; providers
bill their own tokenizer's count, which the manifest records after a run).
Prices are USD per million input tokens, overridable in the config's `prices:`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbench.cache import EmbeddingCache
from embedbench.config import Config
from embedbench.errors import UserError
from embedbench.grid import task_entries
from embedbench.registry import build_provider
from embedbench.tasks import calibration_texts, load_task

CHARS_PER_TOKEN = 4.0
# USD per 1M input tokens, list prices (check your provider's page; override in `prices:`).
DEFAULT_PRICES: dict[str, float] = {
    "amazon.titan-embed-text-v1": 0.10,
    "amazon.titan-embed-text-v2:0": 0.02,
    "amazon.titan-embed-image-v1": 0.80,
    "cohere.embed-english-v3": 0.10,
    "cohere.embed-multilingual-v3": 0.10,
    "embed-english-v3.0": 0.10,
    "embed-multilingual-v3.0": 0.10,
    "embed-v4.0": 0.12,
}


@dataclass(frozen=True)
class PlanRow:
    provider: str
    task: str
    cells: int
    texts: int
    cached: int
    new: int
    calls: int
    tokens: int
    usd: float | None  # None: no price known
    estimated: bool = False  # from mteb's statistics: the task's data is not here


def _stat_texts(stats: dict) -> tuple[int, int]:
    """(unique texts, characters) in one split's mteb descriptive statistics."""
    texts = chars = 0
    for key, value in stats.items():
        if key.endswith("text_statistics") and isinstance(value, dict):
            texts += int(value.get("unique_texts") or 0)
            chars += int(value.get("total_text_length") or 0)
    return texts, chars


def estimate(entry, config: Config) -> tuple[int, int] | None:
    """(texts, characters) a task will embed, from mteb's statistics, or None."""
    import mteb

    try:
        task = mteb.get_task(entry.name)
    except KeyError:
        return None
    stats = task.metadata.descriptive_stats or {}
    splits = entry.splits or list(task.metadata.eval_splits)
    share = len(entry.subsets) / len(task.metadata.hf_subsets) if entry.subsets else 1.0
    texts = chars = 0
    for split in splits:
        t, c = _stat_texts(stats.get(split) or {})
        texts, chars = texts + round(t * share), chars + round(c * share)
    if not texts:
        return None
    avg = chars / texts
    return texts + config.calibration.max_texts, round(chars + avg * config.calibration.max_texts)


def price_of(config: Config, family: str, model: str) -> float | None:
    if family == "local":
        return 0.0
    table = {**DEFAULT_PRICES, **config.prices}
    return table.get(model, table.get(model.split(".", 1)[-1]))


def make_plan(config: Config, data_dir: Path | None, cache: EmbeddingCache) -> list[PlanRow]:
    """One row per provider × task; calls no provider and embeds nothing."""
    rows = []
    tasks: dict[str, Any] = {}
    for entry in task_entries(config)[0]:
        try:
            tasks[entry.name] = load_task(entry, data_dir)
        except UserError:
            if entry.path is not None or (guess := estimate(entry, config)) is None:
                raise
            tasks[entry.name] = guess
    cal = config.calibration
    for spec in config.providers:
        provider = build_provider(spec)
        try:
            price = price_of(config, spec.name, provider.model)
            for name, lt in tasks.items():
                if isinstance(lt, tuple):  # estimated: nothing of it is cached
                    n, chars = lt
                    tokens = math.ceil(chars / CHARS_PER_TOKEN)
                    usd = None if price is None else tokens * price / 1e6
                    calls = math.ceil(n / provider.batch_size)
                    cells = len(config.techniques)
                    rows.append(PlanRow(spec.key, name, cells, n, 0, n, calls, tokens, usd, True))
                    continue
                needed = lt.needed_texts()
                _, cal_texts = calibration_texts(lt, cal.split, cal.max_texts, cal.seed, data_dir)
                needed[lt.purpose] = list(dict.fromkeys(needed[lt.purpose] + cal_texts))
                texts = cached = calls = tokens = 0
                for purpose, group in needed.items():
                    ns, _ = provider.namespace(purpose)
                    hits = cache.get_many(ns, group)
                    new = [t for i, t in enumerate(group) if i not in hits]
                    texts += len(group)
                    cached += len(hits)
                    calls += math.ceil(len(new) / provider.batch_size)
                    tokens += sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in new)
                usd = None if price is None else tokens * price / 1e6
                rows.append(
                    PlanRow(
                        spec.key,
                        name,
                        len(config.techniques),
                        texts,
                        cached,
                        texts - cached,
                        calls,
                        tokens,
                        usd,
                    )
                )
        finally:
            provider.close()
    return rows
