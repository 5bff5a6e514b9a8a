"""The simulator's per-class PV+IR2 and NBR2 distributions beside the field sites' (issue 11).

Simulates the same archive with each spectral set (``--spectra v1 field``: same seed, same
landscape, calendars and sky) and prints, per class (clear observations on cropland and
grassland: bare soil >= 60 %, dry vegetation >= 60 %, dry vegetation passing PV+IR2 <= 0.2,
green vegetation >= 60 %, bare on the clay-rich soil type), the field sites' row and the
simulator's row (:mod:`soilsuite.sources.sim_realism`).

Usage::

    .venv/bin/python -P bench/sim_realism.py [--size 64] [--seed 3] [--out /tmp/sim_realism]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path


def main() -> None:
    from soilsuite.sources.sim_realism import class_statistics, format_table
    from soilsuite.sources.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--start", default="2021-01-01")
    ap.add_argument("--end", default="2022-12-31")
    ap.add_argument("--spectra", nargs="+", default=["v1", "field"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/sim_realism"))
    a = ap.parse_args()
    for spectra in a.spectra:
        arch = a.out / f"archive_{spectra}_{a.size}_{a.seed}"
        if not (arch / "catalog.json").exists():
            simulate(arch, size=a.size, start=dt.date.fromisoformat(a.start), end=dt.date.fromisoformat(a.end),
                     seed=a.seed, spectra=spectra, overwrite=True)
        stats = class_statistics(arch)
        print(f"--- spectra={spectra} (size {a.size}, seed {a.seed}, {a.start}..{a.end})")
        for line in format_table(stats, f"sim {spectra}"):
            print(line)
        print(f"NBR2 mean: bare {stats['bare']['nbr2_mean']:.3f}, dry {stats['dry']['nbr2_mean']:.3f}, "
              f"green {stats['green']['nbr2_mean']:.3f}")


if __name__ == "__main__":
    main()
