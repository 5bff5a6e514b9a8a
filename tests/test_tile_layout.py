"""The processing-tile layout (pipeline/tiles.py ``layout_tiles``; issue 14 item 3).

The fewest tiles the memory budget allows, near-equal, no slivers: checked against the plain
grid layout (``plan_tiles``) case by case and on random grids, and a composite written with
each layout must give byte-identical products.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from soilsuite.pipeline.tiles import BLOCK_PX, layout_sizes, layout_tiles, plan_tiles, split_axis


def _grid_count(ny: int, nx: int, side: int) -> int:
    return -(-ny // side) * -(-nx // side)


@pytest.mark.parametrize(("ny", "nx", "side", "rows", "cols"), [
    (600, 600, 576, [600], [600]),  # was 576 + a 24 px sliver: 4 tiles, now one (1.09 x the pixels)
    (600, 600, 512, [600], [300, 300]),  # --workers 1 on the 600 px bench: 2 tiles, not 4
    (600, 600, 256, [300, 300], [200, 200, 200]),  # --workers 2: 6 tiles, not 9
    (1000, 1000, 512, [512, 488], [512, 488]),  # the plain grid is already the fewest: kept
    (1000, 1000, 256, [334, 333, 333], [200] * 5),  # 15 tiles, not 16
    (2000, 2000, 1024, [1024, 976], [1024, 976]),  # block-aligned
    (96, 96, 64, [64, 32], [64, 32]),  # as many as the grid: the grid
    (40, 2000, 256, [40], [1024, 976]),  # a thin grid: long tiles
])
def test_layout_cases(ny, nx, side, rows, cols):
    assert layout_sizes(ny, nx, side) == (rows, cols)


def test_layout_random_grids():
    rng = random.Random(5)
    for _ in range(120):
        ny, nx = rng.randint(1, 3000), rng.randint(1, 3000)
        side = rng.choice([64, 128, 192, 256, 320, 512, 576, 1024])
        rows, cols = layout_sizes(ny, nx, side)
        assert sum(rows) == ny and sum(cols) == nx and min(rows) > 0 and min(cols) > 0
        assert len(rows) * len(cols) <= _grid_count(ny, nx, side)  # never more tiles than the grid
        h, w = max(rows), max(cols)
        assert h * w <= 1.1 * side * side, (ny, nx, side, rows, cols)  # the budget (+10 %, in its headroom)
        if (rows, cols) != ([min(side, ny - y) for y in range(0, ny, side)],
                            [min(side, nx - x) for x in range(0, nx, side)]):
            # near-equal parts, no tile more than twice as long as wide unless the grid is that thin
            assert max(rows) - min(rows) <= max(0.03 * max(rows) + 2, 2) + 64 and max(cols) - min(cols) <= (
                max(0.03 * max(cols) + 2, 2) + 64)
            assert max(h, w) <= 2 * min(h, w) or min(h, w) in (ny, nx)
            # no layout with fewer tiles fits the budget (exhaustive over equal splits)
            n = len(rows) * len(cols)
            for ky, kx in itertools.product(range(1, 40), range(1, 40)):
                if ky * kx < n:
                    eh, ew = -(-ny // ky), -(-nx // kx)
                    ok_aspect = max(eh, ew) <= 2 * min(eh, ew) or min(eh, ew) in (ny, nx)
                    assert not (eh * ew <= side * side and ok_aspect and ky <= ny and kx <= nx), (ny, nx, side, ky, kx)


def test_split_axis_prefers_block_boundaries():
    assert split_axis(1000, 4) == [256, 256, 256, 232]
    assert all(v % BLOCK_PX == 0 for v in split_axis(1000, 4)[:-1])
    assert split_axis(600, 2) == [300, 300]  # 256 + 344 is too unequal
    assert split_axis(600, 3) == [200, 200, 200]


def test_tiles_cover_the_grid_once():
    from odc.geo.geobox import GeoBox

    gb = GeoBox.from_bbox((400000, 5800000, 412000, 5812000), "EPSG:32633", resolution=20)  # 600 px
    tiles = layout_tiles(gb, 256)
    assert len(tiles) == 6 and all(t.name.endswith(f"_{t.shape[0]}x{t.shape[1]}") for t in tiles)
    seen = set()
    for t in tiles:
        assert t.geobox == gb[t.row_off:t.row_off + t.shape[0], t.col_off:t.col_off + t.shape[1]]
        cells = {(y, x) for y in range(t.row_off, t.row_off + t.shape[0]) for x in range(t.col_off, t.col_off + t.shape[1])}
        assert not cells & seen
        seen |= cells
    assert len(seen) == 600 * 600
    assert [t.name for t in layout_tiles(gb, 64 * 10)] == ["r0000_c0000"]  # one tile: the grid's name
    assert layout_tiles(gb[:96, :96], 64) == plan_tiles(gb[:96, :96], 64)


def test_layouts_give_identical_products(sim_archive, tmp_path, monkeypatch):
    """The same composite with the grid layout (4 tiles, slivers) and the balanced one (2 tiles)."""
    from soilsuite.pipeline.composite import composite

    w, s, e, n = sim_archive.bbox_lonlat
    bbox = (w + 0.15 * (e - w), s + 0.15 * (n - s), w + 0.85 * (e - w), s + 0.85 * (n - s))
    runs = {}
    for layout in ("grid", "balanced"):
        monkeypatch.setenv("SOILSUITE_TILE_LAYOUT", layout)
        out = tmp_path / layout
        composite(sim_archive.catalog_path, out=out, start="2021-04-01", end="2021-06-30", bbox=bbox,
                  scheduler="sync", tile_size=64)
        runs[layout] = out
    plans = {k: json.loads((v / "run.json").read_text())["plan"] for k, v in runs.items()}
    assert plans["grid"]["tiles"] == 4 and plans["balanced"]["tiles"] == 2, plans
    tifs = {k: {p.relative_to(v).as_posix(): p.read_bytes() for p in sorted(Path(v).rglob("*.tif"))}
            for k, v in runs.items()}
    assert len(tifs["grid"]) >= 9 and sorted(tifs["grid"]) == sorted(tifs["balanced"])
    assert [k for k in tifs["grid"] if tifs["grid"][k] != tifs["balanced"][k]] == []
