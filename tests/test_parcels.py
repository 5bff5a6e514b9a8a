"""Parcel statistics (soilsuite.parcels): exact-area zonal statistics against numpy.

A small synthetic product folder (COGs written by the project's writer, so the values and
nodata are known) is the raster; parcels are pixel-aligned or half-pixel rectangles whose
statistics are computed directly with numpy on the decoded arrays.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from odc.geo.geobox import GeoBox
from typer.testing import CliRunner

from soilsuite import products as P
from soilsuite.cli import app
from soilsuite.errors import InputError, OutputExistsError
from soilsuite.io.cog import write_cog
from soilsuite.parcels import ParcelWarning, parcel_stats, parcel_summary, weighted_median

X0, Y0, RES, NY, NX = 400000.0, 5800000.0, 20.0, 12, 10
CRS = "EPSG:32633"
GB = GeoBox.from_bbox((X0, Y0 - NY * RES, X0 + NX * RES, Y0), CRS, resolution=RES)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    bsf = rng.uniform(0, 1, (NY, NX)).round(3).astype(np.float32)
    bsf[0, 0] = np.nan
    src = rng.integers(300, 3000, (10, NY, NX)).astype(np.int16)
    src[:, 1, 1] = -9999
    mask = rng.integers(0, 4, (NY, NX)).astype(np.uint8)
    till = rng.integers(0, 3, (NY, NX)).astype(np.uint16)
    till[2, 2] = 65535
    plough = rng.integers(0, 2, (NY, NX)).astype(np.uint8)
    plough[:, :3] = 255  # off grassland
    return {"BSF": bsf, "SRC_MEAN": src, "MASK": mask, "TILLAGE_EVENTS": till, "PLOUGHED": plough}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("parcel_products") / "products"
    (out / "2021").mkdir(parents=True)
    data = _arrays(0)
    for name, a in data.items():
        write_cog(out / f"{name}.tif", a, P.get(name), geobox=GB)
    y21 = _arrays(1)
    for name in ("BSF", "PLOUGHED", "MASK"):
        write_cog(out / "2021" / f"{name}.tif", y21[name], P.get(name), geobox=GB)
    return out, data, y21


def _box(r0, c0, r1, c1, dx0=0.0, dx1=0.0):
    """Pixel rows r0..r1-1, cols c0..c1-1 as a box in the grid CRS (x edges shifted by dx0/dx1 m)."""
    return shapely.box(X0 + c0 * RES + dx0, Y0 - r1 * RES, X0 + c1 * RES + dx1, Y0 - r0 * RES)


ALIGNED = {"a": (0, 0, 4, 5), "b": (3, 2, 9, 8), "c": (8, 6, 12, 10)}


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    p = tmp_path_factory.mktemp("parcels") / "aligned.gpkg"
    g = gpd.GeoDataFrame({"fid_code": list(ALIGNED), "use": ["grassland", "arable", "grassland"]},
                         geometry=[_box(*v) for v in ALIGNED.values()], crs=CRS)
    g.to_file(p)
    return p, g


def _decode(name, a):
    return P.get(name).decode(a)


def test_pixel_aligned_parcels_equal_numpy(folder, aligned):
    out, data, _ = folder
    res = parcel_stats(out, aligned[0], id="fid_code", periods=["window"])
    t = res.table.set_index("fid_code")
    assert len(t) == 3 and not res.repaired and not res.outside
    for pid, (r0, c0, r1, c1) in ALIGNED.items():
        row = t.loc[pid]
        bsf = _decode("BSF", data["BSF"])[r0:r1, c0:c1]
        v = bsf[np.isfinite(bsf)]
        assert row["BSF_count"] == pytest.approx(v.size)
        assert row["BSF_mean"] == pytest.approx(v.mean(), rel=1e-9)
        assert row["BSF_median"] == pytest.approx(np.median(v), rel=1e-9)
        assert row["BSF_min"] == pytest.approx(v.min()) and row["BSF_max"] == pytest.approx(v.max())
        assert row["BSF_std"] == pytest.approx(v.std(ddof=0), rel=1e-6)
        assert row["BSF_coverage"] == pytest.approx(v.size / bsf.size)
        b = _decode("SRC_MEAN", data["SRC_MEAN"])[:, r0:r1, c0:c1]
        for i, band in enumerate(P.get("SRC_MEAN").bands):
            bv = b[i][np.isfinite(b[i])]
            assert row[f"SRC_MEAN_{band}_mean"] == pytest.approx(bv.mean(), rel=1e-9)  # reflectance 0-1
        m = data["MASK"][r0:r1, c0:c1]
        has = m[m != 0]
        for c in (1, 2, 3):
            assert row[f"MASK_share_{c}"] == pytest.approx(np.mean(has == c))
        assert row["MASK_coverage"] == pytest.approx(has.size / m.size)
        tl = data["TILLAGE_EVENTS"][r0:r1, c0:c1]
        tv = tl[tl != 65535]
        assert row["TILLAGE_EVENTS_share_gt0"] == pytest.approx(np.mean(tv > 0))
        assert row["area"] == pytest.approx((r1 - r0) * (c1 - c0) * RES * RES)
    assert "BSF_2021_mean" not in t.columns  # periods=["window"]


def test_partial_pixels_are_weighted_by_area(folder, tmp_path):
    out, data, _ = folder
    # columns 2..5 of rows 3..6, the first and last column half inside (x edges shifted by 10 m)
    g = gpd.GeoDataFrame({"pid": [7]}, geometry=[_box(3, 2, 7, 6, dx0=10.0, dx1=-10.0)], crs=CRS)
    p = tmp_path / "half.gpkg"
    g.to_file(p)
    row = parcel_stats(out, p, id="pid", names=["BSF"], periods=["window"]).table.iloc[0]
    v = _decode("BSF", data["BSF"])[3:7, 2:6]
    w = np.ones_like(v)
    w[:, 0] = w[:, -1] = 0.5
    ok = np.isfinite(v)
    assert row["BSF_count"] == pytest.approx(w[ok].sum())
    assert row["BSF_mean"] == pytest.approx(np.sum(w[ok] * v[ok]) / w[ok].sum(), rel=1e-9)
    # integer weights 1:2 -> the weighted median is the median of the values repeated by weight
    assert row["BSF_median"] == pytest.approx(np.median(np.repeat(v[ok], (2 * w[ok]).astype(int))))
    wm = np.sum(w[ok] * v[ok]) / w[ok].sum()
    assert row["BSF_std"] == pytest.approx(np.sqrt(np.sum(w[ok] * (v[ok] - wm) ** 2) / w[ok].sum()), rel=1e-6)


def test_weighted_median_matches_numpy_for_equal_weights():
    rng = np.random.default_rng(5)
    vals = [rng.normal(size=n) for n in (1, 2, 5, 6, 0, 11)]
    got = weighted_median(vals, [np.ones(len(v)) for v in vals])
    want = [np.median(v) if len(v) else np.nan for v in vals]
    np.testing.assert_allclose(got, want)
    # exactextract's own median gives 0.5 here; the weighted median is 0
    assert weighted_median([np.array([0.0] * 12 + [1.0] * 4)], [np.ones(16)])[0] == 0.0


def test_parcels_in_another_crs_give_the_same_numbers(folder, aligned, tmp_path):
    out, _, _ = folder
    ref = parcel_stats(out, aligned[0], id="fid_code", names=["BSF", "MASK"]).table.set_index("fid_code")
    g = aligned[1].to_crs("EPSG:4326")
    g.geometry = g.geometry.segmentize(0.00001)  # keep edges straight in UTM after the round trip
    p = tmp_path / "ll.parquet"
    g.to_parquet(p)
    csv = tmp_path / "ll.csv"
    pd.DataFrame({"fid_code": g["fid_code"], "wkt": g.geometry.to_wkt()}).to_csv(csv, index=False)
    for path, kw in ((p, {}), (csv, {"parcels_crs": "EPSG:4326"})):
        with warnings.catch_warnings():  # edge parcels: a few mm outside after the round trip
            warnings.simplefilter("ignore", ParcelWarning)
            t = parcel_stats(out, path, id="fid_code", names=["BSF", "MASK"], **kw).table.set_index("fid_code")
        for col in ("BSF_mean", "BSF_median", "BSF_2021_mean", "MASK_share_1", "BSF_count"):
            np.testing.assert_allclose(t[col], ref[col], rtol=2e-3, err_msg=f"{path.suffix} {col}")


def test_invalid_geometry_is_repaired_and_reported(folder, tmp_path):
    out, _, _ = folder
    bow = shapely.Polygon([(X0 + 20, Y0 - 20), (X0 + 100, Y0 - 100), (X0 + 100, Y0 - 20), (X0 + 20, Y0 - 100)])
    g = gpd.GeoDataFrame({"pid": ["bowtie", "ok"]}, geometry=[bow, _box(0, 0, 2, 2)], crs=CRS)
    p = tmp_path / "bad.gpkg"
    g.to_file(p)
    with pytest.warns(ParcelWarning, match=r"1 invalid geometry repaired.*bowtie: Self-intersection"):
        res = parcel_stats(out, p, id="pid", names=["BSF"])
    t = res.table.set_index("pid")
    assert bool(t.loc["bowtie", "repaired"]) and not bool(t.loc["ok", "repaired"])
    assert t.loc["bowtie", "area"] == pytest.approx(80 * 80 / 2)  # two triangles of the bow tie
    assert np.isfinite(t.loc["bowtie", "BSF_mean"])


def test_outside_parcels_are_listed_and_kept(folder, tmp_path):
    out, _, _ = folder
    far = shapely.box(X0 + 5000, Y0 + 5000, X0 + 5100, Y0 + 5100)
    edge = _box(0, 8, 2, 12)  # half beyond the east edge
    g = gpd.GeoDataFrame({"pid": [1, 2, 3]}, geometry=[_box(0, 0, 2, 2), far, edge], crs=CRS)
    p = tmp_path / "out.fgb"
    g.to_file(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = parcel_stats(out, p, id="pid", names=["BSF"])
    msgs = [str(w.message) for w in caught if issubclass(w.category, ParcelWarning)]
    assert any("entirely outside" in m and ": 2" in m for m in msgs), msgs
    assert any("partly outside" in m and ": 3" in m for m in msgs), msgs
    t = res.table.set_index("pid")
    assert sorted(t.index) == [1, 2, 3]  # FlatGeobuf keeps its spatial-index order
    assert bool(t.loc[2, "outside"]) and np.isnan(t.loc[2, "BSF_mean"])
    assert t.loc[3, "inside_fraction"] == pytest.approx(0.5)


def test_ids_missing_or_duplicate_are_errors(folder, tmp_path):
    out, _, _ = folder
    g = gpd.GeoDataFrame({"pid": ["x", "x", None]}, geometry=[_box(0, 0, 1, 1)] * 3, crs=CRS)
    p = tmp_path / "dup.gpkg"
    g.iloc[:2].to_file(p)
    with pytest.raises(InputError, match=r"dup.gpkg: 1 id\(s\) in column 'pid' occur more than once: x"):
        parcel_stats(out, p, id="pid")
    p2 = tmp_path / "null.gpkg"
    g.iloc[1:].to_file(p2)
    with pytest.raises(InputError, match=r"1 parcel\(s\) without an id in column 'pid' \(rows 2\)"):
        parcel_stats(out, p2, id="pid")
    with pytest.raises(InputError, match=r"has no column nope; columns: pid"):
        parcel_stats(out, p2, id="nope")
    r = CliRunner().invoke(app, ["parcels", str(out), str(p), "--id", "pid", "--out", str(tmp_path / "t.csv")])
    assert r.exit_code == 2
    assert "occur more than once" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("ext", ["gpkg", "parquet", "csv"])
def test_table_formats_and_overwrite(folder, aligned, tmp_path, ext):
    out, _, _ = folder
    target = tmp_path / f"stats.{ext}"
    res = parcel_stats(out, aligned[0], id="fid_code", out=target, names=["BSF"], keep=["use"])
    back = (pd.read_csv(target) if ext == "csv" else gpd.read_parquet(target) if ext == "parquet"
            else gpd.read_file(target))
    assert list(back["fid_code"]) == list(ALIGNED)
    np.testing.assert_allclose(back["BSF_mean"], res.table["BSF_mean"])
    assert list(back["use"]) == ["grassland", "arable", "grassland"]
    if ext != "csv":
        assert back.crs == CRS and back.geometry.area.iloc[0] == pytest.approx(4 * 5 * RES * RES)
    with pytest.raises(OutputExistsError, match="exists already"):
        parcel_stats(out, aligned[0], id="fid_code", out=target, names=["BSF"])
    assert not list(tmp_path.glob("*.tmp*"))


def test_summary_share_of_ploughed_grassland_parcels_per_period(folder, aligned, tmp_path):
    out, data, y21 = folder
    t = parcel_stats(out, aligned[0], id="fid_code", names=["PLOUGHED", "MASK"], keep=["use"]).table
    s = parcel_summary(t, product="PLOUGHED", threshold=0.0, by="use").set_index(["period", "use"])
    for label, arr in (("window", data["PLOUGHED"]), ("2021", y21["PLOUGHED"])):
        for use in ("arable", "grassland"):
            ids = [k for k, u in zip(ALIGNED, ["grassland", "arable", "grassland"], strict=True) if u == use]
            flags = []
            for k in ids:
                r0, c0, r1, c1 = ALIGNED[k]
                v = arr[r0:r1, c0:c1]
                v = v[v != 255]
                flags.append(np.nan if v.size == 0 else float(np.mean(v == 1) > 0))
            flags = np.array(flags)
            ok = np.isfinite(flags)
            assert s.loc[(label, use), "parcels"] == ok.sum()
            assert s.loc[(label, use), "share"] == pytest.approx(flags[ok].mean() if ok.any() else np.nan,
                                                                 nan_ok=True)
    assert s["rule"].iloc[0] == "PLOUGHED_share_1 > 0"
    with pytest.raises(InputError, match="no column BSF"):
        parcel_summary(t, product="BSF")


def test_cli_parcels_with_summary(folder, aligned, tmp_path):
    out, _, _ = folder
    target = tmp_path / "t.csv"
    r = CliRunner().invoke(app, ["parcels", str(out), str(aligned[0]), "--id", "fid_code", "--out", str(target),
                                 "--names", "MASK", "--summary", "MASK:share_1>0.2", "--quiet"])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "t_summary.csv")
    t = pd.read_csv(target)
    assert list(s["period"]) == ["2021", "window"]
    assert s.set_index("period").loc["window", "parcels_above"] == int((t["MASK_share_1"] > 0.2).sum())


def test_simulated_run_fields(sim_products, sim_archive, tmp_path):
    """On a real composite run: every period's columns, shares of MASK classes add up to 1."""
    g = gpd.read_file(sim_archive.truth_dir / "fields.geojson").dissolve("field_id", as_index=False)
    p = tmp_path / "fields.gpkg"
    g.to_file(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParcelWarning)
        t = parcel_stats(sim_products, p, id="field_id", names=["MASK", "BSF"]).table
    assert len(t) == len(g)
    for label in ("", "_2021", "_2022"):
        shares = t[[f"MASK{label}_share_{c}" for c in (1, 2, 3)]].sum(axis=1)
        ok = t[f"MASK{label}_count"] > 0
        np.testing.assert_allclose(shares[ok], 1.0, atol=1e-9)
        assert t[f"BSF{label}_mean"].between(0, 1).all()


def test_csv_needs_a_crs_and_a_wkt_column(folder, tmp_path):
    out, _, _ = folder
    csv = tmp_path / "p.csv"
    pd.DataFrame({"pid": [1], "wkt": [_box(0, 0, 1, 1).wkt]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"is a CSV and carries no CRS; give it with --parcels-crs"):
        parcel_stats(out, csv, id="pid")
    pd.DataFrame({"pid": [1], "shape": [_box(0, 0, 1, 1).wkt]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"no WKT geometry column .*columns: pid, shape"):
        parcel_stats(out, csv, id="pid", parcels_crs=CRS)
    t = parcel_stats(out, csv, id="pid", parcels_crs=CRS, wkt_column="shape", names=["BSF"]).table
    assert t["BSF_count"].iloc[0] == pytest.approx(0.0)  # pixel (0, 0) is nodata
    assert t["BSF_coverage"].iloc[0] == pytest.approx(0.0) and np.isnan(t["BSF_mean"].iloc[0])
