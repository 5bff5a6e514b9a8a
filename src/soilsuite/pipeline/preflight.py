"""Input checks run before any tile is computed (the "preflight").

A composite run reads an archive for minutes or hours; an input problem found by the first
tile 25-85 s in, or never (a scene silently dropped, a raster that does not cover the area),
costs the user a run or gives wrong products. :func:`preflight` checks, in this order:

1. the local cluster request fits this machine (:func:`soilsuite.pipeline.cluster.check_machine`);
2. the WorldCover and threshold rasters exist, open, have a CRS and cover the grid
   (refused unless ``allow_partial_coverage``; then a warning);
3. every asset of every item exists, opens with rasterio under the loader's GDAL settings and
   reads a small window at its far corner (the last block a truncated COG loses), in parallel
   threads; large archives are sampled (all assets up to ``max_assets``, else the assets of a
   random sample of items; every local file is still checked for existence). With
   ``on_error="skip"`` every asset is read;
4. the CRS an item declares (``proj:code`` / ``proj:epsg``, asset or item level) is the CRS
   of its COG (odc-stac would place the pixels with the declared CRS: the date is lost);
5. at least one observation is valid: a decimated SCL histogram over the items (an archive
   whose SCL masks everything raises "no valid observation: N items, all masked by SCL
   classes ...").

Broken scenes (3, 4) stop the run with one line naming the file, the item and GDAL's reason
(``on_error="fail"``, the default) or are left out and listed as rejected items in the run
record and the summary (``on_error="skip"``).
"""

from __future__ import annotations

import functools
import itertools
import random
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..config import CompositeConfig
from ..errors import InputError, exception_chain
from ..sources import stac as S

#: Check every asset up to this many; above, the assets of a sample of items.
MAX_ASSETS = 2000
#: Items in the sample of a large archive (plus the first and last item).
SAMPLE_ITEMS = 100
#: Threads opening assets (I/O bound: remote reads wait on the network).
THREADS = 8
#: Show a progress bar above this many assets.
PROGRESS_MIN_ASSETS = 200
#: SCL is read decimated to at most this many pixels on its longer side for the histogram.
SCL_PREVIEW_PX = 128
#: A raster covering less than this share of the grid is "partial".
FULL_COVERAGE = 0.999


class PreflightWarning(UserWarning):
    """An input accepted with a caveat (e.g. a raster covering part of the grid)."""


def gdal_env():
    """The GDAL settings of the tile loader (:func:`soilsuite.pipeline.composite.load_tile_inputs`)."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=64 * 2**20, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR")


@dataclass(frozen=True)
class BrokenScene:
    """A scene that cannot be used: its item, the asset and file, and why."""

    item_id: str
    band: str
    href: str
    reason: str

    def message(self) -> str:
        return f"STAC item {self.item_id!r}, asset {self.band} {self.href}: {self.reason}"


@dataclass
class PreflightReport:
    """What :func:`check_inputs` found."""

    broken: list[BrokenScene] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    assets_total: int = 0
    assets_read: int = 0
    scl_histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    #: items whose SCL was not read yet (read by :func:`check_valid_observations` if needed)
    scl_pending: list = field(default_factory=list)
    scl_key: str | None = None


# ----------------------------------------------------------------------------- one asset
def _local_path(href: str) -> Path | None:
    u = urlparse(href)
    if u.scheme in ("", "file") or (len(u.scheme) == 1 and href[1:3] in (":\\", ":/")):  # windows drive
        return Path(u.path if u.scheme == "file" else href)
    return None


def _declared_crs(item, asset) -> str | None:
    """The CRS the item declares for an asset (asset-level ``proj:*`` first, as odc-stac)."""
    for fields in (asset.extra_fields, item.properties):
        if fields.get("proj:code"):
            return str(fields["proj:code"])
        if fields.get("proj:epsg"):
            return f"EPSG:{int(fields['proj:epsg'])}"
    return None


def _same_crs(declared: str, actual) -> bool:
    return _same_crs_text(str(declared), actual.to_wkt())


@functools.lru_cache(maxsize=256)
def _same_crs_text(declared: str, wkt: str) -> bool:
    """Cached by the two texts: an archive's files share a few CRSs, and building two pyproj
    CRSs per asset was a third of the preflight's CPU per file besides opening it."""
    from pyproj import CRS

    try:
        return CRS.from_user_input(declared) == CRS.from_user_input(wkt)
    except Exception:  # noqa: BLE001 - an unparsable declaration is a mismatch
        return False


def _gdal_reason(exc: BaseException) -> str:
    """GDAL's reason: the outermost and innermost messages of the chain (rasterio's outer
    "Read failed. See previous exception" says nothing by itself)."""
    msgs: list[str] = []
    for e in itertools.islice(exception_chain(exc), 20):
        m = " ".join(str(e).split())
        if m and "See previous exception" not in m and m not in msgs:
            msgs.append(m)
    if not msgs:
        return type(exc).__name__
    return msgs[0] if len(msgs) == 1 else f"{msgs[0]}: {msgs[-1]}"


def check_asset(item, band: str, key: str, *, read: bool = True, scl: bool = False,
                window=None) -> tuple[BrokenScene | None, np.ndarray | None]:
    """Open one asset; read its far-corner block (``read``), compare its CRS with the item's.

    Parameters
    ----------
    item : pystac.Item
    band, key : str
        Our band name (B04, SCL...) and the item's asset key.
    read : bool
        Read a 1 x 1 window at the far corner (decodes the last block of the full-resolution
        image, the part a truncated COG lacks); else only check that a local file exists.
    scl : bool
        Also return a decimated copy of the band (at most ``SCL_PREVIEW_PX`` px a side).
    window : rasterio.windows.Window, optional
        Read this window instead of the far corner (used to find the file a tile fails on).

    Returns
    -------
    (BrokenScene or None, numpy.ndarray or None)
    """
    import rasterio
    from rasterio.windows import Window

    asset = item.assets[key]
    href = asset.get_absolute_href() or asset.href
    local = _local_path(href)
    if local is not None and not local.exists():
        return BrokenScene(item.id, band, href, "no such file"), None
    if not read:
        return None, None
    try:
        with gdal_env(), rasterio.open(href) as src:
            declared = _declared_crs(item, asset)
            if declared is not None and src.crs is not None and not _same_crs(declared, src.crs):
                return BrokenScene(item.id, band, href,
                                   f"the item declares CRS {declared} but the file is in {src.crs}"), None
            w = window if window is not None else Window(src.width - 1, src.height - 1, 1, 1)
            src.read(1, window=w)
            preview = None
            if scl:
                f = max(1, int(np.ceil(max(src.width, src.height) / SCL_PREVIEW_PX)))
                preview = src.read(1, out_shape=(max(1, src.height // f), max(1, src.width // f)))
    except Exception as exc:  # noqa: BLE001 - any GDAL/IO failure makes the scene unusable
        return BrokenScene(item.id, band, href, _gdal_reason(exc)), None
    return None, preview


# ----------------------------------------------------------------------------- the archive
def _sample(items: Sequence, n_assets: int, max_assets: int, seed: int = 0) -> set[str]:
    """Ids of the items whose assets are read (all if the archive is small)."""
    if len(items) * n_assets <= max_assets:
        return {it.id for it in items}
    k = max(1, min(len(items), SAMPLE_ITEMS, max_assets // max(1, n_assets)))
    pick = random.Random(seed).sample(list(items), k)
    return {it.id for it in pick} | {items[0].id, items[-1].id}


def _run_parallel(jobs: list[Callable], progress: bool, label: str) -> list:
    """Run ``jobs`` in threads (in order of results = order of jobs), with a bar if many."""
    from ..progress import progress_bar

    bar = progress_bar(progress and len(jobs) >= PROGRESS_MIN_ASSETS, eta=False, transient=True)
    with bar, ThreadPoolExecutor(max_workers=THREADS) as pool:
        tid = bar.add_task(label, total=len(jobs))
        futures = [pool.submit(j) for j in jobs]
        results = []
        for f in futures:
            results.append(f.result())
            bar.advance(tid)
    return results


def check_assets(items: Sequence, assets: dict[str, str], *, max_assets: int = MAX_ASSETS,
                 progress: bool = False) -> PreflightReport:
    """Check the assets of ``items`` (see the module docstring, steps 3-4) and histogram SCL.

    Parameters
    ----------
    items : sequence of pystac.Item
    assets : dict
        Our band name -> asset key (:func:`soilsuite.sources.stac.resolve_assets`).
    max_assets : int
        Read every asset up to this many; above, the assets of a sample of items.
    progress : bool
        Show a progress bar on large archives.
    """
    rep = PreflightReport(assets_total=len(items) * len(assets))
    sampled = _sample(items, len(assets), max_assets)
    jobs, where = [], []
    for it in items:
        read = it.id in sampled
        for band, key in assets.items():
            jobs.append(lambda it=it, b=band, k=key, r=read: check_asset(it, b, k, read=r, scl=r and b == "SCL"))
            where.append((it.id, band, read))
    results = _run_parallel(jobs, progress, "checking inputs")
    bad_items: set[str] = set()
    scl_seen: set[str] = set()
    for (iid, _band, read), (broken, preview) in zip(where, results, strict=True):
        rep.assets_read += int(read)
        if broken is not None:
            rep.broken.append(broken)
            bad_items.add(iid)
        if preview is not None:
            rep.scl_histogram += np.bincount(preview.ravel().astype(np.int64), minlength=256)[:256]
            scl_seen.add(iid)
    # SCL histogram of unsampled items, only while no valid pixel is seen yet (cheap: decimated)
    rep.scl_pending = [it for it in items if it.id not in scl_seen and it.id not in bad_items]
    rep.scl_key = assets.get("SCL")
    return rep


def _valid_classes(hist: np.ndarray, invalid: Sequence[int]) -> int:
    keep = np.ones(256, bool)
    keep[list(invalid)] = False
    return int(hist[keep].sum())


def check_valid_observations(items: Sequence, rep: PreflightReport, invalid_scl: Sequence[int]) -> None:
    """Raise if no SCL pixel of any item is a valid class (decimated histogram).

    Items not read by :func:`check_assets` are read (SCL only, decimated) until a valid pixel
    is found, so the error is raised only when every item was seen.

    Raises
    ------
    InputError
        "no valid observation: N items, all masked by SCL classes ..." naming the classes.
    """
    hist = rep.scl_histogram
    for it in rep.scl_pending:
        if _valid_classes(hist, invalid_scl) > 0 or rep.scl_key is None:
            break
        _, preview = check_asset(it, "SCL", rep.scl_key, scl=True)
        if preview is not None:
            hist = hist + np.bincount(preview.ravel().astype(np.int64), minlength=256)[:256]
    if hist.sum() == 0 or _valid_classes(hist, invalid_scl) > 0:
        return
    found = [int(c) for c in np.flatnonzero(hist)]
    names = ", ".join(f"{c} ({S.SENSOR.quality.classes.get(c, 'unknown')}) {100 * hist[c] / hist.sum():.0f} %" for c in found)
    raise InputError(
        f"no valid observation: {len(items)} items, all masked by SCL classes {names}; "
        f"invalid classes are {list(invalid_scl)} (option invalid_scl)"
    )


# ----------------------------------------------------------------------------- auxiliary rasters
def data_area(items: Sequence, geobox):
    """The part of the grid with data: the grid's extent within the union of the items'
    footprints (``odc.geo.geom.Geometry`` in the grid CRS). A grid in another CRS than the
    items is their reprojected bounding box; its corners hold no observation and need no
    auxiliary raster."""
    from odc.geo.geom import Geometry
    from shapely.geometry import shape
    from shapely.ops import unary_union

    shapes = [shape(it.geometry) for it in items if it.geometry is not None]
    if not shapes:
        return geobox.extent
    try:
        foot = Geometry(unary_union(shapes), "EPSG:4326").to_crs(geobox.crs)
        area = foot.intersection(geobox.extent)
    except Exception:  # noqa: BLE001 - fall back to the whole grid
        return geobox.extent
    return area if area.area > 0 else geobox.extent


def raster_coverage(path: str | Path, geobox, area=None) -> float:
    """Share (0-1) of ``area`` (default: the grid ``geobox``'s extent) inside the extent of
    the raster ``path``.

    Raises
    ------
    InputError
        The file is missing, unreadable or has no CRS.
    """
    import rasterio
    from odc.geo.geom import box

    path = Path(path)
    if not path.exists():
        raise InputError(f"raster {path}: no such file")
    try:
        with gdal_env(), rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"raster {path}: has no CRS")
            foot = box(*src.bounds, src.crs.to_wkt())
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"raster {path}: cannot be read: {_gdal_reason(exc)}") from exc
    grid = geobox.extent if area is None else area
    try:
        inside = foot.to_crs(geobox.crs).intersection(grid).area
    except Exception:  # noqa: BLE001 - a footprint that cannot be projected covers nothing we can use
        inside = 0.0
    return float(inside / grid.area) if grid.area else 0.0


def check_coverage(path: str | Path, geobox, *, option: str, outside: str, allow_partial: bool,
                   area=None) -> str | None:
    """Refuse (or, with ``allow_partial``, warn about) a raster that does not cover the grid.

    Returns the warning text, if any. ``option`` names the CLI option, ``outside`` what the
    uncovered pixels get; ``area`` is the part of the grid that must be covered (default: all,
    see :func:`data_area`).
    """
    share = raster_coverage(path, geobox, area)
    if share >= FULL_COVERAGE:
        return None
    what = f"{option} {path} covers {100 * share:.1f} % of the area"
    if share <= 0:
        raise InputError(f"{what}: it does not overlap the grid ({geobox.crs}); check the file and its CRS")
    if not allow_partial:
        raise InputError(f"{what}; outside it {outside}. Give a raster covering the area, or "
                         "--allow-partial-coverage to accept this")
    msg = f"{what}; outside it {outside} (--allow-partial-coverage)"
    warnings.warn(msg, PreflightWarning, stacklevel=3)
    return msg


# ----------------------------------------------------------------------------- the run
def check_inputs(cfg: CompositeConfig, items: Sequence, assets: dict[str, str], geobox, *,
                 progress: bool = False) -> PreflightReport:
    """All checks of the module docstring on a selection of items; broken scenes are reported,
    not raised (see :func:`preflight` for the ``on_error`` rule)."""
    from .cluster import check_machine

    check_machine(cfg.engine)
    notes = []
    need = data_area(items, geobox) if (cfg.worldcover or cfg.bare.threshold_raster) else None
    if cfg.worldcover is not None:
        notes.append(check_coverage(cfg.worldcover, geobox, option="--worldcover", allow_partial=cfg.allow_partial_coverage,
                                    area=need,
                                    outside="MASK is 'other surfaces' and no pixel is excluded as built-up/water"))
    if cfg.bare.threshold_raster is not None:
        notes.append(check_coverage(cfg.bare.threshold_raster, geobox, option="--threshold-raster",
                                    allow_partial=cfg.allow_partial_coverage, area=need,
                                    outside=f"the constant --threshold {cfg.bare.threshold:g} applies"))
    max_assets = 10**12 if cfg.on_error == "skip" else MAX_ASSETS
    from ..sources.cube import is_cube_item

    if items and is_cube_item(items[0]):  # a cube (soilsuite ingest): its grid, not files per item
        from ..sources.cube import check_cube_run

        check_cube_run(cfg, items, geobox)
        rep = PreflightReport()
    else:
        rep = check_assets(items, assets, max_assets=max_assets, progress=progress)
    rep.warnings = [n for n in notes if n]
    return rep


def preflight(cfg: CompositeConfig, sel: S.SceneSelection, assets: dict[str, str], geobox, *,
              progress: bool = False) -> tuple[S.SceneSelection, S.ObservationMeta]:
    """Check the inputs of a run before any tile runs; apply ``cfg.on_error`` to broken scenes.

    Returns the selection (broken scenes moved to ``rejected`` with their reason when
    ``on_error="skip"``) and its observation metadata.

    Raises
    ------
    InputError
        A broken scene with ``on_error="fail"`` (one line: item, asset, file, GDAL's reason),
        every scene broken, a raster not covering the grid, no valid observation.
    ConfigError
        A local cluster larger than this machine.
    """
    rep = check_inputs(cfg, sel.items, assets, geobox, progress=progress)
    if rep.broken:
        first = rep.broken[0]
        more = len({b.item_id for b in rep.broken}) - 1
        if cfg.on_error == "fail":
            raise InputError(first.message() + (f" (and {more} more broken scene(s))" if more > 0 else "")
                             + "; --on-error skip leaves broken scenes out")
        by_item: dict[str, BrokenScene] = {}
        for b in rep.broken:
            by_item.setdefault(b.item_id, b)
        kept = [it for it in sel.items if it.id not in by_item]
        if not kept:
            raise InputError(f"all {len(sel.items)} scenes are broken, e.g. {first.message()}")
        rejected = list(sel.rejected) + [
            S.Rejection(iid, f"broken scene {iid} (asset {b.band} {b.href}: {b.reason})") for iid, b in by_item.items()
        ]
        for r in rejected[len(sel.rejected):]:  # said in every output mode (--quiet, --log-json too)
            warnings.warn(f"{r.reason}: left out (--on-error skip; listed in run.json)", PreflightWarning,
                          stacklevel=2)
        sel = S.SceneSelection(kept, rejected)
    check_valid_observations(sel.items, rep, cfg.mask.invalid_scl)
    return sel, S.observation_meta(sel.items, assets)


def find_broken(items: Sequence, assets: dict[str, str], geobox) -> BrokenScene | None:
    """The first asset of ``items`` that fails to read the window covering ``geobox``.

    Used when loading a tile failed (e.g. odc-stac's "Chunk and warp failed"), to name the
    file, the item and GDAL's reason. Reads every asset's window over the tile.
    """
    import rasterio
    from rasterio.windows import from_bounds

    def probe(it, band, key):
        href = it.assets[key].get_absolute_href() or it.assets[key].href
        try:
            with gdal_env(), rasterio.open(href) as src:
                bb = geobox.extent.to_crs(src.crs.to_wkt()).boundingbox
                win = from_bounds(*bb, transform=src.transform).intersection(
                    rasterio.windows.Window(0, 0, src.width, src.height)).round_offsets().round_lengths()
        except Exception:  # noqa: BLE001 - let check_asset name the failure
            win = None
        return check_asset(it, band, key, window=win)[0]

    jobs = [lambda it=it, b=b, k=k: probe(it, b, k) for it in items for b, k in assets.items()]
    return next((r for r in _run_parallel(jobs, False, "") if r is not None), None)


__all__ = ["BrokenScene", "PreflightReport", "PreflightWarning", "check_assets", "check_coverage", "check_inputs",
           "check_valid_observations", "find_broken", "preflight", "raster_coverage"]
