"""The composite run: STAC source -> tiles on Dask -> product COGs, STAC, quicklooks.

Flow (one read of the archive):

1. search the source, filter scenes (cloud cover, sun elevation), resolve asset keys;
2. build the target grid (default: UTM zone of the area, 20 m) and split it into tiles whose
   size follows the memory budget;
3. each tile is one Dask task (:func:`process_tile`): load with odc-stac (fused by solar day,
   SCL with a halo for the dilation, the bands without), offset-correct, run the kernels, save the encoded
   products of the window and of each period to ``<out>/.work/tiles/side<N>/<tile>/``;
   a finished tile is never recomputed, so an interrupted run resumes with the same command;
4. mosaic the tiles into COGs, write quicklooks, the STAC catalog and the run record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .. import products as P
from ..config import (
    COMPOSITE_ALIASES,
    COMPOSITE_RENAMED,
    BareOptions,
    CompositeConfig,
    EngineOptions,
    LayerOptions,
    MaskOptions,
    SceneFilter,
    renamed_options,
)
from ..errors import ConfigError, InputError
from ..io.layout import RUN_RECORD, WORK_DIR, TileStore, is_composite_output, work_dir  # noqa: F401 - re-exported
from ..io.manifest import OutputFolder
from ..sentinel2 import BANDS, REFL_NODATA, WORLDCOVER_NEVER_BARE, WORLDCOVER_OTHER
from ..sources import stac as S
from .block import (
    TileInputs,
    classify_inputs,
    composite_inputs,
    extensions,
    install_extensions,
    valid_observations,
)
from .preflight import gdal_env, preflight
from .tiles import Tile

# ----------------------------------------------------------------------------- configuration
_SECTIONS = {"scene": SceneFilter, "mask": MaskOptions, "bare": BareOptions, "engine": EngineOptions,
             "layers": LayerOptions}


def build_config(**kwargs: Any) -> CompositeConfig:
    """A :class:`CompositeConfig` from flat keywords (``threshold=0.25, tile_size=512, ...``).

    Every option has one name: the keyword here, the CLI flag (``--tile-size``) and the docs.
    Unknown names raise :class:`ConfigError`; the names of earlier releases (``tile``,
    ``out_tile_px``) still work, with a :class:`DeprecationWarning`. ``profile="soilsuite"``
    fills in the options of that preset the caller did not give (:mod:`soilsuite.profiles`).
    """
    from ..profiles import apply_profile

    kwargs = apply_profile(renamed_options(kwargs, COMPOSITE_RENAMED))  # profile=: fills what is not given
    top, nested = {}, {k: {} for k in _SECTIONS}
    for key, value in kwargs.items():
        if value is None and key not in ("scheduler",):
            continue
        if key in COMPOSITE_ALIASES:  # a second name (max_nbr2 = dry_guard)
            alias, key = key, COMPOSITE_ALIASES[key]
            if kwargs.get(key) is not None and kwargs[key] != value:
                raise ConfigError(f"{alias} is another name of {key}: give one of them, not both")
        for sec, model in _SECTIONS.items():
            if key in model.model_fields:
                nested[sec][key] = value
                break
        else:
            if key in CompositeConfig.model_fields:
                top[key] = value
            else:
                raise ConfigError(f"unknown option {key!r}")
    return CompositeConfig(**top, **{k: _SECTIONS[k](**v) for k, v in nested.items()})


def _params_hash(cfg: CompositeConfig) -> str:
    """Hash of everything that changes the products (not engine settings, the file layout or
    overwrite): a resumed run must have the same hash. The products a run writes belong to it
    (a product registered since an interrupted run is missing from its finished tiles)."""
    d = cfg.model_dump(mode="json", exclude={"engine", "overwrite", "force_clean", "out", "layout", "cog_tile_px",
                                           "stac_hrefs"})
    d["products"] = sorted(P.composite_products(cfg.product_groups))
    from ..sources.fastread import resolve_read_path

    if resolve_read_path(cfg.engine.read_path) == "mean":  # the one read path that changes the products
        d["read_path"] = "mean"
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- grid
def target_geobox(cfg: CompositeConfig, items: list):
    """The target grid: area in the target CRS at ``resolution``, edge-anchored."""
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import Geometry, box

    if cfg.area is not None:
        import geopandas as gpd

        try:
            gdf = gpd.read_file(cfg.area)
        except Exception as exc:
            raise InputError(f"area file {cfg.area}: cannot be read: {exc}") from exc
        if gdf.crs is None:
            raise InputError(f"area file {cfg.area}: has no CRS")
        if gdf.empty or gdf.geometry.isna().all() or gdf.geometry.is_empty.all():
            raise InputError(f"area file {cfg.area}: has no features (no geometry to take the area from)")
        geom = Geometry(gdf.to_crs(4326).union_all(), "EPSG:4326")
    elif cfg.bbox is not None:
        geom = box(*cfg.bbox, "EPSG:4326")
    else:
        from shapely.geometry import box as sbox
        from shapely.geometry import shape
        from shapely.ops import unary_union

        native = _native_footprint(items)
        if native is not None and (cfg.crs is None or _same_crs(cfg.crs, native[0])):
            # all items in one projected CRS: the union of their native extents, so the grid
            # lines up with the 20 m pixels of the data (no resampling shift)
            geom = Geometry(unary_union([sbox(*b) for b in native[1]]), native[0])
        else:
            geom = Geometry(unary_union([shape(it.geometry) for it in items]), "EPSG:4326")
    from ..sources.cube import cube_crs

    if cfg.crs is not None:
        crs = cfg.crs
    elif cube_crs(items):  # a cube (soilsuite ingest) is read on its own grid
        crs = cube_crs(items)
    elif geom.crs.geographic:
        crs = S.utm_crs(*geom.centroid.coords[0])
    else:
        crs = geom.crs
    try:
        return GeoBox.from_geopolygon(geom.to_crs(crs), resolution=cfg.resolution, crs=crs)
    except Exception as exc:
        raise ConfigError(f"cannot build a {cfg.resolution} m grid in {crs} for the area: {exc}") from exc


def _native_footprint(items: list) -> tuple[str, list[tuple[float, ...]]] | None:
    """``("EPSG:n", [proj:bbox...])`` if every item carries ``proj:epsg`` (or ``proj:code``) and
    ``proj:bbox`` in one and the same CRS, else None."""
    crss, boxes = set(), []
    for it in items:
        p = it.properties
        code = p.get("proj:code") or (f"EPSG:{p['proj:epsg']}" if p.get("proj:epsg") else None)
        bb = p.get("proj:bbox")
        if code is None or bb is None or len(bb) != 4:
            return None
        crss.add(code)
        boxes.append(tuple(float(v) for v in bb))
    return (crss.pop(), boxes) if len(crss) == 1 and boxes else None


def _same_crs(a: str, b: str) -> bool:
    from pyproj import CRS

    try:
        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:  # noqa: BLE001 - an unreadable CRS is reported later by GeoBox
        return False


# ----------------------------------------------------------------------------- one tile
@dataclass
class TileTask:
    """Everything a worker needs for one tile (picklable)."""

    tile: Tile
    items: list  # pystac.Item
    assets: dict[str, str]
    periods: list[str]  # period labels; observation -> period by year
    cfg: dict  # CompositeConfig.model_dump()
    store: TileStore  # where the tile's results go (io/layout.py)
    halo: int = 5
    #: selectors and products registered beyond SCMaP's (block.extensions), installed on the worker
    extensions: dict = field(default_factory=dict)
    #: items over the tile removed by the scene filter (only with provenance: the "scene_filter" rule)
    rejected_items: list = field(default_factory=list)


def _encode_all(results: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: P.get(name).encode(arr) for name, arr in results.items()}


def load_tile_inputs(items: list, assets: dict[str, str], geobox, cfg: CompositeConfig, halo: int,
                     progress=None, rejected: list = ()) -> TileInputs:
    """Load one tile and compute validity (SPEC 2.1).

    With ``cfg.layers.provenance``, also the inputs of the provenance products
    (:func:`soilsuite.provenance.provenance_inputs`, in ``aux["provenance"]``); ``rejected``
    are the items over the tile the scene filter removed.

    ``progress(what, dates_read, n_dates)``, if given, is called as the dates are read
    (``what`` is ``"bands"``, then ``"SCL"``).

    Only SCL is loaded with a halo of ``halo`` pixels (the context of the cloud dilation);
    the reflectance bands are loaded on the tile itself, so a tile whose edges follow the
    source COG blocks decodes no block of its neighbours (1.6x less read time on the bench).
    ``items`` must cover the padded tile; both loads use the same items, hence the same dates.
    With ``cfg.bare.edge_guard``, the bands, validity and threshold are read on the tile grown by
    one pixel (SCL with the halo around that), and the frame goes to ``aux["edge_ring"]``
    (:class:`soilsuite.pipeline.edges.EdgeRing`): the edge guard's neighbours beyond the tile.
    """

    from ..sources import cube
    from ..sources.rasters import read_on_grid
    from .edges import EDGE_AUX, edge_px, split_frame

    ep = edge_px(cfg)  # --edge-guard: bands, validity and threshold also on a 1-pixel ring (pipeline/edges.py)
    tile_gb = geobox.pad(ep) if ep else geobox
    gb = tile_gb.pad(halo)
    ny, nx = tile_gb.shape.y, tile_gb.shape.x
    with gdal_env():
        if items and cube.is_cube_item(items[0]):  # a cube written by `soilsuite ingest`
            meta = S.observation_meta(items, cube.CUBE_ASSETS, cube.SENSOR)
            refl, scl = cube.read_tile(items, tile_gb, halo, meta)
        elif items:
            meta = S.observation_meta(items, assets)

            from ..sources.fastread import load_arrays

            def load(bands, grid):  # direct COG reads on the native grid, else odc-stac (sources/fastread.py)
                hook = None if progress is None else _DateProgress(progress, bands, len(meta.dates))
                ds = load_arrays(items, grid, assets, bands=bands, read_path=cfg.engine.read_path, progress=hook)
                n_t = len(ds[bands[0]])
                if n_t != len(meta.dates):
                    raise InputError(
                        f"the loader grouped {n_t} solar days, expected {len(meta.dates)} "
                        f"(items {', '.join(it.id for it in items[:5])}...)"
                    )
                return ds

            try:
                ds = load(BANDS, tile_gb)
                refl = np.empty((len(meta.dates), len(BANDS), ny, nx), dtype=np.int16)
                for b, name in enumerate(BANDS):
                    refl[:, b] = S.to_reflectance(ds[name], meta.offset_dn)
                del ds
                scl = load(("SCL",), gb)["SCL"].astype(np.uint8)
            except InputError as exc:  # e.g. odc-stac's "Chunk and warp failed": name the file
                from .preflight import find_broken

                broken = find_broken(items, assets, gb)
                if broken is None:
                    raise
                raise InputError(f"{broken.message()} (while loading the tile; the checks before the run read "
                                 "a sample of the archive)") from exc
        else:
            meta = S.ObservationMeta([], np.array([], "datetime64[ns]"), np.zeros(0, np.int32),
                                     np.zeros(0, np.float32), [])
            refl = np.full((0, len(BANDS), ny, nx), REFL_NODATA, np.int16)
            scl = np.zeros((0, gb.shape.y, gb.shape.x), np.uint8)

        valid = valid_observations(scl, refl, meta.sun_zenith, cfg.mask)
        ring = None
        if ep:  # the tile's own pixels, and the ring of its neighbours for the edge guard
            refl, valid, _, ring = split_frame(refl, valid, _threshold_on(cfg.bare, tile_gb))
            scl = np.ascontiguousarray(scl[:, ep:-ep, ep:-ep])
        prov = None
        if cfg.layers.provenance:  # the rule that removed each observation needs the SCL (docs/provenance.md)
            from ..provenance import provenance_inputs

            prov = provenance_inputs(scl, refl, meta, items, list(rejected), geobox, cfg)
        del scl

        thr = _threshold_on(cfg.bare, geobox)
        wc = None
        if cfg.worldcover is not None:
            wc = read_on_grid(cfg.worldcover, geobox, resampling="nearest", dtype="uint8", fill=0)
            never_bare = np.isin(wc, WORLDCOVER_NEVER_BARE)
            other = np.isin(wc, WORLDCOVER_OTHER)
        else:
            never_bare = np.zeros(geobox.shape.yx, bool)
            other = np.zeros(geobox.shape.yx, bool)
        from ..sources.layer_inputs import layer_inputs

        aux = layer_inputs(cfg, geobox, wc)
        if prov is not None:
            aux["provenance"] = prov
        if ring is not None:
            aux[EDGE_AUX] = ring
    return TileInputs(meta, refl, valid, thr, never_bare, other, aux)


def _threshold_on(b, geobox) -> np.ndarray:
    """The PV+IR2 threshold of each pixel of ``geobox``, float32 ``[Y, X]``: the threshold raster
    (bilinear; its nodata filled with the constant) or the constant ``b.threshold``."""
    from ..sources.rasters import read_on_grid

    if b.threshold_raster is not None:
        thr = read_on_grid(b.threshold_raster, geobox, resampling="bilinear", dtype="float32", fill=np.nan)
        return np.where(np.isfinite(thr), thr, b.threshold).astype(np.float32)
    return np.full(geobox.shape.yx, b.threshold, np.float32)


def process_tile(task: TileTask) -> str:
    """Load, composite and save one tile. Returns the tile folder; skips finished tiles.

    An input problem (:class:`~soilsuite.errors.SoilsuiteError`) found on a worker is returned
    as ``"error: <message>"`` rather than raised, so that it reaches the user as one clear line
    whatever the cluster's serialisation; other exceptions propagate (bugs keep their traceback).
    """
    from ..errors import SoilsuiteError

    try:
        return _process_tile(task)
    except SoilsuiteError as exc:
        return f"{TILE_ERROR}tile {task.tile.name}: {exc}"


TILE_ERROR = "error: "


#: Stages of one tile, reported to the progress display as they start.
TILE_STAGES = ("load", "composite", "save")
#: Dask event topic of the per-tile progress.
PROGRESS_TOPIC = "soilsuite-tile-progress"


class _DateProgress:
    """odc-stac's tqdm-like ``progress`` hook of one load: reports the dates read so far.

    The read tasks of a load are (date, band, block) in date order, so ``k`` of ``n`` tasks done
    is about ``k * n_dates / n`` dates read; reported each time that number grows.
    """

    def __init__(self, report, bands, n_dates: int):
        self.report, self.n_dates = report, n_dates
        self.what = "SCL" if tuple(bands) == ("SCL",) else "bands"

    def __call__(self, tasks):
        n = max(1, len(tasks))
        last = -1
        for k, task in enumerate(tasks, start=1):
            yield task
            dates = k * self.n_dates // n
            if dates != last:
                last = dates
                try:
                    self.report(self.what, dates, self.n_dates)
                except Exception:  # noqa: BLE001 - progress must never stop a load
                    pass


def _report(tile: str, step: int, done: int | None = None, total: int | None = None, what: str = "") -> None:
    """Tell the client that ``tile`` is in stage ``step`` (``len(TILE_STAGES)``: finished),
    with ``done`` of ``total`` dates read of ``what`` during the load.

    On a Dask worker this is a worker event (``log_event``) the client subscribes to; outside a
    worker (``scheduler="sync"``) the local hook, if any, is called. Never raises.
    """
    msg = {"tile": tile, "step": step, "done": done, "total": total, "what": what}
    try:
        dist = sys.modules.get("distributed")  # a Dask worker has it imported; a sync run needs not
        if dist is None:
            raise LookupError("not on a Dask worker")
        dist.get_worker().log_event(PROGRESS_TOPIC, msg)
    except Exception:  # noqa: BLE001 - not on a worker, or no scheduler: progress is optional
        if _LOCAL_HOOK:
            _LOCAL_HOOK[0](msg)


_LOCAL_HOOK: list = []


def _process_tile(task: TileTask) -> str:
    if task.store.is_done(task.tile):
        return str(task.store.tile_dir(task.tile))
    name = task.tile.name
    install_extensions(task.extensions)  # before the config: it validates the selector's name
    cfg = CompositeConfig(**task.cfg)
    _report(name, 0)
    inp = load_tile_inputs(task.items, task.assets, task.tile.geobox, cfg, task.halo,
                           progress=lambda what, k, n: _report(name, 0, k, n, what), rejected=task.rejected_items)
    dates = inp.meta.dates
    _report(name, 1)
    results = {label: _encode_all(r) for label, r in composite_inputs(inp, cfg, task.periods).items()}
    _report(name, 2)
    out = task.store.write(task.tile, results, {"n_obs": len(dates)})
    _report(name, len(TILE_STAGES))
    return str(out)


def observation_flags(source: str | Path, *, start, end, geobox=None, bbox=None, **options: Any):
    """Per-observation PV+IR2 and flags of a (small) area, in memory, as an xarray Dataset.

    The same code path as :func:`composite` up to the per-observation classification; useful
    to inspect which observations were taken as bare (bit FLAG_BARE) and to validate against
    truth. Variables: ``flags`` uint8 (time, y, x) with the bits of
    :mod:`soilsuite.kernels.composite`, ``pvir2`` float32 (time, y, x).
    """
    import xarray as xr

    cfg = build_config(source=str(source), start=start, end=end, out=Path("."), bbox=bbox, **options)
    _, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    gb = geobox if geobox is not None else target_geobox(cfg, sel.items)
    halo = cfg.mask.dilation_px // 2
    from .edges import edge_px

    inp = load_tile_inputs(_items_over(sel.items, gb.pad(halo + edge_px(cfg))), assets, gb, cfg, halo)
    pv, flags = classify_inputs(inp, cfg)
    if pv is None:  # a selector without an index (geomedian)
        pv = np.full(flags.shape, np.nan, np.float32)
    coords = {"time": inp.meta.times, **{k: v.values for k, v in gb.coords.items()}}
    return xr.Dataset(
        {"flags": (("time", "y", "x"), flags), "pvir2": (("time", "y", "x"), pv)},
        coords=coords, attrs={"crs": str(gb.crs)},
    )


def select_items(cfg: CompositeConfig) -> tuple[list, S.SceneSelection]:
    """Items of the source in the window and area (and grid tile), then the scene filter.

    Returns the items found and the selection; raises :class:`InputError` if nothing is
    found or everything is rejected (with the reasons).
    """
    found = S.search_items(cfg.source, start=cfg.start, end=cfg.end, bbox=cfg.bbox, collection=cfg.collection)
    if not found:
        raise InputError(
            f"STAC source {cfg.source}: no items between {cfg.start} and {cfg.end}"
            + (f" intersecting bbox {cfg.bbox}" if cfg.bbox else "")
        )
    if cfg.mgrs:
        found = S.select_tile(found, cfg.mgrs)
    sel = S.filter_scenes(found, cfg.scene)
    if not sel.items:
        raise InputError(
            f"all {len(found)} items were rejected by the scene filter: "
            + ", ".join(f"{k}: {v}" for k, v in sel.rejection_counts().items())
        )
    return found, sel


def _lonlat_bbox(geobox) -> tuple[float, float, float, float]:
    bb = geobox.geographic_extent.boundingbox
    return (bb.left, bb.bottom, bb.right, bb.top)


def _items_over(items: list, geobox) -> list:
    """Items whose footprint intersects the geobox (by geometry when present, else bbox)."""
    from shapely.geometry import box, shape

    bb = _lonlat_bbox(geobox)
    area = box(*bb)
    keep = []
    for it in items:
        if it.geometry is not None:
            if shape(it.geometry).intersects(area):
                keep.append(it)
        elif S._bbox_intersects(it.bbox, bb):
            keep.append(it)
    return keep


# ----------------------------------------------------------------------------- the run
@dataclass
class RunSummary:
    """What a run did: for the CLI's summary table and the run record."""

    out: Path
    area_km2: float
    shape: tuple[int, int]
    crs: str
    n_items_found: int
    n_items_used: int
    n_observations: int
    rejected: dict[str, int]
    mask_share: dict[str, float]
    mean_bsf: float
    tiles: int
    tiles_resumed: int
    tile_side: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)
    quicklooks: list[str] = field(default_factory=list)
    already_complete: bool = False  # the folder held a finished run of the same parameters
    #: ``--provenance``: share (0-1) of the area's observations per rule (soilsuite.provenance.RULES)
    provenance_share: dict[str, float] = field(default_factory=dict)


def composite(
    source: str | Path,
    *,
    start: str | dt.date,
    end: str | dt.date,
    out: str | Path,
    bbox: tuple[float, float, float, float] | None = None,
    progress: bool = False,
    **options: Any,
):
    """Bare-soil composites and statistics (SCMaP, SPEC 1-3) from a STAC source.

    Parameters
    ----------
    source : str or Path
        Static STAC catalog/collection (JSON path or folder), STAC API URL (with
        ``collection=``), SAFE folder/zip(s), or a Zarr cube written by :func:`soilsuite.ingest`
        (docs/ingest.md).
    start, end : str or datetime.date
        Time window, inclusive (YYYY-MM-DD).
    out : str or Path
        Output folder: one COG per product, ``<year>/`` folders when ``periods="year"``,
        ``quicklooks/``, ``collection.json`` (STAC) and ``run.json`` (run record).
    bbox : (west, south, east, north), optional
        Area in degrees; or ``area=`` a vector file; default: the union of the items.
    progress : bool
        Show a progress bar (tiles, ETA).
    **options
        Any option of :class:`soilsuite.config.CompositeConfig` and its sections by name:
        ``threshold``, ``threshold_raster``, ``worldcover``, ``max_cloud_cover``,
        ``min_sun_elevation``, ``dilation_px``, ``blue_k_bare``, ``ci_method``, ``periods``,
        ``crs``, ``resolution``, ``tile_size``, ``max_memory``, ``scheduler``, ``overwrite``...;
        the bare-soil selector (docs/selectors.md): ``selector`` (``"scmap"``, ``"geos3"``,
        ``"barest"``, ``"geomedian"``), ``barest_k``, ``barest_index``, and on any selector
        ``dry_guard`` (alias ``max_nbr2``) and ``blue_filter`` (``"on"``/``"off"``).

    Returns
    -------
    xarray.Dataset
        The window products (physical values, NaN = nodata), opened lazily from the COGs; the
        run summary is in ``ds.attrs["summary"]``.
    """
    cfg = build_config(source=str(source), start=start, end=end, out=Path(out), bbox=bbox, **options)
    summary = run(cfg, progress=progress)
    from ..io.products import jsonable, open_products

    ds = open_products(summary.out)
    ds.attrs["summary"] = json.dumps(jsonable(summary.__dict__))
    return ds


def output_folder(cfg: CompositeConfig) -> OutputFolder:
    """The run's output folder with its manifest and lock (:mod:`soilsuite.io.manifest`)."""
    return OutputFolder(cfg.out, "composite", owned_dirs=(WORK_DIR,), namespace=is_composite_output)


def _check_out(cfg: CompositeConfig) -> str:
    """What the run may do with its output folder (``new``, ``resume``, ``replace`` or
    ``complete``); raises :class:`OutputExistsError` if it may not use it. Changes nothing.

    Allowed: a missing or empty folder; an unfinished run of the same parameters (resume); with
    ``overwrite``, an earlier soilsuite composite run (only the files it wrote are removed, and
    only if the folder holds no other and none was changed, unless ``force_clean``). Never: a
    non-empty folder that is not a soilsuite run (unless ``force_clean``: the files there are
    kept and the run writes beside them).
    """
    return output_folder(cfg).check(overwrite=cfg.overwrite, force_clean=cfg.force_clean,
                                    params_hash=_params_hash(cfg), resumable=True, what="run")


def _prepare_out(cfg: CompositeConfig, folder: OutputFolder, action: str) -> Path:
    """Under the folder's lock: remove an earlier run's files (``replace``), then mark the run
    as started in the manifest and create the work folder."""
    out = Path(cfg.out)
    if action == "replace":
        folder.clear(force_clean=cfg.force_clean)
    folder.start(params_hash=_params_hash(cfg), keep=action == "resume")
    work_dir(out).mkdir(parents=True, exist_ok=True)
    return out


def _already_complete(cfg: CompositeConfig) -> RunSummary:
    """The summary of a finished run of the same parameters, from its run record."""
    from ..io.products import read_run_record

    rec = read_run_record(cfg.out)
    s = dict(rec.get("summary", {}))
    names = {f.name for f in dataclasses.fields(RunSummary)}
    kw = {k: v for k, v in s.items() if k in names}
    kw["shape"] = tuple(kw.get("shape", (0, 0)))
    return RunSummary(out=Path(cfg.out), products=rec.get("products", {}).get("window", {}),
                      quicklooks=rec.get("quicklooks", []), already_complete=True,
                      **{k: v for k, v in kw.items() if k not in ("out", "products", "quicklooks", "already_complete")})


def _resume_side(tiles_dir: Path, side: int) -> int:
    """The tile side of an interrupted run in ``tiles_dir`` (folders ``side<N>``) if it has
    finished tiles and fits this run's budget (``<= side``), else ``side``
    (:func:`soilsuite.io.layout.resume_side`; a run uses :meth:`TileStore.resume`)."""
    from ..io.layout import resume_side

    return resume_side(tiles_dir, side)


def run(cfg: CompositeConfig, *, progress: bool = False) -> RunSummary:
    """Run a composite configured by ``cfg``; see :func:`composite`.

    A folder that holds a finished run of the same parameters is left as it is: the summary of
    that run is returned with ``already_complete=True``.
    """
    t0 = time.perf_counter()
    if _check_out(cfg) == "complete":  # refuse early, before any work
        return _already_complete(cfg)

    found, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    geobox = target_geobox(cfg, sel.items)
    sel, meta = preflight(cfg, sel, assets, geobox, progress=progress)  # inputs checked before any tile
    from ..sources.layer_inputs import check_layer_inputs

    check_layer_inputs(cfg)  # grassland polygons, erosivity shares of the optional layers
    folder = output_folder(cfg)
    with folder.lock():  # inputs are fine: now create / resume the output folder
        action = _check_out(cfg)  # again, under the lock: another run may have finished meanwhile
        if action == "complete":
            return _already_complete(cfg)
        out = _prepare_out(cfg, folder, action)
        return _run_locked(cfg, t0, out, folder, found, sel, assets, meta, geobox, progress)


def _run_locked(cfg: CompositeConfig, t0: float, out: Path, folder: OutputFolder, found, sel, assets, meta,
                geobox, progress: bool) -> RunSummary:
    """The run once its output folder is locked and prepared."""
    from ..periods import periods_with_data
    from .plan import plan_run

    obs_dates = meta.dates
    if cfg.layers.provenance:  # also the periods whose scenes the scene filter all removed: their counts
        from ..sensors import DEFAULT_SENSOR

        obs_dates = sorted({*meta.dates, *(DEFAULT_SENSOR.solar_day(it, None, None) for it in found)})
    periods = [p.label for p in periods_with_data(cfg.periods, cfg.start, cfg.end, obs_dates)]
    plan = plan_run(cfg, geobox, len(meta.dates), periods, out)  # every derived setting, once
    halo = cfg.mask.dilation_px // 2
    ext = extensions()
    from ..provenance import rejected_items
    from .edges import edge_px

    reach = halo + edge_px(cfg)  # items over the tile's SCL halo (and the edge guard's ring)

    removed = rejected_items(found, sel.items) if cfg.layers.provenance else []
    tasks = [
        TileTask(t, _items_over(sel.items, t.geobox.pad(reach)), assets, periods, cfg.model_dump(), plan.store, halo,
                 ext, rejected_items=_items_over(removed, t.geobox) if removed else [])
        for t in plan.tiles
    ]
    resumed = sum(plan.store.is_done(t.tile) for t in tasks)
    todo = [t for t in tasks if not plan.store.is_done(t.tile)]
    t_plan = time.perf_counter()
    _run_tasks(todo, cfg.engine, progress, len(tasks), resumed, plan=plan)
    t_tiles = time.perf_counter()

    from .mosaic import write_outputs

    summary = RunSummary(
        out=out, area_km2=geobox.shape.x * geobox.shape.y * cfg.resolution**2 / 1e6,
        shape=(geobox.shape.y, geobox.shape.x), crs=str(geobox.crs), n_items_found=len(found),
        n_items_used=len(sel.items), n_observations=len(meta.dates), rejected=sel.rejection_counts(),
        mask_share={}, mean_bsf=float("nan"), tiles=len(plan.tiles), tiles_resumed=resumed, tile_side=plan.tile_side,
        seconds=0.0,
    )
    record = {
        "software": {"soilsuite": __version__},
        "config": cfg.model_dump(mode="json"),
        "params_hash": _params_hash(cfg),
        "grid": {"crs": str(geobox.crs), "transform": list(geobox.affine)[:6], "shape": [geobox.shape.y, geobox.shape.x]},
        "periods": periods,
        "plan": plan.to_record(),
        "observations": [
            {"date": str(d), "items": ids, "boa_add_offset_dn": int(o), "sun_zenith_deg": round(float(z), 2)}
            for d, ids, o, z in zip(meta.dates, meta.item_ids, meta.offset_dn, meta.sun_zenith, strict=True)
        ],
        "rejected_items": [{"id": r.item_id, "reason": r.reason} for r in sel.rejected],
        "selector": _selector_record(cfg),
    }
    summary.timings = {"search_and_plan_s": t_plan - t0, "tiles_s": t_tiles - t_plan}
    from ..progress import progress_bar

    with progress_bar(progress, stage=True, eta=False, transient=True) as pbar:
        wid = pbar.add_task("products", total=1, stage="product files")
        write_outputs(plan, summary, record, cfg,
                      step=lambda stage, k, n: pbar.update(wid, completed=k, total=n, stage=stage))
    s = folder.survey()
    folder.record(s.owned + s.changed, state="complete")  # the run is finished: list what it wrote
    shutil.rmtree(work_dir(out), ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _selector_record(cfg: CompositeConfig) -> dict:
    """The run record's account of the bare-soil selector: its rule, options and what its
    products mean (e.g. the geomedian's nodata fallback; docs/selectors.md)."""
    from ..kernels.selectors import get_selector, selector_options

    sel = get_selector(cfg.bare.selector)
    return {"name": sel.name, "rule": sel.description, "options": selector_options(sel, cfg.bare),
            "dry_guard": cfg.bare.dry_guard, "edge_guard": cfg.bare.edge_guard, "notes": sel.notes}


#: Share of a tile's work at the start of each stage (load bands, load SCL, composite, save).
_STAGE_SHARE = {"bands": 0.0, "SCL": 0.5, "composite": 0.6, "save": 0.9}


class _TileBars:
    """Progress inside the tiles: one row per tile in flight (stage, dates read), and the overall
    row advanced by fractions of tiles, so a single-tile run moves too.

    Rows of finished tiles are removed by :meth:`finish` (called when the tile's result is in),
    and messages that arrive later for them (Dask events are asynchronous) are ignored, so no
    stale row is left when the bar stops.
    """

    def __init__(self, pbar, overall: int, total: int, done0: int):
        import threading

        self.pbar, self.overall, self.total, self.done = pbar, overall, total, done0
        self.rows: dict[str, int] = {}
        self.share: dict[str, float] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()

    def _overall(self) -> None:
        self.pbar.update(self.overall, completed=self.done + sum(self.share.values()),
                         stage=f"{self.done}/{self.total} tiles")

    def __call__(self, msg) -> None:
        try:
            if isinstance(msg, tuple):  # (timestamp, message) from a Dask event topic
                msg = msg[1]
            tile, step = msg["tile"], int(msg["step"])
            with self.lock:
                if tile in self.finished:
                    return
                if step >= len(TILE_STAGES):
                    return self._finish(tile)
                stage = TILE_STAGES[step]
                if step == 0 and msg.get("total"):
                    what = msg.get("what") or "bands"
                    k, n = int(msg["done"]), int(msg["total"])
                    lo = _STAGE_SHARE[what]
                    hi = _STAGE_SHARE["SCL" if what == "bands" else "composite"]
                    share = lo + (hi - lo) * k / max(1, n)
                    text = f"load {'' if what == 'bands' else 'SCL, '}{k}/{n} dates"
                else:
                    share, text = _STAGE_SHARE.get(stage, 0.0), stage
                if tile not in self.rows:
                    self.rows[tile] = self.pbar.add_task(f"  {tile}", total=1.0, stage=text, tile=tile)
                self.share[tile] = share
                self.pbar.update(self.rows[tile], completed=share, stage=text)
                self._overall()
        except Exception:  # noqa: BLE001 - a display problem must never stop a run
            pass

    def _finish(self, tile: str) -> None:
        self.finished.add(tile)
        self.share.pop(tile, None)
        if tile in self.rows:
            self.pbar.remove_task(self.rows.pop(tile))
        self.done += 1
        self._overall()

    def finish(self, tile: str) -> None:
        """The tile's result is in: drop its row and count it done (once)."""
        with self.lock:
            if tile not in self.finished:
                self._finish(tile)


def _run_tasks(tasks: list[TileTask], engine: EngineOptions, progress: bool, total: int, done0: int,
               plan=None) -> None:
    """Run tile tasks on the Dask engine with progress: overall (tiles, ETA) and per tile (stage).

    With ``plan`` (:class:`~soilsuite.pipeline.plan.RunPlan`), a local cluster gets the planned
    worker count and memory per worker instead of deriving them again from ``engine``.
    """
    from ..progress import progress_bar
    from .cluster import dask_client

    bar = progress_bar(progress, stage=True)
    if not tasks:
        return
    sizing = {} if plan is None else {"n_workers": plan.workers, "memory_per_worker": plan.memory_per_worker}
    with dask_client(engine, **sizing, n_tasks=len(tasks)) as client, bar as pbar:
        tid = pbar.add_task("tiles", total=total, completed=done0, stage=f"{done0}/{total} tiles")
        tiles = _TileBars(pbar, tid, total, done0) if progress else None
        if client is None:
            if tiles:
                _LOCAL_HOOK.append(tiles)
            try:
                for t in tasks:
                    res = process_tile(t)
                    if res.startswith(TILE_ERROR):
                        raise InputError(res[len(TILE_ERROR):])
                    if tiles:
                        tiles.finish(t.tile.name)
            finally:
                _LOCAL_HOOK.clear()
                from ..sources.fastread import close_datasets

                close_datasets()  # the files the tiles kept open in this process
            return
        if progress and getattr(client, "dashboard_link", None):
            pbar.console.print(f"Dask dashboard: {client.dashboard_link}")
        if tiles:
            try:
                client.subscribe_topic(PROGRESS_TOPIC, tiles)
            except Exception:  # noqa: BLE001 - older schedulers: overall progress only
                pass
        from distributed import as_completed

        futures = client.map(process_tile, tasks, pure=False, key=[f"tile-{t.tile.name}" for t in tasks])
        names = {f.key: t.tile.name for f, t in zip(futures, tasks, strict=True)}
        for fut in as_completed(futures):
            res = fut.result()  # re-raises unexpected errors
            if isinstance(res, str) and res.startswith(TILE_ERROR):
                client.cancel(futures)
                raise InputError(res[len(TILE_ERROR):])
            if tiles:
                tiles.finish(names[fut.key])
            else:
                pbar.advance(tid)
        if tiles:
            try:
                client.unsubscribe_topic(PROGRESS_TOPIC)
            except Exception:  # noqa: BLE001
                pass
