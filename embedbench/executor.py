"""Where evaluation jobs run: in this process, threads, processes, or a dask cluster.

Jobs are self-contained (see `evaluate.EvalJob`), so every joblib backend can run
them; providers are only ever called by the driver, so embedding fetches stay
rate-limited per provider however many workers evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from embedbench.config import Executor
from embedbench.errors import UserError
from embedbench.evaluate import EvalJob, run_job
from embedbench.records import EvalRecord


def run_jobs(jobs: Sequence[EvalJob], executor: Executor) -> Iterator[EvalRecord]:
    """Run `jobs` and yield each record as it finishes (order may differ)."""
    if not jobs:
        return
    if executor.backend == "sequential" or (len(jobs) == 1 and executor.backend != "dask"):
        for job in jobs:
            yield run_job(job)
        return
    from joblib import Parallel, delayed, parallel_config

    with ExitStack() as stack:
        if executor.backend == "dask":
            stack.enter_context(_dask_client(executor))
            stack.enter_context(parallel_config(backend="dask"))
            runner = Parallel(n_jobs=-1, return_as="generator")
        else:
            prefer = "threads" if executor.backend == "threads" else "processes"
            runner = Parallel(
                n_jobs=executor.n_jobs, prefer=prefer, return_as="generator_unordered"
            )
        yield from runner(delayed(run_job)(job) for job in jobs)


@contextmanager
def _dask_client(executor: Executor) -> Iterator[object]:
    """A client of the configured scheduler, or of a LocalCluster started (and stopped) here."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError(
            "executor.backend: 'dask' needs dask.distributed (pip install 'embedbench[dask]')"
        ) from None
    if executor.address:
        try:
            client = Client(executor.address, timeout="30s")
        except OSError as e:
            raise UserError(
                f"executor.address: cannot reach dask scheduler {executor.address} ({e})"
            ) from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=executor.n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
