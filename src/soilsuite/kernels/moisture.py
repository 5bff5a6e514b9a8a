"""Moisture-robust SRC (SPEC 2b): the bare observations the soil composite averages.

Moist soil is darker than dry soil, most in the SWIR (Lobell & Asner 2002, SSSAJ 66:722):
SCMaP's SRC_MEAN, the mean of all bare observations, is therefore darker than the dry-soil
spectrum (on the simulator about -0.025 in B12). The ``"dry"`` estimator
(``--src-estimator dry``) averages only the **brighter part of each pixel's bare SWIR
distribution**: per pixel (and per period), the bare observations ranked by SWIR brightness
``B11 + B12`` (DN; the sensor's ``swir1`` and ``swir2`` bands), of which the brightest
``k = max(min_keep, ceil(keep_share * n))`` (at most ``n``) are kept; ties rank in time order.
Partly green observations (green vegetation is dark in the SWIR) go with the moist ones.

Only SRC (``SRC_MEAN``, ``SRC_STD``, ``SRC_CI95``) changes: BSC, BSF and MASK still count every
bare observation (moist soil is bare). The pipeline (:func:`soilsuite.pipeline.block.composite_inputs`)
keeps at least :data:`MIN_KEEP` = 2 observations and writes SRC where BSC >= min_bare_obs, exactly
where the mean estimator writes it; SRC_STD and SRC_CI95 then describe the kept observations.

``dry_selection`` is the numba kernel, ``dry_selection_reference`` the obvious numpy version
(the oracle of ``tests/test_profiles.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import twins

__all__ = ["dry_selection", "dry_selection_reference", "src_flags", "SRC_ESTIMATORS"]

#: The SRC estimators: ``"mean"`` (SCMaP: every bare observation) and ``"dry"`` (this module).
SRC_ESTIMATORS = ("mean", "dry")
#: The pipeline keeps at least this many bare observations per pixel (SRC_STD needs two).
MIN_KEEP = 2
_FLAG_BARE = 8  # soilsuite.kernels.composite.FLAG_BARE (not imported: no import circle)


def _dry_impl(refl, flags, period, n_periods, keep_share, min_keep, swir1, swir2, out):
    n_t, _, n_y, n_x = refl.shape
    for y in prange(n_y):
        vals = np.empty(n_t, np.int64)
        idx = np.empty(n_t, np.int64)
        for x in range(n_x):
            for p in range(n_periods):
                n = 0
                for t in range(n_t):
                    if period[t] == p and (flags[t, y, x] & _FLAG_BARE) != 0:
                        # descending brightness, ties in time order: sort ascending on -value
                        vals[n] = -(np.int64(refl[t, swir1, y, x]) + np.int64(refl[t, swir2, y, x]))
                        idx[n] = t
                        n += 1
                if n == 0:
                    continue
                kk = math.ceil(keep_share * n - 1e-9)
                k = kk if kk < n else n
                if k < min_keep:
                    k = min_keep if min_keep < n else n
                order = np.argsort(vals[:n], kind="mergesort")
                for i in range(k):
                    out[idx[order[i]], y, x] = True
    return out


_dry_serial, _dry_parallel = twins(_dry_impl)


def _check(refl, flags, period, n_periods, keep_share, min_keep):
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4 or refl.dtype != np.int16:
        raise ValueError(f"refl must be int16 [T, B, Y, X], got {refl.dtype} {refl.shape}")
    n_t, _, n_y, n_x = refl.shape
    flags = np.ascontiguousarray(flags, dtype=np.uint8)
    if flags.shape != (n_t, n_y, n_x):
        raise ValueError(f"flags must be [T, Y, X] = {(n_t, n_y, n_x)}, got {flags.shape}")
    period = np.ascontiguousarray(period, dtype=np.int64)
    if period.shape != (n_t,):
        raise ValueError(f"period must be [T] = [{n_t}], got {period.shape}")
    if not 0.0 < float(keep_share) <= 1.0:
        raise ValueError(f"keep_share must be in (0, 1], got {keep_share}")
    if int(min_keep) < 1:
        raise ValueError(f"min_keep must be >= 1, got {min_keep}")
    return refl, flags, period


def dry_selection(refl: np.ndarray, flags: np.ndarray, period: np.ndarray | None = None, n_periods: int = 1,
                  keep_share: float = 0.5, min_keep: int = 3, *, swir1: int = 8, swir2: int = 9,
                  parallel: bool = False) -> np.ndarray:
    """The bare observations the ``"dry"`` SRC estimator keeps (module docstring).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    flags : numpy.ndarray
        uint8 ``[T, Y, X]`` from :func:`soilsuite.kernels.composite.classify` (bit FLAG_BARE = 8).
    period : numpy.ndarray, optional
        int ``[T]``: the selection is made within each period ``0 .. n_periods - 1``; -1 = in
        no period (never kept). Default: one period (the whole T axis).
    n_periods : int
        Number of periods.
    keep_share : float
        Share (0-1] of a pixel's bare observations kept, the brightest in ``B11 + B12``.
    min_keep : int
        Keep at least this many (all if fewer): use ``min_bare_obs`` so that SRC covers the
        same pixels as the mean estimator.
    swir1, swir2 : int
        Positions of the SWIR bands in ``refl`` (the sensor's ``index("swir1")``, ``index("swir2")``;
        Sentinel-2 B11, B12 = 8, 9).
    parallel : bool
        Use the ``prange`` twin (threads over rows). Default serial.

    Returns
    -------
    numpy.ndarray
        bool ``[T, Y, X]``: True for the kept bare observations (a subset of FLAG_BARE).
    """
    if period is None:
        period = np.zeros(np.shape(refl)[0], np.int64)
    refl, flags, period = _check(refl, flags, period, n_periods, keep_share, min_keep)
    out = np.zeros(flags.shape, np.bool_)
    fn = _dry_parallel if parallel else _dry_serial
    return fn(refl, flags, period, int(n_periods), float(keep_share), int(min_keep), int(swir1), int(swir2), out)


def dry_selection_reference(refl, flags, period=None, n_periods=1, keep_share=0.5, min_keep=3, *, swir1=8, swir2=9):
    """Slow, obvious numpy version of :func:`dry_selection` (the oracle)."""
    n_t, _, n_y, n_x = refl.shape
    period = np.zeros(n_t, np.int64) if period is None else np.asarray(period)
    out = np.zeros((n_t, n_y, n_x), bool)
    bright = refl[:, swir1].astype(np.int64) + refl[:, swir2].astype(np.int64)
    for y in range(n_y):
        for x in range(n_x):
            for p in range(n_periods):
                ts = np.flatnonzero((period == p) & ((flags[:, y, x] & _FLAG_BARE) != 0))
                if ts.size == 0:
                    continue
                k = min(ts.size, max(min_keep, math.ceil(keep_share * ts.size - 1e-9)))
                order = np.argsort(-bright[ts, y, x], kind="stable")  # brightest first, ties by time
                out[ts[order[:k]], y, x] = True
    return out


def src_flags(flags: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Flags for the SRC accumulation: FLAG_BARE only on the kept observations, no MREF bit
    (so :func:`soilsuite.kernels.composite.accumulate` sums only what SRC needs)."""
    out = flags & np.uint8(0xFF ^ (_FLAG_BARE | 16))
    out |= (keep & ((flags & _FLAG_BARE) != 0)).astype(np.uint8) * np.uint8(_FLAG_BARE)
    return out
