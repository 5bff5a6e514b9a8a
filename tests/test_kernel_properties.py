"""Property-based tests (hypothesis) of the kernel chain, as the pipeline runs it.

``composite_inputs`` chains ``valid_mask -> pvir2 -> classify -> accumulate -> finalize``;
these tests run the same chain on small drawn cubes and check invariants that must hold for
every input, with the edge cases as explicit scenarios (all cloudy, one observation, every
observation equal, nodata everywhere).

Permuting the dates is checked for **exact** equality of every product, not a tolerance: the
blue filter's median/MAD sort each pixel's values (order-free), and the accumulators sum int16
DN and DN**2 in float64. Those are integers with every partial sum far below 2**53 (at most
``T * 32768**2`` here), so each float64 addition is exact and the sums do not depend on the
order of the dates; finalize then does the same per-pixel arithmetic on identical inputs.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soilsuite.kernels import composite as K
from soilsuite.kernels import indices, masks
from soilsuite.kernels import reference as R
from soilsuite.sentinel2 import BANDS, REFL_NODATA, SCL_INVALID


def _cand(pv, threshold):
    """SCMaP's selector decision (PV+IR2 <= threshold) from a PV+IR2 cube, as classify takes it."""
    return np.less_equal(pv, np.asarray(threshold, np.float32)[None])

NB = len(BANDS)
#: "soil": clear sky and a bare-soil spectrum with noise, so that the blue filter has work to do
SCENARIOS = ("random", "soil", "soil", "all_cloudy", "one_obs", "all_equal", "nodata")
SOIL = np.array([900, 1200, 1450, 1600, 1700, 1800, 1900, 2000, 2900, 2500], np.int16)
PRODUCTS_2D = ("VPC", "BSC", "BSF", "MASK")
PRODUCTS_3D = ("SRC_MEAN", "SRC_STD", "SRC_CI95", "MREF_MEAN", "MREF_STD")
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# DN of plausible surfaces plus the awkward ones: negative (offset-corrected), zero, nodata
DN = st.one_of(st.integers(-1000, 12000), st.sampled_from([-1000, 0, 1, 600, 640, 3000]))
# sparse band nodata (a dense one would leave too few valid observations for the blue filter)
NODATA = st.sampled_from([False] * 15 + [True])
# B02 from a small set: ties, MAD = 0 and outliers above median + 80 DN
BLUE = st.sampled_from([550, 600, 600, 640, 680, 700, 900, 2500])
SCL = st.sampled_from([4, 4, 4, 4, 4, 5, 5, 5, 6, 200, 0, 1, 3, 7, 8, 9, 10, 11])


@st.composite
def cubes(draw, max_t=10, max_side=3):
    """Kernel inputs of one tile: refl, scl (no halo), sun, threshold, never_bare, other,
    period, plus the options (dilation, min_bare_obs, ci_method)."""
    scenario = draw(st.sampled_from(SCENARIOS))
    n_t = 1 if scenario == "one_obs" else draw(st.integers(1, max_t))
    n_y, n_x = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    refl = draw(hnp.arrays(np.int16, (n_t, NB, n_y, n_x), elements=DN))
    refl[:, 0] = draw(hnp.arrays(np.int16, (n_t, n_y, n_x), elements=BLUE))
    refl[draw(hnp.arrays(np.bool_, refl.shape, elements=NODATA))] = REFL_NODATA
    scl = draw(hnp.arrays(np.uint8, (n_t, n_y, n_x), elements=SCL))
    sun = np.array(draw(st.lists(st.sampled_from([20.0, 30.0, 45.0, 60.0, 69.9, 70.0, 75.0, math.nan]),
                                 min_size=n_t, max_size=n_t)))
    if scenario == "all_cloudy":
        scl[:] = draw(st.sampled_from([3, 8, 9, 10]))
    elif scenario == "soil":
        noise = draw(hnp.arrays(np.int16, (n_t, NB - 1, n_y, n_x), elements=st.integers(-300, 300)))
        refl[:, 1:] = SOIL[None, 1:, None, None] + noise
        scl[:] = 4
        sun[:] = 30.0
    elif scenario == "all_equal":
        refl[:] = refl[:1]
        scl[:] = 4
        sun[:] = 30.0
    elif scenario == "nodata":
        refl[:] = REFL_NODATA
    n_periods = draw(st.integers(1, 2))
    return dict(
        scenario=scenario,
        refl=refl,
        scl=scl,
        sun=sun,
        threshold=draw(hnp.arrays(np.float32, (n_y, n_x), elements=st.floats(-1.5, 1.5, width=32))),
        never_bare=draw(hnp.arrays(np.bool_, (n_y, n_x))),
        other=draw(hnp.arrays(np.bool_, (n_y, n_x))),
        period=np.array(draw(st.lists(st.integers(-1, n_periods - 1), min_size=n_t, max_size=n_t)), np.int64),
        n_periods=n_periods,
        dilation_px=draw(st.sampled_from([1, 3])),
        min_bare_obs=draw(st.integers(1, 4)),
        ci_method=draw(st.sampled_from(["t", "z"])),
    )


def run_chain(d, mods=(masks, indices, K)):
    """The chain of ``composite_inputs``: per-period products and the whole-window product."""
    m_masks, m_idx, m_comp = mods
    valid = m_masks.valid_mask(d["scl"], d["refl"], d["sun"], dilation_px=d["dilation_px"], max_sun_zenith=70.0)
    pv = m_idx.pvir2(d["refl"])
    flags = m_comp.classify(d["refl"], valid, _cand(pv, d["threshold"]), d["never_bare"], 3.0, 4.0, 80.0)
    acc = m_comp.accumulate(d["refl"], flags, d["period"], d["n_periods"])
    prods = {}
    for p in range(d["n_periods"]):
        prods[p] = m_comp.finalize(type(acc)(*(a[p : p + 1] for a in acc)), d["other"], d["min_bare_obs"],
                                   d["ci_method"])
    prods["window"] = m_comp.finalize(m_comp.collapse(acc), d["other"], d["min_bare_obs"], d["ci_method"])
    return valid, flags, acc, prods


def assert_same_products(a, b):
    assert a.keys() == b.keys()
    for label in a:
        for name in a[label]:
            np.testing.assert_array_equal(a[label][name], b[label][name], err_msg=f"{label} {name}")


def assert_same_acc(a, b):
    for name, x, y in zip(K.Accumulator._fields, a, b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=name)


def take_dates(d, idx):
    e = dict(d)
    for k in ("refl", "scl", "sun", "period"):
        e[k] = np.ascontiguousarray(d[k][idx])
    return e


# ----------------------------------------------------------------------------- invariances
@SETTINGS
@given(d=cubes(), data=st.data())
def test_permuting_dates_changes_no_product(d, data):
    n_t = d["refl"].shape[0]
    perm = np.array(data.draw(st.permutations(range(n_t))), np.int64)
    valid, flags, acc, prods = run_chain(d)
    valid_p, flags_p, acc_p, prods_p = run_chain(take_dates(d, perm))
    # per-observation results move with their date, products are identical (exactly, see docstring)
    np.testing.assert_array_equal(valid_p, valid[perm])
    np.testing.assert_array_equal(flags_p, flags[perm])
    assert_same_acc(acc_p, acc)
    assert_same_products(prods_p, prods)


@SETTINGS
@given(d=cubes(), data=st.data())
def test_adding_an_invalid_observation_changes_nothing(d, data):
    """A date invalid everywhere, with any values (even a blue outlier or PV+IR2 far below the
    threshold), in any position, changes neither the other dates' flags nor any product."""
    n_t, _, n_y, n_x = d["refl"].shape
    at = data.draw(st.integers(0, n_t), label="position")
    new_refl = data.draw(hnp.arrays(np.int16, (1, NB, n_y, n_x), elements=DN), label="refl")
    new_pv = data.draw(hnp.arrays(np.float32, (1, n_y, n_x), elements=st.floats(-3, 3, width=32)), label="pv")
    new_period = data.draw(st.integers(-1, d["n_periods"] - 1), label="period")

    # kernel level: classify -> accumulate -> finalize with valid=False for the new date
    valid, flags, acc, prods = run_chain(d)
    pv = indices.pvir2(d["refl"])
    refl2 = np.insert(d["refl"], at, new_refl, axis=0)
    valid2 = np.insert(valid, at, np.zeros((n_y, n_x), bool), axis=0)
    pv2 = np.insert(pv, at, new_pv, axis=0)
    period2 = np.insert(d["period"], at, new_period)
    flags2 = K.classify(refl2, valid2, _cand(pv2, d["threshold"]), d["never_bare"], 3.0, 4.0, 80.0)
    assert not flags2[at].any()
    np.testing.assert_array_equal(np.delete(flags2, at, axis=0), flags)
    assert_same_acc(K.accumulate(refl2, flags2, period2, d["n_periods"]), acc)

    # chain level: the date is invalid through its sun zenith or an SCL invalid everywhere
    how = data.draw(st.sampled_from(["sun_nan", "sun_high", "scl"]), label="how")
    new_scl = np.full((1, n_y, n_x), 4, np.uint8)
    new_sun = {"sun_nan": math.nan, "sun_high": 70.5, "scl": 30.0}[how]
    if how == "scl":
        new_scl[:] = data.draw(st.sampled_from([c for c in SCL_INVALID if c not in (3, 8, 9, 10)]), label="class")
    e = dict(d, refl=refl2, scl=np.insert(d["scl"], at, new_scl, axis=0), sun=np.insert(d["sun"], at, new_sun),
             period=period2)
    _, flags_e, acc_e, prods_e = run_chain(e)
    np.testing.assert_array_equal(np.delete(flags_e, at, axis=0), flags)
    assert_same_acc(acc_e, acc)
    assert_same_products(prods_e, prods)


# ----------------------------------------------------------------------------- product invariants
def check_products(p, other, min_bare_obs, n_dates):
    vpc, bsc, bsf, mask = (p[k] for k in PRODUCTS_2D)
    for name, c in (("VPC", vpc), ("BSC", bsc)):
        assert (c >= 0).all() and (c == np.rint(c)).all() and (c <= n_dates).all(), name
    assert (bsc <= vpc).all()
    none = vpc == 0
    np.testing.assert_array_equal(np.isnan(bsf), none)
    assert ((bsf[~none] >= 0) & (bsf[~none] <= 1)).all()
    np.testing.assert_array_equal(bsf[~none], (bsc[~none] / vpc[~none]).astype(np.float32))
    assert set(np.unique(mask).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    np.testing.assert_array_equal(mask == 3, other | none)
    enough = bsc >= min_bare_obs
    np.testing.assert_array_equal(mask == 1, enough & ~other)
    # SRC nodata exactly where BSC < min_bare_obs (STD and CI also need 2 observations)
    for name in PRODUCTS_3D[:3]:
        need = enough if name == "SRC_MEAN" else enough & (bsc >= 2)
        nan = np.isnan(p[name])
        np.testing.assert_array_equal(nan, np.broadcast_to(~need, nan.shape), err_msg=name)
    assert (p["SRC_STD"][~np.isnan(p["SRC_STD"])] >= 0).all()
    assert (p["SRC_CI95"][~np.isnan(p["SRC_CI95"])] >= 0).all()


@SETTINGS
@given(d=cubes())
def test_product_invariants(d):
    valid, flags, acc, prods = run_chain(d)
    n_t = d["refl"].shape[0]
    # accumulator counts: never negative (uint32, so: no wrap-around), nested sets
    for name in ("vpc", "n_below", "bsc", "mref_n"):
        c = getattr(acc, name)
        assert c.dtype == np.uint32 and int(c.max(initial=0)) <= n_t, name
    assert (acc.bsc <= acc.n_below).all() and (acc.n_below <= acc.vpc).all() and (acc.mref_n <= acc.vpc).all()
    for p in prods.values():  # every period and the whole window
        check_products(p, d["other"], d["min_bare_obs"], n_t)
    w = prods["window"]
    # whole-window VPC = valid observations in any period
    np.testing.assert_array_equal(w["VPC"], (valid & (d["period"] >= 0)[:, None, None]).sum(axis=0))
    if d["scenario"] in ("all_cloudy", "nodata"):
        assert not valid.any() and not flags.any()
        assert (w["VPC"] == 0).all() and (w["MASK"] == 3).all() and np.isnan(w["BSF"]).all()
        for name in PRODUCTS_3D:
            assert np.isnan(w[name]).all(), name
    if d["scenario"] == "one_obs":
        assert (w["BSC"] <= 1).all() and (w["VPC"] <= 1).all()
        assert np.isnan(w["MREF_STD"]).all()
        if d["min_bare_obs"] > 1:
            assert np.isnan(w["SRC_MEAN"]).all()
    if d["scenario"] == "all_equal":
        # identical observations: no blue outlier, so bare = candidate and MREF = valid, std 0
        assert ((flags & K.FLAG_BARE != 0) == (flags & K.FLAG_CANDIDATE != 0)).all()
        assert ((flags & K.FLAG_MREF != 0) == (flags & K.FLAG_VALID != 0)).all()
        for name in ("SRC_STD", "MREF_STD"):
            v = w[name]
            assert (v[~np.isnan(v)] == 0).all(), name


@SETTINGS
@given(d=cubes())
def test_kernels_equal_reference_on_edge_cases(d):
    """test_kernels.py compares kernels with the numpy oracle on seeded random cubes; this adds
    the drawn edge-case scenarios (ties, one date, equal dates, nodata everywhere)."""
    valid, flags, acc, prods = run_chain(d)
    valid_r, flags_r, acc_r, prods_r = run_chain(d, (R, R, R))
    np.testing.assert_array_equal(valid, valid_r)
    np.testing.assert_array_equal(flags, flags_r)
    for name, x, y in zip(K.Accumulator._fields, acc, acc_r, strict=True):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for label in prods:
        for name in prods[label]:
            np.testing.assert_allclose(prods[label][name], prods_r[label][name], rtol=1e-6, atol=0,
                                       err_msg=f"{label} {name}")
