"""Pictures: a pixel's / parcel's PV+IR2 series and the per-period map panel.

The data drawn is checked against the products the composite wrote (``sim_products``): the
bare observations of a pixel are its BSC, its valid ones its VPC; the tillage marks are the
temporal kernel's count; the map panel shows the period files.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import geometry_mask
from typer.testing import CliRunner

from soilsuite.cli import app
from soilsuite.io.products import read_product
from soilsuite.kernels import temporal as KT
from soilsuite.plots import plot_parcel, plot_pixel, plot_years


def _pixel(sim_products, n_min=4):
    """Centre (x, y) and (row, col) of a pixel with at least ``n_min`` bare observations."""
    bsc, info = read_product(sim_products / "BSC.tif", decode=False)
    rows, cols = np.nonzero(bsc[0] >= n_min)
    r, c = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    x, y = info["transform"] * (c + 0.5, r + 0.5)
    return x, y, r, c


@pytest.fixture(scope="module")
def pixel_plot(sim_products, tmp_path_factory):
    x, y, r, c = _pixel(sim_products)
    out = tmp_path_factory.mktemp("plots") / "pixel.png"
    return plot_pixel(sim_products, out, x=x, y=y), (r, c)


def test_pixel_series_matches_the_products(sim_products, pixel_plot):
    res, (r, c) = pixel_plot
    df = res.data
    assert res.path.exists() and res.path.stat().st_size > 10_000
    with rasterio.open(sim_products / "BSC.tif") as b, rasterio.open(sim_products / "VPC.tif") as v:
        bsc, vpc = int(b.read(1)[r, c]), int(v.read(1)[r, c])
    assert (df["status"] == "bare").sum() == bsc
    valid = df["status"].isin(["bare", "vegetated", "NBR2 guard", "land cover", "blue filter"])
    assert valid.sum() == vpc
    for year in (2021, 2022):  # and per period
        with rasterio.open(sim_products / str(year) / "BSC.tif") as b:
            assert ((df["status"] == "bare") & (df["date"].dt.year == year)).sum() == int(b.read(1)[r, c])
    # every observation has one status; the marks drawn are the statuses counted
    assert df["status"].notna().all()
    for st, n in res.marks.items():
        if st != "tillage":
            assert n == (df["status"] == st).sum(), st
    assert (df.loc[df["status"] == "vegetated", "index"] > 0.2).all()
    assert (df.loc[df["status"] == "bare", "index"] <= 0.2).all()
    assert df["status"].str.startswith(("invalid", "near", "sun", "missing")).sum() == len(df) - vpc


def test_pixel_tillage_marks_are_the_kernels_events(pixel_plot):
    res, _ = pixel_plot
    df = res.data
    days = df["date"].values.astype("datetime64[D]").astype(np.int64)
    flags = df["flags"].to_numpy(np.uint8)[:, None, None]
    ref = KT.bare_dates_reference(flags, days, np.zeros(len(days), np.int64), 1, np.array([days.max()]), 30)
    assert res.marks["tillage"] == int(df["tillage"].sum()) == int(np.nan_to_num(ref["tillage_events"][0, 0, 0]))
    for d in df.loc[df["tillage"], "date"]:  # each event starts on a bare observation
        assert df.loc[df["date"] == d, "status"].item() == "bare"


def test_parcel_series_adds_up_to_bsc(sim_products, sim_archive, tmp_path):
    g = gpd.read_file(sim_archive.truth_dir / "fields.geojson").dissolve("field_id", as_index=False)
    p = tmp_path / "fields.gpkg"
    g.to_file(p)
    with rasterio.open(sim_products / "BSC.tif") as src:
        bsc, tr, crs, shape = src.read(1), src.transform, src.crs, src.shape
    fid = int(g.assign(a=g.to_crs(crs).area).sort_values("a").iloc[len(g) // 2]["field_id"])
    res = plot_parcel(sim_products, tmp_path / "parcel.png", parcels=p, parcel=str(fid), id="field_id")
    df = res.data
    geom = g[g["field_id"] == fid].to_crs(crs).geometry.iloc[0]
    inside = ~geometry_mask([geom], out_shape=shape, transform=tr)
    # bare pixel-observations of the parcel = the sum of BSC over its pixels
    assert np.rint((df["bare_share"].fillna(0) * df["valid_pixels"]).sum()) == bsc[inside].sum()
    assert df["valid_pixels"].max() <= inside.sum()
    assert res.marks["bare"] == (df["status"] == "bare").sum()
    assert df["bare_share"].dropna().between(0, 1).all()
    assert res.path.stat().st_size > 10_000


def test_year_panel_shows_the_period_files(sim_products, tmp_path):
    res = plot_years(sim_products, tmp_path / "years.png")
    assert list(res.data) == ["2021", "2022"] and res.marks["panels"] == 2
    for label, arr in res.data.items():
        want, _ = read_product(sim_products / label / "BSF.tif")
        np.testing.assert_array_equal(np.isnan(arr), np.isnan(want[0]))
        np.testing.assert_allclose(arr[np.isfinite(arr)], want[0][np.isfinite(want[0])])
    r = CliRunner().invoke(app, ["plot-years", str(sim_products), "--out", str(tmp_path / "years.png")])
    assert r.exit_code == 2 and "exists already" in r.output
    r = CliRunner().invoke(app, ["plot-years", str(sim_products), "--out", str(tmp_path / "m.png"), "--product",
                                 "MASK"])
    assert r.exit_code == 0, r.output


def test_plot_pixel_errors_are_one_line(sim_products, tmp_path):
    r = CliRunner().invoke(app, ["plot-pixel", str(sim_products), "--x", "0", "--y", "0", "--out",
                                 str(tmp_path / "p.png")])
    assert r.exit_code == 2 and "outside the products' grid" in r.output
    r = CliRunner().invoke(app, ["plot-pixel", str(sim_products), "--lon", "14.1", "--out", str(tmp_path / "p.png")])
    assert r.exit_code == 2 and "--lon and --lat" in r.output
