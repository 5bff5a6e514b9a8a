"""Exact 2 x 2 block mean of an integer raster (10 m -> 20 m on an aligned grid).

The rule is that of GDAL's ``average`` warp on a grid that halves an aligned source grid (what
odc-stac does for a 10 m band without a 2x overview): the mean of the block's valid pixels
(those != ``nodata``), rounded half up (``floor(mean + 0.5)``, exact in integers:
``(2 * sum + n) // (2 * n)``); ``nodata`` where all four are nodata. Pure numba, no I/O.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _block_mean_2x2(src, nodata, out):
    ny, nx = out.shape
    for j in range(ny):
        for i in range(nx):
            s = 0
            n = 0
            for dj in range(2):
                for di in range(2):
                    v = src[2 * j + dj, 2 * i + di]
                    if v != nodata:
                        s += np.int64(v)
                        n += 1
            if n == 0:
                out[j, i] = nodata
            else:
                out[j, i] = (2 * s + n) // (2 * n)


def block_mean_2x2(src: np.ndarray, nodata: int, out: np.ndarray | None = None) -> np.ndarray:
    """Mean of each 2 x 2 block of ``src`` ignoring ``nodata``, rounded half up.

    Parameters
    ----------
    src : numpy.ndarray
        Unsigned/signed integer raster ``[2 Y, 2 X]`` (e.g. uint16 L2A DN at 10 m; no scale or
        offset applied: the mean is in the same units).
    nodata : int
        Value excluded from the mean, and written where a block has no valid pixel (0 for L2A).
    out : numpy.ndarray, optional
        ``[Y, X]`` array of ``src``'s dtype to write into (may be a view).

    Returns
    -------
    numpy.ndarray
        ``[Y, X]`` of ``src``'s dtype.
    """
    if src.ndim != 2 or src.shape[0] % 2 or src.shape[1] % 2:
        raise ValueError(f"block_mean_2x2: expected a 2-D array of even shape, got {src.shape}")
    if out is None:
        out = np.empty((src.shape[0] // 2, src.shape[1] // 2), src.dtype)
    _block_mean_2x2(src, src.dtype.type(nodata), out)
    return out


def block_mean_2x2_reference(src: np.ndarray, nodata: int) -> np.ndarray:
    """Slow obvious numpy version of :func:`block_mean_2x2` (the oracle in the tests)."""
    h, w = src.shape
    b = src.reshape(h // 2, 2, w // 2, 2).astype(np.float64)
    valid = b != nodata
    n = valid.sum(axis=(1, 3))
    s = np.where(valid, b, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.floor(s / n + 0.5)
    return np.where(n > 0, mean, nodata).astype(src.dtype)


__all__ = ["block_mean_2x2", "block_mean_2x2_reference"]
