"""The edge guard's 1-pixel halo: the neighbours' decision across tile borders (``--edge-guard``).

The edge guard (:mod:`soilsuite.kernels.edges`) counts, for each bare candidate, how many of its
8 neighbours are bare candidates on the same date. At a tile border some neighbours belong to the
next tile, so the tile loader (:func:`soilsuite.pipeline.composite.load_tile_inputs`) reads the
reflectance, the validity (SCL with the cloud-dilation halo one pixel wider) and the threshold
on the tile grown by one pixel, keeps the tile's own pixels as usual and the one-pixel frame
around them as an :class:`EdgeRing` in ``TileInputs.aux["edge_ring"]``. The block
(:func:`soilsuite.pipeline.block.classify_inputs`) runs the same selector and dry-vegetation
guard on the ring, so each tile sees exactly the neighbours one big tile would: the products do
not depend on the tile layout. Outside the data (beyond the source's footprint) a neighbour has
no valid observation and counts as not bare; a block without a ring (``soilsuite.compute``, one
spatial chunk) treats everything outside it the same way.

The ring is stored flattened as a 1-pixel-high strip of length ``L = 2 (X + 2) + 2 Y``: the top
row, the bottom row (both with the corners), then the left and the right column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EDGE_AUX", "EdgeRing", "edge_px", "ring_of", "framed", "split_frame", "apply_edge_guard"]

#: ``TileInputs.aux`` key of the :class:`EdgeRing` of a tile.
EDGE_AUX = "edge_ring"


def edge_px(cfg) -> int:
    """Pixels the tile loader adds around a tile for the edge guard: 1 with ``edge_guard`` > 0, else 0."""
    return 1 if cfg.bare.edge_guard else 0


@dataclass
class EdgeRing:
    """The kernel inputs of the 1-pixel frame around a tile (flattened, :func:`ring_of`).

    ``refl`` int16 ``[T, B, 1, L]`` (offset-corrected reflectance x 10000, nodata -32768),
    ``valid`` bool ``[T, 1, L]`` (SPEC 2.1, with the same cloud dilation as the tile),
    ``threshold`` float32 ``[1, L]`` (PV+IR2 threshold, constant or from the raster).
    """

    refl: np.ndarray
    valid: np.ndarray
    threshold: np.ndarray

    def take(self, sel: np.ndarray) -> EdgeRing:
        """The ring of the observations ``sel`` (indices or a bool mask over T)."""
        return EdgeRing(self.refl[sel], self.valid[sel], self.threshold)


def ring_of(arr: np.ndarray) -> np.ndarray:
    """The 1-pixel frame of ``arr`` ``[..., Y + 2, X + 2]`` as a strip ``[..., 1, L]``."""
    top, bottom = arr[..., 0, :], arr[..., -1, :]
    left, right = arr[..., 1:-1, 0], arr[..., 1:-1, -1]
    return np.concatenate([top, bottom, left, right], axis=-1)[..., None, :]


def framed(inner: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """``inner`` ``[..., Y, X]`` inside its frame ``ring`` ``[..., 1, L]``: ``[..., Y + 2, X + 2]``
    (the inverse of cropping and :func:`ring_of`)."""
    n_y, n_x = inner.shape[-2:]
    out = np.empty((*inner.shape[:-2], n_y + 2, n_x + 2), inner.dtype)
    out[..., 1:-1, 1:-1] = inner
    r = ring[..., 0, :]
    w = n_x + 2
    out[..., 0, :] = r[..., :w]
    out[..., -1, :] = r[..., w: 2 * w]
    out[..., 1:-1, 0] = r[..., 2 * w: 2 * w + n_y]
    out[..., 1:-1, -1] = r[..., 2 * w + n_y:]
    return out


def split_frame(refl: np.ndarray, valid: np.ndarray, threshold: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, EdgeRing]:
    """Arrays of a tile grown by one pixel -> the tile's own (contiguous copies) and its ring.

    ``refl`` ``[T, B, Y + 2, X + 2]``, ``valid`` ``[T, Y + 2, X + 2]``, ``threshold``
    ``[Y + 2, X + 2]``; returns ``(refl [T, B, Y, X], valid [T, Y, X], threshold [Y, X], ring)``.
    """
    inner = (slice(1, -1), slice(1, -1))
    ring = EdgeRing(ring_of(refl), ring_of(valid), ring_of(threshold))
    return (np.ascontiguousarray(refl[(..., *inner)]), np.ascontiguousarray(valid[(..., *inner)]),
            np.ascontiguousarray(threshold[inner]), ring)


def apply_edge_guard(inp, cfg, candidate: np.ndarray, *, sensor) -> np.ndarray:
    """The edge guard on a block's candidates (after the selector and the dry-vegetation guard).

    Parameters
    ----------
    inp : soilsuite.pipeline.block.TileInputs
        The block; ``inp.aux["edge_ring"]`` (:class:`EdgeRing`), if present, is its 1-pixel frame.
    cfg : soilsuite.config.CompositeConfig
        ``cfg.bare.edge_guard`` is N (0..8); the selector and dry guard are run on the ring.
    candidate : numpy.ndarray
        bool ``[T, Y, X]``: the block's candidates after the selector and the dry guard.
    sensor : soilsuite.sensors.Sensor

    Returns
    -------
    numpy.ndarray
        bool ``[T, Y, X]``: valid candidates with at least N of 8 neighbours valid candidates.
    """
    from ..kernels import edges, filters
    from ..kernels.selectors import get_selector, selector_options

    b = cfg.bare
    own = candidate & inp.valid
    ring = inp.aux.get(EDGE_AUX)
    if ring is None:
        neighbours = edges.pad_false(own)
    else:
        sel = get_selector(b.selector)
        rc, _ = sel.select(ring.refl, ring.valid, threshold=ring.threshold, sensor=sensor, **selector_options(sel, b))
        rc = np.asarray(rc, bool) & ring.valid
        if b.dry_guard is not None:
            rc = filters.dry_vegetation_guard(ring.refl, rc, b.dry_guard, sensor=sensor)
        neighbours = framed(own, rc)
    return edges.edge_guard(own, neighbours, b.edge_guard)
