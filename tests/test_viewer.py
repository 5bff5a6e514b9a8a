"""The local web map (`soilsuite serve`): layers, tiles, pixel values and the PV+IR2 series,
through the ASGI app and in Debian's chromium (Playwright; skipped without it).

Everything reads the session's composite run (``sim_products`` in conftest.py).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from browser import browser_page, save_shot, uvicorn_server
from PIL import Image
from pyproj import Transformer

from soilsuite import products as P
from soilsuite.errors import ConfigError, InputError
from soilsuite.viewer import check_host, create_app, discover_layers
from soilsuite.viewer.layers import legend


def _product_files(out: Path) -> set[str]:
    """Every product COG of a composite folder, as layer ids (``BSF``, ``2021/BSF``)."""
    ids = set()
    for p in out.rglob("*.tif"):
        rel = p.relative_to(out)
        if rel.parts[0] in (".work", "tiles") or "tiles" in rel.parts:
            continue
        ids.add(rel.with_suffix("").as_posix())
    return ids


def _pixel_lonlat(path: Path, row: int, col: int) -> tuple[float, float]:
    with rasterio.open(path) as src:
        x, y = src.xy(row, col)
        crs = src.crs
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


def _bare_pixel(out: Path) -> tuple[int, int]:
    """A pixel with the most bare observations (its series has bare points to show)."""
    with rasterio.open(out / "BSC.tif") as src:
        bsc = src.read(1)
    return tuple(int(v) for v in np.unravel_index(np.argmax(bsc), bsc.shape))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def client(sim_products):
    from starlette.testclient import TestClient

    with TestClient(create_app(sim_products)) as c:
        yield c


def test_layers_are_every_product_of_the_folder(sim_products, client):
    d = client.get("/api/layers").json()
    ids = {lay["id"] for lay in d["layers"]}
    assert ids == _product_files(sim_products)
    # the window and each year, every composite product of the catalogue
    for label in ("", "2021/", "2022/"):
        assert {label + n for n in P.composite_products()} <= ids
    by_id = {lay["id"]: lay for lay in d["layers"]}
    assert by_id["SRC_MEAN"]["kind"] == "rgb" and by_id["SRC_MEAN"]["rgb"] == [3, 2, 1]  # B04, B03, B02
    assert by_id["SRC_MEAN"]["styles"]["swir"]["bands"] == [10, 9, 3]  # B12, B11, B04
    assert by_id["MASK"]["kind"] == "classes"
    assert {it["value"] for it in by_id["MASK"]["legend"]["items"]} == {1, 2, 3}
    assert by_id["BSF"]["kind"] == "fraction" and (by_id["BSF"]["vmin"], by_id["BSF"]["vmax"]) == (0.0, 1.0)
    assert by_id["VPC"]["legend"]["unit"] == "count"
    assert 0 < by_id["SRC_MEAN"]["vmin"] < by_id["SRC_MEAN"]["vmax"] < 1  # reflectance, not DN
    assert d["series"] is True  # the run's archive (sim_archive) is reachable
    west, south, east, north = d["bounds"]
    assert west < east and south < north


def test_tiles_render_from_the_cogs(sim_products, client):
    import morecantile

    lay = next(x for x in discover_layers(sim_products) if x.id == "MASK")
    w, s, e, n = lay.bounds
    t = morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (s + n) / 2, 15)
    r = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": "MASK"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    opaque = img[img[..., 3] > 0][:, :3]
    colours = {"#{:02x}{:02x}{:02x}".format(*tuple(c)) for c in np.unique(opaque, axis=0)}
    assert colours and colours <= {P.MASK_COLORS[k] for k in (1, 2, 3)}  # class colours only, nodata transparent
    for lid in ("SRC_MEAN", "BSF", "2021/VPC"):
        r = client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params={"layer": lid})
        assert np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[..., 3].max() == 255
    # the SWIR false-colour style of a spectral product: other bands, other picture, same nodata
    rgb, swir = (np.asarray(Image.open(io.BytesIO(client.get(f"/tiles/{t.z}/{t.x}/{t.y}.png", params=dict(
        layer="SRC_MEAN", **extra)).content)).convert("RGBA")) for extra in ({}, {"style": "swir"}))
    assert (rgb[..., 3] == swir[..., 3]).all() and not (rgb[..., :3] == swir[..., :3]).all()
    # a tile far away is transparent (200, so the browser logs no error)
    far = client.get("/tiles/15/0/0.png", params={"layer": "MASK"})
    assert far.status_code == 200 and np.asarray(Image.open(io.BytesIO(far.content)).convert("RGBA"))[..., 3].max() == 0
    assert client.get("/tiles/15/0/0.png", params={"layer": "nope"}).status_code == 404


def test_point_values_equal_the_cogs(sim_products, client):
    row, col = _bare_pixel(sim_products)
    lon, lat = _pixel_lonlat(sim_products / "BSC.tif", row, col)
    d = client.get("/api/point", params={"lon": lon, "lat": lat}).json()
    assert {v["id"] for v in d["layers"]} == _product_files(sim_products)
    for v in d["layers"]:
        path = sim_products / f"{v['id']}.tif"
        spec = P.get(v["name"])
        with rasterio.open(path) as src:
            stored = src.read()[:, row, col]
        assert (v["row"], v["col"]) == (row, col)
        expect = spec.decode(stored)
        got = np.array([np.nan if x is None else x for x in v["values"].values()])
        np.testing.assert_allclose(got, expect, rtol=1e-6, equal_nan=True, err_msg=v["id"])
    mask = next(v for v in d["layers"] if v["id"] == "MASK")
    assert mask["label"] == P.MASK_CLASSES[int(mask["stored"][0])]


def test_series_matches_the_run(sim_products, client):
    """The pixel's series repeats the run's classification: bare observations = BSC, valid = VPC."""
    row, col = _bare_pixel(sim_products)
    lon, lat = _pixel_lonlat(sim_products / "BSC.tif", row, col)
    s = client.get("/api/series", params={"lon": lon, "lat": lat}).json()
    with rasterio.open(sim_products / "BSC.tif") as b, rasterio.open(sim_products / "VPC.tif") as v:
        bsc, vpc = int(b.read(1)[row, col]), int(v.read(1)[row, col])
    assert (s["row"], s["col"]) == (row, col)
    assert s["n_bare"] == sum(s["bare"]) == bsc > 0
    assert s["n_valid"] == sum(s["valid"]) == vpc
    bare_pv = [p for p, b in zip(s["pvir2"], s["bare"], strict=True) if b]
    assert max(bare_pv) <= s["threshold"]
    png = client.get("/api/series", params={"lon": lon, "lat": lat, "format": "png"})
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size[0] > 300


def test_folder_without_archive(sim_products, tmp_path):
    """A copied folder whose run record points to an archive that is not there: no series, a reason."""
    from starlette.testclient import TestClient

    copy = tmp_path / "copy"
    shutil.copytree(sim_products, copy, ignore=shutil.ignore_patterns("20*"))
    rec = json.loads((copy / "run.json").read_text())
    rec["config"]["source"] = str(tmp_path / "gone" / "catalog.json")
    (copy / "run.json").write_text(json.dumps(rec))
    with TestClient(create_app(copy)) as c:
        d = c.get("/api/layers").json()
        assert d["series"] is False and "not reachable" in d["series_note"]
        assert {lay["group"] for lay in d["layers"]} == {"window"}
        assert "error" in c.get("/api/series", params={"lon": 0, "lat": 0}).json()


def test_unknown_product_file_is_a_layer(tmp_path, sim_products):
    """A file the catalogue does not know (e.g. a product another tool wrote) is shown with its own metadata."""
    with rasterio.open(sim_products / "BSF.tif") as src:
        prof, data = src.profile, src.read(1)
    prof.update(driver="GTiff")
    with rasterio.open(tmp_path / "wetness.tif", "w", **prof) as dst:
        dst.write(data, 1)
        dst.update_tags(UNIT="mm")
    (lay,) = discover_layers(tmp_path)
    assert (lay.id, lay.kind, lay.unit) == ("wetness", "value", "mm")
    assert legend(lay)["type"] == "ramp"


def test_host_and_folder_checks(tmp_path):
    assert check_host("127.0.0.1") == "127.0.0.1" and check_host("::1") == "::1"
    with pytest.raises(ConfigError, match="loopback"):
        check_host("0.0.0.0")
    with pytest.raises(InputError, match="no georeferenced"):
        create_app(tmp_path)


def test_cli_serve_refuses_public_host(sim_products):
    from typer.testing import CliRunner

    from soilsuite.cli import app

    r = CliRunner().invoke(app, ["serve", str(sim_products), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "loopback" in r.output


# ----------------------------------------------------------------------------- in the browser
def test_viewer_in_chromium(sim_products, tmp_path):
    """The page loads with no console error, lists every product, and a click shows the COGs' values."""
    row, col = _bare_pixel(sim_products)
    lon, lat = _pixel_lonlat(sim_products / "BSC.tif", row, col)
    with browser_page() as (page, errors), uvicorn_server(create_app(sim_products)) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        page.wait_for_load_state("networkidle")
        listed = set(page.eval_on_selector_all("#layers label.layer", "els => els.map(e => e.dataset.id)"))
        assert listed == _product_files(sim_products)
        assert page.locator("#legend").inner_text().startswith("SRC_MEAN")
        save_shot(page, tmp_path, "viewer_src_mean.png")
        page.select_option("#style", "swir")
        page.wait_for_function("!window.soilsuiteViewer.tile.isLoading()")
        assert "style=swir" in page.evaluate("window.soilsuiteViewer.tile._url")
        save_shot(page, tmp_path, "viewer_src_mean_swir.png")

        page.locator("label.layer[data-id='MASK'] input").check()
        page.wait_for_load_state("networkidle")
        assert "bare surface occurrence" in page.locator("#legend").inner_text()
        page.locator("#opacity").fill("0.6")
        assert page.evaluate("window.soilsuiteViewer.tile.options.opacity") == pytest.approx(0.6)

        # click the pixel on the map (container point of its centre)
        x, y = page.evaluate(
            """([lat, lon]) => { const s = window.soilsuiteViewer; s.map.setView([lat, lon], 16, {animate: false});
                 const p = s.map.latLngToContainerPoint([lat, lon]);
                 const r = document.getElementById('map').getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""",
            [lat, lon])
        page.wait_for_load_state("networkidle")
        page.mouse.click(x, y)
        page.wait_for_selector("#values")
        page.wait_for_function("document.querySelector('#series img') && document.querySelector('#series img').complete"
                               " && document.querySelector('#series img').naturalWidth > 0", timeout=60_000)
        point = page.evaluate("window.soilsuiteViewer.lastPoint")
        save_shot(page, tmp_path, "viewer_click_series.png")
        assert errors == []
    vals = {v["id"]: v for v in point["layers"]}
    assert set(vals) == _product_files(sim_products)
    for lid in ("BSC", "BSF", "SRC_MEAN", "2022/MREF_MEAN", "MASK"):
        v = vals[lid]
        with rasterio.open(sim_products / f"{lid}.tif") as src:
            expect = P.get(v["name"]).decode(src.read()[:, row, col])
        got = np.array([np.nan if x is None else x for x in v["values"].values()])
        np.testing.assert_allclose(got, expect, rtol=1e-6, equal_nan=True, err_msg=lid)


def test_cli_serve_starts_answers_and_stops(sim_products):
    """`soilsuite serve OUT --port 0` listens on 127.0.0.1, says where, answers, and stops on SIGINT."""
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    exe = str(Path(sys.executable).with_name("soilsuite"))
    proc = subprocess.Popen([exe, "serve", str(sim_products), "--port", "0"], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        url, t0 = None, time.monotonic()
        while url is None and time.monotonic() - t0 < 60:
            line = proc.stderr.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
            assert line or proc.poll() is None, "serve exited early"
        assert url is not None
        with urllib.request.urlopen(url + "api/layers", timeout=30) as r:
            d = json.loads(r.read())
        assert {lay["id"] for lay in d["layers"]} == _product_files(sim_products)
        with urllib.request.urlopen(url, timeout=30) as r:
            page = r.read().decode()
        assert "/static/leaflet/leaflet.js" in page and "http" not in page.split("<body>")[1].split("</body>")[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None
