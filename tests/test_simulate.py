"""The simulated Sentinel-2 L2A archive: STAC layout, readers, realism statistics, determinism.

The realism checks read the COGs straight with rasterio (offset from the acquisition date) and
compare with the truth written next to them (``load_truth``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from soilsuite.errors import ConfigError, OutputExistsError
from soilsuite.sentinel2 import BANDS, EARTH_SEARCH_KEYS, NATIVE_RES_M, PB04_START
from soilsuite.sources.simulate import (
    TRUTH_BARE,
    TRUTH_CLASSES,
    TRUTH_CLOUD,
    TRUTH_DRYVEG,
    TRUTH_HAZE,
    TRUTH_SHADOW,
    TRUTH_SNOW,
    SimulationResult,
    load_truth,
    simulate,
)

B = {b: i for i, b in enumerate(BANDS)}
CLEAR_MASK = TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW


@pytest.fixture(scope="module")
def items(sim_archive):
    cat = pystac.read_file(str(sim_archive.catalog_path))
    return list(cat.get_items(recursive=True))


@pytest.fixture(scope="module")
def main_items(sim_archive, items):
    """The item covering the whole grid for each date, in time order."""
    n = sim_archive.shape[1]
    main = [it for it in items if it.assets["scl"].extra_fields["proj:shape"] == [n, n]]
    return sorted(main, key=lambda it: it.datetime)


@pytest.fixture(scope="module")
def cube(main_items):
    """Offset-corrected reflectance [T, 10, Y, X] (NaN = nodata) and SCL [T, Y, X] at 20 m."""
    refl, scl = [], []
    for it in main_items:
        off = -1000 if it.datetime.date() >= PB04_START else 0
        bands = []
        for b in BANDS:
            with rasterio.open(it.assets[EARTH_SEARCH_KEYS[b]].get_absolute_href()) as src:
                a = src.read(1).astype("float64")
            if NATIVE_RES_M[b] == 10:
                a = a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))
            a[a == 0] = np.nan
            bands.append((a + off) / 1e4)
        refl.append(np.stack(bands))
        with rasterio.open(it.assets["scl"].get_absolute_href()) as src:
            scl.append(src.read(1))
    return np.stack(refl), np.stack(scl)


@pytest.fixture(scope="module")
def truth(sim_archive):
    return load_truth(sim_archive.out)


def _ix(r):
    ndvi = (r[:, B["B08"]] - r[:, B["B04"]]) / (r[:, B["B08"]] + r[:, B["B04"]])
    nbr = (r[:, B["B08"]] - r[:, B["B12"]]) / (r[:, B["B08"]] + r[:, B["B12"]])
    nbr2 = (r[:, B["B11"]] - r[:, B["B12"]]) / (r[:, B["B11"]] + r[:, B["B12"]])
    return ndvi, nbr, nbr2


# ------------------------------------------------------------------------------------------
# layout and readers
# ------------------------------------------------------------------------------------------
def test_result_fields(sim_archive):
    r = sim_archive
    assert isinstance(r, SimulationResult)
    assert r.shape == (96, 96) and r.resolution == 20.0 and r.epsg == 32633
    assert r.transform.a == 20.0 and r.transform.c % 20 == 0 and r.transform.f % 20 == 0
    assert r.bounds[2] - r.bounds[0] == 96 * 20
    w, s, e, n = r.bbox_lonlat
    assert 12 < w < e < 16 and 50 < s < n < 55
    assert len(r.dates) == 146 and r.dates == sorted(r.dates)
    assert len(r.item_ids) >= len(r.dates)
    assert r.worldcover_path.exists() and r.truth_dir.is_dir() and r.n_bytes > 1e6
    assert "cropland" in str(_render(r.summary()))


def _render(renderable) -> str:
    from rich.console import Console

    c = Console(record=True, width=120)
    c.print(renderable)
    return c.export_text()


def test_catalog_opens_with_pystac(sim_archive, items):
    cat = pystac.read_file(str(sim_archive.catalog_path))
    coll = cat.get_child("sentinel-2-l2a")
    assert isinstance(coll, pystac.Collection)
    assert len(items) == len(sim_archive.item_ids)
    assert {it.id for it in items} == set(sim_archive.item_ids)
    for it in items[:40]:
        assert set(it.assets) == {*EARTH_SEARCH_KEYS.values()}
        for a in it.assets.values():
            assert a.get_absolute_href() and __import__("os").path.exists(a.get_absolute_href())
            assert a.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    # self-contained: relative hrefs
    d = json.loads(open(items[0].get_self_href()).read())
    assert d["assets"]["blue"]["href"] == "./blue.tif"
    assert d["properties"]["proj:epsg"] == 32633 and "projection/v1.1.0" in " ".join(d["stac_extensions"])


def test_item_properties(sim_archive, items):
    import re

    lon = np.mean(sim_archive.bbox_lonlat[::2])
    for it in items:
        p = it.properties
        assert re.match(r"^S2[AB]_\d\d[C-X][A-Z]{2}_\d{8}_0_L2A$", it.id), it.id
        assert p["platform"] in ("sentinel-2a", "sentinel-2b") and p["constellation"] == "sentinel-2"
        assert p["instruments"] == ["msi"]
        # on disk projection v1.1 (proj:epsg) as Earth Search; pystac may migrate it to proj:code
        assert p.get("proj:epsg") == 32633 or p.get("proj:code") == "EPSG:32633"
        assert 0 <= p["eo:cloud_cover"] <= 100 and 0 <= p["s2:nodata_pixel_percentage"] <= 100
        solar = it.datetime + dt.timedelta(hours=lon / 15)
        assert solar.date() == it.datetime.date() and 10 <= solar.hour <= 10
        date = it.datetime.date()
        pb = float(p["s2:processing_baseline"])
        assert (pb >= 4.0) == (date >= PB04_START)
        for key, a in it.assets.items():
            rb = a.extra_fields["raster:bands"][0]
            assert rb["nodata"] == 0
            if key != "scl":
                assert rb["scale"] == 0.0001 and rb["offset"] == (-0.1 if date >= PB04_START else 0.0)
                assert a.roles == ["data", "reflectance"]
                band = a.extra_fields["eo:bands"][0]
                assert EARTH_SEARCH_KEYS[band["name"]] == key
                res = NATIVE_RES_M[band["name"]]
                assert rb["spatial_resolution"] == res and a.extra_fields["proj:transform"][0] == res
    # the 10 m bands really are 10 m
    it = items[0]
    with rasterio.open(it.assets["red"].get_absolute_href()) as r10, \
            rasterio.open(it.assets["swir16"].get_absolute_href()) as r20:
        assert r10.res == (10.0, 10.0) and r20.res == (20.0, 20.0)
        assert r10.width == 2 * r20.width and r10.dtypes[0] == "uint16" and r10.nodata == 0
        assert list(r10.shape) == it.assets["red"].extra_fields["proj:shape"]
        assert r10.profile.get("tiled") and r10.compression is not None


def test_items_validate_against_stac_model(items):
    from stac_pydantic import Item

    for it in items[:30]:
        Item.model_validate(it.to_dict())


def test_odc_stac_loads(sim_archive, items):
    from odc.stac import load

    sub = [it for it in items if it.datetime.date() < dt.date(2021, 3, 1)]
    ds = load(sub, bands=["red", "nir", "swir22", "scl"], groupby="solar_day", resolution=20,
              crs=f"EPSG:{sim_archive.epsg}")
    n_days = len({it.datetime.date() for it in sub})
    assert ds.sizes["time"] == n_days  # overlapping tiles fused into one observation per day
    assert ds["red"].dtype == np.uint16 and ds["scl"].dtype == np.uint8
    assert (ds.sizes["y"], ds.sizes["x"]) == sim_archive.shape  # the default grid is the 20 m grid
    assert float(ds.x[0]) == sim_archive.bounds[0] + 10 and float(ds.y[0]) == sim_archive.bounds[3] - 10
    assert int(ds["red"].max()) > 0
    # and on the simulator's GeoBox: same values as the 20 m COG
    ds2 = load(sub[:2], bands=["swir16"], geobox=sim_archive.geobox)
    with rasterio.open(sub[0].assets["swir16"].get_absolute_href()) as src:
        a = src.read(1)
    got = ds2["swir16"].sel(time=ds2.time[0]).values
    np.testing.assert_array_equal(got[:, : a.shape[1]], a)


def test_overlapping_tiles_hold_identical_pixels(sim_archive, items):
    by_day: dict = {}
    for it in items:
        by_day.setdefault(it.datetime.date(), []).append(it)
    pairs = [v for v in by_day.values() if len(v) == 2]
    assert pairs, "overlap_tiles=True writes two items on some days"
    a, b = sorted(pairs[0], key=lambda it: -it.assets["scl"].extra_fields["proj:shape"][1])
    with rasterio.open(a.assets["nir"].get_absolute_href()) as ra, rasterio.open(b.assets["nir"].get_absolute_href()) as rb:
        wa, wb = ra.read(1), rb.read(1)
        assert rb.transform.c == ra.transform.c
        np.testing.assert_array_equal(wa[:, : wb.shape[1]], wb)


def test_worldcover(sim_archive, truth):
    with rasterio.open(sim_archive.worldcover_path) as src:
        assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "uint8" and src.nodata == 0
        assert abs(src.res[0] - 1 / 12000) < 1e-12
        wc = src.read(1)
        # sample at the 20 m pixel centres of the truth grid
        from pyproj import Transformer

        X, Y = np.meshgrid(truth.x.values, truth.y.values)
        lon, lat = Transformer.from_crs(sim_archive.epsg, 4326, always_xy=True).transform(X, Y)
        rows, cols = rasterio.transform.rowcol(src.transform, lon.ravel(), lat.ravel())
        wcs = wc[np.asarray(rows), np.asarray(cols)].reshape(X.shape)
    assert set(np.unique(wc)) <= {10, 20, 30, 40, 50, 60, 80, 90}
    lc = truth["landcover"].values
    expect = np.array([0, 40, 30, 10, 50, 80])[lc]
    agree = float(np.mean(wcs == expect))
    assert 0.78 < agree < 0.97, agree  # real-style label noise


def test_truth(sim_archive, truth):
    assert truth.sizes == {"y": 96, "x": 96, "band": 10, "time": 146} or dict(truth.sizes) == {
        "y": 96, "x": 96, "band": 10, "time": 146}
    assert list(truth.band.values) == list(BANDS)
    lc = truth["landcover"].values
    assert set(np.unique(lc)) <= set(TRUTH_CLASSES)
    crop = np.mean(lc == 1)
    assert 0.45 < crop < 0.72, crop
    for k in TRUTH_CLASSES:
        assert (lc == k).any(), TRUTH_CLASSES[k]
    soil = truth["soil_reflectance"].values
    assert soil.dtype == np.float32 and 0.01 <= soil.min() and soil.max() < 0.6
    assert 3 <= float(truth["soc"].min()) and float(truth["soc"].max()) < 300
    assert 1 <= float(truth["clay"].min()) and float(truth["clay"].max()) <= 70
    assert len(np.unique(truth["soil_type"].values)) >= 2
    assert (truth["field_id"].values[lc == 1] > 0).mean() > 0.95
    assert truth.time.values[0] == np.datetime64(sim_archive.dates[0])
    # darker soil with more organic carbon
    r = np.corrcoef(np.log(truth["soc"].values.ravel()), soil[B["B08"]].ravel())[0, 1]
    assert r < -0.5, r
    geo = json.loads((sim_archive.truth_dir / "fields.geojson").read_text())
    assert len(geo["features"]) >= 10 and {"field_id", "class"} <= set(geo["features"][0]["properties"])


# ------------------------------------------------------------------------------------------
# realism
# ------------------------------------------------------------------------------------------
def test_bare_frequency_by_land_cover(truth):
    f = truth["obs_flags"].values
    lc = truth["landcover"].values
    clear = ((f & CLEAR_MASK) == 0) & (truth["soil_fraction"].values > 0) | (((f & CLEAR_MASK) == 0) & (f > 0))
    clear = (f & CLEAR_MASK) == 0
    bare = (f & TRUTH_BARE) != 0
    freq = {}
    for k, name in TRUTH_CLASSES.items():
        sel = (lc == k)[None] & clear
        freq[name] = bare[sel].mean()
    assert 0.1 < freq["cropland"] < 0.5, freq
    assert freq["grassland"] < 0.02 and freq["forest"] < 0.005 and freq["water"] == 0, freq
    # bare periods differ field by field: per-pixel bare frequency varies on cropland
    per_px = (bare & clear).sum(0) / np.maximum(clear.sum(0), 1)
    assert per_px[lc == 1].std() > 0.05


def test_cloud_cover_near_requested(sim_archive, main_items, truth):
    cc = np.array([it.properties["eo:cloud_cover"] for it in main_items]) / 100
    assert abs(cc.mean() - 0.35) < 0.1, cc.mean()
    tcf = ((truth["obs_flags"].values & TRUTH_CLOUD) != 0).mean(axis=(1, 2))
    assert abs(tcf.mean() - 0.35) < 0.1, tcf.mean()
    assert (cc < 0.05).sum() > 10 and (cc > 0.9).sum() > 5  # clear and overcast scenes


def test_sun_elevation_follows_season(main_items):
    el = {it.datetime.date(): it.properties["view:sun_elevation"] for it in main_items}
    winter = [v for d, v in el.items() if d.month in (12, 1)]
    summer = [v for d, v in el.items() if d.month in (6, 7)]
    assert min(winter) < 20 and sum(v < 20 for v in winter) >= 3
    assert min(summer) > 50
    az = [it.properties["view:sun_azimuth"] for it in main_items]
    assert 120 < min(az) and max(az) < 180


def test_spectral_indices_by_truth(cube, truth):
    refl, scl = cube
    f = truth["obs_flags"].values
    sf = truth["soil_fraction"].values
    ndvi, nbr, nbr2 = _ix(refl)
    pv = ndvi + nbr
    clear = ((f & CLEAR_MASK) == 0) & np.isfinite(pv)
    bare = clear & ((f & TRUTH_BARE) != 0)
    dry = clear & ((f & TRUTH_DRYVEG) != 0) & (sf < 50)
    lc = truth["landcover"].values[None]
    green = clear & (sf < 5) & ((f & TRUTH_DRYVEG) == 0) & (ndvi > 0) & ((lc == 1) | (lc == 2))
    # green vegetation at peak: take the greenest half of green-truth observations per field
    assert np.percentile(ndvi[green], 75) > 0.6
    assert np.nanmedian(ndvi[green & (sf == 0)]) > 0.6
    assert np.nanmean(nbr[bare]) < 0.2
    assert np.mean(pv[bare] < 0.2) > 0.7, np.mean(pv[bare] < 0.2)
    share_dry_below = np.mean(pv[dry] < 0.2)
    assert 0.1 < share_dry_below < 0.8, share_dry_below  # the method's known false positive (SPEC)
    assert np.nanmean(nbr2[dry]) > np.nanmean(nbr2[bare]) + 0.03


def test_haze_raises_blue_more_than_swir(cube, truth):
    refl, _ = cube
    f = truth["obs_flags"].values
    clear = (f & CLEAR_MASK) == 0
    hazy = ((f & TRUTH_HAZE) != 0) & ((f & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_SNOW)) == 0)
    lc = truth["landcover"].values
    # compare each hazy pixel with the same pixel's median over clear observations
    base = np.where(clear[:, None], refl, np.nan)
    med = np.nanmedian(base, axis=0)
    d = refl - med[None]
    db = np.nanmean(d[:, B["B02"]][hazy & (lc == 3)[None]])
    ds = np.nanmean(d[:, B["B12"]][hazy & (lc == 3)[None]])
    assert db > 0.005 and db > 3 * abs(ds), (db, ds)


def test_processing_baseline_offset(sim_archive, main_items, truth):
    """The same surface before and after 2022-01-25 differs by ~1000 DN (water, clear scenes)."""
    lc = truth["landcover"].values
    f = truth["obs_flags"].values
    water = lc == 5
    vals = {True: [], False: []}
    for ti, it in enumerate(main_items):
        if ((f[ti][water] & CLEAR_MASK) != 0).mean() > 0.05 or not (dt.date(2021, 9, 1) <= it.datetime.date() <= dt.date(2022, 5, 1)):
            continue
        with rasterio.open(it.assets["swir22"].get_absolute_href()) as src:
            a = src.read(1)
        v = a[water & (a > 0)]
        if v.size:
            vals[it.datetime.date() >= PB04_START].append(np.median(v))
    assert vals[True] and vals[False]
    diff = np.median(vals[True]) - np.median(vals[False])
    assert 950 < diff < 1050, diff


def test_nodata_margin_on_some_scenes(main_items):
    nd = [it.properties["s2:nodata_pixel_percentage"] for it in main_items]
    assert 1 <= sum(v > 0 for v in nd) < len(nd) // 4
    it = main_items[int(np.argmax(nd))]
    with rasterio.open(it.assets["scl"].get_absolute_href()) as s, rasterio.open(it.assets["blue"].get_absolute_href()) as b:
        scl = s.read(1)
        blue = b.read(1)
    assert ((scl == 0).mean() * 100 - max(nd)) < 1
    assert (blue == 0).any() and ((blue[::2, ::2] == 0) == (scl == 0)).all()


def test_scl_realistic_errors(cube, truth):
    _, scl = cube
    f = truth["obs_flags"].values
    cloud = (f & TRUTH_CLOUD) != 0
    scl_cloud = np.isin(scl, (8, 9, 10))
    recall = scl_cloud[cloud].mean()
    assert 0.7 < recall < 0.99, recall
    hazy = ((f & TRUTH_HAZE) != 0) & ~cloud
    missed_haze = np.isin(scl[hazy], (4, 5, 6)).mean()
    assert missed_haze > 0.5, missed_haze  # SCL misses most haze: the B02 filter's reason
    shadow = (f & TRUTH_SHADOW) != 0
    if shadow.sum() > 100:
        sr = (scl[shadow] == 3).mean()
        assert 0.4 < sr < 0.98, sr
    clear = (f & CLEAR_MASK) == 0
    lc = np.broadcast_to(truth["landcover"].values[None], f.shape)
    assert np.isin(scl[clear & (lc == 5)], (6,)).mean() > 0.8
    snow = (f & TRUTH_SNOW) != 0
    if snow.any():
        assert (scl[snow] == 11).mean() > 0.5
    assert (scl == 7).any()


def test_moisture_darkens_soil_most_in_swir(cube, truth):
    refl, _ = cube
    f = truth["obs_flags"].values
    bare = ((f & TRUTH_BARE) != 0) & ((f & CLEAR_MASK) == 0)
    moist = bare & ((f & 64) != 0)
    dryb = bare & ((f & 64) == 0)
    soil = truth["soil_reflectance"].values
    if moist.sum() < 20 or dryb.sum() < 20:
        pytest.skip("too few moist/dry bare observations in this archive")
    ratio = {b: np.nanmean(refl[:, B[b]][moist] / np.broadcast_to(soil[B[b]], f.shape)[moist])
             for b in ("B04", "B12")}
    assert ratio["B12"] < ratio["B04"] < 1.0, ratio


# ------------------------------------------------------------------------------------------
# determinism and errors
# ------------------------------------------------------------------------------------------
def _digest(root, rel):
    return hashlib.sha256((root / rel).read_bytes()).hexdigest()


def test_determinism(tmp_path):
    kw = dict(size=32, start=dt.date(2022, 1, 1), end=dt.date(2022, 3, 1), overlap_tiles=False)
    a = simulate(tmp_path / "a", seed=5, **kw)
    b = simulate(tmp_path / "b", seed=5, **kw)
    c = simulate(tmp_path / "c", seed=6, **kw)
    assert a.item_ids == b.item_ids and a.dates == b.dates
    it = a.item_ids[3]
    for rel in ("catalog.json", "worldcover.tif", "truth/obs_flags.tif", "truth/soil_reflectance.tif",
                f"sentinel-2-l2a/{it}/{it}.json", f"sentinel-2-l2a/{it}/blue.tif", f"sentinel-2-l2a/{it}/scl.tif"):
        assert _digest(a.out, rel) == _digest(b.out, rel), rel
    ta, tb, tc = load_truth(a.out), load_truth(b.out), load_truth(c.out)
    assert ta.identical(tb)
    assert not np.array_equal(ta["landcover"].values, tc["landcover"].values)
    assert _digest(a.out, f"sentinel-2-l2a/{it}/blue.tif") != _digest(c.out, f"sentinel-2-l2a/{c.item_ids[3]}/blue.tif")
    assert not list(tmp_path.glob(".*-tmp-*"))


def test_refuses_existing_output(tmp_path):
    out = tmp_path / "arch"
    out.mkdir()
    (out / "x.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="arch"):
        simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 10))
    assert (out / "x.txt").exists()
    # a folder that holds no simulated archive is never wiped (it was, with overwrite)
    with pytest.raises(OutputExistsError, match="not a soilsuite output"):
        simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 10), overwrite=True)
    assert [p.name for p in out.iterdir()] == ["x.txt"]
    r = simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 10), force_clean=True)
    assert (out / "x.txt").read_text() == "keep me" and r.catalog_path.exists()
    # an earlier archive is replaced, the user's file beside it only with force_clean, and kept
    with pytest.raises(OutputExistsError, match="x.txt"):
        simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 20), overwrite=True)
    r2 = simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 20), overwrite=True, force_clean=True)
    assert (out / "x.txt").read_text() == "keep me" and r2.n_items > r.n_items
    (out / "x.txt").unlink()
    r3 = simulate(out, size=16, start=dt.date(2022, 1, 1), end=dt.date(2022, 1, 10), overwrite=True)
    assert r3.n_items == r.n_items
    # nothing of the longer archive is left behind
    assert len(list(out.glob("sentinel-2-l2a/*/*.json"))) == r.n_items


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(size=8), "size"),
        (dict(start=dt.date(2022, 2, 1), end=dt.date(2022, 1, 1)), "end"),
        (dict(cloud_fraction=1.5), "cloud_fraction"),
        (dict(cloud_fraction=-0.1), "cloud_fraction"),
        (dict(epsg=4326), "epsg"),
        (dict(epsg=3035), "epsg"),
        (dict(revisit_days=0), "revisit_days"),
    ],
)
def test_bad_parameters(tmp_path, kw, name):
    with pytest.raises(ConfigError, match=name):
        simulate(tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def test_extreme_cloud_fractions(tmp_path):
    kw = dict(size=16, start=dt.date(2022, 6, 1), end=dt.date(2022, 6, 20), overlap_tiles=False)
    clear = simulate(tmp_path / "clear", cloud_fraction=0.0, **kw)
    assert max(clear.cloud_cover) < 2
    full = simulate(tmp_path / "full", cloud_fraction=1.0, **kw)
    assert min(full.cloud_cover) > 70


def test_cli_simulate(tmp_path):
    from typer.testing import CliRunner

    from soilsuite.cli import app

    r = CliRunner().invoke(app, ["simulate", str(tmp_path / "c"), "--size", "16", "--start", "2022-01-01",
                                 "--end", "2022-01-20"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c" / "catalog.json").exists()


def test_relative_output_path_gives_resolvable_hrefs(tmp_path, monkeypatch):
    """`soilsuite simulate archive` from the current folder (as `make demo` does)."""
    import pystac

    from soilsuite.sources.simulate import simulate

    monkeypatch.chdir(tmp_path)
    res = simulate("rel/archive", size=16, start=dt.date(2021, 6, 1), end=dt.date(2021, 6, 10), seed=1,
                   overlap_tiles=False)
    cat = pystac.read_file(str(tmp_path / "rel" / "archive" / "catalog.json"))
    items = list(cat.get_items(recursive=True))
    assert items and res.catalog_path.is_absolute()
    for it in items:
        for asset in it.assets.values():
            assert not asset.href.startswith("/") and "tmp" not in asset.href, asset.href
            assert Path(asset.get_absolute_href()).exists(), asset.get_absolute_href()
