"""The Dask engine: an embedded LocalCluster by default, or any existing scheduler.

``scheduler=None`` starts a LocalCluster sized to the machine (one single-threaded worker
process per core, memory limit = budget / workers). ``scheduler="tcp://host:8786"`` connects to
an existing cluster (e.g. one started by dask-jobqueue on SLURM); ``scheduler="sync"`` runs
everything in this process (debugging, tiny areas).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..config import EngineOptions, parse_bytes
from ..errors import ConfigError

ENV_SCHEDULER = "SOILSUITE_SCHEDULER"


def n_local_workers(engine: EngineOptions) -> int:
    if engine.n_workers:
        return engine.n_workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(engine: EngineOptions) -> Iterator[object | None]:
    """Yield a ``distributed.Client`` (or None for ``sync``) and close what we started."""
    address = engine.scheduler or os.environ.get(ENV_SCHEDULER)
    if address == "sync":
        yield None
        return
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="20s")
        except OSError as exc:
            raise ConfigError(f"scheduler {address!r}: cannot connect ({exc})") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = n_local_workers(engine)
    budget = parse_bytes(engine.max_memory)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, memory_limit=budget // n,
        dashboard_address=":0", silence_logs=40,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
