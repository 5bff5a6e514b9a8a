"""Regional PV+IR2 histograms and the histogram-separation threshold rule (numba + numpy).

No I/O: arrays in, arrays out. :func:`region_histograms` is the hot loop of
``soilsuite calibrate-threshold`` (one pass over the observations of a block);
:func:`region_histograms_reference` is its slow, obvious numpy oracle. The rule
(:func:`separation_threshold`) works on the merged histograms of one region and is cheap.

Histograms have fixed bins (``lo``, ``hi``, ``n_bins``; PV+IR2 is unitless), so the
histograms of blocks, tiles and periods merge exactly by summation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["CLASS_CROP", "CLASS_GRASS", "region_histograms", "region_histograms_reference", "bin_edges",
           "Separation", "separation_threshold"]

#: Class index of cropland (WorldCover 40) and permanent grassland (WorldCover 30) in the histograms.
CLASS_CROP = 0
CLASS_GRASS = 1


def bin_edges(lo: float, hi: float, n_bins: int) -> np.ndarray:
    """The ``n_bins + 1`` bin edges (float64) of the fixed histogram."""
    return np.linspace(lo, hi, n_bins + 1)


@njit(cache=True, nogil=True)
def _hist(pv, valid, region, cls, lo, width, n_bins, out):
    T, Y, X = pv.shape
    for t in range(T):
        for y in range(Y):
            for x in range(X):
                c = cls[y, x]
                r = region[y, x]
                if c < 0 or r < 0 or not valid[t, y, x]:
                    continue
                v = pv[t, y, x]
                if not np.isfinite(v):
                    continue
                k = int(np.floor((v - lo) / width))
                if k < 0:
                    k = 0
                elif k >= n_bins:
                    k = n_bins - 1
                out[r, c, k] += 1
    return out


def _check(pv, valid, region, cls):
    pv = np.asarray(pv, np.float32)
    valid = np.asarray(valid, np.bool_)
    region = np.asarray(region, np.int32)
    cls = np.asarray(cls, np.int8)
    if pv.ndim != 3 or valid.shape != pv.shape or region.shape != pv.shape[1:] or cls.shape != pv.shape[1:]:
        raise ValueError(f"expected pv and valid [T, Y, X] and region, cls [Y, X]; got {pv.shape}, {valid.shape}, "
                         f"{region.shape}, {cls.shape}")
    return pv, valid, region, cls


def region_histograms(pv: np.ndarray, valid: np.ndarray, region: np.ndarray, cls: np.ndarray, *,
                      n_regions: int, lo: float = -1.0, hi: float = 2.0, n_bins: int = 300) -> np.ndarray:
    """Counts of valid observations per region, class and PV+IR2 bin.

    Parameters
    ----------
    pv : numpy.ndarray
        float32 ``[T, Y, X]`` PV+IR2 (unitless; NaN is skipped).
    valid : numpy.ndarray
        bool ``[T, Y, X]``: valid observations (SPEC 2.1).
    region : numpy.ndarray
        int32 ``[Y, X]``: region index ``0 .. n_regions - 1`` of each pixel, -1 = none.
    cls : numpy.ndarray
        int8 ``[Y, X]``: :data:`CLASS_CROP` (0), :data:`CLASS_GRASS` (1) or -1 (other land cover).
    n_regions : int
        Number of regions.
    lo, hi, n_bins : float, float, int
        Fixed bins: ``n_bins`` equal bins over ``[lo, hi)``; values below ``lo`` count in the
        first bin, values at or above ``hi`` in the last.

    Returns
    -------
    numpy.ndarray
        int64 ``[n_regions, 2, n_bins]`` counts; merge partial results by summation.
    """
    pv, valid, region, cls = _check(pv, valid, region, cls)
    out = np.zeros((int(n_regions), 2, int(n_bins)), np.int64)
    return _hist(pv, valid, region, cls, float(lo), (float(hi) - float(lo)) / int(n_bins), int(n_bins), out)


def region_histograms_reference(pv, valid, region, cls, *, n_regions, lo=-1.0, hi=2.0, n_bins=300):
    """Slow, obvious numpy version of :func:`region_histograms` (the test oracle)."""
    pv, valid, region, cls = _check(pv, valid, region, cls)
    out = np.zeros((int(n_regions), 2, int(n_bins)), np.int64)
    width = (float(hi) - float(lo)) / int(n_bins)
    for r in range(int(n_regions)):
        for c in (CLASS_CROP, CLASS_GRASS):
            pix = (region == r) & (cls == c)
            sel = valid & pix[None] & np.isfinite(pv)
            k = np.clip(np.floor((pv[sel].astype(np.float64) - lo) / width), 0, n_bins - 1).astype(np.int64)
            out[r, c] = np.bincount(k, minlength=n_bins)
    return out


class Separation(NamedTuple):
    """Result of :func:`separation_threshold` for one region (NaN where not found)."""

    threshold: float  # the region's PV+IR2 threshold
    crop_mode: float  # PV+IR2 of cropland's bare mode
    spread: float  # sigma of the bare mode from its lower flank
    crossing: float  # first PV+IR2 above the bare mode where grassland's density reaches cropland's
    reason: str  # "" if found, else why not


def _smooth(h: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return h.astype(np.float64)
    k = np.ones(width) / width
    return np.convolve(h.astype(np.float64), k, mode="same")


#: sigma of a normal peak = half width at half maximum / sqrt(2 ln 2)
_HWHM_TO_SIGMA = 1.0 / np.sqrt(2.0 * np.log(2.0))


def separation_threshold(crop: np.ndarray, grass: np.ndarray, edges: np.ndarray, *,
                         smooth_bins: int = 5, k_sigma: float = 2.0, max_mode: float = 0.5,
                         max_spread: float = 0.1) -> Separation:
    """The histogram-separation threshold of one region (docs/thresholds.md, "The rule").

    1. Both histograms are smoothed by a ``smooth_bins`` moving average and normalised to unit
       area (densities ``c`` cropland, ``g`` grassland).
    2. The bare mode of cropland is the bin where cropland's density most exceeds grassland's
       (``argmax(c - g)``), searched below grassland's mode and below ``max_mode``: permanent
       grassland is not bare, so what cropland has and grassland has not is bare soil. At the
       mode grassland's density must be at most half of cropland's (else: no bare mode).
    3. Its spread ``sigma`` comes from its lower flank, which vegetated observations do not
       reach: the half width at half maximum below the mode, divided by ``sqrt(2 ln 2)``.
    4. ``crossing``: the first PV+IR2 above the mode where grassland's density reaches
       cropland's (linearly interpolated between bin centres).
    5. threshold = ``min(mode + k_sigma * sigma, crossing)``: the upper edge of the bare mode,
       never above where an observation is more likely grassland than cropland.

    Parameters
    ----------
    crop, grass : numpy.ndarray
        Counts per bin ``[n_bins]`` of cropland and grassland observations.
    edges : numpy.ndarray
        ``n_bins + 1`` bin edges (PV+IR2).
    smooth_bins : int
        Width of the moving average (bins).
    k_sigma : float
        Width of the bare mode above its centre, in sigmas.
    max_mode : float
        Highest PV+IR2 a bare mode may have (bare soil's NDVI and NBR are both low; 0.5 is far
        above any soil's PV+IR2 in the published spectra and the simulator).
    max_spread : float
        Largest sigma of a bare mode; a broader one is no distinct bare-soil peak (the region
        is then not calibrated, and filled from its neighbours).

    Returns
    -------
    Separation
        NaN threshold with a reason if either histogram is empty or cropland has no bare mode.
    """
    crop = np.asarray(crop, np.float64)
    grass = np.asarray(grass, np.float64)
    centres = 0.5 * (edges[:-1] + edges[1:])
    nan = float("nan")
    if crop.sum() <= 0 or grass.sum() <= 0:
        return Separation(nan, nan, nan, nan, "no cropland or no grassland observations")
    c = _smooth(crop, smooth_bins)
    g = _smooth(grass, smooth_bins)
    c /= c.sum()
    g /= g.sum()
    kg = int(np.argmax(g))
    d = g - c
    top = min(kg, int(np.searchsorted(centres, max_mode)))
    if top == 0 or d[:top].min() >= 0:
        return Separation(nan, nan, nan, nan, f"cropland has no bare mode below grassland's mode and {max_mode}")
    kc = int(np.argmin(d[:top]))
    if g[kc] > 0.5 * c[kc]:
        return Separation(nan, float(centres[kc]), nan, nan,
                          "no bare mode: grassland is at least half as frequent as cropland at every PV+IR2 "
                          f"below {min(max_mode, float(centres[kg])):.2f}")
    half = 0.5 * c[kc]
    kl = kc
    while kl > 0 and c[kl] > half:
        kl -= 1
    if c[kl] > half:
        return Separation(nan, float(centres[kc]), nan, nan, "the bare mode's lower flank is cut by the bins")
    # half maximum interpolated between bins kl (<= half) and kl + 1 (> half)
    f = (half - c[kl]) / (c[kl + 1] - c[kl]) if c[kl + 1] != c[kl] else 0.0
    x_half = centres[kl] + f * (centres[kl + 1] - centres[kl])
    sigma = max(float(centres[kc] - x_half), 0.5 * float(centres[1] - centres[0])) * _HWHM_TO_SIGMA
    if sigma > max_spread:
        return Separation(nan, float(centres[kc]), sigma, nan,
                          f"cropland's bare mode is too broad (sigma {sigma:.3f} > {max_spread})")
    crossing = float(centres[kg])
    for k in range(kc + 1, kg + 1):
        if d[k] >= 0:
            f = -d[k - 1] / (d[k] - d[k - 1])
            crossing = float(centres[k - 1] + f * (centres[k] - centres[k - 1]))
            break
    thr = min(float(centres[kc]) + k_sigma * sigma, crossing)
    return Separation(thr, float(centres[kc]), sigma, crossing, "")
