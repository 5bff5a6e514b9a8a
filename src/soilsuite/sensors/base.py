"""The :class:`Sensor` record: every fact soilsuite needs about one sensor's L2 product.

A sensor says which reflectance bands exist (in kernel order) and what they are, which band
plays which role (``blue``, ``green``, ``red``, ``nir``, ``swir1``, ``swir2``), how its quality
band is decoded, how served DN become reflectance (scale, nodata, per-scene offset rule), which
STAC asset keys carry each band (and the odc-stac ``stac_cfg`` that loads them), and how
overlapping items of one pass are grouped into one observation (the solar day). Kernels get
band indices and class sets from it; sources get asset keys, offsets and grouping from it.
This module imports only the standard library, so kernels may take their defaults from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

#: Nodata of the offset-corrected int16 reflectance cubes (x 10000) that the kernels take; the
#: same for every sensor (-9999 cannot be used: valid offset-corrected values reach -1000).
REFL_NODATA = -32768

#: The band roles the kernels and selectors use.
ROLES: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")


def item_lon(item: Any) -> float:
    """Longitude (degrees) of an item's centre: from its bbox, else its geometry, else 0."""
    if item.bbox:
        return 0.5 * (item.bbox[0] + item.bbox[2])
    if item.geometry:
        from shapely.geometry import shape

        return shape(item.geometry).centroid.x
    return 0.0


def solar_day(item: Any, parsed: Any = None, idx: int | None = None) -> dt.date:
    """Local solar day of a STAC item: UTC acquisition time + longitude / 15 h, as a date.

    The signature is odc-stac's ``groupby`` callback ``(pystac.Item, ParsedItem, index)``, so
    the same function groups the metadata (:func:`soilsuite.sources.stac.observation_meta`)
    and the pixels (``odc.stac.load(groupby=...)`` in :func:`~soilsuite.sources.stac.load_cube`).

    Parameters
    ----------
    item : pystac.Item
        Item with ``datetime`` (or ``start_datetime``) and a bbox or geometry.
    parsed, idx
        Ignored (odc-stac passes its parsed item and the item's position).

    Returns
    -------
    datetime.date
        The item's solar day; items of one orbit pass over adjacent tiles share it.
    """
    from ..sources.items import _item_interval  # pystac-free import of this module for kernels

    t, _ = _item_interval(item)
    return (t + dt.timedelta(hours=item_lon(item) / 15.0)).date()


@dataclass(frozen=True)
class Band:
    """One reflectance band.

    Attributes
    ----------
    name : str
        The band's name in soilsuite (variable name in cubes, e.g. ``"B04"``).
    common_name : str
        STAC ``eo`` common name (``"red"``, ``"nir08"``...).
    wavelength_um, fwhm_um : float
        Central wavelength and full width at half maximum, micrometres.
    resolution_m : float
        Native pixel size, metres.
    """

    name: str
    common_name: str
    wavelength_um: float
    fwhm_um: float
    resolution_m: float


@dataclass(frozen=True)
class QualityMask:
    """Decoder of a categorical per-pixel quality band (Sentinel-2: Sen2Cor SCL).

    Attributes
    ----------
    band : str
        Name of the quality band (``"SCL"``).
    classes : Mapping[int, str]
        Class value -> description.
    invalid : tuple of int
        Default classes that make an observation invalid.
    dilate : tuple of int
        Default classes dilated (cloud, shadow buffer) before masking.
    nodata : int
        Class value of "no data".
    resolution_m : float
        Native pixel size, metres.
    dtype : str
        Data type of the band.
    """

    band: str
    classes: Mapping[int, str]
    invalid: tuple[int, ...]
    dilate: tuple[int, ...]
    nodata: int = 0
    resolution_m: float = 20
    dtype: str = "uint8"


@dataclass(frozen=True, eq=False)
class Sensor:
    """Every fact soilsuite needs about one sensor's surface-reflectance product.

    Attributes
    ----------
    name : str
        Registry name (``"sentinel2-l2a"``).
    bands : tuple of Band
        Reflectance bands in kernel order (the band axis of every cube).
    roles : Mapping[str, str]
        Role (``blue``, ``green``, ``red``, ``nir``, ``swir1``, ``swir2``) -> band name.
    quality : QualityMask
        The quality band and its decoder.
    reflectance_scale : float
        ``reflectance = (DN + offset) * reflectance_scale`` (1e-4 for Sentinel-2 L2A).
    dn_nodata : int
        Nodata value of the served DN.
    offset_rule : callable
        ``(processing_baseline, date) -> offset in DN`` added to the served DN.
    asset_aliases : Mapping[str, tuple of str]
        Band name (and quality band) -> candidate STAC asset keys, tried in order.
    solar_day : callable
        odc-stac ``groupby`` callback ``(item, parsed, idx) -> key``: items with one key are
        fused into one observation, by the metadata and by the loader alike.
    dn_dtype : str
        Data type of the served DN.
    platform : str
        Free text for output metadata (``"Sentinel-2 MSI"``).
    """

    name: str
    bands: tuple[Band, ...]
    roles: Mapping[str, str]
    quality: QualityMask
    reflectance_scale: float
    dn_nodata: int
    offset_rule: Callable[[Any, dt.date | None], int]
    asset_aliases: Mapping[str, tuple[str, ...]]
    solar_day: Callable[..., Any] = field(default=solar_day)
    dn_dtype: str = "uint16"
    platform: str = ""

    def __post_init__(self) -> None:
        names = self.band_names
        if len(set(names)) != len(names):
            raise ValueError(f"sensor {self.name}: duplicate band names {names}")
        bad = {r: b for r, b in self.roles.items() if b not in names}
        if bad:
            raise ValueError(f"sensor {self.name}: roles name unknown bands {bad} (bands: {', '.join(names)})")
        missing = [b for b in self.all_assets if b not in self.asset_aliases]
        if missing:
            raise ValueError(f"sensor {self.name}: no asset aliases for {', '.join(missing)}")

    @cached_property
    def band_names(self) -> tuple[str, ...]:
        """Band names in kernel order."""
        return tuple(b.name for b in self.bands)

    @cached_property
    def all_assets(self) -> tuple[str, ...]:
        """Reflectance bands and the quality band: everything a loader reads."""
        return (*self.band_names, self.quality.band)

    @cached_property
    def band_index(self) -> dict[str, int]:
        """Band name -> position on the band axis."""
        return {b: i for i, b in enumerate(self.band_names)}

    @cached_property
    def wavelength_um(self) -> dict[str, float]:
        """Band name -> central wavelength, micrometres."""
        return {b.name: b.wavelength_um for b in self.bands}

    @cached_property
    def fwhm_um(self) -> dict[str, float]:
        """Band name -> full width at half maximum, micrometres."""
        return {b.name: b.fwhm_um for b in self.bands}

    @cached_property
    def common_name(self) -> dict[str, str]:
        """Band name -> STAC ``eo`` common name."""
        return {b.name: b.common_name for b in self.bands}

    @cached_property
    def native_res_m(self) -> dict[str, float]:
        """Band name (and quality band) -> native pixel size, metres."""
        return {**{b.name: b.resolution_m for b in self.bands}, self.quality.band: self.quality.resolution_m}

    def band(self, role: str) -> str:
        """Band name of a role (``sensor.band("red") == "B04"`` for Sentinel-2).

        Raises
        ------
        KeyError
            Naming the role and the roles this sensor has.
        """
        try:
            return self.roles[role]
        except KeyError:
            raise KeyError(f"sensor {self.name} has no band for role {role!r} "
                           f"(roles: {', '.join(self.roles)})") from None

    def index(self, role: str) -> int:
        """Position on the band axis of a role (``"blue"``) or a band name (``"B02"``)."""
        name = role if role in self.band_index else self.band(role)
        return self.band_index[name]

    def boa_add_offset(self, processing_baseline: str | float | None, date: dt.date | None = None) -> int:
        """Offset (DN) to add to a scene's served DN; see the sensor's ``offset_rule``."""
        return self.offset_rule(processing_baseline, date)

    def stac_cfg(self, assets: Mapping[str, str] | None = None, collection: str = "*") -> dict:
        """odc-stac ``stac_cfg`` for this sensor's assets.

        Parameters
        ----------
        assets : Mapping[str, str], optional
            Band name -> asset key of the items to load (from
            :func:`soilsuite.sources.stac.resolve_assets`); default every alias of every band.
        collection : str
            Collection id the config applies to; ``"*"`` for any.

        Returns
        -------
        dict
            ``{collection: {"assets": {key: {"data_type", "nodata"}}, "aliases": {band: key}}}``:
            the DN data type and nodata forced (items without ``raster:bands`` would otherwise
            load as float32 with NaN fill), and our band names as aliases of the asset keys.
        """
        keys = ({b: (k,) for b, k in assets.items()} if assets is not None
                else {b: self.asset_aliases[b] for b in self.all_assets})
        cfg: dict[str, dict] = {}
        aliases: dict[str, str] = {}
        for band, ks in keys.items():
            is_q = band == self.quality.band
            for k in ks:
                cfg[k] = {"data_type": self.quality.dtype if is_q else self.dn_dtype,
                          "nodata": self.quality.nodata if is_q else self.dn_nodata}
            if assets is not None and ks[0] != band:
                aliases[band] = ks[0]
        out: dict[str, Any] = {"assets": cfg}
        if aliases:
            out["aliases"] = aliases
        return {collection: out}


__all__ = ["REFL_NODATA", "ROLES", "Band", "QualityMask", "Sensor", "item_lon", "solar_day"]
