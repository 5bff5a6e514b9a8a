"""The kernels' fast paths (issue 14 item 6) against the numpy reference, on inputs that reach
every branch: classify's int16 and int32 key rows, accumulate's groups of three dates and its
period runs, SCMaP's fused PV+IR2 <= threshold pass."""

from __future__ import annotations

import numpy as np
import pytest

from soilsuite.kernels import composite as K
from soilsuite.kernels import indices
from soilsuite.kernels import reference as R
from soilsuite.kernels.selectors import scmap
from soilsuite.sentinel2 import BAND_INDEX, REFL_NODATA

B02 = BAND_INDEX["B02"]


def _cube(seed, n_t, n_y, n_x):
    rng = np.random.default_rng(seed)
    refl = rng.integers(-1000, 6000, (n_t, 10, n_y, n_x)).astype(np.int16)
    valid = rng.random((n_t, n_y, n_x)) < rng.uniform(0.1, 0.9)
    cand = rng.random((n_t, n_y, n_x)) < 0.5
    never_bare = rng.random((n_y, n_x)) < 0.1
    return rng, refl, valid, cand, never_bare


@pytest.mark.parametrize("seed", range(6))
def test_classify_int16_and_int32_rows_equal_reference(seed):
    # B02 per row: ties from a small set, values at the int16-key limits (-8192 and 8190 fit,
    # 8191 and -8193 do not), the whole int16 range (nodata included): both key paths, mixed
    rng, refl, valid, cand, never_bare = _cube(seed, 7 + 6 * seed, 6, 37)  # 7 .. 37 dates
    small = rng.choice(np.array([600, 601, 640, 700, 2000], np.int16), refl[:, B02].shape)
    refl[:, B02] = small
    refl[:, B02, 1] = rng.choice(np.array([-8192, 8190, 0, 5], np.int16), refl[:, B02, 1].shape)
    refl[:, B02, 2] = rng.choice(np.array([-8192, 8191, 0, 5], np.int16), refl[:, B02, 2].shape)
    refl[:, B02, 3] = rng.choice(np.array([-8193, 8190, 0], np.int16), refl[:, B02, 3].shape)
    refl[:, B02, 4] = rng.integers(-32768, 32768, refl[:, B02, 4].shape)
    # beyond the int16 keys: bright B02 with ties and a few far outliers
    row = rng.choice(np.array([20000, 20001, 20050], np.int16), refl[:, B02, 0].shape)
    row[rng.random(row.shape) < 0.1] = 32000
    refl[:, B02, 0] = row
    valid[:, 5] = False  # a row without valid observations
    got = K.classify(refl, valid, cand, never_bare, 3.0, 4.0, 80.0)
    want = R.classify(refl, valid, cand, never_bare, 3.0, 4.0, 80.0)
    assert np.array_equal(got, want)
    # the blue filter removed something in both paths, so the comparison is not vacuous
    removed = (got & K.FLAG_VALID).astype(bool) & ~(got & K.FLAG_MREF).astype(bool)
    assert removed[:, 0].any() and removed[:, 1].any()  # int32 and int16 rows


def test_accumulate_groups_of_three_and_period_runs_equal_reference():
    rng, refl, valid, cand, never_bare = _cube(11, 17, 5, 29)
    flags = K.classify(refl, valid, cand, never_bare)
    refl[0, :, 0, 0] = -32768  # extreme DN in the sums (a flagged nodata value is still summed)
    flags[0, 0, 0] |= K.FLAG_BARE | K.FLAG_MREF
    # runs of a period interleaved with others and with -1; period 3 has no date at all;
    # run lengths not multiples of 3
    period = np.array([0, 0, 1, 1, 1, 1, 0, -1, 2, 2, 0, 0, 0, 0, 0, -1, 1])
    got = K.accumulate(refl, flags, period, 4)
    want = R.accumulate(refl, flags, period, 4)
    for name, a, b in zip(K.Accumulator._fields, got, want, strict=True):
        assert np.array_equal(a, b), name
    assert not got.bare_sum[3].any() and got.bare_sum[0].any()
    flags[:, 2] = 0  # a row with no bare or MREF observation at all: zero sums
    got = K.accumulate(refl, flags, period, 4)
    assert not got.bare_sum[:, :, 2].any() and not got.mref_sumsq[:, :, 2].any()
    assert np.array_equal(got.mref_sumsq, R.accumulate(refl, flags, period, 4).mref_sumsq)


def test_pvir2_at_most_is_pvir2_and_the_comparison():
    rng = np.random.default_rng(3)
    refl = rng.integers(-1000, 9000, (5, 10, 7, 9)).astype(np.int16)
    refl[rng.random(refl.shape) < 0.05] = REFL_NODATA
    refl[0, BAND_INDEX["B08"], 0, 0] = 700  # nir + red == 0: NaN, never below
    refl[0, BAND_INDEX["B04"], 0, 0] = -700
    thr = rng.uniform(-0.5, 1.0, (7, 9)).astype(np.float32)
    pv = R.pvir2(refl)
    for t in (thr, 0.2, np.float32(0.1)):
        below, got = indices.pvir2_at_most(refl, t)
        assert np.array_equal(got, pv, equal_nan=True)
        assert np.array_equal(below, pv <= np.asarray(t, np.float32))
        assert np.isnan(got[0, 0, 0]) and not below[0, 0, 0]
    cand, _ = scmap.select(refl, np.ones(pv.shape, bool), threshold=thr)
    assert np.array_equal(cand, scmap.reference(refl, None, threshold=thr)[0])
    with pytest.raises(ValueError, match="threshold must be a scalar or"):
        indices.pvir2_at_most(refl, np.zeros((3, 3), np.float32))
