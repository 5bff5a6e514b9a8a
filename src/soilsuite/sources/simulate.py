"""Simulated Sentinel-2 L2A archive with known truth (static STAC catalog of COGs).

``simulate(out, ...)`` writes a folder that looks like a slice of the Earth Search
``sentinel-2-l2a`` collection: a static STAC catalog (``catalog.json`` -> Collection
``sentinel-2-l2a`` -> one Item per acquisition and MGRS tile) whose assets are uint16 DN
Cloud-Optimized GeoTIFFs (10 m bands at 10 m, 20 m bands and SCL at 20 m), the processing-
baseline offset applied as the real data has it (DN = reflectance x 10000 + 1000 from
2022-01-25), a real-style ESA WorldCover raster (EPSG:4326, 1/12000 degree, with label noise)
and the truth: land cover, field ids, soil types, dry-soil spectra, soil properties and per
observation flags (really bare, cloud, shadow, haze, snow, dry vegetation, moist soil).

The scene (see ``_sim_scene`` for the sources of the spectra): Voronoi/strip field parcels with
per-field crop rotations and calendars (sowing, emergence, winter plateau, peak, senescence,
harvest, stubble, tillage, cover crops, no-till farms), permanent grassland with mowing and
dry summers, deciduous and coniferous forest, villages and a road, a river and a lake; four soil
types with smooth fields of SOC, clay, pH and iron driving the soil spectrum; soil moisture from
a daily rain/drying series darkening the soil (most in the SWIR); linear mixing of green, dry
vegetation and soil per pixel and date plus mixed pixels at parcel edges; clouds (smooth random
fields, thin edges), cirrus, cloud shadows displaced by the sun geometry and a cloud height, haze
as additive path radiance (blue most), snow events in winter, sensor noise; an SCL layer derived
from the truth with realistic errors (missed thin cloud and haze, missed shadows, unclassified
speckle, a little commission on bright surfaces); orbit-edge no-data on some scenes.

Everything is drawn from ``numpy.random.SeedSequence(seed)`` streams: the same arguments give the
same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..sensors.sentinel2 import (
    BANDS,
    BOA_ADD_OFFSET_PB04,
    EARTH_SEARCH_KEYS,
    PB04_START,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_CLOUD_SHADOW,
    SCL_DARK,
    SCL_NO_DATA,
    SCL_NOT_VEGETATED,
    SCL_SNOW,
    SCL_THIN_CIRRUS,
    SCL_UNCLASSIFIED,
    SCL_VEGETATION,
    SCL_WATER,
    SENTINEL2_L2A,
)
from ..sentinel2 import WORLDCOVER_CLASSES
from . import _sim_scene as S

__all__ = [
    "SimulationResult", "simulate", "load_truth", "TRUTH_CLASSES", "TRUTH_BARE", "TRUTH_CLOUD",
    "TRUTH_SHADOW", "TRUTH_HAZE", "TRUTH_SNOW", "TRUTH_DRYVEG", "TRUTH_DRY_VEGETATION",
    "TRUTH_MOIST", "TRUTH_MOIST_SOIL", "SOIL_TYPES", "TRUTH_TO_WORLDCOVER",
]

#: Truth land-cover codes of ``truth/landcover.tif``.
TRUTH_CLASSES: dict[int, str] = {1: "cropland", 2: "grassland", 3: "forest", 4: "built-up", 5: "water"}
#: Bits of ``truth/obs_flags.tif`` (one band per acquisition date).
TRUTH_BARE = 1  # really bare: soil fraction >= 0.85 and not cloud / shadow / snow
TRUTH_CLOUD = 2  # cloud (thick, thin edges, cirrus) over the pixel
TRUTH_SHADOW = 4  # cloud shadow
TRUTH_HAZE = 8  # haze adding >= 0.008 reflectance (80 DN) in B02
TRUTH_SNOW = 16  # snow fraction >= 0.5
TRUTH_DRYVEG = 32  # dry vegetation (stubble, straw, litter, senescent grass) dominates
TRUTH_MOIST = 64  # soil fraction >= 0.5 and moisture darkening index >= 0.25 (B12 -15 %)
TRUTH_DRY_VEGETATION = TRUTH_DRYVEG
TRUTH_MOIST_SOIL = TRUTH_MOIST
SOIL_TYPES = S.SOIL_TYPES
#: WorldCover class of each truth class.
TRUTH_TO_WORLDCOVER = {1: 40, 2: 30, 3: 10, 4: 50, 5: 80}

RES = 20.0
BARE_SOIL_FRACTION = 0.85
STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
]
_SHADOW_LOSS = S.SHADOW_LOSS.astype("float32")
_HAZE_SHAPE = S.HAZE_SHAPE.astype("float32")
_CIRRUS = S.CIRRUS.astype("float32")
_CLOUD = S.CLOUD.astype("float32")
_COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_IDX10 = [BANDS.index(b) for b in BANDS if SENTINEL2_L2A.native_res_m[b] == 10]


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote and where (the 20 m grid of the truth)."""

    out: Path
    catalog_path: Path
    epsg: int
    bbox_lonlat: tuple[float, float, float, float]
    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]
    resolution: float
    transform: object
    dates: list[dt.date]
    item_ids: list[str]
    worldcover_path: Path
    truth_dir: Path
    n_bytes: int
    collection_path: Path | None = None
    cloud_cover: list[float] = field(default_factory=list)
    landcover_shares: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def geobox(self):
        """odc.geo GeoBox of the 20 m grid."""
        from odc.geo.geobox import GeoBox

        return GeoBox(self.shape, self.transform, self.crs)

    def summary(self):
        """A rich table: size, dates, scenes, mean cloud cover, archive size, land cover, paths."""
        from rich.table import Table

        t = Table(title=f"simulated Sentinel-2 L2A archive -> {self.out}", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        ny, nx = self.shape
        km = nx * self.resolution / 1000
        t.add_row("area", f"{km:.2f} x {ny * self.resolution / 1000:.2f} km, {nx} x {ny} px at "
                  f"{self.resolution:g} m (10 m bands {2 * nx} x {2 * ny}), EPSG:{self.epsg}")
        w, s, e, n = self.bbox_lonlat
        t.add_row("bbox (lon/lat)", f"{w:.4f}, {s:.4f}, {e:.4f}, {n:.4f}")
        if self.dates:
            t.add_row("dates", f"{self.dates[0]} .. {self.dates[-1]}, {len(self.dates)} acquisitions")
        t.add_row("STAC items", f"{len(self.item_ids)} (11 COG assets each)")
        if self.cloud_cover:
            cc = np.asarray(self.cloud_cover)
            t.add_row("cloud cover", f"mean {cc.mean():.1f} %, {np.mean(cc < 10) * 100:.0f} % of scenes < 10 %, "
                      f"{np.mean(cc > 80) * 100:.0f} % > 80 %")
        t.add_row("archive size", f"{self.n_bytes / 1e6:.1f} MB")
        if self.landcover_shares:
            t.add_row("land cover", ", ".join(f"{k} {v * 100:.0f} %" for k, v in self.landcover_shares.items()))
        t.add_row("catalog", str(self.catalog_path))
        t.add_row("WorldCover", str(self.worldcover_path))
        t.add_row("truth", f"{self.truth_dir} (load with soilsuite.load_truth)")
        if self.seconds:
            t.add_row("time", f"{self.seconds:.1f} s")
        return t


# ------------------------------------------------------------------------------------------
# parameters and grid
# ------------------------------------------------------------------------------------------
def _check(size, start, end, revisit_days, epsg, cloud_fraction) -> None:
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ConfigError(f"size: expected an integer >= 16 (20 m pixels), got {size!r}")
    if not isinstance(start, dt.date) or not isinstance(end, dt.date):
        raise ConfigError(f"start/end: expected dates, got start={start!r}, end={end!r}")
    if end < start:
        raise ConfigError(f"end: expected end >= start, got start={start} end={end}")
    if not isinstance(revisit_days, (int, np.integer)) or revisit_days < 1:
        raise ConfigError(f"revisit_days: expected an integer >= 1, got {revisit_days!r}")
    if not (0.0 <= float(cloud_fraction) <= 1.0):
        raise ConfigError(f"cloud_fraction: expected a value in [0, 1], got {cloud_fraction!r}")
    if not (isinstance(epsg, (int, np.integer)) and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760)):
        raise ConfigError(f"epsg: expected a WGS 84 / UTM code (32601-32660 or 32701-32760), got {epsg!r}")


def _mgrs(epsg: int, lat: float, easting: float, northing: float) -> tuple[str, str, str]:
    zone = epsg % 100
    bands = "CDEFGHJKLMNPQRSTUVWX"
    band = bands[min(19, max(0, int((lat + 80) // 8)))]
    col = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3][max(0, min(7, int(easting // 100000) - 1))]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}", band, col + row


def _dates(start: dt.date, end: dt.date, revisit: int, offset: int) -> list[dt.date]:
    d0 = start + dt.timedelta(days=offset % revisit)
    n = (end - d0).days // revisit + 1 if d0 <= end else 0
    return [d0 + dt.timedelta(days=revisit * i) for i in range(max(0, n))]


# ------------------------------------------------------------------------------------------
# writing helpers
# ------------------------------------------------------------------------------------------
def _write_cog(path: Path, arr: np.ndarray, transform, epsg: int, nodata=0, descriptions=None) -> None:
    import rasterio

    a = arr if arr.ndim == 3 else arr[None]
    with rasterio.open(
        path, "w", driver="COG", width=a.shape[2], height=a.shape[1], count=a.shape[0], dtype=a.dtype.name,
        crs=f"EPSG:{epsg}", transform=transform, nodata=nodata, compress="DEFLATE",
        predictor=3 if a.dtype.kind == "f" else 2, blocksize=256, overview_resampling="nearest",
        BIGTIFF="NO",
    ) as dst:
        dst.write(a)
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                dst.set_band_description(i, d)


def _writer_pool(n: int, n_dates: int):
    """Where the COGs are encoded: GDAL's COG writer holds the GIL, so large archives use two
    worker processes (the scene computation goes on meanwhile); small ones a thread."""
    if n * n * n_dates >= 128 * 128 * 40 and _spawn_safe():
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"))
    return ThreadPoolExecutor(max_workers=1)


def _spawn_safe() -> bool:
    """True if 'spawn' worker processes can start: the main module is not a script that would
    re-run its top level in each worker (no ``if __name__ == "__main__"`` guard)."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return True  # interactive, python -c
    try:
        src = Path(path).read_text(errors="ignore")
    except OSError:
        return False
    return "__main__" in src


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


# ------------------------------------------------------------------------------------------
# the simulator
# ------------------------------------------------------------------------------------------
def simulate(
    out: str | os.PathLike,
    *,
    size: int = 256,
    start: dt.date = dt.date(2021, 1, 1),
    end: dt.date = dt.date(2022, 12, 31),
    revisit_days: int = 5,
    seed: int = 0,
    epsg: int = 32633,
    cloud_fraction: float = 0.35,
    overlap_tiles: bool = True,
    overwrite: bool = False,
    force_clean: bool = False,
    progress: bool = False,
    hrefs: str = "relative",
    format: str = "stac",  # noqa: A002
    safe_zip: bool = False,
    safe_duplicate: bool = False,
    ploughed_grassland: float = 0.0,
    spectra: str = "v1",
    regional_brightness: float = 0.0,
) -> SimulationResult:
    """Write a simulated Sentinel-2 L2A archive (static STAC catalog of COGs) with truth.

    Parameters
    ----------
    out : path
        Archive folder (created; written to a temporary sibling and renamed when complete).
    size : int
        Scene side in 20 m pixels (>= 16); 10 m bands have ``2 * size`` pixels.
    start, end : datetime.date
        First and last possible acquisition date.
    revisit_days : int
        Days between acquisitions (S2A and S2B alternate).
    seed : int
        Random seed; the same arguments give byte-identical archives.
    epsg : int
        WGS 84 / UTM CRS of the grid (326xx north, 327xx south).
    cloud_fraction : float
        Mean scene cloud cover (0-1).
    overlap_tiles : bool
        Also write, for every acquisition, an item of the neighbouring MGRS tile covering the
        western quarter of the area with the same pixel values (as real overlapping tiles), so
        readers must fuse same-day items (``groupby="solar_day"``).
    overwrite : bool
        Replace an earlier simulated archive in ``out``: only the files soilsuite wrote are
        removed, and only if no other file is there and none was changed
        (:mod:`soilsuite.io.manifest`).
    force_clean : bool
        With ``overwrite``, also replace soilsuite's files that were changed, and write beside
        files soilsuite did not write (they are kept).
    progress : bool
        Show a rich progress bar.
    hrefs : {"relative", "absolute"}
        Asset hrefs of the items: ``"relative"`` (``./red.tif``, the archive folder can be moved)
        or ``"absolute"`` (``file://`` URIs of the COGs in ``out``), which stay valid when the
        items are served by a STAC API (relative hrefs would resolve against the API URL, and
        bare absolute paths against its host, see docs/products.md "STAC APIs").
    format : {"stac", "safe"}
        ``"safe"``: write the archive as Sentinel-2 L2A SAFE products (real layout, metadata XML,
        lossless JPEG2000; ``composite`` reads the folder) instead of the STAC catalog of COGs;
        WorldCover and truth as always (docs/safe.md).
    safe_zip : bool
        With ``format="safe"``: each product as ``<name>.zip`` holding ``<name>.SAFE/``.
    safe_duplicate : bool
        With ``format="safe"``: add one older-baseline twin of a product (same tile and time,
        DN + 50), which readers must drop (newest baseline wins).
    ploughed_grassland : float
        Share (0-1) of the grassland fields ploughed once in the window (bare for 25-45 days in
        spring or late summer, then resown); the fields and dates are in ``truth/events.json``
        and ``truth/fields.geojson`` (property ``ploughed``). 0 (default) leaves the imagery
        byte-identical to earlier releases.
    spectra : {"v1", "field"}
        Endmember spectra (``_sim_scene.endmembers``): ``"v1"`` (default, the spectra of earlier
        releases: byte-identical archives) or ``"field"``: residue, soil SWIR and moisture
        re-fitted so that the NBR2 and PV+IR2 distributions of bare soil, dry vegetation and
        green vegetation come close to those of 3937 field sites with measured cover
        (docs/simulator.md "Spectral sets"). The landscape, calendars, sky and noise are the
        same for both (same random draws).
    regional_brightness : float
        Amplitude (0-0.5, natural-log NIR gain) of regionally different soil and dry-vegetation
        NIR brightness (``_sim_regional``): the PV+IR2 value that separates bare soil from
        vegetation then varies smoothly across the scene (mostly west-east); the best threshold
        of each 640 m region is written to ``truth/threshold.tif`` and ``truth/threshold.json``
        (docs/simulator.md, docs/thresholds.md).
        0 (default) leaves the archive byte-identical.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ConfigError
        A parameter out of range (the message names it).
    OutputExistsError
        ``out`` holds an archive and ``overwrite`` is False, or files soilsuite did not write.
    """
    import time

    t_start = time.perf_counter()
    _check(size, start, end, revisit_days, epsg, cloud_fraction)
    if not 0.0 <= float(ploughed_grassland) <= 1.0:
        raise ConfigError(f"ploughed_grassland: expected a share 0-1 of the grassland fields, got {ploughed_grassland}")
    if hrefs not in ("relative", "absolute"):
        raise ConfigError(f"hrefs: expected 'relative' or 'absolute', got {hrefs!r}")
    if format not in ("stac", "safe"):
        raise ConfigError(f"format: expected 'stac' or 'safe', got {format!r}")
    if spectra not in S.SPECTRA:
        raise ConfigError(f"spectra: expected one of {', '.join(S.SPECTRA)}, got {spectra!r}")
    if not 0.0 <= float(regional_brightness) <= 0.5:
        raise ConfigError(f"regional_brightness: expected an amplitude 0-0.5 (log NIR gain), got {regional_brightness}")
    size = int(size)
    out = Path(out).absolute()  # relative paths would leak the temporary folder into the hrefs
    from ..io.manifest import OutputFolder

    def fill(tmp: Path) -> SimulationResult:
        res = _simulate_into(tmp, out, size=size, start=start, end=end, revisit_days=int(revisit_days),
                             seed=int(seed), epsg=int(epsg), cloud_fraction=float(cloud_fraction),
                             overlap_tiles=bool(overlap_tiles), progress=progress, hrefs=hrefs,
                             ploughed_grassland=float(ploughed_grassland), spectra=spectra,
                             regional_brightness=float(regional_brightness))
        if format == "safe":  # SAFE products instead of the catalog of COGs (_sim_safe.py)
            from ._sim_safe import to_safe

            to_safe(tmp, res, zip=safe_zip, duplicate=safe_duplicate)
        return res

    # written into a scratch folder inside ``out``, then moved in; an earlier archive's files
    # are removed only with overwrite, never a file soilsuite did not write (io/manifest.py)
    res = OutputFolder(out, "simulate").build(fill, overwrite=overwrite, force_clean=force_clean, what="archive")
    res.n_bytes = _dir_bytes(out)
    res.seconds = time.perf_counter() - t_start
    return res


def _simulate_into(tmp: Path, out: Path, *, size, start, end, revisit_days, seed, epsg, cloud_fraction,
                   overlap_tiles, progress, hrefs="relative", ploughed_grassland=0.0,
                   spectra="v1", regional_brightness=0.0) -> SimulationResult:
    import pystac
    from affine import Affine
    from pyproj import Transformer

    n = size
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_land, rng_soil, rng_cal, rng_wx, rng_sky, rng_noise, rng_wc, rng_misc = (
        np.random.default_rng(s) for s in streams)

    # grid: 20 m, origin snapped to 20 m (and to 10 m for the 10 m assets)
    x0 = 400000.0
    y0 = 5800000.0 if epsg < 32700 else 4200000.0
    y0 += float(rng_misc.integers(0, 50)) * 1000.0
    x0 += float(rng_misc.integers(0, 50)) * 1000.0
    transform = Affine(RES, 0.0, x0, 0.0, -RES, y0)
    t10 = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    bounds = (x0, y0 - n * RES, x0 + n * RES, y0)
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    bbox_ll = tuple(float(v) for v in to_ll.transform_bounds(*bounds, densify_pts=21))
    lon_c, lat_c = to_ll.transform(x0 + n * RES / 2, y0 - n * RES / 2)
    zone, lat_band, square = _mgrs(epsg, lat_c, x0, y0)
    west_square = _mgrs(epsg, lat_c, x0 - 100000.0, y0)[2]

    dates = _dates(start, end, revisit_days, int(rng_misc.integers(0, revisit_days)))
    T = len(dates)
    days = np.array([d.toordinal() for d in dates], dtype="float64")

    # ---- static scene ----------------------------------------------------------------
    land = S.landscape(rng_land, n)
    lc, fid, edge, conifer = land["landcover"], land["field_id"], land["edge"], land["conifer"]
    soil = S.soils(rng_soil, n, spectra)
    em = S.endmembers(spectra)
    soil_dry = soil["soil_reflectance"].astype("float64")
    n_fields = int(fid.max())
    fclass = np.zeros(n_fields + 1, "uint8")
    fclass[fid[fid > 0]] = lc[fid > 0]
    y_first, y_last = start.year, end.year
    events: dict[int, list] = {}
    G, D = S.field_calendars(rng_cal, n_fields, fclass, days, y_first, y_last, events)
    # grassland ploughing (issue 15): its own random stream, so the other draws are unchanged
    ploughed = S.plough_grassland(np.random.default_rng([seed, 15]), G, D, fclass, days, y_first, y_last,
                                  ploughed_grassland) if ploughed_grassland > 0 else {}
    g_margin, d_margin = S._grass_curve(rng_cal, days, y_first, y_last)
    het_g = np.clip(1.0 + 0.07 * S.smooth_field(rng_cal, (n, n), 6), 0.75, 1.2)
    het_d = np.clip(1.0 + 0.10 * S.smooth_field(rng_cal, (n, n), 8), 0.7, 1.3)
    dry_age = np.clip(0.5 + 0.25 * S.smooth_field(rng_cal, (n, n), 20), 0, 1)
    built_green = np.clip(0.25 + 0.12 * S.smooth_field(rng_cal, (n, n), 2), 0.0, 0.6)
    wetness = np.clip(0.75 + 0.15 * S.smooth_field(rng_wx, (n, n), n / 8)
                      + 0.10 * (soil["clay"] > 25) + 0.15 * (soil["soil_type"] == 4), 0.3, 1.3)
    moist_series = S.moisture(rng_wx, int(days[0]) if T else start.toordinal(), int(days[-1]) + 1 if T else start.toordinal() + 1)
    green_spec = np.where(conifer[None], S.GREEN_CONIFER[:, None, None], em["green"][:, None, None])
    other = np.zeros((10, n, n))
    other[:, lc == S.LC_FOREST] = S.WOOD[:, None]
    other[:, lc == S.LC_BUILT] = S.URBAN[:, None]
    other[:, lc == S.LC_WATER] = S.WATER[:, None]
    # static 10 m texture with zero mean over each 2 x 2 block (keeps the 20 m mean)
    tex = (S.smooth_field(rng_noise, (2 * n, 2 * n), 0.7) * 0.006).astype("float32")
    tex -= np.repeat(np.repeat(tex.reshape(n, 2, n, 2).mean(axis=(1, 3)), 2, 0), 2, 1)
    tex_gain = (1.0 + 4.0 * tex)[None]
    tex_add = (0.3 * tex)[None]
    yy, xx = np.mgrid[0:n, 0:n]

    # snow events: a few winter spells
    snow_depth = np.zeros(T)
    for y in range(y_first - 1, y_last + 1):
        for _ in range(int(rng_wx.integers(0, 3))):
            c = dt.date(y, 12, 1).toordinal() + rng_wx.uniform(0, 85)
            snow_depth += np.clip(1.0 - np.abs(days - c) / rng_wx.uniform(4, 14), 0, 1)
    snow_depth = np.clip(snow_depth, 0, 1)

    # scene cloud fractions: U-shaped Beta around the requested mean (many clear, many overcast)
    if cloud_fraction <= 0.0 or cloud_fraction >= 1.0:
        c_scene = np.full(T, cloud_fraction)
    else:
        k = 0.9
        # stratified quantiles: the realised mean stays close to the requested one
        from scipy.stats import beta as _beta

        u = (rng_sky.permutation(T) + rng_sky.uniform(size=T)) / max(T, 1)
        c_scene = _beta.ppf(u, cloud_fraction * k, (1 - cloud_fraction) * k)

    # static arrays for the loop (float32)
    from scipy.ndimage import uniform_filter

    infield = fid > 0
    fid_in = fid[infield]
    margin = (fid == 0) & (lc == S.LC_GRASS)
    forest = lc == S.LC_FOREST
    built = lc == S.LC_BUILT
    water = lc == S.LC_WATER
    o_any = forest | built | water
    snow_cover = np.where(forest, 0.35, np.where(water, 0.0, np.where(built, 0.7, 1.0)))
    f32 = "float32"
    soil_dry = soil_dry.astype(f32)
    soil_moist_loss = (soil_dry * em["moist_loss"][:, None, None]).astype(f32)
    green_spec = green_spec.astype(f32)
    other = other.astype(f32)
    dry_fresh = em["dry_fresh"][:, None, None].astype(f32)
    dry_old_minus_fresh = (em["dry_old"] - em["dry_fresh"])[:, None, None].astype(f32)
    het_g, het_d, built_green = het_g.astype(f32), het_d.astype(f32), built_green.astype(f32)
    true_thr = None
    if regional_brightness > 0:  # issue 11: regionally different soil / dry-vegetation NIR brightness
        from . import _sim_regional

        gain = _sim_regional.regional_gain(n, regional_brightness).astype(f32)
        soil_dry = soil_dry * gain
        soil["soil_reflectance"] = soil_dry
        soil_moist_loss = soil_moist_loss * gain
        dry_fresh = dry_fresh * gain
        dry_old_minus_fresh = dry_old_minus_fresh * gain
        true_thr = _sim_regional.ThresholdTruth(lc)

    # ---- per acquisition ---------------------------------------------------------------
    coll_dir = tmp / "sentinel-2-l2a"
    coll_dir.mkdir()
    flags_all = np.zeros((T, n, n), "uint8")
    soilfrac_all = np.zeros((T, n, n), "uint8")
    greenfrac_all = np.zeros((T, n, n), "uint8")  # truth/green_fraction.tif, dry_fraction.tif
    dryfrac_all = np.zeros((T, n, n), "uint8")
    items: list[pystac.Item] = []
    cloud_cover: list[float] = []
    item_ids: list[str] = []
    pool = _writer_pool(n, T)
    futures: list = []
    from ..progress import progress_bar

    prog = progress_bar(progress)
    prog.start()
    task = prog.add_task("simulating scenes", total=T)
    try:
        for ti, date in enumerate(dates):
            doy = date.timetuple().tm_yday
            # --- surface fractions (float32 throughout: this loop is the hot path)
            g = np.zeros((n, n), "float32")
            d = np.zeros((n, n), "float32")
            g[infield] = G[fid_in, ti]
            d[infield] = D[fid_in, ti]
            g[margin], d[margin] = g_margin[ti], d_margin[ti]
            g *= het_g
            d *= het_d
            leaf = _leaf_on(doy)
            g[forest] = np.where(conifer[forest], 0.85, 0.12 + 0.78 * leaf)
            g[built] = built_green[built] * (0.5 + 0.5 * leaf)
            o = np.zeros((n, n), "float32")
            o[forest] = 1.0 - g[forest]
            o[built] = 1.0 - g[built]
            o[water] = 1.0
            tot = g + d + o
            over = tot > 1
            g[over] /= tot[over]
            d[over] /= tot[over]
            o[over] /= tot[over]
            s = np.clip(1.0 - g - d - o, 0.0, 1.0)
            m = np.clip(0.6 * moist_series[int(days[ti]) - int(days[0])] * wetness, 0, 1).astype("float32")
            wold = np.clip(dry_age + 0.3 * math.cos(2 * math.pi * (doy - 15) / 365.0), 0, 1).astype("float32")
            # linear mixture: green + dry vegetation + (moist) soil + other (wood, urban, water)
            refl = soil_dry * s
            refl -= soil_moist_loss * (s * m)
            refl += green_spec * g
            refl += dry_fresh * d
            refl += dry_old_minus_fresh * (d * wold)
            refl[:, o_any] += other[:, o_any] * o[o_any]
            # mixed pixels at parcel edges: linear mixing with the 3 x 3 neighbourhood
            stack = np.concatenate([refl, g[None], d[None], s[None]])
            mixed = uniform_filter(stack, size=(1, 3, 3), mode="nearest")
            stack[:, edge] = stack[:, edge] * 0.55 + mixed[:, edge] * 0.45
            refl, g, d, s = stack[:10], stack[10], stack[11], stack[12]
            # --- snow
            snow = np.zeros((n, n), "float32")
            if snow_depth[ti] > 0:
                sf = S.smooth_field(rng_wx, (n, n), n / 10)
                snow = (np.clip(snow_depth[ti] * 1.6 * snow_cover + 0.25 * sf - 0.3, 0, 1) * (snow_cover > 0)).astype("float32")
                k_ = snow > 0
                refl[:, k_] = refl[:, k_] * (1 - snow[k_]) + S.SNOW[:, None].astype("float32") * snow[k_]
            # --- sun geometry
            minute = 30 + rng_sky.uniform(-8, 8)
            solar_t = dt.datetime(date.year, date.month, date.day, 10, 0) + dt.timedelta(minutes=minute)
            when = solar_t - dt.timedelta(hours=lon_c / 15.0)
            when = when.replace(microsecond=0)
            elev, az = S.sun_position(when, lat_c, lon_c)
            # --- clouds, shadows, cirrus, haze
            cf = float(c_scene[ti])
            alpha = np.zeros((n, n), "float32")
            if cf > 0.003:
                F = S.smooth_field(rng_sky, (n, n), max(3.0, n / 9)) + 0.45 * S.smooth_field(rng_sky, (n, n), max(1.5, n / 40))
                thr = np.quantile(F, 1 - cf) if cf < 0.999 else F.min() - 1
                alpha = (np.clip((F - thr) / 0.8, 0, 1) ** 1.2 * (F > thr)).astype("float32")
            height = rng_sky.uniform(700, 3000)
            shift = height / math.tan(math.radians(max(elev, 5.0)))
            drow = int(round(shift * math.cos(math.radians(az)) / RES))
            dcol = int(round(-shift * math.sin(math.radians(az)) / RES))
            shadow = np.roll(alpha, (drow, dcol), axis=(0, 1)) * np.float32(0.95)
            shadow[alpha > 0.02] = 0.0
            cirrus = np.zeros((n, n), "float32")
            if rng_sky.uniform() < 0.15 * cloud_fraction:
                cirrus = np.clip(rng_sky.uniform(0.05, 0.3) * (0.5 + 0.6 * S.smooth_field(rng_sky, (n, n), n / 6)), 0, 0.5).astype("float32")
            haze = np.zeros((n, n), "float32")
            if rng_sky.uniform() < min(0.3, cloud_fraction):
                haze = np.clip(rng_sky.uniform(0.006, 0.05) * (0.8 + 0.5 * S.smooth_field(rng_sky, (n, n), n / 4)), 0, 0.1).astype("float32")
            for layer, op in ((shadow, "shadow"), (haze, "haze"), (cirrus, "cirrus"), (alpha, "cloud")):
                k_ = layer > 0
                if not k_.any():
                    continue
                v = layer[k_]
                r = refl[:, k_]
                if op == "shadow":
                    r *= 1 - _SHADOW_LOSS[:, None] * v
                elif op == "haze":
                    r = r * (1 - 0.4 * v) + _HAZE_SHAPE[:, None] * v
                elif op == "cirrus":
                    r = r * (1 - v) + _CIRRUS[:, None] * v
                else:
                    r = r * (1 - v) + _CLOUD[:, None] * v
                refl[:, k_] = r
            # --- truth flags
            t_cloud = (alpha > 0.02) | (cirrus > 0.06)
            t_shadow = (shadow > 0.25) & ~t_cloud
            t_snow = snow >= 0.5
            t_haze = (haze >= 0.008) | ((cirrus > 0.01) & ~t_cloud)
            clear_surface = ~(t_cloud | t_shadow | t_snow)
            t_bare = (s >= BARE_SOIL_FRACTION) & clear_surface & (lc != S.LC_BUILT) & (lc != S.LC_WATER)
            t_dry = (d > g) & (d > s) & (d >= 0.35)
            t_moist = (s >= 0.5) & (m >= 0.25)
            flags = (t_bare * TRUTH_BARE | t_cloud * TRUTH_CLOUD | t_shadow * TRUTH_SHADOW | t_haze * TRUTH_HAZE
                     | t_snow * TRUTH_SNOW | t_dry * TRUTH_DRYVEG | t_moist * TRUTH_MOIST).astype("uint8")
            # --- orbit-edge no-data on some scenes
            nodata = np.zeros((n, n), bool)
            if rng_sky.uniform() < 0.08:
                frac = rng_sky.uniform(0.05, 0.35)
                a = xx * 0.9 + yy * 0.35
                nodata = a > np.quantile(a, 1 - frac)
            flags_all[ti] = np.where(nodata, 0, flags)
            soilfrac_all[ti] = np.where(nodata, 0, np.round(np.clip(s, 0, 1) * 100)).astype("uint8")
            greenfrac_all[ti] = np.where(nodata, 0, np.round(np.clip(g, 0, 1) * 100)).astype("uint8")
            dryfrac_all[ti] = np.where(nodata, 0, np.round(np.clip(d, 0, 1) * 100)).astype("uint8")
            # --- SCL
            scl = _scl(rng_sky, refl, lc, alpha, cirrus, shadow, haze, snow, nodata, n)
            # --- noise and DN
            noise20 = rng_noise.standard_normal((10, n, n), dtype=np.float32) * (0.0008 + 0.004 * refl)
            r20 = refl + noise20
            if true_thr is not None:
                true_thr.add(r20, flags, nodata, bare_bit=TRUTH_BARE,
                             cloudy_bits=TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW)
            offset = -BOA_ADD_OFFSET_PB04 if date >= PB04_START else 0
            dn20 = _to_dn(r20, offset, nodata)
            nd10 = np.repeat(np.repeat(nodata, 2, 0), 2, 1)
            r10 = np.repeat(np.repeat(refl[_IDX10], 2, 1), 2, 2)
            r10 *= tex_gain
            r10 += tex_add
            sig = r10 * np.float32(0.004)
            sig += np.float32(0.0008)
            sig *= rng_noise.standard_normal(r10.shape, dtype=np.float32)
            r10 += sig
            del sig
            dn10 = _to_dn(r10, offset, nd10)
            # --- scene metadata
            valid = ~nodata
            nvalid = max(1, int(valid.sum()))
            cc = float(np.isin(scl, (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS)).sum()) / nvalid * 100
            platform = "sentinel-2a" if ti % 2 == 0 else "sentinel-2b"
            pb = _baseline(date)
            tiles = [(square, 0, n)]
            if overlap_tiles:
                tiles.append((west_square, 0, max(4, n // 4)))
            for sq, c0, c1 in tiles:
                iid = f"S2{platform[-1].upper()}_{zone}{lat_band}{sq}_{date:%Y%m%d}_0_L2A"
                idir = coll_dir / iid
                idir.mkdir()
                sub_nd = nodata[:, c0:c1]
                tr20 = transform @ Affine.translation(c0, 0)
                tr10 = t10 @ Affine.translation(2 * c0, 0)
                for bi, b in enumerate(BANDS):
                    key = EARTH_SEARCH_KEYS[b]
                    if SENTINEL2_L2A.native_res_m[b] == 10:
                        arr = dn10[_IDX10.index(bi), :, 2 * c0:2 * c1]
                        futures.append(pool.submit(_write_cog, idir / f"{key}.tif", np.ascontiguousarray(arr), tr10, epsg))
                    else:
                        futures.append(pool.submit(_write_cog, idir / f"{key}.tif",
                                                   np.ascontiguousarray(dn20[bi, :, c0:c1]), tr20, epsg))
                futures.append(pool.submit(_write_cog, idir / "scl.tif", np.ascontiguousarray(scl[:, c0:c1]), tr20, epsg))
                sub_valid = ~sub_nd
                sub_cc = float(np.isin(scl[:, c0:c1], (8, 9, 10))[sub_valid].sum()) / max(1, int(sub_valid.sum())) * 100
                nd_pct = float(sub_nd.mean() * 100)
                item = _make_item(iid, idir, when, platform, pb, epsg, zone, lat_band, sq, sub_cc if c0 or c1 != n else cc,
                                  nd_pct, elev, az, (n, c1 - c0), tr20, tr10, to_ll, offset, date,
                                  asset_root=out if hrefs == "absolute" else None)
                items.append(item)
                item_ids.append(iid)
            cloud_cover.append(cc)
            # bound the number of scenes waiting to be written (memory)
            while len(futures) > 40:
                futures.pop(0).result()
            prog.advance(task)
        for f in futures:
            f.result()
    finally:
        pool.shutdown(wait=True)
        prog.stop()

    # ---- STAC catalog ----------------------------------------------------------------------
    cat = pystac.Catalog(id="soilsuite-simulated-archive",
                         description=f"Simulated Sentinel-2 L2A archive (soilsuite, seed {seed}); truth in truth/")
    t0 = dt.datetime.combine(dates[0] if dates else start, dt.time(), dt.UTC)
    t1 = dt.datetime.combine(dates[-1] if dates else end, dt.time(23, 59, 59), dt.UTC)
    coll = pystac.Collection(
        id="sentinel-2-l2a",
        description="Sentinel-2 Level-2A (simulated; Earth Search sentinel-2-l2a layout)",
        extent=pystac.Extent(pystac.SpatialExtent([list(bbox_ll)]), pystac.TemporalExtent([[t0, t1]])),
        license="proprietary",
        title="Sentinel-2 Level-2A (simulated)",
        summaries=pystac.Summaries({"platform": ["sentinel-2a", "sentinel-2b"], "constellation": ["sentinel-2"],
                                    "instruments": ["msi"], "gsd": [10]}),
    )
    cat.add_child(coll)
    for it in items:
        coll.add_item(it)
    cat.normalize_hrefs(str(tmp) + os.sep)  # trailing sep: a folder, not a file
    for it in items:
        it.make_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)

    # ---- WorldCover and truth ----------------------------------------------------------------
    wc_path = tmp / "worldcover.tif"
    _write_worldcover(wc_path, rng_wc, lc, fid, transform, epsg, bbox_ll)
    truth = tmp / "truth"
    truth.mkdir()
    _write_cog(truth / "landcover.tif", lc, transform, epsg, nodata=0)
    _write_cog(truth / "field_id.tif", fid.astype("int32"), transform, epsg, nodata=None)
    _write_cog(truth / "soil_type.tif", soil["soil_type"], transform, epsg, nodata=0)
    _write_cog(truth / "soil_reflectance.tif", soil["soil_reflectance"], transform, epsg, nodata=None,
               descriptions=list(BANDS))
    for name in ("soc", "clay", "ph"):
        _write_cog(truth / f"{name}.tif", soil[name].astype("float32"), transform, epsg, nodata=None, descriptions=[name])
    iso = [d.isoformat() for d in dates]
    if T:
        _write_cog(truth / "obs_flags.tif", flags_all, transform, epsg, nodata=None, descriptions=iso)
        _write_cog(truth / "soil_fraction.tif", soilfrac_all, transform, epsg, nodata=None, descriptions=iso)
        _write_cog(truth / "green_fraction.tif", greenfrac_all, transform, epsg, nodata=None, descriptions=iso)
        _write_cog(truth / "dry_fraction.tif", dryfrac_all, transform, epsg, nodata=None, descriptions=iso)
    if true_thr is not None:
        thr_px, thr_rows = true_thr.best()
        _write_cog(truth / "threshold.tif", thr_px, transform, epsg, nodata=None, descriptions=["pvir2_threshold"])
        (truth / "threshold.json").write_text(json.dumps({"region_px": _sim_regional.REGION_PX,
                                                          "regions": thr_rows}, indent=1))
    _write_fields(truth / "fields.geojson", fid, lc, transform, to_ll, ploughed)
    _write_events(truth / "events.json", events, ploughed, fclass, start, end)
    meta = {
        "seed": seed, "size": n, "epsg": epsg, "resolution": RES, "transform": list(transform)[:6],
        **({"spectra": spectra} if spectra != "v1" else {}),
        **({"regional_brightness": regional_brightness} if regional_brightness > 0 else {}),
        "dates": iso, "truth_classes": TRUTH_CLASSES, "soil_types": SOIL_TYPES,
        "flags": {"BARE": TRUTH_BARE, "CLOUD": TRUTH_CLOUD, "SHADOW": TRUTH_SHADOW, "HAZE": TRUTH_HAZE,
                  "SNOW": TRUTH_SNOW, "DRYVEG": TRUTH_DRYVEG, "MOIST": TRUTH_MOIST},
        "bare_soil_fraction": BARE_SOIL_FRACTION, "cloud_cover": [round(c, 4) for c in cloud_cover],
        "truth_cloud_fraction": [round(float(((f & TRUTH_CLOUD) > 0).mean()), 4) for f in flags_all],
    }
    (truth / "truth.json").write_text(json.dumps(meta, indent=1))

    shares = {TRUTH_CLASSES[k]: float((lc == k).mean()) for k in TRUTH_CLASSES}
    return SimulationResult(
        out=out, catalog_path=out / "catalog.json", epsg=epsg, bbox_lonlat=bbox_ll, bounds=bounds,
        shape=(n, n), resolution=RES, transform=transform, dates=dates, item_ids=item_ids,
        worldcover_path=out / "worldcover.tif", truth_dir=out / "truth", n_bytes=0,
        collection_path=out / "sentinel-2-l2a" / "collection.json", cloud_cover=cloud_cover,
        landcover_shares=shares,
    )


def _leaf_on(doy: int) -> float:
    """Deciduous leaf-on fraction by day of year (leaf-out late April-May, fall Oct-Nov)."""
    up = np.clip((doy - 110) / 30.0, 0, 1)
    down = np.clip((315 - doy) / 30.0, 0, 1)
    return float(min(up, down))


def _baseline(date: dt.date) -> str:
    if date >= dt.date(2023, 1, 1):
        return "05.09"
    if date >= PB04_START:
        return "04.00"
    if date >= dt.date(2021, 7, 1):
        return "03.01"
    if date >= dt.date(2021, 1, 26):
        return "03.00"
    return "02.14"


def _to_dn(r: np.ndarray, offset: int, nodata: np.ndarray) -> np.ndarray:
    dn = np.clip(np.rint(r * 10000.0) + offset, 1, 65535).astype("uint16")
    dn[..., nodata] = 0
    return dn


def _scl(rng, refl, lc, alpha, cirrus, shadow, haze, snow, nodata, n) -> np.ndarray:
    """Sen2Cor-like scene classification from the truth, with realistic errors."""
    b4, b8, b12 = refl[2], refl[6], refl[9]
    ndvi = (b8 - b4) / np.maximum(b8 + b4, 1e-6)
    scl = np.where(ndvi > 0.4, SCL_VEGETATION, SCL_NOT_VEGETATED).astype("uint8")
    scl[(lc == S.LC_WATER) & (snow < 0.5)] = SCL_WATER
    scl[(b8 < 0.06) & (b12 < 0.05) & (lc != S.LC_WATER)] = SCL_DARK
    scl[snow >= 0.5] = SCL_SNOW
    # speckle of unclassified pixels and some commission on bright surfaces
    u = rng.uniform(size=(n, n))
    scl[u < 0.003] = SCL_UNCLASSIFIED
    bright = (refl[0] > 0.13) & (ndvi < 0.3) & (snow < 0.5)
    scl[bright & (u > 0.996)] = SCL_CLOUD_MEDIUM
    # shadows: detected where dark enough and the detector field agrees (~80 %)
    det = S.smooth_field(rng, (n, n), max(2.0, n / 25))
    scl[(shadow > 0.3) & (det > -0.85)] = SCL_CLOUD_SHADOW
    scl[(shadow > 0.25) & (shadow <= 0.3) & (det > 0.5)] = SCL_CLOUD_SHADOW
    # haze: mostly missed; the thickest gets flagged as cloud medium or cirrus in places
    scl[(haze > 0.035) & (det > 0.3)] = SCL_CLOUD_MEDIUM
    # cirrus
    scl[(cirrus > 0.09) & (det > -0.6)] = SCL_THIN_CIRRUS
    # clouds: the thin edges are partly missed (threshold jittered in space)
    thr = 0.18 + 0.08 * np.clip(det, -1.5, 1.5)
    cl = alpha > thr
    scl[cl] = np.where(alpha[cl] > 0.55, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
    ring = (alpha > 0.02) & ~cl & (u > 0.75)
    scl[ring] = SCL_UNCLASSIFIED
    scl[nodata] = SCL_NO_DATA
    return scl


def _make_item(iid, idir, when, platform, pb, epsg, zone, lat_band, sq, cc, nd_pct, elev, az, shape20,
               tr20, tr10, to_ll, offset, date, asset_root=None):
    """One Earth Search style item. ``asset_root`` (the final archive folder) makes the asset
    hrefs absolute ``file://`` URIs there instead of paths in the temporary folder ``idir``."""
    import pystac

    def href(name: str) -> str:
        if asset_root is None:
            return str(idir / name)  # made relative to the item JSON when the catalog is saved
        # a file:// URI, not a bare path: behind a STAC API a bare "/path" resolves against the
        # API host (http://host/path), a URI stays what it is (pystac, odc-stac, rasterio)
        return (Path(asset_root) / idir.parent.name / idir.name / name).as_uri()

    ny, nx = shape20
    x0, y0 = tr20.c, tr20.f
    x1, y1 = x0 + nx * RES, y0 - ny * RES
    ring_utm = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    lons, lats = to_ll.transform([p[0] for p in ring_utm], [p[1] for p in ring_utm])
    ring = [[round(a, 7), round(b, 7)] for a, b in zip(lons, lats, strict=True)]
    bbox = [min(lons), min(lats), max(lons), max(lats)]
    utc = when.replace(tzinfo=dt.UTC)
    props = {
        "platform": platform, "constellation": "sentinel-2", "instruments": ["msi"],
        "eo:cloud_cover": round(cc, 4), "view:sun_elevation": round(elev, 4), "view:sun_azimuth": round(az, 4),
        "s2:processing_baseline": pb, "s2:product_type": "S2MSI2A",
        "s2:nodata_pixel_percentage": round(nd_pct, 4),
        "proj:epsg": epsg, "proj:bbox": [x0, y1, x1, y0],
        "mgrs:utm_zone": int(zone), "mgrs:latitude_band": lat_band, "mgrs:grid_square": sq,
        "grid:code": f"MGRS-{zone}{lat_band}{sq}", "gsd": 10,
        "created": (utc + dt.timedelta(hours=5, minutes=17)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "updated": (utc + dt.timedelta(hours=5, minutes=17)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    item = pystac.Item(id=iid, geometry={"type": "Polygon", "coordinates": [ring]}, bbox=bbox, datetime=utc,
                       properties=props, stac_extensions=list(STAC_EXTENSIONS))
    scale_off = -0.1 if offset else 0.0
    for b in BANDS:
        res = SENTINEL2_L2A.native_res_m[b]
        tr = tr10 if res == 10 else tr20
        shp = [ny * 2, nx * 2] if res == 10 else [ny, nx]
        item.add_asset(EARTH_SEARCH_KEYS[b], pystac.Asset(
            href=href(f"{EARTH_SEARCH_KEYS[b]}.tif"), media_type=_COG_TYPE,
            title=f"{SENTINEL2_L2A.common_name[b]} ({b}) - {res}m", roles=["data", "reflectance"],
            extra_fields={
                "eo:bands": [{"name": b, "common_name": SENTINEL2_L2A.common_name[b], "description": f"{SENTINEL2_L2A.common_name[b]} ({b})",
                              "center_wavelength": SENTINEL2_L2A.wavelength_um[b], "full_width_half_max": SENTINEL2_L2A.fwhm_um[b]}],
                "gsd": res, "proj:shape": shp, "proj:transform": list(tr)[:6],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                                  "spatial_resolution": res, "scale": 0.0001, "offset": scale_off}],
            }))
    item.add_asset("scl", pystac.Asset(
        href=href("scl.tif"), media_type=_COG_TYPE, title="Scene classification map (SCL)", roles=["data"],
        extra_fields={"gsd": 20, "proj:shape": [ny, nx], "proj:transform": list(tr20)[:6],
                      "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]}))
    return item


def _write_worldcover(path: Path, rng, lc, fid, transform, epsg, bbox_ll) -> None:
    """ESA WorldCover-like map: EPSG:4326, 1/12000 degree, classes from the truth with label noise."""
    from affine import Affine
    from pyproj import Transformer

    res = 1.0 / 12000.0
    w, s, e, nn = bbox_ll
    c0 = math.floor(w / res)
    c1 = math.ceil(e / res)
    r0 = math.floor(s / res)
    r1 = math.ceil(nn / res)
    W, H = c1 - c0, r1 - r0
    lon = (np.arange(W) + c0 + 0.5) * res
    lat = (r1 - np.arange(H) - 0.5) * res
    LON, LAT = np.meshgrid(lon, lat)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(LON, LAT)
    n = lc.shape[0]
    # ~10-20 m geolocation / boundary error: a smooth displacement field
    from ._sim_scene import smooth_field

    dx = smooth_field(rng, (H, W), 20) * 0.6
    dy = smooth_field(rng, (H, W), 20) * 0.6
    col = np.clip(np.floor((x - transform.c) / transform.a + dx), 0, n - 1).astype(int)
    row = np.clip(np.floor((y - transform.f) / transform.e + dy), 0, n - 1).astype(int)
    truth = lc[row, col]
    wc_of = np.zeros(8, "uint8")
    for k, v in TRUTH_TO_WORLDCOVER.items():
        wc_of[k] = v
    wc = wc_of[truth]
    # object-level confusion: some grassland fields labelled cropland and vice versa
    nf = int(fid.max())
    flip = rng.uniform(size=nf + 1) < 0.08
    f = fid[row, col]
    sw = flip[f] & (f > 0)
    wc[sw & (truth == 1)] = 30
    wc[sw & (truth == 2)] = 40
    # trees in villages, wetland at the water's edge, shrubs at forest edges, speckle
    u = rng.uniform(size=(H, W))
    wc[(truth == 4) & (u < 0.12)] = 10
    near_water = (lc[np.clip(row + 2, 0, n - 1), col] == 5) | (lc[np.clip(row - 2, 0, n - 1), col] == 5)
    wc[near_water & (truth == 2) & (u > 0.6)] = 90
    wc[(truth == 3) & (u < 0.03)] = 20
    sp = u > 0.99
    wc[sp] = np.array([10, 30, 40, 50], "uint8")[rng.integers(0, 4, size=int(sp.sum()))]
    tr = Affine(res, 0.0, c0 * res, 0.0, -res, r1 * res)
    import rasterio

    with rasterio.open(path, "w", driver="COG", width=W, height=H, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=tr, nodata=0, compress="DEFLATE", blocksize=512, overview_resampling="nearest") as dst:
        dst.write(wc, 1)
        dst.write_colormap(1, {10: (0, 100, 0, 255), 20: (255, 187, 34, 255), 30: (255, 255, 76, 255),
                               40: (240, 150, 255, 255), 50: (250, 0, 0, 255), 60: (180, 180, 180, 255),
                               70: (240, 240, 240, 255), 80: (0, 100, 200, 255), 90: (0, 150, 160, 255)})
        dst.update_tags(classes=json.dumps({str(k): v for k, v in WORLDCOVER_CLASSES.items()}),
                        source="soilsuite simulator (ESA WorldCover 10 m v200 layout)")


def _write_events(path: Path, events: dict, ploughed: dict, fclass, start: dt.date, end: dt.date) -> None:
    """``truth/events.json``: per field its class and the dated events of its calendar in the
    window: crop fields ``sowing`` (bare seedbed), ``harvest``, ``tillage`` (stubble -> bare),
    ``cover_incorporation``; ploughed grassland ``ploughing``. Dates ISO, with day of year."""
    out = {}
    for f in range(1, len(fclass)):
        evs = [(k, d) for k, d in events.get(f, [])] + ([("ploughing", ploughed[f])] if f in ploughed else [])
        rows = []
        for kind, day in sorted(evs, key=lambda e: e[1]):
            d = dt.date.fromordinal(int(round(day)))
            if start <= d <= end:
                rows.append({"kind": kind, "date": d.isoformat(), "doy": d.timetuple().tm_yday})
        out[str(f)] = {"class": TRUTH_CLASSES.get(int(fclass[f]), "other"), "events": rows}
    path.write_text(json.dumps({"about": "per field: class and the dated events of its simulated calendar",
                                "fields": out}, indent=1))


def _write_fields(path: Path, fid, lc, transform, to_ll, ploughed: dict | None = None) -> None:
    """Field polygons (RFC 7946 GeoJSON, lon/lat) with field_id and class."""
    from rasterio.features import shapes

    geoms = [(g, int(v)) for g, v in shapes(fid.astype("int32"), mask=fid > 0, transform=transform, connectivity=4)]
    # one batched coordinate transform for all rings
    flat = [p for g, _ in geoms for r in g["coordinates"] for p in r]
    if flat:
        lons, lats = to_ll.transform(np.array([p[0] for p in flat]), np.array([p[1] for p in flat]))
    feats = []
    k = 0
    for g, v in geoms:
        rings = []
        for r in g["coordinates"]:
            rings.append([[round(float(a), 7), round(float(b), 7)] for a, b in zip(lons[k:k + len(r)], lats[k:k + len(r)], strict=True)])
            k += len(r)
        feats.append({"type": "Feature", "properties": {"field_id": v}, "geometry": {"type": "Polygon", "coordinates": rings}})
    # class per field (one pass)
    cls_of = np.zeros(int(fid.max()) + 1, "uint8")
    cls_of[fid[fid > 0]] = lc[fid > 0]
    for f in feats:
        c = int(cls_of[f["properties"]["field_id"]])
        f["properties"]["class"] = TRUTH_CLASSES.get(c, "other")
        f["properties"]["landcover"] = c
        day = (ploughed or {}).get(f["properties"]["field_id"])
        f["properties"]["ploughed"] = dt.date.fromordinal(int(round(day))).isoformat() if day else None
    feats.sort(key=lambda f: f["properties"]["field_id"])
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


# ------------------------------------------------------------------------------------------
# reading the truth back
# ------------------------------------------------------------------------------------------
def load_truth(archive_dir: str | os.PathLike):
    """The truth of a simulated archive as an ``xarray.Dataset`` on the 20 m grid.

    Variables: ``landcover``, ``field_id``, ``soil_type``, ``soc`` (g/kg), ``clay`` (%), ``ph``
    (y, x); ``soil_reflectance`` (band, y, x; dry soil, reflectance 0-1); ``obs_flags`` and
    ``soil_fraction`` (time, y, x; bits ``TRUTH_*`` / percent), and ``green_fraction`` /
    ``dry_fraction`` (percent green / dry vegetation) where the archive has them; attr
    ``spectra`` (the simulator's spectral set). Coordinates ``x``/``y`` are pixel
    centres, ``time`` the acquisition dates, ``band`` B02..B12; attrs ``crs``, ``transform``.
    """
    import rasterio
    import xarray as xr

    from ..errors import InputError

    root = Path(archive_dir)
    tdir = root / "truth"
    if not (tdir / "landcover.tif").exists():
        raise InputError(f"load_truth: {tdir / 'landcover.tif'} not found; is {root} a simulated archive?")
    meta = json.loads((tdir / "truth.json").read_text())

    def rd(name):
        with rasterio.open(tdir / name) as src:
            return src.read(), src.transform, src.crs

    lc, tr, crs = rd("landcover.tif")
    ny, nx = lc.shape[1:]
    x = tr.c + (np.arange(nx) + 0.5) * tr.a
    y = tr.f + (np.arange(ny) + 0.5) * tr.e
    times = np.array([np.datetime64(d) for d in meta["dates"]], dtype="datetime64[ns]")
    data = {
        "landcover": (("y", "x"), lc[0]),
        "field_id": (("y", "x"), rd("field_id.tif")[0][0]),
        "soil_type": (("y", "x"), rd("soil_type.tif")[0][0]),
        "soil_reflectance": (("band", "y", "x"), rd("soil_reflectance.tif")[0]),
        "soc": (("y", "x"), rd("soc.tif")[0][0]),
        "clay": (("y", "x"), rd("clay.tif")[0][0]),
        "ph": (("y", "x"), rd("ph.tif")[0][0]),
    }
    if len(times):
        data["obs_flags"] = (("time", "y", "x"), rd("obs_flags.tif")[0])
        data["soil_fraction"] = (("time", "y", "x"), rd("soil_fraction.tif")[0])
        for name in ("green_fraction", "dry_fraction"):  # archives from 2026-12 on
            if (tdir / f"{name}.tif").exists():
                data[name] = (("time", "y", "x"), rd(f"{name}.tif")[0])
    else:
        data["obs_flags"] = (("time", "y", "x"), np.zeros((0, ny, nx), "uint8"))
        data["soil_fraction"] = (("time", "y", "x"), np.zeros((0, ny, nx), "uint8"))
    ds = xr.Dataset(data, coords={"x": x, "y": y, "time": times, "band": list(BANDS)})
    ds.attrs.update(crs=crs.to_string(), epsg=int(meta["epsg"]), transform=tuple(tr)[:6], resolution=RES,
                    truth_classes=json.dumps(TRUTH_CLASSES), soil_types=json.dumps(SOIL_TYPES))
    ds["soc"].attrs["units"] = "g/kg"
    ds["clay"].attrs["units"] = "%"
    ds["soil_reflectance"].attrs["units"] = "reflectance (0-1), dry soil"
    ds["obs_flags"].attrs["flags"] = json.dumps(meta["flags"])
    ds["soil_fraction"].attrs["units"] = "%"
    for name in ("green_fraction", "dry_fraction"):
        if name in ds:
            ds[name].attrs["units"] = "%"
    ds.attrs["spectra"] = meta.get("spectra", "v1")
    return ds
