"""The composite's fixed costs cut by issue 14 (bench/bench_overhead.py): caches that must give
exactly what the uncached code gives, and no worker process for a one-worker run."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from soilsuite.pipeline import composite as C
from soilsuite.pipeline.tiles import plan_tiles
from soilsuite.sensors import SENTINEL2_L2A
from soilsuite.sources import fastread as F
from soilsuite.sources import stac as S


@pytest.fixture(autouse=True)
def _fresh_reader():
    F.close_datasets()
    yield
    F.close_datasets()


@pytest.fixture(scope="module")
def items_assets(sim_archive):
    cfg = C.build_config(source=str(sim_archive.catalog_path), start=dt.date(2021, 5, 1), end=dt.date(2021, 6, 15),
                         out=Path("unused"))
    items = C.select_items(cfg)[1].items
    return items, S.resolve_assets(items), C.target_geobox(cfg, items)


def test_parse_cache_is_odc_stacs_parse_and_follows_item_changes(items_assets):
    import odc.stac

    items, assets, _ = items_assets
    F._PARSED.clear()
    first = F._parse(items, assets, SENTINEL2_L2A)
    again = F._parse(items, assets, SENTINEL2_L2A)
    assert all(a is b for a, b in zip(first, again, strict=True))  # served from the cache
    fresh = list(odc.stac.parse_items(items, cfg=SENTINEL2_L2A.stac_cfg(assets)))
    assert first == fresh  # frozen dataclasses: field by field
    # an item with the same id but another file is parsed again
    moved = items[0].clone()
    key = assets["B04"]
    moved.assets[key].href = moved.assets[key].get_absolute_href().replace(".tif", "_other.tif")
    got = F._parse([moved, *items[1:]], assets, SENTINEL2_L2A)
    assert got[0] is not first[0] and got[0][key].uri.endswith("_other.tif")
    assert all(a is b for a, b in zip(got[1:], first[1:], strict=True))


def test_roi_cache_equals_odc_geo(items_assets):
    from odc.geo.converters import rio_geobox
    from odc.geo.overlap import compute_reproject_roi

    items, assets, gb = items_assets
    srcs = []
    for it in items[:4]:
        for band in ("B02", "B05", "SCL"):
            with rasterio.open(it.assets[assets[band]].get_absolute_href()) as r:
                srcs.append(rio_geobox(r))
    F._ROIS.clear()
    for tile in plan_tiles(gb, 32):
        for dst in (tile.geobox, tile.geobox.pad(5)):
            for src in srcs:
                for ttol in (0.9, 0.05):
                    want = compute_reproject_roi(src, dst, ttol=ttol)
                    got = F._roi(src, dst, ttol)
                    assert F._roi(src, dst, ttol) is got
                    assert (got.roi_src, got.roi_dst, got.paste_ok, got.read_shrink, got.scale) == \
                           (want.roi_src, want.roi_dst, want.paste_ok, want.read_shrink, want.scale)
                    assert got.transform.linear == want.transform.linear
    # the 10 m and 20 m files of two MGRS tiles: a handful of distinct grids, not one per file
    assert len(set(srcs)) <= 4 < len(srcs)


def test_ten_metre_band_read_from_its_overview_keeps_only_the_overview_open(tmp_path, monkeypatch):
    """A 10 m COG with a 2x overview is read from the overview (odc-stac's rule); the reader
    then keeps only that dataset open, and the values are the overview's, cold or warm."""
    from odc.geo.geobox import GeoBox
    from odc.loader.types import RasterLoadParams

    monkeypatch.delenv(F.OPEN_FILES_ENV, raising=False)
    rng = np.random.default_rng(4)
    a = rng.integers(1, 10000, (512, 512)).astype(np.uint16)
    path = tmp_path / "b04.tif"
    with rasterio.open(path, "w", driver="COG", width=512, height=512, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=from_origin(400000, 5800000, 10, 10), blocksize=128,
                       overview_resampling="nearest") as d:
        d.write(a, 1)
    with rasterio.open(path, overview_level=0) as r:
        ovr = r.read(1)
    assert ovr.shape == (256, 256)
    gb = GeoBox((100, 120), from_origin(400000 + 20 * 30, 5800000 - 20 * 40, 20, 20), "EPSG:32633")
    params = RasterLoadParams("uint16", fill_value=0, resampling="average")
    for _ in range(2):  # cold, then from the kept dataset and the cached facts
        roi, pix = F._read(str(path), 1, gb, params)
        assert roi == (slice(0, 100), slice(0, 120))
        np.testing.assert_array_equal(pix, ovr[40:140, 30:150])
        assert [k[1] for k in F._DATASETS.open] == [0]  # the overview only


def test_one_worker_runs_in_this_process(monkeypatch):
    """``--workers 1`` (or a budget that fits one worker) starts no worker process: it would run
    the tiles one after the other as this process does, after seconds of start-up."""
    import distributed

    from soilsuite.config import EngineOptions
    from soilsuite.pipeline.cluster import ENV_SCHEDULER, dask_client

    monkeypatch.delenv(ENV_SCHEDULER, raising=False)
    monkeypatch.setattr(distributed, "LocalCluster", lambda *a, **k: pytest.fail("a worker process was spawned"))
    with dask_client(EngineOptions(max_memory="2GB", n_workers=1), n_tasks=9) as client:
        assert client is None
    with dask_client(EngineOptions(max_memory="2GB"), n_workers=1, n_tasks=9) as client:
        assert client is None
    with pytest.raises(pytest.fail.Exception, match="spawned"), \
            dask_client(EngineOptions(max_memory="2GB", n_workers=2), n_tasks=9):
        pass


def test_style_ranges_read_once_per_file_version(tmp_path, monkeypatch):
    from soilsuite.io import qgis as Q

    path = tmp_path / "BSF.tif"

    def write(values):
        with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=1, dtype="float32",
                           nodata=float("nan"), crs="EPSG:32633", transform=from_origin(0, 0, 20, 20)) as d:
            d.write(values[None])

    rng = np.random.default_rng(7)
    v1 = rng.random((30, 40)).astype(np.float32)
    v1[:5] = np.nan
    write(v1)
    ok = v1[np.isfinite(v1)].astype("float64")
    want = tuple(float(x) for x in np.percentile(ok, (2.0, 98.0)))
    assert Q._percentiles(path, [1]) == pytest.approx(want, rel=0, abs=0)
    real = Q._percentiles_of
    monkeypatch.setattr(Q, "_percentiles_of", lambda *a: pytest.fail("read again"))
    assert Q._percentiles(path, [1]) == pytest.approx(want, rel=0, abs=0)  # cached
    time.sleep(0.01)
    write(v1 * 2)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    monkeypatch.setattr(Q, "_percentiles_of", real)
    assert Q._percentiles(path, [1]) == pytest.approx(tuple(2 * x for x in want), rel=1e-6)
