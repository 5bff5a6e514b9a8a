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
- ``full``: the same with ``EARLY_GAP`` infinite: always compared on the final forest's trees
  (the rule before the two-stage decision);
- ``small`` (only with ``--kinds``): the same with ``FINAL_MAX_ROWS = 0``: the decision on two
  forests of ``max(20, trees // 5)`` trees and the final forest grown afresh (the rule before
  that);

the kinds interleaved per fold (order rotated), in this process, wall-clock seconds summed over
the folds; ``compared`` = folds whose trend choice compared final-size forests, ``early`` = of
those, the ones decided on the first half of the trees. Read the ratios of the same run (the
machine may be shared).

Usage::

    python -P bench/dsm_fit_cost.py [--s2 | --datasets G.104,BB.250] [--trees 500] [--kinds plain,default,full]
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

#: the rule each kind runs: module settings of ``soilsuite.dsm.trend`` changed for that fit
KINDS = {"plain": None, "default": {}, "full": {"EARLY_GAP": float("inf")}, "small": {"FINAL_MAX_ROWS": 0}}


def fold_costs(X: np.ndarray, y: np.ndarray, folds: np.ndarray, trees: int, kinds: list[str]) -> dict:
    """Summed fit seconds of each kind over the folds; the folds whose default fit compared
    final-size forests (``compared``) and of those the ones decided at the first stage (``early``)."""
    from quantile_forest import RandomForestQuantileRegressor

    import soilsuite.dsm.trend as trend_mod
    from soilsuite.dsm import SoilModel

    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    X, y, folds = X[ok], y[ok], folds[ok]
    secs = dict.fromkeys(kinds, 0.0)
    compared = early = 0
    k = len(kinds)
    for i, f in enumerate(np.unique(folds)):
        tr = folds != f
        for kind in kinds[i % k:] + kinds[:i % k]:
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "plain":
                    RandomForestQuantileRegressor(n_estimators=trees, max_features=0.5, max_samples_leaf=None,
                                                  random_state=0, n_jobs=-1).fit(X[tr], y[tr])
                else:
                    saved = {name: getattr(trend_mod, name) for name in KINDS[kind]}
                    for name, value in KINDS[kind].items():
                        setattr(trend_mod, name, value)
                    try:
                        m = SoilModel(target="x", unit="", n_estimators=trees, n_jobs=-1).fit(X[tr], y[tr])
                    finally:
                        for name, value in saved.items():
                            setattr(trend_mod, name, value)
                    if kind == "default" and "comparison_trees" in m.trend_ and tr.sum() <= trend_mod.FINAL_MAX_ROWS:
                        compared += 1
                        early += m.trend_["comparison_trees"] < trees
            secs[kind] += time.perf_counter() - t
    return {**secs, "compared": compared, "early": early, "folds": len(np.unique(folds))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    sel = ap.add_mutually_exclusive_group()
    sel.add_argument("--s2", action="store_true", help="the 10 datasets with Sentinel-2 covariates")
    sel.add_argument("--datasets", help="comma-separated dataset ids")
    ap.add_argument("--trees", type=int, default=500)
    ap.add_argument("--kinds", default="plain,default,full", help=f"comma-separated, from {','.join(KINDS)}")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",")]
    if "plain" not in kinds or any(k not in KINDS for k in kinds):
        ap.error(f"--kinds: plain and any of {', '.join(KINDS)}")
    names = selected(args.data, args.s2, args.datasets)
    if names is None:
        return 2
    rows = []
    for ds in names:
        df, folds = load(args.data / f"{ds}.npz")
        tcols = target_columns(df)
        X = df[[c for c in df.columns if c not in set(tcols.values())]].to_numpy("float64")
        for tname, col in tcols.items():
            r = fold_costs(X, df[col].to_numpy(), np.asarray(folds), args.trees, kinds)
            rows.append({"dataset": ds, "target": tname, "n": len(df), **r,
                         **{f"{k}/plain": r[k] / r["plain"] for k in kinds if k != "plain"}})
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
    tab = pd.DataFrame(rows)
    tot = tab[kinds].sum()
    cmp = tab[tab["compared"] > 0]
    print(f"{len(tab)} tasks, {int(tab['compared'].sum())} of {int(tab['folds'].sum())} folds compared final-size "
          f"forests, {int(tab['early'].sum())} of them decided at the first stage; summed fit seconds: "
          + ", ".join(f"{k} {tot[k]:.1f}" + ("" if k == "plain" else f" ({tot[k] / tot['plain']:.2f}x)") for k in kinds))
    for k in kinds[1:]:
        print(f"per task {k}/plain: median {tab[k + '/plain'].median():.2f}, max {tab[k + '/plain'].max():.2f}; "
              f"tasks with a comparison: {cmp[k + '/plain'].min():.2f}-{cmp[k + '/plain'].max():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
