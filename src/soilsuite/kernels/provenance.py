"""Provenance of every observation: the first rule that removed it (or "bare"), numba kernels.

Each observation (pixel x solar day) gets one rule code, the first rule of the method that
applies to it (SPEC 1, 2 and 2b, in this order; docs/provenance.md):

====  ================  ===================================================================
code  rule (band name)  the observation ...
====  ================  ===================================================================
0     ``scene_filter``  came only from scenes removed before loading (cloud cover, sun
                        elevation on the item metadata; ``--on-error skip``: broken scenes)
1     ``nodata``        has no data at the pixel: a band is nodata, or SCL is 0 "no data"
                        (outside the scene's data footprint) while 0 is an invalid class
2     ``scl``           has an invalid scene class (cloud, shadow, snow, ...)
3     ``dilation``      lies within the dilation window of a cloud / shadow class
4     ``sun``           the scene's sun zenith is above the limit
5     ``selector``      valid, not a bare candidate of the selector (SCMaP: PV+IR2 > threshold)
6     ``dry_guard``     a candidate of the selector removed by the NBR2 dry-vegetation guard
7     ``edge_guard``    a candidate removed by the edge guard (too few bare neighbours that date)
8     ``land_cover``    a candidate on WorldCover built-up / water (never bare)
9     ``blue_filter``   a candidate removed by the blue (B02) outlier filter
10    ``bare``          bare: counted in BSC
====  ================  ===================================================================

Codes 1-4 together are the invalid observations (``VPC`` = codes 5-10, ``BSC`` = code 10).
:data:`PASS` marks an observation that passed the validity rules (its code then comes from the
classification flags); :data:`NO_OBSERVATION` a pixel no scene of that day covers.

The kernels take plain arrays; :mod:`soilsuite.provenance` loads the inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..sensors.base import REFL_NODATA
from . import masks

__all__ = ["RULES", "PASS", "NO_OBSERVATION", "FLAG_GUARDED", "FLAG_EDGE", "invalid_reasons", "rule_codes", "count_rules",
           "count_rules_reference", "rule_codes_reference"]

#: The rules in the order they apply: the band names of the PROVENANCE product.
RULES: tuple[str, ...] = ("scene_filter", "nodata", "scl", "dilation", "sun", "selector", "dry_guard",
                          "edge_guard", "land_cover", "blue_filter", "bare")
(SCENE_FILTER, NODATA, SCL, DILATION, SUN, SELECTOR, DRY_GUARD, EDGE_GUARD, LAND_COVER, BLUE_FILTER,
 BARE) = range(len(RULES))
#: Code of an observation that passed the validity rules (SPEC 2.1): the flags decide its rule.
PASS = 254
#: Code of a pixel that no scene of the day covers: not an observation of the pixel.
NO_OBSERVATION = 255
#: Flag bit (beside :mod:`soilsuite.kernels.composite`'s 1..16): a valid observation the selector
#: chose as a bare candidate and the dry-vegetation guard removed. Set by
#: :func:`soilsuite.pipeline.block.classify_inputs` only when the run asks for provenance.
FLAG_GUARDED = 32
#: Flag bit: a valid candidate (after the dry guard) the edge guard removed (``--edge-guard``;
#: :mod:`soilsuite.kernels.edges`). Set by :func:`soilsuite.pipeline.block.classify_inputs`
#: whenever the edge guard is on.
FLAG_EDGE = 64

_VALID, _BELOW, _CANDIDATE, _BARE = 1, 2, 4, 8


def invalid_reasons(scl: np.ndarray, refl: np.ndarray, sun_zenith: np.ndarray, invalid_scl, dilate_scl,
                    dilation_px: int, max_sun_zenith: float) -> np.ndarray:
    """The validity rule (SPEC 2.1) that removes each observation, uint8 ``[T, Y, X]``.

    Codes :data:`NODATA`, :data:`SCL`, :data:`DILATION`, :data:`SUN` (the first that applies,
    in this order), or :data:`PASS` for a valid observation: ``result == PASS`` is exactly
    :func:`soilsuite.kernels.masks.valid_mask` of the same arguments, whose dilation kernel
    this function calls (one implementation of the cloud dilation).

    Parameters
    ----------
    scl : numpy.ndarray
        uint8 ``[T, Y + 2h, X + 2h]`` scene classification with a halo of ``h`` pixels.
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000, nodata -32768.
    sun_zenith : numpy.ndarray
        float ``[T]`` degrees.
    invalid_scl, dilate_scl : sequence of int
        Invalid and dilated scene classes, as :func:`soilsuite.kernels.masks.valid_mask`.
    dilation_px : int
        Side of the square dilation window (odd).
    max_sun_zenith : float
        Degrees; observations of scenes above it (or NaN) are invalid.

    Returns
    -------
    numpy.ndarray
        uint8 ``[T, Y, X]``: NODATA (1), SCL (2), DILATION (3), SUN (4) or PASS (254).
    """
    refl = np.asarray(refl)
    scl = np.asarray(scl, np.uint8)
    n_t, n_b, n_y, n_x = refl.shape
    h = (scl.shape[1] - n_y) // 2
    # the dilation alone: no invalid class, no nodata band, every sun zenith accepted
    clear = np.zeros((n_t, 1, n_y, n_x), np.int16)
    near = ~masks.valid_mask(scl, clear, np.zeros(n_t), (), dilate_scl, dilation_px, 90.0)
    inner = scl[:, h: h + n_y, h: h + n_x]
    missing = np.zeros((n_t, n_y, n_x), bool)
    for b in range(n_b):
        missing |= refl[:, b] == REFL_NODATA
    invalid = np.asarray(invalid_scl, np.int64)
    if 0 in invalid.tolist():
        missing |= inner == 0
    sun = ~(np.asarray(sun_zenith, np.float64) <= max_sun_zenith)  # NaN: invalid
    out = np.full((n_t, n_y, n_x), PASS, np.uint8)
    out[np.broadcast_to(sun[:, None, None], out.shape)] = SUN
    out[near] = DILATION
    out[np.isin(inner, invalid)] = SCL
    out[missing] = NODATA
    return out


@njit(cache=True, nogil=True)
def _code(c, f):
    """The rule code of one observation from its validity code ``c`` and flags ``f``."""
    if c != PASS:
        return c
    if (f & _VALID) == 0:  # cannot happen when codes and flags come from the same inputs
        return NODATA
    if (f & _BELOW) == 0:
        if (f & FLAG_GUARDED) != 0:
            return DRY_GUARD
        return EDGE_GUARD if (f & FLAG_EDGE) != 0 else SELECTOR
    if (f & _CANDIDATE) == 0:
        return LAND_COVER
    if (f & _BARE) == 0:
        return BLUE_FILTER
    return BARE


@njit(cache=True, nogil=True)
def _codes_impl(codes, flags, out):
    n_t, n_y, n_x = flags.shape
    for t in range(n_t):
        for y in range(n_y):
            for x in range(n_x):
                out[t, y, x] = _code(codes[t, y, x], flags[t, y, x])
    return out


def rule_codes(codes: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The rule code of every observation, uint8 ``[T, Y, X]``: ``codes`` (validity codes of
    :func:`invalid_reasons`, :data:`PASS` where valid) completed from the classification ``flags``."""
    codes, flags, _ = _check(codes, flags, np.zeros(np.shape(flags)[0] if np.ndim(flags) else 0))
    return _codes_impl(codes, flags, np.empty(flags.shape, np.uint8))


@njit(cache=True, nogil=True)
def _count_impl(codes, flags, period, doy, year, counts, doy_sum, year_sum):
    n_t, n_y, n_x = flags.shape
    for t in range(n_t):
        p = period[t]
        if p < 0:
            continue
        for y in range(n_y):
            for x in range(n_x):
                c = _code(codes[t, y, x], flags[t, y, x])
                if c == NO_OBSERVATION:
                    continue
                counts[p, c, y, x] += 1
                if c == BARE:
                    doy_sum[p, y, x] += doy[t]
                    year_sum[p, y, x] += year[t]


def _check(codes, flags, period):
    codes = np.ascontiguousarray(codes, np.uint8)
    flags = np.ascontiguousarray(flags, np.uint8)
    if codes.shape != flags.shape or flags.ndim != 3:
        raise ValueError(f"codes and flags must both be [T, Y, X], got {codes.shape} and {flags.shape}")
    period = np.ascontiguousarray(period, np.int64).reshape(-1)
    if period.shape != (flags.shape[0],):
        raise ValueError(f"period must be [T] = [{flags.shape[0]}], got {period.shape}")
    return codes, flags, period


def count_rules(codes: np.ndarray, flags: np.ndarray, period: np.ndarray, n_periods: int, days: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations per rule and period, and the sums of the bare observations' dates.

    Parameters
    ----------
    codes : numpy.ndarray
        uint8 ``[T, Y, X]``: a rule code, :data:`PASS` (the flags decide) or :data:`NO_OBSERVATION`.
    flags : numpy.ndarray
        uint8 ``[T, Y, X]`` classification flags (:mod:`soilsuite.kernels.composite` bits and
        :data:`FLAG_GUARDED`).
    period : numpy.ndarray
        int ``[T]`` period index of each observation (-1: in no period, not counted).
    n_periods : int
        Number of periods P.
    days : numpy.ndarray
        int64 ``[T]`` days since 1970-01-01 of the observations (solar days).

    Returns
    -------
    counts : numpy.ndarray
        int32 ``[P, len(RULES), Y, X]``.
    doy_sum, year_sum : numpy.ndarray
        float64 ``[P, Y, X]``: sums of day of year (1-366) and calendar year of the bare observations.
    """
    codes, flags, period = _check(codes, flags, period)
    doy, year = _doy_year(days)
    n_y, n_x = flags.shape[1:]
    counts = np.zeros((n_periods, len(RULES), n_y, n_x), np.int32)
    doy_sum = np.zeros((n_periods, n_y, n_x), np.float64)
    year_sum = np.zeros((n_periods, n_y, n_x), np.float64)
    _count_impl(codes, flags, period, doy, year, counts, doy_sum, year_sum)
    return counts, doy_sum, year_sum


def _doy_year(days) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(days, np.int64).reshape(-1).astype("datetime64[D]")
    year = d.astype("datetime64[Y]")
    doy = (d - year).astype(np.int64) + 1
    return doy.astype(np.float64), (year.astype(np.int64) + 1970).astype(np.float64)


# ----------------------------------------------------------------------------- numpy references (tests)
def rule_codes_reference(codes: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The rule code of every observation, uint8 ``[T, Y, X]``, in obvious numpy."""
    codes = np.asarray(codes)
    f = np.asarray(flags)
    out = codes.copy()
    p = codes == PASS
    valid = (f & _VALID) > 0
    below = (f & _BELOW) > 0
    cand = (f & _CANDIDATE) > 0
    bare = (f & _BARE) > 0
    guarded = (f & FLAG_GUARDED) > 0
    edged = (f & FLAG_EDGE) > 0
    out[p & ~valid] = NODATA
    out[p & valid & ~below & ~guarded & ~edged] = SELECTOR
    out[p & valid & ~below & ~guarded & edged] = EDGE_GUARD
    out[p & valid & ~below & guarded] = DRY_GUARD
    out[p & valid & below & ~cand] = LAND_COVER
    out[p & valid & below & cand & ~bare] = BLUE_FILTER
    out[p & valid & below & cand & bare] = BARE
    return out


def count_rules_reference(codes, flags, period, n_periods, days):
    """:func:`count_rules` in obvious numpy (the oracle of the tests)."""
    rc = rule_codes_reference(codes, flags)
    doy, year = _doy_year(days)
    period = np.asarray(period).reshape(-1)
    n_y, n_x = rc.shape[1:]
    counts = np.zeros((n_periods, len(RULES), n_y, n_x), np.int32)
    doy_sum = np.zeros((n_periods, n_y, n_x))
    year_sum = np.zeros((n_periods, n_y, n_x))
    for p in range(n_periods):
        sel = period == p
        for r in range(len(RULES)):
            counts[p, r] = (rc[sel] == r).sum(0)
        bare = rc[sel] == BARE
        doy_sum[p] = (bare * doy[sel][:, None, None]).sum(0)
        year_sum[p] = (bare * year[sel][:, None, None]).sum(0)
    return counts, doy_sum, year_sum
