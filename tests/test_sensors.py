"""The Sensor object: Sentinel-2 L2A's facts, one grouping rule for metadata and pixels, and a
second (toy) sensor running through the index and mask kernels by its band roles."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from soilsuite import sentinel2 as legacy
from soilsuite.kernels import indices, masks
from soilsuite.kernels import reference as R
from soilsuite.sensors import (
    REFL_NODATA,
    SENSORS,
    SENTINEL2_L2A,
    Band,
    QualityMask,
    Sensor,
    get_sensor,
    solar_day,
)
from soilsuite.sources import stac as S

S2 = SENTINEL2_L2A


# ----------------------------------------------------------------------------- Sentinel-2 facts
def test_s2_roles_name_the_scmap_bands():
    assert get_sensor("sentinel2-l2a") is S2 and get_sensor() is S2 and get_sensor(S2) is S2
    assert set(SENSORS) == {"sentinel2-l2a"}
    assert {r: S2.band(r) for r in ("blue", "green", "red", "nir", "swir1", "swir2")} == {
        "blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"}
    assert S2.band_names == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert [S2.index(r) for r in ("blue", "red", "nir", "swir1", "swir2")] == [0, 2, 6, 8, 9]
    assert S2.index("B8A") == 7  # a band name works too
    assert S2.wavelength_um["B11"] == 1.610 and S2.fwhm_um["B12"] == 0.242 and S2.common_name["B8A"] == "nir08"
    assert S2.native_res_m["B04"] == 10 and S2.native_res_m["SCL"] == 20
    assert S2.quality.band == "SCL" and S2.quality.classes[9] == "cloud high probability"
    assert S2.quality.invalid == (0, 1, 2, 3, 7, 8, 9, 10, 11) and S2.quality.dilate == (3, 8, 9, 10)
    assert S2.reflectance_scale == 1e-4 and S2.dn_nodata == 0 and REFL_NODATA == -32768
    assert S2.all_assets == (*S2.band_names, "SCL")
    with pytest.raises(KeyError, match="no band for role 'thermal'"):
        S2.index("thermal")
    with pytest.raises(KeyError, match="unknown sensor 'landsat'"):
        get_sensor("landsat")


def test_compat_module_reexports_the_sensor():
    assert legacy.BANDS == S2.band_names and legacy.BAND_INDEX == S2.band_index
    assert legacy.SCL_INVALID == S2.quality.invalid and legacy.SCL_DILATE == S2.quality.dilate
    assert legacy.WAVELENGTH_UM == S2.wavelength_um and legacy.ASSET_ALIASES is S2.asset_aliases
    assert legacy.boa_add_offset is S2.offset_rule and legacy.REFL_NODATA == REFL_NODATA


def test_s2_offset_rule_on_both_sides_of_baseline_04():
    day = dt.date(2022, 1, 25)
    assert S2.boa_add_offset(None, day - dt.timedelta(days=1)) == 0
    assert S2.boa_add_offset(None, day) == -1000
    assert S2.boa_add_offset("", day + dt.timedelta(days=300)) == -1000
    # the baseline, when known, decides over the date
    assert S2.boa_add_offset("03.01", day) == 0
    assert S2.boa_add_offset("04.00", day - dt.timedelta(days=30)) == -1000
    assert S2.boa_add_offset(5.09, None) == -1000
    with pytest.raises(ValueError, match="processing_baseline or date"):
        S2.boa_add_offset(None, None)


@pytest.fixture(scope="module")
def items(sim_archive):
    """Items of the first quarter of 2021 of the simulated archive (overlapping tiles included)."""
    return S.search_items(sim_archive.catalog_path, start=dt.date(2021, 1, 1), end=dt.date(2021, 3, 31))


def test_asset_aliases_resolve_on_simulated_items(items):
    assets = S.resolve_assets(items, S2)
    assert assets == {b: legacy.EARTH_SEARCH_KEYS[b] for b in S2.all_assets}
    # a Planetary Computer / CDSE style key is found through the same alias table
    assert S2.asset_aliases["B04"][:3] == ("red", "B04", "B04_10m")
    assert S2.asset_aliases["SCL"][:3] == ("scl", "SCL", "SCL_20m")


def test_stac_cfg_accepted_by_odc_stac(sim_archive, items):
    import odc.stac

    assets = S.resolve_assets(items, S2)
    sub = items[:4]
    cfg = S2.stac_cfg(assets)
    assert cfg["*"]["assets"]["red"] == {"data_type": "uint16", "nodata": 0}
    assert cfg["*"]["assets"]["scl"] == {"data_type": "uint8", "nodata": 0}
    # our band names are aliases of the asset keys: load by "B04"/"SCL" directly
    ds = odc.stac.load(sub, bands=["B04", "SCL"], geobox=sim_archive.geobox, groupby=S2.solar_day, stac_cfg=cfg)
    ref = odc.stac.load(sub, bands=["red", "scl"], geobox=sim_archive.geobox, groupby="solar_day")
    assert ds["B04"].dtype == np.uint16 and ds["SCL"].dtype == np.uint8
    np.testing.assert_array_equal(ds["B04"].values, ref["red"].values)
    np.testing.assert_array_equal(ds["SCL"].values, ref["scl"].values)
    assert int(ds["B04"].max()) > 0
    # the catalogue-wide config (every alias) is accepted as well
    ds_all = odc.stac.load(sub, bands=["nir"], geobox=sim_archive.geobox, stac_cfg=S2.stac_cfg())
    assert ds_all["nir"].dtype == np.uint16


# ----------------------------------------------------------------------------- one grouping rule
def _weekly(item, parsed=None, idx=None):
    """A different grouping rule: the Monday of the item's solar-day week."""
    d = solar_day(item)
    return d - dt.timedelta(days=d.weekday())


def test_metadata_and_cube_share_the_grouping_rule(sim_archive, items):
    assets = S.resolve_assets(items, S2)
    assert len({S.mgrs_tile(it) for it in items}) == 2  # overlapping tiles: two items a day
    meta = S.observation_meta(items, assets, S2)
    ds = S.load_cube(items, sim_archive.geobox, assets, bands=("B04",), sensor=S2)
    assert len(meta.dates) < len(items)  # same-day tiles fused
    assert meta.dates == sorted({solar_day(it) for it in items})
    np.testing.assert_array_equal(ds.time.values, meta.times)

    weekly = dataclasses.replace(S2, name="s2-weekly", solar_day=_weekly)
    wmeta = S.observation_meta(items, assets, weekly)
    wds = S.load_cube(items, sim_archive.geobox, assets, bands=("B04",), sensor=weekly)
    assert len(wmeta.dates) < len(meta.dates)  # the new rule changes the metadata ...
    assert all(d.weekday() == 0 for d in wmeta.dates)
    np.testing.assert_array_equal(wds.time.values, wmeta.times)  # ... and the cube, alike
    assert wds.sizes["time"] == len(wmeta.dates) != ds.sizes["time"]


# ----------------------------------------------------------------------------- a second sensor
def _never(pb, date):
    return 0


LANDSAT_LIKE = Sensor(
    name="toy-landsat",
    bands=(
        Band("SR_B2", "blue", 0.482, 0.060, 30), Band("SR_B3", "green", 0.562, 0.057, 30),
        Band("SR_B4", "red", 0.655, 0.037, 30), Band("SR_B5", "nir08", 0.865, 0.028, 30),
        Band("SR_B6", "swir16", 1.610, 0.085, 30), Band("SR_B7", "swir22", 2.200, 0.187, 30),
    ),
    roles={"blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5", "swir1": "SR_B6",
           "swir2": "SR_B7"},
    quality=QualityMask(band="QA", classes={0: "fill", 1: "clear", 2: "cloud", 3: "shadow"},
                        invalid=(0, 2, 3), dilate=(2,), resolution_m=30),
    reflectance_scale=2.75e-5,
    dn_nodata=0,
    offset_rule=_never,
    asset_aliases={b: (b.lower(),) for b in ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "QA")},
)


def test_a_second_sensor_checks_its_roles():
    with pytest.raises(ValueError, match="unknown bands"):
        dataclasses.replace(LANDSAT_LIKE, roles={"red": "B04"})


def test_index_kernels_follow_the_roles_of_another_sensor():
    rng = np.random.default_rng(7)
    L = LANDSAT_LIKE
    refl = rng.integers(-500, 6000, size=(5, len(L.bands), 7, 9)).astype(np.int16)
    refl[1, L.index("nir"), 2, 3] = REFL_NODATA
    # the same surface seen by Sentinel-2: role bands at S2's positions, other bands noise
    s2 = rng.integers(0, 3000, size=(5, len(S2.bands), 7, 9)).astype(np.int16)
    for role in ("blue", "green", "red", "nir", "swir1", "swir2"):
        s2[:, S2.index(role)] = refl[:, L.index(role)]
    roles = {r: L.index(r) for r in ("red", "nir", "swir1", "swir2")}
    assert roles == {"red": 2, "nir": 3, "swir1": 4, "swir2": 5}
    cases = [
        (indices.ndvi, R.ndvi, dict(red=roles["red"], nir=roles["nir"])),
        (indices.nbr, R.nbr, dict(nir=roles["nir"], swir2=roles["swir2"])),
        (indices.nbr2, R.nbr2, dict(swir1=roles["swir1"], swir2=roles["swir2"])),
        (indices.pvir2, R.pvir2, dict(red=roles["red"], nir=roles["nir"], swir2=roles["swir2"])),
    ]
    for kernel, oracle, kw in cases:
        got = kernel(refl, **kw)
        np.testing.assert_array_equal(got, kernel(refl, parallel=True, **kw))
        np.testing.assert_array_equal(got, oracle(refl, **kw))
        np.testing.assert_array_equal(got, kernel(s2))  # S2 defaults on the S2 cube: same values
    pv = indices.pvir2(refl, **cases[3][2])
    assert np.isnan(pv[1, 2, 3]) and np.isfinite(pv).sum() == pv.size - 1
    nd = indices.normalized_difference(refl, L.index("nir"), L.index("red"))
    np.testing.assert_array_equal(nd, cases[0][0](refl, **cases[0][2]))
    with pytest.raises(ValueError, match="outside refl's 6 bands"):
        indices.pvir2(refl)  # S2's swir2 (position 9) does not exist on this sensor


def test_mask_kernel_takes_the_quality_classes_of_another_sensor():
    rng = np.random.default_rng(3)
    L = LANDSAT_LIKE
    qa = rng.choice([1, 1, 1, 1, 2, 3, 0], size=(4, 12, 12)).astype(np.uint8)
    refl = rng.integers(0, 5000, size=(4, len(L.bands), 12, 12)).astype(np.int16)
    sun = np.array([30.0, 40.0, 50.0, 80.0])
    kw = dict(invalid_scl=L.quality.invalid, dilate_scl=L.quality.dilate, dilation_px=3)
    got = masks.valid_mask(qa, refl, sun, **kw)
    np.testing.assert_array_equal(got, R.valid_mask(qa, refl, sun, **kw))
    assert not got[3].any() and got[:3].any()  # sun zenith 80 > 70
    assert not got[qa != 1].any()  # fill, cloud and shadow are invalid under this sensor's decoder
