"""Benchmark: the raw decode limit of an archive, and the composite's I/O floor and run against it.

The decode limit is the time to decode every source block a composite needs exactly once, with
GDAL (rasterio ``read()``) and no warping: the least any tool that starts from these COGs must
spend. The needed files are those of the run (same search, scene filter and target grid as
``soilsuite composite``): every band and SCL asset of every kept item over the target grid, each
read on the window of the grid (SCL with the cloud-dilation halo), widened to whole COG blocks.

Measured, interleaved (one repeat of each mode, then the next repeat), medians reported:

- ``decode 1 thread``: one file after the other, ``GDAL_NUM_THREADS=1``;
- ``decode N threads (pool)``: a thread pool of N = cores readers over the files (rasterio
  releases the GIL while GDAL decodes), ``GDAL_NUM_THREADS=1``;
- ``decode GDAL_NUM_THREADS=ALL_CPUS``: one file after the other, GDAL decoding the blocks of a
  read in parallel;
- with ``--compare`` (the bench archive only): the I/O floor of ``bench_composite.py`` (odc-stac
  load onto the grid, tile by tile, on the local Dask cluster) and the whole ``soilsuite
  composite`` command, with their ratios to the decode limit (single thread and all cores).

The OS page cache is warm for every mode (the files are read once before timing), so this is
decode cost, not disk. Usage::

    .venv/bin/python bench/bench_decode.py [--size 600] [--dates 30] [--repeat 3] [--compare]
    .venv/bin/python bench/bench_decode.py --catalog path/to/catalog.json --start 2021-03-01 --end 2021-12-31
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Read:
    """One asset file and the window of it the run needs (whole COG blocks)."""

    href: str
    window: tuple[int, int, int, int]  # col_off, row_off, width, height


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def needed_reads(catalog: str | Path, start: dt.date, end: dt.date, resolution: float = 20.0,
                 bbox=None) -> tuple[list[Read], dict]:
    """The asset files (and block-aligned windows) a composite of this source and window reads.

    Same search, scene filter and target grid as the composite (``pipeline.composite``); SCL
    windows include the cloud-dilation halo.
    """
    import rasterio
    from rasterio.windows import from_bounds

    from soilsuite.pipeline import composite as C
    from soilsuite.sentinel2 import BANDS
    from soilsuite.sources import stac as S

    cfg = C.build_config(source=str(catalog), start=start, end=end, out=Path("unused"), resolution=resolution,
                         bbox=bbox)
    items = C.select_items(cfg)[1].items
    assets = S.resolve_assets(items)
    gb = C.target_geobox(cfg, items)
    halo = cfg.mask.dilation_px // 2
    reads = []
    for band in (*BANDS, "SCL"):
        grid = gb.pad(halo) if band == "SCL" else gb
        for it in C._items_over(items, grid):
            href = it.assets[assets[band]].get_absolute_href()
            with rasterio.open(href) as src:
                bb = grid.extent.to_crs(src.crs).boundingbox
                w = from_bounds(*bb, transform=src.transform)
                bh, bw = src.block_shapes[0]
                # whole COG blocks covering the window, clipped to the file
                c0 = max(0, math.floor(w.col_off + 1e-6) // bw * bw)
                r0 = max(0, math.floor(w.row_off + 1e-6) // bh * bh)
                c1 = min(src.width, -(-math.ceil(w.col_off + w.width - 1e-6) // bw) * bw)
                r1 = min(src.height, -(-math.ceil(w.row_off + w.height - 1e-6) // bh) * bh)
                if c1 > c0 and r1 > r0:
                    reads.append(Read(href, (c0, r0, c1 - c0, r1 - r0)))
    info = {"items": len(items), "files": len(reads), "pixels": gb.shape.x * gb.shape.y,
            "observations": len(S.observation_meta(items, assets).dates)}
    return reads, info


def _decode_one(r: Read, gdal_threads: str) -> int:
    import rasterio
    from rasterio.windows import Window

    with rasterio.Env(GDAL_NUM_THREADS=gdal_threads, GDAL_CACHEMAX=64 * 2**20,
                      GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(r.href) as src:
        return int(src.read(window=Window(*r.window)).nbytes)


def decode(reads: list[Read], threads: int = 1, gdal_threads: str = "1") -> dict:
    """Decode every read once: in a loop (``threads=1``) or a thread pool over files."""
    t = time.perf_counter()
    if threads == 1:
        nbytes = sum(_decode_one(r, gdal_threads) for r in reads)
    else:
        with ThreadPoolExecutor(threads) as pool:
            nbytes = sum(pool.map(lambda r: _decode_one(r, gdal_threads), reads))
    return {"seconds": time.perf_counter() - t, "decoded_bytes": nbytes}


def decode_modes(cores: int) -> dict[str, tuple[int, str]]:
    """Name -> (pool threads, GDAL_NUM_THREADS) of the measured decode modes."""
    return {"decode 1 thread": (1, "1"),
            f"decode {cores} threads (pool)": (cores, "1"),
            "decode GDAL_NUM_THREADS=ALL_CPUS": (1, "ALL_CPUS")}


def decode_limit(reads: list[Read], repeat: int = 3) -> dict[str, dict]:
    """Every decode mode, interleaved ``repeat`` times; per mode the median seconds and MB/s."""
    modes = decode_modes(_cores())
    decode(reads, threads=_cores())  # warm the page cache and GDAL's drivers
    times: dict[str, list[float]] = {m: [] for m in modes}
    nbytes = 0
    for _ in range(repeat):
        for name, (threads, gdal_threads) in modes.items():
            r = decode(reads, threads, gdal_threads)
            times[name].append(r["seconds"])
            nbytes = r["decoded_bytes"]
    return {name: {"seconds": statistics.median(ts), "runs": ts, "decoded_bytes": nbytes,
                   "mb_per_s": nbytes / 2**20 / statistics.median(ts)} for name, ts in times.items()}


def summary(limits: dict[str, dict]) -> tuple[float, float]:
    """(single-thread limit, all-cores limit) in seconds: the best multi-threaded mode counts."""
    single = limits["decode 1 thread"]["seconds"]
    multi = min(v["seconds"] for k, v in limits.items() if k != "decode 1 thread")
    return single, multi


def report_lines(limits: dict[str, dict], info: dict | None = None) -> list[str]:
    mb = 2**20
    lines = []
    if info:
        lines.append(f"needed: {info['files']} asset files of {info['items']} items ({info['observations']} "
                     f"observations) over {info['pixels'] / 1e6:.2f} M px")
    for name, v in limits.items():
        lines.append(f"{name}: {v['seconds']:.2f} s, {v['decoded_bytes'] / mb:.0f} MB decoded, "
                     f"{v['mb_per_s']:.0f} MB/s")
    return lines


def compare(size: int, dates: int, repeat: int, max_memory: str = "2GB", folder: Path | None = None) -> dict:
    """Decode limit, I/O floor and the whole composite on the bench archive, interleaved."""
    import bench_composite as B

    folder = folder or ROOT / "bench_out" / f"composite_{size}x{dates}"
    archive = B.build_archive(folder, size, dates)
    catalog = archive / "catalog.json"
    reads, info = needed_reads(catalog, B.START, B.START + dt.timedelta(days=3650))
    modes = decode_modes(_cores())
    decode(reads, threads=_cores())  # page cache warm
    times: dict[str, list[float]] = {m: [] for m in (*modes, "I/O floor", "composite")}
    nbytes = 0
    extra: dict = {}
    for i in range(repeat):
        for name, (threads, gdal_threads) in modes.items():
            r = decode(reads, threads, gdal_threads)
            times[name].append(r["seconds"])
            nbytes = r["decoded_bytes"]
        io = B.io_floor(archive, max_memory)
        times["I/O floor"].append(io["seconds"])
        c = B.run_composite(archive, folder / "products", max_memory)
        times["composite"].append(c["seconds"])
        extra = {"io_tiles": io["tiles"], "io_tile_side": io["tile_side"], "composite_tiles": c["tiles"],
                 "composite_peak_rss": c["peak_rss"], "composite_command": c["command"]}
        print(f"repeat {i + 1}/{repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    limits = {name: {"seconds": statistics.median(times[name]), "runs": times[name], "decoded_bytes": nbytes,
                     "mb_per_s": nbytes / 2**20 / statistics.median(times[name])} for name in modes}
    res = {"archive": {"size": size, "dates": dates, "path": str(archive)}, "cores": _cores(), "info": info,
           "decode": limits, "io_floor": {"seconds": statistics.median(times["I/O floor"]), "runs": times["I/O floor"]},
           "composite": {"seconds": statistics.median(times["composite"]), "runs": times["composite"]}, **extra}
    single, multi = summary(limits)
    for key in ("io_floor", "composite"):
        res[key]["ratio_to_decode_1"] = res[key]["seconds"] / single
        res[key]["ratio_to_decode_all"] = res[key]["seconds"] / multi
    return res


def compare_report(res: dict) -> str:
    a, n = res["archive"], len(res["composite"]["runs"])
    lines = [f"archive: {a['size']} x {a['size']} px (20 m) x {a['dates']} dates; {res['cores']} cores; "
             f"medians of {n} interleaved repeats", *report_lines(res["decode"], res["info"])]
    io, c = res["io_floor"], res["composite"]
    lines.append(f"I/O floor ({res['io_tiles']} tiles of {res['io_tile_side']} px, local cluster): {io['seconds']:.2f} s "
                 f"= {io['ratio_to_decode_1']:.2f}x the 1-thread decode limit, {io['ratio_to_decode_all']:.2f}x the "
                 f"all-cores limit")
    lines.append(f"composite (whole command, {res['composite_tiles']} tiles): {c['seconds']:.2f} s "
                 f"= {c['ratio_to_decode_1']:.2f}x the 1-thread decode limit, {c['ratio_to_decode_all']:.2f}x the "
                 f"all-cores limit (issue 14 target <= 1.5x)")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1000, help="bench archive side in 20 m px")
    ap.add_argument("--dates", type=int, default=40, help="bench archive dates")
    ap.add_argument("--catalog", help="any STAC catalog instead of the bench archive (decode limit only)")
    ap.add_argument("--start", type=dt.date.fromisoformat)
    ap.add_argument("--end", type=dt.date.fromisoformat)
    ap.add_argument("--resolution", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also the I/O floor and the whole composite (bench archive)")
    ap.add_argument("--max-memory", default="2GB")
    ap.add_argument("--folder", type=Path, help="bench archive folder (default bench_out/composite_SIZExDATES)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    a = ap.parse_args(argv)
    folder = a.folder or ROOT / "bench_out" / f"composite_{a.size}x{a.dates}"
    if a.catalog:
        if not (a.start and a.end):
            ap.error("--catalog needs --start and --end")
        reads, info = needed_reads(a.catalog, a.start, a.end, a.resolution)
        res = {"info": info, "decode": decode_limit(reads, a.repeat)}
        print("\n".join(report_lines(res["decode"], info)))
    elif a.compare:
        res = compare(a.size, a.dates, a.repeat, a.max_memory, folder)
        print(compare_report(res))
    else:
        import bench_composite as B

        archive = B.build_archive(folder, a.size, a.dates)
        reads, info = needed_reads(archive / "catalog.json", B.START, B.START + dt.timedelta(days=3650))
        res = {"info": info, "decode": decode_limit(reads, a.repeat)}
        print("\n".join(report_lines(res["decode"], info)))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
