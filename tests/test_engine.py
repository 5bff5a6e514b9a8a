"""The local engine: worker threads in this process (the default) or worker processes (issue 14).

- a composite on the threaded engine writes the same bytes as the in-process (``sync``) run,
  and starts no process;
- the direct reader's kept-open datasets are shared by the threads but lent to one thread at a
  time (a GDAL dataset must not be used by two threads at once), and what threads read through
  them equals the uncached reads;
- the memory budget counts the process once for threads (independent formula below), and the
  processes engine keeps its model;
- ``local_engine``/``$SOILSUITE_ENGINE`` values are checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from soilsuite.sources import fastread as F

MiB = 2**20


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for k in ("SOILSUITE_ENGINE", "SOILSUITE_SCHEDULER", "SOILSUITE_READ_OPEN_FILES", "SOILSUITE_READ_PATH"):
        monkeypatch.delenv(k, raising=False)
    F.close_datasets()
    yield
    F.close_datasets()


# ----------------------------------------------------------------------------- products
@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    """80 x 80 px at 20 m, two months: with 64 px tiles, two tiles (80 x 40)."""
    from soilsuite.sources.simulate import simulate

    return simulate(tmp_path_factory.mktemp("eng") / "archive", size=80, start=dt.date(2021, 4, 1),
                    end=dt.date(2021, 5, 31), seed=7)


def _tifs(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.tif"))}


def test_threaded_engine_writes_the_same_bytes_as_one_process(tiny_archive, tmp_path):
    import json

    import psutil

    from soilsuite.pipeline.composite import composite

    opts = dict(start=dt.date(2021, 4, 1), end=dt.date(2021, 5, 31), crs=f"EPSG:{tiny_archive.epsg}",
                tile_size=64, periods="year")
    composite(tiny_archive.catalog_path, out=tmp_path / "sync", scheduler="sync", **opts)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    seen: set[int] = set()
    stop = threading.Event()

    def watch():  # any process started while the threaded run goes
        while not stop.is_set():
            seen.update(p.pid for p in psutil.Process().children(recursive=True))
            time.sleep(0.02)

    w = threading.Thread(target=watch)
    w.start()
    try:
        composite(tiny_archive.catalog_path, out=tmp_path / "threads", n_workers=2, local_engine="threads", **opts)
    finally:
        stop.set()
        w.join()
    plan = json.loads((tmp_path / "threads" / "run.json").read_text())["plan"]
    assert plan["workers"] == 2 and plan["tiles"] == 2
    assert seen <= before  # no worker process
    a, b = _tifs(tmp_path / "sync"), _tifs(tmp_path / "threads")
    assert len(a) >= 18 and a == b
    assert F._DATASETS.n_kept == 0  # the run closed the files its threads kept open


@pytest.mark.slow
def test_processes_engine_writes_the_same_bytes(tiny_archive, tmp_path):
    from soilsuite.pipeline.composite import composite

    opts = dict(start=dt.date(2021, 4, 1), end=dt.date(2021, 5, 31), crs=f"EPSG:{tiny_archive.epsg}",
                tile_size=64, periods="year")
    composite(tiny_archive.catalog_path, out=tmp_path / "sync", scheduler="sync", **opts)
    composite(tiny_archive.catalog_path, out=tmp_path / "proc", n_workers=2, local_engine="processes", **opts)
    assert _tifs(tmp_path / "sync") == _tifs(tmp_path / "proc")


def test_local_cluster_kind(monkeypatch):
    """threads: one in-process worker with a thread per worker and the whole budget as its
    memory limit; processes: single-threaded worker processes with a share each."""
    import distributed

    from soilsuite.config import EngineOptions
    from soilsuite.pipeline.cluster import dask_client

    calls = []

    class Fake:
        def __init__(self, **kw):
            calls.append(kw)

        def close(self):
            pass

    monkeypatch.setattr(distributed, "LocalCluster", Fake)
    monkeypatch.setattr(distributed, "Client", lambda c: c)
    with dask_client(EngineOptions(max_memory="2GB", n_workers=2), n_tasks=4):
        assert F._READER_THREADS[0] == 2  # the kept-open limit grows with the threads
    assert F._READER_THREADS[0] == 1
    with dask_client(EngineOptions(max_memory="2GB", n_workers=2, local_engine="processes"), n_tasks=4):
        pass
    monkeypatch.setenv("SOILSUITE_ENGINE", "processes")
    with dask_client(EngineOptions(max_memory="2GB", n_workers=2), n_tasks=4):
        pass
    t, p, env = calls
    assert (t["processes"], t["n_workers"], t["threads_per_worker"], t["memory_limit"]) == (False, 1, 2, 2e9)
    assert (p["processes"], p["n_workers"], p["threads_per_worker"]) == (True, 2, 1)
    assert p["memory_limit"] == (2e9 - 400 * MiB) // 2
    assert env["processes"] is True


def test_engine_value_checked(monkeypatch):
    from soilsuite.errors import ConfigError
    from soilsuite.pipeline.cluster import resolve_local_engine

    assert resolve_local_engine() == "threads"
    assert resolve_local_engine("processes") == "processes"
    monkeypatch.setenv("SOILSUITE_ENGINE", "fibers")
    with pytest.raises(ConfigError, match=r"\$SOILSUITE_ENGINE: expected one of threads, processes, got 'fibers'"):
        resolve_local_engine()


# ----------------------------------------------------------------------------- memory budget
def _expected_side(share: float, base: float, n_obs: int) -> int:
    bpp = n_obs * 51 + 336 + 600  # bytes per tile pixel, no periods (docs/cluster.md)
    return max(64, min(int(math.sqrt(0.7 * (share - base) / bpp) // 64 * 64), 8192))


@pytest.mark.parametrize(("engine", "read_path", "side"),
                         [("threads", "auto", 384), ("threads", "general", 448),
                          ("processes", "auto", 320), ("processes", "general", 384)])
def test_budget_counts_the_process_once_for_threads(tmp_path, engine, read_path, side):
    """2GB, 2 workers, 20 observations on a 1000 px grid: threads share one process (main 400
    MiB + worker 350 MiB + 120 MiB of files kept open, once), processes each hold their own."""
    from odc.geo.geobox import GeoBox

    from soilsuite.pipeline.composite import build_config
    from soilsuite.pipeline.plan import plan_run

    cfg = build_config(source=str(tmp_path / "catalog.json"), start="2021-01-01", end="2021-12-31",
                       out=tmp_path / "out", max_memory="2GB", n_workers=2, local_engine=engine,
                       read_path=read_path, tile_size=8192)
    geobox = GeoBox.from_bbox((400000, 5800000, 420000, 5820000), "EPSG:32633", resolution=20)
    plan = plan_run(cfg, geobox, 20, [])
    process = 350 * MiB + (120 * MiB if read_path == "auto" else 0)
    if engine == "threads":
        share, base = (2e9 - 400 * MiB - process) // 2, 0
        held = 400 * MiB + process + 2 * side**2 * (20 * 51 + 936) / 0.7
    else:
        share, base = (2e9 - 400 * MiB) // 2, process
        held = 400 * MiB + 2 * (process + side**2 * (20 * 51 + 936) / 0.7)
    assert plan.workers == 2 and plan.memory_per_worker == share
    assert plan.tile_side == _expected_side(share, base, 20) == side
    assert held <= 2e9  # everything the plan holds fits the budget


def test_thread_count_follows_the_budget():
    from soilsuite.pipeline.cluster import threads_for_budget
    from soilsuite.pipeline.tiles import MAIN_PROCESS_BYTES, MIN_TILE_BYTES, WORKER_BASE_BYTES

    n, share = threads_for_budget("16GB", 8)
    assert n == 8 and MAIN_PROCESS_BYTES + WORKER_BASE_BYTES + n * share <= 16e9
    # 1GB: 1e9 - 750 MiB = 213 MB, room for 2 tiles of the least 100 MiB
    assert threads_for_budget("1GB", 8)[0] == int((1e9 - 750 * MiB) // MIN_TILE_BYTES) == 2


# ----------------------------------------------------------------------------- shared datasets
@pytest.fixture()
def cog(tmp_path):
    rng = np.random.default_rng(11)
    a = rng.integers(1, 10000, (256, 256)).astype(np.uint16)
    path = tmp_path / "b.tif"
    with rasterio.open(path, "w", driver="COG", width=256, height=256, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=from_origin(400000, 5800000, 20, 20), blocksize=64) as d:
        d.write(a, 1)
    return str(path), a


def test_a_kept_dataset_is_lent_to_one_thread_at_a_time(cog):
    uri, _ = cog
    holding, release = threading.Event(), threading.Event()
    got = {}

    def hold():
        with F._DATASETS.get(uri) as ds:
            got["a"] = ds
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(10)
    with F._DATASETS.get(uri) as ds:  # the first one is lent: another is opened (and kept)
        got["b"] = ds
    release.set()
    t.join()
    assert got["a"] is not got["b"] and not got["a"].closed
    assert F._DATASETS.n_kept == 2
    with F._DATASETS.get(uri) as ds:  # both free now: one is reused, none opened
        assert ds is got["a"] or ds is got["b"]
    assert F._DATASETS.n_kept == 2
    F.close_datasets()
    assert got["a"].closed and got["b"].closed and F._DATASETS.n_kept == 0


def test_threads_reading_through_kept_datasets_equal_uncached_reads(cog, monkeypatch):
    """8 threads read random windows of one file at once through the kept datasets; no dataset
    is ever in two threads' hands at the same time, and every array equals a plain read."""
    from odc.geo.geobox import GeoBox
    from odc.loader.types import RasterLoadParams

    uri, a = cog
    params = RasterLoadParams("uint16", fill_value=0, resampling="average")
    in_use: dict[int, int] = {}
    clash = []
    lock = threading.Lock()
    paste = F._paste

    def watched(rdr, *args, **kw):
        with lock:
            if id(rdr) in in_use:
                clash.append(id(rdr))
            in_use[id(rdr)] = threading.get_ident()
        try:
            time.sleep(0.001)
            return paste(rdr, *args, **kw)
        finally:
            with lock:
                in_use.pop(id(rdr), None)

    monkeypatch.setattr(F, "_paste", watched)
    rng = np.random.default_rng(3)
    windows = [tuple(int(v) for v in rng.integers(0, 200, 2)) + tuple(int(v) for v in rng.integers(8, 56, 2))
               for _ in range(160)]
    errors = []

    def work(part):
        try:
            for y, x, h, w in part:
                gb = GeoBox((h, w), from_origin(400000 + 20 * x, 5800000 - 20 * y, 20, 20), "EPSG:32633")
                roi, pix = F._read(uri, 1, gb, params)
                np.testing.assert_array_equal(pix, a[y:y + h, x:x + w])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(windows[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not clash
    assert 1 <= F._DATASETS.n_kept <= 8  # shared: at most one per thread, not one per read
