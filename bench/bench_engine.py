"""Benchmark: one worker against two, worker threads against worker processes (issue 14).

Runs the whole ``soilsuite composite`` command (2GB budget, per-year products, 20 m) on the
cached bench archive ``bench_composite.build_archive(size, dates)`` in a subprocess, once per
variant and repeat, the variants interleaved (the order rotated each repeat), and prints per
variant the medians of

- wall seconds,
- CPU seconds of the command's whole process tree (:class:`bench_composite.TreeCPU`: the
  command, Dask's worker processes and anything they start),
- peak resident memory of the process tree (:class:`bench_composite.PeakRSS`, sampled every
  0.1 s),
- the processing tiles and their side (from the run record),

and the ratios of wall and CPU to ``--workers 1``; the product COGs of every run are checked
byte-identical (SHA-256 of every ``.tif``). Variants (``--variants``):

- ``w1``: ``--workers 1`` (the tiles in the command's own process, no cluster);
- ``w2-processes``: ``--workers 2 --engine processes`` (a LocalCluster of two single-threaded
  worker processes; the default before issue 14's engine work);
- ``w2-threads``: ``--workers 2 --engine threads`` (one in-process worker with two threads);
- ``default``: no ``--workers`` nor ``--engine`` (what a user gets on this machine).

Usage::

    .venv/bin/python -P bench/bench_engine.py --size 600 --dates 30 --repeat 3
    .venv/bin/python -P bench/bench_engine.py --size 1000 --dates 40 --repeat 2 --variants w1 w2-threads

(``-P``: the bench folder must not shadow standard-library modules.) ``--env KEY=VALUE`` sets an
environment variable for every run (e.g. ``GDAL_NUM_THREADS=2``); ``--extra`` adds CLI options
to every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

VARIANTS = {
    "w1": ["--workers", "1"],
    "w2-processes": ["--workers", "2", "--engine", "processes"],
    "w2-threads": ["--workers", "2", "--engine", "threads"],
    "default": [],
}


def _digest(out: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(out.rglob("*.tif")):
        h.update(str(f.relative_to(out)).encode() + f.read_bytes())
    return h.hexdigest()


def run_once(catalog: Path, out: Path, args: list[str], env: dict | None = None) -> dict:
    """One ``soilsuite composite`` in a subprocess: wall, CPU of the process tree, peak RSS."""
    import bench_composite as B

    exe = Path(sys.executable).with_name("soilsuite")
    start, end = str(B.START), str(B.START + dt.timedelta(days=3650))
    cmd = [str(exe), "composite", str(catalog), "--start", start, "--end", end, "--out", str(out), "--overwrite",
           "--max-memory", "2GB", "--resolution", "20", "--periods", "year", "--quiet", *args]
    t = time.perf_counter()
    with B.TreeCPU() as tree:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})})
        with B.PeakRSS(p.pid) as rss:
            so, se = p.communicate()
        wall = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{so[-2000:]}\n{se[-2000:]}")
    plan = json.loads((out / "run.json").read_text()).get("plan", {})
    return {"wall": wall, "cpu": tree.seconds, "rss_mb": rss.peak / 2**20, "tifs": _digest(out),
            "tiles": plan.get("tiles"), "tile_side": plan.get("tile_side"), "workers": plan.get("workers"),
            "command": " ".join(cmd)}


def measure(size: int, dates: int, repeat: int, variants: list[str], extra: list[str], env: dict) -> dict:
    sys.path.insert(0, str(HERE))
    import bench_composite as B

    folder = ROOT / "bench_out" / f"composite_{size}x{dates}"
    catalog = B.build_archive(folder, size, dates) / "catalog.json"
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        tmp = Path(tmp)
        run_once(catalog, tmp / "warm", VARIANTS["w1"] + extra, env)  # page cache, numba cache warm
        for k in range(repeat):
            order = variants[k % len(variants):] + variants[:k % len(variants)]
            for v in order:
                r = run_once(catalog, tmp / v, VARIANTS[v] + extra, env)
                runs[v].append(r)
                print(f"  repeat {k + 1} {v}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, "
                      f"peak RSS {r['rss_mb']:.0f} MB, {r['tiles']} tiles of {r['tile_side']} px", flush=True)
    med = statistics.median
    res = {"size": size, "dates": dates, "repeat": repeat, "extra": extra, "env": env, "variants": {},
           "identical_products": len({r["tifs"] for rs in runs.values() for r in rs}) == 1}
    for v, rs in runs.items():
        res["variants"][v] = {
            "wall": med(r["wall"] for r in rs), "cpu": med(r["cpu"] for r in rs),
            "rss_mb": med(r["rss_mb"] for r in rs), "tiles": rs[0]["tiles"], "tile_side": rs[0]["tile_side"],
            "workers": rs[0]["workers"], "walls": [round(r["wall"], 2) for r in rs],
            "cpus": [round(r["cpu"], 2) for r in rs], "command": rs[0]["command"],
        }
    return res


def report(res: dict) -> str:
    vs = res["variants"]
    base = vs.get("w1")
    lines = [f"build_archive({res['size']}, {res['dates']}), --max-memory 2GB, medians of {res['repeat']} "
             f"interleaved repeats" + (f", env {res['env']}" if res["env"] else "")
             + (f", extra {' '.join(res['extra'])}" if res["extra"] else ""),
             "product COGs of every run byte-identical: " + ("yes" if res["identical_products"] else "NO"), "",
             "| variant | options | tiles (side px) | wall s | CPU s (tree) | peak RSS MB | wall / w1 | CPU / w1 |",
             "|---|---|---|---|---|---|---|---|"]
    for v, r in vs.items():
        rw = f"{r['wall'] / base['wall']:.2f}" if base else ""
        rc = f"{r['cpu'] / base['cpu']:.2f}" if base else ""
        lines.append(f"| {v} | `{' '.join(VARIANTS[v]) or '(defaults)'}` | {r['tiles']} ({r['tile_side']}) | "
                     f"{r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | {rw} | {rc} |")
    lines += ["", "per repeat (wall s / CPU s):"]
    lines += [f"  {v}: " + ", ".join(f"{w}/{c}" for w, c in zip(r["walls"], r["cpus"], strict=True))
              for v, r in vs.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=["w1", "w2-processes", "w2-threads"], choices=list(VARIANTS))
    ap.add_argument("--extra", nargs="*", default=[], help="more CLI options for every run")
    ap.add_argument("--env", nargs="*", default=[], help="KEY=VALUE environment of every run")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    env = dict(kv.split("=", 1) for kv in a.env)
    res = measure(a.size, a.dates, a.repeat, a.variants, a.extra, env)
    print(report(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
