"""Typer options that several commands share, declared once: the time window, the area, the
scene filter, the cloud mask and the engine.

A command names a group as one parameter whose default is the group, and is decorated with
:func:`with_option_groups`; the decorator puts the group's options in the parameter's place
(same order, flags, help, defaults and panels as if written out) and calls the command with
the group's values as one mapping under the parameter's name (dates and boxes parsed when read)::

    @with_option_groups
    def calibrate_threshold(source: str, window: dict = time_options(CompositeConfig), ...):
        _calibrate(source, **window, ...)     # start=date, end=date

Defaults and help come from the pydantic models of :mod:`soilsuite.config` through
:func:`soilsuite.cli_common.opt`, as for every other option.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cli_common import AREA, ENGINE, METHOD, TIME, cli_date, opt, parse_bbox
from .config import EngineOptions, MaskOptions, SceneFilter

__all__ = ["GroupValues", "OptionGroup", "area_options", "engine_options", "mask_options", "scene_options", "time_options",
           "with_option_groups"]


@dataclass(frozen=True)
class OptionGroup:
    """Options declared once for several commands.

    Attributes
    ----------
    options : tuple of (name, annotation, typer.models.OptionInfo)
        The parameters in ``--help`` order.
    convert : callable, optional
        ``dict -> dict`` applied to the values before the command gets them (e.g. text dates
        to :class:`datetime.date`).
    """

    options: tuple[tuple[str, Any, Any], ...]
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def values(self, given: Mapping[str, Any]) -> GroupValues:
        return GroupValues({name: given[name] for name, _, _ in self.options}, self.convert)


class GroupValues(Mapping[str, Any]):
    """The values of one group as the command gets them: a read-only mapping, parsed by the
    group's ``convert`` when first read (inside the command, after it has set up its output,
    so that a bad date is reported like every other error, e.g. as JSON with ``--log-json``)."""

    def __init__(self, raw: dict[str, Any], convert: Callable[[dict[str, Any]], dict[str, Any]] | None):
        self._raw, self._convert, self._parsed = raw, convert, None

    def _values(self) -> dict[str, Any]:
        if self._parsed is None:
            self._parsed = self._convert(dict(self._raw)) if self._convert is not None else dict(self._raw)
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._values()[key]

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _GroupedCommand:
    """A command whose :class:`OptionGroup` parameters typer sees as their options (see
    :func:`with_option_groups`). The signature is made when typer first asks for it (the
    command's module is complete by then: annotations may name constants defined below it)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self._fn = fn
        sig = inspect.signature(fn)  # annotations as written (strings): nothing evaluated yet
        self._groups = {p.name: p.default for p in sig.parameters.values() if isinstance(p.default, OptionGroup)}
        ann = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k not in self._groups}
        for group in self._groups.values():
            ann.update({name: a for name, a, _ in group.options})
        self.__annotations__ = ann
        self._sig: inspect.Signature | None = None

    @property
    def __signature__(self) -> inspect.Signature:
        if self._sig is None:
            hints = typing.get_type_hints(self._fn, include_extras=True)
            sig = inspect.signature(self._fn)
            params: list[inspect.Parameter] = []
            for p in sig.parameters.values():
                if p.name in self._groups:
                    params.extend(inspect.Parameter(name, p.kind, default=info, annotation=a)
                                  for name, a, info in self._groups[p.name].options)
                else:
                    params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
            self._sig = sig.replace(parameters=params)
        return self._sig

    def __call__(self, *args, **kwargs):
        for pname, group in self._groups.items():
            kwargs[pname] = group.values(kwargs)
            for name, _, _ in group.options:
                del kwargs[name]
        return self._fn(*args, **kwargs)


def with_option_groups(fn):
    """Expand the :class:`OptionGroup` defaults of a command's parameters into their options
    (for typer) and pack their values back into one dict per group (for the command)."""
    return _GroupedCommand(fn)


def _dates(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "start": cli_date(v["start"], "start"), "end": cli_date(v["end"], "end")}


def _bbox(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "bbox": parse_bbox(v["bbox"])} if "bbox" in v else v


def time_options(model: type) -> OptionGroup:
    """``--start``, ``--end`` (YYYY-MM-DD, inclusive) of ``model``; the command gets dates."""
    return OptionGroup((
        ("start", str, opt(model, "start", panel=TIME, metavar="YYYY-MM-DD")),
        ("end", str, opt(model, "end", panel=TIME, metavar="YYYY-MM-DD")),
    ), _dates)


_AREA = {
    "collection": (str | None, {}),
    "bbox": (str | None, {"metavar": "W,S,E,N"}),
    "area": (Path | None, {}),
    "mgrs": (str | None, {}),
    "crs": (str | None, {}),
    "resolution": (float, {}),
}


def area_options(model: type, names: tuple[str, ...] = tuple(_AREA)) -> OptionGroup:
    """The area options of ``model`` (``--collection --bbox --area --mgrs --crs --resolution``,
    or those of ``names`` in that order); the command gets ``bbox`` as a (W, S, E, N) tuple."""
    return OptionGroup(tuple((n, _AREA[n][0], opt(model, n, panel=AREA, **_AREA[n][1])) for n in _AREA if n in names),
                       _bbox)


def scene_options(panel: str = METHOD) -> OptionGroup:
    """The scene filter: ``--max-cloud-cover`` (%), ``--min-sun-elevation`` (degrees)."""
    return OptionGroup((
        ("max_cloud_cover", float, opt(SceneFilter, "max_cloud_cover", panel=panel)),
        ("min_sun_elevation", float, opt(SceneFilter, "min_sun_elevation", panel=panel)),
    ))


def mask_options(names: tuple[str, ...] = ("max_sun_zenith", "dilation_px")) -> OptionGroup:
    """The observation mask: ``--max-sun-zenith`` (degrees), ``--dilation-px`` (pixels)."""
    types = {"max_sun_zenith": float, "dilation_px": int}
    return OptionGroup(tuple((n, types[n], opt(MaskOptions, n, panel=METHOD)) for n in types if n in names))


def engine_options() -> OptionGroup:
    """``--tile-size`` (px), ``--max-memory``, ``--scheduler`` (env SOILSUITE_SCHEDULER), ``--workers``,
    ``--engine`` (threads or processes; env SOILSUITE_ENGINE)."""
    return OptionGroup((
        ("tile_size", int, opt(EngineOptions, "tile_size", panel=ENGINE)),
        ("max_memory", str, opt(EngineOptions, "max_memory", panel=ENGINE)),
        ("scheduler", str | None, opt(EngineOptions, "scheduler", panel=ENGINE, envvar="SOILSUITE_SCHEDULER")),
        ("n_workers", int | None, opt(EngineOptions, "n_workers", "--workers", panel=ENGINE)),
        ("local_engine", str | None, opt(EngineOptions, "local_engine", "--engine", panel=ENGINE,
                                         envvar="SOILSUITE_ENGINE", show_envvar=False)),
    ))
