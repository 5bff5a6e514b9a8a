"""The Dask engine: an embedded LocalCluster by default, or any existing scheduler.

``scheduler=None`` starts a LocalCluster sized to the machine (one single-threaded worker
process per core, memory limit = budget / workers). ``scheduler="tcp://host:8786"`` connects to
an existing cluster (e.g. one started by dask-jobqueue on SLURM); ``scheduler="sync"`` runs
everything in this process (debugging, tiny areas), as does a local run of a single task.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..config import EngineOptions
from ..errors import ConfigError
from .tiles import worker_base_bytes, worker_share, workers_for_budget

ENV_SCHEDULER = "SOILSUITE_SCHEDULER"


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def n_local_workers(engine: EngineOptions) -> int:
    """Worker processes of the local cluster: ``n_workers``, else as many cores as the budget allows.

    Raises :class:`ConfigError` if the request exceeds this machine (see :func:`check_machine`).
    """
    check_machine(engine)
    most, _ = workers_for_budget(engine.max_memory, engine.n_workers or _cores(), worker_base_bytes(engine.read_path))
    if engine.n_workers and engine.n_workers > most:
        raise ConfigError(
            f"--workers {engine.n_workers} do not fit in --max-memory {engine.max_memory} "
            f"(at most {most} worker(s)); raise the budget or use fewer workers"
        )
    return engine.n_workers or most


#: A local cluster may have at most this many worker processes per core (they are single-threaded
#: and partly wait on I/O; more only thrash).
MAX_WORKERS_PER_CORE = 4


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def check_machine(engine: EngineOptions) -> None:
    """Refuse a local-cluster request this machine cannot hold, before any worker is spawned.

    Only for the embedded LocalCluster (no ``scheduler`` address): the memory budget
    (``max_memory``, which covers every worker) must not exceed the physical memory, and
    ``n_workers`` must not exceed ``MAX_WORKERS_PER_CORE`` x cores.

    Raises
    ------
    ConfigError
        Naming the option, the value asked for and what the machine has.
    """
    address = engine.scheduler or os.environ.get(ENV_SCHEDULER)
    if address:  # sync (one process) or a remote cluster: its machines are not ours to judge
        return
    from .tiles import _bytes

    cores, ram = _cores(), _total_memory()
    budget = _bytes(engine.max_memory)
    if budget > ram:
        raise ConfigError(
            f"--max-memory {engine.max_memory} ({budget / 1e9:.1f} GB) exceeds this machine's memory "
            f"({ram / 1e9:.1f} GB); give at most --max-memory {int(ram * 0.8 / 1e9)}GB for a local cluster"
        )
    if engine.n_workers and engine.n_workers > MAX_WORKERS_PER_CORE * cores:
        raise ConfigError(
            f"--workers {engine.n_workers} is too many for this machine ({cores} core(s); at most "
            f"{MAX_WORKERS_PER_CORE * cores} workers, one per core is best)"
        )


@contextlib.contextmanager
def dask_client(engine: EngineOptions, *, n_workers: int | None = None,
                memory_per_worker: int | None = None, n_tasks: int | None = None) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` (or None for ``sync``) and close what we started.

    With ``n_tasks`` <= 1, or a local cluster of one worker (``n_workers`` 1, or a budget that
    fits one), and no scheduler address, no local cluster is started either (None): one worker
    runs the tasks one after the other anyway, and starting its process (Python, Dask, numba,
    GDAL in a new interpreter) costs seconds of CPU (issue 14, ``bench/bench_startup.py``,
    ``bench/bench_overhead.py``); the tasks run in this process, within its worker's share of
    the budget.

    Parameters
    ----------
    engine : EngineOptions
        Scheduler address (or ``sync``), budget and worker count.
    n_workers, memory_per_worker : int, optional
        Worker processes and memory limit per worker (bytes) of the local cluster, as planned
        once for the run (:class:`soilsuite.pipeline.plan.RunPlan`); default: derived from
        ``engine`` (:func:`n_local_workers`, :func:`~soilsuite.pipeline.tiles.worker_share`).
    n_tasks : int, optional
        Tasks the caller will submit, if known.
    """
    address = engine.scheduler or os.environ.get(ENV_SCHEDULER)
    if address == "sync" or (not address and n_tasks is not None and n_tasks <= 1):
        yield None
        return
    n = None
    if not address:
        n = n_workers if n_workers is not None else n_local_workers(engine)
        if n == 1:  # one worker process runs the tasks one after the other, as this process
            yield None  # does; starting it costs more CPU than the tiles' reads (issue 14)
            return
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="20s")
        except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address at all
            raise ConfigError(f"scheduler {address!r}: cannot connect ({exc}); expected 'sync' or an address "
                              f"such as tcp://host:8786 (--scheduler or ${ENV_SCHEDULER})") from exc
        try:
            yield client
        finally:
            client.close()
        return
    per_worker = memory_per_worker if memory_per_worker is not None else worker_share(engine.max_memory, n)
    # Tiles hold their arrays inside the task, not as Dask-managed results: spilling cannot
    # help and pausing a worker near its limit only stalls the run (a small budget made a run
    # 30x slower). The tile size already keeps each worker within budget / n; a worker that
    # still exceeds 98 % of it is restarted and its tile retried.
    import dask

    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.98}):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, memory_limit=per_worker,
            dashboard_address=":0", silence_logs=40,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
