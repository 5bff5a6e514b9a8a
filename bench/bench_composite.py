"""Benchmark: the whole ``soilsuite composite`` command against the I/O floor, with peak memory.

Builds (once, cached in ``bench_out/``) a fixed simulated archive: ``--size`` x ``--size`` pixels
at 20 m (default 1000 x 1000; the 10 m bands are 2000 x 2000), ``--dates`` acquisitions (default
40, every 5 days from 2021-03-01), 10 bands + SCL, DEFLATE COGs, seed 11. Then, in one run on the
same machine:

1. **I/O floor**: read and decode the same COGs onto the same 20 m grid with the composite's own
   reader and tiles: its run plan (:func:`soilsuite.pipeline.plan.plan_run`: tile side and
   layout for the same budget, periods and observations), the tile loader's entry point
   (:func:`soilsuite.sources.fastread.load_arrays`: direct reads on the native grid, 10 m bands
   averaged to 20 m, SCL with the dilation halo), on the same embedded Dask cluster, discarding
   the data: what the composite spends before any of its own work.
2. **composite**: the whole command ``soilsuite composite`` (scene filter, tiles, kernels,
   mosaic of 9 products + per-year products, COG overviews, STAC, quicklooks) in a subprocess,
   with the peak resident memory of its whole process tree (main process + Dask workers,
   sampled every 0.1 s with psutil) against the ``--max-memory`` budget.
3. The same command on 4x the pixels (``--area4x``: the same archive composited on a 10 m
   grid, i.e. 2000 x 2000 output pixels, 4x the bench area in pixels) to show that peak memory
   follows the budget, not the area.

Before them, the raw decode limit (``bench_decode.py``: every needed COG block decoded once with
rasterio, no warp, one thread and all cores); the I/O floor and the composite are also reported
as ratios to it (interleaved repeats of the three: ``bench_decode.py --compare``).

Prints wall times, pixel-observations per second (pixels x observations / wall time), the ratio
composite / I/O floor and peak RSS vs budget. Usage::

    .venv/bin/python bench/bench_composite.py [--size 1000] [--dates 40] [--max-memory 2GB] [--area4x]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2021, 3, 1)


def build_archive(folder: Path, size: int, dates: int, seed: int = 11) -> Path:
    """Simulate the bench archive once; reuse it when the same parameters were built before."""
    from soilsuite.sources.simulate import simulate

    end = START + dt.timedelta(days=5 * (dates - 1))
    stamp = folder / "bench-params.json"
    params = {"size": size, "dates": dates, "seed": seed, "start": str(START), "end": str(end)}
    if stamp.exists() and json.loads(stamp.read_text()) == params:
        return folder / "archive"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    simulate(folder / "archive", size=size, start=START, end=end, revisit_days=5, seed=seed, progress=True)
    print(f"simulated the bench archive in {time.perf_counter() - t:.0f} s")
    stamp.write_text(json.dumps(params))
    return folder / "archive"


class TreeCPU:
    """CPU seconds (user + system) of a command's whole process tree, orphans included.

    ``getrusage(RUSAGE_CHILDREN)`` counts a descendant once it is reaped by its parent, and
    the parent's figure includes what that parent reaped. A process whose parent exits first
    (Dask's forkserver and the workers forked from it outlive the command by a moment) is
    re-parented and its CPU would be lost; so this process is made the reaper of its
    descendants' orphans (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``) and, when the command has
    exited, waits for the orphans it adopted. Use::

        with TreeCPU() as cpu:
            subprocess.run(cmd)
        cpu.seconds
    """

    _adopting = False

    @classmethod
    def adopt_orphans(cls) -> None:
        if cls._adopting:
            return
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):  # not Linux: orphans go to init, as before
            pass
        cls._adopting = True

    @staticmethod
    def _cpu() -> float:
        import resource

        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def __enter__(self):
        self.adopt_orphans()
        self.before = {p.pid for p in psutil.Process().children()}
        self.c0 = self._cpu()
        return self

    def __exit__(self, *exc):
        for p in psutil.Process().children():  # orphans adopted meanwhile (not ours from before)
            if p.pid not in self.before:
                try:
                    os.waitpid(p.pid, 0)
                except ChildProcessError:
                    pass
        self.seconds = self._cpu() - self.c0


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


class PeakRSS:
    """Peak summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.1):
        self.proc = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            time.sleep(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _read_tile(args) -> int:
    """I/O floor task: load one tile as the composite's tile loader does (reflectance bands on
    the tile, SCL with the dilation halo, :func:`soilsuite.sources.fastread.load_arrays`); discard it."""
    items, assets, geobox, halo, read_path = args
    from soilsuite.pipeline.composite import gdal_env
    from soilsuite.sentinel2 import BANDS
    from soilsuite.sources.fastread import load_arrays

    n = 0
    with gdal_env():
        for bands, grid in ((BANDS, geobox), (("SCL",), geobox.pad(halo))):
            arrays = load_arrays(items, grid, assets, bands=bands, read_path=read_path)
            n += int(sum(a.nbytes for a in arrays.values()))
    return n


def io_floor(archive: Path, max_memory: str, resolution: float = 20.0) -> dict:
    """Time to read + decode every asset onto the target grid, with the tiles and the reader of
    the composite run of :func:`run_composite` (same budget, ``--periods year``)."""
    from soilsuite.periods import periods_with_data
    from soilsuite.pipeline import composite as C
    from soilsuite.pipeline.cluster import dask_client
    from soilsuite.pipeline.plan import plan_run
    from soilsuite.sources import stac as S

    cfg = C.build_config(source=str(archive / "catalog.json"), start=START, end=START + dt.timedelta(days=3650),
                         out=Path("unused"), resolution=resolution, max_memory=max_memory, periods="year")
    items = C.select_items(cfg)[1].items
    assets = S.resolve_assets(items)
    gb = C.target_geobox(cfg, items)
    meta = S.observation_meta(items, assets)
    periods = [p.label for p in periods_with_data(cfg.periods, cfg.start, cfg.end, meta.dates)]
    with tempfile.TemporaryDirectory() as scratch:  # the plan looks for an interrupted run there
        plan = plan_run(cfg, gb, len(meta.dates), periods, scratch)
    halo = cfg.mask.dilation_px // 2
    tasks = [(C._items_over(items, t.geobox.pad(halo)), assets, t.geobox, halo, cfg.engine.read_path)
             for t in plan.tiles]
    with dask_client(cfg.engine, n_workers=plan.workers, memory_per_worker=plan.memory_per_worker,
                     n_tasks=len(tasks)) as client:  # as the composite's tile stage
        if client is None:  # one worker: the tiles run in this process
            t = time.perf_counter()
            nbytes = sum(map(_read_tile, tasks))
        else:
            client.submit(lambda: 0).result()  # workers up before timing
            t = time.perf_counter()
            nbytes = sum(client.gather(client.map(_read_tile, tasks, pure=False)))
        wall = time.perf_counter() - t
    return {"seconds": wall, "decoded_bytes": nbytes, "tiles": len(tasks), "tile_side": plan.tile_side,
            "pixels": gb.shape.x * gb.shape.y, "observations": len(meta.dates)}


def run_cli(args: list[str]) -> dict:
    """One ``soilsuite`` command in a subprocess: wall s, CPU s of its process tree, peak RSS."""
    cmd = [str(Path(sys.executable).with_name("soilsuite")), *args]
    t = time.perf_counter()
    with TreeCPU() as tree:  # the whole tree, Dask's forkserver and workers included
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with PeakRSS(proc.pid) as mon:
            log, _ = proc.communicate()
        wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    return {"seconds": wall, "cpu_seconds": tree.seconds, "peak_rss": mon.peak, "command": " ".join(cmd)}


def run_composite(archive: Path, out: Path, max_memory: str, resolution: float = 20.0) -> dict:
    """The whole CLI command in a subprocess; wall time, CPU and peak RSS of its process tree."""
    res = run_cli(["composite", str(archive / "catalog.json"), "--start", str(START),
                   "--end", str(START + dt.timedelta(days=3650)), "--out", str(out), "--overwrite",
                   "--max-memory", max_memory, "--resolution", str(resolution), "--periods", "year"])
    summ = json.loads((out / "run.json").read_text())["summary"]
    return {**res, "tiles": summ["tiles"], "tile_side": summ["tile_side"],
            "pixels": summ["shape"][0] * summ["shape"][1], "observations": summ["n_observations"],
            "output_bytes": _dir_bytes(out)}


def decode_limit(archive: Path, repeat: int = 3) -> dict:
    """The raw decode limit of the archive (bench_decode.py): every needed COG block decoded once
    with rasterio, no warp; single thread and all cores, medians of interleaved repeats."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_decode as D

    reads, info = D.needed_reads(archive / "catalog.json", START, START + dt.timedelta(days=3650))
    limits = D.decode_limit(reads, repeat)
    single, multi = D.summary(limits)
    return {"modes": limits, "info": info, "single_s": single, "all_cores_s": multi,
            "lines": D.report_lines(limits, info)}


def run(size: int = 1000, dates: int = 40, max_memory: str = "2GB", area4x: bool = False,
        folder: Path | None = None, verbose: bool = True, decode_repeat: int = 3) -> dict:
    """Build/reuse the archive, measure the I/O floor and the composite; return the figures.

    Returns
    -------
    dict
        ``archive`` (size, dates, bytes), ``io_floor`` and ``composite`` (and ``composite_4x``)
        dicts with ``seconds``; ``composite`` has ``peak_rss`` (bytes) and ``pxobs_per_s``;
        ``ratio_composite_to_io`` and ``budget_bytes``.
    """
    from soilsuite.config import parse_bytes

    folder = folder or ROOT / "bench_out" / f"composite_{size}x{dates}"
    archive = build_archive(folder, size, dates)
    res: dict = {"archive": {"size": size, "dates": dates, "bytes": _dir_bytes(archive), "path": str(archive)},
                 "budget_bytes": parse_bytes(max_memory), "cores": len(os.sched_getaffinity(0))}
    if decode_repeat:
        res["decode"] = decode_limit(archive, decode_repeat)
    res["io_floor"] = io_floor(archive, max_memory)
    res["composite"] = run_composite(archive, folder / "products", max_memory)
    c = res["composite"]
    c["pxobs_per_s"] = c["pixels"] * c["observations"] / c["seconds"]
    res["io_floor"]["pxobs_per_s"] = res["io_floor"]["pixels"] * res["io_floor"]["observations"] / res["io_floor"]["seconds"]
    res["ratio_composite_to_io"] = c["seconds"] / res["io_floor"]["seconds"]
    if "decode" in res:
        d = res["decode"]
        for key in ("io_floor", "composite"):
            res[key]["ratio_to_decode_1"] = res[key]["seconds"] / d["single_s"]
            res[key]["ratio_to_decode_all"] = res[key]["seconds"] / d["all_cores_s"]
    if area4x:
        c4 = run_composite(archive, folder / "products_10m", max_memory, resolution=10.0)
        c4["pxobs_per_s"] = c4["pixels"] * c4["observations"] / c4["seconds"]
        res["composite_4x"] = c4
    if verbose:
        print(report(res))
    return res


def report(res: dict) -> str:
    mb = 2**20
    a, io, c = res["archive"], res["io_floor"], res["composite"]
    lines = [
        f"archive: {a['size']} x {a['size']} px (20 m) x {a['dates']} dates x 10 bands + SCL, "
        f"{a['bytes'] / mb:.0f} MB of DEFLATE COGs; {res['cores']} cores; budget {res['budget_bytes'] / mb:.0f} MB",
        f"I/O floor (read+decode onto the grid, same cluster): {io['seconds']:.1f} s, "
        f"{io['pxobs_per_s'] / 1e6:.2f} M px-obs/s, {io['tiles']} tiles of {io['tile_side']} px",
        f"composite (whole command): {c['seconds']:.1f} s, {c['pxobs_per_s'] / 1e6:.2f} M px-obs/s, "
        f"peak RSS {c['peak_rss'] / mb:.0f} MB ({c['peak_rss'] / res['budget_bytes']:.0%} of budget), "
        f"{c['tiles']} tiles of {c['tile_side']} px",
        f"ratio composite / I/O floor: {res['ratio_composite_to_io']:.2f} (target <= 2)",
    ]
    if "decode" in res:
        d = res["decode"]
        lines[1:1] = ["raw decode limit (bench_decode.py: each needed COG block once, rasterio read, no warp):",
                      *(f"  {x}" for x in d["lines"])]
        lines += [f"ratio {name} / decode limit: {res[key]['ratio_to_decode_1']:.2f}x single thread, "
                  f"{res[key]['ratio_to_decode_all']:.2f}x all cores" + (" (issue 14 target <= 1.5)" if key == "composite" else "")
                  for key, name in (("io_floor", "I/O floor"), ("composite", "composite"))]
    if "composite_4x" in res:
        c4 = res["composite_4x"]
        lines.append(
            f"composite on 4x the pixels ({c4['pixels'] / 1e6:.1f} M px, 10 m grid): {c4['seconds']:.1f} s, "
            f"peak RSS {c4['peak_rss'] / mb:.0f} MB ({c4['peak_rss'] / res['budget_bytes']:.0%} of budget), "
            f"{c4['tiles']} tiles"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dates", type=int, default=40)
    ap.add_argument("--max-memory", default="2GB")
    ap.add_argument("--area4x", action="store_true")
    ap.add_argument("--decode-repeat", type=int, default=3, help="repeats of the decode limit (0: skip it)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    a = ap.parse_args(argv)
    res = run(a.size, a.dates, a.max_memory, a.area4x, decode_repeat=a.decode_repeat)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
