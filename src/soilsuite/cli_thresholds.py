"""Commands about the PV+IR2 threshold: ``calibrate-threshold`` and ``threshold-sweep``
(registered on the main app by :func:`register`; docs/thresholds.md).

Thin: parse, call the API (:mod:`soilsuite.calibrate`, :mod:`soilsuite.sweep`), report.
Errors become one line and exit 2 (:func:`~soilsuite.cli_common.friendly`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import cli_options as G
from .cli_common import (
    METHOD,
    OUTPUT,
    QUIET,
    SOURCE,
    PanelCommand,
    console,
    friendly,
    opt,
)
from .config import BareOptions, CompositeConfig

__all__ = ["register"]


@G.with_option_groups
def calibrate_threshold(
    source: Annotated[str, SOURCE],
    window: dict = G.time_options(CompositeConfig),
    where: dict = G.area_options(CompositeConfig),
    worldcover: Path = typer.Option(..., help="ESA WorldCover raster: classes 40 cropland, 30 grassland",
                                    rich_help_panel=METHOD, show_default=False),
    region_size: float | None = typer.Option(None, help="square regions of this side (m); or --regions",
                                             rich_help_panel=METHOD),
    regions: Path | None = typer.Option(None, help="polygon file, one region per feature; or --region-size",
                                        rich_help_panel=METHOD),
    min_obs: int = typer.Option(500, help="valid observations per class for a region; others are filled "
                                "from neighbours", rich_help_panel=METHOD),
    k_sigma: float = typer.Option(2.0, help="threshold = bare mode + this x its sigma (capped)",
                                  rich_help_panel=METHOD),
    scene: dict = G.scene_options(),
    mask: dict = G.mask_options(),
    engine: dict = G.engine_options(),
    out: Path = typer.Option(Path("threshold.tif"), "--out", "-o", help="threshold raster (.tif); .csv, .png and "
                             ".json beside it", rich_help_panel=OUTPUT),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier calibration's files",
                                   rich_help_panel=OUTPUT, metavar=""),
    quiet: Annotated[bool, QUIET] = False,
):
    """Regional PV+IR2 thresholds from cropland/grassland histograms (for --threshold-raster)."""
    from .calibrate import calibrate_threshold as _calibrate

    res = _calibrate(
        source, **window, **where, **scene, **mask, **engine, out=out, worldcover=worldcover,
        region_size=region_size, regions=regions, min_obs=min_obs, k_sigma=k_sigma, overwrite=overwrite,
        progress=not quiet,
    )
    if quiet:
        return
    console.print(res.summary())
    for note in res.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"table {res.table}, plot {res.plot}, record {res.record}; use it with "
                  f"`soilsuite composite ... --threshold-raster {res.raster}`", highlight=False)


@G.with_option_groups
def threshold_sweep(
    source: Annotated[str, SOURCE],
    window: dict = G.time_options(CompositeConfig),
    where: dict = G.area_options(CompositeConfig),
    thresholds: str = typer.Option("0.10:0.30:0.05", help="thresholds START:STOP:STEP (inclusive)",
                                   rich_help_panel=METHOD),
    threshold: float = opt(BareOptions, "threshold", panel=METHOD, help="reference threshold (changes are to it)"),
    worldcover: Path | None = opt(CompositeConfig, "worldcover", panel=METHOD),
    selector: str = opt(BareOptions, "selector", panel=METHOD),
    min_bare_obs: int = opt(BareOptions, "min_bare_obs", panel=METHOD),
    scene: dict = G.scene_options(),
    mask: dict = G.mask_options(("dilation_px",)),
    engine: dict = G.engine_options(),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (threshold_sweep.csv, threshold_sweep.png)",
                             rich_help_panel=OUTPUT, show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier sweep's files",
                                   rich_help_panel=OUTPUT, metavar=""),
    quiet: Annotated[bool, QUIET] = False,
):
    """Area BSF and SRC_MEAN at each threshold of a range: how much the threshold matters."""
    from .sweep import threshold_sweep as _sweep

    res = _sweep(
        source, **window, **where, **scene, **mask, **engine, out=out, thresholds=thresholds, threshold=threshold,
        worldcover=worldcover, selector=selector, min_bare_obs=min_bare_obs, overwrite=overwrite, progress=not quiet,
    )
    if not quiet:
        console.print(res.summary())
        console.print(f"plot {res.plot}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``calibrate-threshold`` and ``threshold-sweep`` to the main app."""
    app.command("calibrate-threshold", cls=PanelCommand)(friendly(calibrate_threshold))
    app.command("threshold-sweep", cls=PanelCommand)(friendly(threshold_sweep))
