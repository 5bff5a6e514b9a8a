"""Per-observation validity mask (SPEC 2.1), numba kernel.

An observation (pixel x date) is valid when its quality class (Sentinel-2: SCL) is not in
``invalid_scl``, no pixel of the square window of side ``dilation_px`` centred on it has a class
in ``dilate_scl``, the scene's sun zenith is <= ``max_sun_zenith``, and none of the reflectance
bands equals :data:`soilsuite.sensors.REFL_NODATA`. The class sets default to Sentinel-2 L2A's
(``sensor.quality.invalid`` / ``sensor.quality.dilate``); callers with another sensor pass its.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..sensors.base import REFL_NODATA
from ..sensors.sentinel2 import SENTINEL2_L2A as _S2
from ._jit import twins

__all__ = ["valid_mask", "class_bits"]


@njit(cache=True, nogil=True)
def _window_or_x(a, b, w, n_out):
    """``OR`` of ``w`` consecutive bytes along x: returns ``r`` with ``r[y, x] = OR a[y, x:x + w]``
    for ``x < n_out`` (``a`` has ``n_out + w - 1`` columns; ``a`` and ``b`` are overwritten).

    Doubling spans (1, 2, 4, ... <= w), then two overlapping spans cover the window: about
    ``log2(w) + 1`` vectorisable passes instead of ``w`` per pixel.
    """
    n_y, n_l = a.shape
    span = 1
    while 2 * span <= w:
        m = n_l - 2 * span + 1
        for y in range(n_y):
            src = a[y]
            shifted = a[y, span:]  # slices keep the inner index a plain loop variable (SIMD)
            dst = b[y]
            for x in range(m):
                dst[x] = src[x] | shifted[x]
        a, b = b, a
        span *= 2
    d = w - span
    r = np.empty((n_y, n_out), np.uint8)
    for y in range(n_y):
        src = a[y]
        shifted = a[y, d:]
        dst = r[y]
        for x in range(n_out):
            dst[x] = src[x] | shifted[x]
    return r


@njit(cache=True, nogil=True)
def _window_or_y(a, b, w, n_out):
    """As :func:`_window_or_x` along y: ``r[y, x] = OR a[y:y + w, x]`` for ``y < n_out``."""
    n_l, n_x = a.shape
    span = 1
    while 2 * span <= w:
        m = n_l - 2 * span + 1
        for y in range(m):
            for x in range(n_x):
                b[y, x] = a[y, x] | a[y + span, x]
        a, b = b, a
        span *= 2
    d = w - span
    r = np.empty((n_out, n_x), np.uint8)
    for y in range(n_out):
        for x in range(n_x):
            r[y, x] = a[y, x] | a[y + d, x]
    return r


@njit(cache=True, nogil=True)
def _in_set(bits, cls):
    """1 if SCL class ``cls`` is in the 64-bit set ``bits`` (see :func:`class_bits`), else 0."""
    c = np.uint64(cls)
    return np.uint8((bits >> (c & np.uint64(63))) & np.uint64(1)) & np.uint8(c < 64)


def _valid_mask_impl(scl, refl, sun_zenith, invalid_bits, dilate_bits, radius, max_sun_zenith, out):
    n_t, n_b, n_y, n_x = refl.shape
    h = (scl.shape[1] - n_y) // 2  # halo of scl around refl's grid
    s_y, s_x = scl.shape[1], scl.shape[2]
    w = 2 * radius + 1
    o8 = out.view(np.uint8)  # bool as 0/1 bytes, for branch-free (vectorisable) updates
    for t in prange(n_t):
        if not (sun_zenith[t] <= max_sun_zenith):  # NaN zenith is invalid too
            for y in range(n_y):
                for x in range(n_x):
                    o8[t, y, x] = 0
            continue
        # dilate-class pixels of scl (halo included), zero-padded by radius (outside the
        # array = not cloud)
        a = np.zeros((s_y + 2 * radius, s_x + 2 * radius), np.uint8)
        for y in range(s_y):
            row = scl[t, y]
            dst = a[y + radius, radius:]
            for x in range(s_x):
                dst[x] = _in_set(dilate_bits, row[x])
        # square dilation = window OR along x, then along y (separable)
        hx = _window_or_x(a, np.empty_like(a), w, s_x)
        near = _window_or_y(hx, np.empty_like(hx), w, s_y)
        for y in range(n_y):
            row = scl[t, y + h, h:]
            nr = near[y + h, h:]
            dst = o8[t, y]
            for x in range(n_x):
                dst[x] = (nr[x] | _in_set(invalid_bits, row[x])) ^ np.uint8(1)
        for y in range(n_y):
            dst = o8[t, y]
            for b in range(n_b):
                src = refl[t, b, y]
                for x in range(n_x):
                    dst[x] &= np.uint8(src[x] != REFL_NODATA)
    return out


_valid_mask_serial, _valid_mask_parallel = twins(_valid_mask_impl)


def class_bits(classes) -> np.uint64:
    """Bit set ``uint64``: bit ``c`` for each SCL class ``c`` in ``classes`` (0..63; Sen2Cor
    uses 0..11). Testing ``(bits >> c) & 1`` vectorises, a table look-up does not."""
    cls = np.asarray(classes, dtype=np.int64).ravel()
    if cls.size and (cls.min() < 0 or cls.max() > 63):
        raise ValueError(f"SCL classes must be in 0..63, got {cls.tolist()}")
    bits = 0
    for c in cls.tolist():
        bits |= 1 << c
    return np.uint64(bits)


def valid_mask(
    scl: np.ndarray,
    refl: np.ndarray,
    sun_zenith: np.ndarray,
    invalid_scl=_S2.quality.invalid,
    dilate_scl=_S2.quality.dilate,
    dilation_px: int = 11,
    max_sun_zenith: float = 70.0,
    *,
    parallel: bool = False,
) -> np.ndarray:
    """Validity of every observation (SPEC 2.1).

    Parameters
    ----------
    scl : numpy.ndarray
        uint8 ``[T, Y + 2h, X + 2h]`` Sen2Cor scene classification (0 = no data), on refl's
        grid with an optional halo of ``h >= 0`` pixels on every side: context for the
        dilation near the edges (the pipeline loads SCL with ``h = dilation_px // 2`` and the
        reflectance bands without, so tiles do not decode their neighbours' blocks).
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000 (B = 10 for Sentinel-2,
        any number of bands); nodata = ``REFL_NODATA`` (-32768).
    sun_zenith : numpy.ndarray
        float ``[T]`` scene sun zenith angle, degrees. NaN makes the whole date invalid.
    invalid_scl, dilate_scl : sequence of int
        Quality classes that make an observation invalid / that are dilated; default
        Sentinel-2's ``SENTINEL2_L2A.quality.invalid`` / ``.dilate``.
    dilation_px : int
        Side of the square dilation window in pixels (odd, >= 1); the window of a pixel
        reaches ``dilation_px // 2`` pixels in each direction. Pixels outside the array count
        as not-cloud: give scl a halo of ``dilation_px // 2`` pixels for exact edges.
    max_sun_zenith : float
        Dates with sun zenith above this (degrees) are invalid.
    parallel : bool
        Use the ``prange`` twin (threads over dates). Default serial.

    Returns
    -------
    numpy.ndarray
        bool ``[T, Y, X]`` on refl's grid, True = valid.
    """
    scl = np.ascontiguousarray(scl)
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4:
        raise ValueError(f"refl must be [T, B, Y, X], got shape {refl.shape}")
    if refl.dtype != np.int16:
        raise TypeError(f"refl must be int16 (offset-corrected reflectance x 10000), got {refl.dtype}")
    n_t, _, n_y, n_x = refl.shape
    halo = (scl.shape[1] - n_y) // 2 if scl.ndim == 3 else -1
    if scl.ndim != 3 or halo < 0 or scl.shape != (n_t, n_y + 2 * halo, n_x + 2 * halo):
        raise ValueError(f"scl must be [T, Y + 2h, X + 2h] with refl's [T, Y, X] = {(n_t, n_y, n_x)} and a "
                         f"halo h >= 0 on every side, got {scl.shape}")
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
    return fn(scl, refl, sz, class_bits(invalid_scl), class_bits(dilate_scl), dilation_px // 2,
              float(max_sun_zenith), out)
