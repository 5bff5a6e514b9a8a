"""Benchmark: the tile loader's read paths against the raw decode limit, and the tile layout.

On the bench archive of ``bench_composite.py`` (``--size`` x ``--size`` px at 20 m, ``--dates``
dates, two overlapping MGRS tiles, DEFLATE COGs with 256 px blocks), every figure is the time to
load the whole grid tile by tile as the composite does (10 bands on the tile, SCL on the tile
plus the cloud-dilation halo), discarding the arrays; medians of interleaved repeats, and the
ratio to the raw decode limit (``bench_decode.py``: every needed COG block decoded once, one
thread, no warp). Modes:

- ``general``: odc-stac (``read_path="general"``), one thread;
- ``fast``: direct window reads (``sources/fastread.py``, the default), one thread;
- ``fast GDAL_NUM_THREADS=ALL_CPUS``, ``fast GDAL_CACHEMAX=512MB``: GDAL settings;
- ``fast, 2 reader threads``: a thread pool of readers in one process;
- ``fast, 2 processes``: two processes over the tiles, one reader thread each;
- ``fast, tile side N``: the per-tile overhead (``--sides``).

With ``--composite``: the whole ``soilsuite composite`` command (subprocess, peak RSS of the
process tree) with ``--workers 1`` and ``--workers 2``, each with the default (fast) and the
general read path, interleaved; with ``--area4x`` also on the 10 m grid (4x the pixels).
Usage::

    .venv/bin/python bench/bench_read.py [--size 600] [--dates 30] [--repeat 3] [--composite] [--area4x]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

MB = 2**20


def _setup(archive: Path, resolution: float = 20.0):
    import bench_composite as B

    from soilsuite.pipeline import composite as C
    from soilsuite.sources import stac as S

    cfg = C.build_config(source=str(archive / "catalog.json"), start=B.START, end=B.START + dt.timedelta(days=3650),
                         out=Path("unused"), resolution=resolution)
    items = C.select_items(cfg)[1].items
    return cfg, items, S.resolve_assets(items), C.target_geobox(cfg, items)


def _load_tiles(args) -> tuple[int, float]:
    """Load tiles (bands on the tile, SCL with the halo) as ``load_tile_inputs`` does; returns
    the bytes loaded and the CPU seconds of this process spent."""
    archive, side, read_path, threads, env, which = args
    import rasterio

    from soilsuite.pipeline import composite as C
    from soilsuite.pipeline.tiles import plan_tiles
    from soilsuite.sentinel2 import BANDS
    from soilsuite.sources import fastread as F

    cfg, items, assets, gb = _setup(archive)
    halo = cfg.mask.dilation_px // 2
    tiles = plan_tiles(gb, side)
    if which is not None:
        tiles = [t for k, t in enumerate(tiles) if k % which[1] == which[0]]
    n, c0 = 0, time.process_time()
    env = dict(env)
    keep = env.pop(F.OPEN_FILES_ENV, "0")
    os.environ[F.OPEN_FILES_ENV] = keep
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **{"GDAL_CACHEMAX": 64 * MB, **env}):
            for t in tiles:
                its = C._items_over(items, t.geobox.pad(halo))
                for bands, grid in ((BANDS, t.geobox), (("SCL",), t.geobox.pad(halo))):
                    arrs = F.load_arrays(its, grid, assets, bands=bands, read_path=read_path, threads=threads)
                    n += sum(a.nbytes for a in arrs.values())
    finally:
        F.close_datasets()
    return n, time.process_time() - c0


def read_modes(sides: list[int], side: int) -> dict[str, dict]:
    """Name -> how to load: tile side, read path, reader threads, GDAL env, processes."""
    m = {
        "general (odc-stac)": dict(side=side, path="general"),
        "fast": dict(side=side, path="auto"),
        "fast GDAL_NUM_THREADS=ALL_CPUS": dict(side=side, path="auto", env={"GDAL_NUM_THREADS": "ALL_CPUS"}),
        "fast GDAL_CACHEMAX=512MB": dict(side=side, path="auto", env={"GDAL_CACHEMAX": 512 * MB}),
        "fast, 2 reader threads": dict(side=side, path="auto", threads=2),
        "fast, 2 processes": dict(side=side, path="auto", procs=2),
    }
    for s in sides:
        m[f"fast, tile side {s}"] = dict(side=s, path="auto")
        m[f"fast, tile side {s}, files kept open"] = dict(side=s, path="auto", env={"SOILSUITE_READ_OPEN_FILES": "2048"})
    return m


def run_mode(archive: Path, mode: dict, pool: ProcessPoolExecutor | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process) of one load of the grid."""
    args = (archive, mode["side"], mode["path"], mode.get("threads", 1), mode.get("env", {}))
    t = time.perf_counter()
    if mode.get("procs"):
        k = mode["procs"]
        cpu = sum(c for _, c in pool.map(_load_tiles, [(*args, (i, k)) for i in range(k)]))
    else:
        cpu = _load_tiles((*args, None))[1]
    return time.perf_counter() - t, cpu


def composite_cmd(archive: Path, out: Path, workers: int, read_path: str, resolution: float = 20.0,
                  max_memory: str = "2GB") -> list[str]:
    import bench_composite as B

    return [str(Path(sys.executable).with_name("soilsuite")), "composite", str(archive / "catalog.json"),
            "--start", str(B.START), "--end", str(B.START + dt.timedelta(days=3650)), "--out", str(out),
            "--overwrite", "--max-memory", max_memory, "--resolution", str(resolution), "--periods", "year",
            "--workers", str(workers), "--read-path", read_path, "--quiet"]


def run_composite(cmd: list[str]) -> dict:
    import bench_composite as B

    t = time.perf_counter()
    with B.TreeCPU() as tree:  # the whole tree, Dask's forkserver and workers included
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with B.PeakRSS(proc.pid) as mon:
            log, _ = proc.communicate()
        wall = time.perf_counter() - t
    cpu = tree.seconds
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    rec = json.loads((Path(cmd[cmd.index("--out") + 1]) / "run.json").read_text())
    s = rec["summary"]
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss": mon.peak, "tiles": s["tiles"],
            "tile_side": s["tile_side"], "pixels": s["shape"][0] * s["shape"][1], "workers": rec["plan"]["workers"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--side", type=int, default=None, help="tile side of the read modes (default: the plan's, 1 worker)")
    ap.add_argument("--sides", default="128,256,384,512", help="tile sides for the per-tile overhead")
    ap.add_argument("--composite", action="store_true", help="also the whole command, 1 and 2 workers")
    ap.add_argument("--area4x", action="store_true", help="with --composite: also the 10 m grid (4x the pixels)")
    ap.add_argument("--skip-reads", action="store_true", help="only the composite runs")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    import bench_composite as B
    import bench_decode as D

    folder = ROOT / "bench_out" / f"composite_{a.size}x{a.dates}"
    archive = B.build_archive(folder, a.size, a.dates)
    reads, info = D.needed_reads(archive / "catalog.json", B.START, B.START + dt.timedelta(days=3650))
    cfg, items, assets, gb = _setup(archive)
    side = a.side or min(gb.shape.y, 1024)
    res: dict = {"archive": {"size": a.size, "dates": a.dates}, "info": info, "cores": len(os.sched_getaffinity(0))}
    print(f"archive {a.size} x {a.size} px x {a.dates} dates ({info['observations']} observations, {info['files']} "
          f"asset reads); {res['cores']} cores; medians of {a.repeat} interleaved repeats", flush=True)
    D.decode(reads, threads=2)  # page cache warm
    times: dict[str, list[float]] = {"decode limit, 1 thread": []}
    cpu_limit: list[float] = []
    cpus: dict[str, list[float]] = {}
    modes = {} if a.skip_reads else read_modes([int(s) for s in a.sides.split(",") if s], side)
    times.update({k: [] for k in modes})
    import multiprocessing as mp

    # spawn, not fork: GDAL and rasterio are initialised here already (a forked child can deadlock)
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(int, [0, 0]))  # workers up before timing
        for i in range(a.repeat):
            c0 = time.process_time()
            times["decode limit, 1 thread"].append(D.decode(reads, 1, "1")["seconds"])
            cpu_limit.append(time.process_time() - c0)
            cpus.setdefault("decode limit, 1 thread", []).append(cpu_limit[-1])
            for name, mode in modes.items():
                wall, cpu = run_mode(archive, mode, pool)
                times[name].append(wall)
                cpus.setdefault(name, []).append(cpu)
            print(f"repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()), flush=True)
    limit = statistics.median(times["decode limit, 1 thread"])
    limit_cpu = statistics.median(cpu_limit)
    res["decode_limit_cpu_s"] = limit_cpu
    res["reads"] = {k: {"seconds": statistics.median(v), "runs": v, "ratio_to_decode_1": statistics.median(v) / limit,
                        "cpu_seconds": statistics.median(cpus[k]), "cpu_ratio": statistics.median(cpus[k]) / limit_cpu}
                    for k, v in times.items()}
    print(f"read modes (whole grid, tiles of {side} px unless named; wall, and CPU of all processes):")
    for k, v in res["reads"].items():
        print(f"  {k}: {v['seconds']:.2f} s = {v['ratio_to_decode_1']:.2f}x the 1-thread decode limit; "
              f"CPU {v['cpu_seconds']:.2f} s = {v['cpu_ratio']:.2f}x")

    if a.composite:
        runs = {f"composite --workers {w} --read-path {p}": composite_cmd(archive, folder / f"products_w{w}_{p}", w, p)
                for w in (1, 2) for p in ("auto", "general")}
        if a.area4x:
            for w in (1, 2):
                runs[f"composite 10 m grid (4x px) --workers {w}"] = composite_cmd(
                    archive, folder / f"products_10m_w{w}", w, "auto", resolution=10.0)
        ctimes: dict[str, list[dict]] = {k: [] for k in runs}
        for i in range(a.repeat):
            for name, cmd in runs.items():
                ctimes[name].append(run_composite(cmd))
                r = ctimes[name][-1]
                print(f"  {name}: {r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s CPU, peak RSS {r['peak_rss'] / MB:.0f} MB, "
                      f"{r['tiles']} tiles of {r['tile_side']} px", flush=True)
            print(f"repeat {i + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f} s ({v[-1]['cpu_seconds']:.1f} s CPU)"
                                                   for k, v in ctimes.items()), flush=True)
        res["composite"] = {}
        for name, rs in ctimes.items():
            sec = statistics.median(r["seconds"] for r in rs)
            cpu = statistics.median(r["cpu_seconds"] for r in rs)
            rss = max(r["peak_rss"] for r in rs)
            res["composite"][name] = {"seconds": sec, "cpu_seconds": cpu, "runs": [r["seconds"] for r in rs],
                                      "peak_rss": rss, "workers": rs[0]["workers"],
                                      "tiles": rs[0]["tiles"], "tile_side": rs[0]["tile_side"],
                                      "ratio_to_decode_1": sec / limit, "command": " ".join(runs[name])}
            print(f"{name}: {sec:.1f} s = {sec / limit:.2f}x the 1-thread decode limit, {cpu:.1f} s CPU "
                  f"(= {cpu / limit_cpu:.2f}x the decode limit's CPU), peak RSS {rss / MB:.0f} MB, "
                  f"{rs[0]['workers']} worker(s), {rs[0]['tiles']} tiles of {rs[0]['tile_side']} px")
        c = res["composite"]
        w1, w2 = c["composite --workers 1 --read-path auto"], c["composite --workers 2 --read-path auto"]
        print(f"2 workers / 1 worker: {w2['seconds'] / w1['seconds']:.2f} (target < 1)")
        if a.area4x:
            for w in (1, 2):
                big, base = c[f"composite 10 m grid (4x px) --workers {w}"], c[f"composite --workers {w} --read-path auto"]
                print(f"peak RSS 4x area / 1x, {w} worker(s): {big['peak_rss'] / base['peak_rss']:.2f} (target 0.9-1.1)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
