"""soilsuite export: resampling per product onto another grid, COG/GTiff/NetCDF/Zarr round trips.

Uses the session's composite run (``sim_products``: 96 x 96 px at 20 m, window + 2021/2022).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from typer.testing import CliRunner

from soilsuite import products as P
from soilsuite.cli import app
from soilsuite.errors import ConfigError, OutputExistsError
from soilsuite.export import export_products
from soilsuite.io.cog import validate_cog
from soilsuite.io.products import read_product


def _blocks(a: np.ndarray, k: int = 2) -> np.ndarray:
    """[..., Y, X] -> [..., Y/k, X/k, k*k] blocks of k x k pixels."""
    *lead, h, w = a.shape
    b = a[..., : h - h % k, : w - w % k].reshape(*lead, h // k, k, w // k, k)
    return np.moveaxis(b, -3, -2).reshape(*lead, h // k, w // k, k * k)


@pytest.fixture(scope="module")
def cog2x(sim_products, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "cog40"
    res = export_products(sim_products, out, res=40.0, counts="nearest")
    return out, res


def test_round_trip_grid_nodata_scale_names(sim_products, cog2x):
    out, res = cog2x
    assert res.methods["SRC_MEAN"] == "average" and res.methods["MASK"] == "mode" and res.methods["VPC"] == "nearest"
    for label in ("", "2021/", "2022/"):
        for name in ("SRC_MEAN", "MASK", "VPC", "BSF"):
            src_p, dst_p = sim_products / f"{label}{name}.tif", out / f"{label}{name}.tif"
            ok, errors, _ = validate_cog(dst_p)
            assert ok, errors
            with rasterio.open(src_p) as s, rasterio.open(dst_p) as d:
                assert d.crs == s.crs
                assert d.res == (40.0, 40.0)
                assert (d.width, d.height) == (s.width // 2, s.height // 2)
                assert d.bounds == s.bounds
                assert d.dtypes == s.dtypes
                assert d.scales == s.scales and d.offsets == s.offsets
                assert (d.nodata == s.nodata) or (np.isnan(d.nodata) and np.isnan(s.nodata))
                assert d.descriptions == s.descriptions
                assert d.tags()["PRODUCT"] == name and d.tags()["RESAMPLING"] == res.methods[name]


def test_reflectance_averaged_to_2x_is_the_block_mean(sim_products, cog2x):
    """Stored values (reflectance x 10000): the mean of each 2 x 2 block's valid pixels, rounded
    once (half to even); blocks without a valid pixel are nodata."""
    out, _ = cog2x
    src, _ = read_product(sim_products / "SRC_MEAN.tif", decode=False)
    dst, _ = read_product(out / "SRC_MEAN.tif", decode=False)
    b = _blocks(src).astype(np.float64)
    valid = b != -9999
    n = valid.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(n > 0, np.rint(np.where(valid, b, 0).sum(-1) / n), -9999)
    np.testing.assert_array_equal(dst, want.astype(np.int16))
    assert (dst != -9999).mean() > 0.3  # many blocks have bare-soil pixels


def test_mask_mode_keeps_classes_and_counts_nearest(sim_products, cog2x):
    out, _ = cog2x
    src, _ = read_product(sim_products / "MASK.tif", decode=False)
    dst, _ = read_product(out / "MASK.tif", decode=False)
    assert set(np.unique(dst)) <= set(np.unique(src)) <= set(P.MASK_CLASSES)
    b = _blocks(src[0])
    for i, j in np.ndindex(dst.shape[1:]):
        vals, cnt = np.unique(b[i, j][b[i, j] != 0], return_counts=True)
        if len(cnt) and (cnt.max() >= 3 or (len(cnt) == 1)):  # a clear majority of the valid pixels
            assert dst[0, i, j] == vals[np.argmax(cnt)], (i, j, b[i, j])
    v_src, _ = read_product(sim_products / "VPC.tif", decode=False)
    v_dst, _ = read_product(out / "VPC.tif", decode=False)
    bv = _blocks(v_src[0])
    assert all(v_dst[0, i, j] in bv[i, j] for i, j in np.ndindex(v_dst.shape[1:]))


def test_counts_sum_keeps_totals_and_widens_the_type(sim_products, tmp_path):
    out = tmp_path / "sum"
    export_products(sim_products, out, res=40.0, counts="sum", names=["VPC", "BSC"], periods=["window"])
    for name in ("VPC", "BSC"):
        src, _ = read_product(sim_products / f"{name}.tif", decode=False)
        with rasterio.open(out / f"{name}.tif") as d:
            assert d.dtypes[0] == "uint32" and d.tags()["RESAMPLING"] == "sum"
            dst = d.read()
        assert int(dst.astype(np.int64).sum()) == int(src.astype(np.int64).sum())
        np.testing.assert_array_equal(dst[0], _blocks(src[0].astype(np.int64)).sum(-1))


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_netcdf_and_zarr_hold_the_same_values(sim_products, cog2x, tmp_path, fmt):
    out = tmp_path / fmt
    export_products(sim_products, out, res=40.0, format=fmt, names=["SRC_MEAN", "MASK", "BSF"])
    ext = "nc" if fmt == "netcdf" else "zarr"
    for label, sub in (("window", ""), ("2021", "2021/")):
        ds = xr.open_zarr(out / f"soilsuite_{label}.{ext}") if fmt == "zarr" else \
            xr.open_dataset(out / f"soilsuite_{label}.{ext}")
        with ds:
            for name in ("SRC_MEAN", "MASK", "BSF"):
                want, _ = read_product(cog2x[0] / f"{sub}{name}.tif")
                got = ds[name].values
                got = got if got.ndim == 3 else got[None]
                np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True, err_msg=f"{label} {name}")
                assert ds[name].attrs["units"] == P.get(name).unit
            assert [int(v) for v in np.atleast_1d(ds["MASK"].attrs["flag_values"])] == list(P.MASK_CLASSES)
            assert list(ds["band"].values) == list(P.get("SRC_MEAN").bands)
            assert ds["SRC_MEAN"].encoding["dtype"] == np.int16
            assert ds["SRC_MEAN"].encoding["scale_factor"] == pytest.approx(1e-4)
            assert "UTM zone 33N" in ds["spatial_ref"].attrs["crs_wkt"]


def test_other_crs_bbox_and_like(sim_products, cog2x, tmp_path):
    out = tmp_path / "laea"
    with pytest.raises(ConfigError, match="--res is needed when the CRS changes"):
        export_products(sim_products, out, crs="EPSG:3035", names=["BSF"])
    r = export_products(sim_products, out, crs="EPSG:3035", res=50, names=["BSF"], periods=["window"])
    with rasterio.open(out / "BSF.tif") as d:
        assert d.crs.to_epsg() == 3035 and d.res == (50.0, 50.0)
        assert d.bounds.left % 50 == 0 and d.bounds.top % 50 == 0  # aligned to the resolution
        v = d.read(1)
    assert np.nanmin(v) >= 0 and np.nanmax(v) <= 1 and np.isfinite(v).mean() > 0.5
    assert "EPSG:3035" in r.summary()
    with pytest.raises(ConfigError, match="minx < maxx"):
        export_products(sim_products, tmp_path / "x", bbox=(10, 0, 0, 10))
    like = cog2x[0] / "BSF.tif"
    export_products(sim_products, tmp_path / "like", like=like, names=["BSF"], periods=["window"])
    with rasterio.open(like) as a, rasterio.open(tmp_path / "like" / "BSF.tif") as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        np.testing.assert_array_equal(a.read(), b.read())


def test_refuses_to_replace_without_overwrite(sim_products, tmp_path):
    out = tmp_path / "e"
    export_products(sim_products, out, names=["MASK"], periods=["window"])
    with pytest.raises(OutputExistsError):
        export_products(sim_products, out, names=["MASK"], periods=["window"])
    export_products(sim_products, out, names=["MASK"], periods=["window"], overwrite=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    r = CliRunner().invoke(app, ["export", str(sim_products), "--out", str(tmp_path / "mine"), "--quiet"])
    assert r.exit_code == 2 and "not a soilsuite output" in r.output
    r = CliRunner().invoke(app, ["export", str(sim_products), "--out", str(tmp_path / "c"), "--format", "tiff"])
    assert r.exit_code == 2 and "choose one of cog, gtiff, netcdf, zarr" in r.output
