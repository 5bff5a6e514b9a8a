"""Benchmark: ``soilsuite ingest`` once, then ``composite`` from the cube vs from the archive.

Builds (once, cached in ``bench_out/ingest_<size>x<dates>/``) the fixed simulated archive of
``bench_composite.py`` (:func:`bench_composite.build_archive`: ``--size`` x ``--size`` px at
20 m, ``--dates`` acquisitions every 5 days, seed 11), then runs, each as the CLI command in a
subprocess:

1. ``soilsuite ingest`` of the whole archive into a Zarr cube (the one-off cost);
2. ``soilsuite composite CUBE.zarr`` (default engine: the local cluster) and with ``--workers 1``;
3. ``soilsuite composite ARCHIVE`` (default engine), the same products from the COGs.

For each: wall time, **CPU time** of the whole process tree (user + system of the command and
its worker processes, from ``getrusage(RUSAGE_CHILDREN)``: the figure FORCE reports for its
TSA run on its datacube, 13.7 s on build_archive(1000, 40), 2 cores) and peak RSS. The
composites from cube and archive are checked to give byte-identical product files. Usage::

    .venv/bin/python bench/bench_ingest.py [--size 1000] [--dates 40] [--repeat 1]

or ``from bench_ingest import run; run(size, dates) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

#: FORCE TSA on its datacube of build_archive(1000, 40): CPU seconds (issue 14).
FORCE_TSA_CPU_S = 13.7


def run_cli(args: list[str]) -> dict:
    """One ``soilsuite`` command in a subprocess (:func:`bench_composite.run_cli`)."""
    from bench_composite import run_cli as run

    return run(args)


def _same_products(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.tif"))
    return bool(names) and names == sorted(p.name for p in b.glob("*.tif")) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def run(size: int = 1000, dates: int = 40, repeat: int = 1, folder: Path | None = None, verbose: bool = True,
        archive_run: bool = True) -> dict:
    """Ingest the bench archive, composite from cube and archive; return the figures.

    Returns
    -------
    dict
        ``archive`` (size, dates, bytes, observations), ``ingest``, ``composite_cube``,
        ``composite_cube_w1``, ``composite_archive``: ``{seconds, cpu_seconds, peak_rss}`` (best
        of ``repeat`` by wall time, runs interleaved); ``cube_bytes``; ``identical`` (product
        files byte-identical); ``force_tsa_cpu_s`` (13.7). Without ``archive_run`` (e.g. when
        bench_composite.py measures that run), no ``composite_archive`` and no ``identical``.
    """
    from bench_composite import START, _dir_bytes, build_archive

    folder = folder or ROOT / "bench_out" / f"ingest_{size}x{dates}"
    archive = build_archive(folder, size, dates)
    cat = str(archive / "catalog.json")
    end = str(START.replace(year=START.year + 10))
    cube = folder / "cube.zarr"
    window = ["--start", str(START), "--end", end]
    res: dict = {"archive": {"size": size, "dates": dates, "bytes": _dir_bytes(archive)},
                 "cores": len(os.sched_getaffinity(0)), "force_tsa_cpu_s": FORCE_TSA_CPU_S}
    runs = {"ingest": ["ingest", cat, "--out", str(cube), *window, "--overwrite", "--quiet"],
            "composite_cube": ["composite", str(cube), "--out", str(folder / "from_cube"), *window, "--overwrite",
                               "--quiet"],
            "composite_cube_w1": ["composite", str(cube), "--out", str(folder / "from_cube_w1"), *window,
                                  "--overwrite", "--quiet", "--workers", "1"],
            "composite_archive": ["composite", cat, "--out", str(folder / "from_archive"), *window, "--overwrite",
                                  "--quiet"]}
    if not archive_run:
        del runs["composite_archive"]
    for _ in range(max(1, repeat)):
        for name, args in runs.items():
            r = run_cli(args)
            if name not in res or r["seconds"] < res[name]["seconds"]:
                res[name] = r
    res["cube_bytes"] = _dir_bytes(cube)
    rec = json.loads((folder / "from_cube" / "run.json").read_text())
    res["archive"]["observations"] = rec["summary"]["n_observations"]
    if archive_run:
        res["identical"] = _same_products(folder / "from_cube", folder / "from_archive")
    if verbose:
        print(report(res))
    return res


def report(res: dict) -> str:
    mb = 2**20
    a = res["archive"]
    lines = [f"archive: {a['size']} x {a['size']} px x {a['dates']} dates ({a.get('observations', '?')} after the "
             f"scene filter), {a['bytes'] / mb:.0f} MB of COGs; cube {res['cube_bytes'] / mb:.0f} MB; "
             f"{res['cores']} cores"]
    for key, what in (("ingest", "ingest (once)"), ("composite_cube", "composite from the cube"),
                      ("composite_cube_w1", "composite from the cube, --workers 1"),
                      ("composite_archive", "composite from the archive")):
        if key not in res:
            continue
        r = res[key]
        lines.append(f"{what:<40} {r['seconds']:7.1f} s wall {r['cpu_seconds']:7.1f} s CPU "
                     f"peak RSS {r['peak_rss'] / mb:6.0f} MB")
    c = res["composite_cube"]["cpu_seconds"]
    lines.append(f"composite from the cube: {c:.1f} s CPU vs FORCE TSA {res['force_tsa_cpu_s']} s CPU on "
                 f"build_archive(1000, 40) (ratio {c / res['force_tsa_cpu_s']:.2f}; compare at that size)")
    if "identical" in res:
        lines.append(f"products from cube and archive byte-identical: {res['identical']}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dates", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs of each command (best wall time kept)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    a = ap.parse_args(argv)
    res = run(a.size, a.dates, a.repeat)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
