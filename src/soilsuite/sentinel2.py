"""Sentinel-2 L2A sensor facts: bands, wavelengths, SCL classes, offsets, STAC asset aliases.

Everything here is a constant; kernels may import it. Reflectance convention used throughout
soilsuite: ``reflectance = (DN + BOA_ADD_OFFSET) / 10000`` where ``BOA_ADD_OFFSET`` is -1000
from processing baseline 04.00 (scenes acquired from 2022-01-25) and 0 before.
"""

from __future__ import annotations

import datetime as _dt

#: The 10 surface-reflectance bands used by SCMaP, in this order everywhere (band axis).
BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
BAND_INDEX: dict[str, int] = {b: i for i, b in enumerate(BANDS)}

#: Central wavelengths (micrometres) and full width at half maximum (micrometres), S2A MSI.
WAVELENGTH_UM: dict[str, float] = {
    "B02": 0.490, "B03": 0.560, "B04": 0.665, "B05": 0.705, "B06": 0.740,
    "B07": 0.783, "B08": 0.842, "B8A": 0.865, "B11": 1.610, "B12": 2.190,
}
FWHM_UM: dict[str, float] = {
    "B02": 0.098, "B03": 0.045, "B04": 0.038, "B05": 0.019, "B06": 0.018,
    "B07": 0.028, "B08": 0.145, "B8A": 0.033, "B11": 0.143, "B12": 0.242,
}
COMMON_NAME: dict[str, str] = {
    "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge", "B06": "rededge",
    "B07": "rededge", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
}
#: Native resolution in metres.
NATIVE_RES_M: dict[str, int] = {
    "B02": 10, "B03": 10, "B04": 10, "B08": 10,
    "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20, "SCL": 20,
}

#: STAC asset keys of the Earth Search ``sentinel-2-l2a`` collection (our simulator writes these).
EARTH_SEARCH_KEYS: dict[str, str] = {
    "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
    "SCL": "scl",
}
#: Candidate asset keys per band, tried in order: Earth Search, Planetary Computer / plain,
#: CDSE (resolution-suffixed). The first key present in an item wins.
ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    b: (EARTH_SEARCH_KEYS[b], b, f"{b}_{NATIVE_RES_M[b]}m", f"{b}_20m", b.lower())
    for b in (*BANDS, "SCL")
}

#: Raw L2A DN nodata value.
DN_NODATA = 0
#: Reflectance scale: reflectance = (DN + offset) * REFLECTANCE_SCALE.
REFLECTANCE_SCALE = 1e-4
#: Date from which processing baseline 04.00 adds BOA_ADD_OFFSET = -1000.
PB04_START = _dt.date(2022, 1, 25)
BOA_ADD_OFFSET_PB04 = -1000


def boa_add_offset(processing_baseline: str | float | None, date: _dt.date | None = None) -> int:
    """BOA_ADD_OFFSET (DN) for a scene.

    Parameters
    ----------
    processing_baseline : str or float or None
        ``s2:processing_baseline`` such as ``"05.09"``; if None the acquisition ``date`` decides.
    date : datetime.date, optional
        Acquisition date, used when the baseline is unknown.

    Returns
    -------
    int
        -1000 for baseline >= 04.00, else 0.
    """
    if processing_baseline is not None and str(processing_baseline).strip() not in ("", "None"):
        return BOA_ADD_OFFSET_PB04 if float(processing_baseline) >= 4.0 else 0
    if date is None:
        raise ValueError("need processing_baseline or date to decide BOA_ADD_OFFSET")
    return BOA_ADD_OFFSET_PB04 if date >= PB04_START else 0


# Scene classification layer (SCL) classes of Sen2Cor.
SCL_NO_DATA = 0
SCL_SATURATED = 1
SCL_DARK = 2  # dark area / topographic shadow
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_UNCLASSIFIED = 7
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_THIN_CIRRUS = 10
SCL_SNOW = 11
SCL_NAMES: dict[int, str] = {
    0: "no data", 1: "saturated or defective", 2: "dark area / topographic shadow",
    3: "cloud shadow", 4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified",
    8: "cloud medium probability", 9: "cloud high probability", 10: "thin cirrus",
    11: "snow or ice",
}
#: SPEC 2.1: observations with these SCL classes are invalid.
SCL_INVALID: tuple[int, ...] = (0, 1, 2, 3, 7, 8, 9, 10, 11)
#: SPEC 2.1: these classes are dilated (11x11 px on the 20 m grid) before masking.
SCL_DILATE: tuple[int, ...] = (3, 8, 9, 10)

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

#: Nodata sentinel of the offset-corrected int16 reflectance cubes (x 10000) that kernels take.
#: (-9999 cannot be used internally: valid offset-corrected values reach down to -1000.)
REFL_NODATA = -32768
