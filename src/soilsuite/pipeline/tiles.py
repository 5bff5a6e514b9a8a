"""Tiling of the target grid and tile sizes derived from the memory budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

from odc.geo.geobox import GeoBox

from ..config import parse_bytes
from ..sentinel2 import BANDS

#: Resident memory of one worker process before any tile (Python, numpy, numba, GDAL, dask),
#: measured with bench/bench_composite.py; subtracted from the budget.
WORKER_BASE_BYTES = 350 * 2**20
#: Resident memory of the main process (items, scheduler, mosaic threads), also in the budget.
MAIN_PROCESS_BYTES = 400 * 2**20
#: Smallest useful memory for one tile in flight (a 64 px tile of ~50 dates needs ~12 MB, but
#: I/O buffers and COG block decompression need more).
MIN_TILE_BYTES = 100 * 2**20
#: Extra resident memory of a worker whose direct read path keeps its COGs open between tiles
#: (``sources/fastread.py``, ``$SOILSUITE_READ_OPEN_FILES`` > 0): the open datasets and their
#: decoded blocks in GDAL's cache (``GDAL_CACHEMAX`` 64 MB). Measured on bench_composite's
#: ``build_archive(600, 30)`` (517 files) with bench/bench_read.py: peak RSS of the process tree
#: 1191 vs 1084 MB with one worker and 1378 vs 1132 MB with two (files kept open vs odc-stac),
#: i.e. 107-123 MB per worker (docs/performance.md, "Files kept open between tiles").
OPEN_FILES_BYTES = 120 * 2**20
#: ``--provenance`` (issue 11): bytes per tile pixel per label (the window and each period) for
#: its fields and products: rule counts int32 per rule (4 B x 11 rules), day-of-year and year sums
#: float64 (16 B), PROVENANCE float32 per rule + its uint16 encoding (6 B x 11), BARE_MEAN_DOY and
#: BARE_MEAN_YEAR float32 + encoded (16 B).
#: Number of provenance rules (``kernels.provenance.RULES``; not imported here to keep numba out
#: of the planner; tests/test_tile_budget.py checks the two agree).
PROVENANCE_N_RULES = 11
PROVENANCE_LABEL_BYTES = 4 * PROVENANCE_N_RULES + 16 + 6 * PROVENANCE_N_RULES + 16
#: ``--provenance``: bytes per tile pixel per observation (the validity rule code, uint8).
PROVENANCE_OBS_BYTES = 1


def worker_base_bytes(read_path: str | None = None, source: str | None = None) -> int:
    """Resident memory of one worker before its tile: :data:`WORKER_BASE_BYTES`, plus
    :data:`OPEN_FILES_BYTES` when the direct read path keeps files open (``read_path`` ``auto``
    or ``mean``, the default; not ``general``, nor a cube ``source``, which odc-stac or Zarr read;
    not with ``$SOILSUITE_READ_OPEN_FILES=0``)."""
    import os

    from ..sources.fastread import OPEN_FILES_ENV, resolve_read_path

    if source is not None:
        from ..sources.cube import is_cube_source

        if is_cube_source(source):
            return WORKER_BASE_BYTES
    if resolve_read_path(read_path) == "general" or os.environ.get(OPEN_FILES_ENV, "").strip() == "0":
        return WORKER_BASE_BYTES
    return WORKER_BASE_BYTES + OPEN_FILES_BYTES


def _bytes(max_memory: str | int) -> int:
    return parse_bytes(max_memory) if isinstance(max_memory, str) else int(max_memory)


def worker_share(max_memory: str | int, n_workers: int) -> int:
    """Bytes of the budget for each of ``n_workers`` workers: the budget less the main process
    (``MAIN_PROCESS_BYTES``), shared equally. Also each local worker's Dask memory limit."""
    return int((_bytes(max_memory) - MAIN_PROCESS_BYTES) // max(1, n_workers))


def workers_for_budget(max_memory: str | int, cores: int, base_bytes: int = WORKER_BASE_BYTES) -> tuple[int, int]:
    """Number of worker processes (<= ``cores``) and memory per worker that fit the budget.

    The budget covers the main process (``MAIN_PROCESS_BYTES``) and every worker
    (``base_bytes``, :func:`worker_base_bytes`, + one tile). A small budget means fewer workers
    rather than tiny tiles.

    Raises
    ------
    ConfigError
        The budget cannot hold the main process and one worker.
    """
    from ..errors import ConfigError

    usable = worker_share(max_memory, 1)
    need = WORKER_BASE_BYTES + MIN_TILE_BYTES  # the least: one worker without files kept open
    if usable < need:
        raise ConfigError(
            f"--max-memory {max_memory} is too small: the main process and one worker need at least "
            f"{(MAIN_PROCESS_BYTES + need) / 1e9:.2f} GB"
        )
    n = int(max(1, min(cores, usable // (max(base_bytes, WORKER_BASE_BYTES) + MIN_TILE_BYTES))))
    return n, worker_share(max_memory, n)


#: Tile sides are multiples of this (the COG block size of the products divides it).
TILE_QUANTUM = 64
MIN_TILE = 64


def bytes_per_pixel(n_obs: int, n_periods: int, provenance: bool = False) -> int:
    """Peak bytes per tile pixel while a tile is processed.

    Per observation: raw DN (10 x uint16 + SCL uint8 = 21 B), offset-corrected int16 cube
    (20 B), validity/flags (2 B), PV+IR2 float32 (4 B), and per-band scratch in the
    conversion (4 B): 51 B. Per period accumulator: 4 uint32 counts + 4 float64 sums x 10
    bands = 336 B (+1 for the window). Finished products: 54 float32 layers, encoded copies and
    the blue-filter scratch: ~600 B. With ``provenance`` (``--provenance``) also
    :data:`PROVENANCE_OBS_BYTES` per observation and :data:`PROVENANCE_LABEL_BYTES` per period
    (+1 for the window).
    """
    nb = len(BANDS)
    per_obs = 2 * nb + 1 + 2 * nb + 2 + 4 + 4
    per_period = 4 * 4 + 4 * nb * 8
    if provenance:
        per_obs += PROVENANCE_OBS_BYTES
        per_period += PROVENANCE_LABEL_BYTES
    return n_obs * per_obs + (n_periods + 1) * per_period + 600


def tile_side_for_budget(
    max_memory: str | int, n_workers: int, n_obs: int, n_periods: int, max_tile: int
) -> int:
    """Largest tile side (multiple of 64, <= ``max_tile``) whose peak fits the budget.

    The budget less the main process (``MAIN_PROCESS_BYTES``) is shared by ``n_workers``
    processes, each with ``WORKER_BASE_BYTES`` of
    resident memory and one tile in flight; 30 % headroom is kept for fragmentation and I/O
    buffers.
    """
    return tile_side_for_share(worker_share(max_memory, n_workers), n_obs, n_periods, max_tile)


def tile_side_for_share(memory_per_worker: int, n_obs: int, n_periods: int, max_tile: int, *,
                        base_bytes: int = WORKER_BASE_BYTES, provenance: bool = False) -> int:
    """Largest tile side (px, multiple of 64, <= ``max_tile``) for a worker of
    ``memory_per_worker`` bytes (its share of the budget, :func:`worker_share`).

    The worker's resident memory (``base_bytes``: :func:`worker_base_bytes`) is subtracted;
    30 % of the rest is kept as headroom for fragmentation and I/O buffers; the rest holds
    :func:`bytes_per_pixel` (with ``provenance``) per tile pixel.
    """
    per_worker = int(memory_per_worker) - int(base_bytes)
    if per_worker <= 0:
        return MIN_TILE
    pixels = 0.7 * per_worker / bytes_per_pixel(n_obs, n_periods, provenance)
    side = int(math.sqrt(max(pixels, 0)) // TILE_QUANTUM * TILE_QUANTUM)
    return max(MIN_TILE, min(side, max_tile))


@dataclass(frozen=True)
class Tile:
    """One tile of the target grid: its index, pixel offsets and GeoBox."""

    row: int
    col: int
    row_off: int
    col_off: int
    geobox: GeoBox
    #: The name encodes the offsets and shape (a tile of a :func:`layout_tiles` layout that is
    #: not the plain grid): a tile store never takes such a tile for another one.
    exact_name: bool = False

    @property
    def name(self) -> str:
        if self.exact_name:
            h, w = self.shape
            return f"r{self.row:04d}_c{self.col:04d}_y{self.row_off}_x{self.col_off}_{h}x{w}"
        return f"r{self.row:04d}_c{self.col:04d}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.geobox.shape.y, self.geobox.shape.x)


def plan_tiles(geobox: GeoBox, side: int) -> list[Tile]:
    """Split ``geobox`` into tiles of ``side`` x ``side`` pixels (edge tiles smaller)."""
    ny, nx = geobox.shape.y, geobox.shape.x
    tiles = []
    for r, y0 in enumerate(range(0, ny, side)):
        for c, x0 in enumerate(range(0, nx, side)):
            sub = geobox[y0 : min(y0 + side, ny), x0 : min(x0 + side, nx)]
            tiles.append(Tile(r, c, y0, x0, sub))
    return tiles


#: Source COG block side (px; Sentinel-2 COGs and the simulator's: 256 px blocks, and the 2x
#: overviews the 10 m bands are read from): tile boundaries on multiples of it decode each block
#: of a file aligned with the grid once.
BLOCK_PX = 256
#: Tiles may hold this share more pixels than ``side`` x ``side`` (within the budget's 30 %
#: headroom), so that a grid slightly larger than a whole number of tiles has no sliver tiles.
MERGE_SLIVER = 0.1
#: Environment variable choosing the processing-tile layout of a composite: ``balanced``
#: (default, :func:`layout_tiles`: fewest tiles, near-equal, no slivers) or ``grid`` (:func:`plan_tiles`, tiles of the side from the
#: origin and slivers at the edges; the layout before issue 14, kept for comparison).
TILE_LAYOUT_ENV = "SOILSUITE_TILE_LAYOUT"
TILE_LAYOUTS = ("balanced", "grid")


def split_axis(n: int, k: int, *, block: int = BLOCK_PX, quantum: int = TILE_QUANTUM) -> list[int]:
    """``n`` pixels in ``k`` near-equal parts (the larger first): with boundaries on multiples
    of ``block`` (the source COG blocks) if no part is then more than 3 % above ``n / k``, else
    on multiples of ``quantum`` under the same condition, else as equal as whole pixels allow."""
    if k <= 1:
        return [n]
    for q in (block, quantum):
        units, extra_px = divmod(n, q)
        if units < k:
            continue
        base, extra = divmod(units, k)
        sizes = [(base + (i < extra)) * q for i in range(k)]
        sizes[-1] += extra_px
        if max(sizes) <= 1.03 * -(-n // k) and min(sizes) > 0:
            return sizes
    return [n // k + (i < n % k) for i in range(k)]


def layout_sizes(ny: int, nx: int, side: int, *, merge: float = MERGE_SLIVER) -> tuple[list[int], list[int]]:
    """Row heights and column widths (px) of the fewest tiles of at most ``side`` x ``side``
    pixels each (the memory budget is per pixel; ``merge``: up to 10 % more, within its 30 %
    headroom), no tile longer than twice its width or height (unless the grid is that thin).

    Ties go to block-aligned parts (:func:`split_axis`), then to squarer tiles. The plain grid
    (:func:`plan_tiles`) is kept where it has no more tiles.
    """
    limit = side * side * (1 + merge)
    best = None
    for ky in range(1, ny + 1):
        rows = split_axis(ny, ky)
        h = max(rows)
        if 2 * h < side and best is not None:
            break  # thinner rows only add tiles
        kx = max(1, -(-nx * h // int(limit)))
        while kx <= nx:
            cols = split_axis(nx, kx)
            if h * max(cols) <= limit:
                break
            kx += 1
        else:
            continue
        w = max(cols)
        if max(h, w) > 2 * min(h, w) and min(h, w) != (ny if h <= w else nx):
            continue  # too elongated (unless the grid itself is that thin)
        aligned = all(v % BLOCK_PX == 0 for v in (*rows[:-1], *cols[:-1]))
        key = (ky * kx, not aligned, abs(h - w))
        if best is None or key < best[0]:
            best = (key, rows, cols)
    grid_rows = [min(side, ny - y) for y in range(0, ny, side)]
    grid_cols = [min(side, nx - x) for x in range(0, nx, side)]
    if best is None or len(grid_rows) * len(grid_cols) <= best[0][0]:
        return grid_rows, grid_cols
    return best[1], best[2]


def layout_tiles(geobox: GeoBox, side: int) -> list[Tile]:
    """Split ``geobox`` into the fewest tiles the memory budget allows (:func:`layout_sizes`:
    each at most ``side`` x ``side`` pixels, 10 % tolerance; near-equal; on COG block
    boundaries where possible; no slivers). Where that is the plain grid (:func:`plan_tiles`),
    the tiles are the grid's, names included; otherwise each tile's name holds its offsets and
    shape (:attr:`Tile.exact_name`), so that a tile store of another layout is never reused
    for it.
    """
    rows, cols = layout_sizes(geobox.shape.y, geobox.shape.x, side)
    grid = plan_tiles(geobox, side)
    if [t.shape for t in grid] == [(h, w) for h in rows for w in cols]:
        return grid
    tiles = []
    y0 = 0
    for r, h in enumerate(rows):
        x0 = 0
        for c, w in enumerate(cols):
            tiles.append(Tile(r, c, y0, x0, geobox[y0:y0 + h, x0:x0 + w], exact_name=True))
            x0 += w
        y0 += h
    return tiles


def tile_layout(layout: str | None = None) -> str:
    """The processing-tile layout: ``layout`` if given, else ``$SOILSUITE_TILE_LAYOUT``, else
    ``balanced``.

    Raises
    ------
    ConfigError
        A value that is not one of :data:`TILE_LAYOUTS` (naming where it came from).
    """
    from ..errors import choice_or_env

    return choice_or_env(layout, TILE_LAYOUT_ENV, "balanced", TILE_LAYOUTS, "tile layout")
