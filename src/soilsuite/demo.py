"""The end-to-end demo behind ``make demo``: simulate, composite, check against truth, map soil.

Everything runs on built-in data (the simulator); outputs go to one folder:

- ``archive/``   the simulated Sentinel-2 L2A archive (STAC catalog + COGs + truth)
- ``products/``  the SoilSuite products (COGs, per-year folders, quicklooks, STAC, run.json)
- ``soil/``      the soil organic carbon map (QRF quantiles, uncertainty) and its validation report
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .cli_common import print_summary
from .config import parse_date
from .errors import OutputExistsError


def run_demo(out: str | Path = "demo_out", *, size: int = 256, start: str = "2021-01-01", end: str = "2022-12-31",
             seed: int = 0, overwrite: bool = False, console: Console | None = None) -> dict:
    """Run the whole demo; returns a dict of timings and metrics."""
    from .pipeline.composite import build_config, run
    from .sources.simulate import simulate

    console = console or Console()
    out = Path(out)
    start, end = parse_date(start, "start"), parse_date(end, "end")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"demo folder {out} exists; use --overwrite or another folder")
    timings: dict[str, float] = {}

    console.rule("[bold]1/3 simulate a Sentinel-2 L2A archive")
    t = time.perf_counter()
    sim = simulate(out / "archive", size=size, start=start, end=end, seed=seed, overwrite=True, progress=True)
    timings["simulate_s"] = time.perf_counter() - t
    console.print(sim.summary())

    console.rule("[bold]2/3 composite: bare-soil products")
    t = time.perf_counter()
    cfg = build_config(
        source=str(sim.catalog_path), start=start, end=end, out=out / "products", bbox=None,
        crs=f"EPSG:{sim.epsg}", worldcover=sim.worldcover_path, periods="year", overwrite=True,
    )
    summary = run(cfg, progress=True)
    timings["composite_s"] = time.perf_counter() - t
    print_summary(summary)
    console.rule("[bold]products vs the simulator's truth")
    from .evaluate import evaluate, format_metrics
    from .pipeline.composite import observation_flags

    flags = observation_flags(sim.catalog_path, start=start, end=end, crs=f"EPSG:{sim.epsg}",
                              worldcover=sim.worldcover_path)
    metrics = evaluate(out / "products", out / "archive", flags=flags)
    del flags
    t_ = Table(title="products vs the simulator's truth")
    t_.add_column("metric")
    t_.add_column("value", justify="right")
    for k, v in format_metrics(metrics):
        t_.add_row(k, v)
    console.print(t_)
    console.print("MASK (columns) by true land cover (rows), pixels:")
    console.print(metrics["confusion"].to_string())
    metrics = {k: v for k, v in metrics.items() if k != "confusion"}

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
