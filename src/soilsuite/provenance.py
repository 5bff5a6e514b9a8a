"""Provenance products (issue 11, ``--provenance``): why each pixel is bare or not, per rule.

Per pixel, the number of observations each rule of the method removed, in the order the rules
apply (the first that applies; :mod:`soilsuite.kernels.provenance`, docs/provenance.md), the
number kept as bare, and the mean day of year and calendar year of the bare observations:

``PROVENANCE``
    uint16, one band per rule of :data:`RULES` (``scene_filter`` ... ``blue_filter``, ``bare``),
    counts of observations; the bands of a pixel add up to its number of observations.
    Nodata 65535 where the pixel has no observation at all.
``BARE_MEAN_DOY``
    float32, mean day of year (1-366) of the bare observations; NaN where there is none.
``BARE_MEAN_YEAR``
    float32, mean calendar year (e.g. 2021.4) of the bare observations; NaN where there is none.

**Observations of a pixel** are the solar days in the time window on which a scene found by the
search (before the scene filter) covers the pixel (the STAC item's ``geometry``, else its
``bbox``; a pixel is covered when its centre is inside), or on which the loaded data have a
value at the pixel. A day whose every scene covering the pixel was removed by the scene filter
counts under ``scene_filter``; a day a kept scene covers but whose data have no value at the
pixel (outside the scene's data footprint, SCL 0 "no data") counts under ``nodata``.

The block functions here take a :class:`soilsuite.products.ObservationBlock`; the catalogue
(:mod:`soilsuite.products`) declares the products and imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernels import provenance as KP
from .kernels.provenance import RULES

__all__ = ["RULES", "ProvenanceInputs", "provenance_inputs", "area_shares", "rejected_items"]

#: A :class:`soilsuite.products.ObservationBlock` (not imported: the catalogue imports this module).
ObservationBlock = Any
#: ``ObservationBlock.aux`` key of the :class:`ProvenanceInputs` of a block.
AUX_KEY = "provenance"


# ----------------------------------------------------------------------------- inputs of a tile
class Footprints:
    """Scene footprints rasterized on a grid (pixel centres inside), cached by geometry."""

    def __init__(self, geobox):
        self.geobox = geobox
        self._cache: dict[str, np.ndarray] = {}

    def mask(self, item) -> np.ndarray:
        """bool ``[Y, X]``: the pixels whose centre lies in the item's ``geometry`` (else ``bbox``)."""
        geom = item.geometry
        if geom is None and item.bbox is not None:
            w, s, e, n = item.bbox[:4]
            geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        key = json.dumps(geom, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = self._rasterize(geom)
        return self._cache[key]

    def _rasterize(self, geom) -> np.ndarray:
        from odc.geo.geom import Geometry
        from rasterio.features import geometry_mask

        gb = self.geobox
        shape = (gb.shape.y, gb.shape.x)
        if geom is None:
            return np.ones(shape, bool)
        g = Geometry(geom, "EPSG:4326").to_crs(gb.crs)
        if g.is_empty:
            return np.zeros(shape, bool)
        return geometry_mask([g.geom], out_shape=shape, transform=gb.affine, invert=True)

    def union(self, items: Sequence) -> np.ndarray:
        out = np.zeros((self.geobox.shape.y, self.geobox.shape.x), bool)
        for it in items:
            out |= self.mask(it)
        return out


@dataclass
class ProvenanceInputs:
    """What the provenance fields need of one tile beyond the flags.

    ``codes`` uint8 ``[T, Y, X]``: per loaded solar day the validity rule that removed the
    observation (:func:`soilsuite.kernels.provenance.invalid_reasons`), ``scene_filter`` where
    only removed scenes cover a pixel without data, ``NO_OBSERVATION`` where no scene covers
    it, else ``PASS``. ``extra_days`` int64 ``[E]`` (days since 1970-01-01): solar days with
    removed scenes over the tile and no loaded data; ``extra_items[e]`` their items.
    """

    codes: np.ndarray
    extra_days: np.ndarray
    extra_items: list = field(default_factory=list)
    footprints: Footprints | None = None

    def extra_mask(self, e: int) -> np.ndarray:
        """bool ``[Y, X]``: pixels covered by the removed scenes of extra day ``e``."""
        return self.footprints.union(self.extra_items[e])


def rejected_items(found: Sequence, kept: Sequence) -> list:
    """The items of the search that the scene filter (or ``--on-error skip``) removed."""
    ids = {it.id for it in kept}
    return [it for it in found if it.id not in ids]


def provenance_inputs(scl: np.ndarray, refl: np.ndarray, meta, items: Sequence, rejected: Sequence, geobox,
                      cfg) -> ProvenanceInputs:
    """The :class:`ProvenanceInputs` of a tile (called by the loader while it holds the SCL).

    Parameters
    ----------
    scl : numpy.ndarray
        uint8 ``[T, Y + 2h, X + 2h]`` scene classification with the dilation halo.
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    meta : soilsuite.sources.stac.ObservationMeta
        The loaded solar days (``dates``, ``item_ids``, ``sun_zenith`` degrees).
    items, rejected : sequence of pystac.Item
        The kept items over the tile (those loaded) and the items the scene filter removed.
    geobox : odc.geo.geobox.GeoBox
        The tile's grid (without halo).
    cfg : soilsuite.config.CompositeConfig
    """
    from .sensors import DEFAULT_SENSOR

    m = cfg.mask
    codes = KP.invalid_reasons(scl, refl, meta.sun_zenith, m.invalid_scl, m.dilate_scl, m.dilation_px,
                               m.max_sun_zenith)
    fp = Footprints(geobox)
    ny, nx = geobox.shape.y, geobox.shape.x
    rej_by_day: dict = {}
    for it in rejected:
        rej_by_day.setdefault(DEFAULT_SENSOR.solar_day(it, None, None), []).append(it)
    by_id = {it.id: it for it in items}
    t_n = len(meta.dates)
    if t_n:
        h = (scl.shape[1] - ny) // 2
        for t, day in enumerate(meta.dates):
            nothing = scl[t, h: h + ny, h: h + nx] == 0
            for b in range(refl.shape[1]):
                nothing &= refl[t, b] == KP.REFL_NODATA
            if not nothing.any():
                continue
            rej = fp.union(rej_by_day.get(day, []))
            kept = fp.union([by_id[i] for i in meta.item_ids[t] if i in by_id])
            codes[t][nothing & rej] = KP.SCENE_FILTER
            codes[t][nothing & ~rej & ~kept] = KP.NO_OBSERVATION
    loaded = set(meta.dates)
    extra = sorted(d for d in rej_by_day if d not in loaded)
    days = np.array(extra, dtype="datetime64[D]").astype(np.int64).reshape(len(extra))
    return ProvenanceInputs(codes, days, [rej_by_day[d] for d in extra], fp)


# ----------------------------------------------------------------------------- block fields
def _counts(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = "provenance.counts"
    if key not in block.cache:
        pi = block.aux.get(AUX_KEY)
        if pi is None:
            from .errors import ConfigError

            raise ConfigError("provenance: needs the scene classification and the scene list of a composite run "
                              "(soilsuite composite --provenance); this block has neither")
        counts, doy_sum, year_sum = KP.count_rules(pi.codes, block.flags, block.period, block.n_periods, block.days)
        if len(pi.extra_days):
            first, last = _period_bounds(block)
            for e, d in enumerate(pi.extra_days.tolist()):
                ps = [p for p in range(block.n_periods) if first[p] <= d <= last[p]]
                if ps:
                    cover = pi.extra_mask(e)
                    for p in ps:
                        counts[p, KP.SCENE_FILTER] += cover
        block.cache[key] = (counts, doy_sum, year_sum)
    return block.cache[key]


def _period_bounds(block: ObservationBlock) -> tuple[list[int], list[int]]:
    """First and last day (days since 1970-01-01) of each period of the block."""
    n = block.n_periods
    big = 10**9
    last = list(block.period_end) if block.period_end is not None else [big] * n
    first = getattr(block, "period_start", None)
    if first is None:  # unknown starts: the day after the previous period's end
        first = [-big] + [int(e) + 1 for e in last[:-1]]
    return [int(v) for v in first], [int(v) for v in last]


def prov_counts(block: ObservationBlock) -> np.ndarray:
    """Observations per rule, int32 ``[P, len(RULES), Y, X]``."""
    return _counts(block)[0]


def prov_doy_sum(block: ObservationBlock) -> np.ndarray:
    """Sum of the day of year (1-366) of the bare observations, float64 ``[P, Y, X]``."""
    return _counts(block)[1]


def prov_year_sum(block: ObservationBlock) -> np.ndarray:
    """Sum of the calendar year of the bare observations, float64 ``[P, Y, X]``."""
    return _counts(block)[2]


def finalize_provenance(f: Mapping[str, np.ndarray]) -> np.ndarray:
    """PROVENANCE: float32 ``[len(RULES), Y, X]`` counts, NaN where the pixel has no observation."""
    c = np.asarray(f["prov_counts"], np.float32).copy()
    c[:, c.sum(0) == 0] = np.nan
    return c


def _mean(f: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    n = np.asarray(f["prov_counts"][KP.BARE], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, f[name] / n, np.nan).astype(np.float32)


def finalize_mean_doy(f: Mapping[str, np.ndarray]) -> np.ndarray:
    """BARE_MEAN_DOY: mean day of year of the bare observations, NaN where there is none."""
    return _mean(f, "prov_doy_sum")


def finalize_mean_year(f: Mapping[str, np.ndarray]) -> np.ndarray:
    """BARE_MEAN_YEAR: mean calendar year of the bare observations, NaN where there is none."""
    return _mean(f, "prov_year_sum")


# ----------------------------------------------------------------------------- the area
def area_shares(totals: Sequence[float]) -> dict[str, float]:
    """Share (0-1) of each rule in the observations of the whole area, from the per-band sums
    of the window's PROVENANCE (``totals`` in :data:`RULES` order); empty if there is none."""
    tot = np.asarray(totals, np.float64)
    s = float(tot.sum())
    return {r: float(v / s) for r, v in zip(RULES, tot, strict=True)} if s > 0 else {}
