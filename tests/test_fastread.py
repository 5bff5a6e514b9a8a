"""The direct read path (sources/fastread.py) against odc-stac, and the 2 x 2 mean kernel.

The fast path must give the arrays odc-stac gives (``load_cube``), byte for byte: on a small
simulated archive with two overlapping MGRS tiles, one of whose files was rewritten with
different values and scattered 10 m nodata (so the fusion order and partial 2 x 2 blocks
matter), 10 m files with and without a 2x overview, tiles with the SCL halo and edge tiles,
and a SAFE (JPEG2000) archive. The pinned checksums of ``tests/test_pipeline.py`` are computed
with the fast path on (the default).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from soilsuite.errors import ConfigError, InputError
from soilsuite.kernels.resample import block_mean_2x2, block_mean_2x2_reference
from soilsuite.pipeline import composite as C
from soilsuite.pipeline.tiles import plan_tiles
from soilsuite.sentinel2 import BANDS
from soilsuite.sources import fastread as F
from soilsuite.sources import stac as S

START, END = dt.date(2021, 5, 1), dt.date(2021, 5, 12)


@pytest.fixture(autouse=True)
def _close_kept_files():
    """Each test starts and ends with no file kept open by the reader (F.close_datasets)."""
    F.close_datasets()
    yield
    F.close_datasets()


# ----------------------------------------------------------------------------- the kernel
def _random(rng, h, w, nodata_share, lo=1, hi=12000):
    a = rng.integers(lo, hi, (h, w)).astype(np.uint16)
    a[rng.random((h, w)) < nodata_share] = 0
    return a


def test_block_mean_kernel_equals_reference():
    rng = np.random.default_rng(1)
    for share in (0.0, 0.3, 0.9, 1.0):
        for lo, hi in ((1, 12000), (1, 4), (65000, 65536)):  # ties, and sums beyond uint16
            a = _random(rng, 2 * 37, 2 * 53, share, lo, hi)
            got = block_mean_2x2(a, 0)
            np.testing.assert_array_equal(got, block_mean_2x2_reference(a, 0))
    # hand-made blocks: all nodata -> nodata; 1, 2, 3 valid pixels; rounding half up
    a = np.array([[0, 0, 5, 0, 1, 2, 7, 8],
                  [0, 0, 0, 0, 0, 0, 8, 0]], np.uint16)
    np.testing.assert_array_equal(block_mean_2x2(a, 0), [[0, 5, 2, 8]])  # (1+2)/2=1.5 -> 2; 23/3=7.67 -> 8
    with pytest.raises(ValueError, match="even shape"):
        block_mean_2x2(np.zeros((3, 4), np.uint16), 0)


def test_block_mean_kernel_against_gdal_average():
    """GDAL's ``average`` warp (odc-stac's 10 m rule without an overview) is the same mean,
    except that its float weights round a few exact half-way means down: the kernel differs
    from GDAL only there, by 1 DN (documented in docs/performance.md)."""
    rng = np.random.default_rng(2)
    n_px = n_diff = 0
    for trial in range(6):
        h, w = 2 * int(rng.integers(40, 120)), 2 * int(rng.integers(40, 120))
        a = _random(rng, h, w, 0.3, 1, 4 if trial % 2 else 12000)
        with MemoryFile() as mf:
            with mf.open(driver="GTiff", width=w, height=h, count=1, dtype="uint16", crs="EPSG:32633",
                         transform=from_origin(400000, 5800000, 10, 10), nodata=0) as d:
                d.write(a, 1)
            with mf.open() as src:
                j0, i0 = int(rng.integers(0, 10)), int(rng.integers(0, 10))
                ny, nx = h // 2 - j0 - 3, w // 2 - i0 - 2
                gdal = np.zeros((ny, nx), np.uint16)
                rasterio.warp.reproject(rasterio.band(src, 1), gdal, src_nodata=0, dst_crs="EPSG:32633",
                                        dst_transform=from_origin(400000 + 20 * i0, 5800000 - 20 * j0, 20, 20),
                                        dst_nodata=0, resampling=Resampling.average)
        sub = a[2 * j0:2 * (j0 + ny), 2 * i0:2 * (i0 + nx)]
        got = block_mean_2x2(sub, 0)
        blocks = sub.reshape(ny, 2, nx, 2).astype(np.int64)
        n = (blocks != 0).sum(axis=(1, 3))
        s = blocks.sum(axis=(1, 3))
        tie = (n > 0) & ((2 * s) % (2 * np.maximum(n, 1)) == n)  # the mean is exactly x.5
        diff = got != gdal
        assert not (diff & ~tie).any()
        assert (got.astype(int) - gdal)[diff].tolist() == [1] * int(diff.sum())
        n_px += got.size
        n_diff += int(diff.sum())
    assert n_diff <= 1e-3 * n_px, (n_diff, n_px)


# ----------------------------------------------------------------------------- archives
def _rewrite(path: Path, rng, cog: bool, scl: bool = False) -> None:
    """Replace an asset by different values (and, for DN, scattered nodata at its own
    resolution), as a COG with overviews or a tiled GeoTIFF without."""
    with rasterio.open(path) as src:
        a, prof = src.read(1), src.profile
    if scl:
        a = np.where(rng.random(a.shape) < 0.2, np.uint8(9), a).astype(a.dtype)
    else:
        a = np.where(a > 0, a + 37, 0).astype(a.dtype)
        a[rng.random(a.shape) < 0.3] = 0
    prof.update(driver="COG" if cog else "GTiff")
    for k in ("blockxsize", "blockysize", "tiled", "interleave"):
        prof.pop(k, None)
    extra = {"blocksize": 128, "overview_resampling": "nearest"} if cog else {"tiled": True, "blockxsize": 64,
                                                                            "blockysize": 64}
    path.unlink()
    with rasterio.open(path, "w", **prof, **extra) as dst:
        dst.write(a, 1)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """160 px, two MGRS tiles overlapping (the narrow one first in a day's order), 2 days; in the
    narrow item of the first day, red without an overview (GDAL average path), nir with one,
    SCL with other classes."""
    from soilsuite.sources.simulate import simulate

    sim = simulate(tmp_path_factory.mktemp("fast") / "archive", size=160, start=START, end=END, seed=5)
    cfg = C.build_config(source=str(sim.catalog_path), start=START, end=END, out=Path("unused"))
    items = C.select_items(cfg)[1].items
    narrow = min(items, key=lambda it: it.properties.get("proj:shape", [0, 1e9])[1] if "proj:shape" in
                 it.properties else rasterio.open(it.assets["scl"].get_absolute_href()).width)
    rng = np.random.default_rng(0)
    folder = Path(narrow.assets["red"].get_absolute_href()).parent
    _rewrite(folder / "red.tif", rng, cog=False)
    _rewrite(folder / "nir.tif", rng, cog=True)
    _rewrite(folder / "scl.tif", rng, cog=True, scl=True)
    with rasterio.open(folder / "nir.tif") as r:
        assert r.overviews(1)[0] == 2
    with rasterio.open(folder / "red.tif") as r:
        assert r.overviews(1) == []
    assets = S.resolve_assets(items)
    return sim, items, assets, C.target_geobox(cfg, items), narrow


def _same(items, grid, assets, bands, **kw):
    ref = S.load_cube(items, grid, assets, chunks=None, bands=bands)
    got = F.load_native(items, grid, assets, bands=bands, **kw)
    for b in bands:
        assert got[b].dtype == ref[b].dtype, b
        np.testing.assert_array_equal(got[b], ref[b].values, err_msg=b)
    return got


def test_fast_path_equals_odc_stac_on_every_tile(archive):
    sim, items, assets, gb, narrow = archive
    assert F.is_native_grid(items, gb, assets, (*BANDS, "SCL"))
    n_overlap = 0
    for tile in plan_tiles(gb, 64):  # 3 x 3 tiles, the last row/column 32 px: edge tiles
        halo = tile.geobox.pad(5)
        its = C._items_over(items, halo)
        got = _same(its, tile.geobox, assets, BANDS)
        _same(its, halo, assets, ("SCL",))
        n_overlap += sum(it.id == narrow.id for it in its)
        assert got["B04"].shape[0] == len(S.observation_meta(its, assets).dates)
    assert n_overlap > 0  # the rewritten item took part
    # the whole grid at once, with two reader threads
    _same(items, gb, assets, (*BANDS, "SCL"), threads=2)


def test_fusion_order_and_partial_blocks_are_exercised(archive):
    """The rewritten narrow item wins its overlap (it is first in the day's order), and its
    scattered 10 m nodata gives partial 2 x 2 blocks: the comparison above is not vacuous."""
    sim, items, assets, gb, narrow = archive
    got = F.load_native(items, gb, assets, bands=("B04", "B08"))
    with rasterio.open(narrow.assets["red"].get_absolute_href()) as r:
        red = r.read(1)
    day0 = got["B04"][0, :, : red.shape[1] // 2]
    blocks = red.reshape(red.shape[0] // 2, 2, red.shape[1] // 2, 2)
    partial = ((blocks == 0).sum(axis=(1, 3)) % 4) != 0
    assert partial.sum() > 100
    ref = block_mean_2x2_reference(red, 0)
    has = ref > 0
    # where the narrow item has data its (shifted) values win over the main item's
    agree = (day0[has].astype(int) - ref[has]) == 0
    assert agree.mean() > 0.99, agree.mean()


def test_mean_read_path_is_the_full_resolution_mean(archive):
    sim, items, assets, gb, narrow = archive
    main = next(it for it in items if it.id != narrow.id)
    got = F.load_native([main], gb, assets, bands=("B08",), read_path="mean")
    with rasterio.open(main.assets["nir"].get_absolute_href()) as r:
        nir, tr = r.read(1), r.transform
        assert r.overviews(1)[0] == 2  # "auto" would read the overview instead
    c0 = int(round((tr.c - gb.affine.c) / 20))
    ref = block_mean_2x2_reference(nir, 0)
    day = S.observation_meta([main], assets).dates
    assert len(day) == 1
    np.testing.assert_array_equal(got["B08"][0][:, c0:c0 + ref.shape[1]], ref)
    auto = F.load_native([main], gb, assets, bands=("B08",))["B08"][0][:, c0:c0 + ref.shape[1]]
    assert (auto != ref).mean() > 0.5  # the simulator's overview is nearest, not the mean


def test_native_grid_detection_and_fallback(archive, monkeypatch):
    from odc.geo.geobox import GeoBox

    sim, items, assets, gb, _ = archive
    bands = (*BANDS, "SCL")
    assert F.is_native_grid(items, gb[10:50, 3:40].pad(5), assets, bands)
    shifted = GeoBox(gb.shape, gb.affine * gb.affine.translation(0.5, 0), gb.crs)
    fine = GeoBox.from_bbox(gb.boundingbox, gb.crs, resolution=10)
    other = GeoBox.from_bbox(gb.extent.to_crs("EPSG:32632").boundingbox, "EPSG:32632", resolution=20)
    for grid in (shifted, fine, other):
        assert not F.is_native_grid(items, grid, assets, bands)
    calls = []
    real = F.load_native
    monkeypatch.setattr(F, "load_native", lambda *a, **k: calls.append(1) or real(*a, **k))
    small = shifted[:20, :20]
    ref = S.load_cube(items, small, assets, chunks=None, bands=("B04",))["B04"].values
    np.testing.assert_array_equal(F.load_arrays(items, small, assets, bands=("B04",))["B04"], ref)
    assert calls == []  # not native: odc-stac
    F.load_arrays(items, gb[:20, :20], assets, bands=("B04",))
    assert calls == [1]  # native: direct reads
    F.load_arrays(items, gb[:20, :20], assets, bands=("B04",), read_path="general")
    monkeypatch.setenv(F.READ_PATH_ENV, "general")
    F.load_arrays(items, gb[:20, :20], assets, bands=("B04",))
    assert calls == [1]
    monkeypatch.setenv(F.READ_PATH_ENV, "fast")
    with pytest.raises(ConfigError, match=r"\$SOILSUITE_READ_PATH: expected one of auto, general, mean"):
        F.load_arrays(items, gb[:20, :20], assets, bands=("B04",))


def test_tile_inputs_identical_with_either_read_path(archive):
    """The wiring in the tile runner: both read paths give the same kernel inputs."""
    sim, items, assets, gb, _ = archive
    tile = plan_tiles(gb, 64)[1]
    its = C._items_over(items, tile.geobox.pad(5))
    out = {}
    for path in ("auto", "general"):
        cfg = C.build_config(source=str(sim.catalog_path), start=START, end=END, out=Path("unused"), read_path=path)
        out[path] = C.load_tile_inputs(its, assets, tile.geobox, cfg, 5)
    np.testing.assert_array_equal(out["auto"].refl, out["general"].refl)
    np.testing.assert_array_equal(out["auto"].valid, out["general"].valid)
    assert out["auto"].valid.any() and (out["auto"].refl != -32768).any()


def test_unreadable_file_is_named(archive, tmp_path):
    sim, items, assets, gb, narrow = archive
    it = narrow.clone()
    bad = tmp_path / "red.tif"
    bad.write_bytes(b"not a tiff")
    it.assets["red"].href = str(bad)
    with pytest.raises(InputError, match=rf"STAC item '{narrow.id}', asset red .*red\.tif: cannot be read"):
        F.load_native([it], gb, assets, bands=("B04",))


def test_safe_source_fast_path_equals_odc_stac(tmp_path):
    from soilsuite.sources.simulate import simulate

    simulate(tmp_path / "safe", size=48, start=START, end=END, seed=3, format="safe")
    cfg = C.build_config(source=str(tmp_path / "safe"), start=START, end=END, out=Path("unused"))
    items = C.select_items(cfg)[1].items
    assets = S.resolve_assets(items)
    gb = C.target_geobox(cfg, items)
    assert F.is_native_grid(items, gb, assets, (*BANDS, "SCL"))
    for tile in plan_tiles(gb, 32):
        _same(items, tile.geobox, assets, BANDS)
        _same(items, tile.geobox.pad(5), assets, ("SCL",))


def test_kept_open_files_follow_a_replaced_file(tmp_path, monkeypatch):
    """Files stay open between tile loads ($SOILSUITE_READ_OPEN_FILES); a file replaced
    meanwhile is read again, not served from the kept dataset."""
    monkeypatch.setenv(F.OPEN_FILES_ENV, "8")
    path = tmp_path / "a.tif"

    def write(value):
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint16", nodata=0,
                           crs="EPSG:32633", transform=from_origin(400000, 5800000, 20, 20)) as d:
            d.write(np.full((1, 8, 8), value, np.uint16))

    from odc.geo.geobox import GeoBox
    from odc.loader.types import RasterLoadParams

    gb = GeoBox((8, 8), from_origin(400000, 5800000, 20, 20), "EPSG:32633")
    params = RasterLoadParams("uint16", fill_value=0, resampling="average")
    try:
        write(7)
        assert F._read(str(path), 1, gb, params)[1].tolist() == [[7] * 8] * 8
        assert len(F._DATASETS.open) == 1
        import os
        import time

        time.sleep(0.01)
        write(9)
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
        assert F._read(str(path), 1, gb, params)[1].tolist() == [[9] * 8] * 8
        monkeypatch.setenv(F.OPEN_FILES_ENV, "0")
        F.close_datasets()
        F._read(str(path), 1, gb, params)
        assert len(F._DATASETS.open) == 0
    finally:
        F.close_datasets()


def test_only_the_mean_read_path_changes_the_run_hash(tmp_path, monkeypatch):
    """A resumed run reuses finished tiles only under the same hash: ``auto`` and ``general``
    give the same products, ``mean`` other ones."""
    monkeypatch.delenv(F.READ_PATH_ENV, raising=False)

    def h(**kw):
        return C._params_hash(C.build_config(source="x", start=START, end=END, out=tmp_path, **kw))

    assert h() == h(read_path="auto") == h(read_path="general") != h(read_path="mean")
    monkeypatch.setenv(F.READ_PATH_ENV, "mean")
    assert h() == h(read_path="mean")
