"""Sensors: one :class:`Sensor` object per sensor holds every sensor fact.

Band names in kernel order with wavelengths and common names, band roles (``blue``, ``green``,
``red``, ``nir``, ``swir1``, ``swir2``), the quality-mask decoder, reflectance scale and DN
nodata, the per-scene offset rule, STAC asset aliases and odc-stac ``stac_cfg``, and the
solar-day grouping shared by the metadata and the loader. Sentinel-2 L2A
(:data:`SENTINEL2_L2A`) is the one shipped; a new sensor is one new module defining one object
and one entry in :data:`SENSORS`.

The :class:`Sensor` record itself lives in :mod:`soilsuite.sensors.base`.
"""

from __future__ import annotations

from .base import REFL_NODATA, ROLES, Band, QualityMask, Sensor, item_lon, solar_day
from .sentinel2 import SENTINEL2_L2A

#: Registry: sensor name -> Sensor.
SENSORS: dict[str, Sensor] = {s.name: s for s in (SENTINEL2_L2A,)}
#: The sensor used when none is named.
DEFAULT_SENSOR = SENTINEL2_L2A


def get_sensor(name: str | Sensor | None = None) -> Sensor:
    """The sensor registered under ``name`` (a Sensor passes through; None -> the default).

    Raises
    ------
    KeyError
        Naming the unknown sensor and the registered ones.
    """
    if name is None:
        return DEFAULT_SENSOR
    if isinstance(name, Sensor):
        return name
    try:
        return SENSORS[name]
    except KeyError:
        raise KeyError(f"unknown sensor {name!r} (known: {', '.join(SENSORS)})") from None


__all__ = [
    "DEFAULT_SENSOR",
    "REFL_NODATA",
    "ROLES",
    "SENSORS",
    "SENTINEL2_L2A",
    "Band",
    "QualityMask",
    "Sensor",
    "get_sensor",
    "item_lon",
    "solar_day",
]
