"""SCMaP's selector (SPEC 2.2-2.3): a bare candidate has PV+IR2 = NDVI + NBR <= threshold.

Rogge et al. 2018 and Heiden et al. 2022 (the PV+IR2 thresholding); the threshold is a constant
(default 0.2) or a value per pixel from the threshold raster. PV+IR2 is NaN where a band is
nodata or a denominator is zero, and NaN is never below the threshold.
"""

from __future__ import annotations

import numpy as np

from ...sensors.sentinel2 import SENTINEL2_L2A as _S2
from .. import indices
from . import Selector, register_selector


def _roles(sensor) -> dict[str, int]:
    return {r: sensor.index(r) for r in ("red", "nir", "swir2")}


def select(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray, sensor=_S2) -> tuple[np.ndarray, np.ndarray]:
    """Bare candidates by PV+IR2 <= threshold (one numba pass: the index and the comparison,
    :func:`soilsuite.kernels.indices.pvir2_at_most`).

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    valid : numpy.ndarray
        bool ``[T, Y, X]`` (unused: the decision is taken for every observation).
    threshold : numpy.ndarray
        float32 ``[Y, X]`` PV+IR2 threshold per pixel (unitless).
    sensor : soilsuite.sensors.Sensor
        Where the red, nir and swir2 bands are in ``refl`` (default Sentinel-2 L2A).

    Returns
    -------
    candidate : numpy.ndarray
        bool ``[T, Y, X]``.
    pvir2 : numpy.ndarray
        float32 ``[T, Y, X]`` PV+IR2 (unitless).
    """
    return indices.pvir2_at_most(refl, threshold, **_roles(sensor))


def reference(refl: np.ndarray, valid: np.ndarray, *, threshold: np.ndarray, sensor=_S2
              ) -> tuple[np.ndarray, np.ndarray]:
    """The numpy oracle of :func:`select`."""
    from .. import reference as R

    pv = R.pvir2(refl, **_roles(sensor))
    cand = np.zeros(pv.shape, bool)
    thr = np.broadcast_to(np.asarray(threshold, np.float32), pv.shape[1:])
    for t in range(pv.shape[0]):
        cand[t] = pv[t] <= thr
    return cand, pv


SCMAP = register_selector(Selector(
    "scmap", select, reference,
    "SCMaP (Rogge et al. 2018, Heiden et al. 2022): PV+IR2 = NDVI + NBR <= threshold"))
