"""Sentinel-2 L2A SAFE products (``*.SAFE`` folders and ``.zip`` files of them) -> STAC items.

The items read like the simulated and Earth Search items in the one loader
(:mod:`soilsuite.sources.stac`): bands at native resolution (B02 B03 B04 B08 from ``R10m``,
B05 B06 B07 B8A B11 B12 and SCL from ``R20m``) as JPEG2000 assets read through the GDAL inside
rasterio's wheel (zip members as ``zip:///abs/x.zip!/X.SAFE/...``, read through GDAL's
``/vsizip/``), ``raster:bands`` scale and offset from the product metadata,
``s2:processing_baseline``, ``eo:cloud_cover``, sun angles, MGRS tile, native grid (``proj:*``)
and a lon/lat footprint.

What is read (standard-library XML parser, any ``psd-NN`` schema version):

- ``MTD_MSIL2A.xml``: ``PRODUCT_START_TIME``, ``PROCESSING_BASELINE``, ``PRODUCT_TYPE``,
  ``GENERATION_TIME``, ``SPACECRAFT_NAME``, ``SENSING_ORBIT_NUMBER``, ``BOA_QUANTIFICATION_VALUE``,
  ``BOA_ADD_OFFSET_VALUES_LIST`` (per band) and ``Cloud_Coverage_Assessment``;
- ``GRANULE/*/MTD_TL.xml``: ``TILE_ID`` (MGRS tile), ``SENSING_TIME`` (the item datetime),
  ``HORIZONTAL_CS_CODE`` (EPSG), ``Size`` and ``Geoposition`` per resolution (the grid),
  ``Mean_Sun_Angle`` zenith/azimuth and ``NODATA_PIXEL_PERCENTAGE``.

Duplicates: products of one MGRS tile and sensing day in several processing baselines (a
reprocessed product next to the original) are all returned, but the older ones carry
``soilsuite:superseded_by`` (the id kept) and a reason; the scene filter
(:func:`soilsuite.sources.stac.filter_scenes`) rejects them, so they appear among the rejected
items of the run record and summary. The newest baseline wins (ties: the latest generation time).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pystac

from ..errors import InputError, OutputExistsError
from ..sensors.sentinel2 import BANDS, SENTINEL2_L2A
from .items import Rejection, _bbox_intersects, _item_interval

#: Band -> ``bandId`` of ``BOA_ADD_OFFSET`` / ``Spectral_Information`` in MTD_MSIL2A.xml.
BAND_ID: dict[str, int] = {
    "B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8,
    "B09": 9, "B10": 10, "B11": 11, "B12": 12,
}
#: Bands (and SCL) read, each at its native resolution (m).
SAFE_BANDS: dict[str, int] = {b: SENTINEL2_L2A.native_res_m[b] for b in SENTINEL2_L2A.all_assets}
#: STAC asset key of each band: the file suffix of the SAFE (``B02_10m``), a CDSE-style key the
#: loader's alias table resolves.
ASSET_KEYS: dict[str, str] = {b: f"{b}_{r}m" for b, r in SAFE_BANDS.items()}
#: Marker properties of an older duplicate product (set by :func:`mark_superseded`).
SUPERSEDED_BY = "soilsuite:superseded_by"
SUPERSEDED_REASON = "soilsuite:superseded_reason"
JP2_MEDIA_TYPE = "image/jp2"
PRODUCT_MTD = "MTD_MSIL2A.xml"
TILE_MTD = "MTD_TL.xml"

_STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
]


# ------------------------------------------------------------------------------ the JP2 driver
def jp2_driver() -> str:
    """Name of the JPEG2000 driver of the GDAL inside rasterio (``"JP2OpenJPEG"`` in the wheels).

    Raises
    ------
    InputError
        No JPEG2000 driver: the SAFE bands cannot be read (the message says what to install).
    """
    import rasterio

    with rasterio.Env() as env:
        drivers = env.drivers()
    for name in ("JP2OpenJPEG", "JP2KAK", "JP2ECW", "JP2MrSID"):
        if name in drivers:
            return name
    raise InputError(
        f"the GDAL {rasterio.__gdal_version__} of rasterio {rasterio.__version__} has no JPEG2000 driver "
        "(JP2OpenJPEG), so Sentinel-2 SAFE bands (.jp2) cannot be read; install rasterio from its PyPI "
        "wheel (pip install --force-reinstall rasterio), which includes JP2OpenJPEG, or convert the "
        "bands to GeoTIFF"
    )


# ------------------------------------------------------------------------------ containers
class _Container:
    """Files of one SAFE product, in a folder or inside a zip (paths relative to the .SAFE root)."""

    def __init__(self, label: str, root: Path, prefix: str = "", zf: zipfile.ZipFile | None = None,
                 zip_path: Path | None = None, names: set[str] | None = None):
        self.label = label  # for messages: the .SAFE folder or "archive.zip!/X.SAFE"
        self.root = root
        self.prefix = prefix
        self.zf = zf
        self.zip_path = zip_path
        self._names = names

    def where(self, rel: str) -> str:
        """The file as a user would name it in a message."""
        return f"{self.zip_path}!/{self.prefix}{rel}" if self.zf is not None else str(self.root / rel)

    def exists(self, rel: str) -> bool:
        if self.zf is not None:
            return f"{self.prefix}{rel}" in self._names
        return (self.root / rel).is_file()

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching ``pattern`` (``*`` within one path component), sorted."""
        if self.zf is None:
            return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file())
        rx = re.compile("^" + re.escape(pattern).replace(r"\*", "[^/]*") + "$")
        n = len(self.prefix)
        return sorted(name[n:] for name in self._names if name.startswith(self.prefix) and rx.match(name[n:]))

    def read(self, rel: str) -> bytes:
        try:
            if self.zf is not None:
                return self.zf.read(f"{self.prefix}{rel}")
            return (self.root / rel).read_bytes()
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise InputError(f"SAFE product {self.label}: cannot read {self.where(rel)}: {exc}") from exc

    def gdal_path(self, rel: str) -> str:
        """Href of the file: its absolute path, or for a zip member rasterio's URL form of GDAL's
        ``/vsizip/`` (``zip:///abs/archive.zip!/X.SAFE/...``, a URL to pystac and the checks)."""
        if self.zf is not None:
            return f"zip://{self.zip_path.absolute()}!/{self.prefix}{rel}"
        return str((self.root / rel).absolute())


def _open_zip(path: Path) -> list[_Container]:
    try:
        zf = zipfile.ZipFile(path)
        names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"SAFE zip {path}: cannot be opened as a zip file: {exc}") from exc
    mtds = sorted(n for n in names if n.endswith("/" + PRODUCT_MTD) or n == PRODUCT_MTD)
    mtds = [n for n in mtds if n.count("/") <= 1]  # <X.SAFE>/MTD_MSIL2A.xml or MTD_MSIL2A.xml
    if not mtds:
        safes = sorted({n.split("/")[0] for n in names if n.split("/")[0].upper().endswith(".SAFE")})
        if safes:
            raise InputError(f"SAFE product {path}!/{safes[0]}: {PRODUCT_MTD} is missing")
        raise InputError(f"SAFE zip {path}: holds no Sentinel-2 L2A product (no */{PRODUCT_MTD})")
    out = []
    for m in mtds:
        prefix = m[: -len(PRODUCT_MTD)]
        label = f"{path}!/{prefix.rstrip('/')}" if prefix else str(path)
        out.append(_Container(label, path, prefix, zf, path, names))
    return out


def _containers(source: str | os.PathLike) -> list[_Container]:
    """The SAFE products of a ``.SAFE`` folder, a ``.zip`` or a folder holding them."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"SAFE source {path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise InputError(f"SAFE source {path}: expected a .SAFE folder, a .zip of one, or a folder of them")
        return _open_zip(path)
    if path.suffix.upper() == ".SAFE" or (path / PRODUCT_MTD).exists():
        if not (path / PRODUCT_MTD).is_file():
            raise InputError(f"SAFE product {path}: {path / PRODUCT_MTD} is missing")
        return [_Container(str(path), path)]
    out: list[_Container] = []
    for child in sorted(path.iterdir()):
        if child.is_dir() and child.suffix.upper() == ".SAFE":
            out.extend(_containers(child))
        elif child.is_file() and child.suffix.lower() == ".zip":
            out.extend(_open_zip(child))
    if not out:
        raise InputError(f"SAFE source {path}: holds no .SAFE folder nor .zip of one")
    return out


def is_safe_source(source: str | os.PathLike) -> bool:
    """True if ``source`` names SAFE input: a ``.SAFE`` folder, a ``.zip``, or a folder holding
    ``*.SAFE`` folders or ``*.zip`` files (and no ``catalog.json``/``collection.json``)."""
    src = str(source)
    if src.startswith(("http://", "https://", "s3://", "gs://")) or src.endswith(".json"):
        return False
    path = Path(src)
    if path.suffix.upper() == ".SAFE" or path.suffix.lower() == ".zip":
        return True
    if not path.is_dir() or (path / "catalog.json").exists() or (path / "collection.json").exists():
        return False
    if (path / PRODUCT_MTD).exists():
        return True
    return any((c.suffix.upper() == ".SAFE" and c.is_dir()) or (c.suffix.lower() == ".zip" and c.is_file())
               for c in path.iterdir())


# ------------------------------------------------------------------------------ XML
def _parse(c: _Container, rel: str) -> ET.Element:
    if not c.exists(rel):
        raise InputError(f"SAFE product {c.label}: {c.where(rel)} is missing")
    try:
        root = ET.fromstring(c.read(rel))
    except ET.ParseError as exc:
        raise InputError(f"SAFE product {c.label}: {c.where(rel)} is not readable XML: {exc}") from exc
    for el in root.iter():  # drop namespaces (psd-14, psd-15, ... all read the same)
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _text(root: ET.Element, path: str, where: str, *, required: bool = True) -> str | None:
    el = root.find(path)
    if el is None or el.text is None or not el.text.strip():
        if required:
            raise InputError(f"{where}: element {path.lstrip('./')} is missing or empty")
        return None
    return el.text.strip()


def _float(root: ET.Element, path: str, where: str, *, required: bool = True) -> float | None:
    t = _text(root, path, where, required=required)
    if t is None:
        return None
    try:
        return float(t)
    except ValueError:
        raise InputError(f"{where}: element {path.lstrip('./')} is not a number: {t!r}") from None


def _time(text: str, where: str, what: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {what} is not an ISO date-time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass
class _ProductMeta:
    start: dt.datetime
    baseline: str
    product_type: str
    generation: str | None
    spacecraft: str
    orbit: int | None
    quantification: float
    offsets: dict[str, float]  # band -> BOA_ADD_OFFSET (DN)
    cloud_cover: float | None
    product_uri: str | None


def _product_meta(c: _Container) -> _ProductMeta:
    root = _parse(c, PRODUCT_MTD)
    where = c.where(PRODUCT_MTD)
    pi = ".//Product_Info"
    ptype = _text(root, f"{pi}/PRODUCT_TYPE", where)
    if "2A" not in ptype.upper():
        raise InputError(f"{where}: PRODUCT_TYPE {ptype!r} is not a Level-2A product (expected S2MSI2A)")
    baseline = _text(root, f"{pi}/PROCESSING_BASELINE", where)
    try:
        pb = float(baseline)
    except ValueError:
        raise InputError(f"{where}: PROCESSING_BASELINE is not a number like 04.00: {baseline!r}") from None
    q = _float(root, ".//QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE", where)
    if q != 10000.0:
        raise InputError(f"{where}: BOA_QUANTIFICATION_VALUE is {q:g}; soilsuite reads L2A DN scaled by 10000")
    offsets: dict[str, float] = {}
    lst = root.find(".//BOA_ADD_OFFSET_VALUES_LIST")
    if lst is not None:
        by_id = {}
        for el in lst.findall("BOA_ADD_OFFSET"):
            try:
                by_id[int(el.get("band_id", el.get("bandId", "")))] = float((el.text or "").strip())
            except ValueError:
                raise InputError(f"{where}: bad BOA_ADD_OFFSET {ET.tostring(el, encoding='unicode').strip()!r}") from None
        for b in BANDS:
            if BAND_ID[b] not in by_id:
                raise InputError(f"{where}: BOA_ADD_OFFSET_VALUES_LIST has no value for {b} (band_id {BAND_ID[b]})")
            offsets[b] = by_id[BAND_ID[b]]
    elif pb >= 4.0:
        raise InputError(f"{where}: processing baseline {baseline} (>= 04.00) but no BOA_ADD_OFFSET_VALUES_LIST")
    else:
        offsets = dict.fromkeys(BANDS, 0.0)
    orbit = _text(root, f"{pi}/Datatake/SENSING_ORBIT_NUMBER", where, required=False)
    return _ProductMeta(
        start=_time(_text(root, f"{pi}/PRODUCT_START_TIME", where), where, "PRODUCT_START_TIME"),
        baseline=baseline, product_type=ptype,
        generation=_text(root, f"{pi}/GENERATION_TIME", where, required=False),
        spacecraft=_text(root, f"{pi}/Datatake/SPACECRAFT_NAME", where),
        orbit=int(orbit) if orbit and orbit.isdigit() else None,
        quantification=q, offsets=offsets,
        cloud_cover=_float(root, ".//Cloud_Coverage_Assessment", where, required=False),
        product_uri=_text(root, f"{pi}/PRODUCT_URI", where, required=False),
    )


@dataclass
class _TileMeta:
    tile: str  # MGRS, e.g. 33UUU
    sensing: dt.datetime
    epsg: int
    grids: dict[int, tuple[float, float, int, int]]  # res -> (ulx, uly, nrows, ncols)
    sun_zenith: float
    sun_azimuth: float
    nodata_pct: float | None
    cloudy_pct: float | None


def _tile_meta(c: _Container, rel: str) -> _TileMeta:
    root = _parse(c, rel)
    where = c.where(rel)
    tile_id = _text(root, ".//General_Info/TILE_ID", where)
    m = re.search(r"_T(\d{2}[C-X][A-Z]{2})_", tile_id + "_")
    if not m:
        raise InputError(f"{where}: TILE_ID {tile_id!r} names no MGRS tile (_T<zone><band><square>_)")
    code = _text(root, ".//Tile_Geocoding/HORIZONTAL_CS_CODE", where)
    try:
        epsg = int(code.upper().replace("EPSG:", ""))
    except ValueError:
        raise InputError(f"{where}: HORIZONTAL_CS_CODE {code!r} is not an EPSG code") from None
    grids = {}
    for res in (10, 20):
        size = root.find(f".//Tile_Geocoding/Size[@resolution='{res}']")
        pos = root.find(f".//Tile_Geocoding/Geoposition[@resolution='{res}']")
        if size is None or pos is None:
            raise InputError(f"{where}: Tile_Geocoding has no Size/Geoposition for resolution {res} m")
        ulx, uly = _float(pos, "ULX", where), _float(pos, "ULY", where)
        xdim, ydim = _float(pos, "XDIM", where), _float(pos, "YDIM", where)
        if (xdim, ydim) != (float(res), -float(res)):
            raise InputError(f"{where}: Geoposition {res} m has XDIM/YDIM {xdim:g}/{ydim:g}, expected {res}/-{res}")
        grids[res] = (ulx, uly, int(_float(size, "NROWS", where)), int(_float(size, "NCOLS", where)))
    return _TileMeta(
        tile=m.group(1), sensing=_time(_text(root, ".//General_Info/SENSING_TIME", where), where, "SENSING_TIME"),
        epsg=epsg, grids=grids,
        sun_zenith=_float(root, ".//Tile_Angles/Mean_Sun_Angle/ZENITH_ANGLE", where),
        sun_azimuth=_float(root, ".//Tile_Angles/Mean_Sun_Angle/AZIMUTH_ANGLE", where),
        nodata_pct=_float(root, ".//Image_Content_QI/NODATA_PIXEL_PERCENTAGE", where, required=False),
        cloudy_pct=_float(root, ".//Image_Content_QI/CLOUDY_PIXEL_PERCENTAGE", where, required=False),
    )


# ------------------------------------------------------------------------------ items
def _footprint(epsg: int, bounds: tuple[float, float, float, float]):
    """Lon/lat polygon and bbox of the native grid extent (corners transformed)."""
    from pyproj import Transformer

    x0, y1, x1, y0 = bounds
    ring_utm = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    lons, lats = Transformer.from_crs(epsg, 4326, always_xy=True).transform(
        [p[0] for p in ring_utm], [p[1] for p in ring_utm])
    ring = [[round(a, 7), round(b, 7)] for a, b in zip(lons, lats, strict=True)]
    return {"type": "Polygon", "coordinates": [ring]}, [min(lons), min(lats), max(lons), max(lats)]


def _granule_items(c: _Container) -> list[pystac.Item]:
    pm = _product_meta(c)
    granules = sorted({g.split("/")[1] for g in c.glob(f"GRANULE/*/{TILE_MTD}")})
    if not granules:
        raise InputError(f"SAFE product {c.label}: {c.where('GRANULE/<granule>/' + TILE_MTD)} is missing")
    name = Path(c.label.split("!/")[-1]).name
    base = name[:-5] if name.upper().endswith(".SAFE") else (pm.product_uri or name).removesuffix(".SAFE")
    items = []
    for g in granules:
        tm = _tile_meta(c, f"GRANULE/{g}/{TILE_MTD}")
        files = {}
        for band, res in SAFE_BANDS.items():
            hits = c.glob(f"GRANULE/{g}/IMG_DATA/R{res}m/*_{band}_{res}m.jp2")
            if not hits:
                raise InputError(f"SAFE product {c.label}: band file "
                                 f"{c.where(f'GRANULE/{g}/IMG_DATA/R{res}m/*_{band}_{res}m.jp2')} is missing")
            files[band] = hits[0]
        offs = {pm.offsets[b] for b in BANDS}
        if len(offs) > 1:
            raise InputError(f"{c.where(PRODUCT_MTD)}: BOA_ADD_OFFSET differs between bands ({sorted(offs)}); "
                             "soilsuite applies one offset per observation")
        iid = base if len(granules) == 1 else f"{base}_{tm.tile}"
        items.append(_make_item(iid, c, g, pm, tm, files))
    return items


def _make_item(iid, c: _Container, granule: str, pm: _ProductMeta, tm: _TileMeta, files: dict[str, str]):
    ulx, uly, ny, nx = tm.grids[20]
    bounds = (ulx, uly - ny * 20.0, ulx + nx * 20.0, uly)
    geometry, bbox = _footprint(tm.epsg, bounds)
    zone, band, square = tm.tile[:2], tm.tile[2], tm.tile[3:]
    platform = pm.spacecraft.lower().replace(" ", "-")
    props = {
        "platform": platform, "constellation": "sentinel-2", "instruments": ["msi"],
        "view:sun_elevation": round(90.0 - tm.sun_zenith, 10), "view:sun_azimuth": tm.sun_azimuth,
        "s2:processing_baseline": pm.baseline, "s2:product_type": pm.product_type,
        "s2:mgrs_tile": tm.tile, "mgrs:utm_zone": int(zone), "mgrs:latitude_band": band, "mgrs:grid_square": square,
        "grid:code": f"MGRS-{tm.tile}", "proj:epsg": tm.epsg, "proj:code": f"EPSG:{tm.epsg}",
        "proj:bbox": list(bounds), "gsd": 10, "s2:product_uri": pm.product_uri or f"{iid}.SAFE",
        "s2:datatake_sensing_start": pm.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "soilsuite:safe": c.label,
    }
    cc = pm.cloud_cover if pm.cloud_cover is not None else tm.cloudy_pct
    if cc is not None:
        props["eo:cloud_cover"] = cc
    if tm.nodata_pct is not None:
        props["s2:nodata_pixel_percentage"] = tm.nodata_pct
    if pm.generation:
        props["s2:generation_time"] = pm.generation
    if pm.orbit is not None:
        props["sat:relative_orbit"] = pm.orbit
    item = pystac.Item(id=iid, geometry=geometry, bbox=bbox, datetime=tm.sensing, properties=props,
                       stac_extensions=list(_STAC_EXTENSIONS), collection="sentinel-2-l2a")
    q = pm.quantification
    for b, res in SAFE_BANDS.items():
        ulx_r, uly_r, ny_r, nx_r = tm.grids[res]
        extra = {"gsd": res, "proj:shape": [ny_r, nx_r], "proj:transform": [float(res), 0.0, ulx_r, 0.0, -float(res), uly_r]}
        if b == "SCL":
            extra["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": res}]
            title, roles = "Scene classification map (SCL)", ["data"]
        else:
            extra["eo:bands"] = [{"name": b, "common_name": SENTINEL2_L2A.common_name[b], "center_wavelength": SENTINEL2_L2A.wavelength_um[b],
                                  "full_width_half_max": SENTINEL2_L2A.fwhm_um[b]}]
            extra["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
                                      "scale": 1.0 / q, "offset": pm.offsets[b] / q}]
            title, roles = f"{SENTINEL2_L2A.common_name[b]} ({b}) - {res}m", ["data", "reflectance"]
        item.add_asset(ASSET_KEYS[b], pystac.Asset(href=c.gdal_path(files[b]), media_type=JP2_MEDIA_TYPE,
                                                   title=title, roles=roles, extra_fields=extra))
    item.add_asset("product_metadata", pystac.Asset(href=c.gdal_path(PRODUCT_MTD), media_type="application/xml",
                                                    title=PRODUCT_MTD, roles=["metadata"]))
    item.add_asset("granule_metadata", pystac.Asset(href=c.gdal_path(f"GRANULE/{granule}/{TILE_MTD}"),
                                                    media_type="application/xml", title=TILE_MTD, roles=["metadata"]))
    return item


def _generation(item: pystac.Item) -> str:
    return str(item.properties.get("s2:generation_time") or "")


def mark_superseded(items: Sequence[pystac.Item]) -> list[Rejection]:
    """Mark older duplicates: products of one MGRS tile and sensing day (UTC) in several
    processing baselines keep the newest (ties: latest ``s2:generation_time``, then id).

    The others get ``soilsuite:superseded_by`` (the id kept) and ``soilsuite:superseded_reason``
    properties, which :func:`soilsuite.sources.stac.filter_scenes` turns into rejections.

    Returns
    -------
    list of Rejection
        One per superseded product, with the reason.
    """
    groups: dict[tuple[str, dt.date], list[pystac.Item]] = {}
    for it in items:
        p = it.properties
        groups.setdefault((str(p.get("s2:mgrs_tile")), _item_interval(it)[0].date()), []).append(it)
    out = []
    for (tile, day), g in sorted(groups.items()):
        if len(g) < 2:
            continue
        g = sorted(g, key=lambda it: (float(it.properties["s2:processing_baseline"]), _generation(it), it.id))
        keep = g[-1]
        pb_new = keep.properties["s2:processing_baseline"]
        for it in g[:-1]:
            reason = (f"duplicate product, older processing baseline (tile {tile} on {day}: baseline "
                      f"{it.properties['s2:processing_baseline']}, kept {keep.id} of baseline {pb_new})")
            it.properties[SUPERSEDED_BY] = keep.id
            it.properties[SUPERSEDED_REASON] = reason
            out.append(Rejection(it.id, reason))
    return out


@dataclass
class SafeScan:
    """The products of a SAFE source as STAC items.

    Attributes
    ----------
    items : list of pystac.Item
        One item per product granule, older duplicates included but marked (sorted by
        datetime then id).
    rejected : list of Rejection
        The older duplicates and why (the scene filter rejects them with the same reason).
    """

    items: list[pystac.Item]
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def kept(self) -> list[pystac.Item]:
        """The items without the superseded duplicates."""
        return [it for it in self.items if SUPERSEDED_BY not in it.properties]


def read_safe(source: str | os.PathLike) -> SafeScan:
    """STAC items of Sentinel-2 L2A SAFE products.

    Parameters
    ----------
    source : path
        A ``.SAFE`` folder, a ``.zip`` holding one (or several), or a folder holding ``*.SAFE``
        folders and/or ``*.zip`` files (not searched recursively).

    Returns
    -------
    SafeScan

    Raises
    ------
    InputError
        No product; a missing or unreadable ``MTD_MSIL2A.xml`` / ``MTD_TL.xml`` or missing
        element; a missing band file; no JPEG2000 driver. The message names the file.
    """
    containers = _containers(source)
    jp2_driver()
    items: list[pystac.Item] = []
    seen: dict[str, str] = {}
    for c in containers:
        for it in _granule_items(c):
            if it.id in seen:
                raise InputError(f"SAFE product {c.label}: the same product as {seen[it.id]} ({it.id})")
            seen[it.id] = c.label
            items.append(it)
    rejected = mark_superseded(items)
    items.sort(key=lambda it: (_item_interval(it)[0], it.id))
    return SafeScan(items, rejected)


def search_safe(source: str | os.PathLike, *, t0: dt.datetime, t1: dt.datetime,
                bbox: Sequence[float] | None = None) -> list[pystac.Item]:
    """Items of a SAFE source within ``[t0, t1]`` (UTC) and a lon/lat bbox, like a static catalog.

    Duplicates are marked on the whole source first, so the newest baseline wins whatever the
    window.
    """
    return [it for it in read_safe(source).items
            if t0 <= _item_interval(it)[0] <= t1 and _bbox_intersects(it.bbox, bbox)]


# ------------------------------------------------------------------------------ index-safe
INDEX_CATALOG_ID = "soilsuite-safe-index"


def index_safe(source: str | os.PathLike, out: str | os.PathLike = "catalog.json", *,
               overwrite: bool = False) -> Path:
    """Write a static STAC catalog of Sentinel-2 L2A SAFE products.

    The catalog (self-contained: ``out`` -> ``sentinel-2-l2a/collection.json`` -> one
    ``<id>/<id>.json`` per product) can be inspected or given to ``soilsuite composite``, which
    reads the same products from it as from the SAFE source itself. Band hrefs are relative to the
    item JSON for ``.SAFE`` folders and absolute ``zip://`` URLs for zips (GDAL's ``/vsizip/``
    cannot resolve a zip relative to a catalog). Superseded duplicates are indexed with their marker
    so the catalog gives the same rejections.

    Parameters
    ----------
    source : path
        ``.SAFE`` folder, ``.zip``, or a folder of them (see :func:`read_safe`).
    out : path
        The catalog JSON file to write (its folder receives ``sentinel-2-l2a/``).
    overwrite : bool
        Replace a catalog written earlier by ``index_safe`` (only its own files are removed).

    Returns
    -------
    Path
        The catalog JSON written.

    Raises
    ------
    OutputExistsError
        ``out`` exists (without ``overwrite``), or is not a catalog written by ``index_safe``,
        or ``sentinel-2-l2a/`` next to it holds files of something else.
    InputError
        As :func:`read_safe`.
    """
    out = Path(out).absolute()
    if out.suffix.lower() != ".json":
        raise OutputExistsError(f"index-safe: --out {out} must be the catalog JSON file to write (e.g. catalog.json)")
    old_files = _own_index_files(out, overwrite)  # refuse before reading the products
    scan = read_safe(source)
    coll_dir = out.parent / "sentinel-2-l2a"
    if coll_dir.exists() and any(p.is_file() and p not in old_files for p in coll_dir.rglob("*")):
        raise OutputExistsError(f"index-safe: {coll_dir} holds files index-safe did not write; choose another --out folder")
    for p in old_files:
        p.unlink(missing_ok=True)
    for d in sorted({p.parent for p in old_files}, key=lambda d: len(d.parts), reverse=True):
        if d.exists() and d != out.parent and not any(d.iterdir()):
            d.rmdir()

    t = [_item_interval(it)[0] for it in scan.items]
    bb = [it.bbox for it in scan.items]
    cat = pystac.Catalog(id=INDEX_CATALOG_ID, description=f"Sentinel-2 L2A SAFE products indexed by soilsuite from {source}")
    coll = pystac.Collection(
        id="sentinel-2-l2a", description="Sentinel-2 Level-2A products read from SAFE folders/zips",
        extent=pystac.Extent(
            pystac.SpatialExtent([[min(b[0] for b in bb), min(b[1] for b in bb), max(b[2] for b in bb), max(b[3] for b in bb)]]),
            pystac.TemporalExtent([[min(t), max(t)]])),
        license="proprietary", title="Sentinel-2 Level-2A (SAFE)",
    )
    cat.add_child(coll)
    for it in scan.items:
        coll.add_item(it)
    cat.normalize_hrefs(str(out.parent) + os.sep)
    cat.set_self_href(str(out))
    for it in scan.items:
        item_dir = Path(it.get_self_href()).parent
        for a in it.assets.values():
            if "://" not in a.href:  # zip members stay absolute zip:// URLs
                a.href = os.path.relpath(a.href, item_dir)
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out


def _own_index_files(out: Path, overwrite: bool) -> list[Path]:
    """Files of an earlier index at ``out`` (to replace with ``overwrite``), or [] if none."""
    if not out.exists():
        return []
    if not overwrite:
        raise OutputExistsError(f"index-safe: {out} exists; use --overwrite (overwrite=True) to replace it")
    try:
        old = pystac.Catalog.from_file(str(out))
    except Exception:
        old = None
    if old is None or old.id != INDEX_CATALOG_ID:
        raise OutputExistsError(f"index-safe: {out} exists and is not a catalog written by index-safe; not replacing it")
    files = [out]
    for coll in old.get_children():
        files.append(Path(coll.get_self_href()))
        files.extend(Path(it.get_self_href()) for it in coll.get_items())
    return [f.resolve() if f.exists() else f for f in files]


__all__ = [
    "ASSET_KEYS",
    "SafeScan",
    "index_safe",
    "is_safe_source",
    "jp2_driver",
    "mark_superseded",
    "read_safe",
    "search_safe",
]
