"""Tests of soilsuite.dsm: samples, covariates, QRF model, validation, prediction, CLI, demo.

Synthetic data is built here; the LimeSoDa test uses LimeSoDa 0.1.5 (PyPI ``limesoda``,
Schmidinger et al. 2025, arXiv:2502.20139, CC BY-SA 4.0) fetched by ``make realdata`` into
``.realdata/limesoda`` (scripts/fetch_realdata.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from soilsuite import dsm
from soilsuite.errors import ConfigError, InputError, OutputExistsError
from soilsuite.products import PRODUCTS

EPSG = 32633
RES = 20.0
ORIGIN = (500000.0, 5800000.0)
REALDATA = Path(__file__).resolve().parents[1] / ".realdata" / "limesoda"


# ----------------------------------------------------------------------------- fixtures
def _soc_field(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth SOC field (g/kg), 8-30."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    f = 18 + 6 * np.sin(2 * np.pi * xx * 1.3 + 0.5) * np.cos(2 * np.pi * yy * 0.9) + 4 * (xx - yy)
    return f + rng.normal(0, 0.3, (h, w))


def make_products(folder: Path, h: int = 64, w: int = 64, seed: int = 0) -> dict:
    """A soilsuite product folder (SRC_MEAN, BSF, MASK) whose soil spectra darken with SOC."""
    from soilsuite.io.cog import write_cog

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soc = _soc_field(h, w, seed)
    base = np.linspace(0.08, 0.35, 10)[:, None, None]
    refl = base * (1.25 - 0.025 * soc)[None] + rng.normal(0, 0.003, (10, h, w))
    mask = np.ones((h, w), np.uint8)
    mask[:6, :6] = 2  # vegetation corner: no soil spectrum
    refl[:, mask != 1] = np.nan
    bsf = np.clip(0.3 + 0.1 * rng.standard_normal((h, w)), 0, 1).astype("float32")
    tr = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
    crs = f"EPSG:{EPSG}"
    write_cog(folder / "SRC_MEAN.tif", refl, PRODUCTS["SRC_MEAN"], crs=crs, transform=tr, overwrite=True)
    write_cog(folder / "BSF.tif", bsf, PRODUCTS["BSF"], crs=crs, transform=tr, overwrite=True)
    write_cog(folder / "MASK.tif", mask, PRODUCTS["MASK"], crs=crs, transform=tr, overwrite=True)
    return {"soc": soc, "mask": mask, "transform": tr, "crs": crs, "shape": (h, w)}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("dsm_scene")
    info = make_products(d / "products")
    h, w = info["shape"]
    rng = np.random.default_rng(1)
    pix = rng.choice((h - 8) * (w - 8), 120, replace=False)
    rows, cols = 8 + pix // (w - 8), 8 + pix % (w - 8)
    tr = info["transform"]
    xs = tr.c + RES * (cols + 0.5)
    ys = tr.f - RES * (rows + 0.5)
    soc = info["soc"][rows, cols] * (1 + 0.03 * rng.standard_normal(rows.size))
    csv = d / "samples.csv"
    pd.DataFrame({"x": xs, "y": ys, "SOC": soc.round(3)}).to_csv(csv, index=False)
    return SimpleNamespace(dir=d, products=d / "products", csv=csv, **info)


def _write_raster(path: Path, data: np.ndarray, transform, crs, nodata=None) -> Path:
    data = np.atleast_3d(data) if data.ndim == 2 else data
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0][None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
    return path


# ----------------------------------------------------------------------------- samples
def _points_gdf(n: int = 10, soc=None):
    import geopandas as gpd

    rng = np.random.default_rng(0)
    x = ORIGIN[0] + rng.uniform(0, 1000, n)
    y = ORIGIN[1] - rng.uniform(0, 1000, n)
    soc = rng.uniform(5, 40, n) if soc is None else soc
    return gpd.GeoDataFrame({"SOC": soc, "clay_pct": rng.uniform(5, 50, n)},
                            geometry=gpd.points_from_xy(x, y), crs=f"EPSG:{EPSG}")


@pytest.mark.parametrize("fmt", ["csv", "gpkg", "parquet", "shp"])
def test_read_samples_formats(tmp_path, fmt):
    gdf = _points_gdf()
    if fmt == "csv":
        p = tmp_path / "s.csv"
        pd.DataFrame({"easting": gdf.geometry.x, "northing": gdf.geometry.y, "SOC": gdf["SOC"],
                      "clay_pct": gdf["clay_pct"]}).to_csv(p, index=False)
        s = dsm.read_samples(p, {"soc": "SOC", "clay": "clay_pct"}, crs=f"EPSG:{EPSG}")
    else:
        p = tmp_path / f"s.{fmt}"
        if fmt == "parquet":
            gdf.to_parquet(p)
        else:
            gdf.to_file(p)
        s = dsm.read_samples(p, ["soc=SOC", "clay=clay_pct"])
    assert len(s) == 10
    assert s.units == {"soc": "g/kg", "clay": "g/100g"}
    np.testing.assert_allclose(s.gdf["soc"], gdf["SOC"])
    np.testing.assert_allclose(s.coords(), np.column_stack([gdf.geometry.x, gdf.geometry.y]))


def test_read_samples_csv_needs_crs_and_columns(tmp_path):
    p = tmp_path / "s.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "SOC": [10.0, 12.0]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="crs"):
        dsm.read_samples(p, "soc=SOC")
    with pytest.raises(InputError, match="'OC'"):
        dsm.read_samples(p, "soc=OC", crs=f"EPSG:{EPSG}")
    with pytest.raises(InputError, match="does not exist"):
        dsm.read_samples(tmp_path / "nope.csv", "soc")


def test_units_checked_and_converted(tmp_path):
    p = tmp_path / "s.gpkg"
    _points_gdf(soc=np.linspace(0.5, 3.5, 10)).to_file(p)  # SOC in %
    with pytest.raises(InputError, match=r"'SOC'.*%"):
        dsm.read_samples(p, "soc=SOC")
    s = dsm.read_samples(p, "soc=SOC", units={"soc": "%"})
    np.testing.assert_allclose(s.gdf["soc"], np.linspace(5, 35, 10))
    assert "soc" in s.report.conversions
    with pytest.warns(dsm.SampleWarning):
        dsm.read_samples(p, "soc=SOC", unit_check="warn")
    # pH x 10 and impossible values
    q = tmp_path / "ph.csv"
    pd.DataFrame({"x": [0.0, 1, 2], "y": [0.0, 1, 2], "ph": [55.0, 62, 71]}).to_csv(q, index=False)
    with pytest.raises(InputError, match="pH x 10"):
        dsm.read_samples(q, "phh2o=ph", crs=f"EPSG:{EPSG}")
    s = dsm.read_samples(q, "phh2o=ph", crs=f"EPSG:{EPSG}", units={"phh2o": "pH*10"})
    np.testing.assert_allclose(s.gdf["phh2o"], [5.5, 6.2, 7.1])
    r = tmp_path / "clay.csv"
    pd.DataFrame({"x": [0.0, 1], "y": [0.0, 1], "c": [20.0, 130.0]}).to_csv(r, index=False)
    with pytest.raises(InputError, match="g/kg"):
        dsm.read_samples(r, "clay=c", crs=f"EPSG:{EPSG}")
    with pytest.raises(ConfigError, match="unknown"):
        dsm.read_samples(r, "clay=c", crs=f"EPSG:{EPSG}", units={"clay": "furlongs"})


def test_duplicates_and_extent_reported(tmp_path):
    p = tmp_path / "s.csv"
    pd.DataFrame({"x": [10.0, 10.0, 50.0, 50.5, 5000.0], "y": [10.0, 10.0, 50.0, 50.0, 10.0],
                  "SOC": [10.0, 14.0, 20.0, 22.0, 30.0], "id": list("abcde")}).to_csv(p, index=False)
    with pytest.warns(dsm.SampleWarning, match="duplicate"):
        s = dsm.read_samples(p, "soc=SOC", crs=f"EPSG:{EPSG}", id_column="id", duplicate_tolerance=1.0)
    assert s.report.duplicates == [["a", "b"], ["c", "d"]]
    assert len(s) == 5
    with pytest.warns(dsm.SampleWarning):
        m = dsm.read_samples(p, "soc=SOC", crs=f"EPSG:{EPSG}", id_column="id", duplicate_tolerance=1.0,
                             duplicates="mean")
    assert len(m) == 3
    np.testing.assert_allclose(m.gdf["soc"].to_numpy(), [12.0, 21.0, 30.0])
    with pytest.warns(dsm.SampleWarning, match="outside"):
        out = dsm.check_extent(s, (0.0, 0.0, 1000.0, 1000.0), f"EPSG:{EPSG}")
    assert out == ["e"]
    assert "outside the raster extent" in s.report.to_markdown()


# ----------------------------------------------------------------------------- covariates
def test_alignment_matches_rasterio_reproject(tmp_path, scene):
    """A raster in EPSG:4326 aligned by the stack equals an independent rasterio.warp.reproject."""
    from rasterio.warp import Resampling, reproject, transform_bounds

    left, bottom, right, top = transform_bounds(f"EPSG:{EPSG}", "EPSG:4326",
                                                ORIGIN[0] - 400, ORIGIN[1] - 64 * RES - 400,
                                                ORIGIN[0] + 64 * RES + 400, ORIGIN[1] + 400)
    n = 90
    tr = Affine((right - left) / n, 0, left, 0, -(top - bottom) / n, top)
    yy, xx = np.mgrid[0:n, 0:n]
    data = (100 + 2.0 * xx + 0.5 * yy + 10 * np.sin(xx / 7.0)).astype("float32")
    src = _write_raster(tmp_path / "clim.tif", data, tr, "EPSG:4326", nodata=-9999)
    stack = dsm.build_stack(scene.products, ["BSF"], {"clim": src})
    got = stack.read()[stack.names.index("clim")]
    ref = np.full(scene.shape, np.nan, "float32")
    reproject(data, ref, src_transform=tr, src_crs="EPSG:4326", dst_transform=scene.transform,
              dst_crs=f"EPSG:{EPSG}", resampling=Resampling.bilinear, src_nodata=-9999, dst_nodata=np.nan)
    ok = np.isfinite(ref)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(got[ok], ref[ok], rtol=0, atol=0.05)
    # products decoded to reflectance (int16 x 1e-4, nodata -9999 -> NaN)
    s2 = dsm.build_stack(scene.products, ["SRC_MEAN"])
    arr = s2.read()
    assert s2.names[0] == "SRC_MEAN_B02" and arr.shape == (10, *scene.shape)
    assert np.isnan(arr[:, 0, 0]).all() and 0 < np.nanmax(arr) < 1


def test_stack_errors(tmp_path, scene):
    with pytest.raises(InputError, match="SRC_STD"):
        dsm.build_stack(scene.products, ["SRC_STD"])
    with pytest.raises(InputError, match="does not exist"):
        dsm.build_stack(tmp_path / "none", ["BSF"])
    with pytest.raises(ConfigError, match="dem"):
        dsm.build_stack(scene.products, ["BSF"], terrain=True)


def test_terrain_plane_slope_aspect():
    """A plane rising to the east with gradient 0.1 and to the north with 0.05."""
    h, w, dx = 40, 50, 10.0
    yy, xx = np.mgrid[0:h, 0:w]
    east, north = xx * dx, (h - 1 - yy) * dx
    z = 100 + 0.1 * east + 0.05 * north
    t = dsm.terrain_derivatives(z, dx, dx)
    exp_slope = np.degrees(np.arctan(np.hypot(0.1, 0.05)))
    np.testing.assert_allclose(t["slope"], exp_slope, atol=1e-4)
    # steepest descent towards west-south-west: aspect = atan2(-0.1, -0.05) clockwise from north
    asp = np.arctan2(-0.1, -0.05)
    np.testing.assert_allclose(t["northness"], np.cos(asp), atol=1e-5)
    np.testing.assert_allclose(t["eastness"], np.sin(asp), atol=1e-5)
    np.testing.assert_allclose(t["curvature"], 0, atol=1e-8)
    np.testing.assert_allclose(t["tpi"][10:-10, 10:-10], 0, atol=1e-4)
    # a bowl: positive curvature (2/a + 2/a), TWI highest at the bottom
    r2 = ((xx - 25) * dx) ** 2 + ((yy - 20) * dx) ** 2
    b = dsm.terrain_derivatives(r2 / 1000.0, dx, dx)
    np.testing.assert_allclose(b["curvature"][5:-5, 5:-5], 4 / 1000.0, rtol=1e-6)
    assert np.nanargmax(b["twi"]) == 20 * w + 25


def test_stack_with_dem_terrain(tmp_path, scene):
    h, w = scene.shape
    yy, xx = np.mgrid[0:h, 0:w]
    dem = (200 + 0.2 * xx * RES).astype("float32")
    p = _write_raster(tmp_path / "dem.tif", dem, scene.transform, scene.crs)
    st = dsm.build_stack(scene.products, ["BSF"], {"dem": p}, terrain=True)
    assert st.names == ["BSF", "dem", *dsm.TERRAIN_LAYERS]
    a = st.read()
    np.testing.assert_allclose(a[st.names.index("slope")], np.degrees(np.arctan(0.2)), atol=1e-3)
    # extraction equals the block read
    xy = np.array([[ORIGIN[0] + 105.0, ORIGIN[1] - 305.0]])
    tab, info = st.extract(xy)
    np.testing.assert_allclose(tab.to_numpy()[0], a[:, 15, 5])


# ----------------------------------------------------------------------------- model
def _synthetic(n: int, seed: int, sigma: float = 1.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 4))
    f = 10 * X[:, 0] + 5 * np.sin(3 * X[:, 1])
    return X, f, f + rng.normal(0, sigma, n)


def test_qrf_coverage_and_r2():
    X, f, y = _synthetic(600, 0)
    Xt, ft, yt = _synthetic(1000, 1)
    m = dsm.SoilModel(target="soc", n_estimators=200, n_jobs=2).fit(X, y)
    p = m.predict(Xt)
    inside = (yt >= p["q05"]) & (yt <= p["q95"])
    assert 0.8 <= inside.mean() <= 0.97
    r2 = 1 - np.sum((yt - p["q50"]) ** 2) / np.sum((yt - yt.mean()) ** 2)
    r2_theory = 1 - 1.0 / np.var(yt)  # noise variance 1 is irreducible
    assert r2_theory - 0.1 <= r2 <= r2_theory + 0.02
    assert (p["q05"] <= p["q50"]).all() and (p["q50"] <= p["q95"]).all()


def test_tuning_and_save_load(tmp_path):
    X, _, y = _synthetic(150, 2)
    m = dsm.SoilModel(target="clay", n_estimators=50, tune="oob", tune_n_estimators=30,
                      tune_grid={"max_features": [0.5, 1.0], "min_samples_leaf": [1, 5]}).fit(X, y)
    assert set(m.best_params_) == {"max_features", "min_samples_leaf"}
    assert len(m.cv_results_) == 4
    p = m.save(tmp_path / "m.joblib")
    with pytest.raises(OutputExistsError):
        m.save(p)
    m2 = dsm.load_model(p)
    np.testing.assert_allclose(m2.predict(X[:5]).to_numpy(), m.predict(X[:5]).to_numpy())
    with pytest.raises(InputError, match="expected 4 covariates"):
        m.predict(X[:, :3])
    with pytest.raises(ConfigError, match="quantiles"):
        dsm.SoilModel(quantiles=(0.05, 1.5)).fit(X, y)


def test_invert_coverage_is_the_weibull_order_statistic():
    # 19 samples whose PIT values are exactly the grid points 0.05, 0.10, ..., 0.95: the share
    # t is reached at the t * (n + 1)-th order statistic, i.e. level t itself.
    grid = np.round(np.arange(1, 200) / 200, 6)
    u = np.arange(1, 20) / 20
    cover = np.array([np.mean(u <= g + 1e-12) for g in grid])
    lv = dsm.model.invert_coverage(cover, grid, [0.05, 0.5, 0.95], n=19)
    # each sample enters at its grid point and is placed half a grid step (0.0025) below it
    np.testing.assert_allclose(lv, [0.05 - 0.0025, 0.5 - 0.0025, 0.95 - 0.0025], atol=1e-9)


def _rounded(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 2))
    return X, np.round(3 * X[:, 0] + rng.normal(0, 0.7, n))  # integer lab values: many ties


def test_calibration_balances_tails_with_tied_targets():
    """Rounded targets: the old rule (``y <= Q`` for both tails) leaves almost nothing below Q05;
    each tail calibrated as the interval counts it gives 5 % on both sides."""
    from soilsuite.dsm.model import tail_shares

    X, y = _rounded(600, 0)
    Xt, yt = _rounded(4000, 100)  # independent test data: binomial SE of a 5 % share 0.0034
    m = dsm.SoilModel(target="soc", unit="g/kg", n_estimators=100, min_samples_leaf=10, n_jobs=2,
                      trend="none").fit(X, y)  # forest quantiles are training values: ties
    p = m.predict(Xt)
    below, above = tail_shares(yt, p["q05"], p["q95"])
    assert np.mean(yt == p["q05"]) > 0.03  # ties with the lower quantile really occur
    # calibration on 600 out-of-bag samples: SE of a 5 % share ~0.009; allow ~2 SE
    assert 0.03 <= below <= 0.07 and 0.03 <= above <= 0.07, (below, above)
    # the rule before, rebuilt from the same out-of-bag curve: first level reaching y <= Q
    lm = m.level_map_
    nominal, first = np.unique(np.maximum.accumulate(lm["at_or_below"]), return_index=True)
    m.level_map_ = (nominal, lm["grid"][first])
    p_old = m.predict(Xt)
    below_old, above_old = tail_shares(yt, p_old["q05"], p_old["q95"])
    assert below_old < 0.01 < 0.03 <= above_old, (below_old, above_old)  # unbalanced
    assert below - below_old > 0.025


def test_labels_units_jobs_and_warnings():
    X, _, y = _synthetic(60, 5)
    with pytest.raises(ConfigError, match="target="):
        dsm.SoilModel(n_estimators=10).fit(X, y)  # plain arrays: no name, no label guessed
    m = dsm.SoilModel(n_estimators=10).fit(X, pd.Series(y, name="clay"))
    assert m.target == "clay" and m.unit_ == "unknown"  # unit never guessed
    assert m.metadata()["unit"] == "unknown" and m.metadata()["point_prediction"] == "mean"
    m = dsm.SoilModel(target="soc", n_estimators=10).fit(X, y)
    assert m.unit_ == "unknown"
    assert dsm.SoilModel(target="soc", unit="%", n_estimators=10).fit(X, y).unit_ == "%"
    # n_jobs default: all cores, as the CLI
    assert dsm.SoilModel().n_jobs is None and m.forest_.n_jobs == -1
    # float32: a coordinate-like covariate loses distinct values -> warning naming it
    Xc = pd.DataFrame({"a": X[:, 0], "northing": 5_800_000.0 + np.arange(60) * 0.1})
    with pytest.warns(UserWarning, match=r"northing: 60 distinct values -> \d+"):
        m = dsm.SoilModel(target="soc", n_estimators=10).fit(Xc, y)
    assert m.float32_cast_["northing"]["distinct_float32"] < 60 and "a" not in m.float32_cast_
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dsm.SoilModel(target="soc", n_estimators=10, calibrate=False).fit(X, y)  # no cast warning
    # calibration switched off below 20 samples: said, and kept in the model card
    with pytest.warns(UserWarning, match="15 training samples, fewer than 20"):
        m = dsm.SoilModel(target="soc", n_estimators=20).fit(X[:15], y[:15])
    assert m.level_map_ is None and m.metadata()["calibration"]["calibrated"] is False
    assert m.levels([0.05, 0.95]) == [0.05, 0.95]


def test_stock_hand_computed():
    # 20 g/kg SOC, bdod 1.3 kg/dm3, 0.3 m, 10 % coarse: 20 * 1.3 * 0.3 * 0.9 = 7.02 kg/m2
    assert dsm.stock(20.0, 1.3, 0.3, 10.0) == pytest.approx(7.02)
    np.testing.assert_allclose(dsm.stock(np.array([10.0, 5.0]), np.array([1.5, 1.0]), 0.1), [1.5, 0.5])
    with pytest.raises(ConfigError):
        dsm.stock(10.0, 1.3, 0.0)
    with pytest.raises(InputError, match="cfvo"):
        dsm.stock(10.0, 1.3, 0.3, 120.0)


def test_stock_column_and_map(tmp_path, scene):
    p = tmp_path / "s.csv"
    pd.DataFrame({"x": [1.0, 2], "y": [1.0, 2], "SOC": [20.0, 10.0], "BD": [1.3, 1.5]}).to_csv(p, index=False)
    s = dsm.read_samples(p, ["soc=SOC", "bdod=BD"], crs=f"EPSG:{EPSG}")
    dsm.stock_column(s, "soc", depth_m=0.3, cfvo=10.0)
    np.testing.assert_allclose(s.gdf["ocstk"], [7.02, 4.05])
    assert s.units["ocstk"] == "kg/m2"
    c = _write_raster(tmp_path / "c.tif", np.full((8, 8), 20.0, "float32"), scene.transform, scene.crs)
    out = dsm.stock_map(c, 1.3, tmp_path / "st.tif", depth_m=0.3, cfvo=10.0)
    with rasterio.open(out) as src:
        np.testing.assert_allclose(src.read(1), 7.02, rtol=1e-6)
        assert src.tags()["unit"] == "kg/m2"
    with pytest.raises(OutputExistsError):
        dsm.stock_map(c, 1.3, out, depth_m=0.3)


# ----------------------------------------------------------------------------- validation
def test_spatial_folds_keep_blocks_together():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10000, (500, 2))
    folds = dsm.spatial_folds(xy, 1000.0, k=5)
    blocks = dsm.spatial_blocks(xy, 1000.0)
    for b in np.unique(blocks):
        assert len(np.unique(folds[blocks == b])) == 1
    counts = np.bincount(folds)
    assert len(counts) == 5 and counts.max() - counts.min() < 0.2 * counts.mean()
    with pytest.raises(ConfigError, match="blocks"):
        dsm.spatial_folds(xy, 20000.0, k=5)


def test_metrics_pooled():
    m = dsm.metrics([1.0, 2, 3, 4], [1.5, 2, 2.5, 4], lo=[0, 0, 3.5, 0], hi=[2, 3, 4, 5])
    assert m["r2"] == pytest.approx(1 - 0.5 / 5.0)
    assert m["rmse"] == pytest.approx(np.sqrt(0.5 / 4))
    assert m["bias"] == pytest.approx(0.0)
    assert m["picp"] == pytest.approx(0.75)


def test_cross_validate_and_report(tmp_path):
    X, _, y = _synthetic(200, 3)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 5000, (200, 2))
    m = dsm.SoilModel(target="soc", n_estimators=60, n_jobs=2).fit(X, y, coords=xy)
    for method in ("kfold", "spatial", "oob"):
        r = dsm.cross_validate(m, method=method, k=5, block_size=1000.0)
        assert r.metrics["n"] == 200
        assert r.metrics["r2"] > 0.7
        assert 0.75 <= r.metrics["picp"] <= 0.99
    folder = r.write(tmp_path / "rep")
    for f in ("report.md", "report.html", "observed_vs_predicted.png", "residual_map.png", "importance.png",
              "coverage.png", "predictions.csv", "metrics.json"):
        assert (folder / f).exists(), f
    with pytest.raises(OutputExistsError):
        r.write(folder)
    with pytest.raises(ConfigError, match="block_size"):
        dsm.cross_validate(m, method="spatial")


# ----------------------------------------------------------------------------- prediction
@pytest.fixture(scope="module")
def trained(scene):
    s = dsm.read_samples(scene.csv, "soc=SOC", crs=scene.crs)
    stack = dsm.build_stack(scene.products, ["SRC_MEAN", "BSF"])
    return dsm.train(s, "soc", stack, n_estimators=100, n_jobs=2)


def test_predict_map_cogs(tmp_path, scene, trained):
    from soilsuite.io.cog import validate_cog

    paths = dsm.predict_map(trained, tmp_path / "maps", block_size=32)
    assert set(paths) == {"mean", "q05", "q50", "q95", "uncertainty", "di", "aoa", "outside_range"}
    arr = {}
    for k, p in paths.items():
        ok, errors, _ = validate_cog(p)
        assert ok, (k, errors)
        with rasterio.open(p) as src:
            arr[k] = src.read(1)
            tags = src.tags()
            if k in ("mean", "q05", "q50", "q95"):
                assert tags["unit"] == "g/kg" and np.isnan(src.nodata)
            if k == "aoa":
                assert src.nodata == 255
    valid = np.isfinite(arr["q50"])
    assert valid[~(scene.mask == 1)].sum() == 0 and valid[scene.mask == 1].all()
    assert (arr["q05"][valid] <= arr["q50"][valid]).all() and (arr["q50"][valid] <= arr["q95"][valid]).all()
    np.testing.assert_allclose(arr["uncertainty"][valid],
                               ((arr["q95"] - arr["q05"]) / arr["q50"])[valid], rtol=1e-5)
    assert (arr["aoa"][~valid] == 255).all()
    r2 = 1 - np.nansum((arr["q50"] - scene.soc) ** 2) / np.nansum(
        (scene.soc[valid] - scene.soc[valid].mean()) ** 2)
    assert r2 > 0.7
    with pytest.raises(OutputExistsError):
        dsm.predict_map(trained, tmp_path / "maps")


def test_dissimilarity_higher_outside_training_range(trained):
    X = trained.X_train_
    inside = X[:50]
    outside = X[:50] + 2 * (X.max(axis=0) - X.min(axis=0))
    di_in, di_out = trained.dissimilarity(inside), trained.dissimilarity(outside)
    assert np.all(di_out > di_in.max())
    assert np.all(di_out > trained.aoa_["threshold"])
    assert (trained.outside_range(outside) == X.shape[1]).all()
    assert (trained.outside_range(inside) == 0).all()


# ----------------------------------------------------------------------------- CLI
def test_cli_round_trip(tmp_path, scene):
    from typer.testing import CliRunner

    from soilsuite.cli import app

    run = CliRunner().invoke
    model = tmp_path / "soc.joblib"
    r = run(app, ["dsm", "train", str(scene.csv), "--property", "soc=SOC", "--crs", scene.crs,
                  "--products", str(scene.products), "--model-out", str(model), "--trees", "60",
                  "--tune", "--tune-method", "oob"])
    assert r.exit_code == 0, r.output
    assert model.exists() and "R2=" in r.output
    r = run(app, ["dsm", "validate", str(model), "--out", str(tmp_path / "val"), "--k", "4"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "val" / "report.html").exists()
    r = run(app, ["dsm", "predict", str(model), "--out", str(tmp_path / "maps"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "maps" / "soc_q50.tif").exists()
    # bad input: exit 2 with a one-line message naming the culprit
    r = run(app, ["dsm", "train", str(scene.csv), "--property", "soc=NOPE", "--crs", scene.crs,
                  "--products", str(scene.products), "--model-out", str(tmp_path / "x.joblib")])
    assert r.exit_code == 2 and "NOPE" in r.output
    r = run(app, ["dsm", "predict", str(model), "--out", str(tmp_path / "maps"), "--quiet"])
    assert r.exit_code == 2 and "overwrite" in r.output
    r = run(app, ["dsm", "train", str(scene.csv), "--property", "soc=SOC", "--crs", scene.crs,
                  "--model-out", str(tmp_path / "y.joblib")])
    assert r.exit_code == 2 and "covariates" in r.output


# ----------------------------------------------------------------------------- demo step
def test_demo_soil_map_on_fake_sim(tmp_path):
    import xarray as xr
    from rich.console import Console

    from soilsuite.dsm.demo import demo_soil_map

    info = make_products(tmp_path / "products", 80, 80, seed=4)
    h, w = info["shape"]
    lc = np.ones((h, w), np.uint8)
    lc[:, :10] = 3
    truth = xr.Dataset({"soc": (("y", "x"), info["soc"]), "landcover": (("y", "x"), lc)})
    sim = SimpleNamespace(out=tmp_path / "archive", epsg=EPSG)
    res = demo_soil_map(tmp_path, sim, Console(quiet=True), truth=truth, n_samples=100, n_estimators=80)
    assert res["n_samples"] == 100
    assert res["r2_map"] > 0.7
    assert Path(res["paths"]["q50"]).exists() and (tmp_path / "soil" / "samples.csv").exists()


# ----------------------------------------------------------------------------- real data
@pytest.mark.realdata
@pytest.mark.skipif(not (REALDATA / "BB.250.npz").exists(), reason="LimeSoDa not fetched (make realdata)")
def test_limesoda_bb250_soc():
    """LimeSoDa BB.250 SOC, package folds: published RF R2 0.89 (../shared/DATA.md); accept >= 0.8."""
    d = np.load(REALDATA / "BB.250.npz", allow_pickle=True)
    df = pd.DataFrame(d["dataset_data"].astype("float64"), columns=[str(c) for c in d["dataset_columns"]])
    X = df.drop(columns=["SOC_target", "pH_target", "Clay_target"])
    m = dsm.SoilModel(target="soc", n_estimators=200, n_jobs=2, unit="%")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = dsm.cross_validate(m, X, df["SOC_target"], folds=d["folds"])
    assert r.metrics["r2"] >= 0.8
    assert 0.8 <= r.metrics["picp"] <= 0.97
