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

SCMaP's PV+IR2 rule (:mod:`.scmap`) is the default. The others shipped (docs/selectors.md):
GEOS3's rule set (:mod:`.geos3`), the k barest observations per pixel (:mod:`.barest`) and DEA
Barest Earth's weighted geometric median (:mod:`.geomedian`, whose SRC_MEAN is the median:
:attr:`Selector.src_mean`). A selector's own options (e.g. ``barest_k``) are fields of
:class:`soilsuite.config.BareOptions` listed in :attr:`Selector.options`. Add one with
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
    options : tuple of str
        Names of the :class:`soilsuite.config.BareOptions` fields only this selector takes
        (e.g. ``barest_k``); they are passed to ``select`` as keywords (None: the selector's
        default), and giving one with another selector is a configuration error.
    uses_threshold : bool
        Whether the decision uses the PV+IR2 threshold (``--threshold``, ``--threshold-raster``);
        a selector that does not refuses a threshold other than the default.
    src_mean : callable or None
        For a selector whose composite spectrum is not the mean of the bare observations:
        ``src_mean(refl, member, *, sensor, **options) -> float32 [B, Y, X]`` (reflectance 0-1,
        NaN = nodata) over the observations ``member`` bool ``[T, Y, X]``; it replaces
        SRC_MEAN (computed per period from that period's observations: it cannot be merged).
    notes : str
        What the run record (``run.json``, ``selector.notes``) says about the meaning of the
        products under this selector, e.g. a nodata fallback.
    """

    name: str
    select: SelectFn
    reference: SelectFn
    description: str
    options: tuple[str, ...] = ()
    uses_threshold: bool = True
    src_mean: Callable[..., np.ndarray] | None = None
    notes: str = ""


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


def selector_options(selector: Selector, bare) -> dict:
    """The keywords ``selector.select`` takes from the run's bare options (a
    :class:`soilsuite.config.BareOptions` or any object with those attributes)."""
    return {name: getattr(bare, name) for name in selector.options}


# the selectors shipped with soilsuite register themselves (scmap is the default)
from . import barest as _barest  # noqa: E402
from . import geomedian as _geomedian  # noqa: E402
from . import geos3 as _geos3  # noqa: E402
from . import scmap as _scmap  # noqa: E402

__all__ = ["SELECTORS", "Selector", "get_selector", "register_selector", "selector_options"]
del _scmap, _barest, _geomedian, _geos3
