"""The weighted geometric median selector: DEA Barest Earth's composite, with the `geomad` package.

Roberts, D., Wilford, J., Ghattas, O. (2019): Exposed soil and mineral map of the Australian
continent revealing the land at its barest. Nature Communications 10:5297 (and Roberts et al.
2019, "Exploiting temporal information to improve bare earth mapping", IGARSS): the barest-earth
reflectance of a pixel is the *weighted* geometric median of all its clear observations, with
weights that favour low-vegetation observations, so no bare/not-bare threshold is needed.

How it fits the selector seam (which decides per observation) and the products:

* **candidates** = every valid observation (DEA takes every clear observation). The blue outlier
  filter, the land-cover exclusion and the dry-vegetation guard (``--dry-guard``) narrow them as
  for any selector; the observations left (flag ``FLAG_BARE``) are the members of the median.
  BSC counts them, so BSF is the share of valid observations used (near 1), not a bare-soil
  frequency, and MASK class 2 (permanent vegetation) does not occur.
* **SRC_MEAN** = the weighted geometric median of the members (:func:`src_mean`), computed by
  ``geomad.nanwgeomedian_pcm`` (Geoscience Australia's implementation, not ours) on reflectance
  0-1 per pixel, per period from that period's observations (it cannot be merged from parts).
  SRC_STD and SRC_CI95 stay the (arithmetic) standard deviation and CI of the mean of the same
  members: a spread of the observations, not an uncertainty of the median.
* **Weights**: geomad's feature model with ``bi = red``, ``bj = nir`` and no band terms is
  ``f = -NDVI * rho / delta``; geomad normalises ``exp(f)`` over a pixel's observations, so an
  observation's weight is ``exp(-NDVI_WEIGHT * NDVI)`` relative to the others
  (:data:`NDVI_WEIGHT` = 10, (choice): an NDVI of 0.1 weighs e^5 = 148 times an NDVI of 0.6).
  Roberts et al. fit their feature model to Landsat; these weights are ours, documented here.
* **Fewer than** :data:`MIN_OBS` = 3 members: SRC_MEAN is nodata for the pixel (also when
  ``min_bare_obs`` is 2); the run record names this fallback.
"""

from __future__ import annotations

import numpy as np

from ...sensors.sentinel2 import SENTINEL2_L2A as _S2
from . import Selector, register_selector

#: Weight scale: an observation weighs exp(-NDVI_WEIGHT * NDVI) (geomad's ``rho``, ``delta`` = 1).
NDVI_WEIGHT = 10.0
#: Fewer members than this: the geometric median is nodata.
MIN_OBS = 3
#: geomad's stopping rule: iterations and tolerance (reflectance 0-1; 1e-4 = 1 DN).
MAXITERS = 10000
EPS = 1e-4


def select(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2
           ) -> tuple[np.ndarray, None]:
    """Every valid observation is a candidate: the weights of :func:`src_mean`, not a
    threshold, decide how much each counts. Returns ``(valid.copy(), None)``."""
    return np.array(valid, dtype=np.bool_, copy=True), None


def reference(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray | None = None, sensor=_S2
              ) -> tuple[np.ndarray, None]:
    """The oracle of :func:`select` (the same rule, element by element)."""
    cand = np.zeros(np.shape(valid), bool)
    for t in range(cand.shape[0]):
        cand[t] = np.asarray(valid[t]) == 1
    return cand, None


def geomad_input(refl: np.ndarray, member: np.ndarray) -> np.ndarray:
    """The cube as geomad takes it: float32 ``[Y, X, B, T]`` reflectance 0-1 (DN x 1e-4), NaN
    for every band of an observation that is not a member."""
    x = refl.astype(np.float32) * np.float32(1e-4)
    x[np.broadcast_to(~np.asarray(member, bool)[:, None], x.shape)] = np.nan
    return np.ascontiguousarray(x.transpose(2, 3, 1, 0))


def src_mean(refl: np.ndarray, member: np.ndarray, *, sensor=_S2, num_threads: int = 1) -> np.ndarray:
    """The weighted geometric median of each pixel's member observations (geomad).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    member : numpy.ndarray
        bool ``[T, Y, X]``: the observations of the median (the bare flag of the run).
    sensor : soilsuite.sensors.Sensor
        Where red and nir are (the weights' NDVI).
    num_threads : int
        geomad's OpenMP threads (1: the pipeline runs one process per core).

    Returns
    -------
    numpy.ndarray
        float32 ``[B, Y, X]`` reflectance 0-1; NaN where a pixel has fewer than
        :data:`MIN_OBS` members.
    """
    from geomad import nanwgeomedian_pcm

    member = np.asarray(member, bool)
    n_t, n_b, n_y, n_x = refl.shape
    out = np.full((n_b, n_y, n_x), np.nan, np.float32)
    enough = member.sum(axis=0) >= MIN_OBS
    if n_t == 0 or not enough.any():
        return out
    gm = nanwgeomedian_pcm(geomad_input(refl, member), bi=sensor.index("red"), bj=sensor.index("nir"),
                           rho=NDVI_WEIGHT, delta=1.0, maxiters=MAXITERS, eps=EPS, num_threads=num_threads)
    out[:] = gm.transpose(2, 0, 1)
    out[:, ~enough] = np.nan
    return out


#: What the run record says about this selector's products.
NOTES = (f"SRC_MEAN is geomad's weighted geometric median of the bare-flagged observations (weights "
         f"exp(-{NDVI_WEIGHT:g} * NDVI)); nodata where fewer than {MIN_OBS} observations; SRC_STD/SRC_CI95 are "
         "the arithmetic spread of the same observations; BSF is the share of valid observations used")

GEOMEDIAN = register_selector(Selector(
    "geomedian", select, reference,
    "weighted geometric median (Roberts et al. 2019, DEA Barest Earth; geomad): SRC_MEAN of all valid "
    "observations weighted by exp(-10 NDVI)", uses_threshold=False, src_mean=src_mean, notes=NOTES))
