"""Sentinel-2 L2A SAFE input: simulated SAFE products (folders and zips) read like the STAC archive.

One small simulated archive (48 px, Jan-Feb 2022: processing baselines 03.01 and 04.00 on both
sides of 25 Jan 2022) is written three times with the same seed: as the STAC catalog of COGs, as
SAFE folders with one older-baseline duplicate, and as zipped SAFE products.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from soilsuite.config import SceneFilter
from soilsuite.errors import InputError, OutputExistsError
from soilsuite.sources import safe
from soilsuite.sources import stac as S
from soilsuite.sources.simulate import simulate

START, END = dt.date(2022, 1, 1), dt.date(2022, 2, 28)
SIM = dict(size=48, start=START, end=END, seed=5)
# a winter scene at 52 N: the sun stays low, so keep the scenes above 5 degrees
OPTS = dict(start=START, end=END, min_sun_elevation=5.0, scheduler="sync", tile_size=64)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    stac = simulate(root / "stac", **SIM)
    folders = simulate(root / "safe", format="safe", safe_duplicate=True, **SIM)
    zips = simulate(root / "zips", format="safe", safe_zip=True, **SIM)
    return {"root": root, "stac": stac, "safe": folders, "zip": zips}


@pytest.fixture(scope="module")
def composites(archives, tmp_path_factory):
    """composite() of the catalog and of the SAFE folders (products as numpy arrays, run records)."""
    from soilsuite import composite

    out = {}
    for name, src in (("stac", archives["stac"].catalog_path), ("safe", archives["safe"].out)):
        d = tmp_path_factory.mktemp(f"run_{name}") / "out"
        ds = composite(src, out=d, **OPTS)
        out[name] = ({k: ds[k].values for k in ds.data_vars}, json.loads((d / "run.json").read_text()))
    return out


def _same_products(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_jp2_driver():
    assert safe.jp2_driver() == "JP2OpenJPEG"


def test_layout_and_xml(archives):
    res = archives["safe"]
    products = sorted(p.name for p in res.out.glob("*.SAFE"))
    assert len(products) == len(res.item_ids) == archives["stac"].n_items + 1  # + the duplicate
    assert not (res.out / "catalog.json").exists() and (res.out / "truth" / "truth.json").exists()
    name = next(p for p in products if "_N0400_" in p)
    assert name.startswith(("S2A_MSIL2A_2022", "S2B_MSIL2A_2022")) and "_R022_T33U" in name
    prod = res.out / name
    (gran,) = (prod / "GRANULE").iterdir()
    assert gran.name.startswith("L2A_T33U") and (gran / "MTD_TL.xml").is_file()
    assert len(list((gran / "IMG_DATA" / "R10m").glob("*_B0[2348]_10m.jp2"))) == 4
    assert len(list((gran / "IMG_DATA" / "R20m").glob("*_20m.jp2"))) == 7
    mtd = (prod / "MTD_MSIL2A.xml").read_text()
    assert "<n1:Level-2A_User_Product" in mtd and "User_Product_Level-2A.xsd" in mtd
    assert '<BOA_ADD_OFFSET band_id="3">-1000</BOA_ADD_OFFSET>' in mtd
    assert "<PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>" in mtd
    old = next(p for p in products if "_N0301_" in p)
    assert "BOA_ADD_OFFSET_VALUES_LIST" not in (res.out / old / "MTD_MSIL2A.xml").read_text()
    zips = sorted(archives["zip"].out.glob("*.zip"))
    assert len(zips) == archives["stac"].n_items
    with zipfile.ZipFile(zips[0]) as zf:
        assert f"{zips[0].stem}.SAFE/MTD_MSIL2A.xml" in zf.namelist()


def test_jp2_lossless(archives):
    import rasterio

    stac_item = S.search_items(archives["stac"].catalog_path, start=START, end=END)[-1]
    safe_item = [it for it in S.search_items(archives["safe"].out, start=START, end=END)
                 if safe.SUPERSEDED_BY not in it.properties][-1]
    for key_stac, key_safe in (("red", "B04_10m"), ("swir22", "B12_20m"), ("scl", "SCL_20m")):
        with rasterio.open(stac_item.assets[key_stac].get_absolute_href()) as a, \
                rasterio.open(safe_item.assets[key_safe].href) as b:
            assert b.driver == "JP2OpenJPEG"
            assert a.crs == b.crs and a.transform == b.transform
            np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.parametrize("kind", ["safe", "zip"])
def test_items_match_the_catalog(archives, kind):
    a = S.search_items(archives["stac"].catalog_path, start=START, end=END)
    scan = safe.read_safe(archives[kind].out)
    b = scan.kept
    assert len(a) == len(b) == archives["stac"].n_items
    for x, y in zip(a, b, strict=True):
        assert x.datetime == y.datetime and x.bbox == y.bbox and x.geometry == y.geometry
        for k in ("eo:cloud_cover", "view:sun_elevation", "view:sun_azimuth", "proj:bbox", "proj:code",
                  "s2:processing_baseline"):
            assert x.properties[k] == y.properties[k], k
        assert S.mgrs_tile(x) == S.mgrs_tile(y) == y.properties["s2:mgrs_tile"]
        assert y.properties["proj:epsg"] == archives["stac"].epsg
        for band, key in safe.ASSET_KEYS.items():
            ax = x.assets[S.resolve_assets([x])[band]].extra_fields
            ay = y.assets[key].extra_fields
            assert ax["proj:shape"] == ay["proj:shape"] and ax["proj:transform"] == ay["proj:transform"]
    if kind == "zip":
        assert b[0].assets["B02_10m"].href.startswith("zip:///")


def test_offset_from_metadata(archives):
    """BOA_ADD_OFFSET comes from MTD_MSIL2A.xml: -1000 DN from baseline 04.00 (25 Jan 2022), 0 before."""
    items = safe.read_safe(archives["safe"].out).kept
    assets = S.resolve_assets(items)
    assert assets == safe.ASSET_KEYS
    offs = {it.id: S.item_offset_dn(it, assets["B04"]) for it in items}
    dates = {it.id: it.datetime.date() for it in items}
    assert {offs[i] for i in offs if dates[i] >= dt.date(2022, 1, 25)} == {-1000}
    assert {offs[i] for i in offs if dates[i] < dt.date(2022, 1, 25)} == {0}
    rb = items[-1].assets["B04_10m"].extra_fields["raster:bands"][0]
    assert rb["scale"] == 1e-4 and rb["offset"] == -0.1


def test_duplicate_keeps_newest_baseline(archives):
    scan = safe.read_safe(archives["safe"].out)
    (rej,) = scan.rejected
    dup = next(it for it in scan.items if it.id == rej.item_id)
    assert "_N0301_" in dup.id and "older processing baseline" in rej.reason
    kept = next(it for it in scan.items if it.id == dup.properties[safe.SUPERSEDED_BY])
    assert kept.properties["s2:processing_baseline"] == "04.00"
    assert S.mgrs_tile(kept) == S.mgrs_tile(dup) and kept.datetime == dup.datetime
    assert kept.id in rej.reason
    sel = S.filter_scenes(scan.items, SceneFilter())
    assert [r.item_id for r in sel.rejected if "duplicate" in r.reason] == [dup.id]


def test_composite_safe_equals_catalog(composites):
    """composite from the SAFE folder gives exactly the products of the catalog of COGs."""
    (pa, ra), (pb, rb) = composites["stac"], composites["safe"]
    _same_products(pa, pb)
    assert any(np.isfinite(v).any() for v in pa.values())
    offs = {o["date"]: o["boa_add_offset_dn"] for o in rb["observations"]}
    assert offs == {o["date"]: o["boa_add_offset_dn"] for o in ra["observations"]}
    assert {v for d, v in offs.items() if d >= "2022-01-25"} == {-1000}
    assert {v for d, v in offs.items() if d < "2022-01-25"} == {0}
    dup = [r for r in rb["rejected_items"] if "duplicate product" in r["reason"]]
    assert len(dup) == 1 and "_N0301_" in dup[0]["id"]
    assert not any("duplicate" in r["reason"] for r in ra["rejected_items"])


def test_composite_zips_and_index_safe(archives, composites, tmp_path):
    """composite from the zips, and from an index-safe catalog of the folders, give the same products."""
    from typer.testing import CliRunner

    from soilsuite import composite, index_safe
    from soilsuite.cli import app

    ds = composite(archives["zip"].out, out=tmp_path / "zip", **OPTS)
    _same_products(composites["stac"][0], {k: ds[k].values for k in ds.data_vars})

    cat = tmp_path / "index" / "catalog.json"
    r = CliRunner().invoke(app, ["index-safe", str(archives["safe"].out), "--out", str(cat)])
    assert r.exit_code == 0, r.output
    item_json = next((cat.parent / "sentinel-2-l2a").glob("*/*.json"))
    href = json.loads(item_json.read_text())["assets"]["B02_10m"]["href"]
    assert href.startswith("../") and href.endswith("_B02_10m.jp2")  # relative to the item
    r = CliRunner().invoke(app, ["index-safe", str(archives["safe"].out), "--out", str(cat)])
    assert r.exit_code == 2 and "exists" in r.output
    assert index_safe(archives["safe"].out, cat, overwrite=True) == cat
    ds = composite(cat, out=tmp_path / "cat", **OPTS)
    _same_products(composites["safe"][0], {k: ds[k].values for k in ds.data_vars})
    rec = json.loads((tmp_path / "cat" / "run.json").read_text())
    assert rec["rejected_items"] == composites["safe"][1]["rejected_items"]


def test_index_safe_refuses_foreign_files(archives, tmp_path):
    from soilsuite import index_safe

    cat = tmp_path / "catalog.json"
    cat.write_text('{"note": "not ours"}')
    with pytest.raises(OutputExistsError, match="not a catalog written by index-safe"):
        index_safe(archives["safe"].out, cat, overwrite=True)
    assert cat.read_text() == '{"note": "not ours"}'


def _copy_product(archives, tmp_path) -> Path:
    src = next(archives["safe"].out.glob("*_N0400_*.SAFE"))
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_malformed_missing_tile_xml(archives, tmp_path):
    p = _copy_product(archives, tmp_path)
    (mtd,) = p.glob("GRANULE/*/MTD_TL.xml")
    mtd.unlink()
    with pytest.raises(InputError, match=r"MTD_TL\.xml is missing"):
        safe.read_safe(p)


def test_malformed_missing_band(archives, tmp_path):
    p = _copy_product(archives, tmp_path)
    (b11,) = p.glob("GRANULE/*/IMG_DATA/R20m/*_B11_20m.jp2")
    b11.unlink()
    with pytest.raises(InputError, match=r"band file .*R20m/\*_B11_20m\.jp2 is missing"):
        S.search_items(tmp_path, start=START, end=END)


def test_malformed_unreadable_xml(archives, tmp_path):
    p = _copy_product(archives, tmp_path)
    (p / "MTD_MSIL2A.xml").write_text("<n1:Level-2A_User_Product><General_Info>")
    with pytest.raises(InputError, match=rf"{p.name}/MTD_MSIL2A\.xml is not readable XML"):
        safe.read_safe(p)


def test_malformed_missing_offsets(archives, tmp_path):
    p = _copy_product(archives, tmp_path)
    mtd = p / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    mtd.write_text(text[: text.index("<BOA_ADD_OFFSET_VALUES_LIST>")]
                   + text[text.index("</BOA_ADD_OFFSET_VALUES_LIST>") + len("</BOA_ADD_OFFSET_VALUES_LIST>"):])
    with pytest.raises(InputError, match="baseline 04.00 .* no BOA_ADD_OFFSET_VALUES_LIST"):
        safe.read_safe(p)


def test_malformed_zip(archives, tmp_path):
    z = sorted(archives["zip"].out.glob("*.zip"))[0]
    bad = tmp_path / z.name
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(bad, "w") as dst:
        for n in src.namelist():
            if not n.endswith("MTD_MSIL2A.xml"):
                dst.writestr(n, src.read(n))
    with pytest.raises(InputError, match=rf"{bad.name}!/.*\.SAFE: MTD_MSIL2A\.xml is missing"):
        safe.read_safe(bad)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.zip: cannot be opened as a zip"):
        safe.read_safe(tmp_path / "junk.zip")


def test_cli_composite_malformed_exits_2(archives, tmp_path):
    from typer.testing import CliRunner

    from soilsuite.cli import app

    p = _copy_product(archives, tmp_path / "in")
    (p / "MTD_MSIL2A.xml").unlink()
    r = CliRunner().invoke(app, ["composite", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                 "--start", "2022-01-01", "--end", "2022-02-28"])
    assert r.exit_code == 2
    assert "MTD_MSIL2A.xml is missing" in r.output and p.name in r.output.replace("\n", "")
