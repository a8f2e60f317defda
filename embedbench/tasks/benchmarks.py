"""mteb benchmarks: `benchmark: "<name>"` in a config adds the benchmark's tasks, each
restricted to the subsets and splits the benchmark evaluates.

Tasks of kinds not evaluated here are left out and named (`expand` returns them), so
a run never silently reports a benchmark it did not fully cover.
"""

from __future__ import annotations

from typing import Any

from embedbench.errors import unknown_name
from embedbench.tasks.kinds import KINDS


def known_benchmarks() -> list[str]:
    import mteb

    return sorted(b.name for b in mteb.get_benchmarks())


def benchmark_tasks(name: str) -> list[Any]:
    """The mteb task objects of benchmark `name` (one `UserError` line if unknown)."""
    import mteb

    try:
        return list(mteb.get_benchmark(name).tasks)
    except (KeyError, ValueError):
        raise unknown_name(
            "benchmark", name, known_benchmarks(), "`embedbench list benchmarks`"
        ) from None


def expand(config: Any) -> tuple[list[Any], list[str]]:
    """(the config's task entries plus its benchmark's, the benchmark tasks left out
    with their kind). An entry listed in `tasks:` overrides the benchmark's."""
    from embedbench.config import TaskSpec

    specs = config.task_specs()
    if not config.benchmark:
        return specs, []
    listed = {s.name for s in specs}
    left_out = []
    for task in benchmark_tasks(config.benchmark):
        name, kind = task.metadata.name, task.metadata.type
        if name in listed:
            continue
        if kind not in KINDS:
            left_out.append(f"{name} ({kind})")
            continue
        subsets = list(task.hf_subsets)
        splits = list(task.eval_splits)
        specs.append(
            TaskSpec(
                name=name,
                subsets=None if subsets == list(task.metadata.hf_subsets) else subsets,
                splits=None if splits == list(task.metadata.eval_splits) else splits,
            )
        )
        listed.add(name)
    return specs, left_out
