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
from dataclasses import dataclass

import numpy as np

from ..config import CompositeConfig, MaskOptions
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


def _period_index(dates: list[dt.date], periods: list[str]) -> np.ndarray:
    lookup = {p: i for i, p in enumerate(periods)}
    return np.array([lookup.get(str(d.year), -1) for d in dates], dtype=np.int32)


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
    from ..kernels.selectors import get_selector

    b = cfg.bare
    sensor = DEFAULT_SENSOR
    candidate, index = get_selector(b.selector).select(inp.refl, inp.valid, threshold=inp.threshold, sensor=sensor)
    if b.max_nbr2 is not None:
        candidate = filters.dry_vegetation_guard(inp.refl, candidate, b.max_nbr2, sensor=sensor)
    flags = K.classify(inp.refl, inp.valid, candidate, inp.never_bare, b.blue_k_bare, b.blue_k_mref,
                       b.blue_min_excess * 1e4, blue=sensor.index("blue"))
    return index, flags


def _days(dates: list[dt.date]) -> np.ndarray:
    """Days since 1970-01-01 of the observations' (solar) dates, int64 ``[T]``."""
    return np.array(dates, dtype="datetime64[D]").astype(np.int64).reshape(len(dates))


def composite_inputs(inp: TileInputs, cfg: CompositeConfig, periods: list[str] | None = None
                     ) -> dict[str, dict[str, np.ndarray]]:
    """Products of one block from its kernel inputs (SPEC 2-4), as physical float32 arrays.

    Returns ``{label: {product: array}}`` with label ``"window"`` for the whole time window and
    one label per period (calendar years) if ``periods`` is given, for every product of
    :func:`soilsuite.products.composite_products` (SCMaP's and any registered). Arrays are
    float32 with NaN for nodata ([Y, X] or [B, Y, X]); encode them with
    :meth:`soilsuite.products.ProductSpec.encode`. ``inp.refl`` is released once the fields are
    computed. Each field merges over periods by its declared rule (:mod:`soilsuite.kernels.aggregate`).
    """
    from .. import products as P
    from ..kernels import aggregate
    from ..kernels import composite as K

    periods = list(periods or [])
    _, flags = classify_inputs(inp, cfg)
    dates = inp.meta.dates
    period = _period_index(dates, periods) if periods else np.zeros(len(dates), np.int32)
    n_p = max(1, len(periods))
    fields = K.accumulate(inp.refl, flags, period, n_p)._asdict()  # SCMaP's fields, one fused kernel
    extras = P.extra_products()
    if extras:
        block = P.ObservationBlock(inp.refl, flags, period, n_p, _days(dates))
        for name in dict.fromkeys(f for p in extras for f in p.fields):
            if P.FIELDS[name].compute is not None:
                fields[name] = P.FIELDS[name].compute(block)
        del block
    inp.refl = None  # free the cube before the products are built
    del flags

    rules = {name: P.FIELDS[name].merge for name in fields}
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
    results["window"] = products(aggregate.collapse(fields, rules) if n_p > 1 else fields)
    return results


def extensions() -> dict[str, list]:
    """The selectors, fields and products registered beyond SCMaP's in this process.

    A run sends them with every tile task (:func:`install_extensions` on the worker), so a
    selector or product registered in a user's script or notebook also runs on the processes
    of a Dask cluster (its functions must be picklable: module-level functions of an importable
    module, or of the ``__main__`` script, which cloudpickle sends by value).
    """
    from .. import products as P
    from ..kernels.selectors import SELECTORS, scmap

    return {"selectors": [s for n, s in SELECTORS.items() if s is not scmap.SCMAP],
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
