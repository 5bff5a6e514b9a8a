"""Spectral indices of the observation cube (SPEC 2.2), numba kernels.

All take ``refl`` int16 ``[T, B, Y, X]`` (offset-corrected reflectance x 10000, bands in the
sensor's order) and return float32 ``[T, Y, X]`` (unitless). Band positions are parameters
(``red``, ``nir``, ``swir1``, ``swir2``), by default those of Sentinel-2 L2A; for another sensor
pass ``sensor.index("red")`` etc. (:class:`soilsuite.sensors.Sensor`). The
arithmetic is done in float64 and rounded once to float32. NaN where a band used is
``REFL_NODATA`` or a denominator is zero. Offset-corrected values may be negative (down to
-1000), so indices may leave [-1, 1]; they are not clipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..sensors.base import REFL_NODATA
from ..sensors.sentinel2 import SENTINEL2_L2A as _S2
from ._jit import twins

__all__ = ["ndvi", "nbr", "nbr2", "pvir2", "pvir2_at_most", "normalized_difference"]

#: Default band positions: Sentinel-2 L2A's red (B04), nir (B08), swir1 (B11), swir2 (B12).
I_B04 = _S2.index("red")
I_B08 = _S2.index("nir")
I_B11 = _S2.index("swir1")
I_B12 = _S2.index("swir2")


@njit(cache=True, nogil=True, inline="always")
def _nd(a, b):
    """(a - b) / (a + b) in float64 for int16 DN; NaN on nodata or zero denominator."""
    if a == REFL_NODATA or b == REFL_NODATA:
        return np.nan
    fa = np.float64(a)
    fb = np.float64(b)
    s = fa + fb
    if s == 0.0:
        return np.nan
    return (fa - fb) / s


@njit(cache=True, nogil=True, inline="always")
def _pvir2_px(a, b, c):
    """float32 PV+IR2 of one observation from int16 nir ``a``, red ``b``, swir2 ``c``: the float64
    sum ``_nd(a, b) + _nd(a, c)`` rounded once; NaN on nodata or a zero denominator."""
    fa = np.float64(a)
    fb = np.float64(b)
    fc = np.float64(c)
    s1 = fa + fb
    s2 = fa + fc
    bad = (a == REFL_NODATA) | (b == REFL_NODATA) | (c == REFL_NODATA) | (s1 == 0.0) | (s2 == 0.0)
    # branch-free: divide by 1 where the result is discarded, then select NaN; the kept value is
    # the same float64 expression as _nd(nir, red) + _nd(nir, swir2)
    v = (fa - fb) / (1.0 if s1 == 0.0 else s1) + (fa - fc) / (1.0 if s2 == 0.0 else s2)
    return np.float32(np.nan) if bad else np.float32(v)


def _nd_impl(refl, i, j, out):
    n_t, _, n_y, n_x = refl.shape
    for t in prange(n_t):
        for y in range(n_y):
            for x in range(n_x):
                out[t, y, x] = np.float32(_nd(refl[t, i, y, x], refl[t, j, y, x]))
    return out


def _pvir2_impl(refl, i_red, i_nir, i_swir2, out):
    n_t, _, n_y, n_x = refl.shape
    for t in prange(n_t):
        for y in range(n_y):
            # row slices: the inner index is the loop variable, so the loop vectorises
            r4 = refl[t, i_red, y]
            r8 = refl[t, i_nir, y]
            r12 = refl[t, i_swir2, y]
            o = out[t, y]
            for x in range(n_x):
                o[x] = _pvir2_px(r8[x], r4[x], r12[x])
    return out


def _pvir2_at_most_impl(refl, i_red, i_nir, i_swir2, threshold, out, below):
    """:func:`_pvir2_impl` and ``below = out <= threshold`` in the same pass (SCMaP's selector)."""
    n_t, _, n_y, n_x = refl.shape
    b8 = below.view(np.uint8)  # bool as 0/1 bytes, for a branch-free store
    for t in prange(n_t):
        for y in range(n_y):
            r4 = refl[t, i_red, y]
            r8 = refl[t, i_nir, y]
            r12 = refl[t, i_swir2, y]
            thr = threshold[y]
            o = out[t, y]
            c = b8[t, y]
            for x in range(n_x):
                v = _pvir2_px(r8[x], r4[x], r12[x])
                o[x] = v
                c[x] = np.uint8(v <= thr[x])  # NaN compares False
    return out, below


_nd_serial, _nd_parallel = twins(_nd_impl)
_pvir2_serial, _pvir2_parallel = twins(_pvir2_impl)
_pvir2_at_most_serial, _pvir2_at_most_parallel = twins(_pvir2_at_most_impl)


def _check(refl: np.ndarray, *bands: int) -> np.ndarray:
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4:
        raise ValueError(f"refl must be [T, B, Y, X], got shape {refl.shape}")
    if refl.dtype != np.int16:
        raise TypeError(f"refl must be int16 (offset-corrected reflectance x 10000), got {refl.dtype}")
    bad = [b for b in bands if not 0 <= b < refl.shape[1]]
    if bad:
        raise ValueError(f"band position(s) {bad} outside refl's {refl.shape[1]} bands (shape {refl.shape})")
    return refl


def _position(band: int | str) -> int:
    """A band position: an int as is, a name through Sentinel-2's band order."""
    if isinstance(band, str):
        return _S2.index(band)
    return int(band)


def normalized_difference(refl: np.ndarray, band_a: int | str, band_b: int | str, *,
                          parallel: bool = False) -> np.ndarray:
    """(A - B) / (A + B) for two bands.

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    band_a, band_b : int or str
        Band positions on the B axis (``sensor.index("nir")``), or Sentinel-2 band names or
        roles (``"B08"``, ``"nir"``).
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, Y, X]``, unitless; NaN on nodata or zero denominator.
    """
    i, j = _position(band_a), _position(band_b)
    refl = _check(refl, i, j)
    out = np.empty((refl.shape[0], refl.shape[2], refl.shape[3]), np.float32)
    fn = _nd_parallel if parallel else _nd_serial
    return fn(refl, i, j, out)


def ndvi(refl: np.ndarray, *, parallel: bool = False, red: int = I_B04, nir: int = I_B08) -> np.ndarray:
    """NDVI = (nir - red) / (nir + red) (S2: B08, B04), float32 ``[T, Y, X]``."""
    return normalized_difference(refl, nir, red, parallel=parallel)


def nbr(refl: np.ndarray, *, parallel: bool = False, nir: int = I_B08, swir2: int = I_B12) -> np.ndarray:
    """NBR = (nir - swir2) / (nir + swir2) (S2: B08, B12), float32 ``[T, Y, X]``."""
    return normalized_difference(refl, nir, swir2, parallel=parallel)


def nbr2(refl: np.ndarray, *, parallel: bool = False, swir1: int = I_B11, swir2: int = I_B12) -> np.ndarray:
    """NBR2 = (swir1 - swir2) / (swir1 + swir2) (S2: B11, B12), float32 ``[T, Y, X]``
    (dry-vegetation indicator)."""
    return normalized_difference(refl, swir1, swir2, parallel=parallel)


def pvir2(refl: np.ndarray, *, parallel: bool = False, red: int = I_B04, nir: int = I_B08,
          swir2: int = I_B12) -> np.ndarray:
    """PV+IR2 = NDVI + NBR (SPEC 2.2).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000 (B = 10 for Sentinel-2).
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.
    red, nir, swir2 : int
        Band positions of the roles (``sensor.index("red")``...); default Sentinel-2's B04,
        B08, B12.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, Y, X]``: ``float32(ndvi64 + nbr64)`` with both terms in float64; NaN
        where red, nir or swir2 is nodata or ``nir + red == 0`` or ``nir + swir2 == 0``.
    """
    red, nir, swir2 = int(red), int(nir), int(swir2)
    refl = _check(refl, red, nir, swir2)
    out = np.empty((refl.shape[0], refl.shape[2], refl.shape[3]), np.float32)
    fn = _pvir2_parallel if parallel else _pvir2_serial
    return fn(refl, red, nir, swir2, out)


def pvir2_at_most(refl: np.ndarray, threshold, *, parallel: bool = False, red: int = I_B04, nir: int = I_B08,
                  swir2: int = I_B12) -> tuple[np.ndarray, np.ndarray]:
    """PV+IR2 and its comparison with a threshold in one pass (SCMaP's selector, SPEC 2.2-2.3).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    threshold : numpy.ndarray or float
        float32 ``[Y, X]`` PV+IR2 threshold per pixel (unitless), or anything that broadcasts
        to ``[Y, X]`` (a scalar).
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.
    red, nir, swir2 : int
        Band positions of the roles, as :func:`pvir2`.

    Returns
    -------
    below : numpy.ndarray
        bool ``[T, Y, X]``: ``pvir2 <= threshold`` compared in float32 (False where PV+IR2 is NaN),
        the same as ``np.less_equal(pvir2(refl), float32(threshold))``.
    pvir2 : numpy.ndarray
        float32 ``[T, Y, X]``, exactly :func:`pvir2`.
    """
    red, nir, swir2 = int(red), int(nir), int(swir2)
    refl = _check(refl, red, nir, swir2)
    n_t, _, n_y, n_x = refl.shape
    thr = np.asarray(threshold, np.float32)
    try:
        thr = np.ascontiguousarray(np.broadcast_to(thr, (n_y, n_x)))
    except ValueError:
        raise ValueError(f"threshold must be a scalar or [Y, X] = {(n_y, n_x)}, got shape {thr.shape}") from None
    out = np.empty((n_t, n_y, n_x), np.float32)
    below = np.empty((n_t, n_y, n_x), np.bool_)
    fn = _pvir2_at_most_parallel if parallel else _pvir2_at_most_serial
    fn(refl, red, nir, swir2, thr, out, below)
    return below, out
