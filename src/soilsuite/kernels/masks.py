"""Per-observation validity mask (SPEC 2.1), numba kernel.

An observation (pixel x date) is valid when its SCL class is not in ``invalid_scl``, no pixel
of the square window of side ``dilation_px`` centred on it has an SCL class in ``dilate_scl``,
the scene's sun zenith is <= ``max_sun_zenith``, and none of the reflectance bands equals
:data:`soilsuite.sentinel2.REFL_NODATA`.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..sentinel2 import BANDS, REFL_NODATA, SCL_DILATE, SCL_INVALID
from ._jit import twins

__all__ = ["valid_mask", "class_lut"]


def _valid_mask_impl(scl, refl, sun_zenith, invalid_lut, dilate_lut, radius, max_sun_zenith, out):
    n_t, n_b, n_y, n_x = refl.shape
    for t in prange(n_t):
        if not (sun_zenith[t] <= max_sun_zenith):  # NaN zenith is invalid too
            for y in range(n_y):
                for x in range(n_x):
                    out[t, y, x] = False
            continue
        # horizontal pass: h[y, x] = number of dilate-class pixels within |dx| <= radius
        h = np.zeros((n_y, n_x), np.int32)
        for y in range(n_y):
            cnt = 0
            for xx in range(min(radius, n_x - 1) + 1):
                cnt += dilate_lut[scl[t, y, xx]]
            for x in range(n_x):
                h[y, x] = cnt
                a = x + radius + 1
                if a < n_x:
                    cnt += dilate_lut[scl[t, y, a]]
                d = x - radius
                if d >= 0:
                    cnt -= dilate_lut[scl[t, y, d]]
        # vertical pass as running column sums of h
        col = np.zeros(n_x, np.int32)
        for yy in range(min(radius, n_y - 1) + 1):
            for x in range(n_x):
                col[x] += h[yy, x]
        for y in range(n_y):
            for x in range(n_x):
                out[t, y, x] = col[x] == 0 and invalid_lut[scl[t, y, x]] == 0
            a = y + radius + 1
            if a < n_y:
                for x in range(n_x):
                    col[x] += h[a, x]
            d = y - radius
            if d >= 0:
                for x in range(n_x):
                    col[x] -= h[d, x]
        for b in range(n_b):
            for y in range(n_y):
                for x in range(n_x):
                    if refl[t, b, y, x] == REFL_NODATA:
                        out[t, y, x] = False
    return out


_valid_mask_serial, _valid_mask_parallel = twins(_valid_mask_impl)


def class_lut(classes) -> np.ndarray:
    """Look-up table ``uint8 [256]``: 1 for SCL classes in ``classes``, else 0."""
    cls = np.asarray(classes, dtype=np.int64).ravel()
    if cls.size and (cls.min() < 0 or cls.max() > 255):
        raise ValueError(f"SCL classes must be in 0..255, got {cls.tolist()}")
    lut = np.zeros(256, np.uint8)
    lut[cls] = 1
    return lut


def valid_mask(
    scl: np.ndarray,
    refl: np.ndarray,
    sun_zenith: np.ndarray,
    invalid_scl=SCL_INVALID,
    dilate_scl=SCL_DILATE,
    dilation_px: int = 11,
    max_sun_zenith: float = 70.0,
    *,
    parallel: bool = False,
) -> np.ndarray:
    """Validity of every observation (SPEC 2.1).

    Parameters
    ----------
    scl : numpy.ndarray
        uint8 ``[T, Y, X]`` Sen2Cor scene classification (0 = no data).
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000, B = 10 bands in
        :data:`soilsuite.sentinel2.BANDS` order; nodata = ``REFL_NODATA`` (-32768).
    sun_zenith : numpy.ndarray
        float ``[T]`` scene sun zenith angle, degrees. NaN makes the whole date invalid.
    invalid_scl, dilate_scl : sequence of int
        SCL classes that make an observation invalid / that are dilated.
    dilation_px : int
        Side of the square dilation window in pixels (odd, >= 1); the window of a pixel
        reaches ``dilation_px // 2`` pixels in each direction. Pixels outside the array count
        as not-cloud: the caller supplies a halo of ``dilation_px // 2`` pixels.
    max_sun_zenith : float
        Dates with sun zenith above this (degrees) are invalid.
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.

    Returns
    -------
    numpy.ndarray
        bool ``[T, Y, X]``, True = valid.
    """
    scl = np.ascontiguousarray(scl)
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4 or refl.shape[1] != len(BANDS):
        raise ValueError(f"refl must be [T, {len(BANDS)}, Y, X], got shape {refl.shape}")
    if refl.dtype != np.int16:
        raise TypeError(f"refl must be int16 (offset-corrected reflectance x 10000), got {refl.dtype}")
    n_t, _, n_y, n_x = refl.shape
    if scl.shape != (n_t, n_y, n_x):
        raise ValueError(f"scl must be [T, Y, X] = {(n_t, n_y, n_x)}, got {scl.shape}")
    if scl.dtype != np.uint8:
        if scl.dtype.kind not in "iu" or (scl.size and (scl.min() < 0 or scl.max() > 255)):
            raise TypeError(f"scl must be uint8 classes 0..255, got {scl.dtype}")
        scl = scl.astype(np.uint8)
    sz = np.ascontiguousarray(sun_zenith, dtype=np.float64).reshape(-1)
    if sz.shape != (n_t,):
        raise ValueError(f"sun_zenith must be [T] = [{n_t}], got shape {np.shape(sun_zenith)}")
    dilation_px = int(dilation_px)
    if dilation_px < 1 or dilation_px % 2 != 1:
        raise ValueError(f"dilation_px must be odd and >= 1 (a centred square window), got {dilation_px}")
    out = np.empty((n_t, n_y, n_x), np.bool_)
    fn = _valid_mask_parallel if parallel else _valid_mask_serial
    return fn(scl, refl, sz, class_lut(invalid_scl), class_lut(dilate_scl), dilation_px // 2,
              float(max_sun_zenith), out)
