"""Periods of a composite run: calendar years, seasons, months or named date ranges.

Every period is computed from the same read of the archive: each observation (solar day)
belongs to at most one period, the products of each period are written to ``<out>/<label>/``.

Syntax of ``periods`` (the CLI's ``--periods``, the Python keyword ``periods=``):

``none``
    no periods, only the window (default).
``year``
    calendar years: labels ``2021``, ``2022`` ...
``season``
    meteorological seasons: ``2021-DJF`` (1 Dec 2020 - end of Feb 2021: a winter belongs to
    the year of its January), ``2021-MAM``, ``2021-JJA``, ``2021-SON``.
``month``
    calendar months: ``2021-01`` ... ``2021-12``.
a comma-separated list of named ranges
    ``NAME:MM-DD..MM-DD`` recurs every year (label ``<year>-NAME``, the year of the range's
    last day; a range may run over New Year, e.g. ``winter:12-01..02-28``);
    ``NAME:YYYY-MM-DD..YYYY-MM-DD`` is one range (label ``NAME``). Both ends are inclusive.
    Example: ``spring:03-01..05-31,autumn:09-01..11-30`` or
    ``before:2021-01-01..2021-06-30,after:2021-07-01..2021-12-31``. Ranges must not overlap;
    observations outside every range belong to the window only.

Every period is clipped to the window ``[start, end]``; a period whose clipped range is empty
is dropped. A run writes the periods that hold at least one observation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = ["KEYWORDS", "Period", "check_periods", "period_index", "resolve_periods", "periods_with_data"]

#: The keywords of ``periods`` besides a list of named ranges.
KEYWORDS = ("none", "year", "season", "month")
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_RANGE_RE = re.compile(rf"^({_NAME}):(\d{{4}}-)?(\d{{2}}-\d{{2}})\.\.(\d{{4}}-)?(\d{{2}}-\d{{2}})$")
#: Meteorological seasons: name, first month, number of months (DJF starts in the previous year).
_SEASONS = (("DJF", 12, 3), ("MAM", 3, 3), ("JJA", 6, 3), ("SON", 9, 3))




@dataclass(frozen=True)
class Period:
    """One period: its label (folder name) and its first and last day (inclusive)."""

    label: str
    first: dt.date
    last: dt.date


@dataclass(frozen=True)
class _Named:
    name: str
    first: str  # MM-DD or YYYY-MM-DD
    last: str
    recurring: bool


def _parse_ranges(spec: str) -> list[_Named]:
    out = []
    for part in (p.strip() for p in spec.split(",")):
        m = _RANGE_RE.match(part)
        if not m:
            raise ConfigError(
                f"periods: cannot read {part!r}; expected one of {', '.join(KEYWORDS)} or a comma-separated list "
                "of NAME:MM-DD..MM-DD (every year) or NAME:YYYY-MM-DD..YYYY-MM-DD, e.g. "
                "'spring:03-01..05-31,autumn:09-01..11-30'")
        name, y0, md0, y1, md1 = m.groups()
        if bool(y0) != bool(y1):
            raise ConfigError(f"periods: {part!r}: give both ends with a year (YYYY-MM-DD) or both without (MM-DD)")
        recurring = not y0
        first, last = (md0, md1) if recurring else (y0 + md0, y1 + md1)
        try:
            if recurring:  # 2000 is a leap year: 02-29 is a valid day of a recurring range
                a, b = dt.date.fromisoformat("2000-" + first), dt.date.fromisoformat("2000-" + last)
            else:
                a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        except ValueError:
            raise ConfigError(f"periods: {part!r}: not a valid day") from None
        if not recurring and b < a:
            raise ConfigError(f"periods: {part!r}: the last day is before the first")
        if recurring and a == b + dt.timedelta(days=1):
            pass  # a full year, fine
        out.append(_Named(name, first, last, recurring))
    names = [r.name for r in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"periods: names must be unique, {', '.join(dup)} given twice")
    return out


def check_periods(spec: str) -> str:
    """``spec`` if it is valid ``periods`` syntax (see the module docs), else :class:`ConfigError`."""
    spec = str(spec).strip()
    if spec in KEYWORDS:
        return spec
    _parse_ranges(spec)
    return spec


def _day(year: int, md: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(f"{year:04d}-{md}")
    except ValueError:  # 02-29 of a common year: the range ends on 02-28 / starts on 03-01
        m, d = md.split("-")
        return dt.date(year, int(m), 28) if m == "02" else None


def _all_periods(spec: str, start: dt.date, end: dt.date) -> list[Period]:
    years = range(start.year, end.year + 2)
    if spec == "none":
        return []
    if spec == "year":
        return [Period(str(y), dt.date(y, 1, 1), dt.date(y, 12, 31)) for y in years]
    if spec == "month":
        out = []
        for y in years:
            for m in range(1, 13):
                nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
                out.append(Period(f"{y}-{m:02d}", dt.date(y, m, 1), nxt - dt.timedelta(days=1)))
        return out
    if spec == "season":
        out = []
        for y in years:
            for name, m0, n in _SEASONS:
                y0 = y - 1 if m0 == 12 else y
                first = dt.date(y0, m0, 1)
                m1 = (m0 - 1 + n) % 12 + 1
                last = dt.date(y0 + (m0 - 1 + n) // 12, m1, 1) - dt.timedelta(days=1)
                out.append(Period(f"{y}-{name}", first, last))
        return out
    out = []
    for r in _parse_ranges(spec):
        if not r.recurring:
            out.append(Period(r.name, dt.date.fromisoformat(r.first), dt.date.fromisoformat(r.last)))
            continue
        wraps = r.last < r.first  # MM-DD compare: over New Year
        for y in years:
            last = _day(y, r.last)
            first = _day(y - 1 if wraps else y, r.first)
            if r.first == "02-29" and first is not None and first.month == 2 and first.day == 28:
                first = dt.date(first.year, 3, 1)
            out.append(Period(f"{y}-{r.name}", first, last))
    return out


def resolve_periods(spec: str, start: dt.date, end: dt.date) -> list[Period]:
    """The periods of ``spec`` within the window ``[start, end]``, clipped to it, in time order.

    Raises
    ------
    ConfigError
        ``spec`` is not valid, or two named ranges overlap.
    """
    spec = check_periods(spec)
    out = []
    for p in _all_periods(spec, start, end):
        a, b = max(p.first, start), min(p.last, end)
        if a <= b:
            out.append(Period(p.label, a, b))
    out.sort(key=lambda p: (p.first, p.label))
    for a, b in zip(out, out[1:], strict=False):
        if b.first <= a.last:
            raise ConfigError(f"periods: {a.label} ({a.first}..{a.last}) and {b.label} ({b.first}..{b.last}) overlap; "
                              "an observation can belong to one period only")
    return out


def period_index(dates, periods: list[Period]) -> np.ndarray:
    """Index into ``periods`` of each date (-1: in no period), int32 ``[T]``."""
    idx = np.full(len(dates), -1, np.int32)
    for i, d in enumerate(dates):
        for j, p in enumerate(periods):
            if p.first <= d <= p.last:
                idx[i] = j
                break
    return idx


def periods_with_data(spec: str, start: dt.date, end: dt.date, dates) -> list[Period]:
    """The periods of ``spec`` that hold at least one of ``dates`` (what a run writes)."""
    ps = resolve_periods(spec, start, end)
    used = set(period_index(dates, ps).tolist())
    return [p for i, p in enumerate(ps) if i in used]
