"""Direct window reads of the source rasters when the target grid is the items' native grid.

:func:`soilsuite.sources.stac.load_cube` loads through odc-stac: a Dask-free chunked loader
with per-chunk task objects, a reprojection set-up per asset and, for the 10 m bands, a GDAL
warp. When the target grid *is* the items' grid (same CRS, 20 m, origins on the 20 m lattice;
the default grid of a composite is built that way) none of that machinery is needed:
:func:`load_native` opens each asset file once, reads the window of the tile with rasterio
and fuses the items of a solar day itself. It reproduces odc-stac 0.5's reader decision by
decision, so the arrays are identical (``tests/test_fastread.py``):

- items are grouped by ``sensor.solar_day`` and, within a day, sorted by (nominal datetime,
  id), the order odc-stac's ``groupby`` uses; only items whose footprint
  (:meth:`odc.stac.model.ParsedItem.safe_geometry`) meets the grid are read;
- the fuser is odc-stac's default: an item fills only the pixels the items before it left at
  nodata (``0`` for L2A DN and SCL);
- a 20 m asset (bands, SCL) on the native grid is a plain windowed ``read`` (no warp);
- a 10 m band: when the file has a 2x overview (COGs larger than one block usually have one),
  odc-stac reads that overview, so the window of the overview is read here too (the overview's
  values are the producer's resampling: nearest in the simulator, see docs/performance.md);
  without a 2x overview odc-stac warps the full-resolution pixels with GDAL's ``average``, and
  so does this module, on the same destination window (GDAL's float weights round some exact
  half-way means down, so only GDAL reproduces GDAL here);
- any other geometry (another CRS, a shifted or rotated grid, another pixel size) goes through
  the same ``rasterio.warp.reproject`` call odc-stac makes.

``read_path="mean"`` replaces the 10 m rule by the exact 2 x 2 block mean of the full
resolution pixels (:func:`soilsuite.kernels.resample.block_mean_2x2`, numba), ignoring the
producer's overviews: the physically meant 20 m mean, not byte-identical to the odc-stac path.

Units: raw DN as stored (uint16 L2A DN, uint8 SCL), nodata as in the sensor's ``stac_cfg``
(0); the offset correction is applied later (:func:`soilsuite.sources.stac.to_reflectance`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from ..errors import ConfigError, InputError, choice_or_env
from ..sensors import SENTINEL2_L2A, Sensor

#: ``read_path`` values: ``auto`` (direct reads on a native grid, else odc-stac), ``general``
#: (always odc-stac), ``mean`` (as ``auto``, 10 m bands by the exact 2 x 2 mean).
READ_PATHS = ("auto", "general", "mean")
#: Environment variable read when no ``read_path`` is given (``soilsuite composite --read-path``).
READ_PATH_ENV = "SOILSUITE_READ_PATH"
#: Environment variable: reader threads per tile load (default 1).
READ_THREADS_ENV = "SOILSUITE_READ_THREADS"
#: Environment variable: open datasets kept per reader thread between tile loads (default
#: :data:`DEFAULT_OPEN_FILES`, at most a quarter of the open-file limit; 0: open and close
#: each file per tile).
OPEN_FILES_ENV = "SOILSUITE_READ_OPEN_FILES"
#: Default of ``$SOILSUITE_READ_OPEN_FILES``: a third less CPU for tiles of 320-512 px on the
#: bench archive (docs/performance.md). 1024 holds every file of the 1000 px x 40 date bench
#: archive (858 files; a 10 m band read from its overview keeps only the overview open).
DEFAULT_OPEN_FILES = 1024


def resolve_read_path(read_path: str | None = None) -> str:
    """The read path to use: ``read_path`` if given, else ``$SOILSUITE_READ_PATH``, else ``auto``.

    Raises
    ------
    ConfigError
        A value that is not one of :data:`READ_PATHS` (naming where it came from).
    """
    return choice_or_env(read_path, READ_PATH_ENV, "auto", READ_PATHS, "read_path")


def read_threads(threads: int | None = None) -> int:
    """Reader threads per load: ``threads``, else ``$SOILSUITE_READ_THREADS``, else 1."""
    if threads is None:
        raw = os.environ.get(READ_THREADS_ENV) or "1"
        try:
            threads = int(raw)
        except ValueError:
            raise ConfigError(f"${READ_THREADS_ENV}: expected a whole number of threads, got {raw!r}") from None
    if threads < 1:
        raise ConfigError(f"reader threads: expected at least 1, got {threads}")
    return threads


def is_native_grid(items: Sequence, geobox, assets: dict[str, str], bands: Sequence[str],
                   sensor: Sensor = SENTINEL2_L2A, parsed: list | None = None) -> bool:
    """True if ``geobox`` is the items' native grid for ``bands`` by their ``proj:`` metadata.

    Same CRS, north-up, the pixel size of each asset equal to the grid's (20 m) or exactly half
    of it (10 m), and every asset's origin on the grid's pixel lattice (an integer number of
    grid pixels away). Assets without ``proj:transform``/``proj:epsg`` metadata count as native
    (the reader checks each file anyway and warps what is not aligned, as odc-stac does).
    """
    parsed = _parse(items, assets, sensor) if parsed is None else parsed
    a = geobox.affine
    if a.b != 0 or a.d != 0 or a.a <= 0 or a.e >= 0 or abs(a.a + a.e) > 1e-9 * a.a:
        return False
    res = a.a
    for pi in parsed:
        for band in bands:
            try:
                gb = pi[assets[band]].geobox
            except (KeyError, IndexError):
                gb = None
            if gb is None:
                continue
            if gb.crs != geobox.crs:
                return False
            s = gb.affine
            if s.b != 0 or s.d != 0 or s.e != -s.a:
                return False
            ratio = res / s.a
            if not any(abs(ratio - k) < 1e-9 for k in (1, 2)):
                return False
            for off in ((s.c - a.c) / res, (a.f - s.f) / res):
                if abs(off - round(off)) > 1e-6:
                    return False
    return True


def load_arrays(items: Sequence, geobox, assets: dict[str, str], *, bands: Sequence[str],
                sensor: Sensor = SENTINEL2_L2A, read_path: str | None = None, threads: int | None = None,
                progress: Callable | None = None) -> dict[str, np.ndarray]:
    """Raw DN of ``bands`` on ``geobox``, fused by solar day: the tile loader's one entry point.

    Direct reads (:func:`load_native`) when ``read_path`` is not ``"general"`` and ``geobox``
    is the items' native grid (:func:`is_native_grid`); otherwise odc-stac
    (:func:`soilsuite.sources.stac.load_cube`). Both give the same arrays (``"mean"`` aside).

    Parameters
    ----------
    read_path : {"auto", "general", "mean"}, optional
        Default ``$SOILSUITE_READ_PATH``, else ``"auto"`` (:func:`resolve_read_path`).
    threads : int, optional
        Reader threads of the direct path; default ``$SOILSUITE_READ_THREADS``, else 1.

    Returns
    -------
    dict
        Band name -> ``[T, Y, X]`` raw DN (uint16 bands, uint8 SCL; nodata 0).
    """
    path = resolve_read_path(read_path)
    if path != "general":
        parsed = _parse(items, assets, sensor)
        if is_native_grid(items, geobox, assets, bands, sensor, parsed):
            return load_native(items, geobox, assets, bands=bands, sensor=sensor, read_path=path,
                               threads=read_threads(threads), progress=progress, parsed=parsed)
    from .stac import load_cube

    ds = load_cube(items, geobox, assets, chunks=None, bands=bands, sensor=sensor, progress=progress)
    return {b: ds[b].values for b in bands}


#: odc-stac's parse of each item, by the item's content and the load configuration: a worker
#: loads tile after tile (and each tile twice: bands, then SCL) from the same items, and the
#: parse costs ~5 ms per item, 50x its fingerprint (issue 14, ``bench/bench_overhead.py``).
_PARSED: dict = {}
#: Entries kept at most (then the cache starts again).
_PARSED_MAX = 8192
_PARSED_LOCK = threading.Lock()


def _fingerprint(item) -> str:
    import json

    return json.dumps([item.get_self_href(), item.to_dict(include_self_link=False, transform_hrefs=False)],
                      sort_keys=True, default=str)


def _parse(items: Sequence, assets: dict[str, str], sensor: Sensor) -> list:
    """odc-stac's :class:`~odc.stac.model.ParsedItem` of each item, cached by content."""
    import json

    import odc.stac

    cfg = sensor.stac_cfg(assets)
    ckey = json.dumps(cfg, sort_keys=True, default=str)
    keys = [(ckey, _fingerprint(it)) for it in items]
    with _PARSED_LOCK:  # worker threads share the cache (the threaded engine)
        todo = [i for i, k in enumerate(keys) if k not in _PARSED]
        if todo:
            if len(_PARSED) + len(todo) > _PARSED_MAX:
                _PARSED.clear()
            for i, pi in zip(todo, odc.stac.parse_items([items[i] for i in todo], cfg=cfg), strict=True):
                _PARSED[keys[i]] = pi
        return [_PARSED[k] for k in keys]


@dataclass(frozen=True)
class _BandCfg:
    """How one band is loaded (odc-stac's ``RasterLoadParams`` for it)."""

    name: str
    key: str
    params: object  # odc.loader.types.RasterLoadParams


def _band_cfgs(bands: Sequence[str], assets: dict[str, str], sensor: Sensor, mean: bool) -> list[_BandCfg]:
    from odc.loader.types import RasterLoadParams

    cfg = sensor.stac_cfg(assets)["*"]["assets"]
    out = []
    for b in bands:
        key = assets[b]
        resampling = "nearest" if b == sensor.quality.band else "average"
        params = RasterLoadParams(cfg[key]["data_type"], fill_value=cfg[key]["nodata"], use_overviews=not mean,
                                  resampling=resampling, fail_on_error=True)
        out.append(_BandCfg(b, key, params))
    return out


def load_native(items: Sequence, geobox, assets: dict[str, str], *, bands: Sequence[str],
                sensor: Sensor = SENTINEL2_L2A, read_path: str = "auto", threads: int = 1,
                progress: Callable | None = None, parsed: list | None = None) -> dict[str, np.ndarray]:
    """Load ``bands`` of ``items`` onto ``geobox`` by direct window reads, fused by solar day.

    Parameters
    ----------
    items : sequence of pystac.Item
        The items to load (any order).
    geobox : odc.geo.geobox.GeoBox
        The target grid (a tile, possibly padded by a halo).
    assets : dict
        Our band names -> the items' asset keys (:func:`soilsuite.sources.stac.resolve_assets`).
    bands : sequence of str
        Our band names to load (``B02``...``B12``, ``SCL``).
    read_path : {"auto", "mean"}
        ``mean``: 10 m bands as the exact 2 x 2 mean of the full-resolution pixels.
    threads : int
        Reader threads (rasterio releases the GIL while GDAL decodes); 1 reads in this thread.
    progress : callable, optional
        odc-stac's tqdm-like hook (:func:`soilsuite.sources.stac.load_cube`): given a sized
        list of read tasks in date order, yields them as they run.

    Returns
    -------
    dict
        Band name -> raw DN ``[T, Y, X]`` (dtype and nodata of the sensor's ``stac_cfg``), T the
        solar days in time order, as :func:`~soilsuite.sources.stac.load_cube` returns them.

    Raises
    ------
    InputError
        A file that cannot be read, naming the item, the asset and the file.
    """
    from odc.geo.geobox import GeoboxTiles

    parsed = _parse(items, assets, sensor) if parsed is None else parsed
    order = sorted(range(len(items)), key=lambda i: (sensor.solar_day(items[i], parsed[i], i),
                                                     parsed[i].nominal_datetime, parsed[i].id))
    groups = [list(g) for _, g in groupby(order, key=lambda i: sensor.solar_day(items[i], parsed[i], i))]
    gbt = GeoboxTiles(geobox, geobox.shape.yx)

    def meets(i: int) -> bool:
        geom = parsed[i].safe_geometry(geobox.crs)
        if geom is None:
            raise InputError(f"STAC item {parsed[i].id!r}: has no footprint (geometry or proj: metadata)")
        return any(True for _ in gbt.tiles(geom))

    over = {i: meets(i) for i in order}
    groups = [[i for i in g if over[i]] for g in groups]
    cfgs = _band_cfgs(bands, assets, sensor, mean=read_path == "mean")
    ny, nx = geobox.shape.yx
    out = {c.name: np.full((len(groups), ny, nx), c.params.fill_value, dtype=c.params.dtype) for c in cfgs}
    tasks = [(t, c) for t in range(len(groups)) for c in cfgs]

    def run(task) -> None:
        t, c = task
        dst = out[c.name][t]
        for i in groups[t]:
            src = parsed[i][c.key]
            try:
                roi, pix = _read(src.uri, src.band, geobox, c.params)
            except InputError:
                raise
            except Exception as exc:  # rasterio/GDAL errors: name the item, the asset, the file
                raise InputError(f"STAC item {parsed[i].id!r}, asset {c.key} {src.uri}: cannot be read: {exc}") from exc
            if pix is None:
                continue
            part = dst[roi]
            np.copyto(part, pix, where=part == c.params.fill_value)

    if threads > 1:
        with ThreadPoolExecutor(threads, initializer=_no_cache) as pool:
            done = pool.map(run, tasks)
            for _ in (progress(_Sized(done, len(tasks))) if progress else done):
                pass
    else:
        for task in (progress(tasks) if progress else tasks):
            run(task)
    return out


class _Sized:
    """A sized iterable over an iterator (for a tqdm-like progress hook)."""

    def __init__(self, it, n: int):
        self.it, self.n = it, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(self.it)


class _Datasets:
    """Open rasterio datasets of this process, kept between tile loads, lent to one thread at a time.

    A worker loads tile after tile from the same files; keeping them open saves the open
    (header, tile index: about as much CPU as decoding two 256 px blocks) and keeps their
    decoded blocks in GDAL's block cache (``GDAL_CACHEMAX``) for the next tile (the SCL halo,
    blocks shared by two tiles). At most :meth:`limit` are kept: the first ones opened (tiles
    visit the files in the same order, so evicting the least recently used would never hit
    once the archive has more files than the limit; keeping a fixed set hits that share of
    them). Local files are keyed by path, size and modification time, so a replaced file is
    opened again.

    Thread safety (the threaded engine runs tiles in several threads of one process): a GDAL
    dataset must not be used by two threads at once, so :meth:`get` lends a kept dataset to
    one thread and takes it back when that thread is done; a thread that asks for a file
    whose kept datasets are all lent opens another one (kept too, within the limit). The
    threads thus share the files opened (each file is opened about once, not once per thread)
    and GDAL's block cache. The file facts (grid, overviews) are shared.
    """

    def __init__(self):
        self.open: dict = {}  # key -> every kept dataset of the file (lent or free)
        self.free: dict = {}  # key -> the kept datasets not lent now
        self.facts_: dict = {}  # key of the file -> (GeoBox, {band: overview factors})
        self.n_kept = 0
        self.lock = threading.RLock()
        self.local = threading.local()  # .enabled: off in the short-lived threads of a reader pool

    @staticmethod
    def _key(uri: str, overview_level: int | None) -> tuple:
        try:
            st = os.stat(uri)
            return (uri, overview_level, st.st_size, st.st_mtime_ns)
        except OSError:  # a URL or a /vsi path
            return (uri, overview_level)

    def facts(self, uri: str) -> tuple:
        """``(GeoBox, {band index: overview factors})`` of a file, opened once for them."""
        from odc.geo.converters import rio_geobox

        key = self._key(uri, None)
        f = self.facts_.get(key)
        if f is None:
            with self.get(uri) as rdr:
                f = (rio_geobox(rdr), {b: rdr.overviews(b) for b in rdr.indexes})
            with self.lock:
                if len(self.facts_) > 16384:
                    self.facts_.clear()
                self.facts_[key] = f
        return f

    def release(self, uri: str) -> None:
        """Close the full-resolution datasets of ``uri`` that are kept open and not lent (a 10 m
        band read from its overview needs only that overview's dataset; the kept set is for
        files read from)."""
        key = self._key(uri, None)
        with self.lock:
            free = self.free.pop(key, [])
            kept = [d for d in self.open.pop(key, []) if not any(d is f for f in free)]
            if kept:  # lent to another thread now: stays kept, comes back to the free list
                self.open[key] = kept
            self.n_kept -= len(free)
        for ds in free:
            ds.close()

    def limit(self) -> int:
        """Datasets kept at most: ``$SOILSUITE_READ_OPEN_FILES``, else :data:`DEFAULT_OPEN_FILES`
        per reading thread (:func:`set_reader_threads`), at most a quarter of the open-file limit."""
        if not getattr(self.local, "enabled", True):
            return 0
        raw = os.environ.get(OPEN_FILES_ENV)
        if raw:
            try:
                return max(0, int(raw))
            except ValueError:
                raise ConfigError(f"${OPEN_FILES_ENV}: expected a whole number of files, got {raw!r}") from None
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        want = DEFAULT_OPEN_FILES * _READER_THREADS[0]
        return want if soft == resource.RLIM_INFINITY else min(want, soft // 4)

    @contextmanager
    def get(self, uri: str, overview_level: int | None = None):
        """A dataset of ``uri`` (at ``overview_level``) for this thread alone while in the block."""
        import rasterio

        kw = {} if overview_level is None else {"overview_level": overview_level}
        limit = self.limit()
        if limit == 0:
            with rasterio.open(uri, "r", sharing=False, **kw) as ds:
                yield ds
            return
        key = self._key(uri, overview_level)
        with self.lock:
            free = self.free.get(key)
            ds = free.pop() if free else None
            keep = ds is None and self.n_kept < limit
            if keep:
                self.n_kept += 1  # reserved: opened below, outside the lock
        if ds is None and not keep:
            with rasterio.open(uri, "r", sharing=False, **kw) as ds:
                yield ds
            return
        if ds is None:
            try:
                ds = rasterio.open(uri, "r", sharing=False, **kw)
            except BaseException:
                with self.lock:
                    self.n_kept -= 1
                raise
            with self.lock:
                self.open.setdefault(key, []).append(ds)
        try:
            yield ds
        finally:
            with self.lock:
                if any(d is ds for d in self.open.get(key, ())):
                    self.free.setdefault(key, []).append(ds)
                else:  # closed by close() or release() meanwhile
                    ds.close()

    def close(self) -> None:
        """Close every kept dataset (call when no tile is loading)."""
        with self.lock:
            kept = [ds for dss in self.open.values() for ds in dss]
            self.open.clear()
            self.free.clear()
            self.facts_.clear()
            self.n_kept = 0
        for ds in kept:
            ds.close()


#: Worker threads loading tiles in this process (:func:`set_reader_threads`): the default
#: open-file limit grows with them (a thread may need its own dataset of a file another one reads).
_READER_THREADS = [1]
_DATASETS = _Datasets()


def _no_cache() -> None:
    _DATASETS.local.enabled = False


def close_datasets() -> None:
    """Close the datasets this process keeps open between tile loads (no tile may be loading)."""
    _DATASETS.close()


def set_reader_threads(n: int) -> None:
    """Tell the reader that ``n`` threads of this process load tiles at the same time (the
    threaded engine, :func:`soilsuite.pipeline.cluster.dask_client`): the datasets kept open
    are shared by them, one thread at a time per dataset, and the default limit of files kept
    open is :data:`DEFAULT_OPEN_FILES` per thread (at most a quarter of the open-file limit)."""
    _READER_THREADS[0] = max(1, int(n))


def close_all_datasets() -> None:
    """Close the datasets kept open by every thread of this process (:func:`close_datasets`)."""
    _DATASETS.close()


def _read(uri: str, bidx: int, geobox, params) -> tuple[tuple[slice, slice], np.ndarray | None]:
    """One asset file onto ``geobox``: ``(roi of geobox, pixels)``, pixels None if disjoint.

    The decisions of odc-stac 0.5's ``_rio_read``/``_do_read``, without its task machinery.
    """
    from odc.geo.converters import rio_geobox
    from odc.geo.roi import roi_is_empty, roi_shape
    from odc.loader._reader import pick_overview

    ttol = 0.9 if params.nearest else 0.05
    src_gb, overviews = _DATASETS.facts(uri)
    rr = _roi(src_gb, geobox, ttol)
    if roi_is_empty(rr.roi_dst) or roi_is_empty(rr.roi_src):
        return rr.roi_dst, None
    shape = roi_shape(rr.roi_dst)
    if params.use_overviews and rr.read_shrink > 1:
        ovr = pick_overview(rr.read_shrink, overviews.get(bidx, []))
        if ovr is not None:
            _DATASETS.release(uri)  # only the overview is read from
            with _DATASETS.get(uri, ovr) as rov:
                ro = _roi(rio_geobox(rov), geobox, ttol)
                if ro.paste_ok and ro.read_shrink == 1 and ro.roi_dst == rr.roi_dst:
                    return rr.roi_dst, _paste(rov, bidx, ro, shape, params)
                return rr.roi_dst, _warp(rov, bidx, rr, shape, geobox, params)
    with _DATASETS.get(uri) as rdr:
        if rr.paste_ok and rr.read_shrink == 1:
            return rr.roi_dst, _paste(rdr, bidx, rr, shape, params)
        if rr.paste_ok and rr.read_shrink == 2 and not params.use_overviews and not params.nearest:
            return rr.roi_dst, _mean2(rdr, bidx, rr, shape, geobox, params)
        return rr.roi_dst, _warp(rdr, bidx, rr, shape, geobox, params)


#: ``compute_reproject_roi`` results by (source grid, target grid, tolerance): the files of one
#: MGRS tile share their grid, so a tile load computes a handful, not one per file (issue 14).
_ROIS: dict = {}


def _roi(src_gb, dst_gb, ttol: float):
    """:func:`odc.geo.overlap.compute_reproject_roi` of two grids, cached (a pure function of them)."""
    from odc.geo.overlap import compute_reproject_roi

    key = (src_gb, dst_gb, ttol)
    rr = _ROIS.get(key)
    if rr is None:
        if len(_ROIS) > 4096:
            _ROIS.clear()
        rr = _ROIS[key] = compute_reproject_roi(src_gb, dst_gb, ttol=ttol)
    return rr


def _nodata(rdr, bidx: int, params, dtype) -> tuple:
    from odc.loader._reader import resolve_dst_nodata, resolve_src_nodata

    src_nd = resolve_src_nodata(rdr.nodatavals[bidx - 1], params)
    return src_nd, resolve_dst_nodata(np.dtype(dtype), params, src_nd)


def _paste(rdr, bidx: int, rr, shape, params) -> np.ndarray:
    """A plain windowed read (odc-stac's ``paste_ok`` case), nodata remapped as odc-stac does."""
    from odc.loader._reader import nodata_mask, same_nodata
    from rasterio.windows import Window

    ys, xs = rr.roi_src
    pix = np.empty(shape, np.dtype(params.dtype))
    rdr.read(bidx, out=pix, window=Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start))
    src_nd, dst_nd = _nodata(rdr, bidx, params, pix.dtype)
    if dst_nd is not None and not same_nodata(src_nd, dst_nd):
        np.copyto(pix, dst_nd, where=nodata_mask(pix, src_nd))
    return pix


def _warp(rdr, bidx: int, rr, shape, geobox, params) -> np.ndarray:
    """The ``rasterio.warp.reproject`` call odc-stac makes when it cannot paste."""
    import rasterio
    import rasterio.warp
    from odc.geo.warp import resampling_s2rio

    pix = np.empty(shape, np.dtype(params.dtype))
    src_nd, dst_nd = _nodata(rdr, bidx, params, pix.dtype)
    rasterio.warp.reproject(
        rasterio.band(rdr, bidx), pix, src_nodata=src_nd, dst_crs=str(geobox.crs),
        dst_transform=geobox[rr.roi_dst].transform, dst_nodata=dst_nd, resampling=resampling_s2rio(params.resampling),
    )
    return pix


def _mean2(rdr, bidx: int, rr, shape, geobox, params) -> np.ndarray:
    """Exact 2 x 2 block mean of the full-resolution pixels under ``rr.roi_dst``
    (``read_path="mean"``); pixels outside the file count as nodata. Falls back to the warp
    when the 2 x 2 blocks do not start on a source pixel (an odd-pixel offset)."""
    from rasterio.windows import Window

    from ..kernels.resample import block_mean_2x2

    s, d = rdr.transform, geobox[rr.roi_dst].affine
    c0, r0 = (d.c - s.c) / s.a, (d.f - s.f) / s.e
    if abs(c0 - round(c0)) > 1e-6 or abs(r0 - round(r0)) > 1e-6:
        return _warp(rdr, bidx, rr, shape, geobox, params)
    c0, r0 = round(c0), round(r0)
    h, w = 2 * shape[0], 2 * shape[1]
    src_nd, dst_nd = _nodata(rdr, bidx, params, np.dtype(params.dtype))
    nd = src_nd if src_nd is not None else dst_nd
    nd = 0 if nd is None else int(nd)
    full = np.full((h, w), nd, np.dtype(params.dtype))
    # the part of the blocks inside the file (the window may pass its edge by a pixel)
    a0, a1 = max(r0, 0), min(r0 + h, rdr.height)
    b0, b1 = max(c0, 0), min(c0 + w, rdr.width)
    if a1 > a0 and b1 > b0:
        rdr.read(bidx, out=full[a0 - r0:a1 - r0, b0 - c0:b1 - c0], window=Window(b0, a0, b1 - b0, a1 - a0))
    pix = block_mean_2x2(full, nd)
    if dst_nd is not None and nd != dst_nd:
        pix[pix == nd] = dst_nd
    return pix


__all__ = ["READ_PATHS", "READ_PATH_ENV", "close_all_datasets", "close_datasets", "is_native_grid", "load_arrays",
           "load_native", "read_threads", "resolve_read_path", "set_reader_threads"]
