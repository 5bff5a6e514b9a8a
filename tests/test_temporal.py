"""Periods, temporal layers, grassland ploughing and erosion inputs (issue 15).

Fast tests run the block functions on synthetic cubes (kernel vs numpy reference, merges,
exact per-period blue filter vs a standalone run, C-factor vs a direct computation); the
tests marked slow run composites of simulated archives and compare with the simulator's
truth (crop calendar events, ploughed grassland fields).
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soilsuite import layers as L
from soilsuite import products as P
from soilsuite.errors import ConfigError, InputError
from soilsuite.kernels import temporal as KT
from soilsuite.periods import period_index, periods_with_data, resolve_periods
from soilsuite.pipeline.block import TileInputs, composite_inputs
from soilsuite.pipeline.composite import build_config
from soilsuite.sources import stac as S

D = dt.date


# ----------------------------------------------------------------------------- periods
def test_period_keywords():
    ps = resolve_periods("year", D(2021, 3, 1), D(2022, 6, 30))
    assert [(p.label, p.first, p.last) for p in ps] == [("2021", D(2021, 3, 1), D(2021, 12, 31)),
                                                         ("2022", D(2022, 1, 1), D(2022, 6, 30))]
    s = resolve_periods("season", D(2021, 1, 1), D(2021, 12, 31))
    assert [p.label for p in s] == ["2021-DJF", "2021-MAM", "2021-JJA", "2021-SON", "2022-DJF"]
    assert (s[0].first, s[0].last) == (D(2021, 1, 1), D(2021, 2, 28))  # clipped to the window
    assert (s[-1].first, s[-1].last) == (D(2021, 12, 1), D(2021, 12, 31))
    m = resolve_periods("month", D(2020, 1, 15), D(2020, 3, 31))
    assert [(p.label, p.last) for p in m] == [("2020-01", D(2020, 1, 31)), ("2020-02", D(2020, 2, 29)),
                                              ("2020-03", D(2020, 3, 31))]
    assert resolve_periods("none", D(2020, 1, 1), D(2021, 1, 1)) == []


def test_named_periods_recurring_explicit_and_over_new_year():
    ps = resolve_periods("spring:03-01..05-31,autumn:09-01..11-30", D(2021, 1, 1), D(2022, 4, 30))
    assert [(p.label, p.first, p.last) for p in ps] == [
        ("2021-spring", D(2021, 3, 1), D(2021, 5, 31)), ("2021-autumn", D(2021, 9, 1), D(2021, 11, 30)),
        ("2022-spring", D(2022, 3, 1), D(2022, 4, 30))]
    w = resolve_periods("winter:12-01..02-29", D(2021, 1, 1), D(2021, 12, 31))
    assert [(p.label, p.first, p.last) for p in w] == [("2021-winter", D(2021, 1, 1), D(2021, 2, 28)),
                                                        ("2022-winter", D(2021, 12, 1), D(2021, 12, 31))]
    e = resolve_periods("before:2021-01-01..2021-06-30,after:2021-07-01..2021-12-31", D(2021, 1, 1),
                        D(2021, 12, 31))
    assert [p.label for p in e] == ["before", "after"]
    dates = [D(2021, 2, 1), D(2021, 7, 1), D(2021, 8, 1)]
    np.testing.assert_array_equal(period_index(dates, e), [0, 1, 1])
    assert [p.label for p in periods_with_data("spring:03-01..05-31", D(2021, 1, 1), D(2022, 12, 31),
                                               [D(2022, 4, 1)])] == ["2022-spring"]


@pytest.mark.parametrize("spec, msg", [
    ("yearly", "cannot read 'yearly'"),
    ("a:03-01..05-31,b:05-01..06-30", "overlap"),
    ("a:2021-03-01..05-31", "both ends with a year"),
    ("a:03-01..13-01", "not a valid day"),
    ("a:03-01..04-01,a:05-01..06-01", "given twice"),
])
def test_bad_periods_are_named(spec, msg):
    with pytest.raises(ConfigError, match=msg):
        resolve_periods(spec, D(2021, 1, 1), D(2022, 12, 31))
    with pytest.raises(ValueError, match=msg):  # pydantic's ValidationError: one line at the CLI
        build_config(source="x", start="2021-01-01", end="2022-12-31", out="o", periods=spec)


def test_layer_inputs_need_their_layer():
    with pytest.raises(ValueError, match="grassland"):
        build_config(source="x", start="2021-01-01", end="2021-12-31", out="o", grassland="g.gpkg")
    with pytest.raises(ValueError, match="ploughing: needs permanent grassland"):
        build_config(source="x", start="2021-01-01", end="2021-12-31", out="o", ploughing=True)
    cfg = build_config(source="x", start="2021-01-01", end="2021-12-31", out="o", temporal=True, erosion=True)
    assert cfg.product_groups == ("composite", "temporal", "erosion")
    assert build_config(source="x", start="2021-01-01", end="2021-12-31", out="o").product_groups == ("composite",)


# ----------------------------------------------------------------------------- the kernel
def test_bare_dates_by_hand():
    # days: 0 veg, 5 bare (tillage: 5 days after veg), 10 cloud, 15 bare, 20 outlier (valid, below, not bare),
    # 25 bare, 30 veg, 80 bare (50 days after veg: no tillage with N = 30)
    v, veg, bare, out_ = 0, 1, 1 | 2 | 4 | 8, 1 | 2 | 4
    flags = np.array([veg, bare, v, bare, out_, bare, veg, bare], np.uint8)[:, None, None]
    days = np.array([0, 5, 10, 15, 20, 25, 30, 80]) + 18628  # 2021-01-01 = day 18628
    r = KT.bare_dates(flags, days, np.zeros(8, int), 1, np.array([18628 + 89]), 30)
    got = {k: float(a[0, 0, 0]) for k, a in r.items()}
    assert got == {"first_doy": 6, "last_doy": 81, "median_doy": 21, "episodes": 3, "longest_spell": 11,
                   "tillage_events": 1, "first_tillage_doy": 6, "days_since_bare": 9}
    # with N = 60 the run on day 80 is a tillage event too
    assert KT.bare_dates(flags, days, np.zeros(8, int), 1, np.array([0]), 60)["tillage_events"][0, 0, 0] == 2


FLAGS = st.sampled_from([0, 1, 1, 3, 7, 15, 15, 15, 1 | 16, 3 | 16, 15 | 16])


@st.composite
def series(draw):
    n_t = draw(st.integers(0, 14))
    n_y, n_x = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    flags = draw(hnp.arrays(np.uint8, (n_t, n_y, n_x), elements=FLAGS))
    days = np.array(draw(st.lists(st.integers(18000, 19500), min_size=n_t, max_size=n_t, unique=True)), np.int64)
    n_p = draw(st.integers(1, 3))
    period = np.array(draw(st.lists(st.integers(-1, n_p - 1), min_size=n_t, max_size=n_t)), np.int64)
    ends = np.array(draw(st.lists(st.integers(19000, 19600), min_size=n_p, max_size=n_p)), np.int64)
    return flags, days, period, n_p, ends, draw(st.integers(0, 60))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series())
def test_bare_dates_kernel_equals_numpy_reference(case):
    flags, days, period, n_p, ends, gap = case
    got = KT.bare_dates(flags, days, period, n_p, ends, gap)
    ref = KT.bare_dates_reference(flags, days, period, n_p, ends, gap)
    for k in KT.OUTPUTS:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    par = KT.bare_dates(flags, days, period, n_p, ends, gap, parallel=True)
    for k in KT.OUTPUTS:
        np.testing.assert_array_equal(par[k], got[k], err_msg=k)


def test_c_factor_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    bsf = rng.random((12, 5, 6))
    bsf[rng.random(bsf.shape) < 0.2] = np.nan
    bsf[:, 0, 0] = np.nan
    w = rng.random(12)
    w /= w.sum()
    got = L.c_factor(bsf, w[:, None, None])
    for y in range(5):
        for x in range(6):
            ok = [m for m in range(12) if np.isfinite(bsf[m, y, x])]
            want = sum(w[m] * bsf[m, y, x] for m in ok) / sum(w[m] for m in ok) if ok else np.nan
            np.testing.assert_allclose(got[y, x], want, rtol=1e-6, equal_nan=True)


def test_erosivity_table(tmp_path):
    from soilsuite.sources.layer_inputs import erosivity_table

    p = tmp_path / "r.csv"
    p.write_text("month,share\n" + "\n".join(f"{m},{m}" for m in range(12, 0, -1)))
    np.testing.assert_allclose(erosivity_table(p), np.arange(1, 13) / 78, rtol=1e-6)
    p.write_text("month,share\n1,0.5\n2,0.5\n")
    with pytest.raises(InputError, match=r"r.csv: 'month' must list 1..12"):
        erosivity_table(p)
    p.write_text("mon,share\n1,1\n")
    with pytest.raises(InputError, match="expected columns 'month' and 'share'"):
        erosivity_table(p)


# ----------------------------------------------------------------------------- block functions
SOIL = np.array([900, 1200, 1450, 1600, 1700, 1800, 1900, 2000, 2900, 2500], np.int16)
VEG = np.array([300, 600, 300, 900, 2500, 3500, 4000, 4100, 2000, 800], np.int16)


def _tile(seed=0, n=6, start=D(2021, 1, 3), years=2, step=5):
    """A synthetic tile: fields bare from a drawn day to +40 days each spring and autumn, with
    clouds and haze (high B02), on days every ``step``."""
    rng = np.random.default_rng(seed)
    dates = [start + dt.timedelta(days=int(d)) for d in range(0, 365 * years, step)]
    t = len(dates)
    doy = np.array([d.timetuple().tm_yday for d in dates])
    b0 = rng.integers(60, 120, (n, n))
    b1 = rng.integers(210, 260, (n, n))
    bare = (((doy[:, None, None] >= b0) & (doy[:, None, None] < b0 + 40))
            | ((doy[:, None, None] >= b1) & (doy[:, None, None] < b1 + 40)))
    refl = np.where(bare[:, None], SOIL[None, :, None, None], VEG[None, :, None, None]).astype(np.int16)
    refl = (refl + rng.integers(-60, 60, refl.shape)).astype(np.int16)
    # the soil's B02 drifts between years and seasons (moisture, crust): per-period medians differ
    drift = np.array([250 * (d.year - start.year) + 120 * (d.month > 6) for d in dates], np.int16)
    refl[:, 0] += np.where(bare, drift[:, None, None], 0).astype(np.int16)
    haze = rng.random((t, n, n)) < 0.08
    refl[:, 0] += (haze * 700).astype(np.int16)
    valid = rng.random((t, n, n)) < 0.7
    meta = S.ObservationMeta(dates, np.array(dates, "datetime64[ns]"), np.zeros(t, np.int32),
                             np.zeros(t, np.float32), [[] for _ in dates])
    other = np.zeros((n, n), bool)
    other[0, 0] = True
    aux = {"grassland": rng.random((n, n)) < 0.5}
    return TileInputs(meta, refl, valid, np.full((n, n), 0.2, np.float32), np.zeros((n, n), bool), other, aux)


def _cfg(**kw):
    base = dict(source="x", start="2021-01-01", end="2022-12-31", out="o", temporal=True, ploughing=True,
                erosion=True, worldcover="wc.tif")
    return build_config(**{**base, **kw})


def _copy(inp):
    return TileInputs(inp.meta, inp.refl.copy(), inp.valid, inp.threshold, inp.never_bare, inp.other, inp.aux)


MERGE_PRODUCTS = {"VPC": "sum", "BSC": "sum", "FIRST_BARE_DOY": "min", "LAST_BARE_DOY": "max"}


@pytest.mark.parametrize("spec", ["year", "season", "month"])
def test_periods_merged_equal_the_window(spec):
    """Approximate (window) blue filter: counts of the periods add up to the window exactly,
    first/last days merge by min/max, means and BSF_MONTHLY / C_FACTOR to float tolerance."""
    inp = _tile(1)
    cfg = _cfg(periods=spec)
    labels = [p.label for p in periods_with_data(spec, cfg.start, cfg.end, inp.meta.dates)]
    res = composite_inputs(_copy(inp), cfg, labels)
    win = res["window"]
    per = [res[lab] for lab in labels]
    for name, rule in MERGE_PRODUCTS.items():
        stack = np.stack([r[name] for r in per])
        merged = {"sum": np.nansum, "min": np.nanmin, "max": np.nanmax}[rule](stack, axis=0)
        if rule == "sum":
            merged = np.where(np.isnan(stack).all(0), np.nan, merged)
            np.testing.assert_array_equal(np.nan_to_num(merged), np.nan_to_num(win[name]), err_msg=name)
        else:
            with np.errstate(all="ignore"):
                np.testing.assert_array_equal(merged, win[name], err_msg=name)
    # SRC_MEAN: bare-weighted mean of the periods' means
    bsc = np.stack([np.nan_to_num(r["BSC"]) for r in per])
    means = np.stack([np.where(np.isnan(r["SRC_MEAN"]), 0, r["SRC_MEAN"]) for r in per]).astype(np.float64)
    ok_p = np.stack([np.isfinite(r["SRC_MEAN"][0]) for r in per])
    ok = np.isfinite(win["SRC_MEAN"][0]) & (ok_p | (bsc == 0)).all(0)  # every period with bare obs has a mean
    wmean = (means * bsc[:, None]).sum(0) / np.maximum(bsc.sum(0), 1)[None]
    np.testing.assert_allclose(wmean[:, ok], win["SRC_MEAN"][:, ok], rtol=1e-5, atol=1e-6)
    # the year's monthly counts add up to the window's
    if spec == "year":
        f = P.FIELDS
        assert f["month_vpc"].merge == f["month_bsc"].merge == "sum"
        np.testing.assert_allclose(np.nanmean(np.stack([r["C_FACTOR"] for r in per]), 0)[1:, 1:],
                                   win["C_FACTOR"][1:, 1:], atol=0.35)  # same order (not a merge: weights differ)
        # PLOUGHED / PERM_VEG_LOST of the window: any period
        np.testing.assert_array_equal(np.fmax.reduce(np.stack([r["PLOUGHED"] for r in per])), win["PLOUGHED"])


def test_monthly_bsf_and_c_factor_equal_a_direct_computation():
    inp = _tile(2)
    cfg = _cfg(periods="none")
    flags = _flags(inp, cfg)
    res = composite_inputs(_copy(inp), cfg, [])["window"]
    months = np.array([d.month for d in inp.meta.dates])
    bsf = np.full((12, *flags.shape[1:]), np.nan)
    for m in range(12):
        f = flags[months == m + 1]
        nv = (f & 1).sum(0)
        nb = ((f & 8) > 0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            bsf[m] = np.where(nv > 0, nb / nv, np.nan)
    np.testing.assert_allclose(res["BSF_MONTHLY"], bsf, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(res["C_FACTOR"], np.nanmean(bsf, axis=0), rtol=1e-5)  # flat shares: the mean
    # monthly shares: erosivity-weighted mean over the months with a value
    w = np.arange(1, 13, dtype=np.float32)
    w /= w.sum()
    inp2 = _tile(2)
    inp2.aux["erosivity"] = w
    got = composite_inputs(inp2, cfg, [])["window"]["C_FACTOR"]
    ok = np.isfinite(bsf)
    want = np.where(ok, bsf * w[:, None, None], 0).sum(0) / np.where(ok, w[:, None, None], 0).sum(0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _flags(inp, cfg):
    from soilsuite.pipeline.block import classify_inputs

    return classify_inputs(inp, cfg)[1]


@pytest.mark.parametrize("spec", ["year", "spring:03-01..05-31,autumn:09-01..11-30"])
def test_exact_blue_filter_equals_a_standalone_run_on_the_period(spec):
    inp = _tile(3)
    cfg = _cfg(periods=spec, period_blue_filter="exact")
    periods = periods_with_data(spec, cfg.start, cfg.end, inp.meta.dates)
    res = composite_inputs(_copy(inp), cfg, [p.label for p in periods])
    approx = composite_inputs(_copy(inp), _cfg(periods=spec), [p.label for p in periods])
    window_alone = composite_inputs(_copy(inp), _cfg(periods="none"), [])["window"]
    differs = 0
    for p in periods:
        sel = np.flatnonzero(period_index(inp.meta.dates, [p]) == 0)
        meta = S.ObservationMeta([inp.meta.dates[i] for i in sel], inp.meta.times[sel], inp.meta.offset_dn[sel],
                                 inp.meta.sun_zenith[sel], [[] for _ in sel])
        alone = TileInputs(meta, inp.refl[sel].copy(), inp.valid[sel], inp.threshold, inp.never_bare, inp.other,
                           inp.aux)
        cfg_p = _cfg(periods="none", start=p.first, end=p.last)
        want = composite_inputs(alone, cfg_p, [])["window"]
        for name, arr in want.items():
            if name == "PERM_VEG_LOST":  # needs the previous period: not a standalone quantity
                continue
            np.testing.assert_array_equal(res[p.label][name], arr, err_msg=f"{p.label} {name}")
        differs += int((np.nan_to_num(approx[p.label]["BSC"]) != np.nan_to_num(want["BSC"])).sum())
    assert differs > 0  # the approximation is not the exact filter on this tile
    for name, arr in window_alone.items():  # the window keeps the window's filter
        if any(P.FIELDS[f].window_from_periods for f in P.get(name).fields):
            continue  # PLOUGHED, PERM_VEG_LOST of the window: "in any period", not a window quantity
        np.testing.assert_array_equal(res["window"][name], arr, err_msg=name)


def test_perm_veg_lost_compares_consecutive_masks():
    inp = _tile(4)
    cfg = _cfg(periods="year")
    res = composite_inputs(_copy(inp), cfg, ["2021", "2022"])
    m21, m22, lost = res["2021"]["MASK"], res["2022"]["MASK"], res["2022"]["PERM_VEG_LOST"]
    want = np.where(m21 == 2, (m22 == 1).astype(np.float32), np.nan)
    np.testing.assert_array_equal(lost, want)
    assert np.isnan(res["2021"]["PERM_VEG_LOST"]).all()


def test_default_run_writes_no_optional_layer():
    cfg = build_config(source="x", start="2021-01-01", end="2022-12-31", out="o", periods="year")
    res = composite_inputs(_tile(5), cfg, ["2021", "2022"])
    assert set(res["window"]) == set(P.SCMAP_PRODUCTS)


# ----------------------------------------------------------------------------- against the simulator
@pytest.fixture(scope="module")
def ploughed(tmp_path_factory):
    """A small archive where half the grassland fields are ploughed once, and its composite with
    every optional layer, per year (grassland from the truth's field polygons)."""
    from soilsuite.pipeline.composite import composite
    from soilsuite.sources.simulate import simulate

    root = tmp_path_factory.mktemp("ploughed")
    sim = simulate(root / "archive", size=64, start=D(2021, 1, 1), end=D(2022, 12, 31), seed=5,
                   ploughed_grassland=0.6)
    fields = json.loads((sim.truth_dir / "fields.geojson").read_text())
    grass = {"type": "FeatureCollection",
             "features": [f for f in fields["features"] if f["properties"]["class"] == "grassland"]}
    gpath = root / "grassland.geojson"
    gpath.write_text(json.dumps(grass))
    out = root / "out"
    composite(sim.catalog_path, out=out, start=D(2021, 1, 1), end=D(2022, 12, 31), crs=f"EPSG:{sim.epsg}",
              worldcover=sim.worldcover_path, periods="year", temporal=True, ploughing=True, erosion=True,
              grassland=gpath, tile_size=64, scheduler="sync")
    return sim, out


def _read(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


@pytest.mark.slow
def test_ploughing_detected_on_the_ploughed_fields_only(ploughed):
    sim, out = ploughed
    fid = _read(sim.truth_dir / "field_id.tif")
    events = json.loads((sim.truth_dir / "events.json").read_text())["fields"]
    hits, false = [], []
    for year in ("2021", "2022"):
        flag = _read(out / year / "PLOUGHED.tif")
        for f, rec in events.items():
            if rec["class"] != "grassland":
                continue
            px = flag[fid == int(f)]
            share = float((px == 1).mean()) if px.size else 0.0
            ploughed_now = any(e["kind"] == "ploughing" and e["date"].startswith(year) for e in rec["events"])
            (hits if ploughed_now else false).append(share)
    hits, false = np.array(hits), np.array(false)
    # a parcel counts as ploughed when a quarter of its pixels are flagged (field edges are mixed,
    # and a pixel needs min_ploughing_obs = 2 clear bare observations in a 25-45 day window)
    print(f"ploughed grassland field-years: {len(hits)}, mean share of pixels flagged {hits.mean():.2f}, "
          f"parcels flagged (>= 25 % of pixels): {np.mean(hits >= 0.25):.2f}; other grassland field-years: "
          f"{len(false)}, mean share flagged {false.mean():.4f}, parcels flagged: {np.mean(false >= 0.25):.2f}")
    assert len(hits) >= 4
    assert np.mean(hits >= 0.25) >= 0.75
    assert np.mean(false >= 0.25) <= 0.1 and false.mean() < 0.05


@pytest.mark.slow
def test_bare_dates_and_tillage_match_the_crop_calendar(ploughed):
    """Per crop field and year: the detected first tillage day lies within one revisit (5 days)
    plus the gap to the next clear observation of a simulated harvest, tillage, cover
    incorporation or sowing; ploughed grassland fields show their ploughing as a tillage event."""
    sim, out = ploughed
    fid = _read(sim.truth_dir / "field_id.tif")
    events = json.loads((sim.truth_dir / "events.json").read_text())["fields"]
    rows = []
    for year in ("2021", "2022"):
        till = _read(out / year / "FIRST_TILLAGE_DOY.tif").astype(float)
        till[till == 0] = np.nan
        for f, rec in events.items():
            px = till[fid == int(f)]
            if px.size < 10 or np.isnan(px).mean() > 0.5:
                continue
            doy = float(np.nanmedian(px))
            kinds = ("ploughing",) if rec["class"] == "grassland" else ("harvest", "tillage", "cover_incorporation",
                                                                         "sowing")
            cand = [e["doy"] for e in rec["events"] if e["date"].startswith(year) and e["kind"] in kinds]
            if not cand:
                continue
            # the event is seen at the first clear acquisition after it: detected - event in [-5, +20] days
            lag = min((doy - c for c in cand), key=abs)
            rows.append((rec["class"], lag))
    lags = np.array([r[1] for r in rows])
    within = np.mean((lags >= -5) & (lags <= 20))
    print(f"field-years with a detected tillage event: {len(rows)}; detected within -5..+20 days of a calendar "
          f"event: {within:.2f}; within one revisit (|lag| <= 5): {np.mean(np.abs(lags) <= 5):.2f}; "
          f"median lag {np.median(lags):.1f} days")
    assert len(rows) >= 10
    assert within >= 0.6


@pytest.mark.slow
def test_first_and_last_bare_days_match_the_truth(ploughed):
    """Per pixel and year: FIRST/LAST_BARE_DOY against the first/last truly bare clear
    observation (truth bit TRUTH_BARE on a date without truth cloud, shadow or snow)."""
    from soilsuite.sources.simulate import (
        TRUTH_BARE,
        TRUTH_CLOUD,
        TRUTH_SHADOW,
        TRUTH_SNOW,
        load_truth,
    )

    sim, out = ploughed
    truth = load_truth(sim.out)
    obs = truth["obs_flags"].values
    clear_bare = ((obs & TRUTH_BARE) > 0) & ((obs & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_SNOW)) == 0)
    times = truth["time"].values.astype("datetime64[D]")
    # the truth the run could see: dates it used (scene filter) with the sun high enough
    rec = json.loads((out / "run.json").read_text())
    seen = {o["date"] for o in rec["observations"] if o["sun_zenith_deg"] <= 70}
    clear_bare &= np.array([str(t) in seen for t in times])[:, None, None]
    doy = (times - times.astype("datetime64[Y]")).astype(int) + 1
    years = times.astype("datetime64[Y]").astype(int) + 1970
    for year in (2021, 2022):
        sel = years == year
        cb, d = clear_bare[sel], doy[sel]
        t_first = np.where(cb.any(0), d[np.argmax(cb, axis=0)], 0)
        t_last = np.where(cb.any(0), d[len(d) - 1 - np.argmax(cb[::-1], axis=0)], 0)
        for name, t in (("FIRST_BARE_DOY", t_first), ("LAST_BARE_DOY", t_last)):
            got = _read(out / str(year) / f"{name}.tif").astype(int)
            both = (got > 0) & (t > 0)
            signed = got[both] - t[both]
            diff = np.abs(signed)
            print(f"{year} {name}: median detected - truth {np.median(signed):+.0f} d, earlier {np.mean(signed < 0):.2f}, "
                  f"later {np.mean(signed > 0):.2f}; pixels with both {both.sum()}, equal {np.mean(diff == 0):.2f}, within one "
                  f"revisit (5 d) {np.mean(diff <= 5):.2f}, within 15 d {np.mean(diff <= 15):.2f}; detected only "
                  f"{int(((got > 0) & (t == 0)).sum())}, truth only {int(((got == 0) & (t > 0)).sum())}")
            assert np.mean(diff <= 15) >= 0.3


def test_layer_input_files_are_checked_before_any_work(tmp_path):
    from soilsuite.sources.layer_inputs import check_layer_inputs

    cfg = _cfg(erosivity=tmp_path / "nope.csv")
    with pytest.raises(InputError, match="erosivity file .*nope.csv: no such file"):
        check_layer_inputs(cfg)
    bad = tmp_path / "g.geojson"
    bad.write_text("not json")
    with pytest.raises(InputError, match="grassland file .*g.geojson: cannot be read"):
        check_layer_inputs(_cfg(grassland=bad))


@pytest.mark.slow
def test_simulator_run_merges_and_c_factor_equal_direct_computations(ploughed):
    """On the simulated run (approximate blue filter): the years' VPC and BSC add up to the
    window's, FIRST/LAST_BARE_DOY merge by min/max; BSF_MONTHLY and C_FACTOR (flat shares) equal
    a direct numpy computation from the per-observation flags of the same archive."""
    from soilsuite import open_products
    from soilsuite.pipeline.composite import observation_flags

    sim, out = ploughed
    win, years = open_products(out, decode=False), [open_products(out / y, decode=False) for y in ("2021", "2022")]
    for name in ("VPC", "BSC"):
        np.testing.assert_array_equal(sum(y[name].values.astype(int) for y in years), win[name].values)
    for name, fn in (("FIRST_BARE_DOY", np.fmin), ("LAST_BARE_DOY", np.fmax)):
        vals = [np.where(y[name].values == 0, np.nan, y[name].values) for y in years]
        np.testing.assert_array_equal(np.nan_to_num(fn(*vals)), win[name].values)
    fl = observation_flags(sim.catalog_path, start=D(2021, 1, 1), end=D(2022, 12, 31), crs=f"EPSG:{sim.epsg}",
                           worldcover=sim.worldcover_path)
    flags = fl["flags"].values
    months = fl["time"].dt.month.values
    bsf = np.full((12, *flags.shape[1:]), np.nan)
    for m in range(12):
        f = flags[months == m + 1]
        nv, nb = (f & 1).sum(0), ((f & 8) > 0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            bsf[m] = np.where(nv > 0, nb / nv, np.nan)
    got = open_products(out)
    np.testing.assert_allclose(got["BSF_MONTHLY"].values, bsf, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got["C_FACTOR"].values, np.nanmean(bsf, axis=0), rtol=1e-5, equal_nan=True)
    print(f"C_FACTOR (flat shares) on the simulator: mean {np.nanmean(got['C_FACTOR'].values):.3f}; equals the "
          "direct computation to 1e-5")


def test_compute_api_takes_the_same_options():
    """soilsuite.compute on an in-memory cube: periods, the exact blue filter and the optional
    layers give the block functions' values (the tile runner's)."""
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    import soilsuite
    from soilsuite.sentinel2 import BANDS

    inp = _tile(6, n=12)
    gb = GeoBox.from_bbox((500000, 5800000, 500240, 5800240), "EPSG:32633", resolution=20)
    coords = {**xr_coords(gb), "time": inp.meta.times}
    data = {b: (("time", "y", "x"), inp.refl[:, i].astype(np.uint16)) for i, b in enumerate(BANDS)}
    data["SCL"] = (("time", "y", "x"), np.where(inp.valid, 4, 1).astype(np.uint8))  # 1: invalid, not dilated
    cube = xr.Dataset(data, coords=coords).chunk({"x": 6, "y": 6})  # >= dilation_px // 2
    opts = dict(periods="season", period_blue_filter="exact", temporal=True, erosion=True, tillage_max_gap_days=20)
    ds = soilsuite.compute(cube, offset_dn=0, **opts).compute()
    cfg = _cfg(start=inp.meta.dates[0], end=inp.meta.dates[-1], ploughing=False, worldcover=None, **opts)
    labels = [p.label for p in periods_with_data("season", cfg.start, cfg.end, inp.meta.dates)]
    want = composite_inputs(TileInputs(inp.meta, inp.refl.copy(), inp.valid, inp.threshold, np.zeros((12, 12), bool),
                                       np.zeros((12, 12), bool)), cfg, labels)
    for label in ("window", labels[2]):
        for name in ("BSC", "MEDIAN_BARE_DOY", "TILLAGE_EVENTS", "DAYS_SINCE_BARE", "BSF_MONTHLY", "C_FACTOR"):
            var = name if label == "window" else f"{name}_{label}"
            np.testing.assert_array_equal(ds[var].values, want[label][name], err_msg=var)
    assert ds["BSF_MONTHLY"].dims == ("month", "y", "x")
