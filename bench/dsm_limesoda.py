"""LimeSoDa benchmark of the soilsuite quantile regression forest (issue 6).

Data: LimeSoDa 0.1.5 (PyPI ``limesoda``; Schmidinger et al. 2025, arXiv:2502.20139, CC BY-SA
4.0), fetched into ``.realdata/limesoda`` by ``make realdata`` (scripts/fetch_realdata.py).

For SOC, pH and clay on the ten datasets with Sentinel-2 covariates, the model is validated by
10-fold cross-validation with the package's own ``folds``; R2 = 1 - SSE/SST pooled over all
held-out predictions (as published). Covariates: every column of the dataset except the three
targets (as the published RF did). The model runs with soilsuite's defaults (500 trees,
``max_features=0.5``, ``min_samples_leaf=1``, no tuning: the default of the Python API and the
CLI, see docs/dsm.md); ``--tune oob|cv`` tunes inside each training fold, never on the test
fold. The published RF and MLR R2 come from ../shared/DATA.md.

Usage::

    python bench/dsm_limesoda.py [--quick] [--tune none|oob|cv] [--data .realdata/limesoda] [--out bench_out]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = ["B.204", "BB.250", "BB.72", "BB.30_2", "G.104", "G.150", "MG.112", "MGS.101", "MWP.36", "NSW.52"]
TARGETS = {"SOC": "SOC_target", "pH": "pH_target", "clay": "Clay_target"}
#: published 10-fold pooled R2 (RF = ranger tuned by inner CV; MLR), ../shared/DATA.md
PUBLISHED = {
    "B.204": (0.02, 0.24, 0.45, -0.06, 0.13, 0.61),
    "BB.250": (0.89, 0.65, 0.70, 0.75, 0.66, 0.63),
    "BB.72": (0.57, 0.43, 0.51, 0.47, 0.34, 0.46),
    "BB.30_2": (0.10, 0.61, 0.18, 0.10, 0.31, 0.22),
    "G.104": (0.10, 0.08, 0.25, 0.19, 0.02, 0.38),
    "G.150": (0.40, 0.39, 0.23, -0.14, 0.24, -0.11),
    "MG.112": (0.61, -0.08, 0.85, -0.46, -0.04, 0.27),
    "MGS.101": (0.25, 0.04, 0.74, 0.18, -0.12, 0.64),
    "MWP.36": (0.24, 0.42, 0.51, 0.07, 0.22, 0.54),
    "NSW.52": (0.20, 0.22, 0.46, -0.25, 0.07, 0.49),
}


def load(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A LimeSoDa dataset as a DataFrame (targets + covariates) and its fold labels (1..10)."""
    d = np.load(path, allow_pickle=True)
    df = pd.DataFrame(d["dataset_data"].astype("float64"), columns=[str(c) for c in d["dataset_columns"]])
    return df, np.asarray(d["folds"]).astype(int)


def run_task(df: pd.DataFrame, folds: np.ndarray, target: str, *, n_estimators: int, tune: str | bool,
             seed: int = 0) -> dict:
    from soilsuite.dsm import SoilModel, cross_validate

    X = df[[c for c in df.columns if c not in TARGETS.values()]]
    y = df[target].to_numpy()
    model = SoilModel(target=target, n_estimators=n_estimators, tune=tune, tune_n_estimators=200,
                      max_features=0.5, min_samples_leaf=1, random_state=seed, n_jobs=-1, unit="")
    t = time.perf_counter()
    res = cross_validate(model, X, y, folds=folds)
    dt = time.perf_counter() - t
    m = res.metrics
    return {"r2": m["r2"], "rmse": m["rmse"], "picp": m["picp"], "below": m["below"], "above": m["above"],
            "n": m["n"], "p": X.shape[1], "seconds": dt}


def speed(p: int, n_pixels: int, n_estimators: int, seed: int = 0) -> dict:
    """Fit on 250 random samples of width p, then time predict_array on n_pixels random rows."""
    from soilsuite.dsm import SoilModel

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(250, p)).astype("float32")
    y = X[:, 0] * 2 + rng.normal(size=250)
    m = SoilModel(target="x", n_estimators=n_estimators, n_jobs=-1, unit="").fit(X, y)
    Xp = rng.normal(size=(n_pixels, p)).astype("float32")
    t = time.perf_counter()
    chunk = 65536
    for i in range(0, n_pixels, chunk):
        m.predict_array(Xp[i:i + chunk])
    t_pred = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(0, n_pixels, chunk):
        m.dissimilarity(Xp[i:i + chunk])
    t_di = time.perf_counter() - t
    return {"pixels": n_pixels, "p": p, "trees": n_estimators, "predict_s": t_pred, "di_s": t_di}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--quick", action="store_true", help="3 datasets, 200 trees, 2e5 pixels")
    ap.add_argument("--tune", choices=["none", "oob", "cv"], default="none",
                    help="tuning inside each training fold (default none, as SoilModel and the CLI)")
    ap.add_argument("--trees", type=int, default=None, help="trees per forest (default 500, quick 200)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"LimeSoDa not found in {args.data}; run `make realdata`", file=sys.stderr)
        return 2
    datasets = DATASETS[:3] if args.quick else DATASETS
    trees = args.trees or (200 if args.quick else 500)
    tune = False if args.tune == "none" else args.tune
    rows = []
    for ds in datasets:
        df, folds = load(args.data / f"{ds}.npz")
        pub = PUBLISHED[ds]
        for i, (tname, col) in enumerate(TARGETS.items()):
            r = run_task(df, folds, col, n_estimators=trees, tune=tune)
            row = {"dataset": ds, "target": tname, "n": r["n"], "p": r["p"], "R2": r["r2"],
                   "RF_pub": pub[i], "MLR_pub": pub[3 + i], "PICP90": r["picp"], "below": r["below"],
                   "above": r["above"], "cv_s": r["seconds"]}
            rows.append(row)
            print(f"{ds:8s} {tname:4s} n={r['n']:3d} p={r['p']:2d}  R2={r['r2']:6.3f}  RF_pub={pub[i]:5.2f}  "
                  f"MLR_pub={pub[3 + i]:5.2f}  PICP90={r['picp']:.3f} (below {r['below']:.3f}, above "
                  f"{r['above']:.3f})  10-fold fit+predict {r['seconds']:.1f} s",
                  flush=True)
    tab = pd.DataFrame(rows)
    mean = tab[["R2", "RF_pub", "MLR_pub", "PICP90", "below", "above", "cv_s"]].mean()
    w = tab["n"] / tab["n"].sum()
    pooled_below, pooled_above = float((tab["below"] * w).sum()), float((tab["above"] * w).sum())
    n_px = 200_000 if args.quick else 1_000_000
    p = int(tab["p"].median())
    sp = speed(p, n_px, trees)
    print(f"mean over {len(tab)} tasks: R2={mean['R2']:.3f}  RF_pub={mean['RF_pub']:.3f}  "
          f"MLR_pub={mean['MLR_pub']:.3f}  PICP90={mean['PICP90']:.3f}  10-fold CV time {mean['cv_s']:.1f} s/task")
    print(f"held-out values pooled ({int(tab['n'].sum())}): below Q05 {pooled_below:.4f}, above Q95 "
          f"{pooled_above:.4f} (nominal 0.05 each; binomial SE {np.sqrt(0.0475 / tab['n'].sum()):.4f})")
    print(f"ratio R2 / published RF (means): {mean['R2'] / mean['RF_pub']:.2f}")
    print(f"prediction speed: {sp['pixels']:.0e} pixels x {sp['p']} covariates, {sp['trees']} trees: "
          f"mean+3 quantiles {sp['predict_s']:.1f} s ({sp['pixels'] / sp['predict_s']:.3g} px/s), "
          f"dissimilarity index {sp['di_s']:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    md = ["# LimeSoDa benchmark of soilsuite.dsm (QRF)", "",
          f"{'quick run: ' if args.quick else ''}{trees} trees, tuning: {tune or 'none'}, "
          "10-fold CV with the LimeSoDa folds, R2 pooled over all held-out predictions.", "",
          "| dataset | target | n | p | R2 ours | R2 RF (pub.) | R2 MLR (pub.) | PICP 90 % | below Q05 | above Q95 "
          "| CV time (s) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['dataset']} | {r['target']} | {r['n']} | {r['p']} | {r['R2']:.2f} | {r['RF_pub']:.2f} | "
                  f"{r['MLR_pub']:.2f} | {r['PICP90']:.2f} | {r['below']:.3f} | {r['above']:.3f} | {r['cv_s']:.1f} |")
    md.append(f"| **mean** ({len(rows)} tasks) | | | | **{mean['R2']:.3f}** | {mean['RF_pub']:.3f} | "
              f"{mean['MLR_pub']:.3f} | **{mean['PICP90']:.3f}** | {pooled_below:.3f} | {pooled_above:.3f} "
              f"| {mean['cv_s']:.1f} |")
    md += ["", f"Prediction speed: {sp['pixels']:,} pixels x {sp['p']} covariates, {sp['trees']} trees: "
           f"mean + Q0.05/Q0.50/Q0.95 in {sp['predict_s']:.1f} s "
           f"({sp['pixels'] / sp['predict_s']:,.0f} px/s); dissimilarity index {sp['di_s']:.1f} s.", ""]
    out = args.out / "dsm_limesoda.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
