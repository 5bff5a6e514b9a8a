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


def _bytes(max_memory: str | int) -> int:
    return parse_bytes(max_memory) if isinstance(max_memory, str) else int(max_memory)


def worker_share(max_memory: str | int, n_workers: int) -> int:
    """Bytes of the budget for each of ``n_workers`` workers: the budget less the main process
    (``MAIN_PROCESS_BYTES``), shared equally. Also each local worker's Dask memory limit."""
    return int((_bytes(max_memory) - MAIN_PROCESS_BYTES) // max(1, n_workers))


def workers_for_budget(max_memory: str | int, cores: int) -> tuple[int, int]:
    """Number of worker processes (<= ``cores``) and memory per worker that fit the budget.

    The budget covers the main process (``MAIN_PROCESS_BYTES``) and every worker
    (``WORKER_BASE_BYTES`` + one tile). A small budget means fewer workers rather than tiny
    tiles.

    Raises
    ------
    ConfigError
        The budget cannot hold the main process and one worker.
    """
    from ..errors import ConfigError

    usable = worker_share(max_memory, 1)
    need = WORKER_BASE_BYTES + MIN_TILE_BYTES
    if usable < need:
        raise ConfigError(
            f"--max-memory {max_memory} is too small: the main process and one worker need at least "
            f"{(MAIN_PROCESS_BYTES + need) / 1e9:.2f} GB"
        )
    n = int(max(1, min(cores, usable // need)))
    return n, worker_share(max_memory, n)


#: Tile sides are multiples of this (the COG block size of the products divides it).
TILE_QUANTUM = 64
MIN_TILE = 64


def bytes_per_pixel(n_obs: int, n_periods: int) -> int:
    """Peak bytes per tile pixel while a tile is processed.

    Per observation: raw DN (10 x uint16 + SCL uint8 = 21 B), offset-corrected int16 cube
    (20 B), validity/flags (2 B), PV+IR2 float32 (4 B), and per-band scratch in the
    conversion (4 B): 51 B. Per period accumulator: 4 uint32 counts + 4 float64 sums x 10
    bands = 336 B (+1 for the window). Finished products: 54 float32 layers, encoded copies and
    the blue-filter scratch: ~600 B.
    """
    nb = len(BANDS)
    per_obs = 2 * nb + 1 + 2 * nb + 2 + 4 + 4
    per_period = 4 * 4 + 4 * nb * 8
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


def tile_side_for_share(memory_per_worker: int, n_obs: int, n_periods: int, max_tile: int) -> int:
    """Largest tile side (px, multiple of 64, <= ``max_tile``) for a worker of
    ``memory_per_worker`` bytes (its share of the budget, :func:`worker_share`).

    The worker's resident memory (``WORKER_BASE_BYTES``) is subtracted; 30 % of the rest is
    kept as headroom for fragmentation and I/O buffers.
    """
    per_worker = int(memory_per_worker) - WORKER_BASE_BYTES
    if per_worker <= 0:
        return MIN_TILE
    pixels = 0.7 * per_worker / bytes_per_pixel(n_obs, n_periods)
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

    @property
    def name(self) -> str:
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
