"""Sentinel-2 L2A observations from STAC: search, scene filter, asset aliases, lazy loading.

A *source* is either a static STAC catalog/collection on disk (path to its JSON) or a STAC API
(URL + collection id). Items are loaded with odc-stac onto the target grid:

- 10 m bands are averaged onto the 20 m grid (``resampling="average"``), SCL by nearest;
- items of the same solar day (overlapping MGRS tiles) are fused into one observation
  (``groupby=sensor.solar_day``, the callable the metadata groups by), so an overlap is never
  counted twice;
- DN are offset-corrected per observation: ``refl = DN + BOA_ADD_OFFSET`` (x 10000), with the
  offset 0 where ``earthsearch:boa_offset_applied`` is true, else read from the raster
  metadata offset, else the processing baseline, else the date (:func:`item_offset_dn`);
- a STAC API is searched page by page (:data:`API_PAGE_SIZE` items a page); its items must
  carry absolute asset hrefs (:func:`check_api_hrefs`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac

from ..config import SceneFilter
from ..errors import InputError, exception_chain
from ..sensors import REFL_NODATA, SENTINEL2_L2A, Sensor, item_lon
from ..sensors.sentinel2 import BOA_ADD_OFFSET_PB04
from .items import Rejection, _bbox_intersects, _item_interval

#: The sensor the functions below default to.
SENSOR = SENTINEL2_L2A
REFLECTANCE_ASSETS = SENSOR.band_names
ALL_ASSETS = SENSOR.all_assets


@dataclass
class SceneSelection:
    """Items kept by the scene filter, and those rejected with a reason each."""

    items: list[pystac.Item]
    rejected: list[Rejection] = field(default_factory=list)

    def rejection_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejected:
            key = r.reason.split(" (")[0]
            out[key] = out.get(key, 0) + 1
        return out


def _read_error(exc: BaseException) -> str:
    """The innermost message of a pystac read error (the real reason, not "does not resolve")."""
    msgs = [str(e) for e in exception_chain(exc)]
    return msgs[-1] if msgs[-1] else msgs[0]


def _static_items(root: pystac.Catalog, path: Path) -> list[pystac.Item]:
    """Items of a static catalog/collection and its children (depth first).

    Unlike pystac's ``get_items(recursive=True)``, a link cycle (a child that links back to an
    ancestor) and an unreadable item (e.g. no datetime) raise :class:`InputError` naming the
    files; a child reached twice by different paths is read once.
    """
    items: list[pystac.Item] = []
    seen: set[str] = set()

    def href(obj) -> str:
        return obj.get_self_href() or f"{obj.id} (in {path})"

    def resolve(link, cat, what):
        try:
            link.resolve_stac_object(root=cat.get_root())
        except Exception as exc:  # noqa: BLE001 - pystac raises many types for a bad file
            raise InputError(f"{what} {link.get_absolute_href()}: cannot be read: {_read_error(exc)}") from exc
        return link.target

    def walk(cat, ancestors: list[str]) -> None:
        me = href(cat)
        if me in ancestors:
            cycle = " -> ".join([*ancestors[ancestors.index(me):], me])
            raise InputError(f"STAC source {path}: its links form a cycle ({cycle})")
        if me in seen:
            return
        seen.add(me)
        for link in cat.get_links(pystac.RelType.ITEM):
            it = resolve(link, cat, "STAC item")
            if isinstance(it, pystac.Item):
                items.append(it)
        for link in cat.get_child_links():
            child = resolve(link, cat, "STAC catalog")
            if isinstance(child, pystac.Catalog):
                walk(child, [*ancestors, me])

    walk(root, [])
    return items


_BAND_ASSET_KEYS = frozenset(k for keys in SENSOR.asset_aliases.values() for k in keys)
#: Items per page asked of a STAC API (``limit``); soilsuite follows the ``next`` links.
API_PAGE_SIZE = 100


def _search_api(url: str, collection: str | None, t0: dt.datetime, t1: dt.datetime,
                bbox: Sequence[float] | None) -> list[pystac.Item]:
    """Items of one collection of a STAC API (item search, every page), asset hrefs checked.

    The server filters by datetime and bbox; the same filters are applied again here so an
    API answers exactly as the static catalog would. An item id served twice (pages of a
    changing backend) is kept once.
    """
    if not collection:
        raise InputError(f"STAC API {url}: give the collection id (e.g. --collection sentinel-2-l2a)")
    from pystac_client import Client

    try:
        client = Client.open(url)
    except Exception as exc:  # network errors, not a STAC API, bad JSON
        raise InputError(f"STAC API {url}: cannot be opened as a STAC API: {exc}") from exc
    try:
        search = client.search(
            collections=[collection], bbox=list(bbox) if bbox else None,
            datetime=f"{t0.isoformat()}/{t1.isoformat()}", limit=API_PAGE_SIZE,
        )
        found = list(search.items())
    except Exception as exc:  # network and API errors, named
        raise InputError(f"STAC API {url} (collection {collection!r}): search failed: {exc}") from exc
    if not found:
        try:
            have = [c.id for c in client.get_collections()]
        except Exception:  # noqa: BLE001 - only for a better message
            have = None
        if have is not None and collection not in have:
            raise InputError(f"STAC API {url}: no collection {collection!r} (collections: "
                             f"{', '.join(have) or 'none'})")
    items, seen = [], set()
    for it in found:
        if it.id in seen:
            continue
        seen.add(it.id)
        a, b = _item_interval(it)
        if b < t0 or a > t1 or not _bbox_intersects(it.bbox, bbox):
            continue
        check_api_hrefs(it, url)
        items.append(it)
    return items


def check_api_hrefs(item: pystac.Item, api_url: str) -> None:
    """Refuse an item from a STAC API whose data assets have relative hrefs.

    A relative href (``./red.tif``) resolves against the item's URL on the API
    (``http://host/collections/c/items/red.tif``), which serves no such file: every read
    would fail with a 404. Absolute URLs, ``file://`` URIs and cloud URIs (``s3://``...) pass.

    Raises
    ------
    InputError
        Naming the item, the asset, its href and the URL it resolves to.
    """
    from urllib.parse import urlparse

    for key, asset in item.assets.items():
        if key not in _BAND_ASSET_KEYS:
            continue  # assets soilsuite never reads (thumbnails, metadata, AOT...)
        href = asset.href
        if urlparse(href).scheme or href.startswith("/"):
            continue
        raise InputError(
            f"STAC item {item.id!r} from STAC API {api_url}: asset {key!r} has the relative href "
            f"{href!r}, which resolves to {asset.get_absolute_href()} on the API server (not a file it "
            f"serves); the items must carry absolute asset hrefs (https://, s3:// or file:// URIs; for a "
            f"simulated archive: soilsuite simulate --hrefs absolute)"
        )


def search_items(
    source: str | Path,
    *,
    start: dt.date,
    end: dt.date,
    bbox: Sequence[float] | None = None,
    collection: str | None = None,
) -> list[pystac.Item]:
    """Items of a STAC source within a time window (inclusive days) and lon/lat bbox.

    Parameters
    ----------
    source : str or Path
        Path of a static catalog/collection JSON (or its folder), a STAC API URL, or Sentinel-2
        L2A SAFE input (a ``.SAFE`` folder, a ``.zip``, or a folder of them: docs/safe.md).
    start, end : datetime.date
        First and last day of the window (UTC days, inclusive).
    bbox : sequence of 4 floats, optional
        (west, south, east, north) in degrees.
    collection : str, optional
        Collection id: required for a STAC API, optional filter for a static catalog.

    Returns
    -------
    list of pystac.Item
        Sorted by datetime then id.
    """
    t0 = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)
    t1 = dt.datetime.combine(end, dt.time.max, tzinfo=dt.UTC)
    src = str(source)
    from .cube import is_cube_source, search_cube
    from .safe import is_safe_source, search_safe

    if is_cube_source(src):  # a Zarr cube written by `soilsuite ingest` (sources/cube.py)
        return search_cube(src, t0=t0, t1=t1, bbox=bbox)
    if is_safe_source(src):  # Sentinel-2 SAFE folders / zips (sources/safe.py)
        return search_safe(src, t0=t0, t1=t1, bbox=bbox)
    if src.startswith(("http://", "https://")) and not src.endswith(".json"):
        items = _search_api(src, collection, t0, t1, bbox)
    else:
        path = Path(src)
        if path.is_dir():
            for name in ("catalog.json", "collection.json"):
                if (path / name).exists():
                    path = path / name
                    break
        if not path.exists():
            raise InputError(f"STAC source {src!r}: no such file or folder (expected a catalog.json, a collection.json, or a STAC API URL)")
        try:
            root = pystac.read_file(str(path))
        except Exception as exc:
            raise InputError(f"STAC source {path}: cannot be read as STAC JSON: {exc}") from exc
        if isinstance(root, pystac.Item):
            candidates: Iterable[pystac.Item] = [root]
        else:
            candidates = _static_items(root, path)
        items = []
        for it in candidates:
            if collection and it.collection_id not in (None, collection):
                continue
            a, b = _item_interval(it)
            if b < t0 or a > t1:
                continue
            if not _bbox_intersects(it.bbox, bbox):
                continue
            items.append(it)
    items.sort(key=lambda it: (_item_interval(it)[0], it.id))
    return items


def sun_elevation(item: pystac.Item) -> float | None:
    """Sun elevation of an item in degrees: ``view:sun_elevation`` (Earth Search, Copernicus
    Data Space), else 90 - ``s2:mean_solar_zenith`` (Planetary Computer), else None."""
    p = item.properties
    if p.get("view:sun_elevation") is not None:
        return float(p["view:sun_elevation"])
    if p.get("s2:mean_solar_zenith") is not None:
        return 90.0 - float(p["s2:mean_solar_zenith"])
    return None


def filter_scenes(items: Sequence[pystac.Item], scene: SceneFilter) -> SceneSelection:
    """Keep items with ``eo:cloud_cover <= max`` and ``view:sun_elevation >= min`` (SPEC 1).

    Items lacking a property are kept (the per-pixel masks still apply); the reason for each
    rejection names the item and the value found.
    """
    kept, rejected = [], []
    for it in items:
        p = it.properties
        cc = p.get("eo:cloud_cover")
        elev = sun_elevation(it)
        if p.get("soilsuite:superseded_by"):  # older duplicate of a SAFE product (sources/safe.py)
            rejected.append(Rejection(it.id, str(p.get("soilsuite:superseded_reason") or "duplicate product")))
        elif cc is not None and float(cc) > scene.max_cloud_cover:
            rejected.append(Rejection(it.id, f"cloud cover > {scene.max_cloud_cover:g} % ({float(cc):.1f} %)"))
        elif elev is not None and float(elev) < scene.min_sun_elevation:
            rejected.append(Rejection(it.id, f"sun elevation < {scene.min_sun_elevation:g} deg ({float(elev):.1f})"))
        else:
            kept.append(it)
    return SceneSelection(kept, rejected)


def resolve_assets(items: Sequence[pystac.Item], sensor: Sensor = SENSOR) -> dict[str, str]:
    """Map our band names (B02..B12, SCL) to the items' asset keys through the sensor's aliases.

    Earth Search (``red``, ``swir16``...), Planetary Computer (``B04``) and CDSE (``B04_10m``)
    layouts are recognised (:attr:`Sensor.asset_aliases`). All items must share the same keys.

    Raises
    ------
    InputError
        Naming the item and the band whose asset is missing.
    """
    if not items:
        raise InputError("no STAC items to load (check the area, the time window and the scene filter)")
    mapping: dict[str, str] = {}
    first = items[0]
    aliases = sensor.asset_aliases
    for band in sensor.all_assets:
        key = next((k for k in aliases[band] if k in first.assets), None)
        if key is None:
            raise InputError(
                f"STAC item {first.id!r}: no asset for band {band} (tried {', '.join(aliases[band])}; "
                f"item has {', '.join(sorted(first.assets))})"
            )
        mapping[band] = key
    for it in items[1:]:
        missing = [f"{b} ({k})" for b, k in mapping.items() if k not in it.assets]
        if missing:
            raise InputError(f"STAC item {it.id!r}: missing asset(s) {', '.join(missing)}")
    return mapping


#: Item properties saying the served DN already have BOA_ADD_OFFSET added (Earth Search v1;
#: ``sentinel:`` is the Earth Search v0 spelling).
OFFSET_APPLIED_KEYS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
#: Item properties holding the processing baseline: ``s2:processing_baseline`` (Earth Search,
#: Planetary Computer), ``processing:version`` (Copernicus Data Space), Earth Search v0.
BASELINE_KEYS = ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline")


def _declared_offset_dn(asset: pystac.Asset) -> int | None:
    """Offset declared by an asset's raster metadata, in DN, or None if it declares none.

    STAC 1.0 ``raster:bands[0]`` ``offset``/``scale`` (Earth Search), STAC 1.1 asset-level
    ``raster:offset``/``raster:scale`` (Copernicus Data Space) or ``bands[0]`` with the same
    fields. Only an explicit offset counts: a scale without an offset says nothing (Planetary
    Computer declares none, although its DN carry the offset from baseline 04.00).
    """
    f = asset.extra_fields
    rb = f.get("raster:bands")
    candidates = []
    if rb and isinstance(rb, list) and isinstance(rb[0], dict):
        candidates.append((rb[0].get("offset"), rb[0].get("scale")))
    candidates.append((f.get("raster:offset"), f.get("raster:scale")))
    bands = f.get("bands")
    if bands and isinstance(bands, list) and isinstance(bands[0], dict):
        candidates.append((bands[0].get("raster:offset"), bands[0].get("raster:scale")))
    for off, scale in candidates:
        if off is not None and scale:
            return int(round(float(off) / float(scale)))
    return None


def item_offset_dn(item: pystac.Item, asset_key: str | None = None, sensor: Sensor = SENSOR) -> int:
    """BOA_ADD_OFFSET of an item in DN (0 or -1000), to add to the served DN.

    In order:

    1. ``earthsearch:boa_offset_applied: true`` (Earth Search v1): the served DN already have
       the offset added, so 0 (Earth Search still declares ``raster:bands`` offset -0.1 on
       these items: applying it would subtract it twice);
    2. the offset declared by the asset's raster metadata (``raster:bands`` offset, or
       ``raster:offset``; reflectance units, -0.1 -> -1000 DN);
    3. the processing baseline (``s2:processing_baseline``, or ``processing:version`` on
       Copernicus Data Space): -1000 from 04.00;
    4. the acquisition date (from 2022-01-25).

    Steps 3-4 are the sensor's offset rule (:meth:`Sensor.boa_add_offset`).

    Raises
    ------
    InputError
        A processing baseline that is not a number (the message names the item).
    """
    p = item.properties
    if any(p.get(k) is True or str(p.get(k)).lower() == "true" for k in OFFSET_APPLIED_KEYS):
        return 0
    if asset_key and asset_key in item.assets:
        declared = _declared_offset_dn(item.assets[asset_key])
        if declared is not None:
            return declared
    key = next((k for k in BASELINE_KEYS if p.get(k) not in (None, "")), BASELINE_KEYS[0])
    pb = p.get(key)
    start, _ = _item_interval(item)
    try:
        return sensor.boa_add_offset(pb, start.date())
    except ValueError:
        raise InputError(f"STAC item {item.id!r}: bad {key} {pb!r} (expected a processing baseline such as '05.09')") from None


def solar_day(item: pystac.Item, sensor: Sensor = SENSOR) -> dt.date:
    """Observation key of an item: the sensor's solar day (UTC time + longitude/15 h).

    The same callable is odc-stac's ``groupby`` in :func:`load_cube`, so the metadata and the
    pixels are grouped alike (:attr:`Sensor.solar_day`).
    """
    return sensor.solar_day(item, None, None)


def mgrs_tile(item: pystac.Item) -> str | None:
    """The item's MGRS grid tile such as ``"33UUU"``, from ``grid:code`` (``MGRS-33UUU``),
    ``mgrs:*`` (Earth Search), ``s2:mgrs_tile`` (Planetary Computer) or ``tileId``; else None."""
    p = item.properties
    code = p.get("grid:code")
    if isinstance(code, str) and code.upper().startswith("MGRS-"):
        return code[5:].upper()
    if p.get("mgrs:utm_zone") is not None and p.get("mgrs:latitude_band") and p.get("mgrs:grid_square"):
        return f"{int(p['mgrs:utm_zone']):02d}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}".upper()
    for key in ("s2:mgrs_tile", "tileId", "mgrs_tile"):
        if p.get(key):
            return str(p[key]).upper().lstrip("T")
    return None


def select_tile(items: Sequence[pystac.Item], tile: str) -> list[pystac.Item]:
    """Items of one MGRS tile (e.g. ``"33UUU"`` or ``"T33UUU"``).

    Raises
    ------
    InputError
        No item belongs to the tile; the message lists the tiles present.
    """
    want = tile.upper().lstrip("T")
    keep = [it for it in items if mgrs_tile(it) == want]
    if not keep:
        have = sorted({t for it in items if (t := mgrs_tile(it))})
        raise InputError(f"grid tile {tile!r}: no item of this MGRS tile in the time window "
                         f"(tiles present: {', '.join(have) or 'none with MGRS metadata'})")
    return keep


def utm_crs(lon: float, lat: float) -> str:
    """EPSG code (as ``"EPSG:326zz"``/``"EPSG:327zz"``) of the UTM zone of a lon/lat point."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


@dataclass
class ObservationMeta:
    """Per-observation (solar day) metadata, in time order."""

    dates: list[dt.date]
    times: np.ndarray  # datetime64[ns], first item of the day
    offset_dn: np.ndarray  # int32 [T]
    sun_zenith: np.ndarray  # float32 [T], degrees
    item_ids: list[list[str]]


def observation_meta(items: Sequence[pystac.Item], assets: dict[str, str], sensor: Sensor = SENSOR) -> ObservationMeta:
    """Group items by the sensor's solar day and derive offset and sun zenith per day.

    The grouping callable is the one :func:`load_cube` hands to odc-stac (``groupby``), so
    ``dates`` and the cube's time axis agree one to one.
    """
    groups: dict[dt.date, list[pystac.Item]] = {}
    for it in items:
        groups.setdefault(sensor.solar_day(it, None, None), []).append(it)
    dates = sorted(groups)
    offs, zen, ids, times = [], [], [], []
    for d in dates:
        g = sorted(groups[d], key=lambda it: (_item_interval(it)[0], it.id))
        o = {item_offset_dn(it, assets[sensor.band("red")], sensor) for it in g}
        if len(o) > 1:
            raise InputError(
                f"items of solar day {d} ({', '.join(it.id for it in g)}) disagree on BOA_ADD_OFFSET {sorted(o)}"
            )
        offs.append(o.pop())
        elev = [e for it in g if (e := sun_elevation(it)) is not None]
        zen.append(90.0 - float(np.mean(elev)) if elev else 0.0)
        ids.append([it.id for it in g])
        times.append(np.datetime64(_item_interval(g[0])[0].replace(tzinfo=None), "ns"))
    return ObservationMeta(
        dates=dates, times=np.array(times, dtype="datetime64[ns]"),
        offset_dn=np.array(offs, dtype=np.int32), sun_zenith=np.array(zen, dtype=np.float32),
        item_ids=ids,
    )


def load_cube(items: Sequence[pystac.Item], geobox, assets: dict[str, str], *, chunks=None, pool: int | None = None,
              bands: Sequence[str] = ALL_ASSETS, sensor: Sensor = SENSOR, progress=None):
    """Load items onto ``geobox`` with odc-stac, fused by the sensor's solar day.

    ``bands`` (our names, default all of B02..B12 and SCL) selects what is read. Items are
    grouped by ``groupby=sensor.solar_day``, the callable :func:`observation_meta` uses.
    ``progress`` (eager loads only) is odc-stac's tqdm-like hook: called with a sized iterable
    of the read tasks, it returns an iterable that yields them (e.g. to report dates read).

    Returns
    -------
    xarray.Dataset
        Raw DN variables named by our band names (B02..B12 uint16, SCL uint8), dims
        (time, y, x); lazy (dask) if ``chunks`` is given.
    """
    import odc.stac

    keys = [assets[b] for b in bands]
    resampling = {assets[b]: "average" for b in sensor.band_names}
    resampling[assets[sensor.quality.band]] = "nearest"
    # Force the L2A data types and nodata: items without ``raster:bands`` (or with partial
    # metadata) would otherwise load as float32 with NaN fill.
    stac_cfg = sensor.stac_cfg(assets)
    try:
        ds = odc.stac.load(
            items, bands=keys, geobox=geobox, groupby=sensor.solar_day, resampling=resampling,
            chunks=chunks, pool=pool, fail_on_error=True, stac_cfg=stac_cfg, progress=progress,
        )
    except Exception as exc:
        raise InputError(f"loading {len(items)} STAC item(s) failed: {exc}") from exc
    return ds.rename({assets[b]: b for b in bands})


def to_reflectance(dn: np.ndarray, offset_dn: np.ndarray, dn_nodata: int = SENSOR.dn_nodata) -> np.ndarray:
    """Raw DN [T, B, Y, X] (``dn_nodata``, 0 for S2) -> offset-corrected int16 x 10000 with REFL_NODATA.

    ``offset_dn`` is [T] (BOA_ADD_OFFSET per observation, 0 or -1000).
    """
    off = np.asarray(offset_dn, dtype=np.int32).reshape((-1,) + (1,) * (dn.ndim - 1))
    refl = dn.astype(np.int32) + off
    np.clip(refl, -32767, 32767, out=refl)
    refl[dn == dn_nodata] = REFL_NODATA
    return refl.astype(np.int16)


__all__ = [
    "BOA_ADD_OFFSET_PB04",
    "ObservationMeta",
    "Rejection",
    "SceneSelection",
    "check_api_hrefs",
    "filter_scenes",
    "item_lon",
    "item_offset_dn",
    "load_cube",
    "mgrs_tile",
    "observation_meta",
    "resolve_assets",
    "search_items",
    "select_tile",
    "solar_day",
    "sun_elevation",
    "to_reflectance",
    "utm_crs",
]
