"""Step 3/3 of ``make demo``: a soil organic carbon map from simulated samples and the composite.

Samples are drawn on cropland pixels with ``MASK == 1`` from the simulator's true SOC (plus
lab noise), a quantile regression forest is trained on the composite products, validated by
spatially blocked cross-validation, and the SOC map (quantiles, uncertainty, AOA) is predicted.
The predicted mean (the point prediction; the median is reported beside it) is then compared
with the true SOC on every ``MASK == 1`` pixel.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

#: relative lab error of the simulated SOC measurements (standard deviation, share of the value)
LAB_NOISE = 0.05


def _on_grid(da: Any, shape: tuple[int, int], transform: Any) -> np.ndarray:
    """A truth layer [y, x] on the product grid (same grid, or nearest by coordinates)."""
    arr = np.asarray(da.values)
    if arr.shape == tuple(shape):
        return arr
    h, w = shape
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    return np.asarray(da.sel(x=xs, y=ys, method="nearest").values)


def demo_soil_map(out: Path, sim: Any, console: Any = None, *, truth: Any = None, n_samples: int = 150,
                  seed: int = 0, n_estimators: int = 300) -> dict:
    """Map SOC on the simulated scene and check it against the truth.

    Parameters
    ----------
    out : Path
        Demo folder: reads ``out/products``, writes ``out/soil`` (samples.csv, COGs,
        ``validation/`` report, ``soc.joblib``).
    sim : SimulationResult
        The simulated archive (``sim.out`` holds its truth; ``sim.epsg`` its CRS).
    console : rich.console.Console, optional
    truth : xarray.Dataset, optional
        Truth with ``landcover`` and ``soc`` (g/kg); default ``load_truth(sim.out)``.
    n_samples : int
        Sample points drawn on cropland pixels with MASK == 1.
    seed : int
    n_estimators : int
        Trees of the forest.

    Returns
    -------
    dict
        ``n_samples``, ``cv`` (spatial CV metrics), ``r2_map`` and ``rmse_map`` (mean vs
        true SOC over all MASK == 1 pixels, g/kg), ``aoa_share``, ``seconds`` and ``paths``.
    """
    import pandas as pd
    import rasterio
    from rich.console import Console
    from rich.table import Table

    from ..errors import InputError
    from . import build_stack, cross_validate, predict_map, read_samples, train

    console = console or Console()
    t0 = time.perf_counter()
    out = Path(out)
    products = out / "products"
    soil = out / "soil"
    soil.mkdir(parents=True, exist_ok=True)
    if truth is None:
        from ..sources.simulate import load_truth

        truth = load_truth(sim.out)
    from ..io.products import product_files

    mask_path = product_files(products).get("MASK")
    if mask_path is None:
        raise InputError(f"{products} holds no MASK product (MASK.tif or MASK.vrt); run the composite first")
    with rasterio.open(mask_path) as src:
        mask, transform, crs, shape = src.read(1), src.transform, src.crs, src.shape
    soc_true = _on_grid(truth["soc"], shape, transform).astype("float64")
    lc = _on_grid(truth["landcover"], shape, transform)
    cand = np.flatnonzero(((mask == 1) & (lc == 1) & np.isfinite(soc_true)).ravel())
    if cand.size < 20:
        raise InputError(f"only {cand.size} cropland pixels with MASK == 1 in {mask_path}; need >= 20 for the demo")
    rng = np.random.default_rng(seed)
    pick = rng.choice(cand, size=min(n_samples, cand.size), replace=False)
    rows, cols = np.divmod(pick, shape[1])
    jx, jy = rng.uniform(0.1, 0.9, (2, pick.size))
    xs = transform.c + transform.a * (cols + jx)
    ys = transform.f + transform.e * (rows + jy)
    soc_lab = soc_true.ravel()[pick] * (1 + LAB_NOISE * rng.standard_normal(pick.size))
    csv = soil / "samples.csv"
    tmp = csv.with_suffix(".csv.tmp")
    pd.DataFrame({"id": np.arange(pick.size), "x": xs, "y": ys, "soc_gkg": np.clip(soc_lab, 0.1, None).round(2)}
                 ).to_csv(tmp, index=False)
    tmp.replace(csv)

    samples = read_samples(csv, {"soc": "soc_gkg"}, crs=crs, id_column="id")
    stack = build_stack(products, ["SRC_MEAN", "BSF"])
    model = train(samples, "soc", stack, n_estimators=n_estimators, n_jobs=-1, random_state=seed)
    model.save(soil / "soc.joblib", overwrite=True)
    c = model.coords_train_
    block = max(np.ptp(c[:, 0]), np.ptp(c[:, 1])) / 6.0
    cv = cross_validate(model, method="spatial", k=5, block_size=block, seed=seed)
    cv.write(soil / "validation", overwrite=True)
    paths = predict_map(model, soil, overwrite=True, progress=True)
    with rasterio.open(paths["mean"]) as src:  # the point prediction (docs/dsm.md "Which map to read")
        mean = src.read(1).astype("float64")
    with rasterio.open(paths["q50"]) as src:
        q50 = src.read(1).astype("float64")
    with rasterio.open(paths["aoa"]) as src:
        aoa = src.read(1)
    sel = (mask == 1) & np.isfinite(mean) & np.isfinite(soc_true)
    err = mean[sel] - soc_true[sel]
    sst = float(np.sum((soc_true[sel] - soc_true[sel].mean()) ** 2))
    r2 = 1 - float(np.sum(err**2)) / sst if sst > 0 else float("nan")
    err50 = q50[sel] - soc_true[sel]
    r2_median = 1 - float(np.sum(err50**2)) / sst if sst > 0 else float("nan")
    res = {
        "n_samples": int(pick.size), "cv": cv.metrics, "r2_map": r2, "rmse_map": float(np.sqrt(np.mean(err**2))),
        "r2_map_median": r2_median,
        "n_pixels": int(sel.sum()), "aoa_share": float(np.mean(aoa[mask == 1] == 1)) if (mask == 1).any() else float("nan"),
        "seconds": time.perf_counter() - t0,
        "paths": {"samples": str(csv), "model": str(soil / "soc.joblib"), "report": str(soil / "validation" / "report.html"),
                  **{k: str(v) for k, v in paths.items()}},
    }
    t = Table(title="soil organic carbon map vs the simulator's truth (g/kg)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    m = cv.metrics
    t.add_row("samples (cropland, MASK=1, 5 % lab noise)", f"{pick.size}")
    t.add_row("spatial 5-fold CV: R2 / RMSE", f"{m['r2']:.3f} / {m['rmse']:.2f}")
    t.add_row("spatial 5-fold CV: PICP of the 90 % interval", f"{m['picp']:.3f}")
    t.add_row(f"map mean vs truth, {sel.sum()} MASK=1 pixels: R2", f"{r2:.3f}")
    t.add_row("map mean vs truth: RMSE", f"{res['rmse_map']:.2f}")
    t.add_row("map Q0.50 (median) vs truth: R2", f"{r2_median:.3f}")
    t.add_row("MASK=1 pixels inside the area of applicability", f"{100 * res['aoa_share']:.1f} %")
    t.add_row("time", f"{res['seconds']:.1f} s")
    console.print(t)
    console.print(f"soil maps (COGs): {soil}  validation report: {res['paths']['report']}")
    return res
