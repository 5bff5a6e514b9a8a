"""Benchmark and measurement of the optional layers of issue 15 on a simulated archive.

1. Runtime: the same composite (``--periods year``) plain, and with every optional layer
   (``--temporal --ploughing --erosion``), in-process (``scheduler="sync"``), best of ``--repeat``.
2. The per-period blue filter: ``--period-blue-filter exact`` (median/MAD of B02 per year)
   against the default approximation (the window's median/MAD), per year: share of pixels
   whose BSC differs, mean |BSC difference|, MASK changes, SRC_MEAN differences (reflectance),
   and the bare-observation precision/recall of both against the simulator's truth.

Usage::

    .venv/bin/python bench/bench_temporal.py [--size 96] [--seed 3] [--out /tmp/bench_temporal]

Prints one line per figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np
import rasterio

START, END = dt.date(2021, 1, 1), dt.date(2022, 12, 31)


def _run(sim, out: Path, **kw) -> float:
    from soilsuite.pipeline.composite import build_config, run

    shutil.rmtree(out, ignore_errors=True)
    cfg = build_config(source=str(sim.catalog_path), out=out, start=START, end=END, crs=f"EPSG:{sim.epsg}",
                       worldcover=sim.worldcover_path, periods="year", scheduler="sync", **kw)
    t0 = time.perf_counter()
    run(cfg)
    return time.perf_counter() - t0


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_temporal"))
    ap.add_argument("--timing-only", action="store_true", help="skip the blue-filter comparison")
    a = ap.parse_args()

    from soilsuite.sources.simulate import simulate

    arch = a.out / f"archive_{a.size}_{a.seed}"
    if not (arch / "catalog.json").exists():
        simulate(arch, size=a.size, start=START, end=END, seed=a.seed, overwrite=True)
    from soilsuite.sources.simulate import load_truth

    class Sim:  # what _run needs of a SimulationResult
        catalog_path = arch / "catalog.json"
        worldcover_path = arch / "worldcover.tif"
        epsg = int(load_truth(arch).attrs["epsg"])

    _run(Sim, a.out / "warmup")  # numba compilation, GDAL caches
    _run(Sim, a.out / "warmup_layers", temporal=True, ploughing=True, erosion=True)
    runs: dict[str, list[float]] = {"plain": [], "layers": [], "exact": []}
    for _ in range(a.repeat):  # interleaved, so that a busy machine slows every variant alike
        runs["plain"].append(_run(Sim, a.out / "plain"))
        runs["layers"].append(_run(Sim, a.out / "layers", temporal=True, ploughing=True, erosion=True))
        runs["exact"].append(_run(Sim, a.out / "exact", period_blue_filter="exact"))
    plain, layers, exact = (min(runs[k]) for k in ("plain", "layers", "exact"))
    print(f"grid {a.size} x {a.size} px, 2021-2022, periods=year, scheduler=sync, best of {a.repeat}")
    print(f"plain run                     {plain:7.2f} s")
    print(f"+ temporal, ploughing, erosion {layers:7.2f} s  ratio {layers / plain:.2f}")
    print(f"exact per-period blue filter   {exact:7.2f} s  ratio {exact / plain:.2f}")
    if a.timing_only:
        return

    for year in ("2021", "2022"):
        p, e = a.out / "plain" / year, a.out / "exact" / year
        bp, be = _read(p / "BSC.tif")[0].astype(int), _read(e / "BSC.tif")[0].astype(int)
        mp, me = _read(p / "MASK.tif")[0], _read(e / "MASK.tif")[0]
        sp, se = _read(p / "SRC_MEAN.tif").astype(float), _read(e / "SRC_MEAN.tif").astype(float)
        ok = (sp[0] != -9999) & (se[0] != -9999)
        d = np.abs(sp - se)[:, ok] * 1e-4
        print(f"{year}: BSC differs on {np.mean(bp != be) * 100:.1f} % of pixels, mean |dBSC| "
              f"{np.mean(np.abs(bp - be)):.3f} (mean BSC {bp.mean():.2f}), exact - approx BSC sum "
              f"{int(be.sum() - bp.sum()):+d} ({(be.sum() - bp.sum()) / max(bp.sum(), 1) * 100:+.2f} %)")
        print(f"{year}: MASK differs on {np.mean(mp != me) * 100:.2f} % of pixels; SRC_MEAN |diff| mean "
              f"{d.mean():.5f}, p99 {np.percentile(d, 99):.4f}, max {d.max():.4f} reflectance")
    # precision / recall of the bare observations against truth: window filter vs the exact
    # per-year filter (the flags of a standalone run on the year, which the exact mode uses)
    from soilsuite.pipeline.composite import observation_flags

    truth = load_truth(arch)
    tdates = [str(t)[:10] for t in truth["time"].values]
    kw = dict(crs=f"EPSG:{Sim.epsg}", worldcover=arch / "worldcover.tif")
    whole = observation_flags(str(arch / "catalog.json"), start=START, end=END, **kw)
    for y in (2021, 2022):
        alone = observation_flags(str(arch / "catalog.json"), start=dt.date(y, 1, 1), end=dt.date(y, 12, 31), **kw)
        for mode, fl in (("window", whole), ("exact", alone)):
            dates = [str(t)[:10] for t in fl["time"].values]
            sel = [i for i, d in enumerate(dates) if d.startswith(str(y))]
            f = fl["flags"].values[sel]
            tr = (truth["obs_flags"].values[[tdates.index(dates[i]) for i in sel]] & 1) > 0
            det = (f & 8) > 0
            tp = int((det & tr).sum())
            print(f"{y} {mode:6s} filter: bare observations {int(det.sum())}, precision {tp / max(det.sum(), 1):.4f}, "
                  f"recall (of truly bare valid obs) {tp / max(int((tr & ((f & 1) > 0)).sum()), 1):.4f}")


if __name__ == "__main__":
    main()
