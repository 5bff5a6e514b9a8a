"""The run plan: every derived setting of a composite run, computed once.

The worker count, memory per worker, processing tile side (from the budget, or the side of an
interrupted run to resume), the file layout and the output COG tiles are derived here, once,
after the inputs are checked; the runner (:func:`soilsuite.pipeline.cluster.dask_client`), the
mosaic (:func:`soilsuite.pipeline.mosaic.write_outputs`) and the summary read the plan, and the
run record (``run.json``) keeps it under ``plan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odc.geo.geobox import GeoBox

from ..config import CompositeConfig
from ..io.layout import WINDOW, TileStore
from .tiles import (
    Tile,
    layout_tiles,
    plan_tiles,
    tile_layout,
    tile_side_for_share,
)

__all__ = ["AUTO_TILES_PIXELS", "RunPlan", "plan_run", "resolve_layout"]

#: ``layout="auto"`` writes tile COGs and VRT mosaics above this many pixels (2**30, a square
#: of 655 km at 20 m): a single spectral COG would pass 20 GB, more than users can move or
#: open comfortably.
AUTO_TILES_PIXELS = 2**30


def resolve_layout(cfg: CompositeConfig, geobox: GeoBox) -> str:
    """``"single"`` or ``"tiles"`` for a run's grid (``cfg.layout``, or the ``auto`` rule)."""
    if cfg.layout != "auto":
        return cfg.layout
    return "tiles" if geobox.shape.y * geobox.shape.x > AUTO_TILES_PIXELS else "single"


@dataclass(frozen=True)
class RunPlan:
    """What a composite run will do, decided once before any tile runs.

    Attributes
    ----------
    out : Path
        Output folder.
    geobox : odc.geo.geobox.GeoBox
        The target grid.
    periods : list of str
        Period labels (years) besides the window; empty without ``periods="year"``.
    tile_side : int
        Processing tile side (px): from the memory budget, or that of an interrupted run.
    tiles : list of Tile
        The processing tiles: at most ``tile_side`` px a side (1.1 x with a merged sliver), as
        few and as equal as the side allows, on COG block boundaries where possible
        (:func:`soilsuite.pipeline.tiles.layout_tiles`; ``$SOILSUITE_TILE_LAYOUT=grid``: the
        plain grid of ``tile_side`` from the origin).
    store : TileStore
        Where the processing tiles' results go (``.work/tiles/side<tile_side>``).
    workers : int
        Workers running tiles at the same time: threads of this process (the default local
        engine) or processes (1 with ``scheduler="sync"``).
    memory_per_worker : int
        Share of the budget per worker (bytes): a local worker process's Dask memory limit; with
        worker threads, this process less its own resident size, shared by the threads
        (:func:`soilsuite.pipeline.cluster.thread_share`).
    io_threads : int
        Threads writing product COGs and reading STAC statistics (the local worker count).
    layout : {"single", "tiles"}
        Product files: one COG per product, or output COG tiles plus a VRT mosaic.
    cog_tile_px : int or None
        Side (px) of the output COG tiles with layout "tiles", else None.
    cog_tiles : list of Tile
        The output COG tiles (layout "tiles"), else empty.
    """

    out: Path
    geobox: GeoBox
    periods: list[str]
    tile_side: int
    tiles: list[Tile]
    store: TileStore
    workers: int
    memory_per_worker: int
    io_threads: int
    layout: str
    cog_tile_px: int | None = None
    cog_tiles: list[Tile] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """``["window", *periods]``: the labels products are written for."""
        return [WINDOW, *self.periods]

    @property
    def shape(self) -> tuple[int, int]:
        """Grid size (rows, columns) in pixels."""
        return (self.geobox.shape.y, self.geobox.shape.x)

    def to_record(self) -> dict[str, Any]:
        """The plan as JSON-able values, for the run record's ``plan`` entry."""
        return {
            "grid": {"crs": str(self.geobox.crs), "transform": list(self.geobox.affine)[:6], "shape": list(self.shape)},
            "periods": list(self.periods),
            "tile_side": self.tile_side,
            "tiles": len(self.tiles),
            "tile_store": str(self.store.root.relative_to(self.out)),
            "workers": self.workers,
            "memory_per_worker": self.memory_per_worker,
            "io_threads": self.io_threads,
            "layout": self.layout,
            "cog_tile_px": self.cog_tile_px,
            "cog_tiles": [t.name for t in self.cog_tiles],
        }


def plan_run(cfg: CompositeConfig, geobox: GeoBox, n_obs: int, periods: list[str],
             out: str | Path | None = None) -> RunPlan:
    """Derive a run's plan from its configuration, grid and observations.

    Parameters
    ----------
    cfg : CompositeConfig
        The run's options (engine budget, tile size, layout, output tile side).
    geobox : odc.geo.geobox.GeoBox
        The target grid.
    n_obs : int
        Number of observations (solar days): with the periods, the memory per tile pixel.
    periods : list of str
        Period labels.
    out : path, optional
        Output folder (default ``cfg.out``): an interrupted run's finished tiles there are
        reused if their side fits this budget.

    Returns
    -------
    RunPlan

    Raises
    ------
    ConfigError
        The budget or the worker count do not fit this machine.
    """
    from .cluster import local_sizing, n_local_workers

    out = Path(cfg.out if out is None else out)
    local = n_local_workers(cfg.engine)
    # workers (threads or processes), each one's share and what it holds before its tile (its
    # process, or with threads only the files kept open: the process is counted once)
    workers, per_worker, base = local_sizing(cfg.engine, cfg.source)
    side = tile_side_for_share(per_worker, n_obs, len(periods), cfg.engine.tile_size, base_bytes=base,
                               provenance=cfg.layers.provenance)
    from ..sources.cube import is_cube_source, tile_side_for_cube

    side = tile_side_for_cube(cfg.source, side)  # a cube (soilsuite ingest): tiles of whole chunks
    store = TileStore.resume(out, side)
    # fewest tiles of near-equal sizes on COG block boundaries, slivers merged (issue 14); a
    # cube keeps the plain grid of whole chunks
    balanced = tile_layout() == "balanced" and not is_cube_source(cfg.source)
    tiles = layout_tiles(geobox, store.side) if balanced else plan_tiles(geobox, store.side)
    layout = resolve_layout(cfg, geobox)
    cog_px = cfg.cog_tile_px if layout == "tiles" else None
    return RunPlan(
        out=out, geobox=geobox, periods=list(periods), tile_side=store.side, tiles=tiles,
        store=store, workers=workers, memory_per_worker=per_worker, io_threads=local, layout=layout,
        cog_tile_px=cog_px, cog_tiles=plan_tiles(geobox, cog_px) if cog_px else [],
    )
