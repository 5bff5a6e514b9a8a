"""Do out-of-bag tails predict held-out tails? (issue 16, interval coverage)

The quantile levels of ``SoilModel`` are calibrated on out-of-bag predictions of the training
rows. If the out-of-bag residual tails understated the held-out ones, a calibration on inner
cross-validation (out-of-fold quantiles) would be needed. This bench measures, per LimeSoDa
task and for the raw forest levels 0.05 / 0.95 (no calibration), the shares of observations
strictly below Q0.05 and strictly above Q0.95:

- ``oob``: the out-of-bag quantiles of each outer training fold's forest on its training rows;
- ``inner``: out-of-fold quantiles of an inner 5-fold CV inside each outer training fold
  (forests of half the trees);
- ``held``: the outer forest on the held-out fold (the package's 10 folds).

All in float64 with quantile-forest's own ``predict`` (a quantile is a training value, so a tie
with a held-out lab value stays a tie and counts as inside). The forest is soilsuite's
default (``max_features=0.5``, ``min_samples_leaf=1``, every training sample in the leaves) on
the covariates as given (no reduction, no trend).

Usage::

    python -P bench/dsm_oob_vs_cv.py [--tasks G.150:SOC,BB.72:SOC,...] [--trees 200] [--data .realdata/limesoda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dsm_limesoda import load, target_columns  # noqa: E402

#: the seven tasks below PICP90 0.85 before the float32 fix (docs/dsm.md)
DEFAULT = "G.150:SOC,BB.72:SOC,PC.45:SOC,MG.44:pH,SL.125:pH,SSP.58:pH,UL.120:pH"


def _qrf(trees: int, seed: int):
    from quantile_forest import RandomForestQuantileRegressor

    return RandomForestQuantileRegressor(n_estimators=trees, max_features=0.5, min_samples_leaf=1,
                                         max_samples_leaf=None, random_state=seed, n_jobs=-1)


def tails(X: np.ndarray, y: np.ndarray, folds: np.ndarray, trees: int, seed: int = 0) -> dict:
    """Counts below Q0.05 / above Q0.95 and totals for oob, inner and held (see the module doc)."""
    from sklearn.model_selection import KFold

    lv = [0.05, 0.95]
    out = {k: np.zeros(3) for k in ("oob", "inner", "held")}

    def add(key, obs, q):
        out[key] += [np.sum(obs < q[:, 0]), np.sum(obs > q[:, 1]), len(obs)]

    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        m = _qrf(trees, seed).fit(X[tr], y[tr])
        add("oob", y[tr], np.asarray(m.predict(X[tr], quantiles=lv, oob_score=True)))
        add("held", y[te], np.asarray(m.predict(X[te], quantiles=lv)))
        Xt, yt = X[tr], y[tr]
        for a, b in KFold(5, shuffle=True, random_state=seed + int(f)).split(Xt):
            mi = _qrf(max(10, trees // 2), seed).fit(Xt[a], yt[a])
            add("inner", yt[b], np.asarray(mi.predict(Xt[b], quantiles=lv)))
    return {k: (v[0] / v[2], v[1] / v[2], int(v[2])) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--tasks", default=DEFAULT, help="comma-separated dataset:target (SOC, pH, clay)")
    ap.add_argument("--trees", type=int, default=200)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"LimeSoDa not found in {args.data}; run `make realdata`", file=sys.stderr)
        return 2
    print(f"{'task':12s} {'values':>6s}  {'oob below/above':>16s}  {'inner below/above':>17s}  "
          f"{'held-out below/above':>20s}")
    for task in args.tasks.split(","):
        ds, tname = task.strip().split(":")
        df, folds = load(args.data / f"{ds}.npz")
        tcols = target_columns(df)
        X = df[[c for c in df.columns if c not in tcols.values()]].to_numpy(dtype="float32")
        y = df[tcols[tname]].to_numpy(dtype="float64")
        t = time.perf_counter()
        r = tails(X, y, folds, args.trees)
        cells = "  ".join(f"{r[k][0]:.3f} / {r[k][1]:.3f}".rjust(w) for k, w in (("oob", 16), ("inner", 17),
                                                                                 ("held", 20)))
        print(f"{task:12s} {len(np.unique(y)):6d}  {cells}   ({time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
