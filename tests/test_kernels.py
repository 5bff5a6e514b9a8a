"""SCMaP kernels (numba) against the numpy oracle and against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import t as student_t

from soilsuite.kernels import composite as K
from soilsuite.kernels import indices, masks
from soilsuite.kernels import reference as R
from soilsuite.sentinel2 import BAND_INDEX, REFL_NODATA


def _cand(pv, threshold):
    """SCMaP's selector decision (PV+IR2 <= threshold) from a PV+IR2 cube, as classify takes it."""
    return np.less_equal(pv, np.asarray(threshold, np.float32)[None])

NB = 10
B02, B04, B08, B11, B12 = (BAND_INDEX[b] for b in ("B02", "B04", "B08", "B11", "B12"))
INT_FIELDS = ("vpc", "n_below", "bsc", "mref_n")


# ----------------------------------------------------------------------------- helpers
def random_inputs(seed, n_t, n_y, n_x, *, blue_spread=300, cloud=0.2, nodata=0.01, n_periods=1):
    """Random kernel inputs: int16 cube with soil/vegetation mixtures, negative values, nodata,
    B02 drawn from a small set (ties), per-pixel thresholds, never-bare pixels."""
    rng = np.random.default_rng(seed)
    soil = np.array([900, 1200, 1450, 1600, 1700, 1800, 1900, 2000, 2900, 2500])
    veg = np.array([300, 600, 350, 1100, 2600, 3200, 3500, 3600, 1900, 950])
    f = rng.random((n_t, 1, n_y, n_x))
    f[rng.random(f.shape) < 0.4] *= 0.1
    refl = (1 - f) * soil[None, :, None, None] + f * veg[None, :, None, None]
    refl += rng.normal(0, 150, refl.shape) - 300  # offset-corrected values may be negative
    refl[:, B02] = 600 + rng.integers(0, 6, (n_t, n_y, n_x)) * (blue_spread // 5)
    haze = rng.random((n_t, n_y, n_x)) < 0.1
    refl[:, B02][haze] += rng.integers(50, 2000, int(haze.sum()))
    refl = np.clip(np.rint(refl), -1000, 15000).astype(np.int16)
    refl[rng.random(refl.shape) < nodata] = REFL_NODATA
    scl = rng.choice(np.array([4, 5, 6], np.uint8), (n_t, n_y, n_x))
    cl = rng.random((n_t, n_y, n_x)) < cloud
    scl[cl] = rng.choice(np.array([0, 1, 2, 3, 7, 8, 9, 10, 11], np.uint8), int(cl.sum()))
    sun = rng.uniform(20, 80, n_t)
    threshold = rng.uniform(-0.3, 0.6, (n_y, n_x)).astype(np.float32)
    never_bare = rng.random((n_y, n_x)) < 0.15
    other = rng.random((n_y, n_x)) < 0.1
    period = rng.integers(-1, n_periods, n_t).astype(np.int32)
    return dict(refl=refl, scl=scl, sun=sun, threshold=threshold, never_bare=never_bare, other=other,
                period=period, n_periods=n_periods)


def chain(mod_masks, mod_idx, mod_comp, d, *, dilation_px=3, ci_method="t", min_bare_obs=3, **kw):
    valid = mod_masks.valid_mask(d["scl"], d["refl"], d["sun"], dilation_px=dilation_px, max_sun_zenith=70.0, **kw)
    pv = mod_idx.pvir2(d["refl"], **kw)
    flags = mod_comp.classify(d["refl"], valid, _cand(pv, d["threshold"]), d["never_bare"], 3.0, 4.0, 80.0, **kw)
    acc = mod_comp.accumulate(d["refl"], flags, d["period"], d["n_periods"], **kw)
    prods = mod_comp.finalize(mod_comp.collapse(acc), d["other"], min_bare_obs, ci_method, **kw)
    return valid, pv, flags, acc, prods


def assert_chain_equal(a, b):
    valid_a, pv_a, flags_a, acc_a, prods_a = a
    valid_b, pv_b, flags_b, acc_b, prods_b = b
    np.testing.assert_array_equal(valid_a, valid_b)
    np.testing.assert_array_equal(pv_a, pv_b)  # NaN == NaN here
    np.testing.assert_array_equal(flags_a, flags_b)
    for name, x, y in zip(K.Accumulator._fields, acc_a, acc_b, strict=True):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert prods_a.keys() == prods_b.keys()
    for name in prods_a:
        assert prods_a[name].dtype == np.float32, name
        np.testing.assert_allclose(prods_a[name], prods_b[name], rtol=1e-6, atol=0, err_msg=name)


def kernel_chain(d, **kw):
    return chain(masks, indices, K, d, **kw)


def reference_chain(d, **kw):
    return chain(R, R, R, d, **kw)


def one_pixel(blue, *, valid=None, pv=None, threshold=0.2, never_bare=False, k_bare=3.0, k_mref=4.0):
    """classify() on a single pixel series; other bands are a plausible bare soil."""
    blue = np.asarray(blue)
    n_t = blue.size
    refl = np.tile(np.array([900, 1200, 1450, 1600, 1700, 1800, 1900, 2000, 2900, 2500], np.int16)[None, :, None, None],
                   (n_t, 1, 1, 1))
    refl[:, B02, 0, 0] = blue
    valid = np.ones((n_t, 1, 1), bool) if valid is None else np.asarray(valid).reshape(n_t, 1, 1)
    pv = np.full((n_t, 1, 1), 0.1, np.float32) if pv is None else np.asarray(pv, np.float32).reshape(n_t, 1, 1)
    thr = np.full((1, 1), threshold, np.float32)
    nb = np.full((1, 1), never_bare)
    flags = K.classify(refl, valid, _cand(pv, thr), nb, k_bare, k_mref, 80.0)
    ref = R.classify(refl, valid, _cand(pv, thr), nb, k_bare, k_mref, 80.0)
    np.testing.assert_array_equal(flags, ref)
    return flags[:, 0, 0], refl


def is_set(flags, bit):
    return (np.asarray(flags) & bit) != 0


# ----------------------------------------------------------------------------- kernel == reference
def test_flag_constants():
    assert (K.FLAG_VALID, K.FLAG_BELOW, K.FLAG_CANDIDATE, K.FLAG_BARE, K.FLAG_MREF) == (1, 2, 4, 8, 16)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_t=st.integers(1, 9),
    n_y=st.integers(1, 7),
    n_x=st.integers(1, 7),
    dilation_px=st.sampled_from([1, 3, 5, 11]),
    blue_spread=st.sampled_from([0, 5, 100, 600]),
    cloud=st.sampled_from([0.0, 0.3, 1.0]),
    n_periods=st.integers(1, 3),
    ci_method=st.sampled_from(["t", "z"]),
)
def test_kernels_match_reference_hypothesis(seed, n_t, n_y, n_x, dilation_px, blue_spread, cloud, n_periods,
                                            ci_method):
    d = random_inputs(seed, n_t, n_y, n_x, blue_spread=blue_spread, cloud=cloud, n_periods=n_periods)
    kw = dict(dilation_px=dilation_px, ci_method=ci_method)
    assert_chain_equal(kernel_chain(d, **kw), reference_chain(d, **kw))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kernels_match_reference_fixed_seeds(seed):
    d = random_inputs(seed, 30, 23, 37, cloud=0.15, nodata=0.002, n_periods=3)
    k = kernel_chain(d, dilation_px=5)
    assert_chain_equal(k, reference_chain(d, dilation_px=5))
    flags = k[2]
    # the random cube exercises every flag and every MASK class
    for bit in (K.FLAG_VALID, K.FLAG_BELOW, K.FLAG_CANDIDATE, K.FLAG_BARE, K.FLAG_MREF):
        assert is_set(flags, bit).any(), bit
    assert (is_set(flags, K.FLAG_CANDIDATE) & ~is_set(flags, K.FLAG_BARE)).any()  # outliers dropped
    assert set(np.unique(k[4]["MASK"]).tolist()) == {0.0, 1.0, 2.0, 3.0}


def test_parallel_twins_match_serial():
    d = random_inputs(7, 25, 19, 33, n_periods=2)
    assert_chain_equal(kernel_chain(d, parallel=True), kernel_chain(d, parallel=False))


def test_other_indices_match_reference():
    d = random_inputs(11, 6, 5, 9)
    for name in ("ndvi", "nbr", "nbr2", "pvir2"):
        np.testing.assert_array_equal(getattr(indices, name)(d["refl"]), getattr(R, name)(d["refl"]), err_msg=name)


# ----------------------------------------------------------------------------- masks
def test_dilation_at_edges_and_window_size():
    n_t, n_y, n_x = 1, 9, 10
    scl = np.full((n_t, n_y, n_x), 4, np.uint8)
    scl[0, 0, 0] = 9  # cloud in a corner
    scl[0, 8, 5] = 3  # shadow on the bottom edge
    refl = np.full((n_t, NB, n_y, n_x), 1000, np.int16)
    v = masks.valid_mask(scl, refl, np.array([30.0]), dilation_px=5)
    expect = np.ones((n_y, n_x), bool)
    expect[0:3, 0:3] = False  # 5x5 window reaches 2 px, clipped by the array edge
    expect[6:9, 3:8] = False
    np.testing.assert_array_equal(v[0], expect)
    np.testing.assert_array_equal(R.valid_mask(scl, refl, np.array([30.0]), dilation_px=5), v)
    # dilation 1: only the classes themselves
    v1 = masks.valid_mask(scl, refl, np.array([30.0]), dilation_px=1)
    assert v1.sum() == n_y * n_x - 2
    # a large window covers everything
    assert not masks.valid_mask(scl, refl, np.array([30.0]), dilation_px=21).any()
    # not-dilated invalid classes (e.g. 11 snow) only invalidate their own pixel
    scl2 = np.full((1, 4, 4), 4, np.uint8)
    scl2[0, 1, 1] = 11
    v2 = masks.valid_mask(scl2, np.full((1, NB, 4, 4), 500, np.int16), np.array([30.0]))
    assert v2.sum() == 15 and not v2[0, 1, 1]


@pytest.mark.parametrize("dilation_px", [1, 3, 5, 7, 9, 11, 13, 15, 17, 31, 33, 61])
@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (17, 29), (64, 70)])
def test_dilation_doubling_windows_match_reference(dilation_px, shape):
    """The separable window-OR (doubling spans, then two overlapping spans) for every window
    width around powers of two, on tiles narrower and wider than the window, clouds on all
    four edges and corners, nodata in single bands; serial and parallel twins."""
    n_y, n_x = shape
    rng = np.random.default_rng(dilation_px * 1000 + n_y * 31 + n_x)
    n_t = 4
    scl = rng.choice(np.array([4, 5, 6], np.uint8), (n_t, n_y, n_x))
    scl[0] = 4  # date 0: clouds only at the four corners and on the edges' midpoints
    for y, x in ((0, 0), (0, n_x - 1), (n_y - 1, 0), (n_y - 1, n_x - 1), (n_y // 2, 0), (0, n_x // 2)):
        scl[0, y, x] = 9
    sparse = rng.random((n_t - 1, n_y, n_x)) < 0.01  # dates 1..: isolated clouds and shadows
    scl[1:][sparse] = rng.choice(np.array([3, 8, 9, 10], np.uint8), int(sparse.sum()))
    scl[2, rng.random((n_y, n_x)) < 0.02] = 11  # snow: invalid, not dilated
    refl = rng.integers(-500, 5000, (n_t, NB, n_y, n_x)).astype(np.int16)
    refl[rng.random(refl.shape) < 0.01] = REFL_NODATA
    sun = np.array([30.0, 50.0, 69.0, 75.0])
    ref = R.valid_mask(scl, refl, sun, dilation_px=dilation_px)
    for parallel in (False, True):
        got = masks.valid_mask(scl, refl, sun, dilation_px=dilation_px, parallel=parallel)
        np.testing.assert_array_equal(got, ref, err_msg=f"parallel={parallel}")
    assert not ref[3].any()  # sun zenith 75 > 70


@pytest.mark.parametrize("halo", [1, 5, 8])
def test_scl_halo_equals_cropping_a_larger_tile(halo):
    """SCL with a halo around refl's grid (the pipeline loads only SCL padded) gives exactly the
    mask of the padded tile cropped to its interior; the halo's own band values do not matter."""
    rng = np.random.default_rng(halo)
    n_t, n_y, n_x = 3, 20, 23
    big_y, big_x = n_y + 2 * halo, n_x + 2 * halo
    scl = rng.choice(np.array([4, 5, 4, 5, 3, 8, 9, 10, 11], np.uint8), (n_t, big_y, big_x))
    refl_big = rng.integers(0, 4000, (n_t, NB, big_y, big_x)).astype(np.int16)
    refl_big[rng.random(refl_big.shape) < 0.02] = REFL_NODATA
    sun = np.array([30.0, 40.0, 50.0])
    inner = (slice(None), slice(None), slice(halo, halo + n_y), slice(halo, halo + n_x))
    refl = np.ascontiguousarray(refl_big[inner])
    for dilation_px in (1, 3, 11):
        whole = masks.valid_mask(scl, refl_big, sun, dilation_px=dilation_px)[:, halo:halo + n_y, halo:halo + n_x]
        got = masks.valid_mask(scl, refl, sun, dilation_px=dilation_px)
        np.testing.assert_array_equal(got, whole)
        np.testing.assert_array_equal(R.valid_mask(scl, refl, sun, dilation_px=dilation_px), whole)
    with pytest.raises(ValueError, match="halo"):
        masks.valid_mask(scl[:, 1:], refl, sun)  # uneven halo


def test_scl_class_sets_are_checked():
    scl = np.full((1, 4, 4), 4, np.uint8)
    scl[0, 0, 0] = 200  # a class outside both sets is valid and not dilated
    refl = np.full((1, NB, 4, 4), 500, np.int16)
    assert masks.valid_mask(scl, refl, np.array([30.0])).all()
    assert masks.class_bits([0, 3, 63]) == np.uint64(1 | 8 | 2**63)
    with pytest.raises(ValueError, match="0..63"):
        masks.valid_mask(scl, refl, np.array([30.0]), invalid_scl=[0, 200])
    from soilsuite.config import MaskOptions

    with pytest.raises(ValueError, match="0..63"):
        MaskOptions(dilate_scl=(3, 64))


def test_sun_zenith_and_nodata_bands():
    rng = np.random.default_rng(3)
    refl = rng.integers(100, 3000, (3, NB, 4, 5)).astype(np.int16)
    refl[1, 7, 2, 3] = REFL_NODATA  # one band missing -> that observation invalid
    scl = np.full((3, 4, 5), 5, np.uint8)
    v = masks.valid_mask(scl, refl, np.array([70.0, 30.0, np.nan]), max_sun_zenith=70.0)
    assert v[0].all()  # zenith == max is valid
    assert v[1].sum() == 19 and not v[1, 2, 3]
    assert not v[2].any()  # unknown zenith
    np.testing.assert_array_equal(v, R.valid_mask(scl, refl, np.array([70.0, 30.0, np.nan])))
    # nodata in B03 leaves PV+IR2 defined but the observation invalid
    assert np.isfinite(indices.pvir2(refl)[1, 2, 3])


def test_all_cloudy():
    d = random_inputs(5, 6, 4, 4)
    d["scl"][:] = 9
    valid, pv, flags, acc, prods = kernel_chain(d)
    assert not valid.any() and not flags.any()
    assert (prods["VPC"] == 0).all() and (prods["MASK"] == 3).all()
    for name in ("BSF", "SRC_MEAN", "SRC_STD", "SRC_CI95", "MREF_MEAN", "MREF_STD"):
        assert np.isnan(prods[name]).all(), name
    assert_chain_equal((valid, pv, flags, acc, prods), reference_chain(d))


# ----------------------------------------------------------------------------- indices
def test_indices_negative_values_zero_denominators_nodata():
    refl = np.full((4, NB, 1, 1), 1000, np.int16)
    refl[0, B04], refl[0, B08], refl[0, B12] = -500, 300, 100  # offset-corrected negatives
    refl[1, B04], refl[1, B08], refl[1, B12] = -300, 300, 500  # B08 + B04 == 0
    refl[2, B12] = REFL_NODATA
    refl[3, B04], refl[3, B08], refl[3, B12], refl[3, B11] = 1400, 2000, 2600, 3000
    nd = indices.ndvi(refl)[:, 0, 0]
    assert nd[0] == np.float32(800 / -200) and np.isnan(nd[1])
    pv = indices.pvir2(refl)[:, 0, 0]
    assert pv[0] == np.float32(800 / -200 + 200 / 400)
    assert np.isnan(pv[1]) and np.isnan(pv[2])
    assert pv[3] == np.float32(600 / 3400 + -600 / 4600)
    assert indices.nbr2(refl)[3, 0, 0] == np.float32(400 / 5600)
    assert indices.pvir2(refl).dtype == np.float32


# ----------------------------------------------------------------------------- blue filter
def test_blue_filter_even_count_median_mad_by_hand():
    # candidates 100, 200, 300, 1000: median 250, |dev| 150 50 50 750 -> MAD 100
    # cut = max(250 + 3 * 1.4826 * 100, 250 + 80) = 694.78
    flags, _ = one_pixel([100, 200, 300, 1000])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE), [True, True, True, False])
    flags, _ = one_pixel([100, 200, 300, 694])  # median 250, MAD 100 -> 694 is kept
    assert is_set(flags, K.FLAG_BARE).all()
    flags, _ = one_pixel([100, 200, 300, 695, 695])  # median 300, MAD 105: cut 767.0 -> kept
    assert is_set(flags, K.FLAG_BARE).all()


def test_blue_filter_ties_mad_zero_and_min_excess():
    flags, _ = one_pixel([800] * 6)  # all equal: MAD 0, nothing is an outlier
    assert is_set(flags, K.FLAG_BARE).all() and is_set(flags, K.FLAG_MREF).all()
    flags, _ = one_pixel([800] * 5 + [880])  # exactly median + 80: not an outlier (strict >)
    assert is_set(flags, K.FLAG_BARE).all()
    flags, _ = one_pixel([800] * 5 + [881])  # above median + 80 and MAD 0: outlier
    np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE), [True] * 5 + [False])
    assert not is_set(flags, K.FLAG_MREF)[5]


def test_blue_filter_mref_uses_k4_over_valid_observations():
    # valid B02: 1000 1010 1020 1030 1040 1400: median 1025, MAD 15 -> k=4 cut max(1113.96, 1105)
    # only the first four are candidates (pv below threshold): median 1015, MAD 10 -> cut 1095
    blue = [1000, 1010, 1020, 1030, 1040, 1400, 1100]
    pv = [0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.1]
    valid = [True] * 6 + [False]
    flags, _ = one_pixel(blue, pv=pv, valid=valid)
    np.testing.assert_array_equal(is_set(flags, K.FLAG_VALID), valid)
    np.testing.assert_array_equal(is_set(flags, K.FLAG_CANDIDATE), [1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE), [1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_MREF), [1, 1, 1, 1, 1, 0, 0])
    # same set, different k: 1000 1050 1100 1150 1350 -> median 1100, MAD 50;
    # k=3 cut 1100 + 3 * 1.4826 * 50 = 1322.39 (1350 dropped), k=4 cut 1396.52 (1350 kept)
    flags, _ = one_pixel([1000, 1050, 1100, 1150, 1350])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE), [1, 1, 1, 1, 0])
    assert is_set(flags, K.FLAG_MREF).all()
    flags, _ = one_pixel([1000, 1050, 1100, 1150, 1397])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_MREF), [1, 1, 1, 1, 0])
    # at the k=3 cut: 1322 kept, 1323 dropped (a MAD scale of 1.5 would keep 1323)
    flags, _ = one_pixel([1000, 1050, 1100, 1150, 1322])
    assert is_set(flags, K.FLAG_BARE).all()
    flags, _ = one_pixel([1000, 1050, 1100, 1150, 1323])
    np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE), [1, 1, 1, 1, 0])


def test_threshold_raster_and_never_bare():
    n_t = 5
    refl = np.full((n_t, NB, 1, 3), 1500, np.int16)
    pv = np.tile(np.array([0.05, 0.15, 0.25, 0.35, 0.45], np.float32)[:, None, None], (1, 1, 3))
    valid = np.ones((n_t, 1, 3), bool)
    thr = np.array([[0.1, 0.3, 0.3]], np.float32)
    nb = np.array([[False, False, True]])
    for mod in (K, R):
        flags = mod.classify(refl, valid, _cand(pv, thr), nb, 3.0, 4.0, 80.0)
        np.testing.assert_array_equal(is_set(flags, K.FLAG_BELOW).sum(axis=0), [[1, 3, 3]])
        np.testing.assert_array_equal(is_set(flags, K.FLAG_CANDIDATE).sum(axis=0), [[1, 3, 0]])
        np.testing.assert_array_equal(is_set(flags, K.FLAG_BARE).sum(axis=0), [[1, 3, 0]])
    flags = K.classify(refl, valid, _cand(pv, thr), nb)
    prods = K.finalize(K.accumulate(refl, flags, np.zeros(n_t, np.int32), 1), None)
    # never-bare pixel: observations below the threshold exist, so it is not "permanent vegetation"
    np.testing.assert_array_equal(prods["MASK"], [[0, 1, 0]])
    np.testing.assert_array_equal(prods["BSC"], [[1, 3, 0]])
    # pixel with nothing below its threshold -> permanent vegetation (2)
    prods = K.finalize(K.accumulate(refl, K.classify(refl, valid, _cand(pv, np.full((1, 3), -1.0, np.float32)), nb),
                                    np.zeros(n_t, np.int32), 1), None)
    np.testing.assert_array_equal(prods["MASK"], [[2, 2, 2]])


# ----------------------------------------------------------------------------- finalize
def test_one_observation_and_exactly_two_bare():
    for n_bare in (1, 2):
        refl = np.full((n_bare, NB, 1, 1), 1000, np.int16)
        refl[:, :, 0, 0] += np.arange(n_bare, dtype=np.int16)[:, None] * 7
        flags = np.full((n_bare, 1, 1), K.FLAG_VALID | K.FLAG_BELOW | K.FLAG_CANDIDATE | K.FLAG_BARE | K.FLAG_MREF,
                        np.uint8)
        acc = K.accumulate(refl, flags, np.zeros(n_bare, np.int32), 1)
        p = K.finalize(acc, np.zeros((1, 1), bool), 3, "t")
        assert p["BSC"][0, 0] == n_bare and p["VPC"][0, 0] == n_bare and p["BSF"][0, 0] == 1.0
        assert p["MASK"][0, 0] == 0  # undetermined: 1-2 bare observations
        assert np.isnan(p["SRC_MEAN"]).all() and np.isnan(p["SRC_STD"]).all() and np.isnan(p["SRC_CI95"]).all()
        np.testing.assert_allclose(p["MREF_MEAN"][:, 0, 0], refl[:, :, 0, 0].mean(axis=0) / 1e4, rtol=1e-6)
        if n_bare == 1:
            assert np.isnan(p["MREF_STD"]).all()
        else:
            np.testing.assert_allclose(p["MREF_STD"][:, 0, 0], refl[:, :, 0, 0].std(axis=0, ddof=1) / 1e4, rtol=1e-6)
        # with min_bare_obs=2 the two-observation pixel gets SRC values
        p2 = K.finalize(acc, None, 2, "t")
        assert (p2["MASK"][0, 0] == 1) == (n_bare == 2)
        assert np.isfinite(p2["SRC_STD"]).all() == (n_bare == 2)


@pytest.mark.parametrize("ci_method", ["t", "z"])
def test_finalize_vs_direct_numpy(ci_method):
    d = random_inputs(21, 40, 9, 11, cloud=0.1, nodata=0.001, n_periods=2)
    _, _, flags, acc, prods = kernel_chain(d, ci_method=ci_method)
    refl = d["refl"].astype(np.float64) / 1e4
    inside = d["period"] >= 0
    checked = 0
    for y in range(9):
        for x in range(11):
            f = flags[:, y, x]
            bare = is_set(f, K.FLAG_BARE) & inside
            mref = is_set(f, K.FLAG_MREF) & inside
            vpc = (is_set(f, K.FLAG_VALID) & inside).sum()
            assert prods["VPC"][y, x] == vpc and prods["BSC"][y, x] == bare.sum()
            n = bare.sum()
            if n >= 3:
                obs = refl[bare, :, y, x]
                sd = obs.std(axis=0, ddof=1)
                mult = student_t.ppf(0.975, n - 1) if ci_method == "t" else 1.96
                np.testing.assert_allclose(prods["SRC_MEAN"][:, y, x], obs.mean(axis=0), rtol=1e-6)
                np.testing.assert_allclose(prods["SRC_STD"][:, y, x], sd, rtol=1e-5, atol=1e-8)
                np.testing.assert_allclose(prods["SRC_CI95"][:, y, x], mult * sd / np.sqrt(n), rtol=1e-5, atol=1e-8)
                checked += 1
            else:
                assert np.isnan(prods["SRC_MEAN"][:, y, x]).all()
            if mref.sum() >= 2:
                obs = refl[mref, :, y, x]
                np.testing.assert_allclose(prods["MREF_MEAN"][:, y, x], obs.mean(axis=0), rtol=1e-6)
                np.testing.assert_allclose(prods["MREF_STD"][:, y, x], obs.std(axis=0, ddof=1), rtol=1e-5, atol=1e-8)
            expect_mask = (3 if d["other"][y, x] or vpc == 0 else 1 if n >= 3
                           else 2 if (is_set(f, K.FLAG_BELOW) & inside).sum() == 0 else 0)
            assert prods["MASK"][y, x] == expect_mask
    assert checked > 20


def test_std_zero_for_identical_observations():
    refl = np.full((4, NB, 1, 1), 1234, np.int16)
    flags = np.full((4, 1, 1), 31, np.uint8)
    p = K.finalize(K.accumulate(refl, flags, np.zeros(4, np.int32)), None)
    assert (p["SRC_STD"] == 0).all() and (p["SRC_CI95"] == 0).all() and (p["SRC_MEAN"] == np.float32(0.1234)).all()


def test_t975_matches_scipy():
    dof = np.arange(-1, 3000)
    ours = K.t975(dof)
    assert np.isnan(ours[:2]).all()
    np.testing.assert_allclose(ours[2:], student_t.ppf(0.975, dof[2:]), rtol=1e-9)


# ----------------------------------------------------------------------------- periods
def test_period_split_merge_equals_single_period():
    d = random_inputs(8, 24, 6, 7, n_periods=3)
    valid = masks.valid_mask(d["scl"], d["refl"], d["sun"], dilation_px=3)
    flags = K.classify(d["refl"], valid, _cand(indices.pvir2(d["refl"]), d["threshold"]), d["never_bare"])
    period = d["period"]
    assert set(period.tolist()) == {-1, 0, 1, 2}
    acc3 = K.accumulate(d["refl"], flags, period, 3)
    assert acc3.vpc.shape == (3, 6, 7) and acc3.bare_sum.shape == (3, NB, 6, 7)
    single = K.accumulate(d["refl"], flags, np.where(period >= 0, 0, -1), 1)
    for name, a, b in zip(K.Accumulator._fields, K.collapse(acc3), single, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # merging two accumulators of disjoint date subsets = one accumulator of both
    first = np.where(np.arange(24) < 12, period, -1)
    second = np.where(np.arange(24) >= 12, period, -1)
    merged = K.merge(K.accumulate(d["refl"], flags, first, 3), K.accumulate(d["refl"], flags, second, 3))
    for name, a, b in zip(K.Accumulator._fields, merged, acc3, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # dates in no period are skipped: same as dropping them
    keep = period >= 0
    dropped = K.accumulate(d["refl"][keep], flags[keep], period[keep], 3)
    for name, a, b in zip(K.Accumulator._fields, dropped, acc3, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # finalize accepts P=1 and the squeezed [Y, X] form alike
    p1 = K.finalize(single, d["other"])
    p0 = K.finalize(K.Accumulator(*(a[0] for a in single)), d["other"])
    for name in p1:
        np.testing.assert_array_equal(p1[name], p0[name])
    assert int(p1["VPC"].sum()) == int((is_set(flags, K.FLAG_VALID) & keep[:, None, None]).sum())


# ----------------------------------------------------------------------------- input checks
def test_input_validation():
    d = random_inputs(1, 3, 2, 2)
    with pytest.raises(TypeError, match="int16"):
        indices.pvir2(d["refl"].astype(np.int32))
    with pytest.raises(ValueError, match="odd"):
        masks.valid_mask(d["scl"], d["refl"], d["sun"], dilation_px=4)
    with pytest.raises(ValueError, match="sun_zenith"):
        masks.valid_mask(d["scl"], d["refl"], d["sun"][:2])
    flags = np.zeros((3, 2, 2), np.uint8)
    with pytest.raises(ValueError, match="period values"):
        K.accumulate(d["refl"], flags, np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="flags"):
        K.accumulate(d["refl"], flags[:2], np.array([0, 0, 0]), 1)
    acc = K.accumulate(d["refl"], flags, np.array([0, 1, 1]), 2)
    with pytest.raises(ValueError, match="collapse"):
        K.finalize(acc, None)
    with pytest.raises(ValueError, match="ci_method"):
        K.finalize(K.collapse(acc), None, 3, "normal")
    with pytest.raises(ValueError, match="candidate"):
        K.classify(d["refl"], flags.astype(bool), np.zeros((3, 3, 2), bool), False)
