"""The output STAC through real third-party clients: odc-stac, stackstac, pystac-client.

The code run here is the code of docs/stac.md (its ```python blocks, read from the page), in
a folder that holds the session's composite run (``sim_products``, tests/conftest.py) as
``products``; each client's result is compared with the product COGs themselves.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite import products as P
from soilsuite.cli import app
from soilsuite.io.stac import rewrite_hrefs, validate_output_catalog

DOC = Path(__file__).parents[1] / "docs" / "stac.md"
SPECTRAL = [n for n, p in P.PRODUCTS.items() if p.is_spectral and p.group == "composite"]


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _snippet(*needles: str) -> str:
    found = [s for s in _snippets() if all(n in s for n in needles)]
    assert len(found) == 1, f"docs/stac.md: expected one python block with {needles}, found {len(found)}"
    return found[0]


def _run(code: str, **names) -> dict:
    ns: dict = dict(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 - the docs' own snippet
    return ns


def _band(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


@pytest.fixture(scope="module")
def products(sim_products, tmp_path_factory) -> Path:
    """A private copy of the session's run (the tests rewrite its STAC), in ``<tmp>/products``."""
    dst = tmp_path_factory.mktemp("stac_clients") / "products"
    shutil.copytree(sim_products, dst)
    return dst


@pytest.fixture(scope="module")
def absolute(products, tmp_path_factory) -> Path:
    """The same folder with absolute hrefs, written by ``soilsuite stac --absolute``."""
    dst = tmp_path_factory.mktemp("stac_abs") / "products"
    shutil.copytree(products, dst)
    r = CliRunner().invoke(app, ["stac", str(dst), "--absolute"])
    assert r.exit_code == 0, r.output
    return dst


def _items(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / "items").glob("*.json"))]


# ----------------------------------------------------------------------------- the documents
def test_items_describe_every_client_needs(products):
    ok, errors = validate_output_catalog(products)
    assert ok, errors
    items = _items(products)
    periods = {i["properties"]["soilsuite:period"]: i for i in items}
    assert set(periods) == {"window", "2021", "2022"}
    times = [i["properties"]["datetime"] for i in items]
    assert None not in times and len(set(times)) == len(items)  # never fused under groupby="time"
    assert periods["window"]["properties"]["datetime"] == "2022-12-31T23:59:59Z"
    assert periods["2021"]["properties"]["datetime"] == "2021-07-02T11:59:59Z"
    for item in items:
        props, assets = item["properties"], item["assets"]
        assert props["proj:epsg"] == 32633 and props["proj:code"] == "EPSG:32633"
        assert [lk for lk in item["links"] if lk["rel"] == "self"][0]["href"].startswith("file:///")
        label = props["soilsuite:period"]
        qls = {k: a for k, a in assets.items() if k.startswith("quicklook_")}
        assert "quicklook_SRC_MEAN_rgb" in qls and "quicklook_MASK" in qls, item["id"]
        base = products if label == "window" else products / label
        for a in qls.values():  # each Item's pictures are its own period's
            assert (products / "items" / a["href"]).resolve().parent == (base / "quicklooks").resolve()
        # one eo:bands name per band and product: no product takes another's names
        for key, a in assets.items():
            for b in a.get("eo:bands", []):
                assert b["name"].startswith(key.split("_B")[0] + "_") and "common_name" not in b
        for name in SPECTRAL:
            for i, band in enumerate(P.get(name).bands, start=1):
                a = assets[f"{name}_{band}"]
                assert len(a["raster:bands"]) == 1 and a["roles"] == ["data"]
                vrt = (products / "items" / a["href"]).resolve()
                np.testing.assert_array_equal(_band(vrt), _band(base / f"{name}.tif", i))
        assert {"minimum", "maximum", "valid_percent"} <= set(assets["BSF"]["raster:bands"][0]["statistics"])
        mask = assets["MASK"]
        assert "soilsuite:classes" not in mask
        classes = {c["value"]: c for c in mask["classification:classes"]}
        assert classes[1]["name"] == "bare_surface_occurrence" and classes[1]["color_hint"] == "C8843C"
        assert classes[0]["nodata"] is True
        assert any("/classification/" in e for e in item["stac_extensions"])
    coll = json.loads((products / "collection.json").read_text())
    assert coll["summaries"]["proj:epsg"] == [32633] and coll["summaries"]["gsd"] == [20.0]
    assert coll["summaries"]["soilsuite:period"] == ["window", "2021", "2022"]
    assert {"SRC_MEAN", "SRC_MEAN_B04", "MASK", "BSF"} <= set(coll["item_assets"])
    assert "href" not in coll["item_assets"]["BSF"]
    assert "statistics" not in coll["item_assets"]["BSF"]["raster:bands"][0]
    assert any(lk["rel"] == "self" for lk in coll["links"])


# ----------------------------------------------------------------------------- odc-stac
def test_odc_stac_loads_the_documented_bands(products, monkeypatch):
    monkeypatch.chdir(products.parent)
    ds = _run(_snippet("odc.stac.load", "pystac.Collection"))["ds"]
    assert ds.sizes["time"] == 3  # 2021, 2022, the window: none fused
    np.testing.assert_array_equal(ds.SRC_MEAN_B04.isel(time=-1).values, _band(products / "SRC_MEAN.tif", 3))
    np.testing.assert_array_equal(ds.SRC_MEAN_B02.sel(time="2021").values[0],
                                  _band(products / "2021" / "SRC_MEAN.tif", 1))
    np.testing.assert_array_equal(ds.BSF.sel(time="2022").values[0], _band(products / "2022" / "BSF.tif"))
    assert ds.SRC_MEAN_B04.nodata == -9999 and str(ds.SRC_MEAN_B04.dtype) == "int16"
    # bare band names are no aliases any more (they were MREF_MEAN's)
    import odc.stac

    items = list(pystac.Collection.from_file(str(products / "collection.json")).get_items())
    with pytest.raises(ValueError, match="B04"):
        odc.stac.load(items, bands=["B04"])


# ----------------------------------------------------------------------------- stackstac
STACKSTAC = "stackstac is installed by `make install` (pip install --no-deps stackstac==0.5.1; see the Makefile)"


def test_stackstac_reads_the_per_band_assets(absolute, monkeypatch):
    pytest.importorskip("stackstac", reason=STACKSTAC)
    monkeypatch.chdir(absolute.parent)
    da = _run(_snippet("stackstac.stack", "pathlib"))["da"]
    assert list(da.band.values) == ["SRC_MEAN_B04", "SRC_MEAN_B03", "SRC_MEAN_B02", "BSF"]
    with rasterio.open(absolute / "SRC_MEAN.tif") as src:
        t, shape = src.transform, src.shape
    assert da.shape[-2:] == shape and float(da.x[0]) == t.c and float(da.y[0]) == t.f  # the exact grid
    window = da.isel(time=-1)
    assert str(window.id.values) == "soilsuite-composite_2021-01-01_2022-12-31"
    stored = _band(absolute / "SRC_MEAN.tif", 3).astype(float)
    expect = np.where(stored == -9999, np.nan, stored * 1e-4)
    np.testing.assert_allclose(window.sel(band="SRC_MEAN_B04").values, expect, rtol=1e-6)
    np.testing.assert_array_equal(window.sel(band="BSF").values, _band(absolute / "BSF.tif"))


def test_stackstac_refuses_multiband_assets(products):
    stackstac = pytest.importorskip("stackstac", reason=STACKSTAC)

    items = _items(products)
    with pytest.raises(ValueError, match="10 elements"):  # why the docs name the assets
        stackstac.stack(items, assets=["SRC_MEAN"])


# ----------------------------------------------------------------------------- pystac-client
def test_pystac_client_opens_the_folder(products, monkeypatch):
    monkeypatch.chdir(products.parent)
    items = _run(_snippet("catalog.json"))["items"]
    assert sorted(i.id for i in items) == sorted(i["id"] for i in _items(products))


def test_pystac_client_through_a_stac_api(absolute, tmp_path, monkeypatch):
    import test_stac_api
    from test_stac_api import RUSTAC, Rustac

    if not RUSTAC.exists():
        pytest.skip(f"rustac not installed ({RUSTAC}); pip install -e '.[dev]'")
    monkeypatch.setattr(test_stac_api, "COLLECTION", "soilsuite-composite")  # what serve() waits for
    server = Rustac(tmp_path)
    try:
        url = server.serve(_items(absolute), "products")
        code = _snippet("pystac_client.Client.open(\"http").replace("http://127.0.0.1:7822", url)
        ns = _run(code)
        ds = ns["ds"]
        try:  # stackstac from the API's JSON (pystac Items lose proj:epsg): as docs/stac.md says
            import stackstac

            feats = ns["client"].search(collections=["soilsuite-composite"],
                                        ids=["soilsuite-composite_2021"]).item_collection_as_dict()["features"]
            da = stackstac.stack(feats, assets=["BSF"])
            np.testing.assert_array_equal(da.isel(time=0, band=0).values, _band(absolute / "2021" / "BSF.tif"))
        except ImportError:
            pass
    finally:
        server.stop()
    assert ds.sizes["time"] == 2  # the 2021 Item and the window Item: a datetime search overlaps both
    np.testing.assert_array_equal(ds.SRC_MEAN_B04.isel(time=0).values, _band(absolute / "2021" / "SRC_MEAN.tif", 3))
    np.testing.assert_array_equal(ds.BSF.isel(time=1).values, _band(absolute / "BSF.tif"))


# ----------------------------------------------------------------------------- soilsuite stac
def test_stac_command_rewrites_a_moved_folder(absolute, tmp_path):
    from soilsuite.io.manifest import OutputFolder

    moved = tmp_path / "elsewhere"
    shutil.copytree(absolute, moved)  # its absolute hrefs still point at the old place
    shutil.rmtree(absolute / "bands")  # ... and that place no longer has the VRTs
    r = CliRunner().invoke(app, ["stac", str(moved), "--relative"])
    assert r.exit_code == 0, r.output
    item = json.loads((moved / "items" / "soilsuite-composite_2021.json").read_text())
    assert item["assets"]["SRC_MEAN_B04"]["href"] == "../2021/bands/SRC_MEAN_B04.vrt"
    self_link = item["links"][0]
    assert self_link["rel"] == "self"
    assert self_link["href"] == (moved / "items" / "soilsuite-composite_2021.json").as_uri()
    assert validate_output_catalog(moved)[0]
    s = OutputFolder(moved, "composite").survey()
    assert not s.changed and not s.foreign, (s.changed, s.foreign)  # the manifest knows the rewritten JSON
    rewrite_hrefs(moved, "absolute")
    item = pystac.Item.from_file(str(moved / "items" / "soilsuite-composite_2021.json"))
    assert item.assets["BSF"].href == (moved / "2021" / "BSF.tif").as_uri()
    r = CliRunner().invoke(app, ["stac", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no STAC collection" in r.output


def test_writer_absolute_hrefs(products, tmp_path):
    """``composite --stac-hrefs absolute`` (``write_output_catalog(hrefs="absolute")``): file:// URIs."""
    from soilsuite.config import CompositeConfig
    from soilsuite.io.products import product_files
    from soilsuite.io.stac import write_output_catalog

    assert CompositeConfig.model_fields["stac_hrefs"].default == "relative"
    out = tmp_path / "products"
    shutil.copytree(products, out)
    groups = {"window": product_files(out), "2021": product_files(out / "2021")}
    write_output_catalog(out, groups, start="2021-01-01", end="2022-12-31", overwrite=True, hrefs="absolute")
    item = json.loads((out / "items" / "soilsuite-composite_2021.json").read_text())
    assert item["assets"]["SRC_MEAN_B04"]["href"] == (out / "2021" / "bands" / "SRC_MEAN_B04.vrt").as_uri()
    assert item["assets"]["quicklook_MASK"]["href"] == (out / "2021" / "quicklooks" / "MASK.png").as_uri()
    assert validate_output_catalog(out)[0]
    assert sorted(p.name for p in (out / "items").glob("*.json")) == [  # the 2022 Item of the earlier run is gone
        "soilsuite-composite_2021-01-01_2022-12-31.json", "soilsuite-composite_2021.json"]
