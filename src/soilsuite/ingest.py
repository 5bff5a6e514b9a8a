"""``soilsuite ingest``: the archive once into an analysis-ready Zarr cube (docs/ingest.md).

The cube's layout and how ``composite`` reads it are in :mod:`soilsuite.sources.cube`. The
archive is searched, scene-filtered, checked (preflight) and loaded exactly as ``composite``
does (odc-stac, 10 m bands averaged onto the 20 m grid, SCL by nearest, items fused per solar
day, ``DN + BOA_ADD_OFFSET``), lazily on Dask in chunks of 1 date x ``chunk_px`` x
``chunk_px``, and each chunk is written as it is computed (memory: a few chunks per thread).
The store is written in a scratch folder inside ``out`` (:data:`WORK_DIR`) and moved in when
complete; its manifest (:mod:`soilsuite.io.manifest`) lists every file and the options, so
``--overwrite`` removes only a cube soilsuite wrote, and an interrupted ingest is never taken
for a cube. Every stored chunk is logged: an interrupted ingest run again with the same options
computes only the missing chunks, and the cube is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io.manifest import install_tree, tree_files
from .sources import cube as C

__all__ = ["IngestResult", "ingest"]

#: Scratch folder inside ``--out`` while the cube is written (soilsuite's own; kept by an
#: interrupted run so that the same command resumes it, removed when the cube is moved in).
WORK_DIR = ".soilsuite-ingest"
#: The store being written, inside :data:`WORK_DIR`.
STORE_DIR = "store"


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
    chunks_resumed: int = 0  # chunks an interrupted run had stored (not computed again)
    already_complete: bool = False  # a finished cube of the same options was there: nothing written

    def summary(self):
        """A rich table of the cube."""
        from rich.table import Table

        t = Table(title=f"analysis-ready cube -> {self.out}", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("grid", f"{self.shape[1]} x {self.shape[0]} px of {self.resolution:g} m, {self.crs}")
        if self.already_complete:
            t.add_row("scenes", f"{self.n_items_used} items in the cube")
        else:
            t.add_row("scenes", f"{self.n_items_found} found, {self.n_items_used} used"
                      + ("".join(f"; {v} {k}" for k, v in self.rejected.items())))
        t.add_row("dates", f"{len(self.dates)} solar days ({self.dates[0]} .. {self.dates[-1]})" if self.dates else "0")
        t.add_row("size", f"{self.bytes / 2**20:.1f} MiB in {self.seconds:.1f} s")
        if self.already_complete:
            t.add_row("state", "already complete (the same options): nothing written")
        elif self.chunks_resumed:
            t.add_row("resumed", f"{self.chunks_resumed} chunks stored by the interrupted run kept")
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
        Chunk side (default 512; ``docs/ingest.md`` says why); ``composite`` from the cube makes its tiles
        whole multiples of it.
    halo_px : int, optional
        SCL kept beyond the area on every side (default 16 px; the cloud dilation needs
        ``dilation_px // 2``).
    n_workers : int, optional
        Threads (default: one per core).
    overwrite, force_clean : bool
        Replace a cube ingest wrote before (only its own files; :mod:`soilsuite.io.manifest`).
        Without ``overwrite``, an unfinished ingest of the same options in ``out`` is resumed
        (only the chunks it had not stored are computed) and a finished one is left as it is
        (``already_complete``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    IngestResult

    Raises
    ------
    OutputExistsError
        ``out`` holds a cube (finished or not) of other options and ``overwrite`` is False (the
        message names each option that differs), the source gives other items than when an
        unfinished cube was started, or ``out`` holds files soilsuite did not write.
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
    folder = OutputFolder(cfg.out, "ingest", owned_dirs=(WORK_DIR,))
    params = _params(cfg)
    if _check_folder(folder, cfg, params) == "complete":  # refuse (or finish) before any work
        return _finished(cfg, t_start)

    found, sel = select_items(ccfg)
    assets = S.resolve_assets(sel.items)
    geobox = target_geobox(ccfg, sel.items)
    sel, _ = preflight(ccfg, sel, assets, geobox, progress=progress)
    padded = geobox.pad(cfg.halo_px)
    items = _items_over(sel.items, padded)
    if not items:
        raise InputError(f"ingest: no item of {cfg.source} covers the area")
    meta = S.observation_meta(items, assets)

    with folder.lock():
        action = _check_folder(folder, cfg, params)  # again, under the lock
        if action == "complete":
            return _finished(cfg, t_start)
        if action == "replace":
            folder.clear(force_clean=cfg.force_clean)
        work = folder.path / WORK_DIR
        if action != "resume":
            shutil.rmtree(work, ignore_errors=True)
        folder.start(params_hash=_hash(params), extra={"params": params}, keep=action == "resume")
        kept = _write_resumable(work, cfg, items, assets, meta, geobox, padded, progress)
        store = work / STORE_DIR
        # list the cube's files first, then move them in: an interruption leaves nothing unlisted
        m = folder.record(tree_files(store), source=store, manifest=folder.read())
        install_tree(store, folder)
        folder.record([], state="complete", manifest=m)
        shutil.rmtree(work, ignore_errors=True)
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    return IngestResult(out=cfg.out, crs=str(geobox.crs), shape=(geobox.shape.y, geobox.shape.x),
                        resolution=cfg.resolution, dates=list(meta.dates), n_items_found=len(found),
                        n_items_used=len(items), rejected=sel.rejection_counts(), bytes=size,
                        seconds=time.perf_counter() - t_start, chunks_resumed=kept)


# ----------------------------------------------------------------------------- resume
def _params(cfg) -> dict[str, Any]:
    """The options that decide the cube's contents (not the output folder, threads or
    overwrite): an interrupted ingest resumes only with the same ones. Local paths absolute."""
    d = cfg.model_dump(mode="json", exclude={"out", "overwrite", "force_clean", "n_workers", "scene"})
    d.update(cfg.scene.model_dump(mode="json"))
    for key in ("source", "area"):
        v = d.get(key)
        if v is not None and not str(v).startswith(("http://", "https://")):
            d[key] = str(Path(v).expanduser().absolute())
    return d


def _hash(params: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _option(key: str) -> str:
    return "SOURCE" if key == "source" else "--" + key.replace("_", "-")


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``--option VALUE (the cube's: VALUE)`` for every option that differs."""
    return [f"{_option(k)} {new.get(k)} (the cube's: {old.get(k)})"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _check_folder(folder, cfg, params: dict[str, Any]) -> str:
    """:meth:`OutputFolder.check` for an ingest: ``new``, ``resume`` (an unfinished ingest of
    the same options), ``complete`` (a finished one of the same options: nothing to do) or
    ``replace`` (``overwrite``). Other options on an existing cube raise, naming each."""
    from .errors import OutputExistsError

    m = folder.read() if folder.path.is_dir() else None
    if (not cfg.overwrite and m is not None and m.get("kind") == "ingest" and isinstance(m.get("params"), dict)
            and m.get("params_hash") != _hash(params)):
        state = "a finished" if m.get("state") == "complete" else "an unfinished"
        raise OutputExistsError(
            f"ingest: {folder.path} holds {state} cube of other options: {'; '.join(_differences(m['params'], params))}; "
            + ("" if m.get("state") == "complete" else "run the same command to resume it, or ")
            + "use --overwrite to replace it, or another --out")
    return folder.check(overwrite=cfg.overwrite, force_clean=cfg.force_clean, params_hash=_hash(params),
                        resumable=True, what="cube")


def _finished(cfg, t_start: float) -> IngestResult:
    """The result of a finished ingest of the same options (nothing written)."""
    import zarr

    info = C.open_cube(cfg.out)
    days = zarr.open_group(str(cfg.out), mode="r")["solar_day"][:]
    items = json.loads((cfg.out / C.ITEMS_FILE).read_text())["items"]
    size = sum(p.stat().st_size for p in cfg.out.rglob("*") if p.is_file())
    return IngestResult(out=cfg.out, crs=info.crs, shape=info.shape, resolution=info.resolution,
                        dates=[C.EPOCH + dt.timedelta(days=int(d)) for d in days], n_items_used=len(items),
                        bytes=size, seconds=time.perf_counter() - t_start, already_complete=True)


class _Log:
    """The ingest's progress log (``<work>/chunks.log``): one line per step done (``store``:
    the empty store written; ``<variable> <t> <iy> <ix>``: a chunk stored; ``final``: the
    metadata written). A line is appended (and flushed) only after its step is on disk, so a
    run killed at any moment resumes from it; a torn last line is ignored."""

    def __init__(self, path: Path):
        import threading

        self.path = path
        self._lock = threading.Lock()
        self._f = None

    def read(self) -> set[str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return set()
        return {ln for ln in text.split("\n")[:-1] if ln}  # the part after the last newline may be torn

    def add(self, line: str) -> None:
        with self._lock:
            if self._f is None:
                self._f = open(self.path, "a")  # noqa: SIM115 - kept open while the chunks are written
            self._f.write(line + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _plan_record(cfg, items: list, meta, geobox, padded) -> dict[str, Any]:
    """What the search found (items, days, grids): a resumed ingest must find the same."""
    return {"items": sorted(it.id for it in items), "dates": [str(d) for d in meta.dates],
            "crs": str(geobox.crs), "transform": list(geobox.affine)[:6],
            "shape": [geobox.shape.y, geobox.shape.x], "scl_shape": [padded.shape.y, padded.shape.x]}


def _write_resumable(work: Path, cfg, items: list, assets: dict[str, str], meta, geobox, padded,
                     progress: bool) -> int:
    """Write (or finish) the Zarr store ``<work>/store``; returns the chunks an earlier run had stored.

    The store's metadata and per-date arrays are written first, then the pixel chunks one by
    one, each logged (:class:`_Log`) once on disk; a resumed run computes only the chunks not
    in the log (a chunk is written whole or not at all: zarr writes a temporary file and renames
    it). Chunks are deterministic, so a resumed store is byte-identical to an uninterrupted one.
    """
    from .errors import OutputExistsError

    work.mkdir(parents=True, exist_ok=True)
    log = _Log(work / "chunks.log")
    plan = _plan_record(cfg, items, meta, geobox, padded)
    plan_path = work / "plan.json"
    done = log.read()
    if "store" in done and plan_path.is_file():
        old = json.loads(plan_path.read_text())
        if old != plan:
            what = [k for k in plan if old.get(k) != plan[k]]
            gone, new = sorted(set(old.get("items", [])) - set(plan["items"])), sorted(set(plan["items"]) - set(old.get("items", [])))
            detail = f" ({len(new)} item(s) more, {len(gone)} fewer: {', '.join((new + gone)[:3])}...)" if new or gone else ""
            raise OutputExistsError(
                f"ingest: the source now gives other {', '.join(what)} than when the unfinished cube in {cfg.out} "
                f"was started{detail}; use --overwrite to start again")
        # zarr's local store writes a chunk to '<chunk>.<uuid>.partial' and renames it: a run
        # killed mid-write leaves that temporary file behind (the chunk itself is not in the log
        # and is written again); it must not end up in the finished cube
        for leftover in (work / STORE_DIR).rglob("*.partial"):
            leftover.unlink(missing_ok=True)
    else:
        done = set()
        shutil.rmtree(work / STORE_DIR, ignore_errors=True)
        log.path.unlink(missing_ok=True)
        _create_store(work / STORE_DIR, cfg, meta, geobox, padded)
        from .io.manifest import _atomic_write_text

        _atomic_write_text(plan_path, json.dumps(plan, sort_keys=True))
        log.add("store")
    kept = sum(1 for ln in done if ln not in ("store", "final"))
    try:
        if "final" not in done:
            _write_chunks(work / STORE_DIR, cfg, items, assets, meta, geobox, padded, done, log, progress)
            _finish_store(work / STORE_DIR, cfg, items, meta, geobox)
            log.add("final")
    finally:
        log.close()
    return kept


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


def _create_store(store: Path, cfg, meta, geobox, padded) -> None:
    """Create the Zarr store in the (new) folder ``store``: coordinates, per-date metadata and
    the empty pixel arrays (chunks 1 date x ``chunk_px`` x ``chunk_px``)."""
    import zarr

    c = cfg.chunk_px
    n_t = len(meta.dates)
    root = zarr.open_group(str(store), mode="w", zarr_format=3)
    grid = "spatial_ref"

    def var(name, shape, dims, dtype, fill, attrs, chunks=None, data=None):
        arr = root.create_array(name, shape=shape, dtype=dtype, chunks=chunks or shape, fill_value=fill,
                                compressors=[_compressor()], dimension_names=dims, attributes=attrs)
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
    for b, name in enumerate(C.BANDS):
        var(name, (n_t, geobox.shape.y, geobox.shape.x), ("time", "y", "x"), "int16", -32768,
            {"long_name": f"{name} surface reflectance (offset-corrected DN + BOA_ADD_OFFSET)",
             "units": "1", "scale_factor": C.REFLECTANCE_SCALE, "add_offset": 0.0,
             "grid_mapping": grid, "band": b}, chunks=(1, c, c))
    var(C.QUALITY, (n_t, padded.shape.y, padded.shape.x), ("time", "y_scl", "x_scl"), "uint8", 0,
        {"long_name": "Sen2Cor scene classification (0 = no data)", "grid_mapping": grid,
         "coordinates": "x_scl y_scl"}, chunks=(1, c, c))


def _compressor():
    from zarr.codecs import BloscCodec, BloscShuffle

    return BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)


def _store_chunk(target, name: str, index: tuple[int, ...], region: tuple[slice, ...], block: np.ndarray,
                 log: _Log) -> None:
    """Write one chunk, then log it (the log line follows the file: see :class:`_Log`)."""
    target[region] = block
    log.add(f"{name} {' '.join(map(str, index))}")


def _write_chunks(store: Path, cfg, items: list, assets: dict[str, str], meta, geobox, padded, done: set[str],
                  log: _Log, progress: bool) -> None:
    """Compute and store every pixel chunk not in ``done``, on Dask threads (``cfg.n_workers``)."""
    import itertools

    import dask
    import dask.array as da
    import zarr
    from rasterio.errors import NotGeoreferencedWarning

    from .pipeline.cluster import _cores
    from .pipeline.preflight import gdal_env
    from .sources import stac as S

    c = cfg.chunk_px
    n_t = len(meta.dates)
    root = zarr.open_group(str(store), mode="r+", zarr_format=3)

    # the pixels: lazy loads, converted chunk by chunk and stored as computed
    chunks = {"time": 1, "y": c, "x": c}
    bands_ds = S.load_cube(items, geobox, assets, chunks=chunks, bands=C.BANDS)
    scl_ds = S.load_cube(items, padded, assets, chunks=chunks, bands=(C.QUALITY,))
    for ds in (bands_ds, scl_ds):
        if ds.sizes["time"] != n_t:
            raise InputError(f"odc-stac grouped {ds.sizes['time']} solar days, expected {n_t}")
    sources = {name: da.map_blocks(_refl_block, bands_ds[name].data, meta.offset_dn, dtype=np.int16,
                                   meta=np.empty((0, 0, 0), np.int16)) for name in C.BANDS}
    sources[C.QUALITY] = scl_ds[C.QUALITY].data.astype(np.uint8)
    writes = []
    for name, src in sources.items():
        target = root[name]
        bounds = [np.cumsum((0, *ch)) for ch in src.chunks]
        todo = [idx for idx in itertools.product(*(range(len(ch)) for ch in src.chunks))
                if f"{name} {' '.join(map(str, idx))}" not in done]
        if not todo:
            continue
        blocks = src.to_delayed()
        for idx in todo:
            region = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, idx, strict=True))
            writes.append(dask.delayed(_store_chunk, pure=False)(target, name, idx, region, blocks[idx], log))
    if not writes:
        return

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
            dask.compute(*writes)


def _finish_store(store: Path, cfg, items: list, meta, geobox) -> None:
    """The root attributes, consolidated metadata and the items' file (after every chunk)."""
    import zarr

    from . import __version__

    root = zarr.open_group(str(store), mode="r+", zarr_format=3)
    root.attrs[C.CUBE_ATTR] = {
        "format": C.CUBE_FORMAT, "software": f"soilsuite {__version__}", "source": cfg.source,
        "collection": cfg.collection, "start": str(cfg.start), "end": str(cfg.end),
        "crs": str(geobox.crs), "transform": list(geobox.affine)[:6], "shape": [geobox.shape.y, geobox.shape.x],
        "resolution": cfg.resolution, "halo_px": cfg.halo_px, "chunk_px": cfg.chunk_px,
        "bands": list(C.BANDS), "quality_band": C.QUALITY, "scale_factor": C.REFLECTANCE_SCALE, "add_offset": 0.0,
        "nodata": -32768, "scl_nodata": 0, "units": "reflectance = value * scale_factor",
        "scene_filter": cfg.scene.model_dump(), "n_dates": len(meta.dates), "n_items": len(items),
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
    from .io.manifest import _atomic_write_text

    _atomic_write_text(store / C.ITEMS_FILE, json.dumps({"format": C.CUBE_FORMAT, "items": records}, default=str))
