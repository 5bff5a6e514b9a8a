"""Run options: one pydantic model per concern, one name per option.

The CLI flag ``--max-cloud-cover``, the Python keyword ``max_cloud_cover`` and the docs share
the name. Defaults follow ../shared/SPEC.md (DLR's published SCMaP parameters).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .sentinel2 import SCL_DILATE, SCL_INVALID


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class SceneFilter(_Model):
    """Scene-level filter on STAC item metadata (SPEC 1)."""

    max_cloud_cover: float = Field(80.0, ge=0, le=100, description="keep items with eo:cloud_cover <= this (%)")
    min_sun_elevation: float = Field(20.0, ge=-90, le=90, description="keep items with view:sun_elevation >= this (degrees)")


class MaskOptions(_Model):
    """Per-observation validity (SPEC 2.1)."""

    invalid_scl: tuple[int, ...] = Field(SCL_INVALID, description="SCL classes that make an observation invalid")
    dilate_scl: tuple[int, ...] = Field(SCL_DILATE, description="SCL classes dilated before masking")
    dilation_px: int = Field(11, ge=1, description="side of the square dilation window, pixels of the target grid (odd)")
    max_sun_zenith: float = Field(70.0, ge=0, le=90, description="observations with sun zenith above this (degrees) are invalid")

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

    threshold: float = Field(0.2, ge=-2, le=2, description="PV+IR2 threshold (NDVI + NBR); bare candidate if <=")
    threshold_raster: Path | None = Field(None, description="raster of per-region PV+IR2 thresholds (any CRS), bilinear onto the grid")
    max_nbr2: float | None = Field(
        None, ge=-1, le=1,
        description="optional dry-vegetation filter (not in SCMaP; Dvorakova et al. 2021): a bare candidate "
                    "also needs NBR2 = (B11-B12)/(B11+B12) <= this; None = off (SPEC)")
    blue_k_bare: float = Field(3.0, gt=0, description="blue outlier filter k for the bare composite")
    blue_k_mref: float = Field(4.0, gt=0, description="blue outlier filter k for the mean reflectance (MREF)")
    blue_min_excess: float = Field(0.008, ge=0, description="outlier also needs B02 > median + this (reflectance; 80 DN)")
    min_bare_obs: int = Field(3, ge=2, description="SRC products need at least this many bare observations")
    ci_method: Literal["t", "z"] = Field("t", description="95 % CI: Student t (default) or 1.96 as in DLR's openEO code")


class EngineOptions(_Model):
    """How the work is executed (tiles, memory, Dask cluster)."""

    tile_size: int = Field(1024, ge=64, le=8192, description="tile side in pixels of the target grid")
    max_memory: str = Field("2GB", description="memory budget for the whole run (e.g. 2GB, 512MB)")
    scheduler: str | None = Field(None, description="address of an existing Dask scheduler; None starts a LocalCluster")

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
    n_workers: int | None = Field(None, ge=1, description="LocalCluster workers (default: one per core)")
    progress: bool = True


class CompositeConfig(_Model):
    """Everything a ``composite`` run needs."""

    source: str = Field(..., description="STAC static catalog/collection JSON path, or STAC API URL")
    collection: str | None = Field(None, description="collection id when source is a STAC API")
    bbox: tuple[float, float, float, float] | None = Field(None, description="area: lon/lat bbox (west, south, east, north)")
    area: Path | None = Field(None, description="area: vector file (its union is used)")
    tile: str | None = Field(None, description="area: a named grid tile, the MGRS tile of Sentinel-2 (e.g. 33UUU): its items and their native extent")
    start: dt.date = Field(..., description="first day of the time window (inclusive)")
    end: dt.date = Field(..., description="last day of the time window (inclusive)")
    crs: str | None = Field(None, description="target CRS; default: the UTM zone of the area")
    resolution: float = Field(20.0, gt=0, description="target pixel size in CRS units (m)")
    worldcover: Path | None = Field(None, description="ESA WorldCover raster (any CRS), nearest onto the grid")
    out: Path = Field(..., description="output folder")
    overwrite: bool = Field(False, description="replace an earlier soilsuite run in `out` (only the files it wrote)")
    force_clean: bool = Field(
        False, description="with overwrite: also replace soilsuite's files that were changed since; and write beside "
                           "files soilsuite did not write (those are always kept)")
    periods: Literal["none", "year"] = Field("none", description="also write per-period products")
    layout: Literal["auto", "single", "tiles"] = Field(
        "auto", description="product files: 'single' = one COG per product; 'tiles' = tile COGs of out_tile_px "
                            "plus a <NAME>.vrt mosaic and one STAC Item per tile; 'auto' = tiles above 2**30 px")
    out_tile_px: int = Field(8192, ge=64, le=65536, description="side of the output tile COGs (px) with layout 'tiles'")
    on_error: Literal["fail", "skip"] = Field(
        "fail", description="a broken scene (an asset that does not open or read, a CRS that disagrees with its "
                            "COG): 'fail' stops with one line naming it, 'skip' leaves it out and lists it in the run record")
    allow_partial_coverage: bool = Field(
        False, description="accept a WorldCover or threshold raster that covers only part of the grid (warn) "
                           "instead of refusing the run")
    scene: SceneFilter = SceneFilter()
    mask: MaskOptions = MaskOptions()
    bare: BareOptions = BareOptions()
    engine: EngineOptions = EngineOptions()

    @model_validator(mode="after")
    def _check(self) -> CompositeConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(f"bbox must be lon/lat (west, south, east, north) with west<east, south<north; got {self.bbox}")
        return self


def parse_bytes(text: str) -> int:
    """'2GB' -> 2_000_000_000 (dask's parser: KB/MB/GB decimal, KiB/MiB/GiB binary)."""
    from dask.utils import parse_bytes as _pb

    return int(_pb(text))
