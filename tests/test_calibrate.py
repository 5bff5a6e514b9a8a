"""Issue 11: calibrated regional PV+IR2 thresholds and the threshold sweep (docs/thresholds.md).

Oracles: the numpy reference of the histogram kernel; synthetic histograms with a known bare
mode; the simulator's true threshold per region (``simulate(regional_brightness=...)``,
``truth/threshold.tif``) and its per-observation truth flags; composites run at the sweep's
thresholds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite.kernels import thresholds as K

START, END = "2021-03-01", "2021-09-30"
#: Stated tolerance of the calibration against the simulator's true threshold per region
#: (PV+IR2): each region, and the mean over regions (docs/thresholds.md "Measured").
TOL_REGION, TOL_MEAN = 0.10, 0.06


# ----------------------------------------------------------------------------- kernel
def _random_block(seed=0, T=7, Y=13, X=11, n_regions=4):
    rng = np.random.default_rng(seed)
    pv = rng.uniform(-1.5, 2.5, (T, Y, X)).astype(np.float32)
    pv[rng.uniform(size=pv.shape) < 0.05] = np.nan
    valid = rng.uniform(size=(T, Y, X)) < 0.7
    region = rng.integers(-1, n_regions, (Y, X)).astype(np.int32)
    cls = rng.integers(-1, 2, (Y, X)).astype(np.int8)
    return pv, valid, region, cls


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_histograms_match_reference(seed):
    pv, valid, region, cls = _random_block(seed)
    kw = dict(n_regions=4, lo=-1.0, hi=2.0, n_bins=60)
    got = K.region_histograms(pv, valid, region, cls, **kw)
    np.testing.assert_array_equal(got, K.region_histograms_reference(pv, valid, region, cls, **kw))
    # every valid, finite observation of a pixel with a region and a class counted once
    assert got.sum() == (valid & np.isfinite(pv) & ((region >= 0) & (cls >= 0))[None]).sum()
    # blocks merge by summation (dates split)
    split = (K.region_histograms(pv[:3], valid[:3], region, cls, **kw)
             + K.region_histograms(pv[3:], valid[3:], region, cls, **kw))
    np.testing.assert_array_equal(split, got)


def test_region_histograms_bins_and_clipping():
    pv = np.array([-5.0, -1.0, -0.95, 0.0, 1.99, 2.0, 7.0], np.float32).reshape(7, 1, 1)
    h = K.region_histograms(pv, np.ones((7, 1, 1), bool), np.zeros((1, 1), np.int32), np.zeros((1, 1), np.int8),
                            n_regions=1, lo=-1.0, hi=2.0, n_bins=30)
    assert h[0, 0, 0] == 3  # -5 (clipped), -1.0, -0.95 in [-1, -0.9)
    assert h[0, 0, 10] == 1  # 0.0 in [0, 0.1)
    assert h[0, 0, 29] == 3  # 1.99, 2.0 and 7 (clipped)
    assert h[0, 1].sum() == 0


# ----------------------------------------------------------------------------- the rule
EDGES = K.bin_edges(-1.0, 2.0, 300)


def _hists(bare_mode, bare_sigma, bare_share, grass_mode, grass_sigma, n=400_000, seed=0):
    rng = np.random.default_rng(seed)
    nb = int(n * bare_share)
    crop = np.concatenate([rng.normal(bare_mode, bare_sigma, nb), rng.uniform(0.45, 1.4, n - nb)])
    grass = rng.normal(grass_mode, grass_sigma, n)
    return np.histogram(crop, EDGES)[0], np.histogram(grass, EDGES)[0]


@pytest.mark.parametrize("mode,sigma", [(0.05, 0.03), (0.15, 0.04), (0.30, 0.025)])
def test_rule_upper_edge_of_the_bare_mode(mode, sigma):
    s = K.separation_threshold(*_hists(mode, sigma, 0.3, 1.0, 0.15), EDGES)
    assert s.reason == ""
    assert abs(s.crop_mode - mode) <= 0.015
    # the 5-bin moving average (0.05 wide) widens the peak a little: sqrt(sigma^2 + 0.05^2 / 12)
    assert s.spread == pytest.approx(np.hypot(sigma, 0.05 / np.sqrt(12)), abs=0.006)
    assert s.threshold == pytest.approx(s.crop_mode + 2 * s.spread)
    assert abs(s.threshold - (mode + 2 * sigma)) <= 0.025


def test_rule_capped_where_grassland_becomes_more_likely():
    from scipy.optimize import brentq
    from scipy.stats import norm

    # grassland close to the bare mode: the densities cross below mode + 2 sigma
    s = K.separation_threshold(*_hists(0.10, 0.08, 0.5, 0.35, 0.05), EDGES)
    assert s.reason == ""
    assert s.threshold == pytest.approx(s.crossing)
    assert s.crossing < s.crop_mode + 2 * s.spread

    def diff(x):  # true densities below 0.45: 0.5 N(0.1, 0.08) (+ 0.5 U(0.45, 1.4)) vs N(0.35, 0.05)
        return 0.5 * norm.pdf(x, 0.10, 0.08) - norm.pdf(x, 0.35, 0.05)

    assert s.crossing == pytest.approx(brentq(diff, 0.12, 0.34), abs=0.02)


def test_rule_without_a_bare_mode():
    crop, grass = _hists(0.9, 0.2, 1.0, 0.9, 0.2)
    s = K.separation_threshold(crop, grass, EDGES)
    assert np.isnan(s.threshold) and s.reason
    s = K.separation_threshold(crop, np.zeros_like(grass), EDGES)
    assert np.isnan(s.threshold) and "no grassland" in s.reason


def test_fill_from_the_nearest_ring_of_calibrated_regions():
    from soilsuite.calibrate import _fill, _Regions

    cen = np.array([(c, -r) for r in range(3) for c in range(3)], float)
    reg = _Regions("grid", 9, [str(i) for i in range(9)], cen, cell_px=1, grid_shape=(3, 3))
    nan = np.nan
    thr = np.array([0.1, nan, 0.3, nan, nan, nan, nan, nan, 0.5])
    filled, src = _fill(reg, thr)
    assert filled[1] == pytest.approx(0.2) and src[1] == [0, 2]  # ring 1: regions 0 and 2
    assert filled[4] == pytest.approx(0.3) and src[4] == [0, 2, 8]
    assert filled[6] == pytest.approx(0.3) and src[6] == [0, 2, 8]  # ring 1 has none: ring 2
    assert filled[7] == pytest.approx(0.5) and src[7] == [8]
    assert src[0] == [] and filled[0] == 0.1
    poly = dataclasses.replace(reg, kind="polygons")
    filled, src = _fill(poly, thr)
    assert sorted(src[4]) == [0, 2, 8] and filled[4] == pytest.approx(0.3)  # 3 nearest centroids


# ----------------------------------------------------------------------------- on a regional archive
@pytest.fixture(scope="module")
def regional(tmp_path_factory):
    """64 x 64 px (2 x 2 truth regions of 640 m), March-September 2021, NIR gain amplitude 0.2."""
    from soilsuite import simulate

    return simulate(tmp_path_factory.mktemp("regional") / "archive", size=64, start=dt.date.fromisoformat(START),
                    end=dt.date.fromisoformat(END), seed=1, regional_brightness=0.2)


@pytest.fixture(scope="module")
def calibrated(regional, tmp_path_factory):
    """``soilsuite calibrate-threshold`` on ``regional`` through the CLI."""
    from soilsuite import cli

    out = tmp_path_factory.mktemp("calibrated") / "threshold.tif"
    res = CliRunner().invoke(cli.app, [
        "calibrate-threshold", str(regional.catalog_path), "--start", START, "--end", END,
        "--worldcover", str(regional.worldcover_path), "--region-size", "640", "--min-obs", "200",
        "--scheduler", "sync", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return out


def test_default_archive_has_no_threshold_truth(sim_archive):
    assert not (sim_archive.truth_dir / "threshold.tif").exists()


def test_regional_brightness_changes_only_soil_and_dry_vegetation_nir(tmp_path):
    import hashlib

    from soilsuite import simulate
    from soilsuite.errors import ConfigError

    kw = dict(size=32, start=dt.date(2021, 4, 1), end=dt.date(2021, 4, 30), seed=2, overlap_tiles=False)
    off = simulate(tmp_path / "off", **kw)
    on = simulate(tmp_path / "on", regional_brightness=0.2, **kw)

    def digest(res, rel):
        return hashlib.sha256((res.out / rel).read_bytes()).hexdigest()

    it = off.item_ids[2]
    for rel in ("truth/obs_flags.tif", "truth/landcover.tif", "worldcover.tif", f"sentinel-2-l2a/{it}/blue.tif",
                f"sentinel-2-l2a/{it}/red.tif", f"sentinel-2-l2a/{it}/swir22.tif"):
        assert digest(off, rel) == digest(on, rel), rel  # same draws; gain 1 outside the NIR
    assert digest(off, f"sentinel-2-l2a/{it}/nir.tif") != digest(on, f"sentinel-2-l2a/{it}/nir.tif")
    assert not (off.truth_dir / "threshold.tif").exists() and (on.truth_dir / "threshold.tif").exists()
    with pytest.raises(ConfigError, match="regional_brightness"):
        simulate(tmp_path / "bad", regional_brightness=0.7, **kw)


def test_calibration_recovers_the_true_threshold(regional, calibrated):
    truth = json.loads((regional.truth_dir / "threshold.json").read_text())
    assert truth["region_px"] == 32
    true = np.array([r["threshold"] if r["threshold"] is not None else np.nan for r in truth["regions"]])
    with rasterio.open(calibrated) as src:
        cal = src.read(1).ravel()
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.transform.a == 640 and src.shape == (2, 2)
        assert src.crs.to_epsg() == regional.epsg
    ok = np.isfinite(true)
    assert ok.sum() >= 3
    err = np.abs(cal[ok] - true[ok])
    assert err.max() <= TOL_REGION, (cal, true)
    assert err.mean() <= TOL_MEAN, (cal, true)
    # the regional gain brightens soil NIR from west to east: both see the same west-east rise
    cal_rise = cal.reshape(2, 2)[:, 1].mean() - cal.reshape(2, 2)[:, 0].mean()
    true_rise = np.nanmean(true.reshape(2, 2)[:, 1]) - np.nanmean(true.reshape(2, 2)[:, 0])
    assert cal_rise > 0.05 and abs(cal_rise - true_rise) <= TOL_REGION


def test_calibration_table_plot_and_record(calibrated):
    import pandas as pd

    table = pd.read_csv(calibrated.with_suffix(".csv"))
    assert list(table.columns[:8]) == ["region", "n_crop", "n_grass", "crop_mode", "spread", "crossing",
                                       "threshold", "filled_from"]
    assert len(table) == 4 and (table.n_crop >= 200).all()
    with rasterio.open(calibrated) as src:
        np.testing.assert_allclose(table.threshold, src.read(1).ravel(), atol=1e-4)
    assert calibrated.with_suffix(".png").stat().st_size > 10_000
    rec = json.loads(calibrated.with_suffix(".json").read_text())
    assert rec["command"] == "calibrate-threshold" and rec["regions"]["n"] == 4
    assert rec["n_calibrated"] + rec["n_filled"] == 4


def test_calibration_with_polygon_regions(regional, tmp_path):
    """--regions: two polygons (the west half and the north-east quarter, given in lon/lat); the
    raster is on the run's 20 m grid with each polygon's threshold, NaN outside the polygons
    (one month and min_obs 1, to keep it short: the values are not checked against the truth)."""
    import geopandas as gpd
    from shapely.geometry import box

    from soilsuite import calibrate_threshold

    x0, y1 = regional.transform.c, regional.transform.f
    size = regional.shape[1] * 20.0
    halves = [box(x0, y1 - size, x0 + size / 2, y1), box(x0 + size / 2, y1 - size / 2, x0 + size, y1)]
    gpd.GeoDataFrame({"name": ["west", "north-east"]}, geometry=halves, crs=regional.crs).to_crs(4326).to_file(
        tmp_path / "regions.gpkg")
    cal = calibrate_threshold(regional.catalog_path, start="2021-04-01", end="2021-04-30", out=tmp_path / "t.tif",
                              worldcover=regional.worldcover_path, regions=tmp_path / "regions.gpkg", min_obs=1,
                              scheduler="sync")
    assert [r["region"] for r in cal.regions] == ["west", "north-east"]
    west, east = (r["threshold"] for r in cal.regions)
    assert west is not None and east is not None and west != east
    with rasterio.open(cal.raster) as src:
        arr = src.read(1)
        assert src.shape == regional.shape and src.transform == regional.transform
    n = regional.shape[0]
    np.testing.assert_allclose(arr[2:-2, 2 : n // 2 - 2], west, atol=1e-4)
    np.testing.assert_allclose(arr[2 : n // 2 - 2, n // 2 + 2 : -2], east, atol=1e-4)
    assert np.isnan(arr[n // 2 + 2 :, n // 2 + 2 :]).all()  # south-east: no polygon


def _bsf_errors(regional, thresholds, start=START, end=END, bsf_out=None):
    """Mean |BSF - true BSF| on cropland and grassland (truth classes 1, 2) for each threshold
    (a constant or a [Y, X] raster), by the composite's own load and classification (the BSF
    arrays are appended to ``bsf_out`` if given)."""
    from odc.geo.geobox import GeoBox

    from soilsuite import load_truth
    from soilsuite.kernels.composite import FLAG_BARE, FLAG_VALID
    from soilsuite.pipeline.block import classify_inputs
    from soilsuite.pipeline.composite import (
        _items_over,
        build_config,
        load_tile_inputs,
        select_items,
    )
    from soilsuite.sources import stac as S

    gb = GeoBox(regional.shape, regional.transform, regional.crs)
    cfg = build_config(source=str(regional.catalog_path), start=start, end=end, out=".",
                       worldcover=regional.worldcover_path)
    _, sel = select_items(cfg)
    inp = load_tile_inputs(_items_over(sel.items, gb.pad(5)), S.resolve_assets(sel.items), gb, cfg, 5)
    tr = load_truth(regional.out)
    days = list(tr.time.values.astype("datetime64[D]"))
    tbare = (tr.obs_flags.values[[days.index(np.datetime64(d, "D")) for d in inp.meta.dates]] & 1) > 0
    lc = tr.landcover.values
    out = []
    for t in thresholds:
        thr = np.broadcast_to(np.asarray(t, np.float32), lc.shape).astype(np.float32)
        _, flags = classify_inputs(dataclasses.replace(inp, threshold=thr), cfg)
        v, b = (flags & FLAG_VALID) > 0, (flags & FLAG_BARE) > 0
        vpc = v.sum(0)
        if bsf_out is not None:
            bsf_out.append(np.where(vpc > 0, b.sum(0) / np.maximum(vpc, 1), np.nan))
        err = np.abs(b.sum(0) - (tbare & v).sum(0)) / np.maximum(vpc, 1)
        out.append({c: float(err[(lc == k) & (vpc > 0)].mean()) for c, k in (("crop", 1), ("grass", 2))})
    return out


def test_calibrated_raster_small(regional, calibrated):
    """The cheap default check of the target on the tiny archive, which is too small to show it
    (a calibrated raster does beat the best constant on the 128 px archive of the slow test):
    the true regional thresholds beat every constant (the archive has a regionally varying truth),
    and the calibrated raster beats the default constant 0.2 by far."""
    from soilsuite.sources.rasters import read_on_grid

    cal = read_on_grid(calibrated, regional.geobox, resampling="bilinear", dtype="float32", fill=np.nan)
    assert np.isfinite(cal).all()  # the composite's bilinear read covers the whole grid
    with rasterio.open(regional.truth_dir / "threshold.tif") as src:
        true = src.read(1)
    true = np.where(np.isfinite(true), true, 0.2).astype(np.float32)
    consts = np.round(np.arange(0.05, 0.451, 0.01), 2)
    errs = _bsf_errors(regional, [cal, true, *consts])
    best = min(errs[2:], key=lambda e: e["crop"] + e["grass"])
    default = errs[2 + 15]  # 0.20
    assert errs[1]["crop"] < 0.95 * best["crop"] and errs[1]["grass"] <= best["grass"]
    assert errs[0]["crop"] < 0.7 * default["crop"]
    assert errs[0]["grass"] <= default["grass"] + 0.002


# ----------------------------------------------------------------------------- the sweep
def test_parse_sweep():
    from soilsuite.errors import ConfigError
    from soilsuite.sweep import parse_sweep

    assert parse_sweep("0.10:0.30:0.05") == [0.1, 0.15, 0.2, 0.25, 0.3]
    assert parse_sweep("0.2:0.2:0.1") == [0.2]
    for bad in ("0.3:0.1:0.05", "0.1:0.3", "0.1:0.3:0", "a:b:c", "0:100:0.001"):
        with pytest.raises(ConfigError):
            parse_sweep(bad)


def test_sweep_matches_composites(regional, tmp_path):
    """The sweep's rows equal the area means of composites run at two of its thresholds (the
    north-west quarter of the archive, March-June, to keep the three runs short)."""
    from soilsuite import composite, threshold_sweep
    from soilsuite.sentinel2 import BANDS

    w, s, e, n = regional.bbox_lonlat
    run = dict(start=START, end="2021-06-30", bbox=(w, (s + n) / 2, (w + e) / 2, n),
               worldcover=regional.worldcover_path, scheduler="sync")
    res = threshold_sweep(regional.catalog_path, out=tmp_path / "sweep", thresholds="0.15:0.25:0.10", threshold=0.2,
                          **run)
    df = res.table.set_index("threshold")
    assert list(df.index) == [0.15, 0.2, 0.25] and df.loc[0.2, "is_reference"]
    assert df.loc[0.2, "bsf_change"] == 0 and df.loc[0.25, "bsf_change"] > 0 > df.loc[0.15, "bsf_change"]
    assert res.csv.exists() and res.plot.stat().st_size > 10_000
    for t in (0.15, 0.25):
        ds = composite(regional.catalog_path, out=tmp_path / f"c{t}", threshold=t, **run)
        bsf = ds["BSF"].values
        assert df.loc[t, "bsf_mean"] == pytest.approx(float(np.nanmean(bsf)), abs=1e-6)
        src = ds["SRC_MEAN"].values
        assert df.loc[t, "src_share"] == pytest.approx(np.isfinite(src[0]).mean(), abs=1e-9)
        for b, name in enumerate(BANDS):  # the COG stores reflectance x 10000 (rounded)
            assert df.loc[t, f"src_mean_{name}"] == pytest.approx(float(np.nanmean(src[b])), abs=1e-4)


# ----------------------------------------------------------------------------- slow: the measured target
@pytest.mark.slow
def test_calibrated_raster_beats_the_best_constant_larger(tmp_path):
    """128 x 128 px (4 x 4 regions), March-October 2021, amplitude 0.15: a composite run with
    the calibrated raster vs every constant 0.05-0.45 (the numbers quoted in docs/thresholds.md)."""
    from soilsuite import calibrate_threshold, composite, simulate

    sim = simulate(tmp_path / "archive", size=128, start=dt.date(2021, 3, 1), end=dt.date(2021, 10, 31), seed=3,
                   regional_brightness=0.15)
    cal = calibrate_threshold(sim.catalog_path, start="2021-03-01", end="2021-10-31", out=tmp_path / "thr.tif",
                              worldcover=sim.worldcover_path, region_size=640, scheduler="sync")
    assert cal.n_calibrated >= 14
    from soilsuite.sources.rasters import read_on_grid

    raster = read_on_grid(cal.raster, sim.geobox, resampling="bilinear", dtype="float32", fill=np.nan)
    consts = np.round(np.arange(0.05, 0.451, 0.01), 2)
    bsf: list = []
    errs = _bsf_errors(sim, [raster, *consts], "2021-03-01", "2021-10-31", bsf)
    ds = composite(sim.catalog_path, start="2021-03-01", end="2021-10-31", out=tmp_path / "run",
                   threshold_raster=cal.raster, worldcover=sim.worldcover_path, scheduler="sync")
    np.testing.assert_allclose(ds["BSF"].values, bsf[0], atol=1e-6)  # the composite's BSF is the one scored
    best_i = int(np.argmin([e["crop"] + e["grass"] for e in errs[1:]]))
    best = errs[1 + best_i]
    print(f"calibrated {errs[0]}, best constant {consts[best_i]} {best}, 0.2 {errs[1 + 15]}")
    assert errs[0]["crop"] < 0.9 * best["crop"]
    assert errs[0]["grass"] <= best["grass"] + 0.001
