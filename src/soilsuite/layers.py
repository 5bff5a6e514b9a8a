"""Optional layers beyond SCMaP's products (issue 15): the per-block field functions and finalizers.

Their products are declared in the catalogue (:mod:`soilsuite.products`, which imports this
module; this module imports nothing of it).

Three groups, each written only when a run asks for it (``--temporal``, ``--ploughing``,
``--erosion``; :attr:`soilsuite.config.CompositeConfig.product_groups`), for the window and
every period, as COG + STAC like SCMaP's products. Definitions, units and formulas:
docs/temporal.md.

``temporal``: FIRST_BARE_DOY, LAST_BARE_DOY, MEDIAN_BARE_DOY, BARE_EPISODES,
LONGEST_BARE_SPELL, TILLAGE_EVENTS, FIRST_TILLAGE_DOY, DAYS_SINCE_BARE
(:mod:`soilsuite.kernels.temporal`).

``ploughing``: PLOUGHED (bare on permanent grassland in the period, with at least
``min_ploughing_obs`` bare observations) and PERM_VEG_LOST (MASK 2 "permanent vegetation" in
the previous period, MASK 1 "bare surface" in this one).

``erosion``: BSF_MONTHLY (bare-soil frequency per calendar month, 12 bands) and C_FACTOR
(the months' bare-soil frequencies weighted by the monthly shares of rainfall erosivity).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np

from .kernels import temporal as KT

__all__ = ["MONTHS", "c_factor", "mask_classes"]

_VALID, _BELOW, _BARE = 1, 2, 8
#: A :class:`soilsuite.products.ObservationBlock` (not imported: the catalogue imports this module).
ObservationBlock = Any
#: Band names of the monthly products.
MONTHS = tuple(f"M{m:02d}" for m in range(1, 13))


# ----------------------------------------------------------------------------- temporal
def _temporal(block: ObservationBlock) -> dict[str, np.ndarray]:
    key = "temporal.bare_dates"
    if key not in block.cache:
        end = block.period_end
        if end is None:  # unknown period ends: the last observation of each period
            end = np.array([block.days[block.period == p].max(initial=0) for p in range(block.n_periods)], np.int64)
        gap = int(block.params.get("tillage_max_gap_days", 30))
        block.cache[key] = KT.bare_dates(block.flags, block.days, block.period, block.n_periods, end, gap)
    return block.cache[key]


def _temporal_output(name: str, block: ObservationBlock) -> np.ndarray:
    return _temporal(block)[name]


def _take(name: str, f: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(f[name], np.float32)


# partials of module-level functions: picklable for Dask workers
t_first_doy = partial(_temporal_output, "first_doy")
t_last_doy = partial(_temporal_output, "last_doy")
t_median_doy = partial(_temporal_output, "median_doy")
t_episodes = partial(_temporal_output, "episodes")
t_longest_spell = partial(_temporal_output, "longest_spell")
t_tillage_events = partial(_temporal_output, "tillage_events")
t_first_tillage_doy = partial(_temporal_output, "first_tillage_doy")
t_days_since_bare = partial(_temporal_output, "days_since_bare")


def one_field(name: str):
    """The finalize of a product that is its one field, as float32 (picklable)."""
    return partial(_take, name)




# ----------------------------------------------------------------------------- ploughing
def _period_counts(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid, below-threshold and bare observations per period, int32 ``[P, Y, X]`` each."""
    key = "counts"
    if key not in block.cache:
        shape = (block.n_periods, *block.flags.shape[1:])
        nv, nbl, nb = (np.zeros(shape, np.int32) for _ in range(3))
        for p in range(block.n_periods):
            f = block.flags[block.period == p]
            nv[p] = (f & _VALID).sum(0, dtype=np.int32)
            nbl[p] = ((f & _BELOW) > 0).sum(0, dtype=np.int32)
            nb[p] = ((f & _BARE) > 0).sum(0, dtype=np.int32)
        block.cache[key] = (nv, nbl, nb)
    return block.cache[key]


def mask_classes(vpc: np.ndarray, n_below: np.ndarray, bsc: np.ndarray, other: np.ndarray | None,
                 min_bare_obs: int) -> np.ndarray:
    """SCMaP's MASK (SPEC 3: 3 other, then 1 bare, then 2 permanent vegetation, else 0) from counts."""
    other = np.zeros(vpc.shape[-2:], bool) if other is None else other
    m = np.zeros(vpc.shape, np.uint8)
    m[n_below == 0] = 2
    m[(bsc >= min_bare_obs)] = 1
    m[(n_below > 0) & (bsc < min_bare_obs)] = 0
    m[other | (vpc == 0)] = 3
    return m


def plough_flag(block: ObservationBlock) -> np.ndarray:
    """1 where grassland had >= ``min_ploughing_obs`` bare observations in the period, 0 on other
    grassland with valid observations, NaN elsewhere; float32 ``[P, Y, X]``."""
    nv, _, nb = _period_counts(block)
    grass = block.aux.get("grassland")
    if grass is None:
        grass = np.zeros(block.flags.shape[1:], bool)
    k = int(block.params.get("min_ploughing_obs", 2))
    out = np.where(nb >= k, 1.0, 0.0).astype(np.float32)
    out[(nv == 0) | ~grass[None]] = np.nan
    return out


def veg_lost(block: ObservationBlock) -> np.ndarray:
    """1 where MASK was 2 in the previous period and is 1 in this one, 0 where MASK was 2 and is
    not 1, NaN elsewhere (and in the first period); float32 ``[P, Y, X]``."""
    nv, nbl, nb = _period_counts(block)
    mask = mask_classes(nv, nbl, nb, block.aux.get("other"), int(block.params.get("min_bare_obs", 3)))
    out = np.full(mask.shape, np.nan, np.float32)
    if block.n_periods > 1:
        was = mask[:-1] == 2
        out[1:] = np.where(was, (mask[1:] == 1).astype(np.float32), np.nan)
    return out




# ----------------------------------------------------------------------------- erosion
def _month_counts(block: ObservationBlock) -> tuple[np.ndarray, np.ndarray]:
    key = "month_counts"
    if key not in block.cache:
        months = (block.days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
                  if len(block.days) else np.zeros(0, np.int64))
        shape = (block.n_periods, 12, *block.flags.shape[1:])
        nv, nb = np.zeros(shape, np.uint16), np.zeros(shape, np.uint16)
        for p in range(block.n_periods):
            for m in range(12):
                f = block.flags[(block.period == p) & (months == m)]
                if len(f):
                    nv[p, m] = (f & _VALID).sum(0, dtype=np.uint16)
                    nb[p, m] = ((f & _BARE) > 0).sum(0, dtype=np.uint16)
        block.cache[key] = (nv, nb)
    return block.cache[key]


def month_vpc(block: ObservationBlock) -> np.ndarray:
    return _month_counts(block)[0]


def month_bsc(block: ObservationBlock) -> np.ndarray:
    return _month_counts(block)[1]


def erosivity_share(block: ObservationBlock) -> np.ndarray:
    """The monthly erosivity shares ``[P, 12, Y, X]`` (a broadcast view; flat 1/12 by default)."""
    w = block.aux.get("erosivity")
    shape = (block.n_periods, 12, *block.flags.shape[1:])
    if w is None:
        return np.broadcast_to(np.float32(1 / 12), shape)
    w = np.asarray(w, np.float32)
    return np.broadcast_to(w.reshape(1, 12, *w.shape[1:]) if w.ndim == 3 else w.reshape(1, 12, 1, 1), shape)


def bsf_monthly(f: Mapping[str, np.ndarray]) -> np.ndarray:
    nv = f["month_vpc"].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nv > 0, f["month_bsc"] / nv, np.nan).astype(np.float32)


def c_factor(bsf: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Erosivity-weighted bare-soil fraction (docs/temporal.md):
    ``C = sum_m w_m * BSF_m / sum_m w_m`` over the months ``m`` with a BSF (NaN-free), where
    ``w_m`` is month m's share of the yearly rainfall erosivity; NaN if no month has a BSF.

    ``bsf`` and ``share`` are ``[12, ...]``.
    """
    bsf = np.asarray(bsf, np.float64)
    w = np.broadcast_to(np.asarray(share, np.float64), bsf.shape)
    ok = np.isfinite(bsf)
    num = np.where(ok, bsf * w, 0.0).sum(0)
    den = np.where(ok, w, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan).astype(np.float32)


def finalize_c_factor(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return c_factor(bsf_monthly(f), f["erosivity_share"])



