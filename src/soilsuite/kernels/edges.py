"""The spatial edge guard (SPEC 2b, issue 11): a bare observation needs bare neighbours on its date.

Mixed pixels at parcel edges (a 20 m pixel that sees the neighbouring parcel's stubble or crop
as well as bare soil) are the main false positives left once the dry-vegetation guard and a
strict PV+IR2 threshold have removed residue and partly green observations. The edge guard
(``--edge-guard N``) keeps a bare candidate only if at least ``N`` of its 8 neighbours are also
bare candidates **on the same date** (valid, chosen by the selector and passing the
dry-vegetation guard); ``N = 8`` is the 3 x 3 erosion of each date's bare mask, ``N = 0``
changes nothing. The land-cover exclusion and the blue outlier filter (whole-series filters)
apply afterwards, to the observation itself.

The kernel works on plain arrays: the neighbours' decision ``neighbours`` bool
``[T, Y + 2, X + 2]`` is the block's own decision with a 1-pixel frame around it (the halo the
pipeline loads, :mod:`soilsuite.pipeline.edges`); a frame of ``False`` (:func:`pad_false`)
treats pixels outside the block as "not bare", which is the rule at the edge of the data.

``edge_guard`` is the numba kernel, ``edge_guard_reference`` the obvious numpy version
(the oracle of ``tests/test_edge_guard.py``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import twins

__all__ = ["edge_guard", "edge_guard_reference", "pad_false", "MAX_NEIGHBOURS"]

#: Neighbours of a pixel in the 3 x 3 window (8-connectivity).
MAX_NEIGHBOURS = 8


def _edge_impl(candidate, neighbours, min_n, out):
    n_t, n_y, n_x = candidate.shape
    for y in prange(n_y):
        for t in range(n_t):
            for x in range(n_x):
                if not candidate[t, y, x]:
                    out[t, y, x] = False
                    continue
                n = 0
                for dy in range(3):
                    for dx in range(3):
                        if (dy != 1 or dx != 1) and neighbours[t, y + dy, x + dx]:
                            n += 1
                out[t, y, x] = n >= min_n
    return out


_edge_serial, _edge_parallel = twins(_edge_impl)


def _check(candidate: np.ndarray, neighbours: np.ndarray, min_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    candidate = np.ascontiguousarray(candidate, dtype=bool)
    neighbours = np.ascontiguousarray(neighbours, dtype=bool)
    if candidate.ndim != 3:
        raise ValueError(f"candidate must be bool [T, Y, X], got shape {candidate.shape}")
    t, y, x = candidate.shape
    if neighbours.shape != (t, y + 2, x + 2):
        raise ValueError(f"neighbours must be bool [T, Y + 2, X + 2] = {(t, y + 2, x + 2)} (a 1-pixel frame "
                         f"around candidate's grid), got {neighbours.shape}")
    if not 0 <= int(min_neighbours) <= MAX_NEIGHBOURS:
        raise ValueError(f"min_neighbours must be in 0..8, got {min_neighbours}")
    return candidate, neighbours


def edge_guard(candidate: np.ndarray, neighbours: np.ndarray, min_neighbours: int, *,
               parallel: bool = False) -> np.ndarray:
    """Keep a candidate only if at least ``min_neighbours`` of its 8 neighbours are candidates.

    Parameters
    ----------
    candidate : numpy.ndarray
        bool ``[T, Y, X]``: the observations to filter (bare candidates of the block).
    neighbours : numpy.ndarray
        bool ``[T, Y + 2, X + 2]``: the decision the neighbours are counted on, on the block's
        grid with a 1-pixel frame (``neighbours[:, 1:-1, 1:-1]`` is usually ``candidate``; the
        frame is the halo from the neighbouring blocks, or ``False`` at the edge of the data).
    min_neighbours : int
        ``N`` in 0..8; 8 is the 3 x 3 erosion of each date's mask, 0 keeps every candidate.
    parallel : bool
        Run the rows in parallel threads (for interactive use; the pipeline runs serial).

    Returns
    -------
    numpy.ndarray
        bool ``[T, Y, X]``: ``candidate`` and at least ``min_neighbours`` neighbours True.
    """
    candidate, neighbours = _check(candidate, neighbours, min_neighbours)
    out = np.empty(candidate.shape, bool)
    fn = _edge_parallel if parallel else _edge_serial
    return fn(candidate, neighbours, np.int64(min_neighbours), out)


def edge_guard_reference(candidate: np.ndarray, neighbours: np.ndarray, min_neighbours: int) -> np.ndarray:
    """:func:`edge_guard` in obvious numpy: the sum of the 8 shifted neighbour masks."""
    candidate, neighbours = _check(candidate, neighbours, min_neighbours)
    _, n_y, n_x = candidate.shape
    count = np.zeros(candidate.shape, np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                count += neighbours[:, 1 + dy: 1 + dy + n_y, 1 + dx: 1 + dx + n_x]
    return candidate & (count >= min_neighbours)


def pad_false(mask: np.ndarray) -> np.ndarray:
    """``mask`` bool ``[T, Y, X]`` with a 1-pixel frame of ``False``: ``[T, Y + 2, X + 2]``."""
    return np.pad(np.asarray(mask, bool), ((0, 0), (1, 1), (1, 1)), constant_values=False)
