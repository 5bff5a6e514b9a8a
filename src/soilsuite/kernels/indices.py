"""Spectral indices of the observation cube (SPEC 2.2), numba kernels.

All take ``refl`` int16 ``[T, B, Y, X]`` (offset-corrected reflectance x 10000, bands in
:data:`soilsuite.sentinel2.BANDS` order) and return float32 ``[T, Y, X]`` (unitless). The
arithmetic is done in float64 and rounded once to float32. NaN where a band used is
``REFL_NODATA`` or a denominator is zero. Offset-corrected values may be negative (down to
-1000), so indices may leave [-1, 1]; they are not clipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..sentinel2 import BAND_INDEX, BANDS, REFL_NODATA
from ._jit import twins

__all__ = ["ndvi", "nbr", "nbr2", "pvir2", "normalized_difference"]

I_B04 = BAND_INDEX["B04"]
I_B08 = BAND_INDEX["B08"]
I_B11 = BAND_INDEX["B11"]
I_B12 = BAND_INDEX["B12"]


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


def _nd_impl(refl, i, j, out):
    n_t, _, n_y, n_x = refl.shape
    for t in prange(n_t):
        for y in range(n_y):
            for x in range(n_x):
                out[t, y, x] = np.float32(_nd(refl[t, i, y, x], refl[t, j, y, x]))
    return out


def _pvir2_impl(refl, out):
    n_t, _, n_y, n_x = refl.shape
    for t in prange(n_t):
        for y in range(n_y):
            # row slices: the inner index is the loop variable, so the loop vectorises
            r4 = refl[t, I_B04, y]
            r8 = refl[t, I_B08, y]
            r12 = refl[t, I_B12, y]
            o = out[t, y]
            for x in range(n_x):
                a = r8[x]
                b = r4[x]
                c = r12[x]
                fa = np.float64(a)
                fb = np.float64(b)
                fc = np.float64(c)
                s1 = fa + fb
                s2 = fa + fc
                bad = (a == REFL_NODATA) | (b == REFL_NODATA) | (c == REFL_NODATA) | (s1 == 0.0) | (s2 == 0.0)
                # branch-free: divide by 1 where the result is discarded, then select NaN; the
                # kept value is the same float64 expression as _nd(B08, B04) + _nd(B08, B12)
                v = (fa - fb) / (1.0 if s1 == 0.0 else s1) + (fa - fc) / (1.0 if s2 == 0.0 else s2)
                o[x] = np.float32(np.nan) if bad else np.float32(v)
    return out


_nd_serial, _nd_parallel = twins(_nd_impl)
_pvir2_serial, _pvir2_parallel = twins(_pvir2_impl)


def _check(refl: np.ndarray) -> np.ndarray:
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4 or refl.shape[1] != len(BANDS):
        raise ValueError(f"refl must be [T, {len(BANDS)}, Y, X], got shape {refl.shape}")
    if refl.dtype != np.int16:
        raise TypeError(f"refl must be int16 (offset-corrected reflectance x 10000), got {refl.dtype}")
    return refl


def normalized_difference(refl: np.ndarray, band_a: str, band_b: str, *, parallel: bool = False) -> np.ndarray:
    """(A - B) / (A + B) for two bands named as in :data:`~soilsuite.sentinel2.BANDS`.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, Y, X]``, unitless; NaN on nodata or zero denominator.
    """
    refl = _check(refl)
    out = np.empty((refl.shape[0], refl.shape[2], refl.shape[3]), np.float32)
    fn = _nd_parallel if parallel else _nd_serial
    return fn(refl, BAND_INDEX[band_a], BAND_INDEX[band_b], out)


def ndvi(refl: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """NDVI = (B08 - B04) / (B08 + B04), float32 ``[T, Y, X]``."""
    return normalized_difference(refl, "B08", "B04", parallel=parallel)


def nbr(refl: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """NBR = (B08 - B12) / (B08 + B12), float32 ``[T, Y, X]``."""
    return normalized_difference(refl, "B08", "B12", parallel=parallel)


def nbr2(refl: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """NBR2 = (B11 - B12) / (B11 + B12), float32 ``[T, Y, X]`` (dry-vegetation indicator)."""
    return normalized_difference(refl, "B11", "B12", parallel=parallel)


def pvir2(refl: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """PV+IR2 = NDVI + NBR (SPEC 2.2).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, 10, Y, X]`` offset-corrected reflectance x 10000.
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.

    Returns
    -------
    numpy.ndarray
        float32 ``[T, Y, X]``: ``float32(ndvi64 + nbr64)`` with both terms in float64; NaN
        where B04, B08 or B12 is nodata or ``B08 + B04 == 0`` or ``B08 + B12 == 0``.
    """
    refl = _check(refl)
    out = np.empty((refl.shape[0], refl.shape[2], refl.shape[3]), np.float32)
    fn = _pvir2_parallel if parallel else _pvir2_serial
    return fn(refl, out)
