"""Bare-soil classification, accumulation and the per-pixel products (SPEC 2.3-3), numba kernels.

Flow for one tile::

    candidate, _ = selector.select(refl, valid, threshold=threshold)   # kernels/selectors/
    candidate = dry_vegetation_guard(refl, candidate, max_nbr2)       # optional filters
    flags = classify(refl, valid, candidate, never_bare, k_bare, k_mref, min_excess_dn)
    acc   = accumulate(refl, flags, period, n_periods)      # leading period axis P
    prods = finalize(collapse(acc), other)                  # or finalize(acc[p]) per period

Blue outlier filter and periods
-------------------------------
:func:`classify` takes the median/MAD of B02 over the **whole T axis** it is given (the
time window). :func:`accumulate` then splits the observations by period. The per-period
accumulators therefore merge (:func:`merge`, :func:`collapse`) into exactly the whole-window
product, but a per-period product (e.g. one calendar year) uses the window's blue-filter
thresholds: an approximation of a standalone run over that period alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ..sensors import DEFAULT_SENSOR
from . import aggregate
from ._jit import twins

__all__ = [
    "FLAG_VALID", "FLAG_BELOW", "FLAG_CANDIDATE", "FLAG_BARE", "FLAG_MREF",
    "Accumulator", "classify", "accumulate", "merge", "collapse", "finalize", "t975",
    "MAD_SCALE", "Z975_DLR",
]

#: Observation is valid (SPEC 2.1).
FLAG_VALID = 1
#: Valid and selected by the selector (SCMaP: PV+IR2 <= threshold), after the optional filters.
FLAG_BELOW = 2
#: Below and not never-bare (WorldCover 50/80): a bare candidate (SPEC 2.3-2.4).
FLAG_CANDIDATE = 4
#: Candidate and not a blue outlier with k_bare: bare (SPEC 2.5).
FLAG_BARE = 8
#: Valid and not a blue outlier with k_mref over all valid observations (MREF products).
FLAG_MREF = 16

#: MAD -> standard deviation of a normal distribution.
MAD_SCALE = 1.4826
#: The z value DLR's openEO code uses for the 95 % confidence interval (ci_method="z").
Z975_DLR = 1.96
#: Position of the blue band (B02 for Sentinel-2) in the cube of the default sensor; the
#: kernels take ``blue=`` from the run's sensor (``sensor.index("blue")``).
I_BLUE = DEFAULT_SENSOR.index("blue")


class Accumulator(NamedTuple):
    """Per-period sums of one tile; every array has a leading period axis ``P``.

    Counts are uint32 ``[P, Y, X]``; sums are float64 ``[P, B, Y, X]`` of int16 DN
    (offset-corrected reflectance x 10000) and their squares, exact for integer DN while
    below 2**53.
    """

    vpc: np.ndarray  #: number of valid observations
    n_below: np.ndarray  #: number of valid observations with PV+IR2 <= threshold
    bsc: np.ndarray  #: number of bare observations
    mref_n: np.ndarray  #: number of observations in the MREF set
    bare_sum: np.ndarray  #: sum of DN of bare observations per band
    bare_sumsq: np.ndarray  #: sum of DN**2 of bare observations per band
    mref_sum: np.ndarray  #: sum of DN of MREF observations per band
    mref_sumsq: np.ndarray  #: sum of DN**2 of MREF observations per band


# ----------------------------------------------------------------------------- classify
@lru_cache(maxsize=64)
def sort_network(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Batcher's odd-even merge sort network for ``n`` keys: comparator pairs ``(lo[i], hi[i])``.

    Applying them in order (``a[lo], a[hi] = min, max``) sorts any ``n`` values. Built for the
    next power of two and pruned to the comparators within ``n`` (the missing keys count as
    +inf: they never move). :func:`classify` runs it over whole rows of keys at once, so every
    pixel of a row is sorted by the same vectorised min/max passes (no per-pixel branches).
    """
    size = 1
    while size < n:
        size *= 2
    lo, hi = [], []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        lo.append(i + j)
                        hi.append(i + j + k)
            k //= 2
        p *= 2
    return np.array(lo, np.int64), np.array(hi, np.int64)


@lru_cache(maxsize=16)
def sort_networks(n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sort_network` of every size ``0 .. n_max`` concatenated: comparators of size
    ``n`` are ``lo[off[n]:off[n + 1]], hi[off[n]:off[n + 1]]``."""
    nets = [sort_network(n) for n in range(n_max + 1)]
    off = np.zeros(n_max + 2, np.int64)
    off[1:] = np.cumsum([len(lo) for lo, _ in nets])
    return (np.concatenate([lo for lo, _ in nets]), np.concatenate([hi for _, hi in nets]), off)


@njit(cache=True, nogil=True)
def _median_sorted(v, n):
    """Median of sorted ``v[:n]``; even n: mean of the two middle values (numpy convention)."""
    h = n // 2
    if n % 2 == 1:
        return v[h]
    return (v[h - 1] + v[h]) / 2.0


@njit(cache=True, nogil=True)
def _mad_sorted(v, n, med):
    """Median of ``|v[:n] - med|`` for sorted ``v`` in O(n).

    The deviations left of the median (``med - v[i]`` for ``i = p-1 .. 0``) and right of it
    (``v[j] - med`` for ``j = p .. n-1``) are two ascending runs; merging them up to the middle
    gives the same order statistics as sorting all deviations. Branch-free (selects instead of
    data-dependent branches: the merge's choices are random, a branch would mispredict half of
    them); on a tie it takes the left deviation (the values are equal, so the order does not
    change the result).
    """
    p = 0
    for i in range(n):  # values below the median: a count, not a data-dependent exit
        p += v[i] < med
    i = p - 1
    j = p
    lo_k = (n - 1) // 2
    hi_k = n // 2
    lo = 0.0
    d = 0.0
    for k in range(hi_k + 1):
        dl = med - v[i if i >= 0 else 0]  # read in bounds even when that side is exhausted
        dr = v[j if j < n else n - 1] - med
        left = (j >= n) | ((i >= 0) & (dl <= dr))
        d = dl if left else dr
        i -= np.int64(left)
        j += np.int64(not left)
        lo = d if k == lo_k else lo
    if lo_k == hi_k:
        return d
    return (lo + d) / 2.0


@njit(cache=True, nogil=True)
def _outlier_cut(v, n, k, min_excess):
    """B02 above which an observation is an outlier, from the sorted values ``v[:n]``.

    outlier <=> b > med + k * 1.4826 * MAD and b > med + min_excess
            <=> b > max(med + k * 1.4826 * MAD, med + min_excess).
    """
    if n == 0:
        return np.inf
    med = _median_sorted(v, n)
    mad = _mad_sorted(v, n, med)
    c1 = med + k * MAD_SCALE * mad
    c2 = med + min_excess
    return c1 if c1 > c2 else c2


@njit(cache=True, nogil=True)
def _sort_columns(key, net_lo, net_hi, c0=0, c1=-1):
    """Sort every column of ``key`` [n, X] with the sorting network ``(net_lo[c0:c1],
    net_hi[c0:c1])`` (default: all comparators): one min/max over the row pair per comparator
    (vectorised across the columns)."""
    n_x = key.shape[1]
    if c1 < 0:
        c1 = net_lo.shape[0]
    for ci in range(c0, c1):
        ka = key[net_lo[ci]]
        kb = key[net_hi[ci]]
        for x in range(n_x):
            a = ka[x]
            b = kb[x]
            ka[x] = min(a, b)
            kb[x] = max(a, b)


@njit(cache=True, nogil=True)
def _blue_cuts(key, n_valid, k_bare, k_mref, min_excess, vals, cand, cut_bare, cut_mref):
    """Per pixel (column of the sorted ``key``): its sorted valid B02 values and candidates'
    values, and the two outlier cuts from them."""
    for x in range(key.shape[1]):
        nv = n_valid[x]
        if nv == 0:
            cut_bare[x] = np.inf
            cut_mref[x] = np.inf
            continue
        nc = 0
        for i in range(nv):
            k = np.int32(key[i, x])
            b = np.float64(k >> 2)  # floor shift: exact for negative DN too
            vals[i] = b
            cand[nc] = b
            nc += (k >> 1) & 1
        cut_bare[x] = _outlier_cut(cand, nc, k_bare, min_excess)
        cut_mref[x] = _outlier_cut(vals, nv, k_mref, min_excess)


@njit(cache=True, nogil=True)
def _blue_cuts_rows(key, n_valid, k_bare, k_mref, min_excess, nets_lo, nets_hi, net_off, dev, work,
                    cut_bare, cut_mref):
    """:func:`_blue_cuts` for int16 keys (valid B02 in -8192 .. 8190 DN), vectorised across the
    row's pixels instead of one pixel at a time.

    Works on doubled values, all small integers: ``2 * median`` is the sum of the two middle
    values (one counted twice for an odd count), the deviations ``|2 * B02 - 2 * median|`` (<=
    32764, the int16 sentinel 32767 marks a missing one) of a column are sorted by the network
    of the row's largest count, and ``2 * MAD`` is half the sum of the two middle deviations. The
    median and MAD are then exactly :func:`_median_sorted` and :func:`_mad_sorted`'s, and the cuts
    the same float64 expressions as :func:`_outlier_cut`.
    ``dev`` int16 [T, X] and ``work`` int32 [8, X] are scratch.
    """
    n_x = key.shape[1]
    n_max = 0
    for x in range(n_x):
        n_max = max(n_max, n_valid[x])
    nc = work[0]
    m2v = work[1]
    m2c = work[2]
    rank = work[3]
    d2v = work[4]
    d2c = work[5]
    for x in range(n_x):
        nc[x] = 0
        m2v[x] = 0
        m2c[x] = 0
        rank[x] = 0
        d2v[x] = 0
        d2c[x] = 0
    for i in range(n_max):  # candidates per pixel
        kr = key[i]
        for x in range(n_x):
            k = np.int32(kr[x])
            nc[x] += np.int32(np.int32(k >> 1) & np.int32(1)) & np.int32(i < n_valid[x])
    for i in range(n_max):  # 2 * median of the valid values and of the candidates' values
        kr = key[i]
        for x in range(n_x):
            k = np.int32(kr[x])
            nv = n_valid[x]
            v = np.int32(k >> 2)
            m2v[x] += np.int32(v if i == (nv - 1) // 2 else 0) + np.int32(v if i == nv // 2 else 0)
            isc = np.int32(np.int32(k >> 1) & np.int32(1)) & np.int32(i < nv)
            r = rank[x]
            n = nc[x]
            m2c[x] += np.int32(v if isc != 0 and r == (n - 1) // 2 else 0) + np.int32(
                v if isc != 0 and r == n // 2 else 0)
            rank[x] = r + isc
    c0 = net_off[n_max]
    c1 = net_off[n_max + 1]
    for which in range(2):  # deviations, sorted per pixel; 2 * MAD
        for i in range(n_max):
            kr = key[i]
            dr = dev[i]
            for x in range(n_x):
                k = np.int32(kr[x])
                isc = np.int32(np.int32(k >> 1) & np.int32(1))
                member = (i < n_valid[x]) & ((which == 0) | (isc != 0))
                m2 = m2v[x] if which == 0 else m2c[x]
                d = abs(np.int32(2 * np.int32(k >> 2)) - m2)
                dr[x] = np.int16(d if member else 32767)
        _sort_columns(dev, nets_lo, nets_hi, c0, c1)
        d2 = d2v if which == 0 else d2c
        for i in range(n_max):
            dr = dev[i]
            for x in range(n_x):
                n = n_valid[x] if which == 0 else nc[x]
                d = np.int32(dr[x])
                d2[x] += np.int32(d if i == (n - 1) // 2 else 0) + np.int32(d if i == n // 2 else 0)
    for x in range(n_x):
        nv = n_valid[x]
        med = m2v[x] / 2.0
        mad = d2v[x] / 4.0
        c1v = med + k_mref * MAD_SCALE * mad
        c2v = med + min_excess
        cut_mref[x] = (c1v if c1v > c2v else c2v) if nv > 0 else np.inf
        med = m2c[x] / 2.0
        mad = d2c[x] / 4.0
        c1v = med + k_bare * MAD_SCALE * mad
        c2v = med + min_excess
        cut_bare[x] = (c1v if c1v > c2v else c2v) if nc[x] > 0 else np.inf


def _classify_impl(refl, valid, candidate, never_bare, k_bare, k_mref, min_excess, blue, net_lo, net_hi,
                   nets_lo, nets_hi, net_off, out):
    n_t, _, n_y, n_x = refl.shape
    big = np.int32(2147483647)
    for y in prange(n_y):
        # A key packs an observation's B02 DN, candidate and valid bits (4 * B02 + 2 * candidate
        # + 1; invalid: +inf): sorting a pixel's keys orders its valid B02 values first, and the
        # candidates' values in that order are sorted too, so the two outlier filters need a
        # single sort.
        # Keys are int16 (twice the SIMD lanes of int32 in the sorting network) when the row's
        # valid B02 values are within -8192 .. 8190 DN (reflectance -0.82 .. 0.82), so that every
        # key is below the sentinel 32767; otherwise the row is redone in int32.
        key16 = np.empty((n_t, n_x), np.int16)
        dev = np.empty((n_t, n_x), np.int16)
        work = np.empty((8, n_x), np.int32)
        n_valid = np.zeros(n_x, np.int32)
        cut_bare = np.empty(n_x, np.float64)
        cut_mref = np.empty(n_x, np.float64)
        vals = np.empty(n_t, np.float64)
        cand = np.empty(n_t, np.float64)
        # pass 1, rows of dates (vectorisable): flags before the blue filter, the keys and the
        # range of the valid B02 values
        nb = never_bare[y]
        bmin = np.int32(32767)
        bmax = np.int32(-32768)
        for t in range(n_t):
            vr = valid[t, y]
            sr = candidate[t, y]
            br = refl[t, blue, y]
            fo = out[t, y]
            kr = key16[t]
            for x in range(n_x):
                v = np.uint8(vr[x])
                below = v & np.uint8(sr[x])
                c = below & np.uint8(not nb[x])
                fo[x] = v * FLAG_VALID | below * FLAG_BELOW | c * FLAG_CANDIDATE
                b = np.int32(br[x])
                k = np.int16(b * 4 + np.int32(c) * 2 + 1)  # wraps outside the range: row redone
                kr[x] = k if v != 0 else np.int16(32767)
                bmin = min(bmin, b if v != 0 else np.int32(32767))
                bmax = max(bmax, b if v != 0 else np.int32(-32768))
                n_valid[x] += np.int32(v)
        if bmax < bmin:  # no valid observation in the row (e.g. a cloudy row)
            for x in range(n_x):
                cut_bare[x] = np.inf
                cut_mref[x] = np.inf
        elif bmin >= -8192 and bmax <= 8190:
            # pass 2: sort every pixel's keys with the sorting network (vectorised across pixels)
            _sort_columns(key16, net_lo, net_hi)
            # pass 3, per pixel: its sorted valid values and candidates, the two B02 cuts
            _blue_cuts_rows(key16, n_valid, k_bare, k_mref, min_excess, nets_lo, nets_hi, net_off, dev, work,
                            cut_bare, cut_mref)
        else:  # passes 1 to 3 for the keys in int32
            key = np.empty((n_t, n_x), np.int32)
            for t in range(n_t):
                br = refl[t, blue, y]
                fo = out[t, y]
                kr = key[t]
                for x in range(n_x):
                    f = fo[x]
                    k = np.int32(br[x]) * 4 + np.int32((f >> 2) & 1) * 2 + 1
                    kr[x] = k if (f & FLAG_VALID) != 0 else big
            _sort_columns(key, net_lo, net_hi)
            _blue_cuts(key, n_valid, k_bare, k_mref, min_excess, vals, cand, cut_bare, cut_mref)
        # pass 4, rows of dates again: the bare and MREF bits
        for t in range(n_t):
            fo = out[t, y]
            br = refl[t, blue, y]
            for x in range(n_x):
                f = fo[x]
                b = np.float64(br[x])
                bare = ((f >> 2) & 1) & np.uint8(b <= cut_bare[x])
                mref = (f & 1) & np.uint8(b <= cut_mref[x])
                fo[x] = f | bare * FLAG_BARE | mref * FLAG_MREF
    return out


_classify_serial, _classify_parallel = twins(_classify_impl)


def _check_refl(refl: np.ndarray, blue: int = I_BLUE) -> np.ndarray:
    refl = np.ascontiguousarray(refl)
    if refl.ndim != 4 or not 0 <= blue < refl.shape[1]:
        raise ValueError(f"refl must be [T, B, Y, X] with the blue band at position {blue}, got shape {refl.shape}")
    if refl.dtype != np.int16:
        raise TypeError(f"refl must be int16 (offset-corrected reflectance x 10000), got {refl.dtype}")
    return refl


def _as(arr, shape, dtype, name):
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _per_pixel(arr, shape, dtype, name):
    """A [Y, X] parameter given as a raster or a scalar."""
    arr = np.asarray(arr, dtype=dtype)
    if arr.ndim == 0:
        return np.full(shape, arr, dtype)
    return _as(arr, shape, dtype, name)


def classify(
    refl: np.ndarray,
    valid: np.ndarray,
    candidate: np.ndarray,
    never_bare: np.ndarray,
    k_bare: float = 3.0,
    k_mref: float = 4.0,
    min_excess_dn: float = 80.0,
    *,
    blue: int = I_BLUE,
    parallel: bool = False,
) -> np.ndarray:
    """Per-observation flags (SPEC 2.3-2.5).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, 10, Y, X]`` offset-corrected reflectance x 10000 (B02 is band 0).
    valid : numpy.ndarray
        bool ``[T, Y, X]`` from :func:`soilsuite.kernels.masks.valid_mask`.
    candidate : numpy.ndarray
        bool ``[T, Y, X]``: the selector's decision (:mod:`soilsuite.kernels.selectors`; SCMaP:
        PV+IR2 <= threshold), after any filters (:mod:`soilsuite.kernels.filters`).
    never_bare : numpy.ndarray
        bool ``[Y, X]``: pixels that are never bare candidates (WorldCover 50/80), or a scalar.
    k_bare, k_mref : float
        Blue outlier filter multipliers of ``1.4826 * MAD`` for the bare set (3) and the
        MREF set (4).
    min_excess_dn : float
        An outlier must also exceed the median B02 by more than this (DN, 80 = 0.008).
    blue : int
        Position of the blue band in ``refl`` (the sensor's ``index("blue")``; B02 for Sentinel-2).
    parallel : bool
        Use the ``prange`` twin (threads over rows). Default serial.

    Returns
    -------
    numpy.ndarray
        uint8 ``[T, Y, X]`` with bits FLAG_VALID=1, FLAG_BELOW=2 (valid and
        ``candidate``), FLAG_CANDIDATE=4 (below and not never_bare), FLAG_BARE=8
        (candidate and not a k_bare blue outlier), FLAG_MREF=16 (valid and not a k_mref blue
        outlier). An observation is a blue outlier if ``B02 > median + k * 1.4826 * MAD`` and
        ``B02 > median + min_excess_dn``, with median and MAD (median of absolute deviations;
        even counts: mean of the two middle values) of B02 taken per pixel over the
        candidates (bare) or valid observations (MREF) of the **whole T axis**. See the module
        docstring on per-period products.
    """
    refl = _check_refl(refl, blue)
    n_t, _, n_y, n_x = refl.shape
    valid = _as(valid, (n_t, n_y, n_x), np.bool_, "valid")
    candidate = _as(candidate, (n_t, n_y, n_x), np.bool_, "candidate")
    never_bare = _per_pixel(never_bare, (n_y, n_x), np.bool_, "never_bare")
    out = np.empty((n_t, n_y, n_x), np.uint8)
    fn = _classify_parallel if parallel else _classify_serial
    net_lo, net_hi = sort_network(n_t)
    nets_lo, nets_hi, net_off = sort_networks(n_t)
    return fn(refl, valid, candidate, never_bare, float(k_bare), float(k_mref), float(min_excess_dn), int(blue),
              net_lo, net_hi, nets_lo, nets_hi, net_off, out)


# ----------------------------------------------------------------------------- accumulate
@njit(cache=True, nogil=True, inline="always")
def _bit_mask(f, bit):
    """int32 0 or -1 from bit ``bit`` of the flag byte ``f`` (for a branch-free AND)."""
    # every step cast back to int32: numba widens integer arithmetic to int64, and 64-bit
    # lanes would halve the SIMD width of the loop
    return np.int32(-np.int32(np.int32(f >> bit) & np.int32(1)))


@njit(cache=True, nogil=True, inline="always")
def _add_dates3(s0, f0, s1, f1, s2, f2, a1, a2, c1, c2, qa, qc):
    """Three dates of one band row (DN ``s*``, flags ``f*``) into the row buffers: DN sums (int32
    ``a1`` bare, ``c1`` MREF) and DN**2 sums (int64 ``a2``, ``c2``).

    The first loop is all 32-bit (16 SIMD lanes): three squares (each <= 32768**2 = 2**30) sum
    in uint32 without overflow, kept in ``qa``/``qc``; the second adds them to the int64 sums,
    once per three dates. Exact integer sums. A missing date is a row of zero flags.
    """
    n = a1.shape[0]
    for x in range(n):
        g0 = np.int32(f0[x])
        g1 = np.int32(f1[x])
        g2 = np.int32(f2[x])
        v0 = np.int32(s0[x])
        v1 = np.int32(s1[x])
        v2 = np.int32(s2[x])
        q0 = np.uint32(np.int32(v0 * v0))
        q1 = np.uint32(np.int32(v1 * v1))
        q2 = np.uint32(np.int32(v2 * v2))
        b0 = _bit_mask(g0, 3)  # FLAG_BARE
        b1 = _bit_mask(g1, 3)
        b2 = _bit_mask(g2, 3)
        m0 = _bit_mask(g0, 4)  # FLAG_MREF
        m1 = _bit_mask(g1, 4)
        m2 = _bit_mask(g2, 4)
        a1[x] = np.int32(a1[x] + np.int32(np.int32(v0 & b0) + np.int32(v1 & b1) + np.int32(v2 & b2)))
        c1[x] = np.int32(c1[x] + np.int32(np.int32(v0 & m0) + np.int32(v1 & m1) + np.int32(v2 & m2)))
        qa[x] = np.uint32(np.uint32(q0 & np.uint32(b0)) + np.uint32(q1 & np.uint32(b1))
                          + np.uint32(q2 & np.uint32(b2)))
        qc[x] = np.uint32(np.uint32(q0 & np.uint32(m0)) + np.uint32(q1 & np.uint32(m1))
                          + np.uint32(q2 & np.uint32(m2)))
    for x in range(n):
        a2[x] += np.int64(qa[x])
        c2[x] += np.int64(qc[x])


def _accumulate_impl(refl, flags, period, vpc, n_below, bsc, mref_n, bsum, bsq, msum, msq):
    # vpc .. mref_n arrive zeroed; bsum .. msq uninitialised (np.empty: a zeroed array would be
    # faulted in twice, once read and once written): each (period, band, row) is written by its
    # first flush, added to by later ones, zero-filled if it has none.
    n_t, n_b, n_y, n_x = refl.shape
    n_p = bsum.shape[0]
    for y in prange(n_y):
        # counts, and which dates of this row have a bare / MREF observation at all
        has = np.zeros(n_t, np.uint8)
        for t in range(n_t):
            p = period[t]
            if p < 0:
                continue
            # branch-free over the row (vectorises)
            fr = flags[t, y]
            vr = vpc[p, y]
            br = n_below[p, y]
            cr = bsc[p, y]
            mr = mref_n[p, y]
            any_set = np.uint8(0)
            for x in range(n_x):
                f = fr[x]
                vr[x] += f & 1
                br[x] += (f >> 1) & 1
                cr[x] += (f >> 3) & 1
                mr[x] += (f >> 4) & 1
                any_set |= f
            has[t] = (any_set >> 3) & 3
        # sums, band by band, in integer row buffers (int32 DN sums, int64 sums of squares: exact,
        # and more SIMD lanes than float64) that stay in L1 while the dates of one run of a period
        # stream through, three at a time; added to the float64 accumulators at the end of the run.
        a1 = np.empty(n_x, np.int32)
        a2 = np.empty(n_x, np.int64)
        c1 = np.empty(n_x, np.int32)
        c2 = np.empty(n_x, np.int64)
        qa = np.empty(n_x, np.uint32)
        qc = np.empty(n_x, np.uint32)
        zero_r = np.zeros(n_x, refl.dtype)
        zero_f = np.zeros(n_x, flags.dtype)
        ts = np.empty(n_t, np.int64)
        written = np.zeros((n_p, n_b), np.uint8)
        t = 0
        while t < n_t:
            # the run of dates of one period starting at t; its dates with bare / MREF observations
            p = period[t]
            k = 0
            t1 = t
            while t1 < n_t and period[t1] == p:
                if has[t1] != 0:
                    ts[k] = t1
                    k += 1
                t1 += 1
            t = t1
            if p < 0 or k == 0:  # outside every period, or e.g. a cloudy row
                continue
            for b in range(n_b):
                a1[:] = 0
                a2[:] = 0
                c1[:] = 0
                c2[:] = 0
                for i in range(0, k, 3):  # dates three at a time, the last group padded with zero rows
                    t0 = ts[i]
                    r0, g0 = refl[t0, b, y], flags[t0, y]
                    r1, g1 = (refl[ts[i + 1], b, y], flags[ts[i + 1], y]) if i + 1 < k else (zero_r, zero_f)
                    r2, g2 = (refl[ts[i + 2], b, y], flags[ts[i + 2], y]) if i + 2 < k else (zero_r, zero_f)
                    _add_dates3(r0, g0, r1, g1, r2, g2, a1, a2, c1, c2, qa, qc)
                # two loops over row slices with few arrays each (LLVM vectorises a loop only
                # while its runtime alias checks stay few)
                s1 = bsum[p, b, y]
                s2 = bsq[p, b, y]
                m1 = msum[p, b, y]
                m2 = msq[p, b, y]
                if written[p, b]:
                    for x in range(n_x):
                        s1[x] += np.float64(a1[x])
                        s2[x] += np.float64(a2[x])
                    for x in range(n_x):
                        m1[x] += np.float64(c1[x])
                        m2[x] += np.float64(c2[x])
                else:
                    for x in range(n_x):
                        s1[x] = np.float64(a1[x])
                        s2[x] = np.float64(a2[x])
                    for x in range(n_x):
                        m1[x] = np.float64(c1[x])
                        m2[x] = np.float64(c2[x])
                    written[p, b] = 1
        for p in range(n_p):
            for b in range(n_b):
                if not written[p, b]:
                    bsum[p, b, y, :] = 0.0
                    bsq[p, b, y, :] = 0.0
                    msum[p, b, y, :] = 0.0
                    msq[p, b, y, :] = 0.0


_accumulate_serial, _accumulate_parallel = twins(_accumulate_impl)


def accumulate(
    refl: np.ndarray, flags: np.ndarray, period: np.ndarray, n_periods: int = 1, *, parallel: bool = False
) -> Accumulator:
    """Counts and sums per period (SPEC 3-4).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, 10, Y, X]`` offset-corrected reflectance x 10000.
    flags : numpy.ndarray
        uint8 ``[T, Y, X]`` from :func:`classify`.
    period : numpy.ndarray
        int ``[T]`` period index of each date in ``0 .. n_periods - 1``; -1 = in no period
        (skipped).
    n_periods : int
        Number of periods ``P`` (>= 1).
    parallel : bool
        Use the ``prange`` twin (threads over rows). Default serial.

    Returns
    -------
    Accumulator
        Arrays with a leading period axis ``P``: counts uint32 ``[P, Y, X]``, sums of DN and
        DN**2 float64 ``[P, B, Y, X]``.
    """
    refl = _check_refl(refl)
    n_t, n_b, n_y, n_x = refl.shape
    flags = _as(flags, (n_t, n_y, n_x), np.uint8, "flags")
    period = np.asarray(period)
    if period.shape != (n_t,) or (period.size and period.dtype.kind not in "iu"):
        raise ValueError(f"period must be integer [T] = [{n_t}], got {period.dtype} {period.shape}")
    n_periods = int(n_periods)
    if n_periods < 1:
        raise ValueError(f"n_periods must be >= 1, got {n_periods}")
    if period.size and (period.min() < -1 or period.max() >= n_periods):
        raise ValueError(f"period values must be in -1 .. {n_periods - 1}, got {period.min()} .. {period.max()}")
    period = np.ascontiguousarray(period, dtype=np.int64)
    if n_t >= 2**16:  # the kernel sums DN of one row and period in int32
        raise ValueError(f"accumulate takes at most 65535 dates at once, got {n_t}; split the time axis and merge()")
    counts = [np.zeros((n_periods, n_y, n_x), np.uint32) for _ in range(4)]
    sums = [np.empty((n_periods, n_b, n_y, n_x), np.float64) for _ in range(4)]  # the kernel fills them
    fn = _accumulate_parallel if parallel else _accumulate_serial
    fn(refl, flags, period, *counts, *sums)
    return Accumulator(*counts, *sums)


#: Merge rule of each field of :class:`Accumulator` (:mod:`soilsuite.kernels.aggregate`):
#: all are counts or sums.
ACCUMULATOR_MERGE: dict[str, str] = dict.fromkeys(Accumulator._fields, "sum")


def merge(a: Accumulator, b: Accumulator) -> Accumulator:
    """Two accumulators of the same shape merged by their fields' rules (e.g. two tiles' time
    splits). Exact: counts are integers, sums are float64 sums of integers."""
    return Accumulator(**aggregate.merge(a._asdict(), b._asdict(), ACCUMULATOR_MERGE))


def collapse(acc: Accumulator) -> Accumulator:
    """Merged over the period axis: an accumulator with ``P = 1`` (the whole window)."""
    return Accumulator(**aggregate.collapse(acc._asdict(), ACCUMULATOR_MERGE))


# ----------------------------------------------------------------------------- finalize
# Student t quantile t(0.975, dof) for dof = 1..100 (scipy.stats.t.ppf), index dof - 1.
_T975_TABLE = np.array([
    12.706204736174694, 4.302652729749462, 3.1824463052837078, 2.7764451051977934,
    2.5705818356363146, 2.4469118511449786, 2.364624251592784, 2.306004135204166,
    2.262157162798205, 2.228138851986274, 2.200985160091639, 2.1788128296672284,
    2.1603686564627913, 2.144786687917804, 2.131449545559776, 2.1199052992212546,
    2.1098155778333156, 2.1009220402410382, 2.0930240544083087, 2.085963447265864,
    2.0796138447276795, 2.0738730679040254, 2.0686576104190486, 2.0638985616280245,
    2.0595385527532972, 2.0555294386428735, 2.0518305164802846, 2.0484071417952454,
    2.045229642132703, 2.0422724563012378, 2.039513446396408, 2.0369333434601016,
    2.0345152974493383, 2.0322445093177186, 2.030107928250343, 2.0280940009804502,
    2.0261924630291093, 2.0243941639119694, 2.022690920036761, 2.021075390306273,
    2.019540970441376, 2.0180817028184443, 2.016692199227824, 2.0153675744437636,
    2.014103388880846, 2.012895598919429, 2.0117405137297655, 2.010634757624232,
    2.0095752371292392, 2.008559112100761, 2.007583770315836, 2.006646805061688,
    2.0057459953178687, 2.0048792881880564, 2.0040447832891455, 2.003240718847872,
    2.002465459291007, 2.0017174841452356, 2.000995378088267, 2.0002978220142604,
    1.999623584994939, 1.9989715170333788, 1.998340542520741, 1.997729654317693,
    1.9971379083920038, 1.9965644189523117, 1.996008354025296, 1.9954689314298435,
    1.9949454151072374, 1.994437111771186, 1.9939433678456255, 1.9934635666618719,
    1.992997125889855, 1.992543495180932, 1.9921021540022417, 1.9916726096446642,
    1.9912543953883846, 1.9908470688116906, 1.9904502102301285, 1.990063421254446,
    1.9896863234569029, 1.989318557136572, 1.9889597801751624, 1.9886096669757083,
    1.9882679074772216, 1.98793420623902, 1.9876082815890708, 1.9872898648311692,
    1.986978699506281, 1.9866745407037683, 1.9863771544186177, 1.98608631695113,
    1.9858018143458227, 1.985523441866604, 1.9852510035054978, 1.984984311522457,
    1.9847231860139845, 1.9844674545084815, 1.9842169515864174, 1.9839715185235518,
])
_Z975 = 1.959963984540054


def t975(dof) -> np.ndarray:
    """Student t quantile ``t(0.975, dof)`` for integer ``dof >= 1``.

    A table (scipy.stats.t.ppf) for dof <= 100 and the Cornish-Fisher expansion to 1/dof**4
    (Abramowitz & Stegun 26.7.5) above; relative error < 1e-10. NaN for dof < 1.
    """
    dof = np.asarray(dof, dtype=np.int64)
    x = _Z975
    g1 = (x**3 + x) / 4
    g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
    g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
    g4 = (79 * x**9 + 776 * x**7 + 1482 * x**5 - 1920 * x**3 - 945 * x) / 92160
    v = np.maximum(dof, 1).astype(np.float64)
    cf = x + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4
    small = _T975_TABLE[np.clip(dof, 1, 100) - 1]
    return np.where(dof < 1, np.nan, np.where(dof <= 100, small, cf))


def _finalize_impl(vpc, n_below, bsc, mref_n, bsum, bsq, msum, msq, other, min_bare_obs, ci_mult,
                   o_vpc, o_bsc, o_bsf, o_mask, o_mean, o_std, o_ci, o_mmean, o_mstd):
    n_b, n_y, n_x = bsum.shape
    nan = np.nan
    for y in prange(n_y):
        # per-pixel factors of this row: 1/n and 1/(n (n-1)) (NaN where the product is nodata)
        b_n = np.empty(n_x, np.float64)
        m_n = np.empty(n_x, np.float64)
        b_inv = np.empty(n_x, np.float64)
        b_inv2 = np.empty(n_x, np.float64)
        b_ci = np.empty(n_x, np.float64)
        m_inv = np.empty(n_x, np.float64)
        m_inv2 = np.empty(n_x, np.float64)
        for x in range(n_x):
            nv = vpc[y, x]
            nb = bsc[y, x]
            nm = mref_n[y, x]
            o_vpc[y, x] = nv
            o_bsc[y, x] = nb
            o_bsf[y, x] = np.float32(nb / nv) if nv > 0 else np.float32(nan)
            if other[y, x] or nv == 0:
                o_mask[y, x] = 3
            elif nb >= min_bare_obs:
                o_mask[y, x] = 1
            elif n_below[y, x] == 0:
                o_mask[y, x] = 2
            else:
                o_mask[y, x] = 0
            fb = np.float64(nb)
            fm = np.float64(nm)
            b_n[x] = fb
            m_n[x] = fm
            ok = nb >= min_bare_obs and nb >= 1
            b_inv[x] = 1.0 / fb if ok else nan
            b_inv2[x] = 1.0 / (fb * (fb - 1.0)) if ok and nb >= 2 else nan
            b_ci[x] = ci_mult[nb] / np.sqrt(fb) if ok and nb >= 2 else nan
            m_inv[x] = 1.0 / fm if nm >= 1 else nan
            m_inv2[x] = 1.0 / (fm * (fm - 1.0)) if nm >= 2 else nan
        # two loops over row slices with few arrays each: LLVM vectorises a loop only when its
        # runtime alias checks stay under a small limit (8 pointers)
        for b in range(n_b):
            s1 = bsum[b, y]
            s2 = bsq[b, y]
            om = o_mean[b, y]
            osd = o_std[b, y]
            oci = o_ci[b, y]
            for x in range(n_x):
                s = s1[x]
                # n * sum(x^2) - sum(x)^2 is exact for integer DN (< 2**53); clip rounding at 0
                var = max((b_n[x] * s2[x] - s * s), 0.0) * b_inv2[x]
                sd = np.sqrt(var) * 1e-4
                om[x] = np.float32(s * b_inv[x] * 1e-4)
                osd[x] = np.float32(sd)
                oci[x] = np.float32(sd * b_ci[x])
        for b in range(n_b):
            s1 = msum[b, y]
            s2 = msq[b, y]
            om = o_mmean[b, y]
            osd = o_mstd[b, y]
            for x in range(n_x):
                s = s1[x]
                var = max((m_n[x] * s2[x] - s * s), 0.0) * m_inv2[x]
                om[x] = np.float32(s * m_inv[x] * 1e-4)
                osd[x] = np.float32(np.sqrt(var) * 1e-4)


_finalize_serial, _finalize_parallel = twins(_finalize_impl)


def finalize(
    acc: Accumulator,
    other: np.ndarray | None = None,
    min_bare_obs: int = 3,
    ci_method: str = "t",
    *,
    parallel: bool = False,
) -> dict[str, np.ndarray]:
    """The per-pixel products of one period (SPEC 3) in physical units, NaN = nodata.

    Parameters
    ----------
    acc : Accumulator
        With ``P = 1`` (``collapse`` first for a multi-period accumulator), or without the
        period axis (counts ``[Y, X]``, sums ``[B, Y, X]``).
    other : numpy.ndarray or None
        bool ``[Y, X]``: "other surfaces" (WorldCover 0/50/70/80/90/95) -> MASK 3. None = none.
    min_bare_obs : int
        SRC products need at least this many bare observations (>= 1; SPEC: 3).
    ci_method : {"t", "z"}
        95 % CI half-width multiplier: Student ``t(0.975, n - 1)`` or 1.96 (DLR's openEO code).
    parallel : bool
        Use the ``prange`` twin (threads over rows). Default serial.

    Returns
    -------
    dict of str to numpy.ndarray
        float32 arrays: ``VPC``, ``BSC`` (counts), ``BSF`` (BSC / VPC, 0-1, NaN where VPC = 0),
        ``MASK`` (0 undetermined, 1 bare: BSC >= min_bare_obs, 2 permanent vegetation: valid
        observations but none below the threshold, 3 other surface or VPC = 0; precedence 3,
        1, 2) all ``[Y, X]``; ``SRC_MEAN``, ``SRC_STD`` (sample, ddof=1), ``SRC_CI95`` (half
        width ``mult * std / sqrt(n)``), NaN where BSC < min_bare_obs, and ``MREF_MEAN``
        (NaN where mref_n < 1), ``MREF_STD`` (NaN where mref_n < 2), all ``[B, Y, X]``
        reflectance (DN / 10000). Standard deviations come from the sums as
        ``sqrt((n * S2 - S1**2) / (n * (n - 1)))``, exact in the numerator for integer DN.
    """
    if acc.vpc.ndim == 3:
        if acc.vpc.shape[0] != 1:
            raise ValueError(f"finalize needs one period (P = 1); got P = {acc.vpc.shape[0]}: collapse() first "
                             "or select one period")
        acc = Accumulator(*(a[0] for a in acc))
    if acc.vpc.ndim != 2 or acc.bare_sum.ndim != 3:
        raise ValueError(f"accumulator arrays must be [Y, X] / [B, Y, X]; got {acc.vpc.shape}, {acc.bare_sum.shape}")
    n_b, n_y, n_x = acc.bare_sum.shape
    counts = [_as(a, (n_y, n_x), np.uint32, n) for n, a in zip(Accumulator._fields[:4], acc[:4], strict=True)]
    sums = [_as(a, (n_b, n_y, n_x), np.float64, n) for n, a in zip(Accumulator._fields[4:], acc[4:], strict=True)]
    other = np.zeros((n_y, n_x), np.bool_) if other is None else _as(other, (n_y, n_x), np.bool_, "other")
    min_bare_obs = int(min_bare_obs)
    if min_bare_obs < 1:
        raise ValueError(f"min_bare_obs must be >= 1, got {min_bare_obs}")
    n_max = int(counts[2].max()) if counts[2].size else 0
    n = np.arange(n_max + 1)
    if ci_method == "t":
        ci_mult = t975(n - 1)
    elif ci_method == "z":
        ci_mult = np.full(n_max + 1, Z975_DLR)
    else:
        raise ValueError(f"ci_method must be 't' or 'z', got {ci_method!r}")
    ci_mult = np.ascontiguousarray(ci_mult, dtype=np.float64)
    o2 = [np.empty((n_y, n_x), np.float32) for _ in range(4)]
    o3 = [np.empty((n_b, n_y, n_x), np.float32) for _ in range(5)]
    fn = _finalize_parallel if parallel else _finalize_serial
    fn(*counts, *sums, other, min_bare_obs, ci_mult, *o2, *o3)
    names2 = ("VPC", "BSC", "BSF", "MASK")
    names3 = ("SRC_MEAN", "SRC_STD", "SRC_CI95", "MREF_MEAN", "MREF_STD")
    return dict(zip(names2 + names3, o2 + o3, strict=True))
