"""FORCE interoperability: export a Sentinel-2 L2A STAC archive as a FORCE Level-2 datacube.

FORCE (Frantz 2019, *Remote Sens.* 11:1124; https://github.com/davidfrantz/force) keeps its
analysis-ready data in a datacube: a folder with a ``datacube-definition.prj`` and one folder
per tile (``X0012_Y0034``), holding one file pair per date and sensor,
``YYYYMMDD_LEVEL2_SEN2A_BOA.tif`` (bottom-of-atmosphere reflectance) and
``YYYYMMDD_LEVEL2_SEN2A_QAI.tif`` (quality bits). This module writes that layout from any STAC
source soilsuite reads, so FORCE users can run ``force-higher-level`` on the same observations
soilsuite composites, and compare.

Everything FORCE-specific here was checked against FORCE's source (davidfrantz/force):

- ``datacube-definition.prj``: ``write_datacube_def`` in ``src/cross-level/cube-cl.c`` writes 7
  lines, each with ``fprintf("%s\\n")`` / ``fprintf("%f\\n")``: (1) the projection as WKT,
  (2) origin longitude, (3) origin latitude, (4) origin x and (5) origin y in the projection,
  (6) tile size and (7) block ("chunk") size in projection units. ``read_datacube_def`` reads
  them back in that order; docs/source/components/lower-level/level2/format.rst ("Data Cube
  definition") shows the same 7 lines with a one-line WKT1 (``PROJCS[...]``).
- Tiles: ``tile_level2`` in ``src/lower-level/cube-ll.c``: the upper-left corner of tile
  ``X{tx}_Y{ty}`` is ``(origin_x + tx * tile_size, origin_y - ty * tile_size)`` (X grows east, Y
  grows south), the folder is ``X%04d_Y%04d``, every file covers the whole tile (pixels outside
  the data are nodata), and a tile is written only if it holds a pixel that is not nodata.
- BOA: int16, scale 10000, nodata -9999; Sentinel-2 bands in the order BLUE, GREEN, RED,
  REDEDGE1, REDEDGE2, REDEDGE3, BROADNIR (B08), NIR (B8A), SWIR1, SWIR2 (format.rst, table
  "Sentinel-2 A/B MultiSpectral Instrument"; the band domains of ``parse_metadata_sentinel2`` in
  ``src/lower-level/meta-ll.c``, without ULTRABLUE, WVP and CIRRUS). Band descriptions are the
  domain names, as ``write_brick`` (``src/cross-level/brick-cl.c``) sets them, and each band
  carries the ``FORCE`` metadata domain items Domain, Wavelength, Wavelength_unit, Scale,
  Sensor, Date.
- QAI: int16 bit flags, nodata value 1 (``set_brick_nodata(qai, 0, 1)``); bit positions from
  ``enum _QAI_BIT_*`` in ``src/cross-level/enum-cl.h`` (0 nodata, 1-2 cloud state, 3 cloud
  shadow, 4 snow, 5 water, 6-7 aerosol, 8 subzero, 9 saturation, 10 high sun zenith,
  11-12 illumination, 13 slope, 14 water vapour); the high-sun-zenith flag is set above
  75 degrees (``xy_szen > 1.308997`` rad in ``src/lower-level/sunview-ll.c``; format.rst: "sun
  elevation < 15 degrees").
- GeoTIFF options: ``default_gdaloptions`` / ``update_gdaloptions_blocksize`` in
  ``src/cross-level/gdalopt-cl.c``: ``COMPRESS=LZW``, ``PREDICTOR=2``, ``INTERLEAVE=BAND``,
  ``BIGTIFF=YES``, blocks as wide as the tile and ``block_size / resolution`` rows high
  (format.rst: "strips that are as wide as the TILE_SIZE and as high as the BLOCK_SIZE").

The QAI is derived from Sen2Cor's scene classification (SCL); see :data:`SCL_TO_QAI` and
``docs/force.md`` for the mapping and its reasons.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..sensors import REFL_NODATA, SENTINEL2_L2A

#: FORCE Level 2 written here is Sentinel-2 (``SEN2x``): the sensor whose bands are exported.
SENSOR = SENTINEL2_L2A
BANDS = SENSOR.band_names
WAVELENGTH_UM = SENSOR.wavelength_um
#: FORCE's Sentinel-2 band names (band domains), in FORCE's Level-2 band order. Same order as
#: ``SENSOR.band_names`` (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12).
FORCE_BANDS: tuple[str, ...] = (
    "BLUE", "GREEN", "RED", "REDEDGE1", "REDEDGE2", "REDEDGE3", "BROADNIR", "NIR", "SWIR1", "SWIR2",
)
FORCE_BAND_OF: dict[str, str] = dict(zip(BANDS, FORCE_BANDS, strict=True))

BOA_NODATA = -9999
BOA_SCALE = 10000
#: Nodata value of the QAI product (a pixel with only bit 0 set).
QAI_NODATA = 1
DATACUBE_DEFINITION = "datacube-definition.prj"

# QAI bit positions (FORCE src/cross-level/enum-cl.h, _QAI_BIT_*).
QAI_BIT_OFF = 0
QAI_BIT_CLD = 1  # 2 bits: 0 clear, 1 less confident, 2 confident, 3 cirrus
QAI_BIT_SHD = 3
QAI_BIT_SNW = 4
QAI_BIT_WTR = 5
QAI_BIT_AOD = 6  # 2 bits
QAI_BIT_SUB = 8
QAI_BIT_SAT = 9
QAI_BIT_SUN = 10
QAI_BIT_ILL = 11  # 2 bits: 0 good, 1 medium, 2 poor, 3 shadow
QAI_BIT_SLP = 13
QAI_BIT_WVP = 14

QAI_CLOUD_LESS_CONFIDENT = 1 << QAI_BIT_CLD
QAI_CLOUD_CONFIDENT = 2 << QAI_BIT_CLD
QAI_CLOUD_CIRRUS = 3 << QAI_BIT_CLD
QAI_ILLUMINATION_SHADOW = 3 << QAI_BIT_ILL

#: Sun zenith (degrees) above which FORCE sets the high-sun-zenith bit (sunview-ll.c: 1.308997 rad).
HIGH_SUN_ZENITH_DEG = 75.0

#: Sen2Cor SCL class -> FORCE QAI bits (per pixel). Classes not listed (4 vegetation,
#: 5 not vegetated) are clear. Choices where FORCE has no direct equivalent:
#: 1 saturated/defective -> saturation bit; 2 dark area / topographic shadow -> illumination
#: state 3 "shadow"; 7 unclassified and 8 cloud medium probability -> cloud "less confident"
#: (FORCE's buffered/uncertain cloud class; soilsuite treats both as invalid, and FORCE's default
#: screening drops this class too); 9 cloud high probability -> "confident"; 10 thin cirrus ->
#: "cirrus". SCL 0 (no data) -> nodata (the QAI is then exactly 1 and all BOA bands -9999).
SCL_TO_QAI: dict[int, int] = {
    0: 1 << QAI_BIT_OFF,
    1: 1 << QAI_BIT_SAT,
    2: QAI_ILLUMINATION_SHADOW,
    3: 1 << QAI_BIT_SHD,
    6: 1 << QAI_BIT_WTR,
    7: QAI_CLOUD_LESS_CONFIDENT,
    8: QAI_CLOUD_LESS_CONFIDENT,
    9: QAI_CLOUD_CONFIDENT,
    10: QAI_CLOUD_CIRRUS,
    11: 1 << QAI_BIT_SNW,
}

_TILE_RE = re.compile(r"^X(-?\d{4})_Y(-?\d{4})$")
_FILE_RE = re.compile(r"^(\d{8})_LEVEL2_(\w{5})_(BOA|QAI)\.tif$")


# ----------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class ForceGrid:
    """A FORCE datacube grid: projection, origin (upper-left corner of tile X0000_Y0000), sizes.

    Attributes
    ----------
    crs_wkt : str
        Projection as one-line WKT (GDAL's WKT1, as FORCE writes it).
    origin_x, origin_y : float
        Grid origin in projection units (m).
    origin_lon, origin_lat : float
        The same origin in degrees (WGS 84).
    tile_size, block_size : float
        Tile side and block (strip) height in projection units (m).
    """

    crs_wkt: str
    origin_x: float
    origin_y: float
    origin_lon: float
    origin_lat: float
    tile_size: float
    block_size: float

    def tile_ul(self, tx: int, ty: int) -> tuple[float, float]:
        """Upper-left corner (x, y) of tile ``X{tx}_Y{ty}`` (cube-ll.c ``tile_level2``)."""
        return self.origin_x + tx * self.tile_size, self.origin_y - ty * self.tile_size

    def tile_index(self, x: float, y: float) -> tuple[int, int]:
        """Tile (tx, ty) containing the point (x, y): X grows east, Y grows south."""
        return (int(math.floor((x - self.origin_x) / self.tile_size)),
                int(math.floor((self.origin_y - y) / self.tile_size)))

    def tile_geobox(self, tx: int, ty: int, resolution: float):
        """odc-geo GeoBox of a whole tile at ``resolution``."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        n = int(round(self.tile_size / resolution))
        x0, y0 = self.tile_ul(tx, ty)
        return GeoBox((n, n), Affine(resolution, 0.0, x0, 0.0, -resolution, y0), self.crs_wkt)

    def to_prj(self) -> str:
        """Text of ``datacube-definition.prj`` (7 lines, cube-cl.c ``write_datacube_def``)."""
        values = (self.origin_lon, self.origin_lat, self.origin_x, self.origin_y, self.tile_size, self.block_size)
        return self.crs_wkt + "\n" + "".join(f"{v:f}\n" for v in values)

    @classmethod
    def from_prj(cls, path: str | Path) -> ForceGrid:
        """Read a FORCE ``datacube-definition.prj`` (a file or the datacube folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / DATACUBE_DEFINITION
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise InputError(f"FORCE datacube definition {path}: cannot be read: {exc}") from exc
        # FORCE cuts each line at '\r', '\n' or '#' (cube-cl.c read_datacube_def)
        lines = [re.split(r"[#\r]", ln, maxsplit=1)[0].strip() for ln in lines]
        if len(lines) < 7:
            raise InputError(f"FORCE datacube definition {path}: expected 7 lines (WKT, lon, lat, x, y, "
                             f"tile size, block size), found {len(lines)}")
        try:
            lon, lat, x, y, ts, bs = (float(v) for v in lines[1:7])
        except ValueError:
            raise InputError(f"FORCE datacube definition {path}: lines 2-7 must be numbers, found {lines[1:7]}") from None
        return cls(lines[0], x, y, lon, lat, ts, bs)


def make_grid(crs: str, origin_xy: tuple[float, float], tile_size: float, block_size: float) -> ForceGrid:
    """A :class:`ForceGrid` in ``crs`` with its origin at ``origin_xy`` (projection units)."""
    from pyproj import Transformer
    from rasterio.crs import CRS

    try:
        rcrs = CRS.from_user_input(crs)
    except Exception as exc:
        raise ConfigError(f"crs {crs!r}: not a CRS GDAL understands: {exc}") from exc
    if not rcrs.is_projected:
        raise ConfigError(f"crs {crs!r}: FORCE datacubes need a projected CRS with units of metres")
    lon, lat = Transformer.from_crs(rcrs, "EPSG:4326", always_xy=True).transform(*origin_xy)
    if not (np.isfinite(lon) and np.isfinite(lat)):
        raise ConfigError(f"origin {origin_xy} in {crs}: cannot be transformed to longitude/latitude")
    return ForceGrid(rcrs.to_wkt(), float(origin_xy[0]), float(origin_xy[1]), float(lon), float(lat),
                     float(tile_size), float(block_size))


# ----------------------------------------------------------------------------- QAI
def qai_from_scl(scl: np.ndarray, refl: np.ndarray, sun_zenith: float) -> np.ndarray:
    """FORCE QAI bits of one observation from Sen2Cor's SCL and the reflectance.

    Parameters
    ----------
    scl : numpy.ndarray
        uint8 [Y, X] scene classification (0 = no data).
    refl : numpy.ndarray
        int16 [B, Y, X] offset-corrected reflectance x 10000, ``REFL_NODATA`` where missing.
    sun_zenith : float
        Scene sun zenith (degrees).

    Returns
    -------
    numpy.ndarray
        int16 [Y, X]: :data:`SCL_TO_QAI` bits, plus subzero (any band < 0), saturation (any band
        > 10000, as FORCE: "surface reflectance estimate in any band is > 1") and high sun zenith
        (``sun_zenith > 75``). Nodata pixels (SCL 0 or any band missing) are exactly 1.
    """
    lut = np.zeros(256, np.int16)
    for cls, bits in SCL_TO_QAI.items():
        lut[cls] = bits
    qai = lut[scl]
    missing = (scl == 0) | (refl == REFL_NODATA).any(axis=0)
    qai |= np.where((refl < 0).any(axis=0), np.int16(1 << QAI_BIT_SUB), np.int16(0))
    qai |= np.where((refl > BOA_SCALE).any(axis=0), np.int16(1 << QAI_BIT_SAT), np.int16(0))
    if float(sun_zenith) > HIGH_SUN_ZENITH_DEG:
        qai |= np.int16(1 << QAI_BIT_SUN)
    qai[missing] = QAI_NODATA
    return qai


def qai_nodata(qai: np.ndarray) -> np.ndarray:
    """Bit 0 (no data) of a QAI array."""
    return (qai & (1 << QAI_BIT_OFF)) != 0


def qai_cloud(qai: np.ndarray) -> np.ndarray:
    """Cloud state (bits 1-2): 0 clear, 1 less confident, 2 confident, 3 cirrus."""
    return (qai >> QAI_BIT_CLD) & 3


# ----------------------------------------------------------------------------- result
@dataclass
class ForceExportResult:
    """What :func:`export_force` wrote."""

    out: Path
    prj_path: Path
    grid: ForceGrid
    resolution: float
    tiles: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)
    n_items_found: int = 0
    n_items_used: int = 0
    skipped_empty: int = 0
    already_complete: bool = False  # the folder held a finished export of the same parameters

    def summary(self):
        """A rich table of the export."""
        from rich.table import Table

        t = Table(title=f"FORCE Level-2 datacube -> {self.out}", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("grid", f"{self.prj_path.name}: tiles {self.grid.tile_size:g} m, blocks {self.grid.block_size:g} m, "
                  f"{self.resolution:g} m pixels")
        t.add_row("origin", f"x {self.grid.origin_x:f}, y {self.grid.origin_y:f} "
                  f"(lon {self.grid.origin_lon:f}, lat {self.grid.origin_lat:f})")
        t.add_row("scenes", f"{self.n_items_found} found, {self.n_items_used} used")
        t.add_row("tiles", ", ".join(self.tiles) or "none")
        t.add_row("dates", f"{len(self.dates)} ({self.dates[0]} .. {self.dates[-1]})" if self.dates else "0")
        t.add_row("files", f"{len(self.files)} (+ {self.skipped_empty} tile-dates without data not written)")
        return t


# ----------------------------------------------------------------------------- export
def sensor_id(items: Sequence) -> str:
    """FORCE sensor id (SEN2A/SEN2B/SEN2C/SEN2D) from the items' ``platform``; SEN2A if unknown."""
    for it in items:
        for text in (str(it.properties.get("platform", "")), it.id):
            m = re.search(r"sentinel-?2([a-d])\b", text, re.IGNORECASE) or re.match(r"^S2([A-D])_", text)
            if m:
                return f"SEN2{m.group(1).upper()}"
    return "SEN2A"


def _area(items: Sequence, bbox: Sequence[float] | None):
    """Area as an odc-geo Geometry in EPSG:4326: the bbox, else the union of item footprints."""
    from odc.geo.geom import Geometry, box

    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ConfigError(f"bbox must be lon/lat (west, south, east, north) with west<east, south<north; got {tuple(bbox)}")
        return box(w, s, e, n, "EPSG:4326")
    from shapely.geometry import box as sbox
    from shapely.geometry import shape
    from shapely.ops import unary_union

    shapes = [shape(it.geometry) if it.geometry else sbox(*it.bbox) for it in items]
    return Geometry(unary_union(shapes), "EPSG:4326")


def _items_over(items: Sequence, area_lonlat) -> list:
    """Items whose footprint (geometry, else bbox) intersects an EPSG:4326 geometry."""
    from shapely.geometry import box, shape

    geom = area_lonlat.geom
    keep = []
    for it in items:
        fp = shape(it.geometry) if it.geometry else (box(*it.bbox) if it.bbox else None)
        if fp is None or fp.intersects(geom):
            keep.append(it)
    return keep


def _gtiff_profile(n: int, count: int, grid: ForceGrid, transform, nodata: int, block_rows: int) -> dict:
    from rasterio.crs import CRS

    return dict(
        driver="GTiff", width=n, height=n, count=count, dtype="int16", crs=CRS.from_wkt(grid.crs_wkt),
        transform=transform, nodata=nodata, compress="LZW", predictor=2, interleave="band",
        bigtiff="YES", blockysize=block_rows,
    )


def _write_tif(path: Path, data: np.ndarray, profile: dict, descriptions: Sequence[str],
               band_tags: Sequence[dict], tags: dict) -> None:
    """Write to ``<path>.tmp`` (no PAM side-car), then rename over ``path``."""
    import rasterio

    tmp = path.with_name(path.name + ".tmp")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, (desc, bt) in enumerate(zip(descriptions, band_tags, strict=True), start=1):
                dst.set_band_description(i, desc)
                dst.update_tags(i, ns="FORCE", **bt)
            dst.update_tags(ns="FORCE", **tags)
    os.replace(tmp, path)


def is_force_output(rel: str) -> bool:
    """True where an export writes (the datacube definition and the ``X####_Y####`` tile
    folders): a file there that soilsuite did not write makes the export refuse."""
    parts = rel.split("/")
    return rel == DATACUBE_DEFINITION or (len(parts) > 1 and bool(_TILE_RE.match(parts[0])))


def _export_hash(**params: Any) -> str:
    """Hash of every parameter that changes the exported files: a resume needs the same."""
    d = {k: (str(v) if isinstance(v, (dt.date, Path)) else v) for k, v in params.items()}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def export_force(
    source: str | Path,
    *,
    out: str | Path,
    start: str | dt.date,
    end: str | dt.date,
    bbox: Sequence[float] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    force_tile_m: float | None = None,
    force_block_m: float | None = None,
    origin: tuple[float, float] | None = None,
    max_cloud_cover: float | None = None,
    min_sun_elevation: float | None = None,
    collection: str | None = None,
    overwrite: bool = False,
    force_clean: bool = False,
    progress: bool = False,
    **renamed: float,
) -> ForceExportResult:
    """Export a Sentinel-2 L2A STAC archive (time window, area) as a FORCE Level-2 datacube.

    Writes ``out/datacube-definition.prj`` and, per FORCE tile that holds data, a folder
    ``X####_Y####`` with ``YYYYMMDD_LEVEL2_SEN2x_BOA.tif`` (int16 reflectance x 10000,
    offset-corrected ``DN + BOA_ADD_OFFSET``, nodata -9999, 10 bands in FORCE order) and
    ``YYYYMMDD_LEVEL2_SEN2x_QAI.tif`` (int16 FORCE quality bits from SCL, nodata 1) per date.
    See the module docstring for the FORCE sources of every convention.

    Parameters
    ----------
    source : str or Path
        STAC catalog/collection JSON (or its folder), or a STAC API URL (then give
        ``collection``).
    out : str or Path
        Datacube folder (created).
    start, end : date or str
        First and last day (inclusive, UTC).
    bbox : (west, south, east, north), optional
        Area in degrees; default: the union of the items' footprints.
    crs : str, optional
        Projected target CRS (e.g. ``"EPSG:3035"``); default: the UTM zone of the area centre.
    resolution : float, optional
        Pixel size (m; default 20); 10 m bands are averaged onto it, SCL taken by nearest
        neighbour.
    force_tile_m, force_block_m : float, optional
        FORCE TILE_SIZE and BLOCK_SIZE (m; default 30000 and 3000): multiples of
        ``resolution``, tile a multiple of block. (``tile_size_m`` and ``block_size_m``, the
        names of earlier releases, still work with a :class:`DeprecationWarning`.)
    origin : (x, y), optional
        Grid origin (upper-left corner of tile X0000_Y0000) in the target CRS (m). Default: the
        area's upper-left corner snapped outward to multiples of the tile size, so tile edges
        are multiples of ``force_tile_m``. Pass an existing cube's origin to extend it.
    max_cloud_cover, min_sun_elevation : float, optional
        Scene filter (``eo:cloud_cover`` %, ``view:sun_elevation`` degrees); default:
        :class:`~soilsuite.config.SceneFilter`. (Options left None take the default of
        :class:`~soilsuite.config.ForceExportConfig`, the one place for them.)
    collection : str, optional
        Collection id (required for a STAC API).
    overwrite : bool
        Replace an earlier export in ``out``: only the files soilsuite wrote are removed, and
        only if no other file is there and none was changed (:mod:`soilsuite.io.manifest`).
        Without it, an interrupted export of the same parameters is resumed (finished tiles
        are kept) and a finished one is left as it is (``already_complete``).
    force_clean : bool
        With ``overwrite``, also replace soilsuite's files that were changed since, and write
        beside files soilsuite did not write (kept; one that stands where an output goes
        makes the export refuse).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ForceExportResult
        Tiles, files and dates written.

    Raises
    ------
    OutputExistsError
        ``out`` holds another export and ``overwrite`` is False, or files soilsuite did not write.
    ConfigError
        Inconsistent sizes, bad CRS or dates.
    InputError
        No usable STAC items, missing assets, unreadable data.
    """
    from ..config import (
        FORCE_RENAMED,
        ForceExportConfig,
        SceneFilter,
        given_options,
        parse_date,
        renamed_options,
    )
    from ..sources import stac as S

    given = renamed_options({**renamed, **given_options(force_tile_m=force_tile_m, force_block_m=force_block_m)}, FORCE_RENAMED)
    if unknown := set(given) - {"force_tile_m", "force_block_m"}:
        raise TypeError(f"export_force() got unexpected keyword argument(s) {sorted(unknown)}")
    start_d, end_d = parse_date(start, "start"), parse_date(end, "end")
    if end_d < start_d:
        raise ConfigError(f"end {end_d} is before start {start_d}")
    cfg = ForceExportConfig(
        source=str(source), out=Path(out), start=start_d, end=end_d, bbox=bbox, crs=crs, origin=origin,
        collection=collection, overwrite=overwrite, force_clean=force_clean,
        scene=SceneFilter(**given_options(max_cloud_cover=max_cloud_cover, min_sun_elevation=min_sun_elevation)),
        **given_options(resolution=resolution, **given),
    )
    res, tile_m, block_m = cfg.resolution, cfg.force_tile_m, cfg.force_block_m
    tol = 1e-6
    if res <= 0:
        raise ConfigError(f"resolution must be > 0 m, got {res:g}")
    for name, v in (("force_tile_m", tile_m), ("force_block_m", block_m)):
        if v <= 0 or abs(v / res - round(v / res)) > tol:
            raise ConfigError(f"{name} must be a positive multiple of the resolution {res:g} m, got {v:g}")
    if abs(tile_m / block_m - round(tile_m / block_m)) > tol:
        raise ConfigError(f"force_tile_m {tile_m:g} must be a multiple of force_block_m {block_m:g} (FORCE rule)")
    scene = cfg.scene

    if bbox is not None:
        _area([], bbox)  # check the bbox before searching
    out = Path(out)
    from .manifest import OutputFolder

    folder = OutputFolder(out, "export-force", namespace=is_force_output)
    params_hash = _export_hash(source=str(source), start=start_d, end=end_d, bbox=list(bbox) if bbox else None,
                               crs=crs, resolution=res, tile_size_m=tile_m,  # the hash keys of earlier releases:
                               block_size_m=block_m, origin=list(origin) if origin else None,  # exports resume
                               scene=scene.model_dump(), collection=collection)

    def check() -> str:
        return folder.check(overwrite=overwrite, force_clean=force_clean, params_hash=params_hash,
                            resumable=True, what="datacube export")

    action = check()  # refuse early, before any work
    if action == "complete":
        return _finished_export(folder)

    found = S.search_items(source, start=start_d, end=end_d, bbox=bbox, collection=collection)
    sel = S.filter_scenes(found, scene)
    if not sel.items:
        raise InputError(
            f"STAC source {source}: no items between {start_d} and {end_d}"
            + (f" over bbox {tuple(bbox)}" if bbox else "")
            + (f" pass the scene filter ({len(found)} found, rejected: {sel.rejection_counts()})" if found else "")
        )
    assets = S.resolve_assets(sel.items)
    area = _area(sel.items, bbox)
    c = area.centroid.coords[0]
    crs = crs or S.utm_crs(c[0], c[1])

    from odc.geo.geom import box as gbox

    try:
        area_m = area.to_crs(crs)
    except Exception as exc:
        raise ConfigError(f"crs {crs!r}: cannot project the area: {exc}") from exc
    minx, miny, maxx, maxy = area_m.boundingbox
    ts = tile_m
    if origin is None:
        origin = (math.floor(minx / ts) * ts, math.ceil(maxy / ts) * ts)
    grid = make_grid(crs, (float(origin[0]), float(origin[1])), ts, block_m)
    n_px = int(round(ts / res))
    block_rows = int(round(grid.block_size / res))

    tx0, ty0 = grid.tile_index(minx, maxy)
    # a right/bottom edge exactly on a tile edge belongs to the tile before it
    tx1 = int(math.ceil((maxx - grid.origin_x) / ts)) - 1
    ty1 = int(math.ceil((grid.origin_y - miny) / ts)) - 1
    plan = []
    for ty in range(ty0, ty1 + 1):
        for tx in range(tx0, tx1 + 1):
            x0, y0 = grid.tile_ul(tx, ty)
            tile_poly = gbox(x0, y0 - ts, x0 + ts, y0, area_m.crs)
            inter = tile_poly.intersection(area_m)
            if inter.is_empty or inter.area <= 0:
                continue
            # pixel window of the area inside the tile, snapped outward to the pixel grid
            ix0, iy0, ix1, iy1 = inter.boundingbox
            c0 = max(0, int(math.floor((ix0 - x0) / res + tol)))
            c1 = min(n_px, int(math.ceil((ix1 - x0) / res - tol)))
            r0 = max(0, int(math.floor((y0 - iy1) / res + tol)))
            r1 = min(n_px, int(math.ceil((y0 - iy0) / res - tol)))
            if c1 > c0 and r1 > r0:
                plan.append((tx, ty, (r0, r1, c0, c1)))

    with folder.lock():
        action = check()  # again, under the lock
        if action == "complete":
            return _finished_export(folder)
        if action == "replace":
            folder.clear(force_clean=force_clean)
        m = folder.start(params_hash=params_hash, keep=action == "resume")
        done: dict[str, list[str]] = dict(m.get("done_tiles", {})) if action == "resume" else {}
        m["done_tiles"] = done
        prj = out / DATACUBE_DEFINITION
        tmp = prj.with_name(prj.name + ".tmp")
        tmp.write_text(grid.to_prj())
        os.replace(tmp, prj)
        m = folder.record([prj], manifest=m)
        result = ForceExportResult(out=out, prj_path=prj, grid=grid, resolution=res,
                                   n_items_found=len(found), n_items_used=len(sel.items))
        _export_tiles(plan, done, folder, m, result, sel, assets, grid, res, block_rows, progress)
        folder.record([], state="complete", manifest=m)
    return result


def _finished_export(folder) -> ForceExportResult:
    """The result of a finished export of the same parameters, from its manifest."""
    m = folder.read() or {}
    prj = folder.path / DATACUBE_DEFINITION
    done = m.get("done_tiles", {})
    res = ForceExportResult(out=folder.path, prj_path=prj, grid=ForceGrid.from_prj(prj),
                            resolution=float(m.get("resolution", 0.0)), already_complete=True)
    res.tiles = sorted((t for t, ds in done.items() if ds), key=_tile_order)  # as planned: rows, then columns
    res.dates = sorted({dt.date.fromisoformat(d) for ds in done.values() for d in ds})
    res.files = [folder.path / r for r in sorted(m.get("files", {})) if r != DATACUBE_DEFINITION]
    return res


def _tile_order(name: str) -> tuple[int, int]:
    """Sort key of a FORCE tile folder name: (Y, X), the order tiles are planned in."""
    m = _TILE_RE.match(name)
    return (int(m.group(2)), int(m.group(1))) if m else (0, 0)


def _export_tiles(plan, done, folder, m, result, sel, assets, grid, res, block_rows, progress) -> None:
    """Export the planned tiles; a tile finished by an earlier attempt (listed in the manifest)
    is not exported again. After each tile the manifest lists its files."""
    out = folder.path
    m["resolution"] = res
    by_id = {it.id: it for it in sel.items}
    dates: set[dt.date] = set()

    from ..progress import progress_bar

    bar = progress_bar(progress, transient=True)
    bar.start()
    task = bar.add_task("FORCE tiles", total=len(plan))
    try:
        for tx, ty, (r0, r1, c0, c1) in plan:
            name = f"X{tx:04d}_Y{ty:04d}"
            if name in done:  # finished by an earlier attempt
                written = [dt.date.fromisoformat(d) for d in done[name]]
                result.files += [out / r for r in sorted(m["files"]) if r.startswith(f"{name}/")]
            else:
                full = grid.tile_geobox(tx, ty, res)
                sub = full[r0:r1, c0:c1]
                items_t = _items_over(sel.items, sub.geographic_extent)
                n_files = len(result.files)
                written = _export_tile(items_t, assets, by_id, full, sub, (r0, r1, c0, c1), grid, out / name,
                                       block_rows, result)
                done[name] = [str(d) for d in written]
                folder.record(result.files[n_files:], manifest=m)
            if written:
                result.tiles.append(name)
                dates.update(written)
            bar.advance(task)
    finally:
        bar.stop()
    result.dates = sorted(dates)


def _int_array(a: np.ndarray, dtype) -> np.ndarray:
    """Integer DN; odc-stac loads an asset without nodata metadata as float with NaN -> 0 (nodata)."""
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a, nan=0.0)
    return a.astype(dtype, copy=False)


def _export_tile(items_t, assets, by_id, full, sub, window, grid: ForceGrid, tile_dir: Path,
                 block_rows: int, result: ForceExportResult) -> list[dt.date]:
    """Load one FORCE tile (clipped to the area) and write its BOA/QAI pairs date by date."""
    import rasterio

    from .. import __version__
    from ..sources import stac as S

    if not items_t:
        return []
    r0, r1, c0, c1 = window
    n = full.shape.y
    meta = S.observation_meta(items_t, assets)
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        ds = S.load_cube(items_t, sub, assets, chunks={"x": 2048, "y": 2048})
        if ds.sizes["time"] != len(meta.dates):
            raise InputError(
                f"odc-stac grouped {ds.sizes['time']} solar days for tile {tile_dir.name}, expected "
                f"{len(meta.dates)} (items {', '.join(it.id for it in items_t[:5])}...)"
            )
        written: list[dt.date] = []
        for t, day in enumerate(meta.dates):
            obs = ds.isel(time=t)[[*BANDS, "SCL"]].compute()
            dn = np.stack([_int_array(obs[b].values, np.uint16) for b in BANDS])
            scl = _int_array(obs["SCL"].values, np.uint8)
            del obs
            refl = S.to_reflectance(dn[None], meta.offset_dn[t : t + 1])[0]
            qai_sub = qai_from_scl(scl, refl, float(meta.sun_zenith[t]))
            has_data = ~qai_nodata(qai_sub)
            if not has_data.any():
                result.skipped_empty += 1
                continue
            boa = np.full((len(BANDS), n, n), BOA_NODATA, np.int16)
            part = np.where(has_data[None], refl, np.int16(BOA_NODATA))
            boa[:, r0:r1, c0:c1] = part
            qai = np.full((n, n), QAI_NODATA, np.int16)
            qai[r0:r1, c0:c1] = qai_sub
            del refl, dn, part

            day_items = [by_id[i] for i in meta.item_ids[t] if i in by_id]
            sensor = sensor_id(day_items)
            stamp = f"{day:%Y%m%d}_LEVEL2_{sensor}"
            when = str(np.datetime_as_string(meta.times[t], unit="s")) + "Z"
            tile_dir.mkdir(parents=True, exist_ok=True)
            common = {"soilsuite_version": __version__, "source_items": ",".join(meta.item_ids[t]),
                      "boa_add_offset_dn": str(int(meta.offset_dn[t])),
                      "sun_zenith_deg": f"{float(meta.sun_zenith[t]):.2f}"}
            boa_path = tile_dir / f"{stamp}_BOA.tif"
            _write_tif(
                boa_path, boa, _gtiff_profile(n, len(BANDS), grid, full.affine, BOA_NODATA, block_rows),
                FORCE_BANDS,
                [{"Domain": FORCE_BAND_OF[b], "Wavelength": f"{WAVELENGTH_UM[b]:.3f}", "Wavelength_unit": "micrometers",
                  "Scale": f"{BOA_SCALE:.3f}", "Sensor": sensor, "Date": when} for b in BANDS],
                {**common, "FORCE_product": "BOA"},
            )
            qai_path = tile_dir / f"{stamp}_QAI.tif"
            _write_tif(
                qai_path, qai[None], _gtiff_profile(n, 1, grid, full.affine, QAI_NODATA, block_rows),
                ["Quality assurance information"],
                [{"Domain": "QAI", "Wavelength": "1.000", "Wavelength_unit": "micrometers", "Scale": "1.000",
                  "Sensor": sensor, "Date": when}],
                {**common, "FORCE_product": "QAI"},
            )
            result.files += [boa_path, qai_path]
            written.append(day)
            del boa, qai
    return written


# ----------------------------------------------------------------------------- reader
def read_force_tile(tile_dir: str | Path):
    """Read the Level-2 BOA/QAI pairs of one FORCE tile folder into memory.

    Parameters
    ----------
    tile_dir : str or Path
        A folder ``X####_Y####`` of a FORCE datacube (ours or FORCE's own).

    Returns
    -------
    xarray.Dataset
        ``BOA`` int16 (time, band, y, x), reflectance x 10000, nodata -9999; ``QAI`` int16
        (time, y, x), nodata 1; coordinates ``time`` (from the file names), ``sensor`` (time),
        ``band`` (FORCE band names), ``x``/``y`` (pixel centres); attrs ``crs`` (WKT),
        ``transform`` (GDAL geotransform order), ``nodata``. Sorted by date, then sensor.
    """
    import rasterio
    import xarray as xr

    tile_dir = Path(tile_dir)
    if not tile_dir.is_dir():
        raise InputError(f"FORCE tile {tile_dir}: no such folder")
    pairs = []
    for p in sorted(tile_dir.glob("*_LEVEL2_*_BOA.tif")):
        m = _FILE_RE.match(p.name)
        if not m:
            continue
        q = p.with_name(p.name.replace("_BOA.tif", "_QAI.tif"))
        if not q.exists():
            raise InputError(f"FORCE tile {tile_dir}: {p.name} has no QAI file {q.name}")
        pairs.append((dt.datetime.strptime(m.group(1), "%Y%m%d"), m.group(2), p, q))
    if not pairs:
        raise InputError(f"FORCE tile {tile_dir}: no *_LEVEL2_*_BOA.tif files")
    pairs.sort(key=lambda x: (x[0], x[1]))
    boas, qais = [], []
    crs = transform = None
    names: tuple[str, ...] = ()
    for _, _, p, q in pairs:
        with rasterio.open(p) as src:
            boas.append(src.read())
            if crs is None:
                crs, transform, shape = src.crs, src.transform, (src.height, src.width)
                names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            elif (src.height, src.width) != shape or src.transform != transform:
                raise InputError(f"FORCE tile {tile_dir}: {p.name} is not on the grid of {pairs[0][2].name}")
        with rasterio.open(q) as src:
            qais.append(src.read(1))
    ny, nx = boas[0].shape[1:]
    xs = transform.c + transform.a * (np.arange(nx) + 0.5)
    ys = transform.f + transform.e * (np.arange(ny) + 0.5)
    return xr.Dataset(
        {"BOA": (("time", "band", "y", "x"), np.stack(boas), {"nodata": BOA_NODATA, "scale": 1 / BOA_SCALE}),
         "QAI": (("time", "y", "x"), np.stack(qais), {"nodata": QAI_NODATA})},
        coords={"time": np.array([d for d, *_ in pairs], dtype="datetime64[ns]"),
                "sensor": ("time", [s for _, s, *_ in pairs]), "band": list(names), "y": ys, "x": xs},
        attrs={"crs": crs.to_wkt(), "transform": tuple(transform.to_gdal()), "tile": tile_dir.name},
    )


__all__ = [
    "BOA_NODATA",
    "DATACUBE_DEFINITION",
    "FORCE_BANDS",
    "ForceExportResult",
    "ForceGrid",
    "HIGH_SUN_ZENITH_DEG",
    "QAI_NODATA",
    "SCL_TO_QAI",
    "export_force",
    "make_grid",
    "qai_from_scl",
    "read_force_tile",
    "sensor_id",
]
