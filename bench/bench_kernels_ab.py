"""Benchmark: the kernels of an earlier commit vs today's, stage by stage, interleaved.

Loads an earlier ``kernels/masks.py``, ``kernels/indices.py`` and ``kernels/composite.py`` from a
folder (``git show REV:src/soilsuite/kernels/composite.py > DIR/composite.py``, the same for
``masks.py`` and ``indices.py``) as modules of the installed package, and runs
:func:`bench_kernels.make_cube`'s tile through valid_mask, select (SCMaP: the earlier
``indices.pvir2`` then ``pvir2 <= threshold`` in numpy, as the earlier selector did; today's
:func:`soilsuite.kernels.selectors.scmap.select`), classify, accumulate and finalize with both,
single-threaded, ``--rounds`` rounds alternating which side goes first, the outputs of a run
freed before the next (the allocator's state otherwise favours one side). Prints the median
time of every stage (CPU clock, ``time.process_time``, by default) and checks that both sides
give identical masks, flags, sums and products.

Usage::

    mkdir -p /tmp/before && for f in masks indices composite; do
        git show HEAD:src/soilsuite/kernels/$f.py > /tmp/before/$f.py; done
    .venv/bin/python -P bench/bench_kernels_ab.py /tmp/before --size 256 --dates 40 --rounds 11
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_kernels as bk  # noqa: E402

from soilsuite.kernels import composite, indices, masks  # noqa: E402
from soilsuite.kernels.selectors import scmap  # noqa: E402

STAGES = bk.STAGES  # collapse is ~0 here: one period


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"soilsuite.kernels._before_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(before_dir: str, size: int = 256, dates: int = 40, rounds: int = 11, clock: str = "cpu") -> dict:
    """Median seconds per stage of the earlier (``"before"``) and today's (``"after"``) kernels."""
    numba.set_num_threads(1)
    d = Path(before_dir)
    old_idx = _load("indices", d / "indices.py")

    def old_select(refl, valid, *, threshold):
        pv = old_idx.pvir2(refl)
        return np.less_equal(pv, np.asarray(threshold, np.float32)[None]), pv

    impls = {"before": (_load("masks", d / "masks.py"), old_select, _load("composite", d / "composite.py")),
             "after": (masks, scmap.select, composite)}
    assert indices  # today's select goes through indices.pvir2_at_most
    small = bk.make_cube(32, 6, seed=1)
    for impl in impls.values():  # compile outside the timed region
        bk._stages(impl, small, 1, clock)
    cube = bk.make_cube(size, dates, seed=0)
    times: dict[str, list] = {k: [] for k in impls}
    last = {}
    for r in range(max(1, rounds)):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))
        for name in order:
            t, out = bk._stages(impls[name], cube, 1, clock)
            times[name].append(t)
            if r == rounds - 1:
                last[name] = out
            del out
    b, a = last["before"], last["after"]
    for x, y in zip(b[:3], a[:3], strict=True):
        assert np.array_equal(x, y, equal_nan=True), "valid / pvir2 / flags differ"
    for x, y in zip(b[3], a[3], strict=True):
        assert np.array_equal(x, y), "accumulator differs"
    for n in b[4]:
        assert np.array_equal(b[4][n], a[4][n], equal_nan=True), f"product {n} differs"
    res = {}
    for name, ts in times.items():
        res[name] = {s: float(np.median([t[s] for t in ts])) for s in STAGES}
        res[name]["overall"] = float(np.median([sum(t.values()) for t in ts]))
    print(f"{size} x {size} px x {dates} dates, {rounds} interleaved rounds, {clock} clock, medians (ms); "
          "outputs identical")
    print(f"{'':<7}" + "".join(f"{s:>12}" for s in (*STAGES, "overall")))
    for name, st in res.items():
        print(f"{name:<7}" + "".join(f"{1e3 * v:12.1f}" for v in st.values()))
    print("after / before: " + "  ".join(f"{s} {res['after'][s] / res['before'][s]:.2f}" for s in res["after"]))
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before_dir", help="folder with the earlier masks.py, indices.py, composite.py")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dates", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--clock", choices=sorted(bk.CLOCKS), default="cpu")
    a = ap.parse_args(argv)
    run(a.before_dir, a.size, a.dates, a.rounds, a.clock)


if __name__ == "__main__":
    main()
