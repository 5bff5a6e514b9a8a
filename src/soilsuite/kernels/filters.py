"""Filters any selector may use on top of its decision (the selector seam, SPEC 2b).

Each takes the bare-candidate decision bool ``[T, Y, X]`` and returns it narrowed; they
compose in any order. The land-cover exclusion and the blue outlier filter need the whole
time series of a pixel and run inside :func:`soilsuite.kernels.composite.classify`.
"""

from __future__ import annotations

import numpy as np

from ..sensors.sentinel2 import SENTINEL2_L2A as _S2
from . import indices


def dry_vegetation_guard(refl: np.ndarray, candidate: np.ndarray, max_nbr2: float, *, sensor=_S2) -> np.ndarray:
    """Drop candidates whose NBR2 = (B11 - B12) / (B11 + B12) is above ``max_nbr2``.

    Not in SCMaP (Dvorakova et al. 2021 for crop residue; 0.10-0.14 are usual): dry
    vegetation absorbs near 2.1 um (cellulose, lignin), so its NBR2 is higher than bare
    soil's. NaN NBR2 (nodata, zero sum) is not above the limit and does not drop a candidate.

    Parameters
    ----------
    refl : numpy.ndarray
        int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000.
    candidate : numpy.ndarray
        bool ``[T, Y, X]``, changed in place and returned.
    max_nbr2 : float
        The limit (unitless).
    sensor : soilsuite.sensors.Sensor
        Where the swir1 and swir2 bands are in ``refl`` (default Sentinel-2 L2A: B11, B12).
    """
    nbr2 = indices.nbr2(refl, swir1=sensor.index("swir1"), swir2=sensor.index("swir2"))
    candidate &= ~np.greater(nbr2, np.float32(max_nbr2))
    return candidate
