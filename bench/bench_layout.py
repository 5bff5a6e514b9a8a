"""Benchmark: the processing-tile layout (issue 14 item 3), ``--workers 1`` against ``--workers 2``.

On the cached bench archive (``bench_composite.build_archive(size, dates)``), the whole
``soilsuite composite`` command (as ``bench_read.py --composite`` runs it: default budget 2GB,
per-year products) in a subprocess, with each tile layout (``$SOILSUITE_TILE_LAYOUT``):

- ``grid``: tiles of the budget's side from the grid origin, slivers at the edges (before);
- ``balanced`` (default): as few tiles as the side allows, near-equal, on 256 px COG block
  boundaries where possible, a sliver of <= 10 % merged into its neighbour
  (``soilsuite.pipeline.tiles.layout_tiles``).

Runs are interleaved (w1 grid, w1 balanced, w2 grid, w2 balanced, then again) so that the
machine's load hits all alike. Prints per run the tiles, wall seconds, CPU seconds of the whole
process tree and peak RSS; then medians and the ratios balanced / grid and 2 workers / 1 worker;
and checks that both layouts wrote byte-identical product files.

Usage::

    .venv/bin/python -P bench/bench_layout.py [--size 600] [--dates 30] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

LAYOUTS = ("grid", "balanced")


def _tifs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.tif"))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--max-memory", default="2GB")
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default bench_out/layout_<size>x<dates>)")
    a = ap.parse_args(argv)

    import bench_composite as B
    import bench_read as R

    root = Path(__file__).resolve().parents[1] / "bench_out"
    archive = B.build_archive(root / f"composite_{a.size}x{a.dates}", a.size, a.dates)
    scratch = a.out or root / f"layout_{a.size}x{a.dates}"
    scratch.mkdir(parents=True, exist_ok=True)
    workers = [int(w) for w in a.workers.split(",")]
    runs: dict[tuple[int, str], list[dict]] = {}
    for rep in range(a.repeat):
        for w in workers:
            for lay in LAYOUTS:
                os.environ["SOILSUITE_TILE_LAYOUT"] = lay
                try:
                    out = scratch / f"w{w}_{lay}"
                    r = R.run_composite(R.composite_cmd(archive, out, w, "auto", max_memory=a.max_memory))
                finally:
                    os.environ.pop("SOILSUITE_TILE_LAYOUT", None)
                runs.setdefault((w, lay), []).append(r)
                print(f"rep {rep + 1} --workers {w} {lay:8s}: {r['tiles']:3d} tiles (side {r['tile_side']}), "
                      f"wall {r['seconds']:6.1f} s, CPU {r['cpu_seconds']:6.1f} s, peak RSS {r['peak_rss'] / 2**20:5.0f} MB",
                      flush=True)
        for w in workers:
            same = _tifs(scratch / f"w{w}_grid") == _tifs(scratch / f"w{w}_balanced")
            print(f"rep {rep + 1} --workers {w}: products of both layouts byte-identical: {same}", flush=True)
            if not same:
                raise SystemExit("the layouts wrote different products")

    def med(w, lay, key):
        return statistics.median(r[key] for r in runs[(w, lay)])

    print(f"\nmedians of {a.repeat} interleaved repeats, build_archive({a.size}, {a.dates}), --max-memory {a.max_memory}")
    print("| workers | layout | tiles | wall s | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for w in workers:
        for lay in LAYOUTS:
            print(f"| {w} | {lay} | {runs[(w, lay)][0]['tiles']} | {med(w, lay, 'seconds'):.1f} | "
                  f"{med(w, lay, 'cpu_seconds'):.1f} | {med(w, lay, 'peak_rss') / 2**20:.0f} |")
    for w in workers:
        print(f"--workers {w}: balanced / grid: wall {med(w, 'balanced', 'seconds') / med(w, 'grid', 'seconds'):.2f}, "
              f"CPU {med(w, 'balanced', 'cpu_seconds') / med(w, 'grid', 'cpu_seconds'):.2f}")
    if len(workers) == 2:
        w1, w2 = workers
        for lay in LAYOUTS:
            print(f"{lay}: --workers {w2} / --workers {w1}: wall {med(w2, lay, 'seconds') / med(w1, lay, 'seconds'):.2f}, "
                  f"CPU {med(w2, lay, 'cpu_seconds') / med(w1, lay, 'cpu_seconds'):.2f}")


if __name__ == "__main__":
    main()
