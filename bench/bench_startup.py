"""Benchmark: start-up and the fixed cost of a tiny composite (issue 14, deliverable 5).

Each figure is the wall time of a fresh process (the ``soilsuite`` console script of this
venv), repeated ``--repeat`` times with the commands interleaved; medians are printed with the
issue's targets:

- ``soilsuite --help`` and ``soilsuite composite --help`` (target < 0.5 s);
- ``python -c "import soilsuite.cli"`` (what every command pays before it runs);
- ``python -c "import numpy, rasterio, numba, ..."``: the third-party libraries a composite
  needs (:data:`COMPOSITE_LIBRARIES`), imported alone: the floor under a composite's fixed cost;
- a tiny composite (``--size`` px, default 32 px, ``--dates`` dates, default 4) with
  ``--scheduler sync`` and with the default local cluster: almost all of it is fixed cost
  (target < 2 s). The simulated archive is built once in ``--folder``.

Usage::

    .venv/bin/python bench/bench_startup.py [--repeat 5] [--no-composite]

To see where the time of one run goes: ``python -X importtime -c "import soilsuite.cli"``,
or a profiler installed ad hoc (``pip install pyinstrument``; not a dependency).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("soilsuite")
START = dt.date(2021, 6, 1)


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall


#: The third-party modules a composite cannot run without (read, kernels, odc-stac's item parsing
#: and fallback loader, Dask, the products, quicklooks, STAC): imported alone, the floor under
#: the tiny composite's fixed cost that soilsuite's own code cannot lower.
COMPOSITE_LIBRARIES = ("numpy", "rasterio", "numba", "pandas", "xarray", "dask.array", "odc.stac", "pystac",
                       "pyproj", "matplotlib.figure", "matplotlib.backends.backend_agg")


def tiny_archive(folder: Path, size: int, dates: int) -> Path:
    """A small simulated archive, built once (same parameters, same archive)."""
    stamp = folder / "params.json"
    params = {"size": size, "dates": dates}
    if not (stamp.exists() and json.loads(stamp.read_text()) == params):
        end = START + dt.timedelta(days=5 * (dates - 1))
        _wall([str(EXE), "simulate", str(folder / "archive"), "--size", str(size), "--start", str(START),
               "--end", str(end), "--seed", "3", "--overwrite"])
        stamp.write_text(json.dumps(params))
    return folder / "archive" / "catalog.json"


def commands(folder: Path, size: int, dates: int, composite: bool = True) -> dict[str, list[str]]:
    """Name -> command line of every figure."""
    cmds = {
        "soilsuite --help": [str(EXE), "--help"],
        "soilsuite composite --help": [str(EXE), "composite", "--help"],
        "import soilsuite.cli": [sys.executable, "-c", "import soilsuite.cli"],
        "import the composite's libraries": [sys.executable, "-c", f"import {', '.join(COMPOSITE_LIBRARIES)}"],
    }
    if composite:
        cat = tiny_archive(folder, size, dates)
        end = START + dt.timedelta(days=5 * (dates - 1))
        base = [str(EXE), "composite", str(cat), "--start", str(START), "--end", str(end), "--overwrite", "-q"]
        cmds[f"tiny composite {size} px x {dates} dates, --scheduler sync"] = [
            *base, "--out", str(folder / "out_sync"), "--scheduler", "sync"]
        cmds[f"tiny composite {size} px x {dates} dates, local cluster"] = [
            *base, "--out", str(folder / "out_cluster")]
    return cmds


TARGETS = {"--help": 0.5, "tiny composite": 2.0}


def run(repeat: int = 5, size: int = 32, dates: int = 4, composite: bool = True,
        folder: Path | None = None) -> dict[str, dict]:
    """Median wall seconds of each command, interleaved repeats (one warm-up run each first)."""
    folder = folder or ROOT / "bench_out" / "startup"
    folder.mkdir(parents=True, exist_ok=True)
    cmds = commands(folder, size, dates, composite)
    for cmd in cmds.values():  # warm-up: .pyc files, numba's cache, the page cache
        _wall(cmd)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            times[name].append(_wall(cmd))
    out = {}
    for name, ts in times.items():
        target = next((v for k, v in TARGETS.items() if k in name), None)
        out[name] = {"seconds": statistics.median(ts), "runs": ts, "target": target}
    return out


def report(res: dict[str, dict]) -> str:
    lines = []
    for name, v in res.items():
        tgt = f" (target < {v['target']:g} s)" if v["target"] else ""
        lines.append(f"start-up: {name}: {v['seconds']:.2f} s median of {len(v['runs'])}{tgt}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--dates", type=int, default=4)
    ap.add_argument("--no-composite", action="store_true", help="only the --help and import figures")
    ap.add_argument("--folder", type=Path, help="scratch folder (default bench_out/startup)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    a = ap.parse_args(argv)
    res = run(a.repeat, a.size, a.dates, not a.no_composite, a.folder)
    print(report(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
