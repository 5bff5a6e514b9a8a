"""An analysis-ready cube of the archive (Zarr v3): written by ``soilsuite ingest``, read by ``composite``.

``soilsuite ingest`` loads the archive once (the same search, scene filter, odc-stac load,
solar-day fusion and offset correction as ``composite``) and writes one Zarr v3 store:

=====================  =====================  =================================================
variable               dims                   content
=====================  =====================  =================================================
``B02`` .. ``B12``     (time, y, x)           int16 offset-corrected reflectance x 10000
                                              (``DN + BOA_ADD_OFFSET``), nodata -32768;
                                              ``scale_factor`` 1e-4, ``add_offset`` 0 (CF)
``SCL``                (time, y_scl, x_scl)   uint8 scene classification, 0 = no data, on the
                                              grid padded by ``halo_px`` on every side (the
                                              context of the cloud dilation at the edge)
``x``, ``y``           (x), (y)               pixel centres in the CRS (m)
``x_scl``, ``y_scl``   (x_scl), (y_scl)       the same for the padded SCL grid
``time``               (time)                 first acquisition of the solar day (s since 1970)
``solar_day``          (time)                 the solar day (days since 1970-01-01)
``sun_zenith``         (time)                 mean sun zenith of the day's items (deg)
``boa_add_offset_dn``  (time)                 BOA_ADD_OFFSET applied to the DN (0 or -1000)
``n_items``            (time)                 STAC items fused into the day
``spatial_ref``        ()                     CRS (CF grid mapping: ``crs_wkt``, ``GeoTransform``)
=====================  =====================  =================================================

Chunks: 1 date x ``chunk_px`` x ``chunk_px`` (default 512) anchored at the grid origin;
``composite`` makes its tiles whole multiples of them (:func:`tile_side_for_cube`), so a tile
reads whole chunks, each once (below one chunk, a power-of-two fraction of it). Blosc/Zstd with bit-shuffle. The root attribute ``soilsuite_cube`` holds the grid (CRS, transform, shape,
resolution, halo), scale, nodata, the window, the scene filter used and the source; the file
``soilsuite-items.json`` in the store holds each STAC item's metadata (id, time, footprint,
properties: cloud cover, sun elevation, MGRS tile, ...) and its solar day, so that
``composite`` applies its scene filter and its grouping to the cube exactly as to the archive.

``composite CUBE.zarr`` turns those items into lightweight items pointing at the cube
(:func:`search_cube`); the tile loader reads the tile's window of the days its items fall on
(:func:`read_tile`). A composite from the cube equals the one from the archive on the same
grid (tests/test_ingest.py), with one exception: a stricter scene filter at composite time
that rejects some but not all items of a solar day keeps the whole fused day (the cube has no
per-item pixels); the run warns (:func:`check_cube_run`).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..sensors import REFL_NODATA, SENTINEL2_L2A

SENSOR = SENTINEL2_L2A
BANDS = SENSOR.band_names
QUALITY = SENSOR.quality.band
#: Root attribute naming a soilsuite cube, and its format version.
CUBE_ATTR = "soilsuite_cube"
CUBE_FORMAT = 1
#: Sidecar file in the store with the STAC items' metadata.
ITEMS_FILE = "soilsuite-items.json"
#: Item property linking a cube item to its store.
CUBE_PROP = "soilsuite:cube"
REFLECTANCE_SCALE = 1e-4
EPOCH = dt.date(1970, 1, 1)


class CubeWarning(UserWarning):
    """A composite from a cube that differs from one from the archive (see the module docstring)."""


# ----------------------------------------------------------------------------- detection
def _zarr_meta(path: Path) -> dict | None:
    """The root metadata of a Zarr store at ``path`` (v3 ``zarr.json`` or v2 ``.zattrs``), else None."""
    if (path / "zarr.json").is_file():
        try:
            return json.loads((path / "zarr.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"Zarr store {path}: zarr.json cannot be read: {exc}") from exc
    if (path / ".zgroup").is_file():
        attrs = path / ".zattrs"
        return {"zarr_format": 2, "attributes": json.loads(attrs.read_text()) if attrs.is_file() else {}}
    return None


def is_cube_source(source: str | Path) -> bool:
    """True if ``source`` names a Zarr store (a folder with ``zarr.json``/``.zgroup``, or a
    path ending in ``.zarr``): ``composite`` then reads it with this module."""
    s = str(source)
    if s.startswith(("http://", "https://")):
        return False
    p = Path(s)
    return s.rstrip("/").endswith(".zarr") or (p.is_dir() and _zarr_meta(p) is not None)


@dataclass(frozen=True)
class CubeInfo:
    """What a cube's root attributes say (:data:`CUBE_ATTR`)."""

    path: Path
    crs: str
    transform: tuple[float, ...]  # affine a, b, c, d, e, f of the reflectance grid
    shape: tuple[int, int]  # (y, x)
    resolution: float
    halo_px: int
    chunk_px: int
    attrs: dict = field(default_factory=dict, compare=False)

    @property
    def geobox(self):
        """The reflectance grid (odc-geo GeoBox)."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        return GeoBox(self.shape, Affine(*self.transform), self.crs)


#: Variables a cube must hold: bands, SCL and the per-date metadata.
REQUIRED = (*BANDS, QUALITY, "x", "y", "x_scl", "y_scl", "time", "solar_day", "sun_zenith", "spatial_ref")


def open_cube(path: str | Path) -> CubeInfo:
    """Check a cube and read its grid.

    Raises
    ------
    InputError
        The path is no Zarr store, a Zarr store that ``soilsuite ingest`` did not write, an
        unfinished ingest, or a store missing variables (the message names them).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"cube {p}: no such Zarr store (write one with `soilsuite ingest SOURCE --out {p.name}`)")
    meta = _zarr_meta(p) if p.is_dir() else None
    if meta is None:
        raise InputError(f"cube {p}: not a Zarr store (no zarr.json); write one with `soilsuite ingest`")
    attrs = (meta.get("attributes") or {}).get(CUBE_ATTR)
    if meta.get("zarr_format") != 3 or not isinstance(attrs, dict):
        raise InputError(f"cube {p}: a Zarr store that soilsuite ingest did not write (no {CUBE_ATTR!r} root "
                         "attribute); write one with `soilsuite ingest`")
    if int(attrs.get("format", 0)) > CUBE_FORMAT:
        raise InputError(f"cube {p}: format {attrs.get('format')} is newer than this soilsuite reads ({CUBE_FORMAT})")
    from ..io.manifest import OutputFolder

    m = OutputFolder(p, "ingest").read()
    if m is not None and m.get("state") != "complete":
        raise InputError(f"cube {p}: the ingest that writes it has not finished (run the same ingest command again to finish it)")
    missing = [v for v in REQUIRED if not (p / v / "zarr.json").is_file()]
    if not (p / ITEMS_FILE).is_file():
        missing.append(ITEMS_FILE)
    if missing:
        raise InputError(f"cube {p}: missing variable(s) {', '.join(missing)}; write the cube again with "
                         "`soilsuite ingest --overwrite`")
    try:
        return CubeInfo(p, str(attrs["crs"]), tuple(float(v) for v in attrs["transform"][:6]),
                        (int(attrs["shape"][0]), int(attrs["shape"][1])), float(attrs["resolution"]),
                        int(attrs["halo_px"]), int(attrs["chunk_px"]), attrs)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"cube {p}: attribute {CUBE_ATTR!r} is incomplete ({exc!r})") from exc


def is_cube_item(item) -> bool:
    """True for an item made by :func:`search_cube` (its pixels are in a cube)."""
    return CUBE_PROP in getattr(item, "properties", {})


# ----------------------------------------------------------------------------- items
def search_cube(source: str | Path, *, t0: dt.datetime, t1: dt.datetime,
                bbox: Sequence[float] | None = None) -> list:
    """The items of a cube within a time window and lon/lat bbox, as pystac Items.

    Each keeps the original item's id, time, footprint (so the solar-day grouping and the
    tiles' item lists are the archive's) and properties (so the scene filter applies), with
    ``earthsearch:boa_offset_applied`` (the cube holds offset-corrected values), the cube's
    ``proj:code`` and ``proj:bbox`` (its extent: the default grid is the cube's) and
    :data:`CUBE_PROP`; its assets (B02..B12, SCL) point into the store.
    """
    import pystac

    from .items import _bbox_intersects, _item_interval

    info = open_cube(source)
    x0, y1 = info.transform[2], info.transform[5]
    x1 = x0 + info.transform[0] * info.shape[1]
    y0 = y1 + info.transform[4] * info.shape[0]
    extent = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
    records = json.loads((info.path / ITEMS_FILE).read_text())
    items = []
    for rec in records["items"]:
        d = dict(rec["item"])
        props = {k: v for k, v in d.get("properties", {}).items() if not k.startswith("proj:")}
        props.update({"earthsearch:boa_offset_applied": True, "proj:code": info.crs, "proj:bbox": extent,
                      CUBE_PROP: str(info.path), "soilsuite:solar_day": rec["solar_day"]})
        d["properties"] = props
        d["links"] = []
        d["assets"] = {b: {"href": f"{info.path.as_posix()}/{b}", "type": "application/vnd+zarr"}
                       for b in (*BANDS, QUALITY)}
        d.pop("stac_extensions", None)
        it = pystac.Item.from_dict(d, preserve_dict=False)
        a, b = _item_interval(it)
        if b < t0 or a > t1 or not _bbox_intersects(it.bbox, bbox):
            continue
        items.append(it)
    items.sort(key=lambda it: (_item_interval(it)[0], it.id))
    return items


def cube_crs(items: Sequence) -> str | None:
    """The CRS of the cube the items come from (the default target CRS), or None."""
    for it in items[:1]:
        if is_cube_item(it):
            return str(it.properties["proj:code"])
    return None


# ----------------------------------------------------------------------------- checks
def check_cube_run(cfg, items: Sequence, geobox) -> None:
    """Refuse a composite grid the cube cannot serve; warn where the result differs from the archive's.

    Raises
    ------
    ConfigError
        ``--crs``/``--resolution`` or an area whose grid is not the cube's (other CRS, pixel
        size, or pixels not aligned with the cube's).
    """
    info = open_cube(items[0].properties[CUBE_PROP])
    _window(info, geobox)  # raises on a grid mismatch
    halo = cfg.mask.dilation_px // 2
    if halo > info.halo_px:
        warnings.warn(f"cube {info.path}: its SCL extends {info.halo_px} px beyond the area, less than the "
                      f"cloud dilation needs ({halo} px for --dilation-px {cfg.mask.dilation_px}); clouds beyond it "
                      "are not seen at the edge (ingest with a larger --halo-px)", CubeWarning, stacklevel=2)
    # the cube's items of the same window and area, before the scene filter (and --mgrs)
    t0 = dt.datetime.combine(cfg.start, dt.time.min, tzinfo=dt.UTC)
    t1 = dt.datetime.combine(cfg.end, dt.time.max, tzinfo=dt.UTC)
    per_day: dict[int, set[str]] = {}
    for it in search_cube(info.path, t0=t0, t1=t1, bbox=cfg.bbox):
        per_day.setdefault(int(it.properties["soilsuite:solar_day"]), set()).add(it.id)
    kept: dict[int, set[str]] = {}
    for it in items:
        kept.setdefault(int(it.properties["soilsuite:solar_day"]), set()).add(it.id)
    partial = sorted(d for d, ids in kept.items() if ids != per_day.get(d, ids))
    if partial:
        days = ", ".join(str(EPOCH + dt.timedelta(days=d)) for d in partial[:5])
        warnings.warn(f"cube {info.path}: the scene filter (or --mgrs) keeps only some items of {len(partial)} solar day(s) "
                      f"({days}{', ...' if len(partial) > 5 else ''}); the cube holds each day fused, so these days "
                      "are used whole (ingest with this scene filter for the archive's result)", CubeWarning,
                      stacklevel=2)


def _window(info: CubeInfo, geobox) -> tuple[int, int]:
    """Row and column of ``geobox``'s first pixel in the cube's reflectance grid.

    Raises
    ------
    ConfigError
        Another CRS or pixel size, a rotated grid, or an offset that is not whole pixels.
    """
    from pyproj import CRS

    if CRS.from_user_input(str(geobox.crs)) != CRS.from_user_input(info.crs):
        raise ConfigError(f"--crs: the cube {info.path} is in {info.crs}, the composite grid in {geobox.crs}; "
                          "leave --crs out (a cube is read on its own grid) or ingest again in that CRS")
    a = tuple(geobox.affine)[:6]
    c = info.transform
    if abs(a[0] - c[0]) > 1e-9 * abs(c[0]) or abs(a[4] - c[4]) > 1e-9 * abs(c[4]) or a[1] or a[3]:
        raise ConfigError(f"--resolution: the cube {info.path} has {c[0]:g} m pixels, the composite grid "
                          f"{a[0]:g} m; leave --resolution out or ingest again at that resolution")
    col = (a[2] - c[2]) / c[0]
    row = (a[5] - c[5]) / c[4]
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        raise ConfigError(f"the composite grid of the area is not aligned with the cube {info.path} "
                          f"(offset {col:.3f}, {row:.3f} px); give the area in the cube's CRS or leave it out")
    return int(round(row)), int(round(col))


def tile_side_for_cube(source: str, side: int) -> int:
    """The processing tile side for ``source``: ``side`` itself unless ``source`` is a cube,
    then ``side`` rounded down to a multiple of the cube's chunk side, or below one chunk to
    the largest power-of-two fraction of it that fits (at least 64 px), so that a tile of a
    grid anchored at the cube's origin reads whole chunks, each once."""
    if not is_cube_source(source):
        return side
    chunk = open_cube(source).chunk_px
    if side >= chunk:
        return side // chunk * chunk
    part = chunk
    while part > side and part > 64:
        part //= 2
    return part


# ----------------------------------------------------------------------------- reading
@lru_cache(maxsize=8)
def _open_cached(path: str, mtime_ns: int) -> CubeInfo:
    """:func:`open_cube` once per store and version of its metadata (a worker reads many tiles)."""
    return open_cube(path)


#: Chunks zarr's codec pipeline decodes per batch when a tile reads the cube
#: (``codec_pipeline.batch_size``; zarr's default 1). A tile reads hundreds of chunks (1 date
#: each), and zarr's per-chunk Python and asyncio work costs several times their Blosc/Zstd
#: decode; batching cuts the read's user CPU by 14-19 % (the 1000 px x 34 date bench cube:
#: 2.15-2.39 -> 1.85-2.00 s with 512 px chunks, 3.97-4.39 -> 3.23-3.54 s with 256 px;
#: docs/performance.md, "FORCE comparison").
READ_BATCH = 256

#: Serialises :func:`_arrays`' change of zarr's (process-wide) configuration, so that two worker
#: threads opening the cube at once cannot leave the setting behind.
_OPEN_LOCK = threading.Lock()


@lru_cache(maxsize=8)
def _arrays(path: str, mtime_ns: int):
    """The cube's pixel arrays (name -> zarr Array, opened once per store and metadata version,
    with a codec pipeline of :data:`READ_BATCH`) and its day index (days since the epoch -> position)."""
    import zarr

    # zarr builds an array's codec pipeline when it opens it: the arrays keep the batch size, and
    # the global setting is changed only while they open
    with _OPEN_LOCK, zarr.config.set({"codec_pipeline.batch_size": READ_BATCH}):
        g = zarr.open_group(path, mode="r", zarr_format=3)
        arrays = {name: g[name] for name in CUBE_ASSETS.values()}
    days = np.asarray(g["solar_day"][:], np.int64)
    return arrays, {int(d): i for i, d in enumerate(days)}


def _read(arr, tidx: np.ndarray, r0: int, c0: int, ny: int, nx: int, fill) -> np.ndarray:
    """``arr[tidx, r0:r0+ny, c0:c0+nx]`` with ``fill`` where the window leaves the array."""
    n_y, n_x = arr.shape[1:]
    out = np.full((len(tidx), ny, nx), fill, arr.dtype)
    ya, yb = max(r0, 0), min(r0 + ny, n_y)
    xa, xb = max(c0, 0), min(c0 + nx, n_x)
    if len(tidx) and ya < yb and xa < xb:
        # runs of consecutive dates as plain slices (zarr's basic indexing costs ~1.5x less CPU
        # than an orthogonal selection of the same chunks)
        breaks = np.flatnonzero(np.diff(tidx) != 1) + 1
        for run in np.split(np.arange(len(tidx)), breaks):
            t0, t1 = int(tidx[run[0]]), int(tidx[run[-1]]) + 1
            out[run[0]:run[-1] + 1, ya - r0:yb - r0, xa - c0:xb - c0] = arr[t0:t1, ya:yb, xa:xb]
    return out


#: The cube's variables as assets (our name -> variable name), for
#: :func:`soilsuite.sources.stac.observation_meta` of a cube's items.
CUBE_ASSETS = {b: b for b in (*BANDS, QUALITY)}


def read_tile(items: Sequence, geobox, halo: int, meta):
    """The kernel inputs of one tile from a cube: ``(refl, scl)``.

    ``meta`` is :func:`soilsuite.sources.stac.observation_meta` of the tile's items with
    :data:`CUBE_ASSETS` (their solar days, sun zenith; offset 0: applied at ingest). Returns
    ``refl`` int16 ``[T, B, Y, X]`` on ``geobox`` (offset-corrected x 10000, -32768 outside the
    cube) and ``scl`` uint8 ``[T, Y + 2 halo, X + 2 halo]`` (0 outside the cube's padded grid).
    """
    path = str(items[0].properties[CUBE_PROP])
    mtime = (Path(path) / "zarr.json").stat().st_mtime_ns
    info = _open_cached(path, mtime)
    arrays, index = _arrays(path, mtime)
    try:
        tidx = np.array([index[(d - EPOCH).days] for d in meta.dates], np.int64)
    except KeyError as exc:
        raise InputError(f"cube {path}: no date {EPOCH + dt.timedelta(days=exc.args[0])} although its items list "
                         "it (a damaged cube: ingest again with --overwrite)") from None
    r0, c0 = _window(info, geobox)
    ny, nx = geobox.shape.y, geobox.shape.x
    refl = np.empty((len(tidx), len(BANDS), ny, nx), np.int16)
    for b, name in enumerate(BANDS):
        refl[:, b] = _read(arrays[name], tidx, r0, c0, ny, nx, REFL_NODATA)
    h = info.halo_px
    scl = _read(arrays[QUALITY], tidx, r0 + h - halo, c0 + h - halo, ny + 2 * halo, nx + 2 * halo, 0)
    return refl, scl


__all__ = ["CUBE_ATTR", "CubeInfo", "CubeWarning", "check_cube_run", "cube_crs", "is_cube_item", "is_cube_source",
           "open_cube", "read_tile", "search_cube", "tile_side_for_cube"]
