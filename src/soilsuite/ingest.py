"""``soilsuite ingest``: the archive once into an analysis-ready Zarr cube (docs/ingest.md).

The cube's layout and how ``composite`` reads it are in :mod:`soilsuite.sources.cube`. The
archive is searched, scene-filtered, checked (preflight) and loaded exactly as ``composite``
does (odc-stac, 10 m bands averaged onto the 20 m grid, SCL by nearest, items fused per solar
day, ``DN + BOA_ADD_OFFSET``), lazily on Dask in chunks of 1 date x ``chunk_px`` x
``chunk_px``, and each chunk is written as it is computed (memory: a few chunks per thread).
The store is written in a scratch folder inside ``out`` and moved in when complete; its
manifest (:mod:`soilsuite.io.manifest`) lists every file, so ``--overwrite`` removes only a
cube soilsuite wrote, and an interrupted ingest is never taken for a cube.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .sources import cube as C

__all__ = ["IngestResult", "ingest"]


@dataclass
class IngestResult:
    """What :func:`ingest` wrote."""

    out: Path
    crs: str
    shape: tuple[int, int]
    resolution: float
    dates: list[dt.date] = field(default_factory=list)
    n_items_found: int = 0
    n_items_used: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0

    def summary(self):
        """A rich table of the cube."""
        from rich.table import Table

        t = Table(title=f"analysis-ready cube -> {self.out}", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("grid", f"{self.shape[1]} x {self.shape[0]} px of {self.resolution:g} m, {self.crs}")
        t.add_row("scenes", f"{self.n_items_found} found, {self.n_items_used} used"
                  + ("".join(f"; {v} {k}" for k, v in self.rejected.items())))
        t.add_row("dates", f"{len(self.dates)} solar days ({self.dates[0]} .. {self.dates[-1]})" if self.dates else "0")
        t.add_row("size", f"{self.bytes / 2**20:.1f} MiB in {self.seconds:.1f} s")
        return t


def ingest(
    source: str | Path,
    *,
    out: str | Path,
    start: str | dt.date,
    end: str | dt.date,
    bbox: tuple[float, float, float, float] | None = None,
    area: str | Path | None = None,
    mgrs: str | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    collection: str | None = None,
    max_cloud_cover: float | None = None,
    min_sun_elevation: float | None = None,
    chunk_px: int | None = None,
    halo_px: int | None = None,
    n_workers: int | None = None,
    overwrite: bool = False,
    force_clean: bool = False,
    progress: bool = False,
) -> IngestResult:
    """Write the archive's observations (time window, area) as an analysis-ready Zarr v3 cube.

    ``soilsuite composite OUT ...`` then reads the cube instead of the archive (same products
    on the same grid; :mod:`soilsuite.sources.cube`).

    Parameters
    ----------
    source : str or Path
        STAC catalog/collection (JSON or folder), STAC API URL (with ``collection``) or SAFE
        folder/zip(s): any source ``composite`` reads.
    out : str or Path
        The Zarr store (a folder, e.g. ``cube.zarr``).
    start, end : str or datetime.date
        Time window, inclusive (YYYY-MM-DD, UTC days).
    bbox, area, mgrs : optional
        The area, as for ``composite``: a lon/lat bbox, a vector file or an MGRS tile; default
        the union of the items.
    crs, resolution : optional
        Target grid (default: the items' CRS or the UTM zone of the area, 20 m).
    collection : str, optional
        Collection id (required for a STAC API).
    max_cloud_cover, min_sun_elevation : float, optional
        Scene filter at ingest (default 80 %, 20 deg). ``composite`` applies its own filter to
        the cube's items again; ingest with the loosest filter the composites will use.
    chunk_px : int, optional
        Chunk side (default 256); ``composite`` from the cube makes its tiles whole multiples of it.
    halo_px : int, optional
        SCL kept beyond the area on every side (default 16 px; the cloud dilation needs
        ``dilation_px // 2``).
    n_workers : int, optional
        Threads (default: one per core).
    overwrite, force_clean : bool
        Replace a cube ingest wrote before (only its own files; :mod:`soilsuite.io.manifest`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    IngestResult

    Raises
    ------
    OutputExistsError
        ``out`` holds a cube and ``overwrite`` is False, or files soilsuite did not write.
    InputError, ConfigError
        As ``composite`` for the source, the area and the options.
    """
    from .config import IngestConfig, SceneFilter, given_options, parse_date
    from .io.manifest import OutputFolder
    from .pipeline.composite import _items_over, build_config, select_items, target_geobox
    from .pipeline.preflight import preflight
    from .sources import stac as S

    t_start = time.perf_counter()
    cfg = IngestConfig(
        source=str(source), out=Path(out), start=parse_date(start, "start"), end=parse_date(end, "end"), bbox=bbox,
        area=area, mgrs=mgrs, crs=crs, collection=collection, overwrite=overwrite, force_clean=force_clean,
        scene=SceneFilter(**given_options(max_cloud_cover=max_cloud_cover, min_sun_elevation=min_sun_elevation)),
        **given_options(resolution=resolution, chunk_px=chunk_px, halo_px=halo_px, n_workers=n_workers),
    )
    if C.is_cube_source(cfg.source):
        raise InputError(f"ingest: SOURCE {cfg.source} is a Zarr cube; ingest reads an archive (STAC, SAFE)")
    ccfg = build_config(source=cfg.source, start=cfg.start, end=cfg.end, out=cfg.out, bbox=cfg.bbox, area=cfg.area,
                        mgrs=cfg.mgrs, crs=cfg.crs, resolution=cfg.resolution, collection=cfg.collection,
                        max_cloud_cover=cfg.scene.max_cloud_cover, min_sun_elevation=cfg.scene.min_sun_elevation,
                        n_workers=cfg.n_workers)
    folder = OutputFolder(cfg.out, "ingest")
    folder.check_build(overwrite=cfg.overwrite, force_clean=cfg.force_clean, what="cube")  # refuse before work

    found, sel = select_items(ccfg)
    assets = S.resolve_assets(sel.items)
    geobox = target_geobox(ccfg, sel.items)
    sel, _ = preflight(ccfg, sel, assets, geobox, progress=progress)
    padded = geobox.pad(cfg.halo_px)
    items = _items_over(sel.items, padded)
    if not items:
        raise InputError(f"ingest: no item of {cfg.source} covers the area")
    meta = S.observation_meta(items, assets)

    def fill(tmp: Path) -> None:
        _write_cube(tmp, cfg, items, assets, meta, geobox, padded, progress)

    folder.build(fill, overwrite=cfg.overwrite, force_clean=cfg.force_clean, what="cube")
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    return IngestResult(out=cfg.out, crs=str(geobox.crs), shape=(geobox.shape.y, geobox.shape.x),
                        resolution=cfg.resolution, dates=list(meta.dates), n_items_found=len(found),
                        n_items_used=len(items), rejected=sel.rejection_counts(), bytes=size,
                        seconds=time.perf_counter() - t_start)


def _refl_block(dn: np.ndarray, offset_dn: np.ndarray, block_info=None) -> np.ndarray:
    """One chunk of raw DN [t, y, x] -> offset-corrected int16 x 10000 (nodata -32768)."""
    from .sources.stac import to_reflectance

    t0, t1 = block_info[0]["array-location"][0]
    return to_reflectance(dn, offset_dn[t0:t1])


def _spatial_ref(geobox) -> dict[str, Any]:
    """CF grid-mapping attributes of the grid (as rioxarray / GDAL write them)."""
    from pyproj import CRS

    crs = CRS.from_user_input(str(geobox.crs))
    a = geobox.affine
    attrs = {k: v for k, v in crs.to_cf().items() if isinstance(v, (str, int, float))}
    attrs.update(crs_wkt=crs.to_wkt(), spatial_ref=crs.to_wkt(),
                 GeoTransform=" ".join(f"{v:.12g}" for v in (a.c, a.a, a.b, a.f, a.d, a.e)))
    return attrs


def _coords(geobox) -> tuple[np.ndarray, np.ndarray]:
    a = geobox.affine
    x = a.c + a.a * (np.arange(geobox.shape.x) + 0.5)
    y = a.f + a.e * (np.arange(geobox.shape.y) + 0.5)
    return x, y


def _write_cube(store: Path, cfg, items: list, assets: dict[str, str], meta, geobox, padded, progress: bool) -> None:
    """Write the Zarr store into the (empty) folder ``store`` (the scratch copy of ``out``)."""
    import dask
    import dask.array as da
    import zarr
    from rasterio.errors import NotGeoreferencedWarning
    from zarr.codecs import BloscCodec, BloscShuffle

    from . import __version__
    from .pipeline.cluster import _cores
    from .pipeline.preflight import gdal_env
    from .sources import stac as S

    c = cfg.chunk_px
    n_t = len(meta.dates)
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    comp = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)
    grid = "spatial_ref"

    def var(name, shape, dims, dtype, fill, attrs, chunks=None, data=None):
        arr = root.create_array(name, shape=shape, dtype=dtype, chunks=chunks or shape, fill_value=fill,
                                compressors=[comp], dimension_names=dims, attributes=attrs)
        if data is not None:
            arr[...] = data
        return arr

    # coordinates and per-date metadata
    x, y = _coords(geobox)
    xs, ys = _coords(padded)
    for name, vals, dim in (("x", x, "x"), ("y", y, "y"), ("x_scl", xs, "x_scl"), ("y_scl", ys, "y_scl")):
        axis = dim[0].upper()
        var(name, vals.shape, (dim,), "float64", np.nan,
            {"standard_name": f"projection_{dim[0]}_coordinate", "units": "m", "axis": axis,
             "long_name": f"{dim[0]} of the pixel centre" + (" (padded SCL grid)" if dim.endswith("_scl") else "")},
            data=vals)
    seconds = meta.times.astype("datetime64[s]").astype(np.int64)
    days = np.array([(d - C.EPOCH).days for d in meta.dates], np.int32)
    var("time", (n_t,), ("time",), "int64", 0,
        {"standard_name": "time", "units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian",
         "long_name": "first acquisition of the solar day (UTC)"}, data=seconds)
    var("solar_day", (n_t,), ("time",), "int32", 0,
        {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
         "long_name": "solar day (UTC time + longitude / 15 h) the items were fused by"}, data=days)
    var("sun_zenith", (n_t,), ("time",), "float32", np.nan,
        {"units": "degree", "long_name": "mean sun zenith of the day's items (90 - view:sun_elevation)"},
        data=meta.sun_zenith)
    var("boa_add_offset_dn", (n_t,), ("time",), "int16", 0,
        {"units": "1", "long_name": "BOA_ADD_OFFSET added to the DN at ingest (already applied)"},
        data=meta.offset_dn.astype(np.int16))
    var("n_items", (n_t,), ("time",), "int16", 0, {"long_name": "STAC items fused into the solar day"},
        data=np.array([len(ids) for ids in meta.item_ids], np.int16))
    var(grid, (), (), "int32", 0, _spatial_ref(geobox), data=np.int32(0))

    # the pixels: lazy loads, converted chunk by chunk and stored as computed
    chunks = {"time": 1, "y": c, "x": c}
    bands_ds = S.load_cube(items, geobox, assets, chunks=chunks, bands=C.BANDS)
    scl_ds = S.load_cube(items, padded, assets, chunks=chunks, bands=(C.QUALITY,))
    for ds in (bands_ds, scl_ds):
        if ds.sizes["time"] != n_t:
            raise InputError(f"odc-stac grouped {ds.sizes['time']} solar days, expected {n_t}")
    sources, targets = [], []
    for b, name in enumerate(C.BANDS):
        refl = da.map_blocks(_refl_block, bands_ds[name].data, meta.offset_dn, dtype=np.int16,
                             meta=np.empty((0, 0, 0), np.int16))
        arr = var(name, (n_t, geobox.shape.y, geobox.shape.x), ("time", "y", "x"), "int16", -32768,
                  {"long_name": f"{name} surface reflectance (offset-corrected DN + BOA_ADD_OFFSET)",
                   "units": "1", "scale_factor": C.REFLECTANCE_SCALE, "add_offset": 0.0,
                   "grid_mapping": grid, "band": b}, chunks=(1, c, c))
        sources.append(refl)
        targets.append(arr)
    scl = var(C.QUALITY, (n_t, padded.shape.y, padded.shape.x), ("time", "y_scl", "x_scl"), "uint8", 0,
              {"long_name": "Sen2Cor scene classification (0 = no data)", "grid_mapping": grid,
               "coordinates": "x_scl y_scl"}, chunks=(1, c, c))
    sources.append(scl_ds[C.QUALITY].data.astype(np.uint8))
    targets.append(scl)

    from dask.callbacks import Callback

    from .progress import progress_bar

    n_workers = cfg.n_workers or _cores()
    with progress_bar(progress) as pbar:
        task = pbar.add_task("ingest", total=None)

        class _Bar(Callback):
            def _start_state(self, dsk, state):
                pbar.update(task, total=len(state["ready"]) + len(state["waiting"]) + len(state["running"]),
                            completed=0)

            def _posttask(self, key, result, dsk, state, worker_id):
                pbar.advance(task)

        with gdal_env(), dask.config.set(scheduler="threads", num_workers=n_workers), _Bar(), \
                warnings.catch_warnings():
            # odc-loader reprojects plain arrays through rasterio, which warns that they have no transform
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da.store(sources, targets, lock=False, compute=True)

    root.attrs[C.CUBE_ATTR] = {
        "format": C.CUBE_FORMAT, "software": f"soilsuite {__version__}", "source": cfg.source,
        "collection": cfg.collection, "start": str(cfg.start), "end": str(cfg.end),
        "crs": str(geobox.crs), "transform": list(geobox.affine)[:6], "shape": [geobox.shape.y, geobox.shape.x],
        "resolution": cfg.resolution, "halo_px": cfg.halo_px, "chunk_px": c,
        "bands": list(C.BANDS), "quality_band": C.QUALITY, "scale_factor": C.REFLECTANCE_SCALE, "add_offset": 0.0,
        "nodata": -32768, "scl_nodata": 0, "units": "reflectance = value * scale_factor",
        "scene_filter": cfg.scene.model_dump(), "n_dates": n_t, "n_items": len(items),
        "grouping": "solar day (UTC time + longitude / 15 h), odc-stac groupby",
    }
    root.attrs["Conventions"] = "CF-1.8"
    by_id = {}
    for d, ids in zip(meta.dates, meta.item_ids, strict=True):
        for i in ids:
            by_id[i] = (d - C.EPOCH).days
    records = []
    for it in items:
        d = it.to_dict(include_self_link=False, transform_hrefs=False)
        d.pop("assets", None)
        d.pop("links", None)
        records.append({"solar_day": by_id[it.id], "item": d})
    with warnings.catch_warnings():  # "consolidated metadata is not part of the Zarr v3 spec" (xarray reads it)
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(store))
    (store / C.ITEMS_FILE).write_text(json.dumps({"format": C.CUBE_FORMAT, "items": records}, default=str))
