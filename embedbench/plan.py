"""What a sweep will cost before it spends anything: texts, calls, tokens, dollars.

Reads the tasks and the cache only; no provider is called. Token counts are
estimated at 4 characters a token (the usual English rule of thumb; providers
bill their own tokenizer's count, which the manifest records after a run).
Prices are USD per million input tokens, overridable in the config's `prices:`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from embedbench.cache import EmbeddingCache
from embedbench.config import Config
from embedbench.registry import build_provider
from embedbench.tasks import load_task

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


def price_of(config: Config, family: str, model: str) -> float | None:
    if family == "local":
        return 0.0
    table = {**DEFAULT_PRICES, **config.prices}
    return table.get(model, table.get(model.split(".", 1)[-1]))


def make_plan(config: Config, data_dir: Path | None, cache: EmbeddingCache) -> list[PlanRow]:
    """One row per provider × task; calls no provider and embeds nothing."""
    rows = []
    tasks = {name: load_task(name, data_dir) for name in config.tasks}
    cal = config.calibration
    for spec in config.providers:
        provider = build_provider(spec)
        try:
            price = price_of(config, spec.name, provider.model)
            for name, lt in tasks.items():
                needed = lt.needed_texts()
                cal_texts = lt.calibration_texts(cal.split, cal.max_texts, cal.seed)
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
