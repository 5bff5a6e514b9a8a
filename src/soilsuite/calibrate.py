"""Regional PV+IR2 thresholds from the archive itself: ``soilsuite calibrate-threshold``.

A user without DLR's regional threshold database calibrates one (docs/thresholds.md):

1. the archive is read tile by tile on Dask with the composite's own loader, validity masks
   (SPEC 2.1) and PV+IR2 index (SPEC 2.2) (:func:`soilsuite.pipeline.composite.load_tile_inputs`);
2. per region (a square grid cell of ``region_size`` metres, or a user polygon) and class
   (WorldCover 40 cropland, 30 grassland) a fixed-bin histogram of the valid observations'
   PV+IR2 is accumulated by a numba kernel (:func:`soilsuite.kernels.thresholds.region_histograms`);
   tiles merge by summation, so memory is one tile plus the histograms;
3. per region the histogram-separation rule (:func:`soilsuite.kernels.thresholds.separation_threshold`);
4. regions with too few observations (or without a distinct bare mode) are filled from their
   neighbours: the mean of the calibrated regions of the nearest ring of grid cells (Chebyshev
   distance 1, then 2, ...), for polygons the mean of the 3 nearest calibrated polygons
   (centroid distance);
5. outputs: the threshold raster (COG, float32, PV+IR2, nodata NaN), a CSV table and a PNG of
   the histograms per region, and a JSON record of the run.

The composite reads the raster with ``--threshold-raster`` (bilinear onto its grid).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InputError, OutputExistsError

__all__ = ["calibrate_threshold", "CalibrationResult", "threshold_spec", "DEFAULT_MIN_OBS"]

#: Fixed PV+IR2 bins of the histograms: 300 bins of 0.01 over [-1, 2).
LO, HI, N_BINS = -1.0, 2.0, 300
#: Default minimum of valid observations per class (cropland, grassland) for a region.
DEFAULT_MIN_OBS = 500
#: WorldCover classes of the two histograms.
WC_CROP, WC_GRASS = 40, 30


def threshold_spec():
    """The :class:`~soilsuite.products.ProductSpec` of the threshold raster (float32, PV+IR2,
    nodata NaN; not a composite product, so not in the catalogue)."""
    from .products import ProductSpec

    return ProductSpec("THRESHOLD", "float32", float("nan"), 1.0, 0.0, "PV+IR2 (unitless)",
                       "regional PV+IR2 bare-soil threshold (soilsuite calibrate-threshold)",
                       group="calibration")


@dataclass
class CalibrationResult:
    """What :func:`calibrate_threshold` wrote and found."""

    raster: Path
    table: Path
    plot: Path
    record: Path
    regions: list[dict]
    n_calibrated: int
    n_filled: int
    n_observations: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self):
        """A rich table of the regions (first 30)."""
        from rich.table import Table

        t = Table(title=f"calibrated PV+IR2 thresholds -> {self.raster}")
        for col in ("region", "n cropland", "n grassland", "bare mode", "threshold", "filled from"):
            t.add_column(col, justify="right")
        for r in self.regions[:30]:
            t.add_row(str(r["region"]), str(r["n_crop"]), str(r["n_grass"]),
                      "" if r["crop_mode"] is None else f"{r['crop_mode']:.2f}",
                      "" if r["threshold"] is None else f"{r['threshold']:.3f}", r["filled_from"])
        if len(self.regions) > 30:
            t.add_row("...", "", "", "", "", f"{len(self.regions) - 30} more in {self.table.name}")
        return t


# ----------------------------------------------------------------------------- regions
@dataclass
class _Regions:
    """Region index of every pixel of the target grid, computed per tile."""

    kind: str  # "grid" or "polygons"
    n: int
    names: list[str]
    centroids: np.ndarray  # [n, 2] (x, y) in the grid's CRS
    cell_px: int = 0
    grid_shape: tuple[int, int] = (0, 0)
    polygons: Any = None  # GeoDataFrame in the grid's CRS

    def index(self, tile) -> np.ndarray:
        ny, nx = tile.shape
        if self.kind == "grid":
            rows = (tile.row_off + np.arange(ny)) // self.cell_px
            cols = (tile.col_off + np.arange(nx)) // self.cell_px
            return (rows[:, None] * self.grid_shape[1] + cols[None, :]).astype(np.int32)
        from rasterio import features

        gb = tile.geobox
        shapes = ((geom, i + 1) for i, geom in enumerate(self.polygons.geometry) if geom is not None)
        arr = features.rasterize(shapes, out_shape=(ny, nx), transform=gb.affine, fill=0, dtype="int32")
        return arr - 1


def _grid_regions(geobox, region_size: float) -> _Regions:
    res = abs(geobox.affine.a)
    cell = max(1, int(round(float(region_size) / res)))
    ny, nx = geobox.shape.y, geobox.shape.x
    gy, gx = -(-ny // cell), -(-nx // cell)
    a = geobox.affine
    rr, cc = np.mgrid[0:gy, 0:gx]
    cx = a.c + (cc.ravel() + 0.5) * cell * a.a
    cy = a.f + (rr.ravel() + 0.5) * cell * a.e
    names = [f"r{r:03d}_c{c:03d}" for r, c in zip(rr.ravel(), cc.ravel(), strict=True)]
    return _Regions("grid", gy * gx, names, np.column_stack([cx, cy]), cell, (gy, gx))


def _polygon_regions(path: Path, geobox) -> _Regions:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - any reader error: one line naming the file
        raise InputError(f"--regions {path}: cannot be read: {exc}") from exc
    if gdf.crs is None:
        raise InputError(f"--regions {path}: has no CRS")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        raise InputError(f"--regions {path}: has no polygons")
    gdf = gdf.to_crs(geobox.crs.to_wkt()).reset_index(drop=True)
    key = next((c for c in ("region", "id", "name") if c in gdf.columns), None)
    names = [str(v) for v in gdf[key]] if key else [str(i) for i in range(len(gdf))]
    cen = gdf.geometry.representative_point()
    return _Regions("polygons", len(gdf), names, np.column_stack([cen.x, cen.y]), polygons=gdf[["geometry"]])


# ----------------------------------------------------------------------------- tiles
@dataclass
class _HistTask:
    tile: Any
    items: list
    assets: dict
    cfg: dict
    halo: int
    regions: _Regions


def _tile_histograms(task: _HistTask) -> tuple[np.ndarray, np.ndarray] | str:
    """The regions present in one tile (int ``[r]``) and their histograms ``[r, 2, N_BINS]``, so a
    tile's result stays small however many regions the area has (a ``"error: ..."`` string on
    input errors)."""
    from .config import CompositeConfig
    from .errors import SoilsuiteError
    from .kernels import indices
    from .kernels import thresholds as K
    from .pipeline.composite import load_tile_inputs
    from .sources.rasters import read_on_grid

    try:
        cfg = CompositeConfig(**task.cfg)
        inp = load_tile_inputs(task.items, task.assets, task.tile.geobox, cfg, task.halo)
        pv = indices.pvir2(inp.refl)
        wc = read_on_grid(cfg.worldcover, task.tile.geobox, resampling="nearest", dtype="uint8", fill=0)
        cls = np.full(wc.shape, -1, np.int8)
        cls[wc == WC_CROP] = K.CLASS_CROP
        cls[wc == WC_GRASS] = K.CLASS_GRASS
        region = task.regions.index(task.tile)
        present, local = np.unique(region, return_inverse=True)
        local = local.reshape(region.shape).astype(np.int32)
        if present[0] < 0:  # pixels in no region
            local -= 1
            present = present[1:]
        hist = K.region_histograms(pv, inp.valid, local, cls, n_regions=len(present), lo=LO, hi=HI, n_bins=N_BINS)
        return present, hist
    except SoilsuiteError as exc:
        return f"error: tile {task.tile.name}: {exc}"


def map_tiles(cfg, fn, make_task, *, on_grid=None, progress: bool = False, what: str = "tiles"):
    """Plan the tiles of a run's grid, run ``fn(make_task(tile, items, assets, halo))`` on the
    Dask engine and yield the results as they finish (one tile in flight per worker).

    The items are searched, the grid built and the inputs checked as for a composite
    (:func:`~soilsuite.pipeline.preflight.preflight`); ``on_grid(geobox)``, if given, is called
    once the grid is known, before any task is made. Returns ``(geobox, n_observations,
    iterator)``. Input errors found on a worker come back as ``"error: ..."`` strings and are
    raised here as :class:`InputError`.
    """
    from .pipeline.composite import _items_over, select_items, target_geobox
    from .pipeline.preflight import preflight
    from .pipeline.tiles import plan_tiles, tile_side_for_share, workers_for_budget
    from .sources import stac as S

    _, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    geobox = target_geobox(cfg, sel.items)
    if on_grid is not None:
        on_grid(geobox)
    sel, meta = preflight(cfg, sel, assets, geobox)
    n_obs = len(meta.dates)
    _, per_worker = workers_for_budget(cfg.engine.max_memory, max(1, cfg.engine.n_workers or (os.cpu_count() or 1)))
    side = tile_side_for_share(per_worker, n_obs, 0, cfg.engine.tile_size)
    halo = cfg.mask.dilation_px // 2
    tiles = plan_tiles(geobox, side)
    tasks = [make_task(t, _items_over(sel.items, t.geobox.pad(halo)), assets, halo) for t in tiles]

    def run():
        from .pipeline.cluster import dask_client
        from .progress import progress_bar

        with dask_client(cfg.engine, n_tasks=len(tasks)) as client, progress_bar(progress) as bar:
            tid = bar.add_task(what, total=len(tasks))
            if client is None:
                results = (fn(t) for t in tasks)
            else:
                from distributed import as_completed

                results = (f.result() for f in as_completed(client.map(fn, tasks, pure=False)))
            for res in results:
                if isinstance(res, str) and res.startswith("error: "):
                    raise InputError(res[len("error: "):])
                bar.advance(tid)
                yield res

    return geobox, n_obs, run()


# ----------------------------------------------------------------------------- fill
def _fill(regions: _Regions, thr: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Thresholds with the NaN regions filled from calibrated neighbours, and the regions each
    value was taken from (empty for calibrated regions)."""
    ok = np.flatnonzero(np.isfinite(thr))
    out = thr.copy()
    sources: list[list[int]] = [[] for _ in range(regions.n)]
    for r in np.flatnonzero(~np.isfinite(thr)):
        if regions.kind == "grid":
            gy, gx = regions.grid_shape
            ry, rx = divmod(int(r), gx)
            oy, ox = np.divmod(ok, gx)
            ring = np.maximum(np.abs(oy - ry), np.abs(ox - rx))
            near = ok[ring == ring.min()]
        else:
            d = np.hypot(*(regions.centroids[ok] - regions.centroids[r]).T)
            near = ok[np.argsort(d, kind="stable")[:3]]
        out[r] = float(np.mean(thr[near]))
        sources[r] = [int(v) for v in near]
    return out, sources


# ----------------------------------------------------------------------------- outputs
def _outputs(out: Path) -> dict[str, Path]:
    return {"raster": out, "table": out.with_suffix(".csv"), "plot": out.with_suffix(".png"),
            "record": out.with_suffix(".json")}


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plot(path: Path, hist: np.ndarray, rows: list[dict], max_panels: int = 36) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .kernels.thresholds import bin_edges

    centres = 0.5 * (bin_edges(LO, HI, N_BINS)[:-1] + bin_edges(LO, HI, N_BINS)[1:])
    n = min(len(rows), max_panels)
    ncol = min(6, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.0 * nrow), squeeze=False, sharex=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    keep = (centres > -0.6) & (centres < 1.6)
    for i, row in enumerate(rows[:n]):
        ax = axes.ravel()[i]
        for c, (label, color) in enumerate((("cropland", "#b8860b"), ("grassland", "#2e8b57"))):
            h = hist[i, c].astype(float)
            if h.sum():
                ax.plot(centres[keep], (h / h.sum() / 0.01)[keep], color=color, lw=1, label=label)
        if row["threshold"] is not None:
            ax.axvline(row["threshold"], color="k", lw=1, ls="-" if not row["filled_from"] else ":")
        ax.set_title(f"{row['region']}: {row['threshold'] if row['threshold'] is not None else 'n/a'}"
                     + (" (filled)" if row["filled_from"] else ""), fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    fig.supxlabel("PV+IR2 (density per unit PV+IR2; line: threshold, dotted: filled)", fontsize=8)
    if len(rows) > n:
        fig.suptitle(f"first {n} of {len(rows)} regions", fontsize=8)
    fig.tight_layout()
    from .plots import save_png

    save_png(fig, path, overwrite=True, close=True)  # temporary name, then renamed


# ----------------------------------------------------------------------------- API
def calibrate_threshold(
    source: str | Path,
    *,
    start: str | dt.date,
    end: str | dt.date,
    out: str | Path,
    worldcover: str | Path,
    region_size: float | None = None,
    regions: str | Path | None = None,
    min_obs: int = DEFAULT_MIN_OBS,
    k_sigma: float = 2.0,
    bbox: tuple[float, float, float, float] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **options: Any,
) -> CalibrationResult:
    """Calibrate a regional PV+IR2 threshold raster from the archive (docs/thresholds.md).

    Parameters
    ----------
    source : str or Path
        STAC catalog/folder, STAC API URL (with ``collection=``) or SAFE folder, as for
        :func:`soilsuite.composite`.
    start, end : str or datetime.date
        Time window (inclusive); a multi-year window gives the most stable histograms.
    out : str or Path
        The threshold raster (``threshold.tif``); beside it ``<stem>.csv`` (one row per
        region), ``<stem>.png`` (histograms and threshold per region) and ``<stem>.json``
        (the run record).
    worldcover : str or Path
        ESA WorldCover raster: class 40 (cropland) and 30 (grassland) give the histograms.
    region_size : float, optional
        Side of square regions in metres (grid cells anchored at the grid's upper-left corner,
        rounded to whole pixels). Give this or ``regions``.
    regions : str or Path, optional
        Polygon file (any vector format; one region per feature, named by a ``region``, ``id``
        or ``name`` column if present). Pixels outside every polygon get no threshold (NaN):
        the composite uses its constant ``threshold`` there.
    min_obs : int
        Valid observations needed per class (cropland and grassland) for a region to be
        calibrated; others are filled from their neighbours.
    k_sigma : float
        Width of the bare mode above its centre in sigmas (the rule, step 5).
    bbox : (west, south, east, north), optional
        Area in degrees; or ``area=`` (vector file) or ``mgrs=``; default: the archive's extent.
    overwrite : bool
        Replace the outputs of an earlier calibration.
    progress : bool
        Show a progress bar.
    **options
        Options of the composite that apply to reading: ``collection``, ``area``, ``mgrs``,
        ``crs``, ``resolution``, ``max_cloud_cover``, ``min_sun_elevation``, ``dilation_px``,
        ``max_sun_zenith``, ``tile_size``, ``max_memory``, ``scheduler``, ``n_workers``,
        ``on_error``, ``allow_partial_coverage``.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    ConfigError
        Neither or both of ``region_size`` and ``regions``; bad numbers.
    InputError
        No region has ``min_obs`` valid observations of both cropland and grassland (the
        message gives the largest counts found); unreadable inputs.
    OutputExistsError
        An output exists and ``overwrite`` is False.
    """
    import time

    from .config import parse_date
    from .io.cog import write_cog
    from .kernels import thresholds as K
    from .pipeline.composite import build_config

    t0 = time.perf_counter()
    if (region_size is None) == (regions is None):
        raise ConfigError("give one of --region-size (metres) or --regions (a polygon file)")
    if region_size is not None and not (region_size > 0):
        raise ConfigError(f"--region-size: expected a positive size in metres, got {region_size}")
    if int(min_obs) < 1:
        raise ConfigError(f"--min-obs: expected at least 1 observation, got {min_obs}")
    if not k_sigma > 0:
        raise ConfigError(f"--k-sigma: expected a positive number, got {k_sigma}")
    if worldcover is None:
        raise ConfigError("--worldcover is required: classes 40 (cropland) and 30 (grassland) give the histograms")
    out = Path(out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigError(f"--out {out}: expected a GeoTIFF name ending in .tif")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    paths = _outputs(out)
    if not overwrite:
        for p in paths.values():
            if p.exists():
                raise OutputExistsError(f"{p} exists already; use --overwrite to replace it")
    cfg = build_config(source=str(source), start=parse_date(start, "start"), end=parse_date(end, "end"),
                       out=out.parent, bbox=bbox, worldcover=Path(worldcover), **options)
    holder: list[_Regions] = []

    def on_grid(gb):  # the regions need the grid
        holder.append(_grid_regions(gb, region_size) if region_size is not None
                      else _polygon_regions(Path(regions), gb))

    def make_task(tile, items, assets, halo):
        return _HistTask(tile, items, assets, cfg.model_dump(), halo, holder[0])

    geobox, n_obs, results = map_tiles(cfg, _tile_histograms, make_task, on_grid=on_grid, progress=progress,
                                       what="histograms")
    reg = holder[0]
    hist = np.zeros((reg.n, 2, N_BINS), np.int64)
    for present, h in results:
        hist[present] += h

    edges = K.bin_edges(LO, HI, N_BINS)
    n_crop = hist[:, K.CLASS_CROP].sum(axis=1)
    n_grass = hist[:, K.CLASS_GRASS].sum(axis=1)
    thr = np.full(reg.n, np.nan)
    seps: list[K.Separation | None] = []
    for r in range(reg.n):
        if n_crop[r] >= min_obs and n_grass[r] >= min_obs:
            s = K.separation_threshold(hist[r, 0], hist[r, 1], edges, k_sigma=k_sigma)
            thr[r] = s.threshold
            seps.append(s)
        else:
            seps.append(None)
    if not np.isfinite(thr).any():
        enough = (n_crop >= min_obs) & (n_grass >= min_obs)
        why = (f"no region has {min_obs} valid cropland (WorldCover 40) and {min_obs} grassland (30) observations "
               f"(most found in one region: {int(n_crop.max())} cropland, {int(n_grass.max())} grassland)"
               if not enough.any() else
               f"no region with enough observations has a distinct bare-soil mode ({seps[int(np.flatnonzero(enough)[0])].reason})")
        raise InputError(f"calibration area: {why}; use larger regions (--region-size), a longer window or "
                         "--min-obs")
    filled, sources = _fill(reg, thr)
    rows = []
    for r in range(reg.n):
        s = seps[r]
        if s is None:
            reason = f"fewer than {min_obs} observations"
        else:
            reason = s.reason
        rows.append({
            "region": reg.names[r], "n_crop": int(n_crop[r]), "n_grass": int(n_grass[r]),
            "crop_mode": None if s is None or not np.isfinite(s.crop_mode) else round(s.crop_mode, 4),
            "spread": None if s is None or not np.isfinite(s.spread) else round(s.spread, 4),
            "crossing": None if s is None or not np.isfinite(s.crossing) else round(s.crossing, 4),
            "threshold": None if not np.isfinite(filled[r]) else round(float(filled[r]), 4),
            "filled_from": " ".join(reg.names[i] for i in sources[r]),
            "note": reason if sources[r] else "",
            "x": round(float(reg.centroids[r, 0]), 2), "y": round(float(reg.centroids[r, 1]), 2),
        })

    # --- raster
    tags = {"soilsuite_rule": "histogram separation, docs/thresholds.md", "k_sigma": k_sigma, "min_obs": min_obs,
            "window": f"{cfg.start}/{cfg.end}"}
    if reg.kind == "grid":
        from affine import Affine
        from odc.geo.geobox import GeoBox

        rgb = GeoBox(reg.grid_shape, geobox.affine * Affine.scale(reg.cell_px), geobox.crs)
        write_cog(paths["raster"], filled.reshape(reg.grid_shape).astype(np.float32), threshold_spec(), geobox=rgb,
                  band_names=("pvir2_threshold",), tags=tags, overwrite=overwrite)
    else:  # on the run's grid, rasterised block by block (one block in memory)
        from rasterio.windows import Window

        from .io.cog import write_cog_from_blocks
        from .pipeline.tiles import plan_tiles

        def blocks():
            for t in plan_tiles(geobox, 2048):
                idx = reg.index(t)
                yield (Window(t.col_off, t.row_off, t.shape[1], t.shape[0]),
                       np.where(idx >= 0, filled[np.maximum(idx, 0)], np.nan).astype(np.float32))

        write_cog_from_blocks(paths["raster"], threshold_spec(), blocks=blocks(), geobox=geobox,
                              band_names=("pvir2_threshold",), tags=tags, overwrite=overwrite)
    # --- table, plot, record
    import pandas as pd

    _write_text_atomic(paths["table"], pd.DataFrame(rows).to_csv(index=False))
    _plot(paths["plot"], hist, rows)
    n_filled = int(sum(bool(s) for s in sources))
    notes = []
    if n_filled:
        notes.append(f"{n_filled} of {reg.n} region(s) filled from neighbours (fewer than {min_obs} observations "
                     "per class or no distinct bare mode; column filled_from)")
    from . import __version__

    record = {
        "software": {"soilsuite": __version__}, "command": "calibrate-threshold",
        "config": cfg.model_dump(mode="json"),
        "regions": {"kind": reg.kind, "n": reg.n, "region_size_m": region_size,
                    "polygons": str(regions) if regions else None},
        "rule": {"smooth_bins": 5, "k_sigma": k_sigma, "max_mode": 0.5, "max_spread": 0.1, "bins": [LO, HI, N_BINS]},
        "min_obs": min_obs, "n_observations": n_obs, "n_calibrated": int(np.isfinite(thr).sum()),
        "n_filled": n_filled, "fallback": notes, "outputs": {k: v.name for k, v in paths.items()},
    }
    _write_text_atomic(paths["record"], json.dumps(record, indent=1))
    return CalibrationResult(paths["raster"], paths["table"], paths["plot"], paths["record"], rows,
                             int(np.isfinite(thr).sum()), n_filled, n_obs, time.perf_counter() - t0, notes)
