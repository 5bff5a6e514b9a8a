"""soilsuite through a real STAC API server: ``rustac serve`` (in-memory backend) on 127.0.0.1.

The simulated archive (absolute ``file://`` asset hrefs) is served as it is, and rewritten into
the item conventions of Earth Search v1, Copernicus Data Space and Planetary Computer (asset
keys, raster offsets, property names) pointing at the same COGs; each composite through the
API must be byte-identical to the run on the static catalog. The API is paged with 5 items a
page (``API_PAGE_SIZE``), so a search fetches several pages. Relative asset hrefs behind an API,
missing assets and unknown collections must give one clear error naming the item, asset and URL.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite.cli import app
from soilsuite.errors import ConfigError, InputError
from soilsuite.pipeline.composite import composite
from soilsuite.sentinel2 import BANDS, COMMON_NAME, EARTH_SEARCH_KEYS, NATIVE_RES_M
from soilsuite.sources import stac as S
from soilsuite.sources.simulate import simulate

START, END = dt.date(2022, 5, 1), dt.date(2022, 6, 30)
COLLECTION = "sentinel-2-l2a"
RUSTAC = Path(sys.executable).with_name("rustac")
PAGE = 5


# ------------------------------------------------------------------------------ the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rustac:
    """Starts ``rustac serve`` processes on free 127.0.0.1 ports; :meth:`stop` ends them all."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: list[subprocess.Popen] = []

    def serve(self, items: list[dict], name: str) -> str:
        """Serve ``items`` (STAC Item dicts of collection ``sentinel-2-l2a``); return the API URL."""
        path = self.folder / f"{name}.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        for _ in range(3):  # a port taken between the probe and the bind: try another
            port = _free_port()
            proc = subprocess.Popen(
                [str(RUSTAC), "serve", "--addr", f"127.0.0.1:{port}", "--create-collections", str(path)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            self.procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{url}/collections/{COLLECTION}", timeout=1) as r:
                        if r.status == 200:
                            return url
                except OSError:
                    time.sleep(0.05)
            self._end(proc)
        raise RuntimeError(f"rustac serve did not answer: {proc.stdout.read().decode(errors='replace')}")

    @staticmethod
    def _end(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop(self) -> None:
        for p in self.procs:
            self._end(p)


@pytest.fixture(scope="module")
def rustac(tmp_path_factory):
    assert RUSTAC.exists(), f"{RUSTAC} missing: the dev extra (pip install -e '.[dev]', make test) installs rustac"
    srv = Rustac(tmp_path_factory.mktemp("rustac"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module", autouse=True)
def _no_quicklooks():
    """Quicklook PNGs (matplotlib, half of a small run) are not compared: skip them here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("soilsuite.io.quicklook.quicklooks_for", lambda *a, **k: [])
        yield


# ------------------------------------------------------------------------------ the archive
@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """32 x 32 px, May-June 2022 (baseline 04.00: offset -1000), 24 items, file:// hrefs."""
    return simulate(tmp_path_factory.mktemp("api") / "archive", size=32, start=START, end=END, seed=1,
                    hrefs="absolute")


def _items(archive) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((archive.out / COLLECTION).glob("*/*.json"))]


def _opts(archive) -> dict:
    return dict(start=START, end=END, crs=archive.crs, worldcover=archive.worldcover_path, scheduler="sync")


def _tifs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.tif"))}


@pytest.fixture(scope="module")
def static_tifs(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("static") / "out"
    composite(archive.catalog_path, out=out, **_opts(archive))
    tifs = _tifs(out)
    assert {"BSF.tif", "MASK.tif"} <= set(tifs)
    with rasterio.open(out / "BSC.tif") as src:
        assert src.read(1).max() > 0  # some bare observations: a real comparison
    return tifs


def _api_composite(url: str, archive, out: Path, **kw) -> dict[str, bytes]:
    composite(url, out=out, collection=COLLECTION, **_opts(archive), **kw)
    return _tifs(out)


# ------------------------------------------------------------------------------ conventions
def _stamp(d: dict) -> str:
    return d["properties"]["datetime"][:19].replace("-", "").replace(":", "")


def _tile(d: dict) -> str:
    return d["properties"]["grid:code"][5:]


def to_earth_search(d: dict, applied: bool = False) -> dict:
    """Earth Search v1 ``sentinel-2-l2a``: the simulator's layout plus ``earthsearch:*``."""
    d = copy.deepcopy(d)
    d.pop("links", None)
    d["properties"]["earthsearch:boa_offset_applied"] = applied
    return d


def to_cdse(d: dict) -> dict:
    """Copernicus Data Space: ``B02_10m``.. ``SCL_20m``, STAC 1.1 ``raster:scale``/``raster:offset``
    on the asset, ``processing:version``, ``grid:code``, ``product:type``, start/end_datetime."""
    p = d["properties"]
    pb = p["s2:processing_baseline"]
    sat = p["platform"][-1].upper()
    out = {
        "type": "Feature", "stac_version": "1.1.0", "collection": COLLECTION,
        "id": f"S2{sat}_MSIL2A_{_stamp(d)}_N{pb.replace('.', '')}_R079_T{_tile(d)}_{_stamp(d)}",
        "geometry": d["geometry"], "bbox": d["bbox"], "links": [],
        "stac_extensions": ["https://stac-extensions.github.io/eo/v2.0.0/schema.json",
                            "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
                            "https://stac-extensions.github.io/processing/v1.2.0/schema.json"],
        "properties": {
            "datetime": p["datetime"], "start_datetime": p["datetime"], "end_datetime": p["datetime"],
            "platform": p["platform"], "constellation": "sentinel-2", "instruments": ["msi"],
            "eo:cloud_cover": p["eo:cloud_cover"], "view:sun_elevation": p["view:sun_elevation"],
            "view:sun_azimuth": p["view:sun_azimuth"], "grid:code": p["grid:code"],
            "processing:version": pb, "processing:level": "L2", "product:type": "S2MSI2A", "gsd": 10,
        },
        "assets": {},
    }
    for b in BANDS:
        src = d["assets"][EARTH_SEARCH_KEYS[b]]
        rb = src["raster:bands"][0]
        out["assets"][f"{b}_{NATIVE_RES_M[b]}m"] = {
            "href": src["href"], "type": src["type"], "roles": ["data"], "gsd": src["gsd"],
            "proj:shape": src["proj:shape"], "proj:transform": src["proj:transform"],
            "data_type": "uint16", "nodata": 0, "raster:scale": rb["scale"], "raster:offset": rb["offset"],
            "bands": [{"name": b, "eo:common_name": COMMON_NAME[b]}],
        }
    scl = d["assets"]["scl"]
    out["assets"]["SCL_20m"] = {"href": scl["href"], "type": scl["type"], "roles": ["data"],
                                "data_type": "uint8", "nodata": 0, "proj:shape": scl["proj:shape"],
                                "proj:transform": scl["proj:transform"]}
    return out


def to_planetary_computer(d: dict) -> dict:
    """Planetary Computer: ``B02``.. ``B12``, ``SCL``, ``s2:processing_baseline``, ``s2:mgrs_tile``,
    ``s2:mean_solar_zenith`` (no ``view:*``) and no ``raster:bands`` (no declared offset)."""
    p = d["properties"]
    sat = p["platform"][-1].upper()
    out = {
        "type": "Feature", "stac_version": "1.0.0", "collection": COLLECTION,
        "id": f"S2{sat}_MSIL2A_{_stamp(d)}_R079_T{_tile(d)}_{_stamp(d)}",
        "geometry": d["geometry"], "bbox": d["bbox"], "links": [],
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
        "properties": {
            "datetime": p["datetime"], "platform": p["platform"], "constellation": "Sentinel 2",
            "instruments": ["msi"], "eo:cloud_cover": p["eo:cloud_cover"], "proj:epsg": p["proj:epsg"],
            "s2:mgrs_tile": _tile(d), "s2:processing_baseline": p["s2:processing_baseline"],
            "s2:product_type": "S2MSI2A", "s2:mean_solar_zenith": 90.0 - p["view:sun_elevation"],
            "s2:mean_solar_azimuth": p["view:sun_azimuth"],
        },
        "assets": {},
    }
    for b in BANDS:
        src = d["assets"][EARTH_SEARCH_KEYS[b]]
        out["assets"][b] = {"href": src["href"], "type": src["type"], "roles": ["data"], "gsd": src["gsd"],
                            "eo:bands": [{"name": b, "common_name": COMMON_NAME[b]}],
                            "proj:shape": src["proj:shape"], "proj:transform": src["proj:transform"]}
    scl = d["assets"]["scl"]
    out["assets"]["SCL"] = {"href": scl["href"], "type": scl["type"], "roles": ["data"]}
    return out


CONVENTIONS = {
    "earth-search": (to_earth_search, {"B04": "red", "B8A": "nir08", "SCL": "scl"}),
    "cdse": (to_cdse, {"B04": "B04_10m", "B8A": "B8A_20m", "SCL": "SCL_20m"}),
    "planetary-computer": (to_planetary_computer, {"B04": "B04", "B8A": "B8A", "SCL": "SCL"}),
}


# ------------------------------------------------------------------------------ tests
def test_simulate_hrefs_option(archive, tmp_path):
    """absolute: file:// URIs of the COGs in the final folder (not the temporary one); default
    relative; a bad value is a ConfigError; the CLI has --hrefs."""
    d = _items(archive)[0]
    href = d["assets"]["red"]["href"]
    assert href.startswith("file:///") and href.endswith("/red.tif")
    assert Path(href[len("file://"):]).is_file()
    assert href.startswith(archive.out.as_uri() + "/")
    # rasterio, pystac and odc-stac's reader all accept the URI
    with rasterio.open(href) as src:
        assert src.count == 1
    with pytest.raises(ConfigError, match="hrefs"):
        simulate(tmp_path / "bad", size=16, start=START, end=START, hrefs="server")
    r = CliRunner().invoke(app, ["simulate", str(tmp_path / "cli"), "--size", "16", "--start", "2022-05-01",
                                 "--end", "2022-05-10", "--hrefs", "absolute"])
    assert r.exit_code == 0, r.output
    js = sorted((tmp_path / "cli" / COLLECTION).glob("*/*.json"))
    assert js and all(a["href"].startswith("file:///") for p in js for a in json.loads(p.read_text())["assets"].values())
    rel = simulate(tmp_path / "rel", size=16, start=START, end=dt.date(2022, 5, 10))
    it = json.loads(next((rel.out / COLLECTION).glob("*/*.json")).read_text())
    assert it["assets"]["red"]["href"] == "./red.tif"


def test_composite_through_api_is_byte_identical_and_paged(archive, static_tifs, rustac, tmp_path,
                                                           monkeypatch):
    """The CLI through the API (5 items a page -> 5 pages for 24 items) = the static run."""
    from pystac_client.stac_api_io import StacApiIO

    url = rustac.serve([to_earth_search(d) for d in _items(archive)], "es")
    calls: list[str] = []
    orig = StacApiIO.request

    def spy(self, href, method=None, headers=None, parameters=None):
        calls.append(href)
        return orig(self, href, method=method, headers=headers, parameters=parameters)

    monkeypatch.setattr(StacApiIO, "request", spy)
    monkeypatch.setattr(S, "API_PAGE_SIZE", PAGE)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, [
        "composite", url, "--collection", COLLECTION, "--out", str(out), "--start", str(START),
        "--end", str(END), "--crs", archive.crs, "--worldcover", str(archive.worldcover_path),
        "--scheduler", "sync", "--quiet"])
    assert r.exit_code == 0, r.output
    n_search = sum(h.rstrip("/").endswith("/search") for h in calls)
    assert n_search >= -(-archive.n_items // PAGE) >= 5, calls
    assert _tifs(out) == static_tifs


def test_api_datetime_and_bbox_filters_match_the_static_catalog(archive, rustac, monkeypatch):
    monkeypatch.setattr(S, "API_PAGE_SIZE", PAGE)
    url = rustac.serve([to_earth_search(d) for d in _items(archive)], "es-filters")
    w, s, e, n = archive.bbox_lonlat
    east = (w + 0.6 * (e - w), s, e, n)  # misses the neighbouring tile's western strip
    cases = [(START, END, None), (dt.date(2022, 5, 10), dt.date(2022, 5, 25), None), (START, END, east),
             (dt.date(2022, 6, 1), dt.date(2022, 6, 14), east)]
    counts = []
    for a, b, bbox in cases:
        api = S.search_items(url, start=a, end=b, bbox=bbox, collection=COLLECTION)
        static = S.search_items(archive.catalog_path, start=a, end=b, bbox=bbox)
        assert [it.id for it in api] == [it.id for it in static]
        assert all(a <= it.datetime.date() <= b for it in api)
        counts.append(len(api))
    assert counts[0] == archive.n_items
    assert 0 < counts[1] < counts[0] and 0 < counts[2] < counts[0] and 0 < counts[3] < counts[2]
    # one day, inclusive: the items of exactly that day
    day = _items(archive)[0]["properties"]["datetime"][:10]
    one = S.search_items(url, start=dt.date.fromisoformat(day), end=dt.date.fromisoformat(day), collection=COLLECTION)
    assert one and {it.datetime.date().isoformat() for it in one} == {day}


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_conventions_composite_like_the_static_catalog(name, archive, static_tifs, rustac, tmp_path,
                                                       monkeypatch):
    convert, expect = CONVENTIONS[name]
    monkeypatch.setattr(S, "API_PAGE_SIZE", PAGE)
    url = rustac.serve([convert(d) for d in _items(archive)], name)
    items = S.search_items(url, start=START, end=END, collection=COLLECTION)
    assert len(items) == archive.n_items
    assets = S.resolve_assets(items)
    assert {b: assets[b] for b in expect} == expect
    assert {S.item_offset_dn(it, assets["B04"]) for it in items} == {-1000}
    assert all(S.mgrs_tile(it) in ("33UUU", "33UVU") for it in items)
    assert all(S.sun_elevation(it) > 20 for it in items)
    if name != "earth-search":  # the served simulator layout: composited by the paged CLI test
        assert _api_composite(url, archive, tmp_path / "out") == static_tifs


def _offset_applied_copy(d: dict, folder: Path) -> dict:
    """The item as Earth Search serves a harmonised scene: DN - 1000 in the COGs and
    ``earthsearch:boa_offset_applied: true``, while ``raster:bands`` still declares -0.1."""
    d = to_earth_search(d, applied=True)
    idir = folder / d["id"]
    idir.mkdir(parents=True)
    for b in BANDS:
        a = d["assets"][EARTH_SEARCH_KEYS[b]]
        with rasterio.open(a["href"]) as src:
            dn, profile = src.read(1), src.profile
        assert dn[dn > 0].min() > 1000  # else uint16 would clip and the comparison be unfair
        path = idir / Path(a["href"]).name
        profile.update(driver="GTiff")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.where(dn == 0, 0, dn - 1000).astype(dn.dtype), 1)
        a["href"] = path.as_uri()
        assert a["raster:bands"][0]["offset"] == -0.1
    return d


def test_earth_search_offset_applied_is_not_applied_twice(archive, static_tifs, rustac, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(S, "API_PAGE_SIZE", PAGE)
    docs = _items(archive)
    days = sorted({d["properties"]["datetime"][:10] for d in docs})[:2]
    served = [_offset_applied_copy(d, tmp_path / "harmonised") if d["properties"]["datetime"][:10] in days
              else to_earth_search(d) for d in docs]
    url = rustac.serve(served, "es-applied")
    items = S.search_items(url, start=START, end=END, collection=COLLECTION)
    assets = S.resolve_assets(items)
    meta = S.observation_meta(items, assets)
    want = [0 if d.isoformat() in days else -1000 for d in meta.dates]
    assert meta.offset_dn.tolist() == want and want.count(0) == 2
    assert _api_composite(url, archive, tmp_path / "out") == static_tifs


def _item(props: dict, asset: dict | None = None, when=dt.datetime(2023, 6, 1, tzinfo=dt.UTC)) -> pystac.Item:
    it = pystac.Item("x", None, None, when, dict(props))
    it.add_asset("B04", pystac.Asset("file:///x/B04.tif", extra_fields=asset or {}))
    return it


ES_RB = {"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}


@pytest.mark.parametrize("props, asset, when, dn", [
    ({"earthsearch:boa_offset_applied": True, "s2:processing_baseline": "05.09"}, ES_RB, None, 0),
    ({"earthsearch:boa_offset_applied": False, "s2:processing_baseline": "05.09"}, ES_RB, None, -1000),
    ({"s2:processing_baseline": "02.14"}, {"raster:bands": [{"scale": 0.0001, "offset": 0.0}]}, None, 0),
    ({"processing:version": "05.10"}, {"raster:scale": 0.0001, "raster:offset": -0.1}, None, -1000),
    # a 2020 acquisition reprocessed with an offset (Collection-1, N0500): the declared offset
    # wins over the date (no baseline property here, so only the raster metadata can say it)
    ({}, {"raster:scale": 0.0001, "raster:offset": -0.1}, dt.datetime(2020, 3, 22, tzinfo=dt.UTC), -1000),
    ({}, {"bands": [{"raster:scale": 0.0001, "raster:offset": -0.1}]}, dt.datetime(2020, 3, 22, tzinfo=dt.UTC), -1000),
    ({"processing:version": "05.00"}, {}, dt.datetime(2020, 3, 22, tzinfo=dt.UTC), -1000),
    ({"s2:processing_baseline": "05.09"}, {}, None, -1000),  # Planetary Computer: nothing declared
    ({"s2:processing_baseline": "03.01"}, {"raster:bands": [{"scale": 0.0001}]}, None, 0),
    ({}, {}, dt.datetime(2022, 1, 24, tzinfo=dt.UTC), 0),
    ({}, {}, dt.datetime(2022, 1, 25, 10, tzinfo=dt.UTC), -1000),
])
def test_item_offset_rules(props, asset, when, dn):
    it = _item(props, asset, when or dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
    assert S.item_offset_dn(it, "B04") == dn


def test_bad_processing_version_is_named():
    with pytest.raises(InputError, match=r"'x'.*processing:version 'N/A'"):
        S.item_offset_dn(_item({"processing:version": "N/A"}), "B04")


def test_relative_hrefs_behind_an_api_are_one_clear_error(rustac, tmp_path):
    """The default (relative) archive served as it is: every asset would 404 on the API."""
    rel = simulate(tmp_path / "rel", size=16, start=START, end=dt.date(2022, 5, 10), seed=2)
    url = rustac.serve([json.loads(p.read_text()) for p in sorted((rel.out / COLLECTION).glob("*/*.json"))], "rel")
    with pytest.raises(InputError) as ei:
        S.search_items(url, start=START, end=END, collection=COLLECTION)
    msg = str(ei.value)
    assert "STAC item 'S2" in msg and f"STAC API {url}" in msg
    assert "asset 'blue'" in msg and "'./blue.tif'" in msg
    assert f"{url}/collections/{COLLECTION}/items/blue.tif" in msg and "--hrefs absolute" in msg
    r = CliRunner().invoke(app, ["composite", url, "--collection", COLLECTION, "--out", str(tmp_path / "o"),
                                 "--start", str(START), "--end", str(END), "--scheduler", "sync"])
    flat = "".join(r.output.split())
    assert r.exit_code == 2 and "asset'blue'" in flat and f"{url}/collections/{COLLECTION}/items/blue.tif" in flat
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_missing_asset_and_unknown_collection_are_named(archive, rustac, tmp_path):
    docs = [to_earth_search(d) for d in _items(archive)]
    gone = tmp_path / "gone" / "red.tif"
    docs[3]["assets"]["red"]["href"] = gone.as_uri()
    url = rustac.serve(docs, "es-missing")
    with pytest.raises(InputError, match="no collection 'sentinel-2-l1c'.*sentinel-2-l2a"):
        S.search_items(url, start=START, end=END, collection="sentinel-2-l1c")
    with pytest.raises(InputError, match="collection id"):
        S.search_items(url, start=START, end=END)
    with pytest.raises(InputError) as ei:
        composite(url, out=tmp_path / "out", collection=COLLECTION, **_opts(archive))
    assert str(gone) in str(ei.value)
