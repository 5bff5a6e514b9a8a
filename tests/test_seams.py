"""The selector and aggregator seams (issue 13): a new selector or product is a one-place change.

The toy selector and the toy product below live in this file alone and go through the public
seams (:func:`soilsuite.kernels.selectors.register_selector`, :func:`soilsuite.products.register_product`):
a composite run then writes their COGs, per period, with STAC, and no package file changes.
Their values are checked against an independent computation from the per-observation flags.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio

from soilsuite import products as P
from soilsuite.kernels import aggregate, filters, indices
from soilsuite.kernels import composite as K
from soilsuite.kernels import reference as R
from soilsuite.kernels.selectors import SELECTORS, Selector, get_selector, register_selector, scmap
from soilsuite.pipeline.composite import composite, observation_flags
from soilsuite.sources.simulate import simulate

START, END = dt.date(2021, 9, 1), dt.date(2022, 4, 30)


def _cube(seed=0, t=12, n=9):
    rng = np.random.default_rng(seed)
    refl = rng.integers(-500, 6000, (t, 10, n, n)).astype(np.int16)
    refl[rng.random(refl.shape) < 0.02] = -32768
    valid = rng.random((t, n, n)) < 0.8
    thr = (0.2 + rng.normal(0, 0.05, (n, n))).astype(np.float32)
    return refl, valid, thr


# ----------------------------------------------------------------------------- selector seam
@pytest.mark.parametrize("seed", range(4))
def test_scmap_selector_equals_its_numpy_reference(seed):
    refl, valid, thr = _cube(seed)
    cand, pv = scmap.select(refl, valid, threshold=thr)
    cand_r, pv_r = scmap.reference(refl, valid, threshold=thr)
    np.testing.assert_array_equal(pv, pv_r)
    np.testing.assert_array_equal(cand, cand_r)
    assert cand.any() and (~cand).any()


def test_dry_vegetation_guard_is_a_composable_filter():
    refl, valid, thr = _cube(7)
    cand, _ = scmap.select(refl, valid, threshold=thr)
    guarded = filters.dry_vegetation_guard(refl, cand.copy(), 0.1)
    nbr2 = R.nbr2(refl)
    with np.errstate(invalid="ignore"):
        expect = cand & ~(nbr2 > np.float32(0.1))
    np.testing.assert_array_equal(guarded, expect)
    assert guarded.sum() < cand.sum()


def test_unknown_selector_is_named():
    with pytest.raises(KeyError, match="known: .*scmap"):
        get_selector("nope")


# ----------------------------------------------------------------------------- aggregator seam
def test_fields_merge_by_their_rule():
    a = {"n": np.array([[1.0, 2.0]]), "first": np.array([[5.0, np.nan]]), "last": np.array([[5.0, np.nan]])}
    b = {"n": np.array([[3.0, 4.0]]), "first": np.array([[3.0, 8.0]]), "last": np.array([[3.0, 8.0]])}
    rules = {"n": "sum", "first": "min", "last": "max"}
    m = aggregate.merge(a, b, rules)
    np.testing.assert_array_equal(m["n"], [[4, 6]])
    np.testing.assert_array_equal(m["first"], [[3, 8]])
    np.testing.assert_array_equal(m["last"], [[5, 8]])
    c = aggregate.collapse({k: np.stack([a[k][0], b[k][0]]) for k in a}, rules)
    for k in a:
        np.testing.assert_array_equal(c[k], m[k])
    with pytest.raises(ValueError, match="needs all observations"):
        aggregate.merge(a, b, {**rules, "n": "all"})


def test_accumulator_merge_is_the_declared_sum():
    refl, valid, thr = _cube(3)
    cand, _ = scmap.select(refl, valid, threshold=thr)
    flags = K.classify(refl, valid, cand, False)
    whole = K.accumulate(refl, flags, np.zeros(len(refl), np.int32), 1)
    halves = [K.accumulate(refl[s], flags[s], np.zeros(6, np.int32), 1) for s in (slice(0, 6), slice(6, 12))]
    for name, x, y in zip(K.Accumulator._fields, whole, K.merge(*halves), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert set(K.ACCUMULATOR_MERGE.values()) == {"sum"}
    assert all(P.FIELDS[f].merge == "sum" for f in K.Accumulator._fields)


# ----------------------------------------------------------------------------- toy selector + product
def _toy_select(refl, valid, *, threshold, sensor):
    """Toy selector: NDVI <= threshold + 0.1 (a bare-ish rule on NDVI alone)."""
    nd = indices.ndvi(refl, red=sensor.index("red"), nir=sensor.index("nir"))
    return np.less_equal(nd, (np.asarray(threshold, np.float32) + np.float32(0.1))[None]), nd


def _toy_select_reference(refl, valid, *, threshold, sensor):
    nd = R.ndvi(refl, red=sensor.index("red"), nir=sensor.index("nir"))
    return nd <= (np.asarray(threshold, np.float32) + np.float32(0.1))[None], nd


def _last_bare_day(block: P.ObservationBlock) -> np.ndarray:
    """Per period, the latest day (days since 1970) with a bare observation; NaN if none."""
    out = np.full((block.n_periods, *block.flags.shape[1:]), np.nan)
    bare = (block.flags & K.FLAG_BARE) > 0
    for t in range(len(block.days)):
        p = block.period[t]
        if p >= 0:
            out[p] = np.fmax(out[p], np.where(bare[t], float(block.days[t]), np.nan))
    return out


LAST_BARE_DAY = P.ProductSpec(
    "LAST_BARE_DAY", "int32", -1, 1.0, 0.0, "days since 1970-01-01",
    "toy product of tests/test_seams.py: date of the latest bare observation", fields=("last_bare_day",),
    finalize=lambda f: f["last_bare_day"].astype(np.float32))


@pytest.fixture
def toy_registered():
    """Register the toy selector and product; restore the catalogues afterwards."""
    saved = dict(P.PRODUCTS), dict(P.FIELDS), dict(SELECTORS)
    register_selector(Selector("toy_ndvi", _toy_select, _toy_select_reference, "toy: NDVI <= threshold + 0.1"))
    P.register_product(LAST_BARE_DAY, P.FieldSpec("last_bare_day", "max", _last_bare_day, "day (days since 1970)"))
    yield
    for d, s in zip((P.PRODUCTS, P.FIELDS, SELECTORS), saved, strict=True):
        d.clear()
        d.update(s)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("seams") / "archive", size=40, start=START, end=END, seed=11)


def test_toy_selector_and_product_need_no_package_change(toy_registered, small_archive, tmp_path):
    sim = small_archive
    opts = dict(start=START, end=END, crs=f"EPSG:{sim.epsg}", periods="year", scheduler="sync",
                min_sun_elevation=0, selector="toy_ndvi")
    out = tmp_path / "out"
    composite(sim.catalog_path, out=out, **opts)
    # COGs of the toy product for the window and each year, described in STAC and the run record
    for label in ("", "2021/", "2022/"):
        assert (out / f"{label}LAST_BARE_DAY.tif").exists(), label
    items = [json.loads(p.read_text()) for p in (out / "items").glob("*.json")]
    assert all("LAST_BARE_DAY" in it["assets"] for it in items) and len(items) == 3
    rec = json.loads((out / "run.json").read_text())
    assert rec["products"]["window"]["LAST_BARE_DAY"] == "LAST_BARE_DAY.tif"
    assert rec["config"]["bare"]["selector"] == "toy_ndvi"

    # independent check from the per-observation flags of the same selector
    fl = observation_flags(sim.catalog_path, start=START, end=END, crs=f"EPSG:{sim.epsg}", min_sun_elevation=0,
                           selector="toy_ndvi")
    bare = (fl["flags"].values & K.FLAG_BARE) > 0
    days = fl["time"].values.astype("datetime64[D]").astype(np.int64)
    with rasterio.open(out / "BSC.tif") as src:
        np.testing.assert_array_equal(src.read(1), bare.sum(axis=0))
    expect = np.where(bare.any(axis=0), np.max(np.where(bare, days[:, None, None], -1), axis=0), -1)
    with rasterio.open(out / "LAST_BARE_DAY.tif") as src:
        got = src.read(1)
        assert src.nodata == -1
    np.testing.assert_array_equal(got, expect)
    in_2021 = fl["time"].values < np.datetime64("2022-01-01")
    exp21 = np.where((bare & in_2021[:, None, None]).any(axis=0),
                     np.max(np.where(bare & in_2021[:, None, None], days[:, None, None], -1), axis=0), -1)
    with rasterio.open(out / "2021" / "LAST_BARE_DAY.tif") as src:
        np.testing.assert_array_equal(src.read(1), exp21)
    assert (got >= 0).mean() > 0.2  # the toy product is not empty

    # the same on a Dask cluster: the registrations travel with the tile tasks to the worker
    # processes (this module's functions are sent by value, as a notebook's or script's are)
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        out2 = tmp_path / "cluster"
        composite(sim.catalog_path, out=out2, **{**opts, "scheduler": None, "n_workers": 1})
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    for name in ("LAST_BARE_DAY.tif", "BSC.tif", "2022/LAST_BARE_DAY.tif"):
        assert (out2 / name).read_bytes() == (out / name).read_bytes(), name

    # the toy selector really selects differently from SCMaP's
    fl_scmap = observation_flags(sim.catalog_path, start=START, end=END, crs=f"EPSG:{sim.epsg}", min_sun_elevation=0)
    assert not np.array_equal(fl_scmap["flags"].values, fl["flags"].values)
