"""Sentinel-2 L2A constants, kept for compatibility: the facts live in the sensor object.

New code reads them from :data:`soilsuite.sensors.SENTINEL2_L2A` (``sensor.band_names``,
``sensor.index("red")``, ``sensor.quality.invalid``, ``sensor.boa_add_offset(...)``); the names
below are re-exported from it. Reflectance convention used throughout soilsuite:
``reflectance = (DN + BOA_ADD_OFFSET) / 10000`` where ``BOA_ADD_OFFSET`` is -1000 from
processing baseline 04.00 (scenes acquired from 2022-01-25) and 0 before.

The ESA WorldCover classes below are land-cover facts, not sensor facts; they stay here until
they get a module of their own.
"""

from __future__ import annotations

from .sensors.base import REFL_NODATA
from .sensors.sentinel2 import (
    ASSET_ALIASES,
    BANDS,
    BOA_ADD_OFFSET_PB04,
    DN_NODATA,
    EARTH_SEARCH_KEYS,
    PB04_START,
    REFLECTANCE_SCALE,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_CLOUD_SHADOW,
    SCL_DARK,
    SCL_DILATE,
    SCL_INVALID,
    SCL_NAMES,
    SCL_NO_DATA,
    SCL_NOT_VEGETATED,
    SCL_SATURATED,
    SCL_SNOW,
    SCL_THIN_CIRRUS,
    SCL_UNCLASSIFIED,
    SCL_VEGETATION,
    SCL_WATER,
    SENTINEL2_L2A,
    boa_add_offset,
)

BAND_INDEX: dict[str, int] = SENTINEL2_L2A.band_index
#: Central wavelengths (micrometres) and full width at half maximum (micrometres), S2A MSI.
WAVELENGTH_UM: dict[str, float] = SENTINEL2_L2A.wavelength_um
FWHM_UM: dict[str, float] = SENTINEL2_L2A.fwhm_um
COMMON_NAME: dict[str, str] = SENTINEL2_L2A.common_name
#: Native resolution in metres (bands and SCL).
NATIVE_RES_M: dict[str, float] = SENTINEL2_L2A.native_res_m

# ESA WorldCover classes.
WORLDCOVER_CLASSES: dict[int, str] = {
    10: "tree cover", 20: "shrubland", 30: "grassland", 40: "cropland", 50: "built-up",
    60: "bare / sparse vegetation", 70: "snow and ice", 80: "permanent water bodies",
    90: "herbaceous wetland", 95: "mangroves", 100: "moss and lichen",
}
#: SPEC 2.4: never bare where WorldCover is one of these.
WORLDCOVER_NEVER_BARE: tuple[int, ...] = (50, 80)
#: SPEC 3 MASK: "other surfaces" where WorldCover is one of these (0 = no data).
WORLDCOVER_OTHER: tuple[int, ...] = (0, 50, 70, 80, 90, 95)

__all__ = [
    "ASSET_ALIASES", "BANDS", "BAND_INDEX", "BOA_ADD_OFFSET_PB04", "COMMON_NAME", "DN_NODATA",
    "EARTH_SEARCH_KEYS", "FWHM_UM", "NATIVE_RES_M", "PB04_START", "REFLECTANCE_SCALE", "REFL_NODATA",
    "SCL_CLOUD_HIGH", "SCL_CLOUD_MEDIUM", "SCL_CLOUD_SHADOW", "SCL_DARK", "SCL_DILATE", "SCL_INVALID",
    "SCL_NAMES", "SCL_NOT_VEGETATED", "SCL_NO_DATA", "SCL_SATURATED", "SCL_SNOW", "SCL_THIN_CIRRUS",
    "SCL_UNCLASSIFIED", "SCL_VEGETATION", "SCL_WATER", "SENTINEL2_L2A", "WAVELENGTH_UM",
    "WORLDCOVER_CLASSES", "WORLDCOVER_NEVER_BARE", "WORLDCOVER_OTHER", "boa_add_offset",
]
