"""The viewer on multi-band products drawn one band at a time (PROVENANCE: one band per rule) and
on constant layers (every valid pixel the same value).

A small folder of product COGs written with soilsuite's own writer (the catalogue's specs and
band descriptions) and known values; the served tiles are checked against an independent
computation: each tile pixel's centre taken to the file's grid by pyproj, the band's stored
value there, the stretch, and the colour ramp's table.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from odc.geo.geobox import GeoBox
from PIL import Image

from soilsuite import products as P
from soilsuite.io.cog import write_cog
from soilsuite.kernels.provenance import RULES
from soilsuite.viewer import create_app, discover_layers
from soilsuite.viewer.layers import Layer, legend

EPSG = 32633
RES = 20.0
X0, Y0 = 400_000.0, 5_800_000.0  # upper-left corner, metres (EPSG:32633)
SIZE = 48
PROV_NODATA = 65535


def _provenance_counts() -> np.ndarray:
    """Stored PROVENANCE counts [10, Y, X]: every band its own pattern, band 'sun' all 0, a nodata corner."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    data = np.stack([((k + 1) * (yy // 3) + (7 - k) * (xx // 4)) % (11 + 3 * k) for k in range(len(RULES))])
    data[RULES.index("sun")] = 0
    data[:, :6, :6] = PROV_NODATA
    return data.astype("uint16")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("viewer_bands")
    gb = GeoBox.from_bbox((X0, Y0 - SIZE * RES, X0 + SIZE * RES, Y0), crs=f"EPSG:{EPSG}", resolution=RES)
    assert gb.shape == (SIZE, SIZE)
    write_cog(out / "PROVENANCE.tif", _provenance_counts(), P.get("PROVENANCE"), geobox=gb)
    # constant layers: no tillage anywhere (a count of 0), a bare soil frequency of 0.25 everywhere
    write_cog(out / "TILLAGE_EVENTS.tif", np.zeros((SIZE, SIZE), "uint16"), P.get("TILLAGE_EVENTS"), geobox=gb)
    write_cog(out / "BSF.tif", np.full((SIZE, SIZE), 0.25, "float32"), P.get("BSF"), geobox=gb)
    return out


@pytest.fixture(scope="module")
def client(folder):
    from starlette.testclient import TestClient

    with TestClient(create_app(folder)) as c:
        yield c


def _layers(folder) -> dict[str, Layer]:
    return {lay.id: lay for lay in discover_layers(folder)}


def _centre_tile(lay: Layer, zoom: int = 15):
    import morecantile

    w, s, e, n = lay.bounds
    return morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, zoom)


def _expected_tile(stored: np.ndarray, nodata: float, lo: float, hi: float, ramp: str, tile):
    """(rgba, reliable) of a 256 px tile computed independently: the file pixel under each tile
    pixel's centre, stretched to 0-255 (truncated) and looked up in the ramp's table; ``reliable``
    is False within 2 % of a file pixel's edge (where nearest resampling may pick either side)."""
    import morecantile
    from pyproj import Transformer
    from rio_tiler.colormap import cmap

    b = morecantile.tms.get("WebMercatorQuad").xy_bounds(tile)
    step_x, step_y = (b.right - b.left) / 256, (b.top - b.bottom) / 256
    mx = b.left + (np.arange(256) + 0.5) * step_x
    my = b.top - (np.arange(256) + 0.5) * step_y
    mxx, myy = np.meshgrid(mx, my)
    ux, uy = Transformer.from_crs("EPSG:3857", f"EPSG:{EPSG}", always_xy=True).transform(mxx, myy)
    fc, fr = (ux - X0) / RES, (Y0 - uy) / RES
    col, row = np.floor(fc).astype(int), np.floor(fr).astype(int)
    inside = (col >= 0) & (col < SIZE) & (row >= 0) & (row < SIZE)
    edge = np.minimum(np.abs(fc - np.rint(fc)), np.abs(fr - np.rint(fr)))
    v = stored[np.clip(row, 0, SIZE - 1), np.clip(col, 0, SIZE - 1)].astype("float64")
    opaque = inside & (v != nodata)
    idx = (np.clip((v - lo) / (hi - lo), 0, 1) * 255).astype(int)
    table = np.array([cmap.get(ramp)[i][:3] for i in range(256)])
    rgba = np.zeros((256, 256, 4), int)
    rgba[..., :3] = np.where(opaque[..., None], table[idx], 0)
    rgba[..., 3] = np.where(opaque, 255, 0)
    return rgba, edge > 0.02


def _png(r) -> np.ndarray:
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:200]
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA")).astype(int)


def test_band_names_and_stretch_per_band(folder, client):
    """PROVENANCE lists its rules as bands, each with the stretch of that band's own values."""
    lay = _layers(folder)["PROVENANCE"]
    assert lay.kind == "count" and lay.bands == list(RULES)
    data = _provenance_counts()
    assert len(lay.band_stretch) == len(RULES)
    for k, st in enumerate(lay.band_stretch):
        vals = data[k][data[k] != PROV_NODATA].astype(float)
        if vals.min() == vals.max():  # the 'sun' band: 0 everywhere
            assert RULES[k] == "sun"
            assert st == {"vmin": -1.0, "vmax": 1.0, "constant": 0.0}
        else:
            assert st == {"vmin": 0.0, "vmax": pytest.approx(max(1.0, np.percentile(vals, 98))), "constant": None}
    d = {x["id"]: x for x in client.get("/api/layers").json()["layers"]}
    legs = d["PROVENANCE"]["band_legends"]
    assert [g["band"] for g in legs] == list(RULES)
    assert legs[0] == d["PROVENANCE"]["legend"] and legs[0]["type"] == "ramp"
    sun = legs[RULES.index("sun")]
    assert sun["type"] == "constant" and sun["value"] == 0 and sun["note"].startswith("constant value 0 count")
    assert "band_legends" not in d["BSF"]  # single-band layers have no band menu


@pytest.mark.parametrize("band", ["1", "dilation", "10"])
def test_band_tile_is_the_band_through_its_stretch(folder, client, band):
    lay = _layers(folder)["PROVENANCE"]
    k = int(band) if band.isdigit() else RULES.index(band) + 1
    t = _centre_tile(lay)
    got = _png(client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": "PROVENANCE", "band": band}))
    st = lay.band_stretch[k - 1]
    want, ok = _expected_tile(_provenance_counts()[k - 1], PROV_NODATA, st["vmin"], st["vmax"], lay.ramp, t)
    assert ok.mean() > 0.8 and (want[..., 3] == 255).sum() > 1000  # the tile lies over the data
    np.testing.assert_array_equal(got[ok][:, 3], want[ok][:, 3])  # nodata and outside: transparent
    op = ok & (want[..., 3] == 255)
    assert np.abs(got[op] - want[op]).max() <= 2  # same ramp colour (+-1 step of truncation)
    if k != 1:  # not band 1 drawn again
        first = _png(client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": "PROVENANCE"}))
        assert np.abs(first[op] - got[op]).max() > 20


def test_constant_layers_render(folder, client):
    """A count of 0 everywhere: a range around the value, drawn in the ramp's middle colour, and a
    legend that says so; a constant fraction keeps the 0-1 range. No NaN reaches the JSON."""
    layers = _layers(folder)
    d = {x["id"]: x for x in client.get("/api/layers").json()["layers"]}  # JSON without NaN (or it fails)
    for lid, value, (lo, hi) in (("TILLAGE_EVENTS", 0.0, (-1.0, 1.0)), ("BSF", 0.25, (0.0, 1.0))):
        lay = layers[lid]
        assert (lay.constant, lay.vmin, lay.vmax) == (value, lo, hi)
        leg = d[lid]["legend"]
        assert leg["type"] == "constant" and leg["value"] == value and f"constant value {value:g}" in leg["note"]
        t = _centre_tile(lay)
        got = _png(client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": lid}))
        stored = np.full((SIZE, SIZE), value)
        want, ok = _expected_tile(stored, np.nan, lo, hi, lay.ramp, t)
        assert (want[ok][:, 3] == 255).sum() > 1000
        np.testing.assert_array_equal(got[ok][:, 3], want[ok][:, 3])
        np.testing.assert_array_equal(got[ok & (want[..., 3] == 255)], want[ok & (want[..., 3] == 255)])
        opaque = got[got[..., 3] == 255][:, :3]
        assert {"#{:02x}{:02x}{:02x}".format(*c) for c in np.unique(opaque, axis=0)} == {leg["color"]}
    assert legend(layers["PROVENANCE"], RULES.index("sun") + 1)["color"] == d["TILLAGE_EVENTS"][
        "legend"]["color"]  # 0 counts look the same in both


def test_bad_band_is_refused(folder, client):
    t = _centre_tile(_layers(folder)["PROVENANCE"])
    for band in (str(len(RULES) + 1), "0", "nope"):  # one past the last rule band
        r = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": "PROVENANCE", "band": band})
        assert r.status_code == 400 and "PROVENANCE has no band" in r.json()["error"] and "scene_filter" in r.json()["error"]
    rgb = Layer(id="SRC_MEAN", name="SRC_MEAN", group="window", path="", kind="rgb", unit="", description="",
                scale=1e-4, offset=0.0, nodata=-9999.0, bands=list(P.get("SRC_MEAN").bands), rgb=[3, 2, 1])
    with pytest.raises(ValueError, match="style="):
        rgb.band_index("B04")


def test_band_menu_in_chromium(folder, tmp_path):
    """The page shows a band menu for PROVENANCE; choosing a band asks for that band's tiles."""
    from browser import browser_page, save_shot, uvicorn_server

    with browser_page() as (page, errors), uvicorn_server(create_app(folder)) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        page.locator("label.layer[data-id='PROVENANCE'] input").check()
        options = page.eval_on_selector_all("#band option", "els => els.map(e => e.textContent)")
        assert options == list(RULES)
        page.select_option("#band", label="sun")
        page.wait_for_function("!window.soilsuiteViewer.tile.isLoading()")
        assert "band=5" in page.evaluate("window.soilsuiteViewer.tile._url")
        assert "constant value 0 count" in page.locator("#legend").inner_text()
        save_shot(page, tmp_path, "viewer_band_menu.png")
        assert errors == []
