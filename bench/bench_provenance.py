"""Cost of ``--provenance`` (issue 11) on one tile of a simulated archive, as ratios.

For the same tile (the whole grid of a ``--size`` px archive, one year, ``--periods season``):
load + composite without provenance, and with it (validity codes from the SCL, footprints of the
scenes the filter removed, the counting kernel), interleaved ``--repeat`` times. Prints the
median seconds of each and their ratios: the whole tile (load + composite) and the composite
step alone (``composite_inputs``).

Usage::

    .venv/bin/python bench/bench_provenance.py [--size 96] [--repeat 3] [--out /tmp/bench_provenance]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

START, END = dt.date(2021, 1, 1), dt.date(2021, 12, 31)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_provenance"))
    a = ap.parse_args()

    from soilsuite.pipeline.block import composite_inputs
    from soilsuite.pipeline.composite import (
        _items_over,
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.provenance import rejected_items
    from soilsuite.sources import stac as S
    from soilsuite.sources.simulate import simulate

    arch = a.out / f"archive_{a.size}_{a.seed}"
    if not (arch / "catalog.json").exists():
        simulate(arch, size=a.size, start=START, end=END, seed=a.seed, overwrite=True)
    base = dict(source=str(arch / "catalog.json"), out=a.out / "unused", start=START, end=END,
                worldcover=arch / "worldcover.tif", periods="season", max_nbr2=0.12)
    plain, prov = build_config(**base), build_config(**base, provenance=True)
    found, sel = select_items(plain)
    assets = S.resolve_assets(sel.items)
    gb = target_geobox(plain, sel.items)
    halo = plain.mask.dilation_px // 2
    items = _items_over(sel.items, gb.pad(halo))
    removed = rejected_items(found, sel.items)
    from soilsuite.periods import periods_with_data

    labels = [p.label for p in periods_with_data("season", START, END,
                                                 S.observation_meta(items, assets).dates)]
    times: dict[str, list[float]] = {"plain_tile": [], "prov_tile": [], "plain_comp": [], "prov_comp": []}
    for _ in range(a.repeat + 1):  # the first round compiles and warms the caches: not counted
        for name, cfg in (("plain", plain), ("prov", prov)):
            t0 = time.perf_counter()
            inp = load_tile_inputs(items, assets, gb, cfg, halo, rejected=removed if name == "prov" else ())
            t1 = time.perf_counter()
            composite_inputs(inp, cfg, labels)
            t2 = time.perf_counter()
            times[f"{name}_tile"].append(t2 - t0)
            times[f"{name}_comp"].append(t2 - t1)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    print(f"grid {gb.shape.y} x {gb.shape.x} px, {len(items)} items loaded, {len(removed)} removed by the scene "
          f"filter, periods {labels}, {a.repeat} interleaved repeats")
    print(f"tile (load + composite): plain {med['plain_tile']:.2f} s, provenance {med['prov_tile']:.2f} s, "
          f"ratio {med['prov_tile'] / med['plain_tile']:.2f}")
    print(f"composite step: plain {med['plain_comp']:.3f} s, provenance {med['prov_comp']:.3f} s, "
          f"ratio {med['prov_comp'] / med['plain_comp']:.2f}")


if __name__ == "__main__":
    main()
