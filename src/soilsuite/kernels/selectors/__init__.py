"""Bare-soil selectors: which observations are bare candidates (the selector seam).

A selector turns the observation cube of a block into a per-observation decision, before the
filters every selector shares (:mod:`soilsuite.kernels.filters`: the NBR2 dry-vegetation guard;
in :func:`soilsuite.kernels.composite.classify`: the land-cover exclusion and the blue outlier
filter). One module per selector, each with a fast kernel and a slow, obvious numpy reference of
the same signature (the oracle of its tests)::

    candidate, index = selector.select(refl, valid, threshold=threshold, sensor=sensor, **options)

``refl`` int16 ``[T, B, Y, X]`` (offset-corrected reflectance x 10000, bands of the sensor, whose
band roles, ``sensor.index("red")``..., say which is which),
``valid`` bool ``[T, Y, X]``, ``threshold`` float32 ``[Y, X]`` (the selector's threshold per
pixel, if it uses one). Returns ``candidate`` bool ``[T, Y, X]`` (True: a bare candidate; its
value where ``valid`` is False does not matter) and ``index`` float32 ``[T, Y, X]``, the index the
decision was taken on (for inspection; None if the selector has none).

SCMaP's PV+IR2 rule (:mod:`.scmap`) is the first selector and the default. Add one with
:func:`register_selector` (see docs/dev/architecture.md, "add a selector").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SelectFn = Callable[..., tuple[np.ndarray, "np.ndarray | None"]]


@dataclass(frozen=True)
class Selector:
    """A bare-soil selector.

    Attributes
    ----------
    name : str
        The value of the ``selector`` option (``--selector``).
    select : callable
        The kernel: ``select(refl, valid, *, threshold, sensor, **options) -> (candidate, index)``.
    reference : callable
        The slow numpy version of ``select`` (same signature, same results): the test oracle.
    description : str
        One line for the docs and ``--help``, with the source of the rule.
    """

    name: str
    select: SelectFn
    reference: SelectFn
    description: str


SELECTORS: dict[str, Selector] = {}


def register_selector(selector: Selector) -> Selector:
    """Make ``selector`` available by its name (``selector=`` / ``--selector``)."""
    SELECTORS[selector.name] = selector
    return selector


def get_selector(name: str) -> Selector:
    """The selector called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return SELECTORS[name]
    except KeyError:
        raise KeyError(f"unknown selector {name!r}; known: {', '.join(sorted(SELECTORS))}") from None


from . import scmap as _scmap  # noqa: E402 - registers the default selector

__all__ = ["SELECTORS", "Selector", "get_selector", "register_selector"]
del _scmap
