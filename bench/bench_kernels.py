"""Benchmark: SCMaP numba kernels vs the numpy reference, single-threaded.

Builds a fixed random cube (seeded; int16 offset-corrected reflectance x 10000 mixing soil and
vegetation spectra, cloud blobs covering ~40 % of the observations, 1 % nodata) and runs every
stage with :mod:`soilsuite.kernels.reference` and with the kernels (serial twins,
``numba.set_num_threads(1)``) on the same arrays, after a warm-up that excludes compile time.
Each side runs ``repeat`` times back to back (reference first) and each stage reports the best
run of each side. Prints one line per stage and overall:
throughput in pixel-observations (T * Y * X) per second of reference and kernel, the time per
run, and the ratio reference time / kernel time (issue 14 target: overall >= 35x; issue 5: 20x).
Also checks that both give the same masks, flags, sums and products.

``--clock wall`` (default) times with ``time.perf_counter``; ``--clock cpu`` with
``time.process_time``, the CPU time of this process: both sides are single-threaded, so on an
idle machine the two agree, and on a shared machine the CPU time is not inflated by the time the
process waits for a core (other processes still share the caches and memory bandwidth).

Usage::

    .venv/bin/python bench/bench_kernels.py [--size 512] [--dates 40] [--repeat 3] [--periods 1] [--clock wall]

``--before FILE`` compares with an earlier ``kernels/composite.py`` (e.g.
``git show HEAD:src/soilsuite/kernels/composite.py > /tmp/composite_before.py``), loaded as a
module of the installed package: ``--repeat`` rounds, each running the whole bench once with the
earlier kernels and once with today's (interleaved), and prints each round's stage times and
ratios.

or ``from bench_kernels import run; run(size, dates) -> dict`` (keys: see :func:`run`).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from soilsuite.kernels import composite as K
from soilsuite.kernels import masks
from soilsuite.kernels import reference as R
from soilsuite.kernels.selectors import scmap

STAGES = ("valid_mask", "select", "classify", "accumulate", "collapse", "finalize")
#: Dry soil and green vegetation spectra (DN = reflectance x 10000), BANDS order.
SOIL = np.array([900, 1200, 1450, 1600, 1700, 1800, 1900, 2000, 2900, 2500], np.float64)
VEG = np.array([300, 600, 350, 1100, 2600, 3200, 3500, 3600, 1900, 950], np.float64)
CLOUD = np.array([4500, 4600, 4700, 4800, 4900, 5000, 5000, 5000, 4000, 3500], np.float64)


def make_cube(size: int = 512, dates: int = 40, seed: int = 0, cloud_fraction: float = 0.4, n_periods: int = 1):
    """A reproducible synthetic tile.

    Returns
    -------
    dict
        ``refl`` int16 [T, 10, Y, X], ``scl`` uint8 [T, Y, X], ``sun_zenith`` float32 [T] (deg),
        ``threshold`` float32 [Y, X], ``never_bare`` bool [Y, X], ``other`` bool [Y, X],
        ``period`` int32 [T]: ``n_periods`` equal runs of dates.
    """
    rng = np.random.default_rng(seed)
    t, n = dates, size
    cell = 16
    nc = -(-n // cell)
    # cloud blobs: coarse noise upsampled, thresholded at the wanted quantile
    coarse = rng.random((t, nc + 1, nc + 1))
    field = np.repeat(np.repeat(coarse, cell, axis=1), cell, axis=2)[:, :n, :n]
    field += 0.15 * rng.random((t, n, n))
    cloudy = field > np.quantile(field, 1 - cloud_fraction, axis=(1, 2), keepdims=True)
    scl = np.where(rng.random((t, n, n)) < 0.5, 4, 5).astype(np.uint8)
    scl[cloudy] = rng.choice(np.array([3, 8, 9, 10], np.uint8), size=int(cloudy.sum()))
    scl[rng.random((t, n, n)) < 0.002] = 0
    # vegetation fraction per pixel-date, brightness per pixel
    veg = rng.beta(0.8, 0.8, (t, 1, n, n)).astype(np.float32)
    veg[rng.random((t, 1, n, n)) < 0.25] *= 0.15  # tilled / sown fields: mostly bare soil
    bright = rng.uniform(0.6, 1.4, (1, 1, n, n)).astype(np.float32)
    refl = np.empty((t, 10, n, n), np.int16)
    for b in range(10):
        v = (1 - veg[:, 0]) * SOIL[b] * bright[:, 0] + veg[:, 0] * VEG[b]
        v += rng.normal(0, 60, (t, n, n)).astype(np.float32) - 200
        v = np.where(cloudy, CLOUD[b] + rng.normal(0, 300, (t, n, n)), v)
        refl[:, b] = np.clip(np.rint(v), -1000, 20000).astype(np.int16)
    refl[rng.random(refl.shape) < 0.001] = -32768
    sun_zenith = rng.uniform(25, 75, t).astype(np.float32)
    threshold = (0.2 + rng.normal(0, 0.02, (n, n))).astype(np.float32)
    never_bare = rng.random((n, n)) < 0.02
    other = never_bare | (rng.random((n, n)) < 0.01)
    period = (np.arange(t) * n_periods // t).astype(np.int32)
    return dict(refl=refl, scl=scl, sun_zenith=sun_zenith, threshold=threshold, never_bare=never_bare,
                other=other, period=period)


#: The clocks of ``--clock``: wall time, or the CPU time of this process.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _stages(impl, cube, n_periods=1, clock="wall"):
    """Run all stages with ``impl`` (mask module, SCMaP selector function, composite module);
    return (times dict, results)."""
    vm, sel, cp = impl
    now = CLOCKS[clock]
    times = {}
    c = cube
    t0 = now()
    valid = vm.valid_mask(c["scl"], c["refl"], c["sun_zenith"], dilation_px=11, max_sun_zenith=70.0)
    t1 = now()
    cand, pv = sel(c["refl"], valid, threshold=c["threshold"])
    t2 = now()
    flags = cp.classify(c["refl"], valid, cand, c["never_bare"], 3.0, 4.0, 80.0)
    t3 = now()
    acc = cp.accumulate(c["refl"], flags, c["period"], n_periods)
    t4 = now()
    whole = cp.collapse(acc) if n_periods > 1 else acc
    t5 = now()
    prods = cp.finalize(whole, c["other"], 3, "t")
    t6 = now()
    times = dict(zip(STAGES, np.diff([t0, t1, t2, t3, t4, t5, t6]), strict=True))
    return times, (valid, pv, flags, acc, prods)


def _check_same(ref, ker):
    valid_r, pv_r, flags_r, acc_r, prods_r = ref
    valid_k, pv_k, flags_k, acc_k, prods_k = ker
    assert np.array_equal(valid_r, valid_k), "valid_mask differs"
    assert np.array_equal(pv_r, pv_k, equal_nan=True), "select (pvir2) differs"
    assert np.array_equal(flags_r, flags_k), "classify differs"
    for name, a, b in zip(acc_r._fields, acc_r, acc_k, strict=True):
        assert np.array_equal(a, b), f"accumulate {name} differs"
    for name in prods_r:
        np.testing.assert_allclose(prods_k[name], prods_r[name], rtol=1e-6, atol=0, err_msg=name)


#: Issue 14 (issue 5: 20x): kernels at least this many times faster than the numpy reference, overall.
TARGET_RATIO = 35.0


def run(size: int = 512, dates: int = 40, repeat: int = 3, seed: int = 0, periods: int = 1,
        verbose: bool = True, clock: str = "wall") -> dict:
    """Benchmark all stages, single-threaded; return figures per stage and overall.

    Parameters
    ----------
    size, dates : int
        Cube of ``dates`` x 10 bands x ``size`` x ``size`` pixels (:func:`make_cube`).
    repeat : int
        Runs of each side (reference ``repeat`` times, then kernels ``repeat`` times); the
        best time of each side is kept per stage.
    seed : int
        Seed of :func:`make_cube`.
    periods : int
        Accumulate into this many periods, then ``collapse`` (timed only if > 1).
    verbose : bool
        Print the table.
    clock : {"wall", "cpu"}
        ``time.perf_counter`` or ``time.process_time`` (the CPU time of this process).

    Returns
    -------
    dict
        - ``size``, ``dates``, ``periods``, ``repeat``, ``threads`` (always 1): the set-up;
        - ``pixel_observations``: ``dates * size * size``, the unit of all throughputs;
        - ``stages``: ``{name: {"reference_s", "kernel_s", "reference_pxobs_per_s",
          "kernel_pxobs_per_s", "ratio"}}`` for ``valid_mask, select (SCMaP: PV+IR2 <= threshold), classify, accumulate,
          [collapse,] finalize, overall`` (seconds per run, pixel-observations per second,
          reference_s / kernel_s); ``collapse`` (numpy in both) only with ``periods > 1``;
          ``overall`` is the sum of the stages' best times;
        - ``ratio``: ``stages["overall"]["ratio"]``;
        - ``kernel_pxobs_per_s``, ``reference_pxobs_per_s``: the overall throughputs;
        - ``target_ratio`` (35.0) and ``meets_target`` (``ratio >= target_ratio``);
        - ``valid_fraction``, ``bare_fraction``: shares of valid / bare observations in the cube.
    """
    numba.set_num_threads(1)
    kernels = (masks, scmap.select, K)
    reference = (R, scmap.reference, R)
    # warm-up: compile (or load from cache) outside the timed region
    small = make_cube(32, 6, seed=1, n_periods=2)
    _stages(kernels, small, 2)
    _stages(reference, small, 2)  # imports (scipy.stats) outside the timed region
    cube = make_cube(size, dates, seed=seed, n_periods=periods)
    n_obs = size * size * dates
    # each side runs back to back, so that its timings do not depend on the heap left behind
    # by the other (the reference's large temporaries are sensitive to malloc's state)
    t_ref = t_ker = None
    for _ in range(max(1, repeat)):
        t, res_ref = _stages(reference, cube, periods, clock)
        t_ref = t if t_ref is None else {k: min(t_ref[k], t[k]) for k in t}
    for _ in range(max(1, repeat)):
        t, res_ker = _stages(kernels, cube, periods, clock)
        t_ker = t if t_ker is None else {k: min(t_ker[k], t[k]) for k in t}
    _check_same(res_ref, res_ker)
    if periods == 1:
        del t_ref["collapse"], t_ker["collapse"]
    t_ref["overall"] = sum(t_ref.values())
    t_ker["overall"] = sum(t_ker.values())
    stages = {}
    for name in t_ref:
        stages[name] = dict(
            reference_s=t_ref[name], kernel_s=t_ker[name],
            reference_pxobs_per_s=n_obs / t_ref[name], kernel_pxobs_per_s=n_obs / t_ker[name],
            ratio=t_ref[name] / t_ker[name],
        )
    flags = res_ker[2]
    ov = stages["overall"]
    out = dict(size=size, dates=dates, periods=periods, repeat=max(1, repeat), pixel_observations=n_obs, threads=1,
               clock=clock,
               stages=stages, ratio=ov["ratio"], kernel_pxobs_per_s=ov["kernel_pxobs_per_s"],
               reference_pxobs_per_s=ov["reference_pxobs_per_s"], target_ratio=TARGET_RATIO,
               meets_target=bool(ov["ratio"] >= TARGET_RATIO),
               valid_fraction=float((flags & K.FLAG_VALID).astype(bool).mean()),
               bare_fraction=float((flags & K.FLAG_BARE).astype(bool).mean()))
    if verbose:
        print(f"cube T={dates} B=10 Y=X={size} P={periods}: {n_obs / 1e6:.1f} M pixel-observations, "
              f"valid {out['valid_fraction']:.0%}, bare {out['bare_fraction']:.0%}, 1 thread, {clock} clock, "
              f"best of {out['repeat']} runs each; kernel == reference checked")
        print(f"{'stage':<11} {'reference':^29} {'kernel':^29} {'ratio':>7}")
        for name, s in stages.items():
            print(f"{name:<11} {s['reference_pxobs_per_s'] / 1e6:8.2f} Mpxobs/s {s['reference_s'] * 1e3:7.1f} ms"
                  f" {s['kernel_pxobs_per_s'] / 1e6:8.2f} Mpxobs/s {s['kernel_s'] * 1e3:7.1f} ms"
                  f" {s['ratio']:7.1f}x")
        verdict = "meets" if out["meets_target"] else "MISSES"
        print(f"overall kernel throughput {out['kernel_pxobs_per_s'] / 1e6:.1f} M pixel-observations/s; "
              f"ratio {out['ratio']:.1f}x {verdict} the {TARGET_RATIO:.0f}x target")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="tile side, pixels")
    ap.add_argument("--dates", type=int, default=40, help="number of observations T")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (best of each is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--periods", type=int, default=1, help="accumulate into P periods, then collapse")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time, or the CPU time of this process (for a shared machine)")
    ap.add_argument("--before", type=str, default=None,
                    help="an earlier kernels/composite.py to compare with, interleaved")
    a = ap.parse_args(argv)
    if a.before:
        return compare_before(a.before, a.size, a.dates, a.repeat, a.seed, a.periods, a.clock)
    run(a.size, a.dates, a.repeat, a.seed, a.periods, clock=a.clock)


def compare_before(path: str, size: int, dates: int, rounds: int, seed: int = 0, periods: int = 1,
                   clock: str = "wall") -> dict:
    """:func:`run` with the kernels of an earlier ``kernels/composite.py`` (file ``path``) and
    with today's, interleaved for ``rounds`` rounds; returns ``{"before": [...], "after": [...]}``
    of per-round ``{stage: kernel seconds, "ratio": overall ratio}``."""
    import importlib.util
    import sys

    global K
    spec = importlib.util.spec_from_file_location("soilsuite.kernels._composite_before", path)
    before = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = before
    spec.loader.exec_module(before)
    after = K
    res: dict = {"before": [], "after": []}
    try:
        for r in range(max(1, rounds)):
            for name, mod in (("before", before), ("after", after)):
                K = mod
                out = run(size, dates, 1, seed, periods, verbose=False, clock=clock)
                res[name].append({k: v["kernel_s"] for k, v in out["stages"].items()} | {"ratio": out["ratio"]})
                print(f"round {r + 1} {name:<6} ratio {out['ratio']:5.1f}x  " + "  ".join(
                    f"{k} {v['kernel_s'] * 1e3:.1f}" for k, v in out["stages"].items()) + " ms", flush=True)
    finally:
        K = after
    return res


if __name__ == "__main__":
    main()
