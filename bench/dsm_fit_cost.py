"""Fit cost of the soil model's defaults on LimeSoDa training folds against a plain quantile forest.

Issue 16 asks that ``SoilModel()``'s fit stays within 2x the plain forest's. ``dsm_scaling.py``
measures that on synthetic data against n; this script measures it on the real training sets
of the LimeSoDa tasks, where ``trend="auto"`` compares two forests of the final size (up to
``soilsuite.dsm.trend.FINAL_MAX_ROWS`` rows) whenever the ridge alone beats the mean out of fold,
and keeps the chosen one's trees. For every task and each of the package's 10 folds, the
training rows are fitted by

- ``plain``: :class:`quantile_forest.RandomForestQuantileRegressor` (``max_samples_leaf=None``,
  ``max_features=0.5``, 500 trees, ``random_state=0``, all cores) on the covariates as given;
- ``default``: ``SoilModel()`` (reduction, trend decision, calibration, area of applicability);
- ``small``: the same with ``FINAL_MAX_ROWS = 0``: the decision on two forests of
  ``max(20, trees // 5)`` trees and the final forest grown afresh (the rule before);

the three interleaved per fold (order rotated), in this process, wall-clock seconds summed over
the folds; ``final`` = folds whose trend choice compared final-size forests. Read the ratios of
the same run (the machine may be shared).

Usage::

    python -P bench/dsm_fit_cost.py [--s2 | --datasets G.104,BB.250] [--trees 500]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from dsm_limesoda import load, selected, target_columns  # noqa: E402


def fold_costs(X: np.ndarray, y: np.ndarray, folds: np.ndarray, trees: int) -> dict:
    """Summed fit seconds of the three kinds over the folds, and the folds decided on the final forests."""
    from quantile_forest import RandomForestQuantileRegressor

    import soilsuite.dsm.trend as trend_mod
    from soilsuite.dsm import SoilModel

    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    X, y, folds = X[ok], y[ok], folds[ok]
    secs = {"plain": 0.0, "default": 0.0, "small": 0.0}
    final = 0
    rows = trend_mod.FINAL_MAX_ROWS
    for i, f in enumerate(np.unique(folds)):
        tr = folds != f
        kinds = list(secs)
        for kind in kinds[i % 3:] + kinds[:i % 3]:
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "plain":
                    RandomForestQuantileRegressor(n_estimators=trees, max_features=0.5, max_samples_leaf=None,
                                                  random_state=0, n_jobs=-1).fit(X[tr], y[tr])
                else:
                    trend_mod.FINAL_MAX_ROWS = rows if kind == "default" else 0
                    try:
                        m = SoilModel(target="x", unit="", n_estimators=trees, n_jobs=-1).fit(X[tr], y[tr])
                    finally:
                        trend_mod.FINAL_MAX_ROWS = rows
                    if kind == "default":
                        final += m.trend_.get("comparison_trees") == trees
            secs[kind] += time.perf_counter() - t
    return {**secs, "final": final, "folds": len(np.unique(folds))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    sel = ap.add_mutually_exclusive_group()
    sel.add_argument("--s2", action="store_true", help="the 10 datasets with Sentinel-2 covariates")
    sel.add_argument("--datasets", help="comma-separated dataset ids")
    ap.add_argument("--trees", type=int, default=500)
    args = ap.parse_args(argv)
    names = selected(args.data, args.s2, args.datasets)
    if names is None:
        return 2
    rows = []
    for ds in names:
        df, folds = load(args.data / f"{ds}.npz")
        tcols = target_columns(df)
        X = df[[c for c in df.columns if c not in set(tcols.values())]].to_numpy("float64")
        for tname, col in tcols.items():
            r = fold_costs(X, df[col].to_numpy(), np.asarray(folds), args.trees)
            rows.append({"dataset": ds, "target": tname, "n": len(df), **r,
                         "default/plain": r["default"] / r["plain"],
                         "small/plain": r["small"] / r["plain"]})
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
    tab = pd.DataFrame(rows)
    tot = tab[["plain", "default", "small"]].sum()
    print(f"{len(tab)} tasks, {int(tab['final'].sum())} of {int(tab['folds'].sum())} folds compared final-size "
          f"forests; summed fit seconds: plain {tot['plain']:.1f}, default {tot['default']:.1f} "
          f"({tot['default'] / tot['plain']:.2f}x), small comparison forests {tot['small']:.1f} "
          f"({tot['small'] / tot['plain']:.2f}x); per task default/plain: median "
          f"{tab['default/plain'].median():.2f}, max {tab['default/plain'].max():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
