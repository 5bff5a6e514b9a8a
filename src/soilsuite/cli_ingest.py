"""``soilsuite ingest``: the archive once into an analysis-ready Zarr cube (registered on the main app).

Thin: parse, call :func:`soilsuite.ingest.ingest`, report. Errors become one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import (
    AREA,
    ENGINE,
    OUTPUT,
    QUIET,
    SOURCE,
    TIME,
    PanelCommand,
    batch_output,
    cli_date,
    console,
    friendly,
    opt,
    parse_bbox,
)
from .config import IngestConfig, SceneFilter

__all__ = ["register"]

I = IngestConfig  # noqa: E741 - the options' model, as F for export-force
METHOD = "Scene filter"


def ingest(
    source: Annotated[str, SOURCE],
    out: Path = opt(I, "out", "--out", "-o", panel=OUTPUT, help="the Zarr store to write, e.g. cube.zarr"),
    start: str = opt(I, "start", panel=TIME, metavar="YYYY-MM-DD"),
    end: str = opt(I, "end", panel=TIME, metavar="YYYY-MM-DD"),
    collection: str | None = opt(I, "collection", panel=AREA),
    bbox: str | None = opt(I, "bbox", panel=AREA, metavar="W,S,E,N"),
    area: Path | None = opt(I, "area", panel=AREA),
    mgrs: str | None = opt(I, "mgrs", panel=AREA),
    crs: str | None = opt(I, "crs", panel=AREA),
    resolution: float = opt(I, "resolution", panel=AREA),
    max_cloud_cover: float = opt(SceneFilter, "max_cloud_cover", panel=METHOD),
    min_sun_elevation: float = opt(SceneFilter, "min_sun_elevation", panel=METHOD),
    chunk_px: int = opt(I, "chunk_px", panel=OUTPUT),
    halo_px: int = opt(I, "halo_px", panel=OUTPUT),
    n_workers: int | None = opt(I, "n_workers", "--workers", panel=ENGINE, help="threads (default: one per core)"),
    overwrite: bool = opt(I, "overwrite", panel=OUTPUT, help="replace a cube ingest wrote (only its own files)"),
    force_clean: bool = opt(I, "force_clean", panel=OUTPUT),
    quiet: Annotated[bool, QUIET] = False,
):
    """Write the archive once as an analysis-ready Zarr cube that `composite CUBE.zarr` reads."""
    from .ingest import ingest as _ingest

    batch_output(quiet, False)
    res = _ingest(source, out=out, start=cli_date(start, "start"), end=cli_date(end, "end"), bbox=parse_bbox(bbox),
                  area=area, mgrs=mgrs, crs=crs, resolution=resolution, collection=collection,
                  max_cloud_cover=max_cloud_cover, min_sun_elevation=min_sun_elevation, chunk_px=chunk_px,
                  halo_px=halo_px, n_workers=n_workers, overwrite=overwrite, force_clean=force_clean,
                  progress=not quiet)
    if not quiet:
        console.print(res.summary())


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the main app."""
    app.command("ingest", cls=PanelCommand)(friendly(ingest))
