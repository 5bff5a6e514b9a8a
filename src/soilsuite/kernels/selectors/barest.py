"""The barest-pixel selector: per pixel, the k valid observations with the lowest index.

The "barest pixel" school of bare-soil composites (e.g. Diek et al. 2017, Remote Sens. 9:1245,
minimum-NDVI compositing; Rogge et al. 2018 discuss it as the simple alternative to a
threshold): no threshold, the k least vegetated observations of each pixel are the bare
candidates, whatever their absolute index. The index is PV+IR2 (SCMaP's, default) or NDVI
(``barest_index``); k is ``barest_k`` (default :data:`DEFAULT_K` = 5).

Rules, the same in the kernel and the reference:

* only valid observations with a finite index are ranked (nodata, zero denominators: never);
* a pixel with fewer than k ranked observations takes all of them;
* ties: equal index values are ranked by date, the earlier observation first (a stable sort);
  the k-th place goes to the earliest of the tied observations.

The blue outlier filter, the land-cover exclusion and the dry-vegetation guard apply on top,
so a pixel may end with fewer than k bare observations. BSC is therefore at most k and BSF is
not a bare-soil frequency for this selector (it is about k / VPC).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...sensors.sentinel2 import SENTINEL2_L2A as _S2
from .. import indices
from . import Selector, register_selector

#: k when ``barest_k`` is not given.
DEFAULT_K = 5
#: The indices the observations can be ranked by (``barest_index``); the first is the default.
INDICES = ("pvir2", "ndvi")


def _index(refl: np.ndarray, name: str | None, sensor, numpy_reference: bool = False) -> np.ndarray:
    name = name or INDICES[0]
    if name not in INDICES:
        raise ValueError(f"barest_index: {name!r} is not one of {', '.join(INDICES)}")
    if numpy_reference:
        from .. import reference as mod
    else:
        mod = indices
    red, nir = sensor.index("red"), sensor.index("nir")
    if name == "ndvi":
        return mod.ndvi(refl, red=red, nir=nir)
    return mod.pvir2(refl, red=red, nir=nir, swir2=sensor.index("swir2"))


@njit(cache=True, nogil=True)
def _k_lowest(index, valid, k, out):
    """out[t, y, x] = True for the k lowest finite ``index`` values among ``valid`` per pixel
    (ties: earliest t first). k passes of a min-scan per pixel: k is small."""
    n_t, n_y, n_x = index.shape
    for y in range(n_y):
        for x in range(n_x):
            for t in range(n_t):
                out[t, y, x] = False
            for _ in range(k):
                best = -1
                best_v = np.inf
                for t in range(n_t):
                    if out[t, y, x] or not valid[t, y, x]:
                        continue
                    v = index[t, y, x]
                    if np.isnan(v):
                        continue
                    if best < 0 or v < best_v:  # strict: the earliest of equal values wins
                        best = t
                        best_v = v
                if best < 0:
                    break
                out[best, y, x] = True
    return out


def select(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2,
           barest_k: int | None = None, barest_index: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bare candidates: the ``barest_k`` valid observations per pixel with the lowest index.

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    valid : numpy.ndarray
        bool ``[T, Y, X]``: only valid observations are ranked.
    threshold : numpy.ndarray, optional
        Not used.
    sensor : soilsuite.sensors.Sensor
        Band positions (default Sentinel-2 L2A).
    barest_k : int, optional
        How many observations per pixel (default :data:`DEFAULT_K`).
    barest_index : {"pvir2", "ndvi"}, optional
        The index ranked (default PV+IR2).

    Returns
    -------
    candidate : numpy.ndarray
        bool ``[T, Y, X]``, at most k True per pixel.
    index : numpy.ndarray
        float32 ``[T, Y, X]`` the ranked index (unitless, NaN on nodata).
    """
    k = DEFAULT_K if barest_k is None else int(barest_k)
    idx = _index(refl, barest_index, sensor)
    out = np.empty(idx.shape, np.bool_)
    return _k_lowest(idx, np.ascontiguousarray(valid, dtype=np.bool_), k, out), idx


def reference(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2,
              barest_k: int | None = None, barest_index: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The numpy oracle of :func:`select`: a stable argsort of each pixel's series."""
    k = DEFAULT_K if barest_k is None else int(barest_k)
    idx = _index(refl, barest_index, sensor, numpy_reference=True)
    n_t, n_y, n_x = idx.shape
    ranked = np.where(np.asarray(valid, bool) & np.isfinite(idx), idx.astype(np.float64), np.inf)
    order = np.argsort(ranked, axis=0, kind="stable")  # NaN/invalid (inf) last, ties by date
    cand = np.zeros((n_t, n_y, n_x), bool)
    for y in range(n_y):
        for x in range(n_x):
            for t in order[:k, y, x]:
                if np.isfinite(ranked[t, y, x]):
                    cand[t, y, x] = True
    return cand, idx


BAREST = register_selector(Selector(
    "barest", select, reference,
    "barest pixel: per pixel the k valid observations with the lowest PV+IR2 (or NDVI); --barest-k",
    options=("barest_k", "barest_index"), uses_threshold=False,
    notes="BSC is at most barest_k per pixel and BSF is about barest_k / VPC: not a bare-soil frequency; "
          "MASK class 2 (permanent vegetation) does not occur"))
