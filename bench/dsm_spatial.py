"""Spatial options of the soil model measured by spatially blocked cross-validation (issue 16).

``SoilModel(spatial=none|xy|distances|rk)`` (docs/dsm.md, "Spatial structure") on

1. the ten LimeSoDa datasets with Sentinel-2 covariates and sample coordinates (LimeSoDa 0.1.5,
   ``.realdata/limesoda``, ``make realdata``): SOC, pH, clay; covariates = every column but the
   targets; spatially blocked k-fold CV (:func:`soilsuite.dsm.validation.spatial_folds`) with
   blocks of 1/8 of the larger side of the sample extent (the CLI's default), ``k`` = 5 (fewer if
   fewer blocks); R2 and PICP pooled over the held-out predictions, averaged over the tasks;
2. the demo's scene (``--demo DIR`` with ``DIR/products`` = the composite and ``DIR/archive`` =
   the simulated archive with its truth, as ``soilsuite demo --out DIR`` writes): 150 samples on
   cropland MASK == 1 pixels (5 % lab noise, as dsm/demo.py), spatial 5-fold CV (blocks of 1/6
   of the extent, as the demo) and the R2 of the predicted mean map against the true SOC field on
   every MASK == 1 pixel, per option (before = ``none``).

Every fold refits the forest, the calibration and the spatial part (coordinates, reference
points, variogram, kriging) on its training rows only, so a gain is not leakage.

Usage::

    python bench/dsm_spatial.py [--trees 200] [--k 5] [--data .realdata/limesoda] [--demo DIR] [--out bench_out]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = ["B.204", "BB.250", "BB.72", "BB.30_2", "G.104", "G.150", "MG.112", "MGS.101", "MWP.36", "NSW.52"]
TARGETS = {"SOC": "SOC_target", "pH": "pH_target", "clay": "Clay_target"}
OPTIONS = ["none", "xy", "distances", "rk"]


def limesoda_task(path: Path, target: str, option: str, trees: int, k: int) -> dict:
    from soilsuite.dsm import SoilModel, cross_validate
    from soilsuite.dsm.validation import spatial_blocks

    d = np.load(path, allow_pickle=True)
    df = pd.DataFrame(d["dataset_data"].astype("float64"), columns=[str(c) for c in d["dataset_columns"]])
    C = np.asarray(d["coordinates_data"], dtype="float64")
    X = df[[c for c in df.columns if c not in TARGETS.values()]]
    y = df[target]
    block = max(np.ptp(C[:, 0]), np.ptp(C[:, 1])) / 8.0
    kk = min(k, int(spatial_blocks(C, block).max()) + 1)
    m = SoilModel(target=target, unit="", n_estimators=trees, spatial=option, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cross_validate(m, X, y.to_numpy(), coords=C, method="spatial", block_size=block, k=kk)
    return {"r2": res.metrics["r2"], "picp": res.metrics["picp"], "n": res.metrics["n"], "k": kk}


def demo(folder: Path, trees: int, out: Path, seed: int = 0) -> list[dict]:
    import rasterio

    from soilsuite.dsm import build_stack, cross_validate, predict_map, read_samples, train
    from soilsuite.dsm.demo import LAB_NOISE, _on_grid
    from soilsuite.sources.simulate import load_truth

    truth = load_truth(folder / "archive")
    products = folder / "products"
    with rasterio.open(products / "MASK.tif") as src:
        mask, transform, crs, shape = src.read(1), src.transform, src.crs, src.shape
    soc_true = _on_grid(truth["soc"], shape, transform).astype("float64")
    lc = _on_grid(truth["landcover"], shape, transform)
    cand = np.flatnonzero(((mask == 1) & (lc == 1) & np.isfinite(soc_true)).ravel())
    rng = np.random.default_rng(seed)
    pick = rng.choice(cand, size=min(150, cand.size), replace=False)
    rows, cols = np.divmod(pick, shape[1])
    jx, jy = rng.uniform(0.1, 0.9, (2, pick.size))
    xs = transform.c + transform.a * (cols + jx)
    ys = transform.f + transform.e * (rows + jy)
    soc_lab = soc_true.ravel()[pick] * (1 + LAB_NOISE * rng.standard_normal(pick.size))
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "samples.csv"
    pd.DataFrame({"id": np.arange(pick.size), "x": xs, "y": ys, "soc_gkg": np.clip(soc_lab, 0.1, None).round(2)}
                 ).to_csv(csv, index=False)
    samples = read_samples(csv, {"soc": "soc_gkg"}, crs=crs, id_column="id")
    stack = build_stack(products, ["SRC_MEAN", "BSF"])
    rows_out = []
    for opt in OPTIONS:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = train(samples, "soc", stack, n_estimators=trees, n_jobs=-1, random_state=seed, spatial=opt)
            c = model.coords_train_
            block = max(np.ptp(c[:, 0]), np.ptp(c[:, 1])) / 6.0
            cv = cross_validate(model, method="spatial", k=5, block_size=block, seed=seed)
            paths = predict_map(model, out / opt, overwrite=True, aoa=False)
        with rasterio.open(paths["mean"]) as src:
            mean = src.read(1).astype("float64")
        sel = (mask == 1) & np.isfinite(mean) & np.isfinite(soc_true)
        err = mean[sel] - soc_true[sel]
        r2 = 1 - float(np.sum(err ** 2)) / float(np.sum((soc_true[sel] - soc_true[sel].mean()) ** 2))
        rows_out.append({"option": opt, "cv_r2": cv.metrics["r2"], "cv_picp": cv.metrics["picp"], "map_r2": r2,
                         "map_rmse": float(np.sqrt(np.mean(err ** 2))), "pixels": int(sel.sum()),
                         "used": model.spatial_["used"], "seconds": time.perf_counter() - t})
        r = rows_out[-1]
        print(f"demo {opt:9s} spatial 5-fold CV R2={r['cv_r2']:.3f} PICP90={r['cv_picp']:.3f}  "
              f"map mean vs true SOC ({r['pixels']} px): R2={r['map_r2']:.3f} RMSE={r['map_rmse']:.2f} g/kg  "
              f"({r['seconds']:.0f} s)", flush=True)
    return rows_out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(".realdata/limesoda"))
    ap.add_argument("--demo", type=Path, default=None, help="demo folder (products/ + archive/) to map")
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    args = ap.parse_args(argv)
    rows = []
    if args.data.is_dir():
        for ds in args.datasets.split(","):
            for tname, col in TARGETS.items():
                line = f"{ds:8s} {tname:4s}"
                for opt in OPTIONS:
                    r = limesoda_task(args.data / f"{ds}.npz", col, opt, args.trees, args.k)
                    rows.append({"dataset": ds, "target": tname, "option": opt, **r})
                    line += f"  {opt}: R2={r['r2']:6.3f} PICP={r['picp']:.3f}"
                print(line + f"  (n={r['n']}, k={r['k']})", flush=True)
    else:
        print(f"LimeSoDa not found in {args.data}; run `make realdata` (LimeSoDa part skipped)", file=sys.stderr)
    md = ["# Spatial options of the soil model (spatially blocked CV)", "",
          f"{args.trees} trees; LimeSoDa: blocks of 1/8 of the sample extent, k <= {args.k} folds.", ""]
    if rows:
        tab = pd.DataFrame(rows)
        mean = tab.groupby("option", sort=False)[["r2", "picp"]].mean()
        wins = {o: int((tab[tab.option == o].r2.to_numpy() > tab[tab.option == "none"].r2.to_numpy()).sum())
                for o in OPTIONS}
        ntask = len(tab) // len(OPTIONS)
        md += ["| option | mean R2 | mean PICP90 | tasks better than none |", "|---|---|---|---|"]
        for o, r in mean.iterrows():
            md.append(f"| {o} | {r['r2']:.3f} | {r['picp']:.3f} | {wins[o] if o != 'none' else '-'} / {ntask} |")
            print(f"mean over {ntask} tasks: {o:9s} R2={r['r2']:.3f} PICP90={r['picp']:.3f} "
                  f"better than none on {wins[o]} tasks")
    if args.demo is not None:
        dr = demo(args.demo, args.trees, args.out / "dsm_spatial_demo")
        md += ["", "Demo scene (150 samples, spatial 5-fold CV; map = predicted mean vs the true SOC field):", "",
               "| option | CV R2 | CV PICP90 | map R2 | map RMSE (g/kg) |", "|---|---|---|---|---|"]
        md += [f"| {r['option']} | {r['cv_r2']:.3f} | {r['cv_picp']:.3f} | {r['map_r2']:.3f} | {r['map_rmse']:.2f} |"
               for r in dr]
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "dsm_spatial.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md) + "\n")
    tmp.replace(out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
