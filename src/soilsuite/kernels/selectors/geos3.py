"""GEOS3's bare-soil rule set (Demattê et al. 2018), mapped from Landsat to Sentinel-2.

Demattê, J. A. M., Fongaro, C. T., Rizzo, R., Safanelli, J. L. (2018): Geospatial Soil Sensing
System (GEOS3): a powerful data mining procedure to retrieve soil spectral reflectance from
satellite images. Remote Sensing of Environment 212:161-175, doi:10.1016/j.rse.2018.04.047.
The VNSIR limit is the one of the global version of the rule set (Demattê et al. 2020,
"Bare Earth's Surface Spectra as a Proxy for Soil Resource Monitoring", Scientific Reports
10:4461). An observation is a bare candidate if all of these hold (reflectance 0-1):

* NDVI = (nir - red) / (nir + red) in [-0.25, 0.25]                       (:data:`NDVI_RANGE`)
* NBR2 = (swir1 - swir2) / (swir1 + swir2) in [-0.30, 0.10]               (:data:`NBR2_RANGE`)
* VNSIR = 1 - ((2 red - green - blue) + 3 (swir2 - nir)) <= 0.9            (:data:`VNSIR_MAX`)
* an ascending visible-NIR curve: green <= red <= nir (the "B2 - B1 >= 0, B3 - B2 >= 0" rule
  on Landsat TM's green, red, nir bands, as the public GEOS3 Earth Engine code writes it).

Landsat -> Sentinel-2 (band roles of the sensor): blue TM1/OLI2 -> B02, green TM2/OLI3 -> B03,
red TM3/OLI4 -> B04, nir TM4/OLI5 -> B08 (B8A is spectrally closer to OLI5; B08 keeps NDVI the
same as SCMaP's), swir1 TM5/OLI6 -> B11, swir2 TM7/OLI7 -> B12. The thresholds are used as
published, without a Landsat-to-Sentinel-2 adjustment. The rule set has no tunable threshold:
``threshold`` (PV+IR2) is not used. The index returned is NDVI. Any band nodata or a zero
denominator: not a candidate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...sensors.base import REFL_NODATA
from ...sensors.sentinel2 import SENTINEL2_L2A as _S2
from . import Selector, register_selector

#: GEOS3's limits (Demattê et al. 2018; VNSIR: Demattê et al. 2020), closed intervals.
NDVI_RANGE = (-0.25, 0.25)
NBR2_RANGE = (-0.30, 0.10)
VNSIR_MAX = 0.9
_ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")


def _positions(sensor) -> tuple[int, ...]:
    return tuple(sensor.index(r) for r in _ROLES)


@njit(cache=True, nogil=True)
def _geos3_kernel(refl, ib, ig, ir, i_n, i1, i2, nd_lo, nd_hi, n2_lo, n2_hi, v_max, cand, index):
    n_t, _, n_y, n_x = refl.shape
    for t in range(n_t):
        for y in range(n_y):
            for x in range(n_x):
                b = refl[t, ib, y, x]
                g = refl[t, ig, y, x]
                r = refl[t, ir, y, x]
                n = refl[t, i_n, y, x]
                s1 = refl[t, i1, y, x]
                s2 = refl[t, i2, y, x]
                if (b == REFL_NODATA or g == REFL_NODATA or r == REFL_NODATA or n == REFL_NODATA
                        or s1 == REFL_NODATA or s2 == REFL_NODATA):
                    index[t, y, x] = np.nan
                    cand[t, y, x] = False
                    continue
                fb = np.float64(b) * 1e-4
                fg = np.float64(g) * 1e-4
                fr = np.float64(r) * 1e-4
                fn = np.float64(n) * 1e-4
                f1 = np.float64(s1) * 1e-4
                f2 = np.float64(s2) * 1e-4
                d1 = fn + fr
                d2 = f1 + f2
                if d1 == 0.0 or d2 == 0.0:
                    index[t, y, x] = np.nan
                    cand[t, y, x] = False
                    continue
                nd = (fn - fr) / d1
                n2 = (f1 - f2) / d2
                vn = 1.0 - ((2.0 * fr - fg - fb) + 3.0 * (f2 - fn))
                index[t, y, x] = np.float32(nd)
                cand[t, y, x] = ((nd >= nd_lo) and (nd <= nd_hi) and (n2 >= n2_lo) and (n2 <= n2_hi)
                                 and (vn <= v_max) and (g <= r) and (r <= n))
    return cand, index


def select(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2
           ) -> tuple[np.ndarray, np.ndarray]:
    """Bare candidates by GEOS3's rules (numba kernel, one pass over the cube).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    valid : numpy.ndarray
        bool ``[T, Y, X]`` (unused: the decision is taken for every observation).
    threshold : numpy.ndarray, optional
        Not used (GEOS3 has fixed limits).
    sensor : soilsuite.sensors.Sensor
        Where the blue, green, red, nir, swir1 and swir2 bands are (default Sentinel-2 L2A).

    Returns
    -------
    candidate : numpy.ndarray
        bool ``[T, Y, X]``.
    ndvi : numpy.ndarray
        float32 ``[T, Y, X]`` NDVI (unitless), NaN on nodata.
    """
    refl = np.ascontiguousarray(refl)
    n_t, _, n_y, n_x = refl.shape
    cand = np.empty((n_t, n_y, n_x), np.bool_)
    index = np.empty((n_t, n_y, n_x), np.float32)
    return _geos3_kernel(refl, *_positions(sensor), NDVI_RANGE[0], NDVI_RANGE[1], NBR2_RANGE[0], NBR2_RANGE[1],
                         VNSIR_MAX, cand, index)


def reference(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2
              ) -> tuple[np.ndarray, np.ndarray]:
    """The numpy oracle of :func:`select` (whole-array expressions, float64)."""
    ib, ig, ir, i_n, i1, i2 = _positions(sensor)
    bad = np.any(refl[:, [ib, ig, ir, i_n, i1, i2]] == REFL_NODATA, axis=1)
    b, g, r, n, s1, s2 = (refl[:, i].astype(np.float64) * 1e-4 for i in (ib, ig, ir, i_n, i1, i2))
    with np.errstate(divide="ignore", invalid="ignore"):
        nd = (n - r) / (n + r)
        n2 = (s1 - s2) / (s1 + s2)
    bad |= (n + r == 0) | (s1 + s2 == 0)
    vn = 1.0 - ((2.0 * r - g - b) + 3.0 * (s2 - n))
    cand = ((nd >= NDVI_RANGE[0]) & (nd <= NDVI_RANGE[1]) & (n2 >= NBR2_RANGE[0]) & (n2 <= NBR2_RANGE[1])
            & (vn <= VNSIR_MAX) & (refl[:, ig] <= refl[:, ir]) & (refl[:, ir] <= refl[:, i_n]) & ~bad)
    return cand, np.where(bad, np.nan, nd).astype(np.float32)


GEOS3 = register_selector(Selector(
    "geos3", select, reference,
    "GEOS3 (Demattê et al. 2018): NDVI in [-0.25, 0.25], NBR2 in [-0.30, 0.10], VNSIR <= 0.9, "
    "green <= red <= nir", uses_threshold=False,
    notes="MASK class 2 means no observation passed GEOS3's rules (not PV+IR2 <= threshold)"))
