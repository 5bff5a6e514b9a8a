"""Screen forest-parameter and trend variants of the soil model's mean on LimeSoDa (issue 16).

For each task and each of the package's 10 folds, the training rows get what ``SoilModel.fit``
does before its forest: the covariate reduction (``reduce="auto"``) and the trend decision
(``trend="auto"``, comparison forests with ``max_features=0.5``); then scikit-learn random forests
(500 trees, ``random_state=0``, the trees ``SoilModel`` grows: quantile-forest calls scikit-learn's
``fit``) are fitted for every variant and their mean predicts the held-out fold. R2 = 1 - SSE/SST
pooled over the 10 folds, as ``bench/dsm_limesoda.py``. The variant ``mf=0.5`` (with ``w=auto``)
is the package default and reproduces ``dsm_limesoda.py``'s R2 of each task to every printed digit
(only the mean: no quantiles, calibration or area of applicability, hence about 5x faster per
variant).

Variants:

- ``--max-features 0.5,third``: covariates tried per split (``SoilModel(max_features=...)``),
  on the target the trend decision left (``y`` or ``y`` minus the out-of-fold trend);
- ``--trend-weights 0,0.5,1``: forests on ``y - w * trend_oof`` (``mf=0.5``), predicting
  ``w * trend + forest``, whatever ``auto`` decided; ``w=auto`` is the package's decision.

The rule "choose by out-of-bag MSE" is also scored (``oob500``, ``oob100``): per fold the variant
with the lowest out-of-bag MSE of the mean among all variants (of the 500-tree forests, and of
their first 100 trees, which are a 100-tree forest with the same seed). With ``w=0`` among the
trend weights, ``oob500_rule`` / ``oob100_rule`` apply ``trend.choose_trend``'s rule to the
``w`` forests: the best ``w > 0`` only if it lowers the out-of-bag MSE of ``w=0`` by more than 2 %
and half a standard error of the paired difference, with at least 40 training rows. With
``--trend-weights 0,1``, ``oob500_rule`` is the package's ``auto`` up to
``trend.FINAL_MAX_ROWS`` training rows (all LimeSoDa tasks; the check: it equals the ``mf=0.5``
column wherever the ridge alone beats the mean out of fold) and ``oob100_rule`` the rule before
(comparison forests of 100 trees).

Usage::

    python -P bench/dsm_forest_variants.py [--s2 | --datasets A,B] [--max-features 0.5,third]
                                           [--trend-weights 0,0.5,1] [--out bench_out] [--name NAME]
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


def oob_first(rf, X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Out-of-bag mean of the first ``k`` trees of a fitted forest (NaN where none left a row out)."""
    n = len(y)
    s, c = np.zeros(n), np.zeros(n)
    for est, samp in zip(rf.estimators_[:k], rf.estimators_samples_[:k], strict=False):
        m = np.ones(n, bool)
        m[samp] = False
        s[m] += est.predict(X[m])
        c[m] += 1
    with np.errstate(invalid="ignore"):
        return s / c


def task_variants(X: np.ndarray, y: np.ndarray, folds: np.ndarray, mfs: list, weights: list[float],
                  trees: int = 500) -> dict:
    """Pooled R2 of each variant (and of the out-of-bag choices) on one task."""
    from sklearn.ensemble import RandomForestRegressor

    from soilsuite.dsm.forestparams import resolve_max_features
    from soilsuite.dsm.reduce import make_reducer
    from soilsuite.dsm.trend import (
        MIN_TREND_SAMPLES,
        TREND_MARGIN,
        TREND_Z,
        RidgeTrend,
        choose_trend,
    )

    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    X, y, folds = X[ok], y[ok], folds[ok]
    names = [f"mf={m}" for m in mfs] + [f"w={w:g}" for w in weights]
    extra = ["oob500", "oob100"] + (["oob500_rule", "oob100_rule"] if 0.0 in weights else [])
    pred = {k: np.empty(len(y)) for k in [*names, *extra]}
    used = 0
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        red = make_reducer("auto", random_state=0, n_jobs=1).fit(X[tr], y[tr])
        ftr = X[tr] if red.is_identity else red.transform(X[tr])
        fte = X[te] if red.is_identity else red.transform(X[te])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tf, _ = choose_trend("auto", ftr, y[tr], n_estimators=trees,
                                 params={"max_features": 0.5, "min_samples_leaf": 1}, random_state=0, n_jobs=1)
            trend = RidgeTrend(random_state=0).fit(ftr, y[tr]) if weights else None
        used += tf is not None
        t_oof = tf.oof_ if tf is not None else np.zeros(tr.sum())
        t_te = tf.predict(fte) if tf is not None else np.zeros(te.sum())
        fits = {}
        for name in names:
            if name.startswith("mf="):
                m = mfs[names.index(name)]
                target, shift_oof, shift_te = y[tr] - t_oof, t_oof, t_te
                mf = resolve_max_features(m, ftr.shape[1])
            else:
                w = float(name[2:])
                target, shift_oof, shift_te = y[tr] - w * trend.oof_, w * trend.oof_, w * trend.predict(fte)
                mf = 0.5
            rf = RandomForestRegressor(trees, max_features=mf, min_samples_leaf=1, oob_score=True, random_state=0,
                                       n_jobs=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rf.fit(ftr, target)
            pred[name][te] = shift_te + rf.predict(fte)
            fits[name] = (shift_oof + rf.oob_prediction_.ravel(), shift_oof + oob_first(rf, ftr, target, 100))
        for k, j in (("oob500", 0), ("oob100", 1)):
            oks = np.all([np.isfinite(v[j]) for v in fits.values()], axis=0)
            mse = {n: float(np.mean((y[tr][oks] - v[j][oks]) ** 2)) for n, v in fits.items()}
            pred[k][te] = pred[min(mse, key=mse.get)][te]
            if "w=0" in fits and len(fits) > 1:  # trend.py's rule on these forests: 2 %, half an SE, n >= 40
                ws = [n for n in fits if n.startswith("w=")]
                sq = {n: (y[tr][oks] - fits[n][j][oks]) ** 2 for n in ws}
                best = min(ws, key=lambda n: sq[n].mean())
                d = sq["w=0"] - sq[best]
                se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
                take = best != "w=0" and tr.sum() >= MIN_TREND_SAMPLES and d.mean() > max(
                    TREND_MARGIN * sq["w=0"].mean(), TREND_Z * se)
                pred[f"{k}_rule"][te] = pred[best if take else "w=0"][te]
    sst = np.sum((y - y.mean()) ** 2)
    out = {k: float(1 - np.sum((y - p) ** 2) / sst) for k, p in pred.items()}
    out["trend_folds"] = int(used)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--name", default="dsm_forest_variants")
    sel = ap.add_mutually_exclusive_group()
    sel.add_argument("--s2", action="store_true", help="the 10 datasets with Sentinel-2 covariates")
    sel.add_argument("--datasets", help="comma-separated dataset ids")
    ap.add_argument("--max-features", default="0.5,third", help="comma-separated max_features values")
    ap.add_argument("--trend-weights", default="", help="comma-separated trend weights w (forest on y - w trend)")
    args = ap.parse_args(argv)
    names = selected(args.data, args.s2, args.datasets)
    if names is None:
        return 2
    from soilsuite.dsm.forestparams import parse_max_features

    mfs = [parse_max_features(v) for v in args.max_features.split(",") if v.strip()]
    weights = [float(v) for v in args.trend_weights.split(",") if v.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ds in names:
        df, folds = load(args.data / f"{ds}.npz")
        tcols = target_columns(df)
        X = df[[c for c in df.columns if c not in set(tcols.values())]].to_numpy("float64").astype("float32")
        for tname, col in tcols.items():
            t = time.perf_counter()
            r = task_variants(X, df[col].to_numpy(), np.asarray(folds), mfs, weights)
            rows.append({"dataset": ds, "target": tname, "p": X.shape[1], **r, "seconds": time.perf_counter() - t})
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  flush=True)
            tab = pd.DataFrame(rows)
            csv = args.out / f"{args.name}.csv"
            tab.to_csv(csv.with_suffix(".csv.tmp"), index=False)
            csv.with_suffix(".csv.tmp").replace(csv)
    tab = pd.DataFrame(rows)
    cols = [c for c in tab.columns if c not in ("dataset", "target", "p", "trend_folds", "seconds")]
    print("mean R2 over", len(tab), "tasks:", "  ".join(f"{c} {tab[c].mean():.4f}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
