"""The Dask engine: an embedded LocalCluster by default, or any existing scheduler.

``scheduler=None`` starts a LocalCluster sized to the machine. Its kind is the *local engine*
(``local_engine``, ``--engine``, ``$SOILSUITE_ENGINE``):

- ``threads`` (default): one worker **in this process** with one thread per core (the tile
  kernels are numba ``nogil``, GDAL decodes without the GIL, the kept-open files are one pool
  per process, each dataset lent to one thread at a time), memory limit = the whole budget: no second interpreter to start, import and feed
  (issue 14: on the bench archive two worker processes cost 1.6-2x the CPU of one);
- ``processes``: one single-threaded worker process per core, memory limit = budget / workers
  (the engine before issue 14).

``scheduler="tcp://host:8786"`` connects to an existing cluster (e.g. one started by
dask-jobqueue on SLURM; unchanged by the local engine); ``scheduler="sync"`` runs everything in
this process (debugging, tiny areas), as does a local run of a single task or a single worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..config import EngineOptions
from ..errors import ConfigError
from .tiles import (
    MAIN_PROCESS_BYTES,
    MIN_TILE_BYTES,
    WORKER_BASE_BYTES,
    _bytes,
    worker_base_bytes,
    worker_share,
    workers_for_budget,
)

ENV_SCHEDULER = "SOILSUITE_SCHEDULER"
#: Kinds of the embedded local cluster (``local_engine``, ``--engine``): worker threads in this
#: process, or worker processes.
LOCAL_ENGINES = ("threads", "processes")
#: Environment variable read when no ``local_engine`` is given.
ENV_ENGINE = "SOILSUITE_ENGINE"
#: The default local engine, chosen by measurement (docs/performance.md, "Two workers").
DEFAULT_ENGINE = "threads"


def resolve_local_engine(local_engine: str | None = None) -> str:
    """The local engine: ``local_engine`` if given, else ``$SOILSUITE_ENGINE``, else
    :data:`DEFAULT_ENGINE` (``"threads"``).

    Raises
    ------
    ConfigError
        A value that is not one of :data:`LOCAL_ENGINES`, naming where it came from.
    """
    from ..errors import choice_or_env

    return choice_or_env(local_engine, ENV_ENGINE, DEFAULT_ENGINE, LOCAL_ENGINES, "--engine")


def _engine_kind(engine: EngineOptions) -> str:
    return resolve_local_engine(getattr(engine, "local_engine", None))


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def n_local_workers(engine: EngineOptions) -> int:
    """Workers of the local cluster (threads or processes, :func:`resolve_local_engine`):
    ``n_workers``, else as many cores as the budget allows.

    Raises :class:`ConfigError` if the request exceeds this machine (see :func:`check_machine`).
    """
    check_machine(engine)
    if _engine_kind(engine) == "threads" and not (engine.scheduler or os.environ.get(ENV_SCHEDULER)):
        most, _ = threads_for_budget(engine.max_memory, engine.n_workers or _cores(),
                                     worker_base_bytes(engine.read_path))
    else:
        most, _ = workers_for_budget(engine.max_memory, engine.n_workers or _cores(),
                                     worker_base_bytes(engine.read_path))
    if engine.n_workers and engine.n_workers > most:
        raise ConfigError(
            f"--workers {engine.n_workers} do not fit in --max-memory {engine.max_memory} "
            f"(at most {most} worker(s)); raise the budget or use fewer workers"
        )
    return engine.n_workers or most


def thread_share(max_memory: str | int, n_threads: int, base_bytes: int = WORKER_BASE_BYTES) -> int:
    """Bytes of the budget for the tile of each of ``n_threads`` worker threads of the threaded
    engine: the budget less this one process (:data:`~soilsuite.pipeline.tiles.MAIN_PROCESS_BYTES`
    and ``base_bytes``, the worker's resident size, :func:`~soilsuite.pipeline.tiles.worker_base_bytes`:
    Python, numpy, numba, GDAL, Dask and the files the direct read path keeps open, which the
    threads share), shared equally."""
    return int((_bytes(max_memory) - MAIN_PROCESS_BYTES - base_bytes) // max(1, n_threads))


def threads_for_budget(max_memory: str | int, cores: int, base_bytes: int = WORKER_BASE_BYTES) -> tuple[int, int]:
    """Worker threads (<= ``cores``) of the threaded engine and each one's share of the budget
    (:func:`thread_share` with the process's ``base_bytes``; a thread needs at least
    :data:`~soilsuite.pipeline.tiles.MIN_TILE_BYTES` for its tile).

    Raises
    ------
    ConfigError
        The budget cannot hold this process and one tile (the same least budget as
        :func:`~soilsuite.pipeline.tiles.workers_for_budget`).
    """
    workers_for_budget(max_memory, 1)  # the same refusal of a budget too small for anything
    usable = thread_share(max_memory, 1, base_bytes)
    n = int(max(1, min(cores, usable // MIN_TILE_BYTES)))
    return n, thread_share(max_memory, n, base_bytes)


def local_sizing(engine: EngineOptions, source: str | None = None) -> tuple[int, int, int]:
    """``(workers, share, base)`` of a run on ``engine``: workers running tiles at the same time
    (threads or processes), each one's share of the budget (bytes; a process's Dask memory
    limit) and what of that share is taken before its tile (bytes: the tile side is computed
    from the rest, :func:`~soilsuite.pipeline.tiles.tile_side_for_share`).

    - worker processes (``local_engine="processes"``, a remote scheduler): the budget less the
      main process, shared; each share holds a process
      (:func:`~soilsuite.pipeline.tiles.worker_base_bytes`) and its tile;
    - worker threads (the default local engine): the budget less this one process (main +
      worker's resident size, counted once: the threads share the libraries, the open files
      and GDAL's block cache), shared; each share holds one tile (base 0);
    - one worker (``n_workers=1``, ``scheduler="sync"``): runs in this process, as one worker
      process's share of the budget.
    """
    n = n_local_workers(engine)
    address = engine.scheduler or os.environ.get(ENV_SCHEDULER)
    if address == "sync":
        n = 1
    base = worker_base_bytes(engine.read_path, source)
    if not address and n > 1 and _engine_kind(engine) == "threads":
        return n, thread_share(engine.max_memory, n, base), 0
    return n, worker_share(engine.max_memory, n), base


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

    Otherwise, without an address, a LocalCluster of the local engine
    (:func:`resolve_local_engine`): ``threads`` (default) is one worker in this process with
    ``n_workers`` threads (``processes=False``; memory limit the whole budget, the process's
    size; the direct reader's kept-open files are shared by the threads, one thread at a time
    per dataset, and closed when the cluster closes); ``processes`` is ``n_workers``
    single-threaded worker processes with ``memory_per_worker`` each.

    Parameters
    ----------
    engine : EngineOptions
        Scheduler address (or ``sync``), budget, worker count and local engine.
    n_workers, memory_per_worker : int, optional
        Workers (threads or processes) and memory limit per worker process (bytes) of the local
        cluster, as planned once for the run (:class:`soilsuite.pipeline.plan.RunPlan`);
        default: derived from ``engine`` (:func:`n_local_workers`,
        :func:`~soilsuite.pipeline.tiles.worker_share`).
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

    threads = _engine_kind(engine) == "threads"
    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": 0.98}):
        if threads:  # one worker in this process, a thread per tile in flight; its memory is the run's
            from ..sources import fastread

            fastread.set_reader_threads(n)  # the open-file limit is shared by the threads
            cluster = LocalCluster(
                n_workers=1, threads_per_worker=n, processes=False, memory_limit=_bytes(engine.max_memory),
                dashboard_address=":0", silence_logs=40,
            )
        else:
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
        if threads:
            fastread.close_all_datasets()  # the files the worker threads kept open
            fastread.set_reader_threads(1)
