"""LimeSoDa benchmark of the soilsuite quantile regression forest (issues 6 and 16).

Data: LimeSoDa 0.1.5 (PyPI ``limesoda``; Schmidinger et al. 2025, arXiv:2502.20139, CC BY-SA
4.0), fetched into ``.realdata/limesoda`` by ``make realdata`` (scripts/fetch_realdata.py).

For SOC (SOM in SL.125, UL.120, SP.231), pH and clay of all 31 datasets (93 tasks), the model
is validated by 10-fold cross-validation with the package's own ``folds``; R2 = 1 - SSE/SST
pooled over all held-out predictions (as published). Covariates: every column of the dataset
except the three targets (as the published models did). The model runs with soilsuite's
defaults (500 trees, ``max_features=0.5``, ``min_samples_leaf=1``, no tuning, ``reduce=auto``:
the default of the Python API and the CLI, see docs/dsm.md); the covariate reduction and any
tuning run inside each training fold, never on the test fold.

Groups, from the data's columns (documented in docs/dsm.md):

- ``spectral``: at least 50 columns named as a wavelength or wavenumber (``wl_<nm>``,
  ``wn_<1/cm>``): vis-NIR, NIR or MIR spectra (15 datasets, 45 tasks);
- ``S2``: a column named as a Sentinel-2 band (``B02`` ... ``B12``, ``B8A``): bare-soil
  reflectances (10 datasets, 30 tasks);
- ``other``: neither (6 datasets, 18 tasks). "non-spectral" = S2 + other (48 tasks).

Published RF and MLR R2 (ranger with 2000 trees tuned by inner CV; MLR): for the ten S2
datasets from ../shared/DATA.md; for four spectral tasks the RF values quoted in issue 16
(SP.231 pH, CV.98 SOC, MG.44 SOC, SSP.58 clay) and the issue's published group means; the
other per-task values were not found in any text source available here (the authors'
results table ships only as an R ``.rds`` file) and are left blank.

Usage::

    python bench/dsm_limesoda.py [--s2 | --group spectral|S2|other] [--datasets A,B] [--reduce auto|none|pca|filter]
                                 [--seed 0] [--trees 500] [--tune none|oob|cv] [--data .realdata/limesoda] [--out bench_out]
                                 [--compare [ols,qrf,qrf_reduced,...]]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from soilsuite.dsm.forestparams import parse_max_features

S2_DATASETS = ["B.204", "BB.250", "BB.72", "BB.30_2", "G.104", "G.150", "MG.112", "MGS.101", "MWP.36", "NSW.52"]
TARGETS = ("SOC", "pH", "clay")
#: published 10-fold pooled R2 (RF = ranger tuned by inner CV; MLR), ../shared/DATA.md: SOC, pH, clay RF; SOC, pH, clay MLR
_PUB_S2 = {
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
PUBLISHED_RF: dict[tuple[str, str], float] = {(d, t): v[i] for d, v in _PUB_S2.items() for i, t in enumerate(TARGETS)}
PUBLISHED_MLR: dict[tuple[str, str], float] = {(d, t): v[3 + i] for d, v in _PUB_S2.items()
                                               for i, t in enumerate(TARGETS)}
#: RF values quoted in issue 16 (from the LimeSoDa paper's results)
PUBLISHED_RF.update({("SP.231", "pH"): 0.68, ("CV.98", "SOC"): 0.61, ("MG.44", "SOC"): 0.28, ("SSP.58", "clay"): 0.26})
#: published RF mean R2 per group as quoted in issue 16
PUBLISHED_RF_GROUP = {"spectral": 0.446, "S2": 0.375, "non-spectral": 0.405, "all": 0.425}

_SPECTRAL_COL = re.compile(r"^(wl|wn)_\d+(\.\d+)?$")
_S2_COL = re.compile(r"^B(0[2-8]|8A|1[12])$")


def load(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A LimeSoDa dataset as a DataFrame (targets + covariates) and its fold labels (1..10)."""
    d = np.load(path, allow_pickle=True)
    df = pd.DataFrame(d["dataset_data"].astype("float64"), columns=[str(c) for c in d["dataset_columns"]])
    return df, np.asarray(d["folds"]).astype(int)


def target_columns(df: pd.DataFrame) -> dict[str, str]:
    """``{"SOC": "SOC_target" or "SOM_target", "pH": "pH_target", "clay": "Clay_target"}``."""
    soc = "SOC_target" if "SOC_target" in df else "SOM_target"
    return {"SOC": soc, "pH": "pH_target", "clay": "Clay_target"}


def group(columns: list[str]) -> str:
    """``spectral`` (>= 50 wavelength/wavenumber columns), ``S2`` (a Sentinel-2 band column) or ``other``."""
    if sum(bool(_SPECTRAL_COL.match(c)) for c in columns) >= 50:
        return "spectral"
    if any(_S2_COL.match(c) for c in columns):
        return "S2"
    return "other"


def datasets(data: Path) -> list[str]:
    return sorted(p.stem for p in data.glob("*.npz") if p.stem != "Overview_Datasets")


def selected(data: Path, s2: bool, names: str | None) -> list[str] | None:
    """The datasets of the screens' ``--s2`` / ``--datasets`` options (all by default); None (and
    a message) when LimeSoDa is not in ``data``."""
    if not data.is_dir():
        print(f"LimeSoDa not found in {data}; run `make realdata`", file=sys.stderr)
        return None
    if names:
        return [d.strip() for d in names.split(",")]
    all_ = datasets(data)
    return [d for d in all_ if group(list(load(data / f"{d}.npz")[0].columns)) == "S2"] if s2 else all_


def run_task(df: pd.DataFrame, folds: np.ndarray, target: str, *, n_estimators: int, tune: str | bool,
             reduce: str = "auto", seed: int = 0, n_jobs: int = -1, trend: str = "auto",
             max_features: float | None = None) -> dict:
    from soilsuite.dsm import SoilModel, cross_validate

    tcols = set(target_columns(df).values())
    X = df[[c for c in df.columns if c not in tcols]]
    y = df[target].to_numpy()
    mf = {} if max_features is None else {"max_features": max_features}  # None: SoilModel's default
    model = SoilModel(target=target, n_estimators=n_estimators, tune=tune, tune_n_estimators=200, **mf,
                      min_samples_leaf=1, random_state=seed, n_jobs=n_jobs, unit="", reduce=reduce,
                      trend=trend)
    t = time.perf_counter()
    res = cross_validate(model, X, y, folds=folds)
    dt = time.perf_counter() - t
    m = res.metrics
    pr = res.predictions
    # the comparison before issue 16's float32 fix: float64 observations against float32 quantiles
    o, lo, hi = (pr[c].to_numpy(dtype="float64") for c in ("obs", "q05", "q95"))
    return {"r2": m["r2"], "rmse": m["rmse"], "picp": m["picp"], "below": m["below"], "above": m["above"],
            "picp_f64": float(np.mean((o >= lo) & (o <= hi))), "below_f64": float(np.mean(o < lo)),
            "above_f64": float(np.mean(o > hi)),
            "n": m["n"], "p": X.shape[1], "seconds": dt, "reduction": res.info.get("reduction per fold", ""),
            "trend": res.info.get("trend per fold", ""), "predictions": pr[["obs", "mean", "q05", "q50", "q95", "fold"]]}


def compare_task(df: pd.DataFrame, folds: np.ndarray, target: str, *, n_estimators: int, seed: int = 0,
                 candidates: list[str] | None = None, n_jobs: int = -1) -> pd.DataFrame:
    """``dsm.compare_models`` on one task with the package folds: one row per candidate."""
    from soilsuite.dsm import compare_models

    tcols = set(target_columns(df).values())
    X = df[[c for c in df.columns if c not in tcols]]
    cmp = compare_models(X, df[target].to_numpy(), target=target, unit="", folds=folds, candidates=candidates,
                         refit=False, n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    t = cmp.table.copy()
    t["best"] = t["candidate"] == cmp.best
    return t


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


def _f(v: float, fmt: str = ".2f") -> str:
    return "" if v is None or not np.isfinite(v) else format(v, fmt)


def summary(tab: pd.DataFrame) -> list[dict]:
    """Means per group: spectral, S2, other, non-spectral (S2 + other) and all."""
    sets = {"spectral": tab["group"] == "spectral", "S2": tab["group"] == "S2", "other": tab["group"] == "other",
            "non-spectral": tab["group"] != "spectral", "all": np.ones(len(tab), bool)}
    out = []
    for name, sel in sets.items():
        t = tab[sel]
        if not len(t):
            continue
        out.append({"group": name, "tasks": len(t), "R2": t["R2"].mean(), "RF_pub_tasks": t["RF_pub"].notna().sum(),
                    "RF_pub_mean_known": t["RF_pub"].mean(), "RF_pub_group": PUBLISHED_RF_GROUP.get(name, np.nan),
                    "R2_on_known": t.loc[t["RF_pub"].notna(), "R2"].mean(),
                    "PICP90": t["PICP90"].mean(), "picp_in_085_095": float(((t["PICP90"] >= 0.85)
                                                                             & (t["PICP90"] <= 0.95)).mean())})
    return out


def markdown(tab: pd.DataFrame, *, trees: int, tune, reduce: str, seed: int, trend: str = "auto") -> list[str]:
    md = ["# LimeSoDa benchmark of soilsuite.dsm (QRF)", "",
          f"{trees} trees, tuning: {tune or 'none'}, reduce: {reduce}, trend: {trend}, seed {seed}; 10-fold CV with the LimeSoDa "
          "folds, R2 pooled over all held-out predictions. RF/MLR (pub.): published values where known "
          "(blank: not available here).", "",
          "| dataset | group | target | n | p | reduction (folds) | trend (folds) | R2 ours | R2 RF (pub.) | R2 MLR (pub.) | PICP 90 % "
          "| below Q05 | above Q95 | CV time (s) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in tab.to_dict("records"):
        md.append(f"| {r['dataset']} | {r['group']} | {r['target']} | {r['n']} | {r['p']} | {r['reduction']} | {r.get('trend', '')} | "
                  f"{r['R2']:.2f} | {_f(r['RF_pub'])} | {_f(r['MLR_pub'])} | {r['PICP90']:.2f} | {r['below']:.3f} | "
                  f"{r['above']:.3f} | {r['cv_s']:.1f} |")
    md += ["", "| group | tasks | mean R2 ours | published RF mean (issue 16) | tasks with a published RF value "
           "| their RF mean | our mean on them | mean PICP90 | tasks with PICP90 in 0.85-0.95 |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s in summary(tab):
        md.append(f"| {s['group']} | {s['tasks']} | **{s['R2']:.3f}** | {_f(s['RF_pub_group'], '.3f')} | "
                  f"{s['RF_pub_tasks']} | {_f(s['RF_pub_mean_known'], '.3f')} | {_f(s['R2_on_known'], '.3f')} | "
                  f"{s['PICP90']:.3f} | {100 * s['picp_in_085_095']:.0f} % |")
    return md


def run_compare(args: argparse.Namespace, names: list[str], groups: dict, trees: int) -> int:
    """``--compare``: the candidates of ``dsm compare`` per task; table of R2 / PICP90 per candidate."""
    cands = None if args.compare == "all" else [c.strip() for c in args.compare.split(",")]
    parts = []
    csv = args.out / f"{args.name}_compare.csv"
    for ds in names:
        df, folds = load(args.data / f"{ds}.npz")
        for tname, col in target_columns(df).items():
            t = compare_task(df, folds, col, n_estimators=trees, seed=args.seed, candidates=cands)
            t.insert(0, "target", tname)
            t.insert(0, "group", groups[ds])
            t.insert(0, "dataset", ds)
            parts.append(t)
            pd.concat(parts).to_csv(csv.with_suffix(".csv.tmp"), index=False)
            csv.with_suffix(".csv.tmp").replace(csv)
            best = t.loc[t["best"], "candidate"].iloc[0]
            print(f"{ds:8s} {groups[ds]:8s} {tname:4s} " + "  ".join(
                f"{r['candidate']}: R2={r['r2']:.3f} PICP90={r['picp']:.3f}" for r in t.to_dict("records")
                if not r["error"]) + f"  best={best}", flush=True)
    tab = pd.concat(parts)
    wide = tab.pivot_table(index=["dataset", "group", "target"], columns="candidate", values="r2", sort=False)
    md = [f"# LimeSoDa: dsm compare per task ({trees} trees, seed {args.seed}, package folds; pooled R2)", "",
          "| dataset | group | target | " + " | ".join(wide.columns) + " | best |",
          "|---|---|---|" + "---|" * (len(wide.columns) + 1)]
    bests = tab[tab["best"]].set_index(["dataset", "group", "target"])["candidate"]
    for key, r in wide.iterrows():
        md.append("| " + " | ".join(key) + " | " + " | ".join(_f(v) for v in r) + f" | {bests.get(key, '')} |")
    md.append("| **mean** | | | " + " | ".join(f"**{v:.3f}**" for v in wide.mean()) + " | |")
    out = args.out / f"{args.name}_compare.md"
    out.with_suffix(".md.tmp").write_text("\n".join(md) + "\n")
    out.with_suffix(".md.tmp").replace(out)
    print(f"written {out} and {csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    sel = ap.add_mutually_exclusive_group()
    sel.add_argument("--s2", action="store_true", help="only the 10 datasets with Sentinel-2 covariates (30 tasks)")
    sel.add_argument("--group", choices=["spectral", "S2", "other"], help="only one group of datasets")
    sel.add_argument("--datasets", help="comma-separated dataset ids")
    ap.add_argument("--quick", action="store_true", help="3 datasets, 200 trees, 2e5 pixels")
    ap.add_argument("--tune", choices=["none", "oob", "cv"], default="none",
                    help="tuning inside each training fold (default none, as SoilModel and the CLI)")
    ap.add_argument("--reduce", choices=["auto", "none", "pca", "filter"], default="auto",
                    help="covariate reduction inside each training fold (default auto, as SoilModel and the CLI)")
    ap.add_argument("--max-features", default=None,
                    help="covariates tried per split: 'third', a share (0.5) or a count (default: SoilModel's default)")
    ap.add_argument("--trend", choices=["auto", "none", "ridge"], default="auto",
                    help="linear trend + forest on its residuals, chosen inside each training fold (default auto, "
                         "as SoilModel and the CLI)")
    ap.add_argument("--seed", type=int, default=0, help="random_state of the forests and the reduction")
    ap.add_argument("--trees", type=int, default=None, help="trees per forest (default 500, quick 200)")
    ap.add_argument("--speed", action="store_true", help="also time the map prediction (1e6 pixels)")
    ap.add_argument("--name", default="dsm_limesoda", help="output file stem in --out (.md and .csv)")
    ap.add_argument("--compare", nargs="?", const="all", default=None, metavar="CANDIDATES",
                    help="run `dsm compare` (same folds) per task instead: all available candidates or a "
                         "comma-separated list (ols,qrf,qrf_reduced,...); writes <name>_compare.md/.csv")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"LimeSoDa not found in {args.data}; run `make realdata`", file=sys.stderr)
        return 2
    names = datasets(args.data)
    groups = {ds: group(list(load(args.data / f"{ds}.npz")[0].columns)) for ds in names}
    if args.s2:
        names = [d for d in names if groups[d] == "S2"]
    elif args.group:
        names = [d for d in names if groups[d] == args.group]
    elif args.datasets:
        names = [d.strip() for d in args.datasets.split(",")]
        unknown = [d for d in names if d not in groups]
        if unknown:
            print(f"unknown datasets {unknown}; have {sorted(groups)}", file=sys.stderr)
            return 2
    if args.quick:
        names = names[:3]
    trees = args.trees or (200 if args.quick else 500)
    tune = False if args.tune == "none" else args.tune
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{args.name}.csv"
    if args.compare:
        return run_compare(args, names, groups, trees)
    rows, preds = [], []
    for ds in names:
        df, folds = load(args.data / f"{ds}.npz")
        for tname, col in target_columns(df).items():
            r = run_task(df, folds, col, n_estimators=trees, tune=tune, reduce=args.reduce, seed=args.seed,
                         trend=args.trend,
                         max_features=None if args.max_features is None else parse_max_features(args.max_features))
            row = {"dataset": ds, "group": groups[ds], "target": tname, "n": r["n"], "p": r["p"],
                   "reduction": r["reduction"], "trend": r["trend"], "R2": r["r2"], "RF_pub": PUBLISHED_RF.get((ds, tname), np.nan),
                   "MLR_pub": PUBLISHED_MLR.get((ds, tname), np.nan), "PICP90": r["picp"], "below": r["below"],
                   "above": r["above"], "PICP90_f64": r["picp_f64"], "below_f64": r["below_f64"],
                   "above_f64": r["above_f64"], "cv_s": r["seconds"]}
            rows.append(row)
            pd.DataFrame(rows).to_csv(csv.with_suffix(".csv.tmp"), index=False)
            csv.with_suffix(".csv.tmp").replace(csv)
            preds.append(r["predictions"].assign(dataset=ds, target=tname))
            pcsv = args.out / f"{args.name}_predictions.csv"
            pd.concat(preds).to_csv(pcsv.with_suffix(".csv.tmp"))
            pcsv.with_suffix(".csv.tmp").replace(pcsv)
            print(f"{ds:8s} {groups[ds]:8s} {tname:4s} n={r['n']:3d} p={r['p']:4d} [{r['reduction']}] "
                  f"trend [{r['trend']}] R2={r['r2']:6.3f} RF_pub={_f(row['RF_pub']):>5s} MLR_pub={_f(row['MLR_pub']):>5s} "
                  f"PICP90={r['picp']:.3f} (below {r['below']:.3f}, above {r['above']:.3f}) {r['seconds']:.1f} s",
                  flush=True)
    tab = pd.DataFrame(rows)
    for s in summary(tab):
        print(f"{s['group']:12s} {s['tasks']:3d} tasks: mean R2={s['R2']:.3f} (published RF group mean "
              f"{_f(s['RF_pub_group'], '.3f') or 'n/a'}; on the {s['RF_pub_tasks']} tasks with a published RF value: "
              f"ours {_f(s['R2_on_known'], '.3f') or 'n/a'} vs RF {_f(s['RF_pub_mean_known'], '.3f') or 'n/a'}) "
              f"PICP90={s['PICP90']:.3f}, {100 * s['picp_in_085_095']:.0f} % of tasks within 0.85-0.95")
    md = markdown(tab, trees=trees, tune=tune, reduce=args.reduce, seed=args.seed, trend=args.trend)
    if args.speed:
        sp = speed(int(tab["p"].median()), 200_000 if args.quick else 1_000_000, trees)
        line = (f"Prediction speed: {sp['pixels']:,} pixels x {sp['p']} covariates, {sp['trees']} trees: "
                f"mean + Q0.05/Q0.50/Q0.95 in {sp['predict_s']:.1f} s ({sp['pixels'] / sp['predict_s']:,.0f} px/s); "
                f"dissimilarity index {sp['di_s']:.1f} s.")
        print(line)
        md += ["", line]
    out = args.out / f"{args.name}.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md) + "\n")
    tmp.replace(out)
    print(f"written {out} and {csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
