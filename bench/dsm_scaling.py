"""Fit time and peak memory of the soil model's defaults against a plain quantile forest (issue 16.5).

For n = 1e2, 1e3, 1e4, 5e4 training samples, fits

- ``plain``: :class:`quantile_forest.RandomForestQuantileRegressor` (``max_samples_leaf=None``,
  ``max_features=0.5``) with the same trees, all cores;
- ``default``: ``SoilModel()`` with its defaults (calibration of the quantile levels on the
  out-of-bag quantiles, area-of-applicability reference; ``reduce="auto"``, ``spatial="none"``)
  and the same trees;
- ``before`` (with ``--before FILE``): ``SoilModel`` of an earlier ``src/soilsuite/dsm/model.py``
  (e.g. ``git show HEAD~1:src/soilsuite/dsm/model.py > /tmp/model_before.py``), loaded as a module
  of the installed package; or (with ``--before-tree DIR``) the whole package of another checkout
  (e.g. ``git worktree add /tmp/before HEAD~1``): ``SoilModel()`` of ``DIR/src`` (put first on
  the fit process's ``PYTHONPATH``).

Data: synthetic, ``p`` = 20 correlated Gaussian covariates, ``y = 2 x0 + sin(3 x1) + x2 x3 + N(0, 1)``
(not soil data; fit cost depends on n, p and the trees, not on the meaning of the columns).

Each fit runs in its own process (``--one``) after a warm-up fit of 60 samples and 5 trees (imports,
loading numba's cached kernels: once per process, not timed), so that peak memory is that fit's:
the resident set size's high-water mark (``ru_maxrss``) minus the resident size just before the
fit, MB (the warm-up's own peak is lower for all n but the smallest). The kinds are
interleaved (plain, default, before, plain, ...) and the ratios default / plain are of the same
repeat. Timings are wall-clock on a shared machine: read the ratios.

Usage::

    python -P bench/dsm_scaling.py [--ns 100,1000,10000,50000] [--trees 100] [--repeats 1]
                                   [--before FILE | --before-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path


def data(n: int, p: int = 20, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    L = rng.normal(size=(p, p)) / np.sqrt(p)
    X = rng.normal(size=(n, p)) @ (np.eye(p) + 0.5 * L)
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(size=n)
    return X.astype("float32"), y


def one(kind: str, n: int, trees: int, before: str | None) -> dict:
    import resource

    import psutil

    X, y = data(n)
    if kind == "plain":
        from quantile_forest import RandomForestQuantileRegressor

        make = lambda: RandomForestQuantileRegressor(n_estimators=trees, max_features=0.5,  # noqa: E731
                                                     max_samples_leaf=None, random_state=0, n_jobs=-1)
    elif kind == "default":
        from soilsuite.dsm import SoilModel

        make = lambda: SoilModel(target="y", unit="", n_estimators=trees)  # noqa: E731
    else:
        import importlib.util

        import soilsuite.dsm  # noqa: F401  (parent package of the module loaded below)

        spec = importlib.util.spec_from_file_location("soilsuite.dsm._model_before", before)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        make = lambda: mod.SoilModel(target="y", unit="", n_estimators=trees)  # noqa: E731
    with warnings.catch_warnings():  # imports, numba's cached kernels: once per process, not timed
        warnings.simplefilter("ignore")
        Xw, yw = data(60, seed=1)
        make().set_params(n_estimators=5).fit(Xw, yw)
    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make().fit(X, y)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"kind": kind, "n": n, "seconds": dt, "peak_mb": max(0.0, (peak - rss0) / 2**20)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="100,1000,10000,50000")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--before", default=None, help="an earlier model.py to compare with")
    ap.add_argument("--before-tree", type=Path, default=None, help="another checkout whose src/ package to compare with")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.trees, args.before)))
        return 0
    if args.before and args.before_tree:
        ap.error("give --before or --before-tree, not both")
    kinds = ["plain", "default"] + (["before"] if args.before or args.before_tree else [])
    rows = []
    for n in (int(v) for v in args.ns.split(",")):
        for rep in range(args.repeats):
            got = {}
            for kind in kinds:
                cmd = [sys.executable, "-P", __file__, "--one", kind, str(n), "--trees", str(args.trees)]
                env = None
                if args.before:
                    cmd += ["--before", args.before]
                elif args.before_tree and kind == "before":  # the other checkout's package, run as "default"
                    cmd[cmd.index("before")] = "default"
                    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                        [str(args.before_tree.resolve() / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
                res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                                env=env).stdout.splitlines()[-1])
                got[kind] = res
                res["kind"] = kind
                rows.append({**res, "repeat": rep})
            line = f"n={n:6d} rep {rep}: " + "  ".join(f"{k} {v['seconds']:7.2f} s {v['peak_mb']:7.0f} MB"
                                                     for k, v in got.items())
            line += f"  default/plain time {got['default']['seconds'] / got['plain']['seconds']:.2f}"
            if "before" in got:
                line += f", before/plain {got['before']['seconds'] / got['plain']['seconds']:.2f}"
            print(line, flush=True)
    import pandas as pd

    tab = pd.DataFrame(rows)
    md = ["# Fit time and memory against n (synthetic, p = 20)", "",
          f"{args.trees} trees; each fit in its own process; ratios within one repeat, then the median.", "",
          "| n | plain (s) | default (s) | default / plain | " + ("before (s) | before / plain | " if "before" in kinds else "")
          + "plain peak (MB) | default peak (MB) |", "|---|---|---|---|" + ("---|---|" if "before" in kinds else "") + "---|---|"]
    for n, g in tab.groupby("n"):
        p = g[g.kind == "plain"].set_index("repeat")
        d = g[g.kind == "default"].set_index("repeat")
        r = (d.seconds / p.seconds).median()
        cells = [f"{n}", f"{p.seconds.median():.2f}", f"{d.seconds.median():.2f}", f"{r:.2f}"]
        if "before" in kinds:
            b = g[g.kind == "before"].set_index("repeat")
            cells += [f"{b.seconds.median():.2f}", f"{(b.seconds / p.seconds).median():.2f}"]
        cells += [f"{p.peak_mb.median():.0f}", f"{d.peak_mb.median():.0f}"]
        md.append("| " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "dsm_scaling.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md) + "\n")
    tmp.replace(out)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
