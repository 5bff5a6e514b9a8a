"""Run options: one pydantic model per concern, one name per option.

The CLI flag ``--max-cloud-cover``, the Python keyword ``max_cloud_cover`` and the docs share
the name. Defaults follow ../shared/SPEC.md (DLR's published SCMaP parameters).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ConfigError
from .sensors import SENTINEL2_L2A


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, defer_build=True)


class SceneFilter(_Model):
    """Scene-level filter on STAC item metadata (SPEC 1)."""

    max_cloud_cover: float = Field(80.0, ge=0, le=100, description="scene filter: max eo:cloud_cover (%)")
    min_sun_elevation: float = Field(20.0, ge=-90, le=90, description="scene filter: min view:sun_elevation (deg)")


class MaskOptions(_Model):
    """Per-observation validity (SPEC 2.1)."""

    invalid_scl: tuple[int, ...] = Field(SENTINEL2_L2A.quality.invalid, description="SCL classes that make an observation invalid")
    dilate_scl: tuple[int, ...] = Field(SENTINEL2_L2A.quality.dilate, description="SCL classes dilated before masking")
    dilation_px: int = Field(11, ge=1, description="cloud/shadow dilation window side (px, odd)")
    max_sun_zenith: float = Field(70.0, ge=0, le=90, description="invalid above this sun zenith (deg)")

    @field_validator("invalid_scl", "dilate_scl")
    @classmethod
    def _classes(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 0 or c > 63 for c in v):
            raise ValueError(f"SCL classes must be in 0..63 (Sen2Cor uses 0..11), got {list(v)}")
        return v

    @field_validator("dilation_px")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 != 1:
            raise ValueError(f"dilation_px must be odd (a centred square window), got {v}")
        return v


class BareOptions(_Model):
    """Bare-soil detection and the blue outlier filter (SPEC 2.3-2.5)."""

    selector: str = Field("scmap", description="bare-soil selector: scmap, geos3, barest or geomedian "
                          "(docs/selectors.md)")
    threshold: float = Field(0.2, ge=-2, le=2, description="bare candidate if PV+IR2 (NDVI+NBR) <= this")
    threshold_raster: Path | None = Field(None, description="raster of regional PV+IR2 thresholds (bilinear)")
    dry_guard: float | None = Field(
        None, ge=-1, le=1,
        description="dry-vegetation guard on any selector: bare only if NBR2 <= this (old name: max_nbr2)")
    edge_guard: int | None = Field(
        None, ge=0, le=8, description="edge guard on any selector: bare only if at least N (0..8) of the 8 neighbours are "
        "bare candidates on the same date (8: 3x3 erosion; docs/profiles.md)")
    barest_k: int | None = Field(
        None, ge=1, description="selector barest: the k observations per pixel with the lowest index (default 5)")
    barest_index: Literal["pvir2", "ndvi"] | None = Field(
        None, description="selector barest: the index ranked, 'pvir2' (default) or 'ndvi'")
    blue_filter: Literal["on", "off"] = Field(
        "on", description="blue outlier filter on the bare candidates of any selector: 'on' (SPEC 2.5) or 'off'")
    blue_k_bare: float = Field(3.0, gt=0, description="blue outlier filter k, bare composite")
    blue_k_mref: float = Field(4.0, gt=0, description="blue outlier filter k, MREF")
    blue_min_excess: float = Field(0.008, ge=0, description="outlier also needs B02 > median + this (reflectance; 80 DN)")
    min_bare_obs: int = Field(3, ge=2, description="min bare observations for SRC products")
    ci_method: Literal["t", "z"] = Field("t", description="95 % CI: 't' (Student) or 'z' (1.96)")
    src_estimator: Literal["mean", "dry"] = Field(
        "mean", description="SRC from every bare observation ('mean', SCMaP) or the brightest in the SWIR "
        "('dry': moisture-robust, docs/profiles.md)")
    src_dry_share: float = Field(
        0.25, gt=0, le=1, description="src_estimator dry: share of a pixel's bare observations kept (brightest B11+B12)")

    @field_validator("selector")
    @classmethod
    def _known_selector(cls, v: str) -> str:
        from .kernels.selectors import SELECTORS

        if v not in SELECTORS:
            raise ValueError(f"unknown selector {v!r}; known: {', '.join(sorted(SELECTORS))}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _max_nbr2_alias(cls, data):
        """``max_nbr2`` (the guard's first name) is an alias of ``dry_guard``: same output."""
        if isinstance(data, dict) and "max_nbr2" in data:
            data = dict(data)
            old = data.pop("max_nbr2")
            if data.get("dry_guard") is not None and old is not None and old != data["dry_guard"]:
                raise ConfigError("max_nbr2 is the old name of dry_guard (--dry-guard); give only dry_guard")
            if data.get("dry_guard") is None:
                data["dry_guard"] = old
        return data

    @property
    def max_nbr2(self) -> float | None:
        """The dry-vegetation guard under its first name (alias of :attr:`dry_guard`)."""
        return self.dry_guard

    @model_validator(mode="after")
    def _selector_options(self) -> BareOptions:
        """Options of one selector given with another are refused, naming both (docs/selectors.md)."""
        from .kernels.selectors import SELECTORS

        sel = SELECTORS.get(self.selector)
        if sel is None:
            return self
        for other in SELECTORS.values():
            for name in other.options:
                if name not in sel.options and getattr(self, name, None) is not None:
                    raise ConfigError(f"--{name.replace('_', '-')} is an option of selector '{other.name}', not of "
                                      f"'{self.selector}': drop it or give --selector {other.name}")
        if not sel.uses_threshold:
            default = type(self).model_fields["threshold"].default
            if self.threshold_raster is not None:
                raise ConfigError(f"--threshold-raster: selector '{self.selector}' does not use a PV+IR2 threshold; "
                                  "drop it or give --selector scmap")
            if self.threshold != default:
                raise ConfigError(f"--threshold {self.threshold:g}: selector '{self.selector}' does not use a PV+IR2 "
                                  f"threshold; drop it or give --selector scmap")
        if getattr(sel, "src_mean", None) is not None and self.src_estimator != "mean":
            raise ConfigError(f"--src-estimator {self.src_estimator}: selector '{self.selector}' computes SRC_MEAN "
                              "itself; drop --src-estimator or give --selector scmap")
        return self


class LayerOptions(_Model):
    """Optional layers beyond SCMaP's products (issue 15; docs/temporal.md). All off by default."""

    temporal: bool = Field(False, description="bare-soil dates, episodes, spells and tillage events")
    tillage_max_gap_days: int = Field(
        30, ge=1, le=366, description="tillage event: vegetated -> bare within this many days")
    ploughing: bool = Field(False, description="grassland ploughing flag and 'permanent vegetation lost'")
    grassland: Path | None = Field(None, description="polygons of permanent grassland (any vector file)")
    min_ploughing_obs: int = Field(
        2, ge=1, description="ploughing: bare observations on grassland in a period")
    erosion: bool = Field(False, description="monthly BSF and the erosivity-weighted C-factor")
    erosivity: Path | None = Field(
        None, description="monthly erosivity shares: CSV month,share or 12-band raster")
    provenance: bool = Field(
        False, description="per pixel, the observations each rule removed; mean date of the bare ones")


class EngineOptions(_Model):
    """How the work is executed (tiles, memory, Dask cluster)."""

    tile_size: int = Field(1024, ge=64, le=8192, description="max processing tile side (px)")
    max_memory: str = Field("2GB", description="memory budget of the run (2GB, 512MB...)")
    scheduler: str | None = Field(None, description="Dask scheduler address or 'sync'; default: local cluster")

    @field_validator("max_memory")
    @classmethod
    def _bytes(cls, v: str) -> str:
        try:
            n = parse_bytes(v)
        except (ValueError, TypeError):
            raise ValueError(f"expected a size such as 2GB, 512MB or 4GiB, got {v!r}") from None
        if n <= 0:
            raise ValueError(f"expected a positive size such as 2GB, got {v!r}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None or v == "sync":
            return v
        from distributed.comm.addressing import parse_address, parse_host_port

        try:
            _, loc = parse_address(v)
            if "://" not in v or v.startswith(("tcp://", "tls://")):
                parse_host_port(loc)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"expected 'sync' or a Dask scheduler address such as tcp://host:8786, "
                             f"got {v!r} ({exc}; from --scheduler or $SOILSUITE_SCHEDULER)") from None
        return v
    n_workers: int | None = Field(None, ge=1, description="local cluster workers; default: one per core")
    local_engine: Literal["threads", "processes"] | None = Field(
        None, description="local cluster of 2+ workers: 'threads' (one process, a thread per worker; the "
        "default, or $SOILSUITE_ENGINE) or 'processes' (a process per worker); docs/cluster.md")
    read_path: Literal["auto", "general", "mean"] | None = Field(
        None, description="'auto': direct COG reads on the native grid, else odc-stac; 'general': always "
        "odc-stac; 'mean': as auto, 10 m bands by the exact 2x2 mean (docs/performance.md)")
    progress: bool = True


class CompositeConfig(_Model):
    """Everything a ``composite`` run needs."""

    source: str = Field(..., description="STAC static catalog/collection JSON path, or STAC API URL")
    collection: str | None = Field(None, description="collection id when source is a STAC API")
    bbox: tuple[float, float, float, float] | None = Field(None, description="area: lon/lat bbox (west, south, east, north)")
    area: Path | None = Field(None, description="area: vector file (its union is used)")
    mgrs: str | None = Field(None, description="area: an MGRS tile, e.g. 33UUU (its items, extent)")
    start: dt.date = Field(..., description="first day of the time window (inclusive)")
    end: dt.date = Field(..., description="last day of the time window (inclusive)")
    crs: str | None = Field(None, description="target CRS; default: the UTM zone of the area")
    resolution: float = Field(20.0, gt=0, description="target pixel size in CRS units (m)")
    worldcover: Path | None = Field(None, description="ESA WorldCover raster: built-up/water never bare")
    out: Path = Field(..., description="output folder")
    overwrite: bool = Field(False, description="replace an earlier run in `out` (only files it wrote)")
    force_clean: bool = Field(
        False, description="with overwrite: replace changed files, write beside others")
    profile: Literal["scmap", "soilsuite"] = Field(
        "scmap", description="preset of method options: 'scmap' (DLR's, the default) or 'soilsuite' (dry guard + "
        "moisture-robust SRC; docs/profiles.md); options given explicitly override it")
    periods: str = Field(
        "none", description="also per period: year, season, month or NAME:MM-DD..MM-DD,... (docs/temporal.md)")
    period_blue_filter: Literal["window", "exact"] = Field(
        "window", description="per-period blue filter: window's median/MAD, or 'exact' per period")
    layout: Literal["auto", "single", "tiles"] = Field(
        "auto", description="'single' COG, 'tiles' (+ .vrt) or 'auto'")
    cog_tile_px: int = Field(8192, ge=64, le=65536, description="COG tile side (px), layout 'tiles'")
    stac_hrefs: Literal["relative", "absolute"] = Field(
        "relative", description="STAC asset hrefs: 'relative' (movable folder) or 'absolute' (file:// URIs, for "
        "stackstac or a STAC API); `soilsuite stac OUT` rewrites them later")
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="broken scene: 'fail', or 'skip' (run.json)")
    allow_partial_coverage: bool = Field(
        False, description="warn (not refuse) if a raster covers part of the area")
    scene: SceneFilter = Field(default_factory=SceneFilter)
    mask: MaskOptions = Field(default_factory=MaskOptions)
    bare: BareOptions = Field(default_factory=BareOptions)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    layers: LayerOptions = Field(default_factory=LayerOptions)

    @field_validator("periods")
    @classmethod
    def _periods(cls, v: str) -> str:
        from .periods import check_periods

        try:
            return check_periods(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @property
    def product_groups(self) -> tuple[str, ...]:
        """Product groups this run writes (:func:`soilsuite.products.composite_products`)."""
        lay = self.layers
        return ("composite", *(g for g, on in (("temporal", lay.temporal), ("ploughing", lay.ploughing),
                                                ("erosion", lay.erosion), ("provenance", lay.provenance))
                                 if on))

    @model_validator(mode="after")
    def _check(self) -> CompositeConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.periods != "none":
            from .periods import resolve_periods

            try:
                resolve_periods(self.periods, self.start, self.end)  # overlapping ranges
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        if self.layers.grassland is not None and not self.layers.ploughing:
            raise ValueError("grassland: a grassland layer is used by the ploughing layers; give ploughing too")
        if self.layers.ploughing and self.layers.grassland is None and self.worldcover is None:
            raise ValueError("ploughing: needs permanent grassland from worldcover (class 30) or a grassland "
                             "polygon file (grassland); give one or both")
        if self.layers.erosivity is not None and not self.layers.erosion:
            raise ValueError("erosivity: monthly erosivity shares are used by the erosion layers; give erosion too")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(f"bbox must be lon/lat (west, south, east, north) with west<east, south<north; got {self.bbox}")
        return self


class ForceExportConfig(_Model):
    """Everything an ``export-force`` run needs (a FORCE Level-2 datacube, :mod:`soilsuite.io.force`)."""

    source: str = Field(..., description="STAC static catalog/collection JSON path, or STAC API URL")
    collection: str | None = Field(None, description="collection id when source is a STAC API")
    out: Path = Field(..., description="FORCE datacube folder (.prj + X####_Y#### tiles)")
    start: dt.date = Field(..., description="first day of the time window (inclusive)")
    end: dt.date = Field(..., description="last day of the time window (inclusive)")
    bbox: tuple[float, float, float, float] | None = Field(None, description="area: lon/lat bbox; default: all items")
    crs: str | None = Field(None, description="projected CRS, e.g. EPSG:3035; default: UTM")
    resolution: float = Field(20.0, description="pixel size (m)")
    force_tile_m: float = Field(30000.0, description="FORCE TILE_SIZE (m)")
    force_block_m: float = Field(3000.0, description="FORCE BLOCK_SIZE (m)")
    origin: tuple[float, float] | None = Field(None, description="grid origin in the cube CRS (m); default: snapped corner")
    overwrite: bool = Field(False, description="replace an earlier export in `out` (only files it wrote)")
    force_clean: bool = Field(False, description=CompositeConfig.model_fields["force_clean"].description)
    scene: SceneFilter = Field(default_factory=SceneFilter)


class IngestConfig(_Model):
    """Everything an ``ingest`` run needs (an analysis-ready Zarr cube, :mod:`soilsuite.ingest`)."""

    source: str = Field(..., description="STAC catalog/folder, STAC API URL or SAFE folder/zip(s)")
    collection: str | None = Field(None, description="collection id when source is a STAC API")
    out: Path = Field(..., description="the Zarr store to write (a folder, e.g. cube.zarr)")
    start: dt.date = Field(..., description="first day of the time window (inclusive)")
    end: dt.date = Field(..., description="last day of the time window (inclusive)")
    bbox: tuple[float, float, float, float] | None = Field(None, description="area: lon/lat bbox (west, south, east, north)")
    area: Path | None = Field(None, description="area: vector file (its union is used)")
    mgrs: str | None = Field(None, description="area: an MGRS tile, e.g. 33UUU (its items, extent)")
    crs: str | None = Field(None, description="target CRS; default: the UTM zone of the area")
    resolution: float = Field(20.0, gt=0, description="target pixel size in CRS units (m)")
    chunk_px: int = Field(512, ge=16, le=4096, description="chunk side (px); composite tiles are multiples of it")
    halo_px: int = Field(16, ge=0, le=256, description="SCL kept beyond the area (px), for the cloud dilation")
    n_workers: int | None = Field(None, ge=1, description="threads reading and writing; default: one per core")
    overwrite: bool = Field(False, description="replace a cube written earlier by ingest (only its own files)")
    force_clean: bool = Field(False, description=CompositeConfig.model_fields["force_clean"].description)
    scene: SceneFilter = Field(default_factory=SceneFilter)

    @model_validator(mode="after")
    def _check(self) -> IngestConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


#: Option names of earlier releases -> today's names (accepted with a DeprecationWarning).
COMPOSITE_RENAMED = {"tile": "mgrs", "out_tile_px": "cog_tile_px"}
#: Second names of composite options (accepted without a warning): alias -> the option's name.
COMPOSITE_ALIASES = {"max_nbr2": "dry_guard"}
FORCE_RENAMED = {"tile_size_m": "force_tile_m", "block_size_m": "force_block_m"}


def renamed_options(options: dict, renamed: dict[str, str]) -> dict:
    """``options`` with the keyword names of earlier releases replaced by today's names.

    Parameters
    ----------
    options : dict
        Keyword options as given by the caller.
    renamed : dict of str to str
        Old name -> new name (e.g. :data:`COMPOSITE_RENAMED`).

    Returns
    -------
    dict
        The same options under today's names; each old name used gives a
        :class:`DeprecationWarning`. Giving both names of one option is an error.
    """
    import warnings

    out = dict(options)
    for old, new in renamed.items():
        if old in out:
            if new in out:
                raise ConfigError(f"option {old!r} is the old name of {new!r}; give only {new!r}")
            warnings.warn(f"option {old!r} is renamed {new!r}; the old name goes in the next release",
                          DeprecationWarning, stacklevel=3)
            out[new] = out.pop(old)
    return out


def given_options(**options: Any) -> dict[str, Any]:
    """The options that were given (not None); the others take the config model's default."""
    return {k: v for k, v in options.items() if v is not None}


def parse_date(value: str | dt.date, name: str = "date") -> dt.date:
    """A day from ``YYYY-MM-DD`` text, a date or a datetime (its date).

    Parameters
    ----------
    value : str or datetime.date
        The day; a :class:`datetime.datetime` gives its (naive or UTC) calendar date.
    name : str
        Option name for the message.

    Raises
    ------
    ConfigError
        ``value`` is not a date ``YYYY-MM-DD``.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name}: expected a date YYYY-MM-DD, got {value!r}") from None


def parse_bytes(text: str) -> int:
    """'2GB' -> 2_000_000_000 (dask's parser: KB/MB/GB decimal, KiB/MiB/GiB binary)."""
    from dask.utils import parse_bytes as _pb

    return int(_pb(text))
