"""Benchmark: where the composite's CPU goes, stage by stage, against the raw decode limit (issue 14).

One table, CPU seconds (``getrusage``: every thread of a process, and for the CLI runs the whole
process tree, Dask workers included), so a loaded machine does not inflate the figures:

- **stages** of one ``soilsuite composite`` run executed in one fresh process with
  ``scheduler="sync"`` (the code a Dask worker runs, in this process): interpreter start-up and
  imports, search and scene filter, preflight, per tile the read and decode (``load_arrays``),
  the offset correction, the validity mask, the kernels and products (``composite_inputs``),
  the rest of the tile inputs, the tile store; numba's dispatch (loading the cached machine
  code, or compiling it when the cache misses); the mosaic into COGs (with overviews),
  quicklooks, the STAC catalogue, QGIS styles and project. Each stage counts its own CPU, not
  that of stages nested in it; modules imported lazily inside a stage count in that stage;
- **the CLI** in a subprocess (CPU of its whole process tree, :class:`bench_composite.TreeCPU`): ``--scheduler sync`` (the same run as above, without the
  timers), ``--workers 1`` (one Dask worker process beside the main one) and ``--workers 2``; the
  difference between ``--workers 1`` and ``--scheduler sync`` is what the Dask cluster costs
  (scheduler, nanny and worker processes, their imports, their numba loads, task transfer);
- **the raw decode limit** (``bench_decode.py``: every needed COG block decoded once with
  rasterio, no warp), here in CPU seconds of one thread: the ``/ decode`` column.

Rows, CLI runs and the decode limit are repeated ``--repeat`` times interleaved; medians are
printed. ``--cprofile FILE`` also writes a cProfile of the staged run (the worker-side code;
``python -m pstats FILE``). Usage::

    .venv/bin/python -P bench/bench_overhead.py [--size 600] [--dates 30] [--repeat 3] [--cprofile /tmp/c.prof]
    .venv/bin/python -P bench/bench_overhead.py --before /tmp/before/src   # before/after, interleaved

``--before DIR``: the same runs with the package copy ``DIR`` (e.g. ``git archive <commit> src |
tar -x -C /tmp/before``) first on ``PYTHONPATH``, interleaved with this checkout's; the product
COGs of every CLI run are checked byte-identical.

(``-P``: the bench folder must not shadow standard-library modules.) The archive is
``bench_composite.build_archive(size, dates)``, cached in ``bench_out/composite_<size>x<dates>/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (row name, module, attribute): the functions timed in the staged run. A class method is
#: given as "Class.method". Order = the table's order.
STAGES = [
    ("search + scene filter", "soilsuite.pipeline.composite", "select_items"),
    ("target grid", "soilsuite.pipeline.composite", "target_geobox"),
    ("preflight (input checks)", "soilsuite.pipeline.composite", "preflight"),
    ("tile: read + decode (load_arrays)", "soilsuite.sources.fastread", "load_arrays"),
    ("tile: offset correction", "soilsuite.sources.stac", "to_reflectance"),
    ("tile: validity mask", "soilsuite.pipeline.composite", "valid_observations"),
    ("tile: other inputs (load_tile_inputs)", "soilsuite.pipeline.composite", "load_tile_inputs"),
    ("tile: kernels + products (composite_inputs)", "soilsuite.pipeline.composite", "composite_inputs"),
    ("tile: encode", "soilsuite.pipeline.composite", "_encode_all"),
    ("tile: store write", "soilsuite.io.layout", "TileStore.write"),
    ("numba dispatch (cache load / compile)", "numba.core.dispatcher", "Dispatcher._compile_for_args"),
    ("mosaic: product COGs + overviews", "soilsuite.pipeline.mosaic", "write_outputs"),
    ("quicklooks", "soilsuite.io.quicklook", "quicklooks_for"),
    ("STAC catalogue", "soilsuite.io.stac", "write_output_catalog"),
    ("QGIS styles", "soilsuite.io.qgis", "write_file_styles"),
    ("QGIS project", "soilsuite.io.qgis", "write_project"),
]


def _rusage_cpu(who=resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


# ----------------------------------------------------------------------------- the staged run (child)
class _Timers:
    """Exclusive CPU seconds per stage: a stage's time less that of the stages called inside it.

    Process CPU time (all threads): the stages run one after the other in the sync engine (the
    reader and mosaic thread pools live inside one stage), so each thread's CPU lands in the
    stage that started it.
    """

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[list] = []  # [name, start, child seconds]

    def wrap(self, name: str, fn):
        import functools

        timers = self

        @functools.wraps(fn)
        def timed(*a, **kw):
            timers.stack.append([name, time.process_time(), 0.0])
            try:
                return fn(*a, **kw)
            finally:
                n, t0, child = timers.stack.pop()
                dt_ = time.process_time() - t0
                timers.cpu[n] = timers.cpu.get(n, 0.0) + dt_ - child
                timers.calls[n] = timers.calls.get(n, 0) + 1
                if timers.stack:
                    timers.stack[-1][2] += dt_

        return timed

    def install(self) -> None:
        import importlib

        for name, mod, attr in STAGES:
            m = importlib.import_module(mod)
            owner, leaf = m, attr
            if "." in attr:
                cls, leaf = attr.split(".")
                owner = getattr(m, cls)
            setattr(owner, leaf, self.wrap(name, getattr(owner, leaf)))


def staged_run(catalog: str, out: str, start: str, end: str, cprofile: str | None) -> dict:
    """One composite in this process with ``scheduler="sync"`` and the stage timers."""
    cpu0 = _rusage_cpu()  # interpreter start-up so far
    import soilsuite.cli  # noqa: F401 - what the CLI imports before it runs
    from soilsuite.pipeline import composite as C

    cpu_imports = _rusage_cpu()
    timers = _Timers()
    timers.install()
    prof = None
    if cprofile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t = time.perf_counter()
    cfg = C.build_config(source=catalog, start=start, end=end, out=Path(out), overwrite=True, max_memory="2GB",
                         resolution=20.0, periods="year", n_workers=1, scheduler="sync")
    summary = C.run(cfg)
    wall = time.perf_counter() - t
    if prof is not None:
        prof.disable()
        prof.dump_stats(cprofile)
    total = _rusage_cpu()
    rows = {"interpreter + imports (soilsuite.cli)": cpu_imports}
    rows.update({name: timers.cpu.get(name, 0.0) for name, _, _ in STAGES})
    rows["rest of the run (not in a stage)"] = total - cpu_imports - sum(timers.cpu.values())
    return {"rows": rows, "calls": timers.calls, "total": total, "wall": wall, "start_cpu": cpu0,
            "tiles": summary.tiles, "tile_side": summary.tile_side}


# ----------------------------------------------------------------------------- the parent
def _env(src: str | None) -> dict | None:
    """The environment of a run of the package in ``src`` (a copy of ``src/`` of another
    version, first on ``PYTHONPATH``), or None: this checkout."""
    if src is None:
        return None
    import os

    return {**os.environ, "PYTHONPATH": str(src)}


def _cli(catalog: Path, out: Path, start: str, end: str, extra: list[str], src: str | None = None) -> dict:
    exe = Path(sys.executable).with_name("soilsuite")
    cmd = [str(exe), "composite", str(catalog), "--start", start, "--end", end, "--out", str(out), "--overwrite",
           "--max-memory", "2GB", "--resolution", "20", "--periods", "year", "--quiet", *extra]
    import bench_composite as B

    t = time.perf_counter()
    with B.TreeCPU() as tree:  # the whole tree, Dask's forkserver and its workers included
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(src))
        wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    import hashlib

    digest = hashlib.sha256()
    for f in sorted(out.rglob("*.tif")):
        digest.update(str(f.relative_to(out)).encode() + f.read_bytes())
    return {"cpu": tree.seconds, "wall": wall, "command": " ".join(cmd),
            "tifs": digest.hexdigest()}


def _child(catalog: Path, out: Path, start: str, end: str, cprofile: str | None, src: str | None = None) -> dict:
    cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--child", str(catalog), str(out), start, end]
    if cprofile:
        cmd += ["--cprofile", cprofile]
    import bench_composite as B

    with B.TreeCPU() as tree:
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(src))
    if r.returncode:
        raise RuntimeError(f"staged run failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["tree_cpu"] = tree.seconds
    return res


def _decode_cpu(reads) -> float:
    import bench_decode as D

    c = time.process_time()
    D.decode(reads, threads=1, gdal_threads="1")
    return time.process_time() - c


def measure(size: int, dates: int, repeat: int, cprofile: str | None = None, workers: tuple[int, ...] = (1, 2),
            folder: Path | None = None, before: str | None = None) -> dict:
    """Build/reuse the bench archive; the staged run, the CLI runs and the decode limit,
    interleaved ``repeat`` times (and the same for the package copy ``before``, if given).
    Returns the medians per variant (``after``: this checkout; ``before``)."""
    sys.path.insert(0, str(HERE))
    import bench_composite as B
    import bench_decode as D

    folder = folder or ROOT / "bench_out" / f"composite_{size}x{dates}"
    archive = B.build_archive(folder, size, dates)
    catalog = archive / "catalog.json"
    start, end = str(B.START), str(B.START + dt.timedelta(days=3650))
    reads, info = D.needed_reads(catalog, B.START, B.START + dt.timedelta(days=3650))
    D.decode(reads, threads=1)  # page cache and GDAL drivers warm
    variants = {"after": None, **({"before": before} if before else {})}
    keys = ["staged", "sync", *(f"w{w}" for w in workers)]
    runs = {v: {k: [] for k in keys} for v in variants}
    decode = []
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        tmp = Path(tmp)
        for src in variants.values():  # numba caches and imports of each copy warm
            _cli(catalog, tmp / "warm", start, end, ["--workers", "1", "--scheduler", "sync"], src)
        for k in range(repeat):
            decode.append(_decode_cpu(reads))
            for v, src in variants.items():
                runs[v]["staged"].append(_child(catalog, tmp / "staged", start, end,
                                                cprofile if k == 0 and v == "after" else None, src))
                runs[v]["sync"].append(_cli(catalog, tmp / "sync", start, end,
                                            ["--workers", "1", "--scheduler", "sync"], src))
                for w in workers:
                    runs[v][f"w{w}"].append(_cli(catalog, tmp / f"w{w}", start, end, ["--workers", str(w)], src))
    med = statistics.median
    digests = {x["tifs"] for r in runs.values() for k in keys if k != "staged" for x in r[k]}
    res = {"archive": {"size": size, "dates": dates, **info}, "decode_cpu": med(decode), "decode_runs": decode,
           "repeat": repeat, "variants": {}, "identical_products": len(digests) == 1}
    for v, r in runs.items():
        st = r["staged"]
        res["variants"][v] = {
            "rows": {name: med(x["rows"][name] for x in st) for name in st[0]["rows"]},
            "staged_total": med(x["total"] for x in st), "staged_wall": med(x["wall"] for x in st),
            "tiles": st[0]["tiles"], "tile_side": st[0]["tile_side"],
            "cli": {name: {"cpu": med(x["cpu"] for x in r[name]), "wall": med(x["wall"] for x in r[name]),
                           "cpu_runs": [round(x["cpu"], 2) for x in r[name]]} for name in keys if name != "staged"},
        }
    return res


def report(res: dict) -> str:
    dec = res["decode_cpu"]
    a = res["archive"]
    vs = res["variants"]
    names = list(vs)[::-1]  # before, after
    head = " | ".join(f"{v} CPU s | {v} / decode" for v in names)
    lines = [f"archive build_archive({a['size']}, {a['dates']}): {a['pixels'] / 1e6:.2f} M px, "
             f"{a['observations']} observations, {a['files']} asset files; medians of {res['repeat']} "
             f"interleaved repeats; CPU seconds",
             f"raw decode limit (1 thread, CPU): {dec:.2f} s",
             "product COGs of every CLI run byte-identical: " + ("yes" if res["identical_products"] else "NO"),
             "",
             "staged run (--scheduler sync, " + ", ".join(f"{v}: {vs[v]['tiles']} tiles of {vs[v]['tile_side']} px"
                                                          for v in names) + "), CPU s per stage:",
             "",
             f"| stage | {head} | share ({names[-1]}) |",
             "|---|" + "---|---|" * len(names) + "---|"]
    last = vs[names[-1]]
    for row in last["rows"]:
        cells = " | ".join(f"{vs[v]['rows'].get(row, float('nan')):.2f} | {vs[v]['rows'].get(row, 0) / dec:.2f}"
                           for v in names)
        lines.append(f"| {row} | {cells} | {100 * last['rows'][row] / last['staged_total']:.1f} % |")
    cells = " | ".join(f"**{vs[v]['staged_total']:.2f}** | **{vs[v]['staged_total'] / dec:.2f}**" for v in names)
    lines.append(f"| **whole run in one process** | {cells} | 100 % |")
    lines += ["", "the CLI command (CPU of the process tree; wall):", "",
              f"| command | {head} | " + " | ".join(f"{v} wall s" for v in names) + " |",
              "|---|" + "---|---|" * len(names) + "---|" * len(names)]
    label = {"sync": "--workers 1 --scheduler sync (one process)"}
    for k in last["cli"]:
        cells = " | ".join(f"{vs[v]['cli'][k]['cpu']:.2f} | {vs[v]['cli'][k]['cpu'] / dec:.2f}" for v in names)
        walls = " | ".join(f"{vs[v]['cli'][k]['wall']:.1f}" for v in names)
        lines.append(f"| {label.get(k, f'--workers {k[1:]}')} | {cells} | {walls} |")
    for k in last["cli"]:
        if k.startswith("w"):
            cells = " | ".join(f"{vs[v]['cli'][k]['cpu'] - vs[v]['cli']['sync']['cpu']:.2f} | "
                               f"{(vs[v]['cli'][k]['cpu'] - vs[v]['cli']['sync']['cpu']) / dec:.2f}" for v in names)
            lines.append(f"| --workers {k[1:]} less the one-process run (Dask cluster) | {cells} |"
                         + " |" * len(names))
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("--child", nargs=4)
        ap.add_argument("--cprofile")
        a = ap.parse_args(argv)
        print(json.dumps(staged_run(*a.child, cprofile=a.cprofile)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="CLI runs with these --workers")
    ap.add_argument("--cprofile", help="write a cProfile of the first staged run here")
    ap.add_argument("--before", help="also measure the package in this folder (a copy of another version's "
                    "src/, put first on PYTHONPATH), interleaved: a before/after table")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    res = measure(a.size, a.dates, a.repeat, a.cprofile, tuple(a.workers), before=a.before)
    print(report(res))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
