"""Small facts about STAC items shared by every source (static catalogs, STAC APIs, SAFE):
their time interval, bbox intersection, and the record of a scene left out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pystac

from ..errors import InputError


@dataclass
class Rejection:
    """A scene left out, and why."""

    item_id: str
    reason: str


def _as_utc(d: dt.datetime) -> dt.datetime:
    return d if d.tzinfo else d.replace(tzinfo=dt.UTC)


def _item_interval(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    if item.datetime is not None:
        t = _as_utc(item.datetime)
        return t, t
    p = item.properties
    try:
        return (_as_utc(dt.datetime.fromisoformat(p["start_datetime"].replace("Z", "+00:00"))),
                _as_utc(dt.datetime.fromisoformat(p["end_datetime"].replace("Z", "+00:00"))))
    except KeyError:
        raise InputError(f"STAC item {item.id!r} has no datetime nor start/end_datetime") from None


def _bbox_intersects(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    if a is None or b is None:
        return True
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])
