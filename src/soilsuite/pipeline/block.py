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


def classify_inputs(inp: TileInputs, cfg: CompositeConfig) -> tuple[np.ndarray, np.ndarray]:
    """PV+IR2 and the per-observation flags (SPEC 2.2-2.5) of a tile."""
    from ..kernels import composite as K
    from ..kernels import indices

    b = cfg.bare
    pv = indices.pvir2(inp.refl)
    if b.max_nbr2 is not None:
        # optional dry-vegetation filter: an observation with NBR2 above the limit does not
        # count as below the PV+IR2 threshold (so it is neither bare nor "bare-like" for MASK)
        with np.errstate(invalid="ignore"):
            pv[indices.nbr2(inp.refl) > b.max_nbr2] = np.inf
    flags = K.classify(inp.refl, inp.valid, pv, inp.threshold, inp.never_bare, b.blue_k_bare, b.blue_k_mref,
                       b.blue_min_excess * 1e4)
    return pv, flags


def composite_inputs(inp: TileInputs, cfg: CompositeConfig, periods: list[str] | None = None
                     ) -> dict[str, dict[str, np.ndarray]]:
    """Products of one tile from its kernel inputs (SPEC 2-4), as physical float32 arrays.

    Returns ``{label: {product: array}}`` with label ``"window"`` for the whole time window and
    one label per period (calendar years) if ``periods`` is given. Arrays are float32 with NaN
    for nodata ([Y, X] or [B, Y, X]); encode them with :meth:`soilsuite.products.ProductSpec.encode`.
    ``inp.refl`` is released once the accumulators are built.
    """
    from ..kernels import composite as K

    periods = list(periods or [])
    pv, flags = classify_inputs(inp, cfg)
    del pv
    dates = inp.meta.dates
    period = _period_index(dates, periods) if periods else np.zeros(len(dates), np.int32)
    n_p = max(1, len(periods))
    acc = K.accumulate(inp.refl, flags, period, n_p)
    inp.refl = None  # free the cube before the products are built
    del flags

    b = cfg.bare
    results: dict[str, dict[str, np.ndarray]] = {}
    for i, label in enumerate(periods):
        acc_i = type(acc)(*(a[i : i + 1] for a in acc))
        results[label] = K.finalize(acc_i, inp.other, b.min_bare_obs, b.ci_method)
    whole = K.collapse(acc) if n_p > 1 else acc
    results["window"] = K.finalize(whole, inp.other, b.min_bare_obs, b.ci_method)
    return results


