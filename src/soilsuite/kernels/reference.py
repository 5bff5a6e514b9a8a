"""Slow, obvious numpy versions of the kernels: the oracle for tests and benchmarks.

Same signatures and results as :mod:`~soilsuite.kernels.masks`,
:mod:`~soilsuite.kernels.indices` and :mod:`~soilsuite.kernels.composite` (without the
``parallel`` keyword). Written for clarity, vectorised where numpy says it naturally; the
blue-filter median/MAD uses ``np.nanmedian`` over a NaN-masked cube along T. ``finalize``
takes Student t quantiles from ``scipy.stats`` (imported lazily), independently of the kernel's
own table.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..sensors.base import REFL_NODATA
from ..sensors.sentinel2 import SENTINEL2_L2A as _S2
from .composite import (
    FLAG_BARE,
    FLAG_BELOW,
    FLAG_CANDIDATE,
    FLAG_MREF,
    FLAG_VALID,
    Accumulator,
)

__all__ = ["valid_mask", "ndvi", "nbr", "nbr2", "pvir2", "classify", "accumulate", "merge", "collapse",
           "finalize"]

BAND_INDEX = _S2.band_index  # Sentinel-2 band positions: the defaults, as in the kernels


def valid_mask(scl, refl, sun_zenith, invalid_scl=_S2.quality.invalid, dilate_scl=_S2.quality.dilate,
               dilation_px=11, max_sun_zenith=70.0):
    """bool [T, Y, X] validity (SPEC 2.1); see :func:`soilsuite.kernels.masks.valid_mask`."""
    scl = np.asarray(scl)
    n_t, s_y, s_x = scl.shape
    n_y, n_x = np.shape(refl)[2:]
    h = (s_y - n_y) // 2  # scl may carry a halo around refl's grid
    r = int(dilation_px) // 2
    cloud = np.isin(scl, np.asarray(dilate_scl))
    padded = np.pad(cloud, ((0, 0), (r, r), (r, r)), constant_values=False)
    # square dilation = dilation along x, then along y
    along_x = np.zeros((n_t, s_y + 2 * r, s_x), bool)
    for dx in range(2 * r + 1):
        along_x |= padded[:, :, dx : dx + s_x]
    near_cloud = np.zeros((n_t, s_y, s_x), bool)
    for dy in range(2 * r + 1):
        near_cloud |= along_x[:, dy : dy + s_y, :]
    sun_ok = np.asarray(sun_zenith, dtype=np.float64) <= max_sun_zenith
    bands_ok = np.all(np.asarray(refl) != REFL_NODATA, axis=1)
    ok = ~np.isin(scl, np.asarray(invalid_scl)) & ~near_cloud
    return ok[:, h : h + n_y, h : h + n_x] & sun_ok[:, None, None] & bands_ok


def _nd(refl, a, b):
    """(A - B) / (A + B) in float64 of the bands at positions ``a`` and ``b``."""
    va = refl[:, a].astype(np.float64)
    vb = refl[:, b].astype(np.float64)
    bad = (refl[:, a] == REFL_NODATA) | (refl[:, b] == REFL_NODATA) | (va + vb == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bad, np.nan, (va - vb) / (va + vb))


_RED, _NIR, _SWIR1, _SWIR2 = (_S2.index(r) for r in ("red", "nir", "swir1", "swir2"))


def ndvi(refl, *, red=_RED, nir=_NIR):
    """NDVI = (nir - red) / (nir + red) (S2: B08, B04), float32 [T, Y, X]."""
    return _nd(refl, nir, red).astype(np.float32)


def nbr(refl, *, nir=_NIR, swir2=_SWIR2):
    """NBR = (nir - swir2) / (nir + swir2) (S2: B08, B12), float32 [T, Y, X]."""
    return _nd(refl, nir, swir2).astype(np.float32)


def nbr2(refl, *, swir1=_SWIR1, swir2=_SWIR2):
    """NBR2 = (swir1 - swir2) / (swir1 + swir2) (S2: B11, B12), float32 [T, Y, X]."""
    return _nd(refl, swir1, swir2).astype(np.float32)


def pvir2(refl, *, red=_RED, nir=_NIR, swir2=_SWIR2):
    """PV+IR2 = NDVI + NBR (float64 terms, one rounding to float32) [T, Y, X]."""
    return (_nd(refl, nir, red) + _nd(refl, nir, swir2)).astype(np.float32)


def _blue_outlier(blue, member, k, min_excess_dn):
    """True where an observation in ``member`` is a blue outlier among the pixel's members."""
    x = np.where(member, blue, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        med = np.nanmedian(x, axis=0)
        mad = np.nanmedian(np.abs(x - med), axis=0)
    return member & (blue > med + k * 1.4826 * mad) & (blue > med + min_excess_dn)


def classify(refl, valid, candidate, never_bare, k_bare=3.0, k_mref=4.0, min_excess_dn=80.0):
    """uint8 flags [T, Y, X] (SPEC 2.3-2.5); see :func:`soilsuite.kernels.composite.classify`."""
    refl = np.asarray(refl)
    valid = np.asarray(valid, bool)
    blue = refl[:, BAND_INDEX["B02"]].astype(np.float64)
    below = valid & np.asarray(candidate, bool)
    candidate = below & ~np.asarray(never_bare, bool)
    bare = candidate & ~_blue_outlier(blue, candidate, float(k_bare), float(min_excess_dn))
    mref = valid & ~_blue_outlier(blue, valid, float(k_mref), float(min_excess_dn))
    return (valid * FLAG_VALID + below * FLAG_BELOW + candidate * FLAG_CANDIDATE + bare * FLAG_BARE
            + mref * FLAG_MREF).astype(np.uint8)


def accumulate(refl, flags, period, n_periods=1):
    """Per-period counts and DN sums; see :func:`soilsuite.kernels.composite.accumulate`."""
    refl = np.asarray(refl)
    flags = np.asarray(flags)
    period = np.asarray(period)
    n_t, n_b, n_y, n_x = refl.shape
    out = {f: [] for f in Accumulator._fields}
    for p in range(n_periods):
        fl = flags[period == p]
        bare = (fl & FLAG_BARE) != 0
        mref = (fl & FLAG_MREF) != 0
        out["vpc"].append(((fl & FLAG_VALID) != 0).sum(axis=0, dtype=np.uint32))
        out["n_below"].append(((fl & FLAG_BELOW) != 0).sum(axis=0, dtype=np.uint32))
        out["bsc"].append(bare.sum(axis=0, dtype=np.uint32))
        out["mref_n"].append(mref.sum(axis=0, dtype=np.uint32))
        sums = {k: np.zeros((n_b, n_y, n_x)) for k in ("bare_sum", "bare_sumsq", "mref_sum", "mref_sumsq")}
        for b in range(n_b):
            v = refl[period == p, b].astype(np.float64)
            sums["bare_sum"][b] = np.where(bare, v, 0).sum(axis=0)
            sums["bare_sumsq"][b] = np.where(bare, v * v, 0).sum(axis=0)
            sums["mref_sum"][b] = np.where(mref, v, 0).sum(axis=0)
            sums["mref_sumsq"][b] = np.where(mref, v * v, 0).sum(axis=0)
        for k, v in sums.items():
            out[k].append(v)
    return Accumulator(*(np.stack(out[f]) for f in Accumulator._fields))


def merge(a, b):
    """Element-wise sum of two accumulators."""
    return Accumulator(*(x + y for x, y in zip(a, b, strict=True)))


def collapse(acc):
    """Sum over the period axis, keeping P = 1."""
    return Accumulator(*(x.sum(axis=0, keepdims=True, dtype=x.dtype) for x in acc))


def _mean_std(n, s, s2):
    n = n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = (n * s2 - s * s) / (n * (n - 1))
    return mean / 10000.0, np.sqrt(np.clip(var, 0, None)) / 10000.0


def finalize(acc, other=None, min_bare_obs=3, ci_method="t"):
    """Products dict (float32, NaN = nodata); see :func:`soilsuite.kernels.composite.finalize`."""
    from scipy.stats import t as student_t

    if acc.vpc.ndim == 3:
        acc = Accumulator(*(a[0] for a in acc))
    vpc, bsc, n_below, mref_n = acc.vpc, acc.bsc, acc.n_below, acc.mref_n
    other = np.zeros(vpc.shape, bool) if other is None else np.asarray(other, bool)

    with np.errstate(divide="ignore", invalid="ignore"):
        bsf = np.where(vpc > 0, bsc / vpc, np.nan)
    mask = np.zeros(vpc.shape, np.float32)
    mask[(vpc > 0) & (n_below == 0)] = 2
    mask[bsc >= min_bare_obs] = 1
    mask[other | (vpc == 0)] = 3

    mean, std = _mean_std(bsc, acc.bare_sum, acc.bare_sumsq)
    n = bsc.astype(np.float64)
    if ci_method == "t":  # one quantile per distinct n, looked up per pixel
        dof = np.arange(int(bsc.max(initial=0)) + 1) - 1
        mult = student_t.ppf(0.975, np.maximum(dof, 1))[bsc]
    else:
        mult = np.full(n.shape, 1.96)
    ci = mult * std / np.sqrt(n)
    enough = bsc >= min_bare_obs
    src_mean = np.where(enough, mean, np.nan)
    src_std = np.where(enough & (bsc >= 2), std, np.nan)
    src_ci = np.where(enough & (bsc >= 2), ci, np.nan)

    mmean, mstd = _mean_std(mref_n, acc.mref_sum, acc.mref_sumsq)
    mref_mean = np.where(mref_n >= 1, mmean, np.nan)
    mref_std = np.where(mref_n >= 2, mstd, np.nan)
    out = {"VPC": vpc, "BSC": bsc, "BSF": bsf, "MASK": mask, "SRC_MEAN": src_mean, "SRC_STD": src_std,
           "SRC_CI95": src_ci, "MREF_MEAN": mref_mean, "MREF_STD": mref_std}
    return {k: np.asarray(v).astype(np.float32) for k, v in out.items()}
