"""Bare-soil dates, episodes, spells and tillage events per pixel and period (numba kernel).

These statistics need the **ordered** series of a pixel's observations, not mergeable
accumulators: a processing tile holds every date of its pixels, so they are computed per tile
over the whole time series, for each period on the period's own observations (what a
standalone run on that period computes) and for the window on all of them.

Definitions (per pixel, over the observations of one period in date order; an observation is
*bare* if it has ``FLAG_BARE``, *vegetated* if it is valid and not ``FLAG_BELOW`` (PV+IR2
above the threshold), *valid* if it has ``FLAG_VALID``; invalid observations are skipped):

- ``first_doy``, ``last_doy``, ``median_doy``: smallest, largest and median day of year
  (1-366) of the bare observations (median of an even count: mean of the two middle days).
  Over a window of several years these are seasonal: the earliest / latest / median day of
  the year on which bare soil was seen in any year.
- ``episodes``: runs of bare observations; a run ends at a valid observation that is not
  bare (invalid observations do not end a run).
- ``longest_spell``: the longest run in days, last minus first bare observation of the run,
  plus one (a run of one observation lasts 1 day). A lower bound of the true bare spell.
- ``tillage_events``: runs of bare observations whose first observation follows a vegetated
  observation by at most ``max_gap_days`` days, with no bare observation in between
  (a haze outlier or an unclear observation between them does not matter).
- ``first_tillage_doy``: day of year of the first bare observation of the first such event.
- ``days_since_bare``: days from the last bare observation to the period's last day.

Outputs are float32 ``[P, Y, X]`` with NaN = nodata: every output is NaN where the pixel has
no valid observation in the period; the dates and ``days_since_bare`` are NaN where it has no
bare observation; ``first_tillage_doy`` where it has no tillage event.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import twins

__all__ = ["OUTPUTS", "bare_dates", "day_of_year"]

#: Output names, in the order of the kernel's output axis.
OUTPUTS = ("first_doy", "last_doy", "median_doy", "episodes", "longest_spell", "tillage_events",
           "first_tillage_doy", "days_since_bare")

_VALID, _BELOW, _BARE = 1, 2, 8


def day_of_year(days: np.ndarray) -> np.ndarray:
    """Day of year (1-366) of days since 1970-01-01, int64."""
    d = np.asarray(days, dtype="datetime64[D]")
    return (d - d.astype("datetime64[Y]")).astype(np.int64) + 1


def _bare_dates_impl(flags, days, doy, order, offsets, period_end, max_gap, out):
    n_p = offsets.shape[0] - 1
    n_y, n_x = flags.shape[1], flags.shape[2]
    nan = np.nan
    for y in prange(n_y):
        buf = np.empty(max(order.shape[0], 1), np.float64)
        for x in range(n_x):
            for p in range(n_p):
                nv = 0
                nb = 0
                first = nan
                last_doy = nan
                last_day = -1
                episodes = 0
                longest = 0
                till = 0
                first_till = nan
                in_run = False
                run_start = 0
                veg_day = -(10**9)
                for i in range(offsets[p], offsets[p + 1]):
                    t = order[i]
                    f = flags[t, y, x]
                    if (f & _VALID) == 0:
                        continue
                    nv += 1
                    day = days[t]
                    if (f & _BARE) != 0:
                        if not in_run:
                            in_run = True
                            run_start = day
                            episodes += 1
                            if day - veg_day <= max_gap:
                                till += 1
                                if till == 1:
                                    first_till = doy[t]
                        veg_day = -(10**9)  # a later run needs a vegetated observation after this one
                        span = day - run_start + 1
                        if span > longest:
                            longest = span
                        buf[nb] = doy[t]
                        nb += 1
                        if nb == 1:
                            first = doy[t]
                            last_doy = doy[t]
                        else:
                            if doy[t] < first:
                                first = doy[t]
                            if doy[t] > last_doy:
                                last_doy = doy[t]
                        last_day = day
                    else:
                        in_run = False
                        if (f & _BELOW) == 0:
                            veg_day = day
                if nv == 0:
                    for k in range(8):
                        out[k, p, y, x] = nan
                    continue
                out[3, p, y, x] = episodes
                out[4, p, y, x] = longest
                out[5, p, y, x] = till
                out[6, p, y, x] = first_till
                if nb == 0:
                    out[0, p, y, x] = nan
                    out[1, p, y, x] = nan
                    out[2, p, y, x] = nan
                    out[7, p, y, x] = nan
                    continue
                out[0, p, y, x] = first
                out[1, p, y, x] = last_doy
                b = buf[:nb]
                b.sort()
                h = nb // 2
                out[2, p, y, x] = b[h] if nb % 2 == 1 else (b[h - 1] + b[h]) / 2.0
                out[7, p, y, x] = period_end[p] - last_day
    return out


_bare_dates_serial, _bare_dates_parallel = twins(_bare_dates_impl)


def _order(days: np.ndarray, period: np.ndarray, n_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Observation indices grouped by period, each group in date order, and the group offsets."""
    keep = np.flatnonzero(period >= 0)
    o = keep[np.lexsort((days[keep], period[keep]))]
    offsets = np.searchsorted(period[o], np.arange(n_periods + 1), side="left").astype(np.int64)
    return o.astype(np.int64), offsets


def bare_dates(flags: np.ndarray, days: np.ndarray, period: np.ndarray, n_periods: int, period_end: np.ndarray,
               max_gap_days: int = 30, *, parallel: bool = False) -> dict[str, np.ndarray]:
    """Bare-soil dates, episodes, spells and tillage events per period (see the module docs).

    Parameters
    ----------
    flags : numpy.ndarray
        uint8 ``[T, Y, X]`` from :func:`soilsuite.kernels.composite.classify`.
    days : numpy.ndarray
        int ``[T]`` days since 1970-01-01 of each observation (any order).
    period : numpy.ndarray
        int ``[T]`` period index of each observation, -1 = none (skipped).
    n_periods : int
        Number of periods ``P``.
    period_end : numpy.ndarray
        int ``[P]`` days since 1970-01-01 of each period's last day (for ``days_since_bare``).
    max_gap_days : int
        A tillage event needs a vegetated observation at most this many days before the first
        bare observation of a run.
    parallel : bool
        Use the ``prange`` twin (threads over rows).

    Returns
    -------
    dict of str to numpy.ndarray
        :data:`OUTPUTS` -> float32 ``[P, Y, X]`` (days of year 1-366, counts, days), NaN = nodata.
    """
    flags = np.ascontiguousarray(flags, np.uint8)
    if flags.ndim != 3:
        raise ValueError(f"flags must be [T, Y, X], got shape {flags.shape}")
    n_t = flags.shape[0]
    days = np.asarray(days, np.int64).reshape(-1)
    period = np.asarray(period, np.int64).reshape(-1)
    period_end = np.ascontiguousarray(period_end, np.int64).reshape(-1)
    if days.shape != (n_t,) or period.shape != (n_t,):
        raise ValueError(f"days and period must be [T] = [{n_t}], got {days.shape} and {period.shape}")
    if period_end.shape != (n_periods,):
        raise ValueError(f"period_end must be [P] = [{n_periods}], got {period_end.shape}")
    if max_gap_days < 0:
        raise ValueError(f"max_gap_days must be >= 0, got {max_gap_days}")
    order, offsets = _order(days, period, n_periods)
    doy = day_of_year(days).astype(np.float64) if n_t else np.zeros(0, np.float64)
    out = np.empty((len(OUTPUTS), n_periods, flags.shape[1], flags.shape[2]), np.float32)
    fn = _bare_dates_parallel if parallel else _bare_dates_serial
    fn(flags, days, doy, order, offsets, period_end, np.int64(max_gap_days), out)
    return dict(zip(OUTPUTS, out, strict=True))


def bare_dates_reference(flags, days, period, n_periods, period_end, max_gap_days=30) -> dict[str, np.ndarray]:
    """Slow, obvious numpy version of :func:`bare_dates` (the oracle of the tests)."""
    flags = np.asarray(flags)
    days = np.asarray(days, np.int64)
    period = np.asarray(period)
    n_t, n_y, n_x = flags.shape
    out = {k: np.full((n_periods, n_y, n_x), np.nan, np.float32) for k in OUTPUTS}
    doy = day_of_year(days) if n_t else np.zeros(0, np.int64)
    for p in range(n_periods):
        ts = [t for t in sorted(range(n_t), key=lambda t: (days[t], t)) if period[t] == p]
        for y in range(n_y):
            for x in range(n_x):
                obs = [(days[t], doy[t], int(flags[t, y, x])) for t in ts if flags[t, y, x] & _VALID]
                if not obs:
                    continue
                bare = [o for o in obs if o[2] & _BARE]
                # runs of bare observations, ended by a valid non-bare one
                runs, cur = [], []
                for o in obs:
                    if o[2] & _BARE:
                        cur.append(o)
                    elif cur:
                        runs.append(cur)
                        cur = []
                if cur:
                    runs.append(cur)
                events = []
                for r in runs:
                    before = [o for o in obs if o[0] < r[0][0] and not o[2] & _BELOW]
                    between_bare = before and any(o[2] & _BARE for o in obs if before[-1][0] < o[0] < r[0][0])
                    if before and not between_bare and r[0][0] - before[-1][0] <= max_gap_days:
                        events.append(r[0][1])
                out["episodes"][p, y, x] = len(runs)
                out["longest_spell"][p, y, x] = max((r[-1][0] - r[0][0] + 1 for r in runs), default=0)
                out["tillage_events"][p, y, x] = len(events)
                if events:
                    out["first_tillage_doy"][p, y, x] = events[0]
                if bare:
                    d = np.array([o[1] for o in bare], float)
                    out["first_doy"][p, y, x] = d.min()
                    out["last_doy"][p, y, x] = d.max()
                    out["median_doy"][p, y, x] = np.median(d)
                    out["days_since_bare"][p, y, x] = period_end[p] - bare[-1][0]
    return out
