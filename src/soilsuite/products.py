"""The product catalogue: the one place that knows each product's dtype, scale, nodata and unit.

Writers (COG, STAC) and readers look products up here. Values on disk are
``physical = stored * scale + offset``; pixels equal to ``nodata`` carry no value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import layers as L
from . import provenance as PV
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
    #: accumulator fields the product is computed from (:data:`FIELDS`)
    fields: tuple[str, ...] = ()
    #: ``"composite"``: written by every composite run (mosaic, STAC, quicklooks follow this
    #: catalogue); other groups (e.g. soil maps) are described here but written by their own code
    group: str = "composite"
    #: ``finalize(fields) -> float32 array`` (physical values, NaN = nodata) from the fields of one
    #: period (period axis removed); None for SCMaP's products, made together by
    #: :func:`soilsuite.kernels.composite.finalize`
    finalize: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = field(default=None, compare=False)
    #: resampling to another grid (``soilsuite export``): "average", "mode", "nearest", "sum"...;
    #: None: from the product's kind (:func:`resampling`)
    resampling: str | None = None

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
_BARE = ("bsc", "bare_sum", "bare_sumsq")
_MREF = ("mref_n", "mref_sum", "mref_sumsq")

PRODUCTS: dict[str, ProductSpec] = {
    p.name: p
    for p in [
        ProductSpec("VPC", "uint16", 0, 1.0, 0.0, "count",
                    "valid pixel count: number of valid (clear, sunlit, complete) observations", fields=("vpc",)),
        ProductSpec("BSC", "uint16", 0, 1.0, 0.0, "count",
                    "bare soil count: number of bare observations after the blue outlier filter", fields=("bsc",)),
        ProductSpec("BSF", "float32", float("nan"), 1.0, 0.0, "fraction (0-1)",
                    "bare soil frequency BSC / VPC; nodata where VPC = 0", fields=("vpc", "bsc")),
        ProductSpec("SRC_MEAN", description="mean reflectance of the bare observations; nodata where BSC < 3",
                    fields=_BARE, **_REFL),
        ProductSpec("SRC_STD", description="sample standard deviation (ddof=1) of the bare observations' reflectance",
                    fields=_BARE, **_REFL),
        ProductSpec("SRC_CI95", description="95 % confidence half-width of SRC_MEAN (Student t by default)",
                    fields=_BARE, **_REFL),
        ProductSpec("MREF_MEAN", description="mean reflectance of all valid observations after the blue filter (k=4)",
                    fields=_MREF, **_REFL),
        ProductSpec("MREF_STD", description="standard deviation of all valid observations after the blue filter (k=4)",
                    fields=_MREF, **_REFL),
        ProductSpec("MASK", "uint8", 0, 1.0, 0.0, "class",
                    "1 bare surface, 2 permanent vegetation, 3 other surfaces, 0 nodata/undetermined",
                    classes=MASK_CLASSES, fields=("vpc", "n_below", "bsc")),
    ]
}

#: SCMaP's products (SPEC 3), made together by :func:`soilsuite.kernels.composite.finalize`.
SCMAP_PRODUCTS: tuple[str, ...] = tuple(PRODUCTS)


# ----------------------------------------------------------------------------- the aggregator seam
@dataclass(frozen=True)
class ObservationBlock:
    """What a field's ``compute`` sees of one block (tile) of observations; plain arrays.

    ``refl`` int16 ``[T, B, Y, X]`` offset-corrected reflectance x 10000; ``flags`` uint8
    ``[T, Y, X]`` (bits of :mod:`soilsuite.kernels.composite`: ``FLAG_VALID``, ``FLAG_BARE``...);
    ``period`` int ``[T]`` (period index of each observation, -1 = none); ``n_periods``;
    ``days`` int64 ``[T]``: days since 1970-01-01 of each observation's (solar) date.
    ``period_end`` int64 ``[P]``: days since 1970-01-01 of each period's last day (None if
    unknown); ``aux``: per-pixel inputs of optional layers (``"grassland"`` bool ``[Y, X]``,
    ``"other"`` bool ``[Y, X]``, ``"erosivity"`` float32 ``[12, Y, X]``); ``params``: their
    options (:class:`soilsuite.config.LayerOptions` as a dict, ``min_bare_obs``); ``cache``:
    scratch shared by the fields of one block (e.g. one kernel computing several fields).
    """

    refl: np.ndarray
    flags: np.ndarray
    period: np.ndarray
    n_periods: int
    days: np.ndarray
    period_end: np.ndarray | None = None
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)
    params: Mapping[str, object] = field(default_factory=dict)
    cache: dict = field(default_factory=dict, compare=False)
    #: days since 1970-01-01 of each period's first day, int64 ``[P]`` (None if unknown)
    period_start: np.ndarray | None = None


@dataclass(frozen=True)
class FieldSpec:
    """An accumulator field: a per-period partial result of a block, and how partials merge.

    Attributes
    ----------
    name : str
        Field name (products list the fields they need).
    merge : {"sum", "min", "max", "all"}
        How partials of two time splits or periods combine (:mod:`soilsuite.kernels.aggregate`).
    compute : callable or None
        ``compute(block: ObservationBlock) -> array [P, Y, X] or [P, B, Y, X]``; None for the
        fields of :func:`soilsuite.kernels.composite.accumulate` (computed together, fused).
    description : str
        One line, with the unit.
    window_from_periods : bool
        With periods, the window's value is the merge of the periods' values (e.g. "ploughed in
        any year"), not a computation over the window's observations.
    """

    name: str
    merge: str
    compute: Callable[[ObservationBlock], np.ndarray] | None = field(default=None, compare=False)
    description: str = ""
    window_from_periods: bool = False


def _core_fields() -> dict[str, FieldSpec]:
    from .kernels.composite import ACCUMULATOR_MERGE, Accumulator

    docs = {"vpc": "valid observations (count)", "n_below": "valid observations selected as bare candidates (count)",
            "bsc": "bare observations (count)", "mref_n": "observations in the MREF set (count)",
            "bare_sum": "sum of DN of bare observations per band", "bare_sumsq": "sum of DN**2 of bare observations",
            "mref_sum": "sum of DN of MREF observations per band", "mref_sumsq": "sum of DN**2 of MREF observations"}
    return {f: FieldSpec(f, ACCUMULATOR_MERGE[f], None, docs[f]) for f in Accumulator._fields}


#: Every accumulator field by name: SCMaP's (fused in one kernel) and any registered.
FIELDS: dict[str, FieldSpec] = _core_fields()


def register_product(spec: ProductSpec, *fields: FieldSpec) -> ProductSpec:
    """Add a product (and the fields it needs) to the catalogue.

    A product of group ``"composite"`` is then computed by every composite run, written as COG
    (one file per period, mosaics, tiles), described in STAC and listed in the run record, with
    no other change: one spec, its fields and their ``compute``, and the spec's ``finalize``
    (see docs/dev/architecture.md, "add a product"). Re-registering the same name replaces it.
    """
    for f in fields:
        if f.name in FIELDS and FIELDS[f.name].compute is None:
            raise ValueError(f"field {f.name!r} is one of SCMaP's fields; choose another name")
        FIELDS[f.name] = f
    missing = [f for f in spec.fields if f not in FIELDS]
    if missing:
        raise ValueError(f"product {spec.name}: unknown fields {missing}; register them with the product")
    if spec.group == "composite" and spec.finalize is None and spec.name not in SCMAP_PRODUCTS:
        raise ValueError(f"product {spec.name}: give finalize= (how the product is made from its fields)")
    PRODUCTS[spec.name] = spec
    return spec


#: Groups of optional composite products, written only when a run asks for them
#: (:attr:`soilsuite.config.CompositeConfig.product_groups`: ``--temporal``, ``--ploughing``, ``--erosion``,
#: ``--provenance``).
OPTIONAL_GROUPS: tuple[str, ...] = ("temporal", "ploughing", "erosion", "provenance")


def composite_products(groups: tuple[str, ...] = ("composite",)) -> tuple[str, ...]:
    """Names of the products a composite run writes, in writing order: group ``"composite"``
    (every run) and the optional ``groups`` the run asks for."""
    return tuple(n for n, p in PRODUCTS.items() if p.group in ("composite", *groups))


def extra_products(groups: tuple[str, ...] = ("composite",)) -> tuple[ProductSpec, ...]:
    """Registered composite products beyond SCMaP's (computed by their own ``finalize``), of
    group ``"composite"`` and the optional ``groups``."""
    return tuple(p for n, p in PRODUCTS.items() if p.group in ("composite", *groups) and n not in SCMAP_PRODUCTS)


#: Products of the standard composite run, in writing order (SCMaP's; see :func:`composite_products`).
COMPOSITE_PRODUCTS: tuple[str, ...] = SCMAP_PRODUCTS


def get(name: str) -> ProductSpec:
    """Look a product up by name (case-insensitive)."""
    try:
        return PRODUCTS[name.upper()]
    except KeyError:
        raise KeyError(f"unknown product {name!r}; known: {', '.join(PRODUCTS)}") from None


def resampling(spec: ProductSpec, counts: str = "nearest") -> str:
    """How a product is resampled to another grid (``soilsuite export``, docs/export.md).

    ``spec.resampling`` if set; else classes (MASK, PLOUGHED...) ``"mode"`` (the class covering
    most of the target pixel); counts (unit ``count``) ``counts``: ``"nearest"`` keeps a
    pixel's count, ``"sum"`` adds the counts of the source pixels in the target pixel; days
    and dates (unit with ``day``) ``"nearest"``; everything else (reflectance, fractions)
    ``"average"`` (nodata pixels left out).
    """
    if counts not in ("nearest", "sum"):
        raise ValueError(f"counts must be 'nearest' or 'sum', got {counts!r}")
    if spec.resampling:
        return spec.resampling
    if spec.classes:
        return "mode"
    if spec.unit == "count":
        return counts
    if "day" in spec.unit:
        return "nearest"
    return "average"


def band_wavelengths(spec: ProductSpec) -> list[float] | None:
    """Central wavelengths (micrometres) of a spectral product's bands, else None."""
    return [WAVELENGTH_UM[b] for b in spec.bands] if spec.is_spectral else None


# ----------------------------------------------------------------------------- optional layers (issue 15)
# groups "temporal", "ploughing", "erosion" (docs/temporal.md): declared here so that every reader and
# writer of the catalogue knows them; their block functions are in soilsuite.layers
_DOY = dict(dtype="uint16", nodata=0, scale=1.0, offset=0.0, unit="day of year (1-366)", group="temporal")
_CNT = dict(dtype="uint16", nodata=65535, scale=1.0, offset=0.0, group="temporal")
_T = [
    (ProductSpec("FIRST_BARE_DOY", description="earliest day of year of a bare observation; nodata: none",
                   fields=("t_first_doy",), finalize=L.one_field("t_first_doy"), **_DOY),
     FieldSpec("t_first_doy", "min", L.t_first_doy, "earliest day of year of a bare observation")),
    (ProductSpec("LAST_BARE_DOY", description="latest day of year of a bare observation; nodata: none",
                   fields=("t_last_doy",), finalize=L.one_field("t_last_doy"), **_DOY),
     FieldSpec("t_last_doy", "max", L.t_last_doy, "latest day of year of a bare observation")),
    (ProductSpec("MEDIAN_BARE_DOY", description="median day of year of the bare observations",
                   fields=("t_median_doy",), finalize=L.one_field("t_median_doy"), **_DOY),
     FieldSpec("t_median_doy", "all", L.t_median_doy, "median day of year of the bare observations")),
    (ProductSpec("BARE_EPISODES", unit="count", fields=("t_episodes",), finalize=L.one_field("t_episodes"),
                   description="runs of bare observations (ended by a valid non-bare one); nodata: no valid obs",
                   **_CNT),
     FieldSpec("t_episodes", "all", L.t_episodes, "number of bare episodes (count)")),
    (ProductSpec("LONGEST_BARE_SPELL", unit="days", fields=("t_longest_spell",),
                   finalize=L.one_field("t_longest_spell"),
                   description="longest bare episode, first to last bare observation + 1 (days)", **_CNT),
     FieldSpec("t_longest_spell", "all", L.t_longest_spell, "longest bare episode (days)")),
    (ProductSpec("TILLAGE_EVENTS", unit="count", fields=("t_tillage_events",),
                   finalize=L.one_field("t_tillage_events"),
                   description="bare episodes starting within N days of a vegetated observation", **_CNT),
     FieldSpec("t_tillage_events", "all", L.t_tillage_events, "number of tillage events (count)")),
    (ProductSpec("FIRST_TILLAGE_DOY", description="day of year of the first tillage event",
                   fields=("t_first_tillage_doy",), finalize=L.one_field("t_first_tillage_doy"), **_DOY),
     FieldSpec("t_first_tillage_doy", "all", L.t_first_tillage_doy, "day of year of the first tillage event")),
    (ProductSpec("DAYS_SINCE_BARE", "int16", -1, 1.0, 0.0, "days",
                   "days from the last bare observation to the period's last day", fields=("t_days_since_bare",),
                   finalize=L.one_field("t_days_since_bare"), group="temporal"),
     FieldSpec("t_days_since_bare", "all", L.t_days_since_bare, "days since the last bare observation")),
]
TEMPORAL_PRODUCTS = tuple(spec.name for spec, _ in _T)

_FLAG = dict(dtype="uint8", nodata=255, scale=1.0, offset=0.0, unit="class", group="ploughing")
_PL = [
    (ProductSpec("PLOUGHED", description="permanent grassland bare in the period: 1 ploughed, 0 not; nodata off "
                   "grassland", classes={0: "grassland, not ploughed", 1: "grassland ploughed (bare)"},
                   fields=("plough_flag",), finalize=L.one_field("plough_flag"), **_FLAG),
     FieldSpec("plough_flag", "max", L.plough_flag, "grassland ploughed in the period (0/1)", window_from_periods=True)),
    (ProductSpec("PERM_VEG_LOST", description="MASK 2 (permanent vegetation) in the previous period -> MASK 1 "
                   "(bare surface) in this one: 1 lost, 0 kept; nodata where MASK was not 2",
                   classes={0: "permanent vegetation kept", 1: "permanent vegetation lost (now bare surface)"},
                   fields=("veg_lost",), finalize=L.one_field("veg_lost"), **_FLAG),
     FieldSpec("veg_lost", "max", L.veg_lost, "permanent vegetation lost since the previous period (0/1)",
                 window_from_periods=True)),
]
PLOUGHING_PRODUCTS = tuple(spec.name for spec, _ in _PL)

_ER = [
    (ProductSpec("BSF_MONTHLY", "float32", float("nan"), 1.0, 0.0, "fraction (0-1)",
                   "bare soil frequency per calendar month (band M01 = January), all years of the period pooled; "
                   "nodata where the month has no valid observation", bands=L.MONTHS,
                   fields=("month_vpc", "month_bsc"), finalize=L.bsf_monthly, group="erosion"),
     FieldSpec("month_vpc", "sum", L.month_vpc, "valid observations per calendar month (count)"),
     FieldSpec("month_bsc", "sum", L.month_bsc, "bare observations per calendar month (count)")),
    (ProductSpec("C_FACTOR", "float32", float("nan"), 1.0, 0.0, "fraction (0-1)",
                   "cover-management factor: monthly bare-soil frequency weighted by the monthly share of rainfall "
                   "erosivity (RUSLE C style; bare soil 1, covered 0)", fields=("month_vpc", "month_bsc",
                                                                                "erosivity_share"),
                   finalize=L.finalize_c_factor, group="erosion"),
     FieldSpec("erosivity_share", "max", L.erosivity_share, "share of yearly rainfall erosivity per month (0-1)")),
]
EROSION_PRODUCTS = tuple(spec.name for spec, *_ in _ER)

# group "provenance" (issue 11, docs/provenance.md): why a pixel is bare or not; block functions in
# soilsuite.provenance, rule codes in soilsuite.kernels.provenance
_PV = [
    (ProductSpec("PROVENANCE", "uint16", 65535, 1.0, 0.0, "count",
                   "observations per rule that removed them (first rule that applies, SPEC 1-2b), band 'bare' kept; "
                   "bands add up to the pixel's observations; nodata: no observation", bands=PV.RULES,
                   fields=("prov_counts",), finalize=PV.finalize_provenance, group="provenance"),
     FieldSpec("prov_counts", "sum", PV.prov_counts, "observations per provenance rule (count)")),
    (ProductSpec("BARE_MEAN_DOY", "float32", float("nan"), 1.0, 0.0, "day of year (1-366)",
                   "mean day of year of the bare observations; nodata where there is none",
                   fields=("prov_counts", "prov_doy_sum"), finalize=PV.finalize_mean_doy, group="provenance"),
     FieldSpec("prov_doy_sum", "sum", PV.prov_doy_sum, "sum of the day of year of the bare observations")),
    (ProductSpec("BARE_MEAN_YEAR", "float32", float("nan"), 1.0, 0.0, "year",
                   "mean calendar year of the bare observations; nodata where there is none",
                   fields=("prov_counts", "prov_year_sum"), finalize=PV.finalize_mean_year, group="provenance",
                   resampling="nearest"),
     FieldSpec("prov_year_sum", "sum", PV.prov_year_sum, "sum of the calendar year of the bare observations")),
]
PROVENANCE_PRODUCTS = tuple(spec.name for spec, _ in _PV)

for _spec, *_fields in (*_T, *_PL, *_ER, *_PV):
    register_product(_spec, *_fields)
