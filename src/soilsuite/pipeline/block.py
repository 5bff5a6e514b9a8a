"""The composite of one block of observations: plain arrays in, products out (no I/O).

The tile runner (:mod:`soilsuite.pipeline.composite`) and the Dataset API
(:mod:`soilsuite.pipeline.compute`) both call these functions, so every formula has one code
path whatever drives it::

    valid  = valid_observations(scl_with_halo, refl, sun_zenith, cfg.mask)     # SPEC 2.1
    inp    = TileInputs(meta, refl, valid, threshold, never_bare, other)
    prods  = composite_inputs(inp, cfg, periods)  # {"window" | period: {product: float32 array}}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from ..config import CompositeConfig, MaskOptions
from ..errors import ConfigError
from ..sensors import DEFAULT_SENSOR
from ..sources import stac as S


def valid_observations(scl: np.ndarray, refl: np.ndarray, sun_zenith: np.ndarray, mask: MaskOptions) -> np.ndarray:
    """Valid observations (SPEC 2.1) of a block: bool ``[T, Y, X]`` on the grid of ``refl``.

    ``scl`` is uint8 ``[T, Y + 2h, X + 2h]``: the scene classification with a halo of ``h``
    pixels around the reflectance block (the context of the cloud dilation; ``h = 0`` at the
    edge of the data), ``refl`` int16 ``[T, B, Y, X]``, ``sun_zenith`` degrees ``[T]``.
    """
    from ..kernels import masks

    return masks.valid_mask(
        scl, refl, sun_zenith, np.array(mask.invalid_scl, np.uint8), np.array(mask.dilate_scl, np.uint8),
        mask.dilation_px, mask.max_sun_zenith,
    )


@dataclass
class TileInputs:
    """Kernel inputs of one tile (halo removed), all on the tile's grid."""

    meta: S.ObservationMeta
    refl: np.ndarray  # int16 [T, B, Y, X], offset-corrected x 10000
    valid: np.ndarray  # bool [T, Y, X]
    threshold: np.ndarray  # float32 [Y, X]
    never_bare: np.ndarray  # bool [Y, X]
    other: np.ndarray  # bool [Y, X]
    #: per-pixel inputs of the optional layers (``grassland`` bool [Y, X], ``erosivity`` [12, Y, X])
    aux: dict = field(default_factory=dict)


def _periods(cfg: CompositeConfig, labels: list[str]):
    """The :class:`~soilsuite.periods.Period` of each label (from ``cfg.periods`` and the window)."""
    from ..periods import Period, resolve_periods

    spec = cfg.periods if cfg.periods != "none" else "year"
    known = {p.label: p for p in resolve_periods(spec, cfg.start, cfg.end)}
    out = []
    for label in labels:
        if label in known:
            out.append(known[label])
        elif label.isdigit() and len(label) == 4:  # a year given explicitly (soilsuite.compute)
            y = int(label)
            out.append(Period(label, max(cfg.start, dt.date(y, 1, 1)), min(cfg.end, dt.date(y, 12, 31))))
        else:
            raise ConfigError(f"periods: {label!r} is not a period of {cfg.periods!r} in {cfg.start}..{cfg.end}")
    return out


def _period_index(dates: list[dt.date], periods) -> np.ndarray:
    from ..periods import period_index

    return period_index(dates, periods)


def classify_inputs(inp: TileInputs, cfg: CompositeConfig) -> tuple[np.ndarray | None, np.ndarray]:
    """The selector's index and the per-observation flags (SPEC 2.2-2.5) of a block.

    The configured selector (``cfg.bare.selector``, :mod:`soilsuite.kernels.selectors`) decides
    which observations are bare candidates; the optional filters narrow the decision (the NBR2
    dry-vegetation guard, :mod:`soilsuite.kernels.filters`); :func:`~soilsuite.kernels.composite.classify`
    adds validity, the land-cover exclusion and the blue outlier filter. Returns the index the
    selector decided on (SCMaP: PV+IR2, float32 ``[T, Y, X]``; None if it has none) and the
    uint8 flags ``[T, Y, X]``.
    """
    from ..kernels import composite as K
    from ..kernels import filters
    from ..kernels.selectors import get_selector, selector_options

    b = cfg.bare
    sensor = DEFAULT_SENSOR
    sel = get_selector(b.selector)
    candidate, index = sel.select(inp.refl, inp.valid, threshold=inp.threshold, sensor=sensor,
                                  **selector_options(sel, b))
    guarded = None
    if b.dry_guard is not None:
        if cfg.layers.provenance:  # which candidates the guard removes (provenance rule "dry_guard")
            guarded = candidate.copy()
        candidate = filters.dry_vegetation_guard(inp.refl, candidate, b.dry_guard, sensor=sensor)
    edged = None
    if b.edge_guard:  # neighbours on the same date (pipeline/edges.py: the tile's 1-pixel ring)
        from .edges import apply_edge_guard

        before = candidate & inp.valid
        if guarded is not None:  # the dry guard's removals, before the edge guard narrows further
            guarded &= ~before
        candidate = apply_edge_guard(inp, cfg, candidate, sensor=sensor)
        edged = before & ~candidate
    flags = K.classify(inp.refl, inp.valid, candidate, inp.never_bare, b.blue_k_bare, b.blue_k_mref,
                       b.blue_min_excess * 1e4, blue=sensor.index("blue"))
    if b.blue_filter == "off":  # every candidate is bare (the MREF filter is unchanged)
        flags |= np.where((flags & K.FLAG_CANDIDATE) > 0, np.uint8(K.FLAG_BARE), np.uint8(0))
    if guarded is not None:
        from ..kernels.provenance import FLAG_GUARDED

        flags |= (guarded & ~candidate & inp.valid).view(np.uint8) * np.uint8(FLAG_GUARDED)
    if edged is not None:
        from ..kernels.provenance import FLAG_EDGE

        flags |= edged.view(np.uint8) * np.uint8(FLAG_EDGE)
    return index, flags


def _days(dates: list[dt.date]) -> np.ndarray:
    """Days since 1970-01-01 of the observations' (solar) dates, int64 ``[T]``."""
    return np.array(dates, dtype="datetime64[D]").astype(np.int64).reshape(len(dates))


def _stitched_flags(inp: TileInputs, cfg: CompositeConfig, period: np.ndarray, n_p: int) -> np.ndarray:
    """Flags with the blue outlier filter of each period taken over that period alone
    (``period_blue_filter="exact"``): each period's observations classified as a standalone
    run on that period would classify them. Observations in no period keep flag 0."""
    flags = np.zeros(inp.valid.shape, np.uint8)
    for p in range(n_p):
        sel = np.flatnonzero(period == p)
        if sel.size == 0:
            continue
        sub = TileInputs(inp.meta, inp.refl[sel], inp.valid[sel], inp.threshold, inp.never_bare, inp.other)
        if "edge_ring" in inp.aux:  # the edge guard's neighbours beyond the tile, on the same dates
            sub.aux["edge_ring"] = inp.aux["edge_ring"].take(sel)
        flags[sel] = classify_inputs(sub, cfg)[1]
    return flags


def composite_inputs(inp: TileInputs, cfg: CompositeConfig, periods: list[str] | None = None
                     ) -> dict[str, dict[str, np.ndarray]]:
    """Products of one block from its kernel inputs (SPEC 2-4), as physical float32 arrays.

    Returns ``{label: {product: array}}`` with label ``"window"`` for the whole time window and
    one label per period if ``periods`` is given (labels of ``cfg.periods``: years, seasons,
    months or named ranges, :mod:`soilsuite.periods`), for every product of
    :func:`soilsuite.products.composite_products` of the run's groups (SCMaP's, any registered,
    and the optional layers the config asks for). Arrays are float32 with NaN for nodata
    ([Y, X] or [B, Y, X]); encode them with :meth:`soilsuite.products.ProductSpec.encode`.
    ``inp.refl`` is released once the fields are computed.

    The window's fields are the merge of the periods' fields by each field's rule
    (:mod:`soilsuite.kernels.aggregate`) when that is exact: the blue filter of the window
    (``period_blue_filter="window"``), every observation in a period and a mergeable rule.
    Otherwise (rule ``"all"``: medians, episodes; ``"exact"`` per-period blue filter;
    observations outside every period) they are computed from the window's whole series, which
    the block holds.
    """
    from .. import products as P
    from ..kernels import aggregate
    from ..kernels import composite as K

    periods = list(periods or [])
    prange_ = _periods(cfg, periods) if periods else []
    dates = inp.meta.dates
    days = _days(dates)
    n_p = max(1, len(periods))
    period = _period_index(dates, prange_) if periods else np.zeros(len(dates), np.int32)
    end_day = int(np.datetime64(cfg.end, "D").astype(np.int64))
    period_end = (np.array([np.datetime64(p.last, "D").astype(np.int64) for p in prange_], np.int64) if periods
                  else np.array([end_day], np.int64))
    _, flags_w = classify_inputs(inp, cfg)
    exact = bool(periods) and cfg.period_blue_filter == "exact"
    flags_p = _stitched_flags(inp, cfg, period, n_p) if exact else flags_w
    groups = cfg.product_groups
    extras = P.extra_products(groups)
    params = {**cfg.layers.model_dump(), "min_bare_obs": cfg.bare.min_bare_obs}
    aux = {**inp.aux, "other": inp.other}
    extra_fields = list(dict.fromkeys(f for p in extras for f in p.fields))

    start_day = int(np.datetime64(cfg.start, "D").astype(np.int64))
    period_start = (np.array([np.datetime64(p.first, "D").astype(np.int64) for p in prange_], np.int64)
                    if periods else np.array([start_day], np.int64))

    def fields_of(flags: np.ndarray, per: np.ndarray, n: int, ends: np.ndarray, names) -> dict[str, np.ndarray]:
        starts = period_start if per is period else np.array([start_day], np.int64)  # the periods', or the window's
        block = P.ObservationBlock(inp.refl, flags, per, n, days, ends, aux, params, period_start=starts)
        return {name: P.FIELDS[name].compute(block) for name in names if P.FIELDS[name].compute is not None}

    fields = K.accumulate(inp.refl, flags_p, period, n_p)._asdict()  # SCMaP's fields, one fused kernel
    fields.update(fields_of(flags_p, period, n_p, period_end, extra_fields))
    rules = {name: P.FIELDS[name].merge for name in fields}
    if periods:
        # the window: merged from the periods where that is exact, else from the whole series
        mergeable = not exact and bool((period >= 0).all())
        window: dict[str, np.ndarray] = {}
        if mergeable:
            window.update(aggregate.collapse({k: fields[k] for k in K.Accumulator._fields}, rules))
        else:
            window.update(K.accumulate(inp.refl, flags_w, np.zeros(len(dates), np.int32), 1)._asdict())
        direct = []
        for name in extra_fields:
            spec = P.FIELDS[name]
            if spec.window_from_periods or (mergeable and spec.merge != "all"):
                window[name] = aggregate.collapse({name: fields[name]}, rules)[name]
            else:
                direct.append(name)
        window.update(fields_of(flags_w, np.zeros(len(dates), np.int32), 1, np.array([end_day], np.int64), direct))
    else:
        window = fields
    own_src = _selector_src_mean(inp, cfg, periods, period, flags_p, flags_w)  # e.g. the geomedian's
    dry_src = _dry_src(inp, cfg, periods, period, n_p, flags_p, flags_w)  # src_estimator="dry"
    inp.refl = None  # free the cube before the products are built
    del flags_w, flags_p

    b = cfg.bare

    def products(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = K.finalize(K.Accumulator(**{k: f[k] for k in K.Accumulator._fields}), inp.other, b.min_bare_obs,
                         b.ci_method)
        for spec in extras:
            out[spec.name] = np.asarray(spec.finalize({k: f[k][0] for k in spec.fields}), np.float32)
        return out

    results: dict[str, dict[str, np.ndarray]] = {}
    for i, label in enumerate(periods):
        results[label] = products({k: v[i : i + 1] for k, v in fields.items()})
    results["window"] = products(window)
    for label, value in (dry_src or {}).items():  # SRC_* of the kept bare observations; BSC, BSF, MASK as is
        results[label].update(value)
    for label, value in (own_src or {}).items():  # nodata where either is: BSC < min_bare_obs, or the selector's rule
        mean = results[label]["SRC_MEAN"]
        results[label]["SRC_MEAN"] = np.where(np.isfinite(mean), value, np.nan).astype(np.float32)
    return results


def _dry_src(inp: TileInputs, cfg: CompositeConfig, periods: list[str], period: np.ndarray, n_p: int,
             flags_p: np.ndarray, flags_w: np.ndarray) -> dict[str, dict[str, np.ndarray]] | None:
    """SRC_MEAN, SRC_STD and SRC_CI95 of the moisture-robust estimator per label (``"window"`` and
    each period), or None with ``src_estimator="mean"``.

    Per pixel the brightest ``src_dry_share`` (at least 2, so that SRC_STD exists) of the bare
    observations in B11 + B12 (:func:`soilsuite.kernels.moisture.dry_selection`), chosen within
    each period for the period's products and over the whole window for the window's; their sums
    come from the same accumulate kernel as SCMaP's. SRC is nodata where BSC < min_bare_obs,
    exactly as with the mean estimator.
    """
    b = cfg.bare
    if b.src_estimator != "dry":
        return None
    from ..kernels import composite as K
    from ..kernels import moisture

    sensor = DEFAULT_SENSOR
    swir = {"swir1": sensor.index("swir1"), "swir2": sensor.index("swir2")}

    def src(flags: np.ndarray, per: np.ndarray, n: int) -> tuple[K.Accumulator, np.ndarray]:
        keep = moisture.dry_selection(inp.refl, flags, per, n, b.src_dry_share, moisture.MIN_KEEP, **swir)
        bare = (flags & np.uint8(K.FLAG_BARE)) > 0
        n_bare = np.stack([bare[per == p].sum(axis=0) for p in range(n)])  # every bare obs: the coverage
        return K.accumulate(inp.refl, moisture.src_flags(flags, keep), per, n), n_bare

    accs: dict[str, tuple[K.Accumulator, np.ndarray]] = {}
    if periods:
        acc, n_bare = src(flags_p, period, n_p)
        for i, label in enumerate(periods):
            accs[label] = (K.Accumulator(*(a[i : i + 1] for a in acc)), n_bare[i])
    acc, n_bare = src(flags_w, np.zeros(len(inp.meta.dates), np.int32), 1)
    accs["window"] = (acc, n_bare[0])
    out = {}
    for label, (a, n_bare) in accs.items():
        prods = K.finalize(a, inp.other, moisture.MIN_KEEP, b.ci_method)
        covered = n_bare >= b.min_bare_obs
        out[label] = {k: np.where(covered, prods[k], np.float32(np.nan)).astype(np.float32)
                      for k in ("SRC_MEAN", "SRC_STD", "SRC_CI95")}
    return out


def _selector_src_mean(inp: TileInputs, cfg: CompositeConfig, periods: list[str], period: np.ndarray,
                       flags_p: np.ndarray, flags_w: np.ndarray) -> dict[str, np.ndarray] | None:
    """SRC_MEAN of a selector that brings its own (:attr:`~soilsuite.kernels.selectors.Selector.src_mean`,
    e.g. the weighted geometric median), ``{label: float32 [B, Y, X]}``: each period's from that
    period's bare observations, the window's from all of its bare observations. None otherwise."""
    from ..kernels.composite import FLAG_BARE
    from ..kernels.selectors import get_selector, selector_options

    sel = get_selector(cfg.bare.selector)
    if sel.src_mean is None:
        return None
    opts = selector_options(sel, cfg.bare)

    def own(member: np.ndarray) -> np.ndarray:
        return sel.src_mean(inp.refl, member, sensor=DEFAULT_SENSOR, **opts)

    out = {label: own(((flags_p & FLAG_BARE) > 0) & (period == i)[:, None, None]) for i, label in enumerate(periods)}
    out["window"] = own((flags_w & FLAG_BARE) > 0)
    return out


def extensions() -> dict[str, list]:
    """The selectors, fields and products registered beyond SCMaP's in this process.

    A run sends them with every tile task (:func:`install_extensions` on the worker), so a
    selector or product registered in a user's script or notebook also runs on the processes
    of a Dask cluster (its functions must be picklable: module-level functions of an importable
    module, or of the ``__main__`` script, which cloudpickle sends by value).
    """
    from .. import products as P
    from ..kernels.selectors import SELECTORS, scmap

    shipped = scmap.__name__.rsplit(".", 1)[0] + "."  # soilsuite's own selectors: importable everywhere
    return {"selectors": [s for n, s in SELECTORS.items() if not s.select.__module__.startswith(shipped)],
            "fields": [f for f in P.FIELDS.values() if f.compute is not None],
            "products": list(P.extra_products())}


def install_extensions(ext: dict[str, list] | None) -> None:
    """Register what :func:`extensions` collected (on a worker process); idempotent."""
    if not ext:
        return
    from .. import products as P
    from ..kernels.selectors import SELECTORS, register_selector

    for s in ext.get("selectors", []):
        if SELECTORS.get(s.name) is not s:
            register_selector(s)
    for f in ext.get("fields", []):
        P.FIELDS[f.name] = f
    for p in ext.get("products", []):
        if P.PRODUCTS.get(p.name) is not p:
            P.register_product(p)
