"""Sentinel-2 L2A (Sen2Cor surface reflectance): :data:`SENTINEL2_L2A`.

Reflectance convention: ``reflectance = (DN + BOA_ADD_OFFSET) / 10000`` where
``BOA_ADD_OFFSET`` is -1000 from processing baseline 04.00 (scenes acquired from 2022-01-25)
and 0 before. The module-level names (``BANDS``, ``SCL_*``...) are the facts the sensor is
built from; code should read them from the sensor (``SENTINEL2_L2A.index("red")``).
"""

from __future__ import annotations

import datetime as _dt

from .base import Band, QualityMask, Sensor

#: (name, common name, central wavelength um, FWHM um, native resolution m), S2A MSI, in the
#: band order used everywhere (the 10 surface-reflectance bands used by SCMaP).
_BANDS = (
    Band("B02", "blue", 0.490, 0.098, 10),
    Band("B03", "green", 0.560, 0.045, 10),
    Band("B04", "red", 0.665, 0.038, 10),
    Band("B05", "rededge", 0.705, 0.019, 20),
    Band("B06", "rededge", 0.740, 0.018, 20),
    Band("B07", "rededge", 0.783, 0.028, 20),
    Band("B08", "nir", 0.842, 0.145, 10),
    Band("B8A", "nir08", 0.865, 0.033, 20),
    Band("B11", "swir16", 1.610, 0.143, 20),
    Band("B12", "swir22", 2.190, 0.242, 20),
)
BANDS: tuple[str, ...] = tuple(b.name for b in _BANDS)

#: STAC asset keys of the Earth Search ``sentinel-2-l2a`` collection (our simulator writes these).
EARTH_SEARCH_KEYS: dict[str, str] = {
    "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
    "SCL": "scl",
}
_RES = {**{b.name: b.resolution_m for b in _BANDS}, "SCL": 20}
#: Candidate asset keys per band, tried in order: Earth Search, Planetary Computer / plain,
#: CDSE (resolution-suffixed). The first key present in an item wins.
ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    b: (EARTH_SEARCH_KEYS[b], b, f"{b}_{_RES[b]}m", f"{b}_20m", b.lower())
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

#: Sentinel-2 L2A as distributed by Earth Search, Planetary Computer, CDSE and in SAFE files.
SENTINEL2_L2A = Sensor(
    name="sentinel2-l2a",
    bands=_BANDS,
    roles={"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"},
    quality=QualityMask(band="SCL", classes=SCL_NAMES, invalid=SCL_INVALID, dilate=SCL_DILATE,
                        nodata=SCL_NO_DATA, resolution_m=20),
    reflectance_scale=REFLECTANCE_SCALE,
    dn_nodata=DN_NODATA,
    offset_rule=boa_add_offset,
    asset_aliases=ASSET_ALIASES,
    platform="Sentinel-2 MSI",
)

__all__ = ["SENTINEL2_L2A"]
