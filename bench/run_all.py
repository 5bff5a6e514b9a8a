"""``make bench``: every benchmark in one run, one summary table, and a markdown report in ``bench_out/report.md``.

1. kernels vs the numpy reference, single-threaded, same arrays (bench_kernels.py);
2. the whole ``composite`` command on the fixed simulated archive vs the raw decode limit
   (bench_decode.py) and the I/O floor, with peak memory, and on 4x the pixels (bench_composite.py);
   the same command with ``--workers 1``;
3. ``soilsuite ingest`` of that archive and ``composite`` from the cube, default and
   ``--workers 1`` (bench_ingest.py);
4. soil-map prediction speed (dsm_predict_speed.py), if present;
5. start-up: ``soilsuite --help`` and a tiny composite's fixed cost (bench_startup.py);
6. the LimeSoDa soil-mapping benchmark (dsm_limesoda.py), if its data was fetched.

The first section of the report (and the end of the output) is one table of every figure:
wall seconds, CPU seconds of the whole process tree where measured, peak RSS, and the ratio
each figure is judged by. docs/performance.md explains each row.

Usage::

    .venv/bin/python -P bench/run_all.py [--quick] [--no-limesoda] [--kernel-clock wall|cpu]

``--quick`` uses a 500 x 500 px archive with 20 dates, 256 x 256 px kernels and the quick
LimeSoDa mode (tens of minutes on a loaded 2-core machine, for a smoke test); the full run uses
build_archive(1000, 40), the FORCE comparison's size, and needs about 60-90 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))  # after the standard library: a bench script never shadows a stdlib module


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-memory", default="2GB")
    ap.add_argument("--no-limesoda", action="store_true",
                    help="skip the LimeSoDa soil-mapping benchmark (its figures: docs/dsm.md; ~40 min)")
    ap.add_argument("--kernel-clock", choices=("wall", "cpu"), default="wall",
                    help="clock of the kernel bench (cpu: time.process_time, for a shared machine)")
    a = ap.parse_args(argv)
    out = ROOT / "bench_out"
    out.mkdir(exist_ok=True)
    import bench_composite
    import bench_ingest
    import bench_kernels
    import bench_startup

    table: list[tuple[str, str, str, str, str]] = []  # figure, wall s, CPU s, peak RSS MB, ratio / note

    lines = [f"# soilsuite benchmarks, {dt.datetime.now():%Y-%m-%d %H:%M}", "",
             f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
             f"load average {os.getloadavg()[0]:.1f}", ""]

    print("== kernels vs numpy reference (single-threaded) ==", flush=True)
    size, dates = (256, 20) if a.quick else (512, 40)
    k = bench_kernels.run(size=size, dates=dates, repeat=3, clock=a.kernel_clock)
    ks = f"{k['stages']['overall']['kernel_s']:.3f}"
    table.append((f"kernels, {size}x{size} px x {dates} dates, 1 thread ({a.kernel_clock} clock)",
                  *((ks, "") if a.kernel_clock == "wall" else ("", ks)), "",
                  f"{k['ratio']:.1f}x the numpy reference (target {k['target_ratio']:.0f}x)"))
    lines += ["## Kernels vs the numpy reference (single-threaded, same arrays)", "",
              f"{size} x {size} px x {dates} dates; best of 3 per side; {a.kernel_clock} clock.", "",
              "| stage | reference ms | kernel ms | kernel M px-obs/s | ratio |", "|---|---|---|---|---|"]
    for name, st in k["stages"].items():
        lines.append(f"| {name} | {1e3 * st['reference_s']:.1f} | {1e3 * st['kernel_s']:.1f} | "
                     f"{st['kernel_pxobs_per_s'] / 1e6:.1f} | {st['ratio']:.1f}x |")
    lines.append("")

    print("== composite vs I/O floor ==", flush=True)
    size, dates = (500, 20) if a.quick else (1000, 40)
    c = bench_composite.run(size=size, dates=dates, max_memory=a.max_memory, area4x=not a.quick)
    lines += ["## The whole composite command vs the I/O floor", "", "```", bench_composite.report(c), "```", ""]
    mb = 2**20
    if "decode" in c:
        table.append(("raw decode limit, 1 thread (bench_decode.py)", f"{c['decode']['single_s']:.1f}", "", "",
                      "each needed COG block decoded once"))
        table.append(("raw decode limit, all cores", f"{c['decode']['all_cores_s']:.1f}", "", "", ""))
    table.append(("I/O floor (read + decode onto the grid, tiled)", f"{c['io_floor']['seconds']:.1f}", "", "",
                  f"{c['io_floor'].get('ratio_to_decode_all', float('nan')):.2f}x the decode limit (all cores)"))
    cc = c["composite"]
    table.append(("composite from the archive, default engine", f"{cc['seconds']:.1f}", "",
                  f"{cc['peak_rss'] / mb:.0f}",
                  f"{c['ratio_composite_to_io']:.2f}x the I/O floor; "
                  f"{cc.get('ratio_to_decode_all', float('nan')):.2f}x the decode limit (target <= 1.5)"))
    folder = ROOT / "bench_out" / f"composite_{size}x{dates}"
    archive = folder / "archive"
    w1 = bench_ingest.run_cli(["composite", str(archive / "catalog.json"), "--out", str(folder / "products_w1"),
                               "--start", str(bench_composite.START),
                               "--end", str(bench_composite.START.replace(year=bench_composite.START.year + 10)),
                               "--overwrite", "--quiet", "--workers", "1", "--max-memory", a.max_memory])
    table.append(("composite from the archive, --workers 1", f"{w1['seconds']:.1f}", f"{w1['cpu_seconds']:.1f}",
                  f"{w1['peak_rss'] / mb:.0f}", ""))
    if "composite_4x" in c:
        c4 = c["composite_4x"]
        table.append(("composite on 4x the pixels (10 m grid)", f"{c4['seconds']:.1f}", "", f"{c4['peak_rss'] / mb:.0f}",
                      f"budget {c['budget_bytes'] / mb:.0f} MB"))

    print("== ingest and composite from the cube ==", flush=True)
    ing = bench_ingest.run(size=size, dates=dates, folder=folder, archive_run=False)
    lines += ["## Ingest once, composite from the cube", "", "```", bench_ingest.report(ing), "```", ""]
    for key, what, note in (
            ("ingest", "ingest into a Zarr cube (once)", f"cube {ing['cube_bytes'] / mb:.0f} MB"),
            ("composite_cube", "composite from the cube, default engine",
             f"FORCE TSA: {bench_ingest.FORCE_TSA_CPU_S} s CPU at 1000x1000 px x 40 dates"),
            ("composite_cube_w1", "composite from the cube, --workers 1", "")):
        r = ing[key]
        table.append((what, f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", f"{r['peak_rss'] / mb:.0f}", note))

    pred = HERE / "dsm_predict_speed.py"
    if pred.exists():
        print("== soil-map prediction ==", flush=True)
        cmd = [sys.executable, "-P", str(pred), *(["--pixels", "65536", "--trees", "100", "--repeats", "1"]
                                                  if a.quick else [])]
        r = subprocess.run(cmd, text=True, capture_output=True, cwd=ROOT)
        text = (r.stdout if r.returncode == 0 else f"failed ({r.returncode}):\n{r.stderr[-2000:]}").strip()
        print(text[-3000:])
        lines += ["## Soil-map prediction speed (dsm_predict_speed.py)", "", "```", text[-4000:], "```", ""]
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["(no output)"]
        table.append(("soil-map prediction (dsm_predict_speed.py)", "", "", "", last[0].strip()[:110]))

    _report(out, lines, table, size, dates, {"kernels": k, "composite": c, "composite_w1": w1, "ingest": ing})

    print("== start-up ==", flush=True)
    st = bench_startup.run(repeat=5)
    lines += ["## Start-up and the fixed cost of a tiny composite", "", "```", bench_startup.report(st), "```", ""]
    for name, v in st.items():
        table.append((f"start-up: {name}", f"{v['seconds']:.2f}", "", "",
                      f"median of {len(v['runs'])}" + (f"; target < {v['target']:g} s" if v["target"] else "")))

    limesoda = ROOT / ".realdata" / "limesoda"
    if limesoda.exists() and not a.no_limesoda:
        print("== LimeSoDa ==", flush=True)
        cmd = [sys.executable, "-P", str(HERE / "dsm_limesoda.py"), *(["--quick"] if a.quick else [])]
        r = subprocess.run(cmd, text=True, capture_output=True, cwd=ROOT)
        print(r.stdout[-4000:], r.stderr[-2000:])
        md = out / "dsm_limesoda.md"
        lines += ["## LimeSoDa soil mapping", ""]
        lines += [md.read_text() if md.exists() else f"dsm_limesoda failed:\n```\n{r.stderr[-2000:]}\n```", ""]

    _report(out, lines, table, size, dates, {"kernels": k, "composite": c, "composite_w1": w1, "ingest": ing,
                                             "startup": st})


def _report(out: Path, lines: list[str], table: list, size: int, dates: int, results: dict) -> None:
    """Print the summary table; write it with the sections so far to report.md (and results.json).
    Called once the main figures are in, and again at the end."""
    head = ["## Summary", "", f"archive {size} x {size} px x {dates} dates (bench_composite.build_archive); load average "
            f"{os.getloadavg()[0]:.1f} when written: on a shared machine read the ratios and CPU seconds, not the "
            "wall seconds.", "",
            "| figure | wall s | CPU s | peak RSS MB | ratio / note |", "|---|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in table), ""]
    print("\n".join(head), flush=True)
    (out / "report.md").write_text("\n".join([*lines[:4], *head, *lines[4:]]))
    (out / "results.json").write_text(json.dumps({**results, "table": table}, indent=1, default=float))
    print(f"report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
