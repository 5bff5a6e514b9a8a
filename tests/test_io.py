"""Output writers and readers: COG, STAC output catalog, quicklooks, product Dataset, run record."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window
from stac_pydantic import Collection as PydCollection
from stac_pydantic import Item as PydItem

from soilsuite import __version__
from soilsuite import products as P
from soilsuite.errors import InputError, OutputExistsError
from soilsuite.io import cog, quicklook, stac
from soilsuite.io import products as iop
from soilsuite.sentinel2 import BANDS, COMMON_NAME, WAVELENGTH_UM

NY, NX = 300, 320
BLOCK = 128  # < image size, so that overviews exist
CRS = "EPSG:32633"
TRANSFORM = from_origin(400_000, 5_800_000, 20, 20)


def synthetic(name: str, seed: int = 0) -> np.ndarray:
    """Physical values of a product, NaN = nodata (a rectangle and scattered pixels)."""
    rng = np.random.default_rng(seed + len(name))
    spec = P.get(name)
    shape = (len(spec.bands), NY, NX) if len(spec.bands) > 1 else (NY, NX)
    if name in ("VPC", "BSC"):
        a = rng.integers(1, 120, shape).astype("float64")
    elif name == "MASK":
        a = rng.integers(1, 4, shape).astype("float64")
        a[:10, :10] = 0  # undetermined: stored 0 = nodata
    elif name == "BSF":
        a = rng.uniform(0, 1, shape)
    else:
        a = rng.uniform(-0.05, 0.8, shape)
    a[..., 100:180, 40:130] = np.nan
    a[..., rng.random((NY, NX)) < 0.02] = np.nan
    return a


def expected_physical(name: str, a: np.ndarray) -> np.ndarray:
    """What decoding the written file must give: NaN where the stored value is nodata."""
    out = a.copy()
    spec = P.get(name)
    if not math.isnan(spec.nodata):
        out[np.rint((np.nan_to_num(a, nan=spec.nodata + 1) - spec.offset) / spec.scale) == spec.nodata] = np.nan
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("products")
    data = {name: synthetic(name) for name in P.PRODUCTS}
    for name, a in data.items():
        cog.write_cog(out / f"{name}.tif", a, P.get(name), crs=CRS, transform=TRANSFORM, blocksize=BLOCK)
    return out, data


# ----------------------------------------------------------------------------- COG
@pytest.mark.parametrize("name", list(P.PRODUCTS))
def test_every_product_is_a_valid_cog(written, name):
    out, _ = written
    ok, errors, warnings = cog.validate_cog(out / f"{name}.tif")
    assert ok and errors == [], errors
    spec = P.get(name)
    with rasterio.open(out / f"{name}.tif") as src:
        ims = src.tags(ns="IMAGE_STRUCTURE")
        assert ims["LAYOUT"] == "COG"
        assert ims["COMPRESSION"] == "DEFLATE"
        assert ims["PREDICTOR"] == ("3" if spec.dtype.startswith("float") else "2")
        assert src.block_shapes[0] == (BLOCK, BLOCK)
        assert src.overviews(1) == [2, 4]


@pytest.mark.parametrize("name", list(P.PRODUCTS))
def test_metadata_read_back(written, name):
    out, data = written
    spec = P.get(name)
    with rasterio.open(out / f"{name}.tif") as src:
        assert src.dtypes[0] == spec.dtype
        assert src.count == len(spec.bands)  # 10 for spectral products, 12 months for BSF_MONTHLY, else 1
        if math.isnan(spec.nodata):
            assert math.isnan(src.nodata)
        else:
            assert src.nodata == spec.nodata
        assert src.scales == (spec.scale,) * src.count
        assert src.offsets == (spec.offset,) * src.count
        assert src.units == (spec.unit,) * src.count
        assert src.descriptions == (tuple(spec.bands) if len(spec.bands) > 1 else (spec.name,))
        assert src.crs.to_epsg() == 32633 and src.transform == TRANSFORM
        tags = src.tags()
        assert tags["PRODUCT"] == name and tags["SOILSUITE_VERSION"] == __version__
        assert tags["DESCRIPTION"] == spec.description
        if spec.is_spectral:
            assert float(src.tags(9)["WAVELENGTH"]) == WAVELENGTH_UM["B11"]


@pytest.mark.parametrize("name", list(P.PRODUCTS))
def test_values_round_trip_within_scale(written, name):
    out, data = written
    spec = P.get(name)
    with rasterio.open(out / f"{name}.tif") as src:
        stored = src.read()
    got = spec.decode(stored).reshape(data[name].shape)
    want = expected_physical(name, data[name])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    tol = spec.scale / 2 + 1e-12 if np.dtype(spec.dtype).kind in "iu" else 1e-7
    assert np.max(np.abs(got[ok] - want[ok])) <= tol


def test_mask_colour_table_classes_and_nearest_overviews(written):
    out, _ = written
    with rasterio.open(out / "MASK.tif") as src:
        cmap = src.colormap(1)
        for value, color in P.MASK_COLORS.items():
            rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
            assert cmap[value][:3] == rgb
        assert cmap[0][3] == 0  # nodata transparent
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
        for value, label in P.MASK_CLASSES.items():
            assert src.tags(1)[f"CLASS_{value}"] == label
        ovr = src.read(1, out_shape=(NY // 4, NX // 4))
    assert set(np.unique(ovr)) <= set(P.MASK_CLASSES)  # nearest: only classes
    qml = (out / "MASK.qml").read_text()
    assert 'type="paletted"' in qml and "bare surface occurrence (BSC &gt;= 3)" in qml


def test_overview_resampling_choice():
    assert cog.overview_resampling(P.get("MASK")) == "nearest"
    assert cog.overview_resampling(P.get("VPC")) == "nearest"
    assert cog.overview_resampling(P.get("SRC_MEAN")) == "average"
    assert cog.overview_resampling(P.get("BSF")) == "average"
    assert cog.predictor("float32") == 3 and cog.predictor("int16") == 2


def test_zero_counts_and_undetermined_mask_are_nodata_not_one(tmp_path):
    for name in ("MASK", "VPC"):
        a = np.array([[0.0, 1.0, 2.0, np.nan]] * 4)
        p = cog.write_cog(tmp_path / f"{name}.tif", a, P.get(name), crs=CRS, transform=TRANSFORM)
        with rasterio.open(p) as src:
            np.testing.assert_array_equal(src.read(1)[0], [0, 1, 2, 0])


def test_stored_values_are_written_unchanged(tmp_path):
    spec = P.get("SRC_MEAN")
    stored = np.random.default_rng(1).integers(-1000, 10000, (10, 40, 50)).astype("int16")
    stored[:, :5] = -9999
    p = cog.write_cog(tmp_path / "SRC_MEAN.tif", stored, spec, crs=CRS, transform=TRANSFORM)
    with rasterio.open(p) as src:
        np.testing.assert_array_equal(src.read(), stored)


def test_bad_shapes_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="SRC_MEAN"):
        cog.write_cog(tmp_path / "x.tif", np.zeros((3, 10, 10)), P.get("SRC_MEAN"), crs=CRS, transform=TRANSFORM)
    with pytest.raises(InputError, match="outside"):
        cog.write_cog_from_blocks(tmp_path / "y.tif", P.get("BSF"), crs=CRS, transform=TRANSFORM, shape=(10, 10),
                                  blocks=[(Window(5, 5, 10, 10), np.zeros((10, 10)))])
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_and_leaves_original_untouched(written, tmp_path):
    spec = P.get("BSF")
    p = cog.write_cog(tmp_path / "BSF.tif", np.full((20, 20), 0.25), spec, crs=CRS, transform=TRANSFORM)
    before = p.read_bytes()
    with pytest.raises(OutputExistsError, match="BSF.tif"):
        cog.write_cog(p, np.full((20, 20), 0.75), spec, crs=CRS, transform=TRANSFORM)
    with pytest.raises(OutputExistsError, match="BSF.tif"):
        cog.write_cog_from_blocks(p, spec, crs=CRS, transform=TRANSFORM, shape=(20, 20), blocks=[])
    assert p.read_bytes() == before
    cog.write_cog(p, np.full((20, 20), 0.75), spec, crs=CRS, transform=TRANSFORM, overwrite=True)
    with rasterio.open(p) as src:
        assert np.all(src.read(1) == 0.75)
    for folder in (tmp_path, written[0]):
        assert not [f for f in os.listdir(folder) if ".tmp" in f or f.endswith(".aux.xml")]


def test_from_blocks_equals_whole_array_and_cleans_up_on_failure(written, tmp_path):
    out, data = written
    spec = P.get("SRC_MEAN")
    a = data["SRC_MEAN"]

    def blocks():
        for r in range(0, NY, 64):
            for c in range(0, NX, 64):
                h, w = min(64, NY - r), min(64, NX - c)
                yield Window(c, r, w, h), a[:, r : r + h, c : c + w]

    p = cog.write_cog_from_blocks(tmp_path / "SRC_MEAN.tif", spec, crs=CRS, transform=TRANSFORM,
                                  shape=(NY, NX), blocks=blocks(), blocksize=BLOCK)
    assert cog.validate_cog(p)[0]
    with rasterio.open(p) as s1, rasterio.open(out / "SRC_MEAN.tif") as s2:
        np.testing.assert_array_equal(s1.read(), s2.read())
        assert s1.descriptions == BANDS and s1.scales == s2.scales

    # a block that is never written is nodata
    p2 = cog.write_cog_from_blocks(tmp_path / "BSC.tif", P.get("BSC"), crs=CRS, transform=TRANSFORM,
                                   shape=(NY, NX), blocks=[(Window(0, 0, 10, 10), np.full((10, 10), 7.0))])
    with rasterio.open(p2) as src:
        b = src.read(1)
    assert (b[:10, :10] == 7).all() and (b[10:] == 0).all() and (b[:, 10:] == 0).all()

    def failing():
        yield Window(0, 0, 10, 10), np.zeros((10, 10, 10))
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        cog.write_cog_from_blocks(tmp_path / "MREF_MEAN.tif", spec, crs=CRS, transform=TRANSFORM,
                                  shape=(NY, NX), blocks=failing())
    assert sorted(f.name for f in tmp_path.iterdir()) == ["BSC.tif", "SRC_MEAN.tif"]


def test_validate_cog_rejects_a_plain_geotiff(tmp_path):
    p = tmp_path / "plain.tif"
    with rasterio.open(p, "w", driver="GTiff", width=1100, height=1100, count=1, dtype="uint8",
                       crs=CRS, transform=TRANSFORM) as dst:
        dst.write(np.ones((1, 1100, 1100), "uint8"))
    ok, errors, _ = cog.validate_cog(p)
    assert not ok and errors
    assert cog.validate_cog(tmp_path / "missing.tif")[0] is False


# ----------------------------------------------------------------------------- Dataset
def test_open_products_physical_raw_and_lazy(written):
    out, data = written
    ds = iop.open_products(out)
    assert set(ds.data_vars) == set(P.PRODUCTS)
    assert ds["SRC_MEAN"].dims == ("band", "y", "x") and list(ds["band"].values) == list(BANDS)
    assert ds["BSF"].dims == ("y", "x") and ds.sizes == {"band": 10, "y": NY, "x": NX, "month": 12,
                                                                "provenance_band": 11}
    assert ds["BSF_MONTHLY"].dims == ("month", "y", "x")  # a multi-band product that is not spectral
    assert ds["PROVENANCE"].dims == ("provenance_band", "y", "x")
    assert ds.attrs["epsg"] == 32633 and "UTM zone 33N" in ds["spatial_ref"].attrs["crs_wkt"]
    assert ds["x"].values[0] == 400_010 and ds["y"].values[0] == 5_799_990
    for name in P.PRODUCTS:
        spec = P.get(name)
        want = expected_physical(name, data[name])
        got = ds[name].values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], atol=spec.scale / 2 + 1e-7, rtol=0)
        assert ds[name].attrs["units"] == spec.unit and ds[name].attrs["description"] == spec.description

    raw = iop.open_products(out, decode=False, products=["SRC_MEAN", "MASK"])
    assert set(raw.data_vars) == {"SRC_MEAN", "MASK"}
    assert raw["SRC_MEAN"].dtype == np.int16 and raw["SRC_MEAN"].attrs["nodata"] == -9999
    assert int(raw["SRC_MEAN"].values[0, 150, 60]) == -9999  # in the NaN rectangle

    lazy = iop.open_products(out, chunks=128)
    assert lazy["SRC_MEAN"].chunks is not None
    np.testing.assert_array_equal(lazy["SRC_MEAN"].values, ds["SRC_MEAN"].values)
    np.testing.assert_array_equal(lazy["MASK"].isel(x=slice(5, 200, 3)).values, ds["MASK"].isel(x=slice(5, 200, 3)).values)


def test_open_products_errors(tmp_path, written):
    with pytest.raises(InputError, match="no product files"):
        iop.open_products(tmp_path)
    with pytest.raises(InputError, match="missing"):
        iop.open_products(tmp_path, products=["BSF"])
    cog.write_cog(tmp_path / "BSF.tif", np.zeros((5, 5)), P.get("BSF"), crs=CRS, transform=TRANSFORM)
    cog.write_cog(tmp_path / "VPC.tif", np.ones((6, 5)), P.get("VPC"), crs=CRS, transform=TRANSFORM)
    with pytest.raises(InputError, match="grid"):
        iop.open_products(tmp_path)


def test_run_record_round_trip_is_json_safe(tmp_path):
    rec = {"start": dt.date(2018, 1, 1), "out": tmp_path, "shape": (3, 4), "n": np.int64(7),
           "bsf": np.float32("nan"), "arr": np.arange(3), "when": dt.datetime(2024, 5, 1, 12, 0),
           "nested": {"bands": BANDS, "s": {2, 1}}}
    p = iop.write_run_record(tmp_path, rec)
    assert p == tmp_path / "run.json"
    doc = json.loads(p.read_text())  # strict JSON: no NaN
    assert doc == iop.read_run_record(tmp_path) == iop.read_run_record(p)
    assert doc["soilsuite_version"] == __version__ and "written" in doc
    assert doc["start"] == "2018-01-01" and doc["out"] == str(tmp_path) and doc["shape"] == [3, 4]
    assert doc["n"] == 7 and doc["bsf"] is None and doc["arr"] == [0, 1, 2]
    assert doc["nested"] == {"bands": list(BANDS), "s": [1, 2]} and doc["when"] == "2024-05-01T12:00:00"
    with pytest.raises(OutputExistsError):
        iop.write_run_record(tmp_path, {}, overwrite=False)
    assert [f.name for f in tmp_path.iterdir()] == ["run.json"]
    with pytest.raises(InputError, match="no run record"):
        iop.read_run_record(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------- STAC
@pytest.fixture(scope="module")
def catalog(written):
    out, data = written
    year = out / "2019"
    year.mkdir()
    for name in ("BSF", "MASK"):
        cog.write_cog(year / f"{name}.tif", data[name], P.get(name), crs=CRS, transform=TRANSFORM, blocksize=BLOCK)
    qls = quicklook.quicklooks_for(out)
    products = {"window": iop.product_files(out), "2019": iop.product_files(year)}
    path = stac.write_output_catalog(out, products, crs=CRS, transform=TRANSFORM, shape=(NY, NX),
                                     start="2018-03-01", end=dt.date(2022, 10, 31),
                                     run_record={"soilsuite_version": __version__}, quicklooks=qls)
    iop.write_run_record(out, {"params": {"threshold": 0.2}})
    return path, out, data, qls


def test_stac_output_validates_offline(catalog):
    path, out, _, _ = catalog
    ok, errors = stac.validate_output_catalog(out)
    assert ok, errors
    coll = json.loads(path.read_text())
    PydCollection.model_validate(coll)
    assert coll["extent"]["temporal"]["interval"] == [["2018-03-01T00:00:00Z", "2022-10-31T23:59:59Z"]]
    items = sorted((out / "items").glob("*.json"))
    assert [p.name for p in items] == ["soilsuite-composite_2018-03-01_2022-10-31.json", "soilsuite-composite_2019.json"]
    for p in items:
        PydItem.model_validate(json.loads(p.read_text()))
    period = pystac.Item.from_file(str(out / "items" / "soilsuite-composite_2019.json"))
    assert period.properties["start_datetime"] == "2019-01-01T00:00:00Z"
    assert period.properties["end_datetime"] == "2019-12-31T23:59:59Z"
    assert set(period.assets) == {"BSF", "MASK", "run_record"}
    assert period.datetime.isoformat() == "2019-07-02T11:59:59+00:00"  # the period's middle
    with pytest.raises(OutputExistsError, match="collection.json"):
        stac.write_output_catalog(out, iop.product_files(out), start="2018-03-01", end="2022-10-31")


def test_stac_item_fields_and_statistics(catalog):
    path, out, data, qls = catalog
    item = pystac.Item.from_file(str(out / "items" / "soilsuite-composite_2018-03-01_2022-10-31.json"))
    props = item.properties
    # datetime: the window's last second (a period's middle), so no two Items share it
    assert props["datetime"] == "2022-10-31T23:59:59Z" and props["start_datetime"] == "2018-03-01T00:00:00Z"
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [NY, NX]
    assert json.loads(Path(item.get_self_href()).read_text())["properties"]["proj:epsg"] == 32633  # for stackstac
    assert props["proj:transform"] == list(TRANSFORM)[:6]
    assert props["proj:bbox"] == [400_000, 5_800_000 - 20 * NY, 400_000 + 20 * NX, 5_800_000]
    lon0, lat0, lon1, lat1 = item.bbox
    assert 13.4 < lon0 < lon1 < 13.7 and 52.2 < lat0 < lat1 < 52.4
    assert set(P.PRODUCTS) <= set(item.assets)
    for name in P.PRODUCTS:
        spec = P.get(name)
        asset = item.assets[name]
        assert asset.media_type == pystac.MediaType.COG and asset.roles == ["data"]
        assert Path(asset.get_absolute_href()).resolve() == (out / f"{name}.tif").resolve()
        rb = asset.extra_fields["raster:bands"]
        assert len(rb) == len(spec.bands)
        assert rb[0]["data_type"] == spec.dtype and rb[0]["scale"] == spec.scale and rb[0]["unit"] == spec.unit
        assert rb[0]["nodata"] == ("nan" if math.isnan(spec.nodata) else spec.nodata)
        with rasterio.open(out / f"{name}.tif") as src:
            stored = src.read().astype("float64")
        stored = stored.reshape((-1, NY, NX))
        for b, band_stats in enumerate(rb):
            v = stored[b]
            v = v[~np.isnan(v)] if math.isnan(spec.nodata) else v[v != spec.nodata]
            s = band_stats["statistics"]
            assert s["minimum"] == v.min() and s["maximum"] == v.max()
            assert s["mean"] == pytest.approx(v.mean(), rel=1e-9)
            assert s["stddev"] == pytest.approx(v.std(), rel=1e-9)
            assert s["valid_percent"] == pytest.approx(100 * v.size / (NY * NX))
        eo = asset.extra_fields.get("eo:bands")
        if spec.is_spectral:  # names unique to the product; no common_name (an odc-stac alias)
            assert [e["name"] for e in eo] == [f"{name}_{b}" for b in BANDS]
            assert all("common_name" not in e and COMMON_NAME[b] in e["description"] for e, b in zip(eo, BANDS, strict=True))
            assert eo[8]["center_wavelength"] == WAVELENGTH_UM["B11"]
            for i, b in enumerate(BANDS):  # one single-band asset per band: a VRT of that band
                one = item.assets[f"{name}_{b}"]
                assert one.extra_fields["raster:bands"][0]["statistics"] == rb[i]["statistics"]
                with rasterio.open(one.get_absolute_href()) as src:
                    assert src.count == 1
                    np.testing.assert_array_equal(src.read(1), stored[i])
        else:
            assert eo is None
    for ext in ("eo", "raster", "projection"):
        assert any(f"/{ext}/" in e for e in item.stac_extensions)
    thumbs = [k for k, a in item.assets.items() if "thumbnail" in (a.roles or [])]
    assert thumbs == ["quicklook_SRC_MEAN_rgb"]
    overviews = {k for k, a in item.assets.items() if "overview" in (a.roles or [])}
    assert overviews == {f"quicklook_{q.stem}" for q in qls}
    assert all(item.assets[k].media_type == pystac.MediaType.PNG for k in overviews)
    rr = item.assets["run_record"]
    assert rr.roles == ["metadata"] and rr.media_type == pystac.MediaType.JSON
    assert json.loads(Path(rr.get_absolute_href()).read_text())["params"] == {"threshold": 0.2}


def test_stac_validator_reports_problems(catalog, tmp_path):
    _, out, _, _ = catalog
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "VPC.tif").unlink()
    item_path = copy / "items" / "soilsuite-composite_2019.json"
    doc = json.loads(item_path.read_text())
    del doc["assets"]["BSF"]["raster:bands"]
    item_path.write_text(json.dumps(doc))
    ok, errors = stac.validate_output_catalog(copy / "collection.json")
    assert not ok
    assert any("VPC.tif does not exist" in e for e in errors)
    assert any("BSF has no raster:bands" in e for e in errors)
    (copy / "collection.json").write_text('{"type": "Collection", "id": "x"}')
    assert stac.validate_output_catalog(copy)[0] is False


# ----------------------------------------------------------------------------- quicklooks
def test_quicklooks_are_pngs_of_the_expected_size(catalog):
    from soilsuite.io.quicklook import LAYER_QUICKLOOKS  # the optional layers' pictures

    _, out, _, qls = catalog
    assert [q.name for q in qls] == ["SRC_MEAN_rgb.png", "SRC_MEAN_swir.png", "BSF.png", "MASK.png",
                                     *(f"{n}.png" for n in LAYER_QUICKLOOKS), "PROVENANCE.png"]
    for q in qls:
        assert q.parent == out / "quicklooks" and q.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(q)
        assert img.ndim == 3 and img.shape[1] == quicklook.WIDTH_PX
        assert 300 <= img.shape[0] <= quicklook.MAX_HEIGHT_PX
    mask = (mpimg.imread(out / "quicklooks" / "MASK.png")[..., :3] * 255).round()
    for value in (1, 2, 3):  # every class colour is drawn
        rgb = [int(P.MASK_COLORS[value][i : i + 2], 16) for i in (1, 3, 5)]
        assert (np.abs(mask - rgb).max(axis=-1) <= 1).sum() > 1000
    bsf = mpimg.imread(out / "quicklooks" / "BSF.png")[..., :3]
    grey = np.abs(bsf - quicklook.NODATA_GREY[0]).max(axis=-1) < 0.01
    assert grey.sum() > 1000  # the nodata rectangle


def test_quicklook_from_array_and_decimation(tmp_path):
    a = np.random.default_rng(2).uniform(0, 0.4, (10, 1500, 900))
    p = quicklook.quicklook_rgb(a, tmp_path / "rgb.png", transform=TRANSFORM, max_size=300, title="test")
    img = mpimg.imread(p)
    assert img.shape[1] == quicklook.WIDTH_PX and img.shape[0] <= quicklook.MAX_HEIGHT_PX
    with pytest.raises(InputError, match="B99"):
        quicklook.quicklook_rgb(a, tmp_path / "x.png", bands=("B99", "B03", "B02"))
    with pytest.raises(OutputExistsError):
        quicklook.quicklook_bsf(a[0], p, overwrite=False)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["rgb.png"]


def test_mosaic_vrt_of_uneven_tiles_reads_as_the_whole(tmp_path):
    """Tiles of 256 px over a 600 x 700 grid (small edge tiles without overviews): the VRT reads
    back the whole array, keeps the product metadata, and has virtual overviews."""
    from affine import Affine

    from soilsuite.io.cog import write_cog
    from soilsuite.io.vrt import write_mosaic_vrt

    spec = P.get("SRC_MEAN")
    h, w, side = 600, 700, 256
    rng = np.random.default_rng(5)
    whole = rng.uniform(0, 0.5, (len(spec.bands), h, w)).astype("float32")
    whole[:, :10, :10] = np.nan
    T = Affine(20, 0, 400000, 0, -20, 5800000)
    tiles = []
    for r0 in range(0, h, side):
        for c0 in range(0, w, side):
            p = tmp_path / "tiles" / f"{r0}_{c0}" / "SRC_MEAN.tif"
            p.parent.mkdir(parents=True)
            write_cog(p, whole[:, r0:r0 + side, c0:c0 + side], spec, crs="EPSG:32633",
                      transform=T * Affine.translation(c0, r0), band_names=list(spec.bands), blocksize=128)
            tiles.append((p, r0, c0))
    vrt = write_mosaic_vrt(tmp_path / "SRC_MEAN.vrt", tiles, transform=T, shape=(h, w), resampling="average")
    with rasterio.open(vrt) as v, rasterio.open(tiles[0][0]) as t0:
        np.testing.assert_array_equal(v.read(), np.concatenate(
            [np.concatenate([rasterio.open(p).read() for p, r, _ in tiles if r == r0], axis=2)
             for r0 in range(0, h, side)], axis=1))
        assert (v.crs, v.transform, v.descriptions, v.scales, v.nodatavals) == (
            t0.crs, T, t0.descriptions, t0.scales, t0.nodatavals)
        assert v.overviews(1) == [2]  # the 256 px tiles have one level; offsets divide by 2
    with pytest.raises(OutputExistsError):
        write_mosaic_vrt(vrt, tiles, transform=T, shape=(h, w))
    with pytest.raises(InputError, match="outside the mosaic"):
        write_mosaic_vrt(tmp_path / "bad.vrt", tiles, transform=T, shape=(500, w))
