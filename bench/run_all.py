"""``make bench``: every benchmark in one run, with a markdown report in ``bench_out/report.md``.

1. kernels vs the numpy reference, single-threaded, same arrays (bench_kernels.py);
2. the whole ``composite`` command on the fixed simulated archive vs the raw decode limit
   (bench_decode.py) and the I/O floor, with peak memory, and on 4x the pixels (bench_composite.py);
3. start-up: ``soilsuite --help`` and a tiny composite's fixed cost (bench_startup.py);
4. the LimeSoDa soil-mapping benchmark (dsm_limesoda.py), if its data was fetched.

Usage::

    .venv/bin/python bench/run_all.py [--quick]

``--quick`` uses a 500 x 500 px archive with 20 dates and the quick LimeSoDa mode (minutes,
for a smoke test); the full run needs about 30-60 minutes on 2 cores.
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
sys.path.insert(0, str(HERE))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-memory", default="2GB")
    a = ap.parse_args(argv)
    out = ROOT / "bench_out"
    out.mkdir(exist_ok=True)
    import bench_composite
    import bench_kernels
    import bench_startup

    lines = [f"# soilsuite benchmarks, {dt.datetime.now():%Y-%m-%d %H:%M}", "",
             f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
             f"load average {os.getloadavg()[0]:.1f}", ""]

    print("== kernels vs numpy reference (single-threaded) ==", flush=True)
    size, dates = (256, 20) if a.quick else (512, 40)
    k = bench_kernels.run(size=size, dates=dates, repeat=3)
    lines += ["## Kernels vs the numpy reference (single-threaded, same arrays)", "",
              f"{size} x {size} px x {dates} dates; best of 3 per side.", "",
              "| stage | reference ms | kernel ms | kernel M px-obs/s | ratio |", "|---|---|---|---|---|"]
    for name, st in k["stages"].items():
        lines.append(f"| {name} | {1e3 * st['reference_s']:.1f} | {1e3 * st['kernel_s']:.1f} | "
                     f"{st['kernel_pxobs_per_s'] / 1e6:.1f} | {st['ratio']:.1f}x |")
    lines.append("")

    print("== composite vs I/O floor ==", flush=True)
    size, dates = (500, 20) if a.quick else (1000, 40)
    c = bench_composite.run(size=size, dates=dates, max_memory=a.max_memory, area4x=True)
    lines += ["## The whole composite command vs the I/O floor", "", "```", bench_composite.report(c), "```", ""]

    print("== start-up ==", flush=True)
    st = bench_startup.run(repeat=5)
    lines += ["## Start-up and the fixed cost of a tiny composite", "", "```", bench_startup.report(st), "```", ""]

    limesoda = ROOT / ".realdata" / "limesoda"
    if limesoda.exists():
        print("== LimeSoDa ==", flush=True)
        cmd = [sys.executable, str(HERE / "dsm_limesoda.py"), *(["--quick"] if a.quick else [])]
        r = subprocess.run(cmd, text=True, capture_output=True, cwd=ROOT)
        print(r.stdout[-4000:], r.stderr[-2000:])
        md = out / "dsm_limesoda.md"
        lines += ["## LimeSoDa soil mapping", ""]
        lines += [md.read_text() if md.exists() else f"dsm_limesoda failed:\n```\n{r.stderr[-2000:]}\n```", ""]

    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"kernels": k, "composite": c, "startup": st}, indent=1, default=float))
    print(f"report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
