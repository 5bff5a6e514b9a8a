"""Soil-map prediction speed: mean + Q0.05/Q0.50/Q0.95 per pixel, before and after (issue 14.7).

A ``SoilModel`` (500 trees) is fitted on 250 random samples of ``p`` = 16 covariates
(``y = 2 x0 + N(0, 1)``), then ``n`` random pixels are predicted in blocks of 65,536 rows (a
256 x 256 map block) by

- ``before``: the previous ``predict_array``: scikit-learn's forest mean
  (``RandomForestRegressor.predict``) plus quantile-forest's ``predict(X, quantiles=levels)``
  (each walks all trees; the quantiles scan all training values per pixel, single-threaded);
- ``after``: today's ``SoilModel.predict_array`` (the numba predictor of
  :mod:`soilsuite.dsm.fastforest`: one walk of the trees per pixel for the mean and every
  quantile, leaf samples counted tree by tree per block of pixels, blocks in parallel), and the
  same with ``n_jobs=1`` (serial: one core).

The models are fitted with ``trend="none"`` (the bench times the forest). Reported: wall seconds, CPU seconds (all threads: ``time.process_time``), pixels per
second and per CPU-second, and the ratios before / after of interleaved repeats (the median of
the per-repeat ratios). Outputs are checked equal (the forest quantiles bit for bit against
quantile-forest, the mean to float32 rounding).

Usage::

    python -P bench/dsm_predict_speed.py [--pixels 262144] [--trees 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=262_144)
    ap.add_argument("--trees", type=int, default=500)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from soilsuite.dsm import SoilModel
    from soilsuite.dsm.model import _rf_mean

    rng = np.random.default_rng(0)
    X = rng.normal(size=(250, args.p)).astype("float32")
    y = X[:, 0] * 2 + rng.normal(size=250)
    m = SoilModel(target="x", unit="", n_estimators=args.trees, n_jobs=-1, reduce="none", trend="none").fit(X, y)
    m1 = SoilModel(target="x", unit="", n_estimators=args.trees, n_jobs=1, reduce="none", trend="none").fit(X, y)
    Xp = rng.normal(size=(args.pixels, args.p)).astype("float32")
    levels = m.levels(m.quantiles)
    chunk = 65_536

    def before(model):
        out = np.empty((len(Xp), 4), np.float32)
        for i in range(0, len(Xp), chunk):
            xb = Xp[i:i + chunk]
            out[i:i + chunk, 0] = _rf_mean(model.forest_, xb)
            out[i:i + chunk, 1:] = model.forest_.predict(xb, quantiles=levels)
        return out

    def after(model):
        return np.concatenate([model.predict_array(Xp[i:i + chunk]) for i in range(0, len(Xp), chunk)])

    from soilsuite.dsm.fastforest import forest_predict

    # the forest quantiles themselves, bit for bit (and loads the cached numba kernels)
    assert np.array_equal(forest_predict(m._fast(), Xp[:4096], levels)[1],
                          m.forest_.predict(Xp[:4096], quantiles=levels))
    m.predict_array(Xp[:100])
    m1.predict_array(Xp[:100])
    runs = {"before": lambda: before(m), "after": lambda: after(m), "after_serial": lambda: after(m1)}
    res: dict[str, list] = {k: [] for k in runs}
    outs = {}
    for _ in range(args.repeats):
        for k, fn in runs.items():
            w, c = time.perf_counter(), time.process_time()
            outs[k] = fn()
            res[k].append((time.perf_counter() - w, time.process_time() - c))
    np.testing.assert_array_equal(outs["after"][:, 1:], outs["before"][:, 1:])
    np.testing.assert_allclose(outs["after"][:, 0], outs["before"][:, 0], rtol=1e-6)
    assert np.array_equal(outs["after"], outs["after_serial"])
    n = args.pixels
    med = {k: np.median(np.asarray(v), axis=0) for k, v in res.items()}
    print(f"{n:,} pixels x {args.p} covariates, {args.trees} trees, mean + 3 quantiles "
          f"(outputs equal: quantiles bit for bit, mean to float32)")
    for k, (w, c) in med.items():
        print(f"{k:13s} wall {w:7.2f} s ({n / w:9,.0f} px/s)   CPU {c:7.2f} s ({n / c:9,.0f} px per CPU-s)")
    wr = [b[0] / a[0] for b, a in zip(res["before"], res["after"], strict=True)]
    cr = [b[1] / a[1] for b, a in zip(res["before"], res["after_serial"], strict=True)]
    cp = [b[1] / a[1] for b, a in zip(res["before"], res["after"], strict=True)]
    print(f"before / after: wall {np.median(wr):.2f}x (all cores), CPU per pixel {np.median(cr):.2f}x (serial after), "
          f"{np.median(cp):.2f}x (all cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
