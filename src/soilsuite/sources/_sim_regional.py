"""Regionally different soil and dry-vegetation brightness for the simulator (issue 11).

``simulate(..., regional_brightness=a)`` multiplies the near-infrared / red-edge reflectance
of the soil and of the dry vegetation (straw, stubble, litter) by ``exp(a * w_b * F(y, x))``,
where ``F`` is a smooth, deterministic field in [-1, 1] (mostly a west-east gradient) and
``w_b`` the weight of band ``b`` (B05 0.25, B06 0.5, B07/B08/B8A 1, others 0). A brighter
NIR raises NDVI and NBR of bare soil, so the PV+IR2 value that separates bare soil from
vegetation changes across the scene: with ``a = 0.15`` bare soil's PV+IR2 rises by about
0.23 from the western to the eastern edge. Green vegetation is not changed.

The field draws no random numbers, so every other draw of the simulator (landscape, calendars,
sky, noise) is the same with and without the option; ``a = 0`` changes nothing.

The truth (``truth/threshold.tif``, float32 on the 20 m grid, constant per truth region of
``REGION_PX`` x ``REGION_PX`` pixels, 640 m) is, per region, the PV+IR2 threshold that
misclassifies the fewest clear observations (no cloud, shadow, haze or snow in the truth flags)
of cropland and grassland pixels (truth land cover 1, 2) against the truth's bare flag (soil
fraction >= 0.85): the best threshold a region can have, found on a 0.01 grid of PV+IR2 values
computed from the simulated 20 m reflectance (with sensor noise). The count is flat near its
minimum, so the truth is the middle of the thresholds whose misclassified count is within
0.5 % of the region's observations of the minimum; NaN if the region has fewer than 50 bare
or 50 not-bare observations or no threshold beats "never bare". ``truth/threshold.json``
lists the regions with their observation counts.
"""

from __future__ import annotations

import numpy as np

#: NIR-gain weight per band (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12).
BAND_WEIGHT = np.array([0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 1.0, 0.0, 0.0])
#: Side (20 m pixels) of the truth regions of ``truth/threshold.tif``.
REGION_PX = 32
#: PV+IR2 grid of the truth thresholds: bins of 0.01 over [-1, 2).
LO, HI, N_BINS = -1.0, 2.0, 300
#: A region's truth needs this many bare and this many not-bare clear observations (else NaN).
MIN_OBS = 50
#: Thresholds whose misclassified share is within this of the best count as best (their middle is the truth).
NEAR_BEST = 0.005


def regional_field(n: int) -> np.ndarray:
    """Smooth deterministic field in [-1, 1] on the ``n x n`` grid: 0.8 x a west-east ramp
    plus 0.2 x a north-south sine."""
    yy, xx = np.mgrid[0:n, 0:n].astype("float64")
    ramp = 2.0 * (xx + 0.5) / n - 1.0
    wave = np.sin(2.0 * np.pi * (yy + 0.5) / n)
    return np.clip(0.8 * ramp + 0.2 * wave, -1.0, 1.0)


def regional_gain(n: int, amplitude: float) -> np.ndarray:
    """float64 ``[10, n, n]`` multiplicative gain per band and pixel."""
    f = regional_field(n)
    return np.exp(float(amplitude) * BAND_WEIGHT[:, None, None] * f[None])


def _pvir2(r: np.ndarray) -> np.ndarray:
    red, nir, swir2 = r[2].astype("float64"), r[6].astype("float64"), r[9].astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nir - red) / (nir + red) + (nir - swir2) / (nir + swir2)


class ThresholdTruth:
    """Accumulates, per truth region, PV+IR2 histograms of bare and not-bare clear observations
    of cropland and grassland, and gives the best threshold per region (module docstring)."""

    def __init__(self, landcover: np.ndarray, crop: int = 1, grass: int = 2):
        n_y, n_x = landcover.shape
        self.shape = (n_y, n_x)
        yy, xx = np.mgrid[0:n_y, 0:n_x]
        self.n_ry, self.n_rx = -(-n_y // REGION_PX), -(-n_x // REGION_PX)
        self.region = (yy // REGION_PX) * self.n_rx + xx // REGION_PX
        self.use = np.isin(landcover, (crop, grass))
        self.hist = np.zeros((self.n_ry * self.n_rx, 2, N_BINS), np.int64)  # [region, bare?, bin]

    def add(self, refl: np.ndarray, flags: np.ndarray, nodata: np.ndarray, *, bare_bit: int, cloudy_bits: int) -> None:
        """One acquisition: ``refl`` [10, Y, X] reflectance 0-1, ``flags`` uint8 truth bits."""
        pv = _pvir2(refl)
        ok = self.use & ~nodata & ((flags & cloudy_bits) == 0) & np.isfinite(pv)
        k = np.clip(np.floor((pv[ok] - LO) / ((HI - LO) / N_BINS)), 0, N_BINS - 1).astype(np.int64)
        bare = ((flags[ok] & bare_bit) > 0).astype(np.int64)
        idx = (self.region[ok] * 2 + bare) * N_BINS + k
        self.hist += np.bincount(idx, minlength=self.hist.size).reshape(self.hist.shape)

    def best(self) -> tuple[np.ndarray, list[dict]]:
        """float32 ``[Y, X]`` best threshold per pixel (NaN: region with fewer than ``MIN_OBS``
        bare or not-bare observations) and one record per region."""
        edges = np.linspace(LO, HI, N_BINS + 1)
        out = np.full(self.hist.shape[0], np.nan, np.float32)
        rows = []
        for r, (veg, bare) in enumerate(self.hist):
            rec = {"region": r, "row": r // self.n_rx, "col": r % self.n_rx, "n_bare": int(bare.sum()),
                   "n_not_bare": int(veg.sum()), "threshold": None, "misclassified": None}
            if bare.sum() >= MIN_OBS and veg.sum() >= MIN_OBS:
                # threshold at the upper edge of bin k: bare above it + not-bare at or below it
                err = (bare.sum() - np.cumsum(bare)) + np.cumsum(veg)
                # the error curve is flat near its minimum: take the middle of the thresholds
                # within NEAR_BEST of the region's observations of the minimum
                near = np.flatnonzero(err <= err.min() + NEAR_BEST * (bare.sum() + veg.sum()))
                k = int(round(0.5 * (near[0] + near[-1])))
                if k == 0:  # no threshold is better than "never bare"
                    rows.append(rec)
                    continue
                out[r] = edges[k + 1]
                rec.update(threshold=round(float(edges[k + 1]), 4), misclassified=int(err[k]))
            rows.append(rec)
        return out[self.region].astype(np.float32), rows
