"""``soilsuite ingest``: the archive once into an analysis-ready Zarr cube (registered on the main app).

Thin: parse, call :func:`soilsuite.ingest.ingest`, report. Errors become one line and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import (
    ENGINE,
    OUTPUT,
    QUIET,
    SOURCE,
    PanelCommand,
    batch_output,
    console,
    friendly,
    opt,
)
from .cli_options import area_options, scene_options, time_options, with_option_groups
from .config import IngestConfig

__all__ = ["register"]

I = IngestConfig  # noqa: E741 - the options' model, as F for export-force
METHOD = "Scene filter"


@with_option_groups
def ingest(
    source: Annotated[str, SOURCE],
    out: Path = opt(I, "out", "--out", "-o", panel=OUTPUT, help="the Zarr store to write, e.g. cube.zarr"),
    window: dict = time_options(I),
    where: dict = area_options(I),
    scene: dict = scene_options(METHOD),
    chunk_px: int = opt(I, "chunk_px", panel=OUTPUT),
    halo_px: int = opt(I, "halo_px", panel=OUTPUT),
    n_workers: int | None = opt(I, "n_workers", "--workers", panel=ENGINE, help="threads (default: one per core)"),
    overwrite: bool = opt(I, "overwrite", panel=OUTPUT, help="replace a cube ingest wrote (only its own files)"),
    force_clean: bool = opt(I, "force_clean", panel=OUTPUT),
    quiet: Annotated[bool, QUIET] = False,
):
    """Write the archive once as an analysis-ready Zarr cube that `composite CUBE.zarr` reads.

    Run again with the same options, an interrupted ingest computes only the missing chunks.
    """
    from .ingest import ingest as _ingest

    batch_output(quiet, False)
    res = _ingest(source, out=out, **window, **where, **scene, chunk_px=chunk_px, halo_px=halo_px,
                  n_workers=n_workers, overwrite=overwrite, force_clean=force_clean, progress=not quiet)
    if not quiet:
        console.print(res.summary())


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the main app."""
    app.command("ingest", cls=PanelCommand)(friendly(ingest))
