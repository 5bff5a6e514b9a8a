"""The output layout (io/layout.py): paths, the processing-tile store, and the run plan."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox

from soilsuite.io.layout import (
    TileStore,
    is_composite_output,
    product_path,
    run_record_path,
    tile_product_path,
    work_dir,
)

START, END = dt.date(2021, 1, 1), dt.date(2022, 12, 31)


def _grid(h: int = 150, w: int = 100) -> GeoBox:
    return GeoBox((h, w), Affine(20.0, 0, 500000.0, 0, -20.0, 5800000.0), "EPSG:32633")


def test_output_paths(tmp_path):
    assert product_path(tmp_path, "window", "BSF") == tmp_path / "BSF.tif"
    assert product_path(tmp_path, "2021", "BSF", "tiles") == tmp_path / "2021" / "BSF.vrt"
    assert tile_product_path(tmp_path, "2021", "MASK", "r0001_c0002") == tmp_path / "2021/tiles/r0001_c0002/MASK.tif"
    assert run_record_path(tmp_path) == tmp_path / "run.json"
    assert work_dir(tmp_path) == tmp_path / ".work"
    assert is_composite_output("2021/BSF.tif") and is_composite_output(".work/tiles/side64/x/done")
    assert is_composite_output("run.json") and not is_composite_output("notes.txt")


def test_tile_store_write_read_done(tmp_path):
    store = TileStore(tmp_path, 64)
    a = np.arange(2 * 5 * 7, dtype="int16").reshape(2, 5, 7)
    m = np.arange(35, dtype="uint8").reshape(5, 7)
    assert not store.is_done("r0000_c0001")
    d = store.write("r0000_c0001", {"window": {"SRC_MEAN": a, "MASK": m}, "2021": {"MASK": m + 1}}, {"n_obs": 3})
    assert d == tmp_path / ".work" / "tiles" / "side64" / "r0000_c0001"
    assert store.is_done("r0000_c0001") and store.done_info("r0000_c0001") == {"n_obs": 3}
    assert not list(d.parent.glob("*.tmp"))  # written under a temporary name, then renamed
    np.testing.assert_array_equal(store.read("r0000_c0001", "window", "SRC_MEAN"), a)
    np.testing.assert_array_equal(store.read("r0000_c0001", "2021", "MASK"), m + 1)
    part = store.read("r0000_c0001", "window", "SRC_MEAN", (slice(1, 3), slice(2, 6)))
    np.testing.assert_array_equal(part, a[:, 1:3, 2:6])
    # rewriting replaces the whole folder
    store.write("r0000_c0001", {"window": {"MASK": m * 0}}, {"n_obs": 0})
    assert not store.path("r0000_c0001", "window", "SRC_MEAN").exists()
    assert store.done_info("r0000_c0001") == {"n_obs": 0}
    # picklable: it travels to Dask workers
    import pickle

    assert pickle.loads(pickle.dumps(store)) == store


def test_tile_store_resume_side(tmp_path):
    assert TileStore.finished_sides(tmp_path) == []
    assert TileStore.resume(tmp_path, 256).side == 256  # nothing to resume
    (TileStore(tmp_path, 192).tile_dir("r0000_c0000")).mkdir(parents=True)
    assert TileStore.resume(tmp_path, 256).side == 256  # a folder without its marker is not finished
    TileStore(tmp_path, 192).write("r0000_c0000", {"window": {"VPC": np.zeros((2, 2), "uint16")}})
    TileStore(tmp_path, 320).write("r0000_c0000", {"window": {"VPC": np.zeros((2, 2), "uint16")}})
    assert TileStore.finished_sides(tmp_path) == [192, 320]
    assert TileStore.resume(tmp_path, 256).side == 192  # the largest side that fits the budget
    assert TileStore.resume(tmp_path, 128).side == 128  # none fits: start over in side128/


def test_run_plan_derives_everything_once(tmp_path):
    from soilsuite.pipeline.composite import build_config
    from soilsuite.pipeline.plan import plan_run
    from soilsuite.pipeline.tiles import tile_side_for_budget, worker_share

    cfg = build_config(source="x", start=START, end=END, out=tmp_path, scheduler="sync", max_memory="2GB",
                       tile_size=64, layout="tiles", cog_tile_px=64)
    gb = _grid()
    plan = plan_run(cfg, gb, n_obs=40, periods=["2021", "2022"])
    assert plan.workers == 1 and plan.memory_per_worker == worker_share("2GB", 1)
    assert plan.tile_side == tile_side_for_budget("2GB", 1, 40, 2, 64) == 64
    # 150 x 100 px: the fewest tiles of at most 64 x 64 px (+10 %), near-equal (tiles.layout_tiles); the
    # names hold offsets and shapes (not the plain 64 px grid's 6 tiles)
    assert [t.name for t in plan.tiles] == [f"r{r:04d}_c{c:04d}_y{75 * r}_x{50 * c}_75x50" for r in range(2)
                                            for c in range(2)]
    assert plan.store == TileStore(tmp_path, 64) and plan.labels == ["window", "2021", "2022"]
    assert plan.layout == "tiles" and plan.cog_tile_px == 64 and len(plan.cog_tiles) == 6
    rec = json.loads(json.dumps(plan.to_record()))
    assert rec["tile_side"] == 64 and rec["tiles"] == 4 and rec["tile_store"] == ".work/tiles/side64"
    assert rec["grid"]["shape"] == [150, 100] and rec["cog_tiles"][-1] == "r0002_c0001"
    # an interrupted run's finished tiles of a side that fits are reused
    TileStore(tmp_path, 128).write("r0000_c0000", {"window": {}})
    cfg2 = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"tile_size": 512})})
    assert plan_run(cfg2, gb, 40, []).tile_side == 128
