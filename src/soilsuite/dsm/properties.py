"""Soil property facts: units, plausible ranges, unit conversions and mix-up heuristics, stocks.

One module for what soilsuite knows about a soil property (SPEC 6; SoilGrids names and
conventional units), read by the sample reader (:mod:`soilsuite.dsm.samples`), the model
(:mod:`soilsuite.dsm.model`, for its unit) and the stock maps (:mod:`soilsuite.dsm.predict`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["PROPERTIES", "Property", "stock"]


@dataclass(frozen=True)
class Property:
    """Facts about one soil property (SPEC 6; SoilGrids names, conventional units).

    Attributes
    ----------
    name : str
        Key used everywhere (column name after reading, model target, output file prefix).
    unit : str
        Unit the package works in.
    description : str
        One line for reports.
    valid : tuple of float
        Hard limits (physically possible values) in ``unit``; values outside are an error.
    conversions : dict of str to float
        Other units a user may have, with the factor that converts them to ``unit``
        (``value_in_unit = value * factor``).
    suspect : callable or None
        ``suspect(values) -> (unit, reason) or None``: a heuristic that recognises a
        column given in another unit (e.g. SOC in %).
    """

    name: str
    unit: str
    description: str
    valid: tuple[float, float]
    conversions: dict[str, float] = field(default_factory=dict)
    suspect: Callable[[np.ndarray], tuple[str, str] | None] | None = None


def _median(v: np.ndarray) -> float:
    return float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")


def _suspect_percent_content(v: np.ndarray, low: float, high: float) -> tuple[str, str] | None:
    """Content in g/kg whose median is below ``low`` and maximum below ``high`` g/kg: looks like %."""
    med, mx = _median(v), float(np.nanmax(v))
    if med < low and mx <= high:
        return "%", f"median {med:.3g} and maximum {mx:.3g} are implausibly low for g/kg but typical for %"
    return None


def _suspect_gkg_fraction(v: np.ndarray) -> tuple[str, str] | None:
    """Particle-size fraction (g/100g) above 100: looks like g/kg."""
    mx = float(np.nanmax(v))
    if mx > 100 and mx <= 1000:
        return "g/kg", f"maximum {mx:.4g} exceeds 100 g/100g but fits g/kg"
    if 0 < mx <= 1.0:
        return "fraction", f"maximum {mx:.3g} <= 1 looks like a fraction (0-1), not g/100g"
    return None


def _suspect_ph(v: np.ndarray) -> tuple[str, str] | None:
    med = _median(v)
    if 20 <= med <= 110:
        return "pH*10", f"median {med:.3g} looks like pH x 10 (SoilGrids storage), not pH"
    return None


def _suspect_bdod(v: np.ndarray) -> tuple[str, str] | None:
    med = _median(v)
    if 500 <= med <= 2700:
        return "kg/m3", f"median {med:.4g} looks like kg/m3, not kg/dm3"
    if 50 <= med <= 270:
        return "cg/cm3", f"median {med:.4g} looks like cg/cm3 (SoilGrids storage), not kg/dm3"
    return None


def _suspect_cfvo(v: np.ndarray) -> tuple[str, str] | None:
    mx = float(np.nanmax(v))
    if 0 < mx <= 1.0:
        return "fraction", f"maximum {mx:.3g} <= 1 looks like a volume fraction (0-1), not cm3/100cm3"
    return None


def _suspect_stock(v: np.ndarray) -> tuple[str, str] | None:
    med = _median(v)
    if med > 60:
        return "t/ha", f"median {med:.4g} is implausibly high for kg/m2 but typical for t/ha"
    return None


#: Soil properties of SPEC 6: unit, hard limits, known alternative units and unit heuristics.
PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in [
        Property("soc", "g/kg", "soil organic carbon content", (0.0, 600.0),
                 {"g/kg": 1.0, "%": 10.0, "mg/g": 1.0, "dg/kg": 0.1},
                 lambda v: _suspect_percent_content(v, 4.0, 15.0)),
        Property("phh2o", "pH", "pH in water", (1.5, 11.5), {"pH": 1.0, "pH*10": 0.1}, _suspect_ph),
        Property("nitrogen", "g/kg", "total nitrogen content", (0.0, 50.0),
                 {"g/kg": 1.0, "%": 10.0, "cg/kg": 0.01}, lambda v: _suspect_percent_content(v, 0.4, 1.5)),
        Property("bdod", "kg/dm3", "bulk density of the fine earth", (0.05, 2.7),
                 {"kg/dm3": 1.0, "g/cm3": 1.0, "t/m3": 1.0, "kg/m3": 1e-3, "cg/cm3": 0.01}, _suspect_bdod),
        Property("cfvo", "cm3/100cm3", "volume of coarse fragments (> 2 mm)", (0.0, 100.0),
                 {"cm3/100cm3": 1.0, "%": 1.0, "fraction": 100.0, "cm3/dm3": 0.1}, _suspect_cfvo),
        Property("sic", "g/kg", "soil inorganic carbon content", (0.0, 130.0),
                 {"g/kg": 1.0, "%": 10.0}),
        Property("sand", "g/100g", "sand fraction (0.05-2 mm)", (0.0, 100.0),
                 {"g/100g": 1.0, "%": 1.0, "g/kg": 0.1, "fraction": 100.0}, _suspect_gkg_fraction),
        Property("silt", "g/100g", "silt fraction (0.002-0.05 mm)", (0.0, 100.0),
                 {"g/100g": 1.0, "%": 1.0, "g/kg": 0.1, "fraction": 100.0}, _suspect_gkg_fraction),
        Property("clay", "g/100g", "clay fraction (< 0.002 mm)", (0.0, 100.0),
                 {"g/100g": 1.0, "%": 1.0, "g/kg": 0.1, "fraction": 100.0}, _suspect_gkg_fraction),
        Property("ocstk", "kg/m2", "organic carbon stock", (0.0, 150.0),
                 {"kg/m2": 1.0, "t/ha": 0.1}, _suspect_stock),
        Property("icstk", "kg/m2", "inorganic carbon stock", (0.0, 150.0),
                 {"kg/m2": 1.0, "t/ha": 0.1}, _suspect_stock),
        Property("nistk", "kg/m2", "total nitrogen stock", (0.0, 15.0),
                 {"kg/m2": 1.0, "t/ha": 0.1}),
    ]
}


def stock(content_gkg: Any, bdod: Any, depth_m: float | Any, cfvo: Any = 0.0) -> Any:
    """Stock of a content over a layer (SPEC 6).

    ``stock = C * bdod * d * (1 - cfvo / 100)``, which is
    ``C/1000 [kg/kg] * bdod*1000 [kg/m3] * d [m] * (1 - cfvo/100)``.

    Parameters
    ----------
    content_gkg : float or ndarray
        Content C (g/kg), e.g. SOC.
    bdod : float or ndarray
        Bulk density of the fine earth (kg/dm3 = t/m3).
    depth_m : float or ndarray
        Layer thickness d (m), > 0.
    cfvo : float or ndarray
        Coarse fragments (cm3/100cm3, 0-100).

    Returns
    -------
    float or ndarray
        Stock (kg/m2); NaN propagates.
    """
    c = np.asarray(content_gkg, dtype="float64")
    b = np.asarray(bdod, dtype="float64")
    d = np.asarray(depth_m, dtype="float64")
    f = np.asarray(cfvo, dtype="float64")
    if np.any(d[np.isfinite(d)] <= 0):
        raise ConfigError(f"depth_m must be > 0 (metres), got {depth_m}")
    if np.any((f[np.isfinite(f)] < 0) | (f[np.isfinite(f)] > 100)):
        raise InputError("cfvo must be within 0-100 cm3/100cm3 (volume %); "
                         f"found values from {np.nanmin(f):g} to {np.nanmax(f):g}")
    if np.any(b[np.isfinite(b)] < 0):
        raise InputError(f"bdod must be >= 0 kg/dm3; found minimum {np.nanmin(b):g}")
    out = c * b * d * (1.0 - f / 100.0)
    return float(out) if out.ndim == 0 else out
