"""The end-to-end demo behind ``make demo``: simulate, composite, check against truth, map soil.

Everything runs on built-in data (the simulator); outputs go to one folder:

- ``archive/``   the simulated Sentinel-2 L2A archive (STAC catalog + COGs + truth)
- ``products/``  the SoilSuite products (COGs, per-year folders, quicklooks, STAC, run.json)
- ``soil/``      the soil organic carbon map (QRF quantiles, uncertainty) and its validation report
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from .errors import OutputExistsError


def truth_metrics(products_dir: Path, archive_dir: Path) -> dict[str, float]:
    """Compare window products with the simulator's truth (cropland pixels).

    Returns the RMSE of SRC_MEAN against the true soil spectrum per band (reflectance), the
    share of truly cropland pixels classified MASK=1, of forest/grassland MASK=2 and of
    built-up/water MASK=3, and the BSF bias on cropland (BSF - true bare frequency).
    """
    from .io.products import open_products
    from .sources.simulate import TRUTH_BARE, TRUTH_CLASSES, load_truth

    ds = open_products(products_dir)
    truth = load_truth(archive_dir)
    cls = {v: k for k, v in TRUTH_CLASSES.items()} if isinstance(next(iter(TRUTH_CLASSES)), str) else TRUTH_CLASSES
    lc = truth["landcover"].values
    by_name = {name.lower(): code for code, name in cls.items()} if isinstance(next(iter(cls)), int) else cls
    crop = lc == by_name.get("cropland", 1)
    out: dict[str, float] = {}
    src = ds["SRC_MEAN"].values
    soil = truth["soil_reflectance"].values.astype("float64")
    if soil.max() > 2:  # stored x 10000
        soil = soil / 1e4
    ok = crop & np.isfinite(src).all(axis=0)
    for i, band in enumerate(ds["band"].values):
        out[f"rmse_{band}"] = float(np.sqrt(np.mean((src[i][ok] - soil[i][ok]) ** 2))) if ok.any() else float("nan")
    mask = ds["MASK"].values
    out["cropland_mask1"] = float(np.mean(mask[crop] == 1)) if crop.any() else float("nan")
    for name in ("forest", "grassland"):
        sel = lc == by_name.get(name, -1)
        out[f"{name}_mask2"] = float(np.mean(mask[sel] == 2)) if sel.any() else float("nan")
    clear = (truth["obs_flags"].values & 0b11110) == 0  # no cloud, shadow, haze, snow
    bare = (truth["obs_flags"].values & TRUTH_BARE) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        true_bsf = (bare & clear).sum(0) / clear.sum(0)
    bsf = ds["BSF"].values
    sel = crop & np.isfinite(bsf) & np.isfinite(true_bsf)
    out["cropland_bsf_bias"] = float(np.mean(bsf[sel] - true_bsf[sel])) if sel.any() else float("nan")
    return out


def run_demo(out: str | Path = "demo_out", *, size: int = 256, start: str = "2021-01-01", end: str = "2022-12-31",
             seed: int = 0, overwrite: bool = False, console: Console | None = None) -> dict:
    """Run the whole demo; returns a dict of timings and metrics."""
    from .pipeline.composite import build_config, run
    from .sources.simulate import simulate

    console = console or Console()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"demo folder {out} exists; use --overwrite or another folder")
    timings: dict[str, float] = {}

    console.rule("[bold]1/3 simulate a Sentinel-2 L2A archive")
    t = time.perf_counter()
    sim = simulate(out / "archive", size=size, start=_d(start), end=_d(end), seed=seed, overwrite=True, progress=True)
    timings["simulate_s"] = time.perf_counter() - t
    console.print(sim.summary())

    console.rule("[bold]2/3 composite: bare-soil products")
    t = time.perf_counter()
    cfg = build_config(
        source=str(sim.catalog_path), start=_d(start), end=_d(end), out=out / "products", bbox=None,
        crs=f"EPSG:{sim.epsg}", worldcover=sim.worldcover_path, periods="year", overwrite=True,
    )
    summary = run(cfg, progress=True)
    timings["composite_s"] = time.perf_counter() - t
    from .cli import print_summary  # noqa: PLC0415 - presentation only

    print_summary(summary)
    metrics = truth_metrics(out / "products", out / "archive")
    t_ = Table(title="products vs the simulator's truth")
    t_.add_column("metric")
    t_.add_column("value", justify="right")
    for k, v in metrics.items():
        t_.add_row(k, f"{v:.4f}")
    console.print(t_)

    result = {"timings": timings, "metrics": metrics, "products": str(out / "products")}
    dsm = _dsm_step(out, sim, console)
    if dsm:
        result["dsm"] = dsm

    console.rule("[bold]where to look")
    console.print(f"products (COGs, open in QGIS): {out / 'products'}")
    console.print(f"quicklooks: {out / 'products' / 'quicklooks'}")
    console.print(f"STAC collection: {out / 'products' / 'collection.json'}")
    console.print(f"run record: {out / 'products' / 'run.json'}")
    return result


def _dsm_step(out: Path, sim, console: Console) -> dict | None:
    """3/3: soil organic carbon map from simulated samples and the composite (QRF)."""
    console.rule("[bold]3/3 soil mapping")
    try:
        from .dsm.demo import demo_soil_map
    except ImportError:
        console.print("[yellow]soil mapping step not available in this build[/]")
        return None
    return demo_soil_map(out, sim, console=console)


def _d(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text) if isinstance(text, str) else text
