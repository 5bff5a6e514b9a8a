"""STAC description of a product folder: a Collection and one Item per window / period.

Layout written into the product folder (relative links; asset hrefs relative by default, so the
folder can be moved or published as it is; ``hrefs="absolute"`` writes ``file://`` URIs)::

    catalog.json                 root Catalog linking the Collection (pystac-client opens it)
    collection.json              Collection "soilsuite-composite": extents, summaries, item_assets
    items/<item id>.json         one Item per window or period, its assets:
        <PRODUCT>                 the product COGs (role "data"), raster:bands (data_type, nodata,
                                  scale, offset, unit, statistics); spectral products eo:bands
                                  named <PRODUCT>_<band>; MASK classification:classes
        <PRODUCT>_<band>          each band of a spectral product as a one-band asset: a VRT in
                                  bands/ beside the COG (stackstac reads one-band assets only)
        quicklook_<name>          the Item's own period's PNG pictures (roles "overview"; the true
                                  colour one also "thumbnail")
        run_record                run.json (role "metadata")

With the tiled layout (``tiles=``), each window / period has one Item per output tile instead
(id suffix ``_<tile>``, property ``soilsuite:tile``, footprint and ``proj:*`` of the tile),
and the window's quicklooks and the run record are also assets of the Collection.

Item properties: ``start_datetime`` / ``end_datetime`` and a ``datetime`` no other Item of the
run shares (the window's last second, a period's middle; the same for the tiles of a period),
so odc-stac's ``groupby="time"`` never fuses the window with a period; ``soilsuite:period``;
the projection extension (``proj:code``, ``proj:shape``, ``proj:transform``, ``proj:bbox``,
``proj:centroid``) and ``proj:epsg`` (projection 1.x, which stackstac reads). Every document has
an absolute ``self`` link; :func:`rewrite_hrefs` (``soilsuite stac``) rewrites hrefs and self
links of a moved folder. Raster statistics are those of the **stored** pixel values (as
rio-stac computes them; physical = stored * scale + offset), from a read decimated to at most
``stats_max_size`` pixels per side (exact for smaller files). docs/stac.md shows each client.

:func:`validate_output_catalog` checks the result offline (no schema download): strict JSON,
``stac_pydantic`` models, pystac round trip, assets on disk, extension fields present.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from affine import Affine
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from .. import __version__
from .. import products as P
from ..errors import InputError, OutputExistsError
from ..sensors import SENTINEL2_L2A as _SENSOR
from .layout import BANDS_DIR
from .products import RUN_RECORD, read_product

__all__ = ["band_statistics", "rewrite_hrefs", "validate_output_catalog", "write_output_catalog"]

COLLECTION_FILE = "collection.json"
#: root Catalog linking the Collection (pystac-client opens a Catalog, not a Collection)
CATALOG_FILE = "catalog.json"
ITEMS_DIR = "items"
WINDOW_LABEL = "window"
#: asset-href styles: ``relative`` (a movable folder) or ``absolute`` (``file://`` URIs)
HREFS = ("relative", "absolute")


def band_asset_key(product: str, band: str) -> str:
    """Asset key (and ``eo:bands`` name) of one band of a spectral product: ``SRC_MEAN_B04``."""
    return f"{product}_{band}"


def _href(path: Path, base: Path, hrefs: str) -> str:
    """A file's href from a JSON file in folder ``base``: relative, or an absolute file:// URI."""
    if hrefs == "absolute":
        return Path(path).resolve().as_uri()
    return os.path.relpath(Path(path).resolve(), base.resolve()).replace(os.sep, "/")


def _local_path(href: str, base: Path) -> Path:
    """The local file an href names, from a JSON file in ``base`` (relative, path or file://)."""
    from urllib.parse import unquote, urlparse

    if href.startswith("file://"):
        return Path(unquote(urlparse(href).path))
    return (base / href) if not os.path.isabs(href) else Path(href)


def _item_datetime(label: str, i0: dt.datetime, i1: dt.datetime) -> dt.datetime:
    """``datetime`` of an Item: the window's last second, or the middle of a period (to the
    second). Distinct for the window and every period (a period lies inside the window, so its
    middle is before the window's end), equal for the tiles of one period: odc-stac's
    ``groupby="time"`` then mosaics the tiles of a period and never fuses two periods."""
    if label == WINDOW_LABEL:
        return i1
    return (i0 + (i1 - i0) / 2).replace(microsecond=0)


# ----------------------------------------------------------------------------- helpers
def _as_datetime(value: str | dt.date | dt.datetime, end: bool) -> dt.datetime:
    """Date (or ISO string) -> UTC datetime at the start of the day, or its last second."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    t = dt.time(23, 59, 59) if end else dt.time(0, 0, 0)
    return dt.datetime.combine(value, t, tzinfo=dt.UTC)


def _grid(geobox, crs, transform, shape, first_file: Path):
    """-> (rasterio CRS, Affine, (rows, cols)) of the products' grid.

    The grid is a GeoBox: ``geobox``, else one built from the (deprecated) loose ``crs``,
    ``transform`` and ``shape``, else the grid of ``first_file`` (a product file).
    """
    from odc.geo.geobox import GeoBox
    from rasterio.crs import CRS

    if geobox is None and crs is not None and transform is not None and shape is not None:
        geobox = GeoBox((int(shape[0]), int(shape[1])), Affine(*tuple(transform)[:6]), CRS.from_user_input(crs))
    if geobox is None:
        import rasterio

        with rasterio.open(first_file) as src:
            geobox = GeoBox((src.height, src.width), src.transform, src.crs)
    return (CRS.from_user_input(geobox.crs.to_wkt()), Affine(*tuple(geobox.affine)[:6]),
            (int(geobox.shape.y), int(geobox.shape.x)))


def _footprint(crs, transform: Affine, shape: tuple[int, int], n: int = 10):
    """Lon/lat polygon (densified edges) and bbox of the grid; native bbox."""
    from rasterio.warp import transform as warp_xy

    h, w = shape
    t = np.linspace(0, 1, n, endpoint=False)
    cols = np.concatenate([t * w, np.full(n, w), (1 - t) * w, np.zeros(n)])
    rows = np.concatenate([np.zeros(n), t * h, np.full(n, h), (1 - t) * h])
    xs, ys = transform * (cols, rows)
    native = [float(np.min(xs)), float(np.min(ys)), float(np.max(xs)), float(np.max(ys))]
    lon, lat = warp_xy(crs, "EPSG:4326", list(xs), list(ys))
    ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [min(lon), min(lat), max(lon), max(lat)]
    cx, cy = transform * (w / 2, h / 2)
    clon, clat = warp_xy(crs, "EPSG:4326", [cx], [cy])
    geometry = {"type": "Polygon", "coordinates": [ring]}
    return geometry, [round(float(v), 7) for v in bbox], native, {"lat": float(clat[0]), "lon": float(clon[0])}


def band_statistics(path: str | os.PathLike, *, max_size: int | None = 1024) -> list[dict[str, float]]:
    """Per-band statistics of a product file's stored values, nodata excluded.

    Parameters
    ----------
    path : str or os.PathLike
        Product COG.
    max_size : int, optional
        Largest side of the (decimated, overview-served) read; None reads every pixel.

    Returns
    -------
    list of dict
        Per band ``minimum``, ``maximum``, ``mean``, ``stddev`` (population, ddof=0) and
        ``valid_percent`` (% of pixels not nodata); only ``valid_percent`` (0) when no pixel
        is valid.
    """
    data, info = read_product(path, max_size=max_size, decode=False)
    nodata = info["nodata"]
    out = []
    for band in data:
        a = band.astype("float64")
        valid = np.isfinite(a) if nodata is None or np.isnan(nodata) else (a != nodata) & np.isfinite(a)
        v = a[valid]
        stats: dict[str, float] = {"valid_percent": float(100.0 * v.size / a.size) if a.size else 0.0}
        if v.size:
            stats.update(minimum=float(v.min()), maximum=float(v.max()), mean=float(v.mean()),
                         stddev=float(v.std()))
        out.append(stats)
    return out


def _nodata_value(nodata: float) -> float | str:
    if isinstance(nodata, float) and math.isnan(nodata):
        return "nan"
    if isinstance(nodata, float) and math.isinf(nodata):
        return "inf" if nodata > 0 else "-inf"
    return int(nodata) if float(nodata).is_integer() else float(nodata)


def _classes(spec: P.ProductSpec) -> list[Classification]:
    """The classification extension's classes of a class product (MASK)."""
    import re

    out = []
    for value, label in sorted(spec.classes.items()):
        short = label.split(" (")[0].split(" / ")[0]
        out.append(Classification.create(
            value=int(value), name=re.sub(r"[^0-9A-Za-z]+", "_", short).strip("_").lower() or f"class_{value}",
            description=label, color_hint=P.MASK_COLORS.get(value, "#000000").lstrip("#").upper()[:6],
            nodata=True if value == spec.nodata else None))
    return out


def _raster_band(spec: P.ProductSpec, resolution: float, stats: dict[str, float] | None) -> RasterBand:
    return RasterBand.create(
        nodata=_nodata_value(spec.nodata), data_type=DataType(spec.dtype), scale=spec.scale,
        offset=spec.offset, unit=spec.unit, spatial_resolution=resolution,
        statistics=None if stats is None else Statistics.create(**stats),
    )


def _eo_band(spec: P.ProductSpec, b: str) -> Band:
    """eo:bands entry of band ``b`` of a spectral product: the name is unique to the product
    (``SRC_MEAN_B04``) and no ``common_name`` is set: odc-stac makes both into band aliases,
    and ``B04`` or ``red`` would bind to whichever of six products it met first."""
    return Band.create(name=band_asset_key(spec.name, b), center_wavelength=_SENSOR.wavelength_um[b],
                       full_width_half_max=_SENSOR.fwhm_um[b],
                       description=f"{spec.name} of {_SENSOR.platform} {b} ({_SENSOR.common_name[b]})")


def _band_assets(item: pystac.Item, spec: P.ProductSpec, path: Path, items_dir: Path, resolution: float,
                 band_stats: list[dict[str, float]], hrefs: str) -> list[Path]:
    """One single-band asset per band of a spectral product (``SRC_MEAN_B04``), each a VRT
    (``<product folder>/bands/SRC_MEAN_B04.vrt``) selecting that band of the COG; returns the
    VRTs written. No media type: odc-stac takes an asset without one and role ``data`` as
    raster data (it skips unknown types); stackstac takes them by key (``assets=[...]``)."""
    from .vrt import write_band_vrt

    written = []
    for i, (b, stats) in enumerate(zip(spec.bands, band_stats, strict=True), start=1):
        key = band_asset_key(spec.name, b)
        vrt = write_band_vrt(path, i, path.parent / BANDS_DIR / f"{key}.vrt", overwrite=True)
        written.append(vrt)
        asset = pystac.Asset(href=_href(vrt, items_dir, hrefs), title=f"{spec.name} {b}",
                             description=f"band {b} of {spec.name} (band {i} of {path.name}), a GDAL VRT; "
                                         f"{spec.unit}; physical = stored * {spec.scale:g} + {spec.offset:g}",
                             roles=["data"])
        item.add_asset(key, asset)
        RasterExtension.ext(asset, add_if_missing=True).bands = [_raster_band(spec, resolution, stats)]
        EOExtension.ext(asset, add_if_missing=True).bands = [_eo_band(spec, b)]
    return written


def _product_asset(item: pystac.Item, name: str, path: Path, items_dir: Path, resolution: float,
                   band_stats: list[dict[str, float]], hrefs: str = "relative") -> pystac.Asset:
    spec = P.get(name)
    import rasterio

    with rasterio.open(path) as src:
        band_names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
    asset = pystac.Asset(
        href=_href(path, items_dir, hrefs),
        title=f"{spec.name}: {spec.description}",
        description=f"{spec.description} ({spec.unit}); physical = stored * {spec.scale:g} + {spec.offset:g}",
        media_type=pystac.MediaType.COG,
        roles=["data"],
    )
    item.add_asset(spec.name, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [_raster_band(spec, resolution, s) for s in band_stats]
    if all(b in _SENSOR.wavelength_um for b in band_names):
        EOExtension.ext(asset, add_if_missing=True).bands = [_eo_band(spec, b) for b in band_names]
    if spec.classes:
        ClassificationExtension.ext(asset, add_if_missing=True).classes = _classes(spec)
    return asset


def _period_range(label: str, start: dt.datetime, end: dt.datetime,
                  periods: Mapping[str, tuple[Any, Any]] | None) -> tuple[dt.datetime, dt.datetime]:
    if periods and label in periods:
        a, b = periods[label]
        return _as_datetime(a, end=False), _as_datetime(b, end=True)
    if label.isdigit() and len(label) == 4:  # a calendar year, clipped to the window
        y = int(label)
        return (max(start, dt.datetime(y, 1, 1, tzinfo=dt.UTC)),
                min(end, dt.datetime(y, 12, 31, 23, 59, 59, tzinfo=dt.UTC)))
    return start, end


def _write_json_atomic(path: Path, doc: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# ----------------------------------------------------------------------------- writer
def write_output_catalog(
    out_dir: str | os.PathLike,
    products: Mapping[str, os.PathLike | str] | Mapping[str, Mapping[str, os.PathLike | str]],
    *,
    start: str | dt.date | dt.datetime,
    end: str | dt.date | dt.datetime,
    geobox=None,
    crs=None,
    transform=None,
    shape: tuple[int, int] | None = None,
    run_record: Mapping[str, Any] | None = None,
    quicklooks: Sequence[os.PathLike | str] | Mapping[str, Sequence[os.PathLike | str]] | None = None,
    periods: Mapping[str, tuple[Any, Any]] | None = None,
    collection_id: str = "soilsuite-composite",
    license: str = "other",
    stats_max_size: int | None = 1024,
    overwrite: bool = False,
    tiles: Mapping[str, Mapping[str, tuple[Any, Mapping[str, os.PathLike | str]]]] | None = None,
    threads: int | None = None,
    hrefs: str = "relative",
    band_assets: bool = True,
    statistics: Mapping[os.PathLike | str, Sequence[Mapping[str, float]]] | None = None,
) -> Path:
    """Write the STAC Collection and Items that describe a product folder.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Product folder; receives ``collection.json`` and ``items/<id>.json``.
    products : mapping
        Either ``{product name: COG path}`` (one Item for the window) or
        ``{label: {product name: COG path}}`` (one Item per label: ``"window"`` for the whole
        window, a year ``"2019"`` or any label of ``periods``).
    start, end : str, datetime.date or datetime.datetime
        The time window (inclusive days; ISO strings accepted): the Collection's temporal
        extent and the window Item's ``start_datetime`` / ``end_datetime``.
    geobox : odc.geo.geobox.GeoBox, optional
        The products' grid; or give ``crs``, ``transform`` and ``shape`` (rows, cols); if
        neither, the grid is read from the first product file.
    run_record : mapping, optional
        The run record; its ``soilsuite_version`` (if any) goes into the Items. The Items link
        ``<out_dir>/run.json`` as asset ``run_record`` (written by
        :func:`soilsuite.io.products.write_run_record`).
    quicklooks : sequence of paths, or mapping of label to paths, optional
        PNG pictures: a sequence is the window's, a mapping gives them per label. Default (and
        for a label the mapping lacks): ``quicklooks/*.png`` in the folder of the label's
        products (``<out_dir>/quicklooks``, ``<out_dir>/2021/quicklooks``). Every Item gets
        its label's pictures as assets (the tiles of a label all get the label's pictures).
    periods : mapping of label to (start, end), optional
        Time ranges of period labels; a 4-digit label is a calendar year clipped to the window.
    collection_id : str
        Collection id and prefix of the Item ids (``<collection_id>_<label or dates>``).
    license : str
        SPDX id or ``"other"``.
    stats_max_size : int, optional
        Largest side of the decimated read for raster statistics (None: every pixel).
    overwrite : bool
        Replace an existing ``collection.json`` (and remove stale Items); otherwise raise
        :class:`~soilsuite.errors.OutputExistsError`.
    tiles : mapping, optional
        Tiled layout: ``{label: {tile name: (tile GeoBox, {product name: tile COG path})}}``.
        A label listed here gets one Item per tile (id ``<collection_id>_<suffix>_<tile>``,
        footprint and ``proj:*`` of the tile, the tile COGs as assets) instead of one Item
        for the whole grid; ``products`` then names the mosaics (e.g. VRT files), which are
        not STAC assets. Quicklooks and the run record become Collection assets.
    threads : int, optional
        Threads reading the raster statistics (each holds one decimated product read, up to
        ``stats_max_size`` squared pixels x bands); default ``min(4, cores)``.
    hrefs : {"relative", "absolute"}
        Asset hrefs relative to the Item file (the folder can be moved or published as it is)
        or absolute ``file://`` URIs (for clients that do not resolve relative hrefs, such as
        stackstac, or for serving the Items through a STAC API). Links between the Collection
        and Items are relative either way; every document has an absolute ``self`` link
        (rewrite both with :func:`rewrite_hrefs` after moving the folder).
    band_assets : bool
        Also describe each band of a spectral product as a one-band asset
        ``<PRODUCT>_<band>`` (a VRT in ``bands/`` beside the COG; see :func:`_band_assets`).
    statistics : mapping of path to per-band statistics, optional
        The raster statistics of asset files already known to the caller (the mosaic takes
        them from the blocks it writes: :class:`soilsuite.io.statistics.RunningBandStats`,
        exact over every pixel), in the format of :func:`band_statistics`; those files are
        not read again. Files not in it are read as ``stats_max_size`` says.

    Returns
    -------
    Path
        ``<out_dir>/collection.json``.
    """
    out = Path(out_dir)
    coll_path = out / COLLECTION_FILE
    if hrefs not in HREFS:
        raise InputError(f"hrefs must be one of {', '.join(HREFS)}, got {hrefs!r}")
    if coll_path.exists() and not overwrite:
        raise OutputExistsError(f"STAC collection {coll_path} exists already; use overwrite=True to replace it")
    if not products:
        raise InputError(f"no products to describe in {out}")
    first = next(iter(products.values()))
    groups: dict[str, dict[str, Path]]
    if isinstance(first, Mapping):
        groups = {str(k): {n: Path(p) for n, p in v.items()} for k, v in products.items()}  # type: ignore[union-attr]
    else:
        groups = {WINDOW_LABEL: {n: Path(p) for n, p in products.items()}}  # type: ignore[arg-type]
    for label, files in groups.items():
        for name, p in files.items():
            P.get(name)  # unknown names raise KeyError with the list of known products
            if not p.is_file():
                raise InputError(f"product {name} ({label}): file {p} does not exist")
    first_file = next(p for g in groups.values() for p in g.values())
    crs_, affine, shp = _grid(geobox, crs, transform, shape, first_file)
    geometry, bbox, native_bbox, centroid = _footprint(crs_, affine, shp)
    resolution = float(abs(affine.a))
    t0, t1 = _as_datetime(start, end=False), _as_datetime(end, end=True)
    if t1 < t0:
        raise InputError(f"window end {end} is before its start {start}")
    version = (run_record or {}).get("soilsuite_version", __version__)
    ql_given = dict(quicklooks) if isinstance(quicklooks, Mapping) else (
        {} if quicklooks is None else {WINDOW_LABEL: list(quicklooks)})

    def label_quicklooks(label: str) -> list[Path]:
        if label in ql_given:
            return [Path(q) for q in ql_given[label]]
        folder = out if label == WINDOW_LABEL else next(iter(groups[label].values())).parent
        return sorted((folder / "quicklooks").glob("*.png"))

    items_dir = out / ITEMS_DIR
    items_dir.mkdir(parents=True, exist_ok=True)

    collection = pystac.Collection(
        id=collection_id,
        title="SoilSuite bare-soil composite (SCMaP) from Sentinel-2 L2A",
        description=(
            "Products of the Soil Composite Mapping Processor (SCMaP, DLR) computed by soilsuite: "
            "valid pixel count, bare soil count and frequency, mean/std/CI95 reflectance of the bare "
            "observations (SRC), mean reflectance of all valid observations (MREF), and the MASK of "
            "surface classes."
        ),
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[t0, t1]])),
        license=license,
        keywords=["soil", "bare soil", "SCMaP", "SoilSuite", "Sentinel-2", "composite"],
        providers=[
            pystac.Provider(name="soilsuite", roles=[pystac.ProviderRole.PROCESSOR]),
            pystac.Provider(name="ESA / Copernicus (Sentinel-2 L2A)", roles=[pystac.ProviderRole.PRODUCER],
                            url="https://sentinels.copernicus.eu"),
        ],
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    root = pystac.Catalog(
        id=f"{collection_id}-catalog", title="soilsuite product folder",
        description="Root of a soilsuite product folder: opens with pystac_client.Client.open (static catalog)",
        catalog_type=pystac.CatalogType.SELF_CONTAINED)
    root.set_self_href(str((out / CATALOG_FILE).resolve()))
    root.add_child(collection, title=collection.title)
    collection.set_self_href(str(coll_path.resolve()))

    written: list[Path] = []
    tiles = tiles or {}
    run_asset = dict(title="run record (parameters, inputs, soilsuite version)",
                     media_type=pystac.MediaType.JSON, roles=["metadata"])

    def quicklook_assets(target, base: Path, qls: list[Path]) -> None:
        thumb = next((q for q in qls if "rgb" in q.stem), qls[0] if qls else None)
        for q in qls:
            target.add_asset(f"quicklook_{q.stem}", pystac.Asset(
                href=_href(q, base, hrefs), title=f"quicklook {q.stem}",
                media_type=pystac.MediaType.PNG, roles=["thumbnail", "overview"] if q == thumb else ["overview"],
            ))

    def add_item(item_id, label, i0, i1, grid, files, qls, tile_name=None):
        g_crs, g_affine, g_shape = grid
        g_geometry, g_bbox, g_native, g_centroid = _footprint(g_crs, g_affine, g_shape)
        title = (f"SCMaP products {i0.date().isoformat()} to {i1.date().isoformat()}"
                 + ("" if label == WINDOW_LABEL else f" (period {label})")
                 + ("" if tile_name is None else f", tile {tile_name}"))
        props = {
            "title": title, "gsd": resolution, "constellation": "sentinel-2", "instruments": ["msi"],
            "soilsuite:version": str(version), "soilsuite:period": label,
        }
        if tile_name is not None:
            props["soilsuite:tile"] = tile_name
        item = pystac.Item(id=item_id, geometry=g_geometry, bbox=g_bbox, datetime=_item_datetime(label, i0, i1),
                           start_datetime=i0, end_datetime=i1, properties=props)
        g_epsg = g_crs.to_epsg()
        ProjectionExtension.ext(item, add_if_missing=True).apply(
            code=f"EPSG:{g_epsg}" if g_epsg else None,
            wkt2=None if g_epsg else g_crs.to_wkt(),
            shape=[int(g_shape[0]), int(g_shape[1])],
            transform=[float(v) for v in tuple(g_affine)[:6]],
            bbox=g_native,
            centroid=g_centroid,
        )
        if g_epsg:  # projection extension 1.x's field, still the one stackstac reads
            item.properties["proj:epsg"] = int(g_epsg)
        for name, path in files.items():
            spec = P.get(name)
            _product_asset(item, spec.name, Path(path), items_dir, resolution, stats[Path(path)], hrefs)
            if band_assets and spec.is_spectral:
                _band_assets(item, spec, Path(path), items_dir, resolution, stats[Path(path)], hrefs)
        quicklook_assets(item, items_dir, qls)
        item.add_asset("run_record", pystac.Asset(href=_href(out / RUN_RECORD, items_dir, hrefs), **run_asset))
        item_path = items_dir / f"{item_id}.json"
        item.set_self_href(str(item_path.resolve()))
        collection.add_item(item, title=title)
        item.set_self_href(str(item_path.resolve()))  # add_item may re-lay the item out
        written.append(item_path)

    # raster statistics of every asset file, read in threads (GDAL decodes without the GIL)
    from concurrent.futures import ThreadPoolExecutor

    asset_files = sorted({Path(p) for label, files in groups.items() if label not in tiles for p in files.values()}
                         | {Path(p) for per in tiles.values() for _, tf in per.values() for p in tf.values()})
    known = {Path(p).resolve(): [dict(b) for b in v] for p, v in (statistics or {}).items()}
    stats = {p: known[p.resolve()] for p in asset_files if p.resolve() in known}
    unknown = [p for p in asset_files if p not in stats]
    with ThreadPoolExecutor(max_workers=threads or min(4, os.cpu_count() or 1)) as pool:
        stats.update(zip(unknown, pool.map(lambda p: band_statistics(p, max_size=stats_max_size), unknown),
                         strict=True))

    for label, files in groups.items():
        i0, i1 = _period_range(label, t0, t1, periods)
        suffix = f"{t0.date().isoformat()}_{t1.date().isoformat()}" if label == WINDOW_LABEL else label
        item_id = f"{collection_id}_{suffix}"
        qls = label_quicklooks(label)
        if label in tiles:
            for tile_name, (tile_geobox, tile_files) in tiles[label].items():
                add_item(f"{item_id}_{tile_name}", label, i0, i1, _grid(tile_geobox, None, None, None, first_file),
                         tile_files, qls, tile_name)
        else:
            add_item(item_id, label, i0, i1, (crs_, affine, shp), files, qls)
    if tiles:
        quicklook_assets(collection, out, label_quicklooks(WINDOW_LABEL))
        collection.add_asset("run_record", pystac.Asset(href=_href(out / RUN_RECORD, out, hrefs), **run_asset))
    _describe_collection(collection, [lb for lb in groups], crs_, resolution)

    for item in collection.get_items():
        _write_json_atomic(Path(item.get_self_href()), _with_self_link(
            item.to_dict(include_self_link=False, transform_hrefs=True), Path(item.get_self_href())))
    if overwrite:  # items of an earlier run that this one does not describe
        keep = {p.name for p in written}
        for old in items_dir.glob("*.json"):
            if old.name not in keep:
                old.unlink()
    _write_json_atomic(coll_path, _with_self_link(collection.to_dict(include_self_link=False, transform_hrefs=True),
                                                  coll_path))
    _write_json_atomic(out / CATALOG_FILE, _with_self_link(root.to_dict(include_self_link=False, transform_hrefs=True),
                                                          out / CATALOG_FILE))
    return coll_path


def _with_self_link(doc: dict, path: Path) -> dict:
    """The document with an absolute ``self`` link (a file:// URI of where it is written)."""
    links = [lk for lk in doc.get("links", []) if lk.get("rel") != "self"]
    links.insert(0, {"rel": "self", "href": path.resolve().as_uri(), "type": "application/json",
                     "title": str(doc.get("title") or doc.get("properties", {}).get("title") or doc.get("id"))})
    return {**doc, "links": links}


def _describe_collection(collection: pystac.Collection, labels: list[str], crs, resolution: float) -> None:
    """``summaries`` and ``item_assets`` of the Collection, from its Items."""
    items = list(collection.get_items())
    epsg = crs.to_epsg()
    summaries: dict[str, Any] = {
        "gsd": [resolution], "constellation": ["sentinel-2"], "instruments": ["msi"],
        "soilsuite:period": list(labels), "datetime": {
            "minimum": min(i.datetime for i in items).isoformat().replace("+00:00", "Z"),
            "maximum": max(i.datetime for i in items).isoformat().replace("+00:00", "Z")},
    }
    if epsg:
        summaries.update({"proj:code": [f"EPSG:{epsg}"], "proj:epsg": [int(epsg)]})
    collection.summaries = pystac.Summaries(summaries)
    defs: dict[str, dict] = {}
    for item in items:  # the union of every Item's assets, in order of appearance
        for key, asset in item.assets.items():
            if key in defs or key == "run_record":
                continue
            d = copy.deepcopy(asset.to_dict())  # to_dict shares extra_fields' lists with the Item
            d.pop("href", None)
            for rb in d.get("raster:bands", []):
                rb.pop("statistics", None)
            defs[key] = d
    collection.item_assets = {k: pystac.ItemAssetDefinition(v) for k, v in defs.items()}
    exts = {e for item in items for e in item.stac_extensions}
    collection.stac_extensions = sorted(set(collection.stac_extensions) | exts)  # item_assets: core in STAC 1.1


def rewrite_hrefs(out_dir: str | os.PathLike, hrefs: str = "relative") -> list[Path]:
    """Rewrite the asset hrefs and ``self`` links of a product folder's STAC for where it is now.

    ``soilsuite stac OUT_DIR --absolute|--relative``. Relative hrefs resolve against the
    Item's file; an absolute href (``file://`` URI or path) is re-anchored with the document's
    old ``self`` link: the asset's place relative to where the document was written is kept if
    a file is there (a moved or copied folder describes its own files), else the href is taken
    as it is. Remote hrefs (``https://``, ``s3://``) are left
    as they are. The folder's manifest (:mod:`soilsuite.io.manifest`) is updated, so a later
    ``--overwrite`` does not take the rewritten JSON for files changed by hand.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A product folder holding ``collection.json`` (or that file itself).
    hrefs : {"relative", "absolute"}
        Relative to each JSON file, or absolute ``file://`` URIs.

    Returns
    -------
    list of Path
        The JSON files rewritten (the Collection first).
    """
    if hrefs not in HREFS:
        raise InputError(f"hrefs must be one of {', '.join(HREFS)}, got {hrefs!r}")
    coll_path = Path(out_dir)
    if coll_path.is_dir():
        coll_path = coll_path / COLLECTION_FILE
    if not coll_path.is_file():
        raise InputError(f"no STAC collection {coll_path}: give a folder written by `soilsuite composite`")
    out = coll_path.parent
    from ..io.layout import WORK_DIR, is_composite_output
    from ..io.manifest import OutputFolder

    folder = OutputFolder(out, "composite", owned_dirs=(WORK_DIR,), namespace=is_composite_output)
    manifest = folder.read()
    with folder.lock():
        cdoc = _strict_json(coll_path)
        paths = [coll_path] + [p for p in [out / CATALOG_FILE] if p.is_file()] + [
            _local_path(lk["href"], out).resolve() for lk in cdoc.get("links", []) if lk.get("rel") == "item"]
        for path in paths:
            doc = cdoc if path == coll_path else _strict_json(path)
            old_self = next((_local_path(lk["href"], path.parent) for lk in doc.get("links", [])
                             if lk.get("rel") == "self" and lk["href"].startswith(("file://", "/"))), None)
            for key, asset in doc.get("assets", {}).items():
                href = asset["href"]
                if "://" in href and not href.startswith("file://"):
                    continue
                target = _local_path(href, path.parent)
                if os.path.isabs(href.removeprefix("file://")) and old_self is not None:
                    # the same place relative to the document as when it was written: a moved
                    # or copied folder describes its own files
                    here = path.parent / os.path.relpath(target, old_self.parent)
                    target = here if here.exists() else target
                if not target.exists():
                    raise InputError(f"{path}: asset {key}: file {href} does not exist (nor {target})")
                asset["href"] = _href(target, path.parent, hrefs)
            _write_json_atomic(path, _with_self_link(doc, path))
        if manifest is not None:
            rels = {os.path.relpath(p, out).replace(os.sep, "/") for p in paths}
            folder.record([r for r in rels if r in manifest["files"]])
    return paths


# ----------------------------------------------------------------------------- validation
def _strict_json(path: Path) -> dict:
    def reject(const: str):
        raise ValueError(f"{const} is not valid JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


_EXT_PREFIX = {"eo:": EOExtension.get_schema_uri(), "raster:": RasterExtension.get_schema_uri(),
               "proj:": ProjectionExtension.get_schema_uri()}


def _uses(doc: dict, prefix: str) -> bool:
    if any(k.startswith(prefix) for k in doc.get("properties", {})):
        return True
    return any(k.startswith(prefix) for a in doc.get("assets", {}).values() for k in a)


def validate_output_catalog(path: str | os.PathLike) -> tuple[bool, list[str]]:
    """Validate a product folder's STAC output offline.

    Checks, for the Collection and every Item it links: strict JSON (no NaN), the
    ``stac_pydantic`` models (``Collection`` / ``Item.model_validate``), a pystac read and
    ``to_dict``/``from_dict`` round trip that changes nothing, declared extensions for the
    ``eo:``, ``raster:`` and ``proj:`` fields used, projection fields, ``raster:bands`` on every
    data asset (and ``eo:bands`` on spectral ones) and that every local asset file exists.
    No JSON schema is downloaded (pystac's ``validate()`` is not called).

    Parameters
    ----------
    path : str or os.PathLike
        ``collection.json`` or the folder holding it.

    Returns
    -------
    (bool, list of str)
        Whether everything passed, and what failed (file: problem).
    """
    from stac_pydantic import Collection as PydCollection
    from stac_pydantic import Item as PydItem

    path = Path(path)
    if path.is_dir():
        path = path / COLLECTION_FILE
    errors: list[str] = []
    try:
        cdoc = _strict_json(path)
        PydCollection.model_validate(cdoc)
        coll = pystac.Collection.from_file(str(path))
        again = pystac.Collection.from_dict(coll.to_dict(include_self_link=False))
        if again.to_dict(include_self_link=False) != coll.to_dict(include_self_link=False):
            errors.append(f"{path}: pystac round trip changed the collection")
    except Exception as exc:  # report, do not raise: the caller gets the full list
        return False, [f"{path}: {type(exc).__name__}: {exc}"]

    item_links = [lk for lk in coll.links if lk.rel == pystac.RelType.ITEM]
    if not item_links:
        errors.append(f"{path}: the collection links no item")
    for link in item_links:
        ipath = Path(link.get_absolute_href())
        try:
            idoc = _strict_json(ipath)
            PydItem.model_validate(idoc)
            item = pystac.Item.from_file(str(ipath))
            d1 = item.to_dict(include_self_link=False, transform_hrefs=False)
            d2 = pystac.Item.from_dict(d1).to_dict(include_self_link=False, transform_hrefs=False)
            if d1 != d2:
                errors.append(f"{ipath}: pystac round trip changed the item")
        except Exception as exc:
            errors.append(f"{ipath}: {type(exc).__name__}: {exc}")
            continue
        if idoc.get("collection") != coll.id:
            errors.append(f"{ipath}: collection {idoc.get('collection')!r} is not {coll.id!r}")
        for prefix, uri in _EXT_PREFIX.items():
            if _uses(idoc, prefix) and uri not in idoc.get("stac_extensions", []):
                errors.append(f"{ipath}: uses {prefix}* fields but does not declare {uri}")
        props = idoc.get("properties", {})
        if not ({"proj:code", "proj:epsg", "proj:wkt2"} & set(props)):
            errors.append(f"{ipath}: no proj:code / proj:epsg / proj:wkt2")
        if props.get("datetime") is None:
            errors.append(f"{ipath}: datetime is null")
        if not any(lk.get("rel") == "self" for lk in idoc.get("links", [])):
            errors.append(f"{ipath}: no self link")
        for key in ("proj:shape", "proj:transform", "proj:bbox", "start_datetime", "end_datetime"):
            if key not in props:
                errors.append(f"{ipath}: property {key} missing")
        for key, asset in item.assets.items():
            href = asset.get_absolute_href() or ""
            if href.startswith("file://"):
                href = str(_local_path(href, ipath.parent))
            if "://" not in href and not Path(href).exists():
                errors.append(f"{ipath}: asset {key}: file {href} does not exist")
            if "data" in (asset.roles or []):
                raw = idoc["assets"][key]
                if not raw.get("raster:bands"):
                    errors.append(f"{ipath}: data asset {key} has no raster:bands")
                with contextlib.suppress(KeyError):
                    if P.get(key).is_spectral and len(raw.get("eo:bands", [])) != len(P.get(key).bands):
                        errors.append(f"{ipath}: spectral asset {key} lacks eo:bands")
    return not errors, errors
