"""Parcel statistics at scale: 100 000 parcels over a product folder (time and peak memory).

Writes a synthetic product folder (VPC, BSC, BSF, MASK and SRC_MEAN with 10 bands on a
``--size`` x ``--size`` px grid at 20 m, EPSG:32633) and ``--parcels`` random field polygons
(0.5-5 ha, rotated quadrilaterals, in lon/lat EPSG:4326 so each batch is reprojected) as a
GeoPackage, then runs ``soilsuite parcels`` in a child process and reports its wall time and
peak resident memory (``ru_maxrss`` of the child)::

    .venv/bin/python bench/bench_parcels.py [--parcels 100000] [--size 2000] [--out /tmp/bench_parcels]

One line per figure.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_products(out: Path, size: int, seed: int = 0) -> None:
    from odc.geo.geobox import GeoBox

    from soilsuite import products as P
    from soilsuite.io.cog import write_cog

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gb = GeoBox.from_bbox((400000, 5700000, 400000 + 20 * size, 5700000 + 20 * size), "EPSG:32633", resolution=20)
    vpc = rng.integers(20, 60, (size, size)).astype(np.uint16)
    bsc = (vpc * rng.uniform(0, 0.5, (size, size))).astype(np.uint16)
    data = {
        "VPC": vpc, "BSC": bsc, "BSF": np.where(vpc > 0, bsc / vpc, np.nan).astype(np.float32),
        "MASK": rng.integers(0, 4, (size, size)).astype(np.uint8),
        "SRC_MEAN": rng.integers(200, 4000, (10, size, size)).astype(np.int16),
    }
    for name, arr in data.items():
        if not (out / f"{name}.tif").exists():
            write_cog(out / f"{name}.tif", arr, P.get(name), geobox=gb)


def make_parcels(path: Path, n: int, size: int, seed: int = 1) -> None:
    import geopandas as gpd
    import shapely

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    x0, y0, span = 400000, 5700000, 20 * size
    cx = rng.uniform(x0 - 200, x0 + span + 200, n)  # a few parcels fall outside the extent
    cy = rng.uniform(y0 - 200, y0 + span + 200, n)
    side = np.sqrt(rng.uniform(5000, 50000, n))
    ang = rng.uniform(0, np.pi, n)
    corners = np.array([(-0.5, -0.4), (0.5, -0.5), (0.6, 0.5), (-0.5, 0.45)])
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    px = cx[:, None] + side[:, None] * (corners[:, 0] * c - corners[:, 1] * s)
    py = cy[:, None] + side[:, None] * (corners[:, 0] * s + corners[:, 1] * c)
    rings = np.stack([px, py], -1)
    geoms = shapely.polygons(np.concatenate([rings, rings[:, :1]], axis=1))
    g = gpd.GeoDataFrame({"parcel_id": np.arange(1, n + 1), "landuse": rng.choice(["arable", "grassland"], n)},
                         geometry=geoms, crs="EPSG:32633").to_crs("EPSG:4326")
    g.to_file(path, layer="parcels")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_parcels"))
    ap.add_argument("--format", default="parquet", choices=["parquet", "gpkg", "csv"])
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    make_products(a.out / "products", a.size)
    make_parcels(a.out / "parcels.gpkg", a.parcels, a.size)
    print(f"inputs: {a.size} x {a.size} px, {a.parcels} parcels ({time.perf_counter() - t:.1f} s to make)", flush=True)
    table = a.out / f"stats.{a.format}"
    cmd = [str(Path(sys.executable).with_name("soilsuite")), "parcels", str(a.out / "products"),
           str(a.out / "parcels.gpkg"), "--id", "parcel_id", "--out", str(table), "--overwrite", "--quiet"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode:
        print(proc.stderr)
        return proc.returncode
    print(f"parcels: {a.parcels} parcels x 14 product bands: {wall:.1f} s wall, {a.parcels / wall:,.0f} parcels/s")
    print(f"peak RSS of the soilsuite process: {peak_mb:.0f} MB")
    print(f"table: {table} ({table.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
