"""Regional histogram kernel of ``calibrate-threshold`` vs its numpy reference (issue 11).

Same arrays, single thread, interleaved repeats (the machine is shared: report the ratio of the
medians, measured in one run). The kernel is one pass over the observations; the reference
does one masked ``bincount`` per region and class.

Usage::

    .venv/bin/python -P bench/bench_thresholds.py [--size 512] [--dates 60] [--regions 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dates", type=int, default=60)
    ap.add_argument("--regions", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    from soilsuite.kernels import thresholds as K

    rng = np.random.default_rng(0)
    n, t = a.size, a.dates
    pv = rng.uniform(-0.5, 1.5, (t, n, n)).astype(np.float32)
    valid = rng.uniform(size=(t, n, n)) < 0.6
    side = int(np.sqrt(a.regions))
    yy, xx = np.mgrid[0:n, 0:n]
    region = ((yy * side // n) * side + xx * side // n).astype(np.int32)
    cls = rng.integers(-1, 2, (n, n)).astype(np.int8)
    kw = dict(n_regions=side * side, lo=-1.0, hi=2.0, n_bins=300)
    K.region_histograms(pv[:1], valid[:1], region, cls, **kw)  # compile
    times = {"kernel": [], "reference": []}
    for _ in range(a.repeats):
        for name, fn in (("kernel", K.region_histograms), ("reference", K.region_histograms_reference)):
            t0 = time.perf_counter()
            out = fn(pv, valid, region, cls, **kw)
            times[name].append(time.perf_counter() - t0)
        assert out.sum() > 0
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"region_histograms {t} dates x {n} x {n} px, {side * side} regions, {a.repeats} interleaved repeats")
    print(f"  kernel    median {med['kernel']:.3f} s ({t * n * n / med['kernel'] / 1e6:.0f} M obs/s)")
    print(f"  reference median {med['reference']:.3f} s")
    print(f"  ratio reference / kernel: {med['reference'] / med['kernel']:.1f}x")


if __name__ == "__main__":
    main()
