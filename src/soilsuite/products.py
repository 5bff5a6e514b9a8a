"""The product catalogue: the one place that knows each product's dtype, scale, nodata and unit.

Writers (COG, STAC) and readers look products up here. Values on disk are
``physical = stored * scale + offset``; pixels equal to ``nodata`` carry no value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sentinel2 import BANDS, WAVELENGTH_UM

#: MASK class values (SPEC section 3).
MASK_NODATA = 0
MASK_BARE = 1
MASK_PERMANENT_VEGETATION = 2
MASK_OTHER = 3
MASK_CLASSES: dict[int, str] = {
    0: "nodata / undetermined (1-2 bare observations, no other class)",
    1: "bare surface occurrence (BSC >= 3)",
    2: "permanent vegetation (valid observations, PV+IR2 never <= threshold)",
    3: "other surfaces (WorldCover 0/50/70/80/90/95, or no valid observation)",
}
MASK_COLORS: dict[int, str] = {0: "#000000", 1: "#c8843c", 2: "#2e8b3a", 3: "#9a9a9a"}


@dataclass(frozen=True)
class ProductSpec:
    """Facts about one product file.

    Attributes
    ----------
    name : str
        Product name, also the file stem (``<name>.tif``).
    dtype : str
        NumPy dtype on disk.
    nodata : float
        Nodata value on disk (NaN allowed for floats).
    scale, offset : float
        ``physical = stored * scale + offset``.
    unit : str
        Unit of the physical value.
    description : str
        One line for band descriptions and STAC.
    bands : tuple of str
        Band names (one for single-band products).
    """

    name: str
    dtype: str
    nodata: float
    scale: float
    offset: float
    unit: str
    description: str
    bands: tuple[str, ...] = ("value",)
    classes: dict[int, str] = field(default_factory=dict)

    @property
    def is_spectral(self) -> bool:
        return self.bands == BANDS

    def encode(self, physical: np.ndarray) -> np.ndarray:
        """Physical values (NaN = nodata) -> stored values of ``dtype`` with ``nodata``."""
        physical = np.asarray(physical)
        dt = np.dtype(self.dtype)
        if dt.kind == "f":
            out = physical.astype(dt, copy=True)
            if not np.isnan(self.nodata):
                out[np.isnan(out)] = self.nodata
            return out
        bad = ~np.isfinite(physical)
        stored = np.rint((np.where(bad, 0, physical) - self.offset) / self.scale)
        info = np.iinfo(dt)
        stored = np.clip(stored, info.min, info.max)
        if self.nodata != 0:
            # a real value that rounds onto the nodata sentinel (e.g. -0.9999 reflectance) is
            # nudged one step towards zero; 0 stays 0 (for counts and MASK, 0 *is* the SPEC's
            # nodata: "no valid observation" / "undetermined")
            stored[(stored == self.nodata) & ~bad] = self.nodata + (1 if self.nodata < 0 else -1)
        stored[bad] = self.nodata
        return stored.astype(dt)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> physical float64 values with NaN where nodata."""
        stored = np.asarray(stored)
        out = stored.astype("float64") * self.scale + self.offset
        if np.isnan(self.nodata):
            return out
        out[stored == self.nodata] = np.nan
        return out


_REFL = dict(dtype="int16", nodata=-9999, scale=1e-4, offset=0.0, unit="reflectance (1)", bands=BANDS)

PRODUCTS: dict[str, ProductSpec] = {
    p.name: p
    for p in [
        ProductSpec("VPC", "uint16", 0, 1.0, 0.0, "count",
                    "valid pixel count: number of valid (clear, sunlit, complete) observations"),
        ProductSpec("BSC", "uint16", 0, 1.0, 0.0, "count",
                    "bare soil count: number of bare observations after the blue outlier filter"),
        ProductSpec("BSF", "float32", float("nan"), 1.0, 0.0, "fraction (0-1)",
                    "bare soil frequency BSC / VPC; nodata where VPC = 0"),
        ProductSpec("SRC_MEAN", description="mean reflectance of the bare observations; nodata where BSC < 3", **_REFL),
        ProductSpec("SRC_STD", description="sample standard deviation (ddof=1) of the bare observations' reflectance", **_REFL),
        ProductSpec("SRC_CI95", description="95 % confidence half-width of SRC_MEAN (Student t by default)", **_REFL),
        ProductSpec("MREF_MEAN", description="mean reflectance of all valid observations after the blue filter (k=4)", **_REFL),
        ProductSpec("MREF_STD", description="standard deviation of all valid observations after the blue filter (k=4)", **_REFL),
        ProductSpec("MASK", "uint8", 0, 1.0, 0.0, "class",
                    "1 bare surface, 2 permanent vegetation, 3 other surfaces, 0 nodata/undetermined",
                    classes=MASK_CLASSES),
    ]
}

#: Products of the standard composite run, in writing order.
COMPOSITE_PRODUCTS: tuple[str, ...] = tuple(PRODUCTS)


def get(name: str) -> ProductSpec:
    """Look a product up by name (case-insensitive)."""
    try:
        return PRODUCTS[name.upper()]
    except KeyError:
        raise KeyError(f"unknown product {name!r}; known: {', '.join(PRODUCTS)}") from None


def band_wavelengths(spec: ProductSpec) -> list[float] | None:
    """Central wavelengths (micrometres) of a spectral product's bands, else None."""
    return [WAVELENGTH_UM[b] for b in spec.bands] if spec.is_spectral else None
