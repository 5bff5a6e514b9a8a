"""Tail balance of the calibrated 90 % intervals on LimeSoDa (issue 16, deliverable 6).

For each task (dataset x SOC/pH/clay) the model is validated by 10-fold CV with the package's
folds (as ``bench/dsm_limesoda.py``; the forest alone, ``trend="none"``, so that the "mid" rule's
forest quantiles are comparable). Each fold's forest is used twice on the held-out fold:
with the quantile levels of the current calibration (each tail on its own, ties counted as the
interval counts them: lower levels on ``y < Q``, upper on ``y <= Q``) and with the levels of
the rule before (one curve on ``y <= Q`` for both tails, first level of a flat stretch), so the
difference is the calibration rule alone. Printed per task and pooled: the share of held-out
values strictly below Q0.05 and strictly above Q0.95 (0.05 each when balanced) and PICP90,
with the binomial standard error of a 5 % share. Observations and quantiles are compared at
float32 precision (the maps'; ``soilsuite.dsm.validation.at_map_precision``), so a held-out lab
value equal to a quantile counts as the interval counts it (inside).

Usage::

    python bench/dsm_tails.py [--data .realdata/limesoda] [--datasets B.204 BB.250 ...] [--trees 200]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dsm_limesoda import load, target_columns  # noqa: E402

RULES = ("old", "new", "mid")
DEFAULT = ["B.204", "BB.250", "BB.72", "G.150", "MG.112", "NSW.52"]


def legacy_levels(model, quantiles):
    """Levels of the rule before: ``y <= Q`` for every level, first level of a flat stretch."""
    lm = model.level_map_
    cover = np.maximum.accumulate(lm["at_or_below"])
    nominal, first = np.unique(cover, return_index=True)
    return nominal, lm["grid"][first]


def run_task(df, folds, target, trees, seed=0):
    import pandas as pd

    from soilsuite.dsm import SoilModel
    from soilsuite.dsm.model import invert_coverage

    X = df[[c for c in df.columns if c not in target_columns(df).values()]]
    y = df[target].to_numpy()
    pred = {r: np.full((len(y), 2), np.nan) for r in RULES}
    for f in np.unique(folds):
        te = folds == f
        m = SoilModel(target=target, unit="", n_estimators=trees, random_state=seed, trend="none")  # the forest alone
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(pd.DataFrame(X.to_numpy()[~te], columns=X.columns), y[~te])
        Xt = X.to_numpy(dtype="float32")[te]
        pred["new"][te] = m.predict_array(Xt, [0.05, 0.95])[:, 1:]
        lm = m.level_map_
        mid = 0.5 * (lm["below"] + lm["at_or_below"])
        lv = invert_coverage(mid, lm["grid"], [0.05, 0.95], lm["n"])
        pred["mid"][te] = np.asarray(m.forest_.predict(Xt, quantiles=[float(v) for v in lv])).reshape(-1, 2)
        m.level_map_ = legacy_levels(m, [0.05, 0.95])
        pred["old"][te] = m.predict_array(Xt, [0.05, 0.95])[:, 1:]
        m.level_map_ = lm
    # compare at the maps' float32 precision (as dsm.metrics): a lab value equal to a quantile is a tie
    from soilsuite.dsm.validation import at_map_precision

    (y,) = at_map_precision(y)
    return y, {r: at_map_precision(p)[0] for r, p in pred.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--datasets", nargs="+", default=DEFAULT)
    ap.add_argument("--trees", type=int, default=200)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"LimeSoDa not found in {args.data}; run `make realdata`", file=sys.stderr)
        return 2
    pooled = {r: [] for r in RULES}
    obs_all = []
    print(f"{'task':16s} {'n':>4s}  rule  below Q05  above Q95  PICP90")
    for ds in args.datasets:
        df, folds = load(args.data / f"{ds}.npz")
        for tname, col in target_columns(df).items():
            t = time.perf_counter()
            y, pred = run_task(df, folds, col, args.trees)
            obs_all.append(y)
            for rule in RULES:
                lo, hi = pred[rule][:, 0], pred[rule][:, 1]
                pooled[rule].append(pred[rule])
                b, a = np.mean(y < lo), np.mean(y > hi)
                print(f"{ds + ' ' + tname:16s} {len(y):4d}  {rule:4s}  {b:9.3f}  {a:9.3f}  {1 - a - b:6.3f}"
                      + (f"   ({time.perf_counter() - t:.0f} s)" if rule == RULES[-1] else ""), flush=True)
    y = np.concatenate(obs_all)
    se = np.sqrt(0.05 * 0.95 / len(y))
    print(f"pooled over {len(y)} held-out values ({len(obs_all)} tasks, {args.trees} trees); "
          f"binomial SE of a 5 % share {se:.4f} (2 SE: {0.05 - 2 * se:.3f}-{0.05 + 2 * se:.3f})")
    labels = {"old": "before (y <= Q for both tails)", "new": "after (lower y < Q, upper y <= Q)",
              "mid": "mid-rank (ties half below, both tails)"}
    for rule, label in labels.items():
        p = np.concatenate(pooled[rule])
        b, a = np.mean(y < p[:, 0]), np.mean(y > p[:, 1])
        picp_tasks = [1 - np.mean(yy < pp[:, 0]) - np.mean(yy > pp[:, 1]) for yy, pp in zip(obs_all, pooled[rule], strict=True)]
        print(f"{label:42s} below Q05 {b:.4f}  above Q95 {a:.4f}  PICP90 pooled {1 - a - b:.4f}  "
              f"mean per task {np.mean(picp_tasks):.3f}  ties at Q05 {np.mean(y == p[:, 0]):.4f}  "
              f"at Q95 {np.mean(y == p[:, 1]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
