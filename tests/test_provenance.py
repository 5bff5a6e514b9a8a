"""Provenance products (issue 11, ``--provenance``): per pixel, the observations each rule removed.

Fast tests check the kernels against their numpy references; one small composite run (a 32 px
simulated archive, four months, by the CLI) is checked against an independent count: the
archive loaded again with odc-stac and classified in obvious numpy (the reference dilation of
:mod:`soilsuite.kernels.reference`, the flags of runs with and without the dry-vegetation
guard), and the scene filter counted from the STAC items.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite import products as P
from soilsuite.cli import app
from soilsuite.kernels import masks
from soilsuite.kernels import provenance as KP
from soilsuite.kernels import reference as R
from soilsuite.kernels.composite import FLAG_BARE, FLAG_BELOW, FLAG_CANDIDATE, FLAG_VALID
from soilsuite.sensors import REFL_NODATA
from soilsuite.sentinel2 import BANDS

START, END = dt.date(2021, 1, 1), dt.date(2021, 4, 30)


# ----------------------------------------------------------------------------- kernels
def test_count_rules_equals_reference():
    rng = np.random.default_rng(4)
    t, ny, nx, n_p = 23, 5, 7, 3
    codes = rng.choice([KP.PASS, KP.PASS, KP.PASS, KP.NO_OBSERVATION, *range(5)], size=(t, ny, nx)).astype(np.uint8)
    flags = rng.integers(0, 64, size=(t, ny, nx)).astype(np.uint8)
    flags[codes == KP.PASS] |= FLAG_VALID
    period = rng.integers(-1, n_p, size=t)
    days = np.sort(rng.integers(18000, 19500, size=t))
    got = KP.count_rules(codes, flags, period, n_p, days)
    ref = KP.count_rules_reference(codes, flags, period, n_p, days)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g, r)
    counts = got[0]
    # every observation in a period is counted once, under one rule
    expect = np.stack([((codes != KP.NO_OBSERVATION) & (period == p)[:, None, None]).sum(0) for p in range(n_p)])
    np.testing.assert_array_equal(counts.sum(1), expect)


def test_invalid_reasons_split_exactly_the_invalid_observations():
    rng = np.random.default_rng(5)
    t, ny, nx, h = 6, 12, 10, 2
    scl = rng.choice([0, 3, 4, 5, 8, 9, 10, 11], p=[.05, .03, .5, .3, .04, .03, .03, .02],
                     size=(t, ny + 2 * h, nx + 2 * h)).astype(np.uint8)
    refl = rng.integers(1, 3000, size=(t, 3, ny, nx)).astype(np.int16)
    refl[rng.random(refl.shape) < 0.02] = REFL_NODATA
    sun = np.array([30, 75, 40, 50, 69.9, np.nan])
    inv, dil = (0, 1, 2, 3, 7, 8, 9, 10, 11), (3, 8, 9, 10)
    codes = KP.invalid_reasons(scl, refl, sun, inv, dil, 5, 70.0)
    valid = masks.valid_mask(scl, refl, sun, inv, dil, 5, 70.0)
    np.testing.assert_array_equal(codes == KP.PASS, valid)
    # the first rule that applies, from the reference dilation and obvious numpy
    inner = scl[:, h:-h, h:-h]
    near = ~R.valid_mask(scl, np.zeros((t, 1, ny, nx), np.int16), np.zeros(t), [], dil, 5, 90.0)
    ref = np.full(codes.shape, KP.PASS, np.uint8)
    for i in np.ndindex(codes.shape):
        if (refl[i[0], :, i[1], i[2]] == REFL_NODATA).any() or inner[i] == 0:
            ref[i] = KP.NODATA
        elif inner[i] in inv:
            ref[i] = KP.SCL
        elif near[i]:
            ref[i] = KP.DILATION
        elif not sun[i[0]] <= 70:
            ref[i] = KP.SUN
    np.testing.assert_array_equal(codes, ref)


def test_provenance_products_are_in_the_catalogue():
    spec = P.get("PROVENANCE")
    assert spec.bands == KP.RULES and spec.unit == "count" and spec.nodata == 65535 and spec.group == "provenance"
    assert "provenance" in P.OPTIONAL_GROUPS
    assert "PROVENANCE" not in P.composite_products() and "BARE_MEAN_DOY" in P.composite_products(("provenance",))
    from soilsuite.io.qgis import style_kind

    assert style_kind(spec) == "count" and style_kind(P.get("BARE_MEAN_DOY")) == "doy"


# ----------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def prov_run(tmp_path_factory):
    """A 32 px archive (January to April), composite with --provenance by the CLI: seasons, a
    strict scene filter (cloud cover <= 50 %), low sun accepted by the scene filter (>= 15 deg)
    so the sun-zenith rule has work, WorldCover, the dry-vegetation guard."""
    from soilsuite.sources.simulate import simulate

    root = tmp_path_factory.mktemp("prov")
    sim = simulate(root / "archive", size=32, start=START, end=END, seed=11)
    out = root / "out"
    args = ["composite", str(sim.catalog_path), "--out", str(out), "--start", str(START), "--end", str(END),
            "--crs", f"EPSG:{sim.epsg}", "--worldcover", str(sim.worldcover_path), "--periods", "season",
            "--max-cloud-cover", "50", "--min-sun-elevation", "15", "--max-nbr2", "0.12", "--provenance",
            "--scheduler", "sync"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output[-3000:]
    return sim, out, res.output


def _read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, tuple]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.descriptions


def _reference_counts(sim, out: Path) -> np.ndarray:
    """Observations per rule of the window, ``[len(RULES), Y, X]``, counted independently."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from soilsuite.pipeline.block import TileInputs, classify_inputs
    from soilsuite.pipeline.composite import build_config, select_items
    from soilsuite.sources import stac as S

    rec = json.loads((out / "run.json").read_text())
    g = rec["grid"]
    gb = GeoBox(tuple(g["shape"]), Affine(*g["transform"][:6]), g["crs"])
    cfg = build_config(**{"source": str(sim.catalog_path), "out": out, "start": START, "end": END,
                          "worldcover": sim.worldcover_path, "max_cloud_cover": 50, "min_sun_elevation": 15,
                          "max_nbr2": 0.12})
    found, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    meta = S.observation_meta(sel.items, assets)
    h = cfg.mask.dilation_px // 2
    ds = S.load_cube(sel.items, gb.pad(h), assets)
    scl = ds["SCL"].values.astype(np.uint8)
    refl = np.stack([S.to_reflectance(ds[b].values, meta.offset_dn)[:, h:-h, h:-h] for b in BANDS], 1)
    sun = np.asarray(meta.sun_zenith, np.float64)
    m = cfg.mask
    valid = R.valid_mask(scl, refl, sun, m.invalid_scl, m.dilate_scl, m.dilation_px, m.max_sun_zenith)
    inner = scl[:, h:-h, h:-h]
    near = ~R.valid_mask(scl, np.zeros((len(sun), 1, *inner.shape[1:]), np.int16), np.zeros(len(sun)), [],
                         m.dilate_scl, m.dilation_px, 90.0)
    from soilsuite.sentinel2 import WORLDCOVER_NEVER_BARE, WORLDCOVER_OTHER
    from soilsuite.sources.rasters import read_on_grid

    wc = read_on_grid(sim.worldcover_path, gb, resampling="nearest", dtype="uint8", fill=0)
    inp = TileInputs(meta, refl, valid, np.full(inner.shape[1:], 0.2, np.float32),
                     np.isin(wc, WORLDCOVER_NEVER_BARE), np.isin(wc, WORLDCOVER_OTHER))
    _, f_guard = classify_inputs(inp, cfg)
    _, f_plain = classify_inputs(inp, cfg.model_copy(update={"bare": cfg.bare.model_copy(update={"dry_guard": None})}))
    has = lambda f, b: (f & b) > 0  # noqa: E731
    nodata = ~valid & ((refl == REFL_NODATA).any(1) | (inner == 0))
    scl_bad = ~valid & ~nodata & np.isin(inner, m.invalid_scl)
    dil = ~valid & ~nodata & ~scl_bad & near
    sun_bad = ~valid & ~nodata & ~scl_bad & ~dil
    rules = {
        "nodata": nodata, "scl": scl_bad, "dilation": dil, "sun": sun_bad,
        "selector": valid & ~has(f_plain, FLAG_BELOW),
        "dry_guard": has(f_plain, FLAG_BELOW) & ~has(f_guard, FLAG_BELOW),
        "edge_guard": np.zeros_like(valid),  # not asked for in this run (tests/test_edge_guard.py)
        "land_cover": has(f_guard, FLAG_BELOW) & ~has(f_guard, FLAG_CANDIDATE),
        "blue_filter": has(f_guard, FLAG_CANDIDATE) & ~has(f_guard, FLAG_BARE),
        "bare": has(f_guard, FLAG_BARE),
    }
    # the simulator's main scene of each day covers the whole area: every solar day of the search is
    # an observation of every pixel. A pixel without data on a loaded day: "scene_filter" if a removed
    # scene of that day covers it (its native extent, proj:bbox), else "nodata"; days without a kept
    # scene: "scene_filter" everywhere
    day = lambda it: S.SENSOR.solar_day(it, None, None)  # noqa: E731
    n_days = len({day(it) for it in found})
    kept = {it.id for it in sel.items}
    xs, ys = gb.coords["x"].values, gb.coords["y"].values
    removed_cover = np.zeros(inner.shape, bool)
    for it in found:
        if it.id not in kept and day(it) in meta.dates:
            x0, y0, x1, y1 = it.properties["proj:bbox"]
            removed_cover[meta.dates.index(day(it))] |= (((ys > y0) & (ys < y1))[:, None]
                                                        & ((xs > x0) & (xs < x1))[None, :])
    counted = {k: v.sum(0) for k, v in rules.items()}
    nothing = (inner == 0) & (refl == REFL_NODATA).all(1)
    counted["nodata"] = (nodata & ~(nothing & removed_cover)).sum(0)
    counted["scene_filter"] = (n_days - len(meta.dates)) + (nothing & removed_cover).sum(0)
    return np.stack([counted[r] for r in KP.RULES]).astype(np.int64), n_days


def test_provenance_counts_add_up_and_match_an_independent_count(prov_run):
    sim, out, _ = prov_run
    prov, profile, desc = _read(out / "PROVENANCE.tif")
    assert desc == KP.RULES and profile["dtype"] == "uint16" and profile["nodata"] == 65535
    ref, n_days = _reference_counts(sim, out)
    # the counts of each pixel add up to its number of observations: every solar day of the search
    np.testing.assert_array_equal(prov.astype(np.int64).sum(0), np.full(prov.shape[1:], n_days))
    for r, name in enumerate(KP.RULES):
        np.testing.assert_array_equal(prov[r], ref[r], err_msg=name)
    # every rule has work in this run
    assert all(prov[r].sum() > 0 for r, name in enumerate(KP.RULES) if name not in ("land_cover", "edge_guard")), \
        prov.sum((1, 2))
    vpc, bsc = _read(out / "VPC.tif")[0][0], _read(out / "BSC.tif")[0][0]
    np.testing.assert_array_equal(prov[KP.BARE], bsc)
    np.testing.assert_array_equal(prov[KP.SELECTOR:].sum(0), vpc)


def test_periods_add_up_to_the_window_and_mean_dates(prov_run):
    sim, out, _ = prov_run
    rec = json.loads((out / "run.json").read_text())
    window = _read(out / "PROVENANCE.tif")[0].astype(np.int64)
    per = [_read(out / p / "PROVENANCE.tif")[0].astype(np.int64) for p in rec["periods"]]
    assert rec["periods"] == ["2021-DJF", "2021-MAM"]
    np.testing.assert_array_equal(sum(per), window)
    doy = _read(out / "BARE_MEAN_DOY.tif")[0][0]
    year = _read(out / "BARE_MEAN_YEAR.tif")[0][0]
    bare = window[KP.BARE]
    # mean day of year: the periods' means weighted by their bare counts
    doys = [_read(out / p / "BARE_MEAN_DOY.tif")[0][0].astype(np.float64) for p in rec["periods"]]
    num = sum(np.where(c[KP.BARE] > 0, d * c[KP.BARE], 0.0) for d, c in zip(doys, per, strict=True))
    ok = bare > 0
    assert ok.any()
    np.testing.assert_allclose(doy[ok], (num[ok] / bare[ok]), rtol=1e-5)
    assert np.isnan(doy[~ok]).all() and np.isnan(year[~ok]).all()
    np.testing.assert_allclose(year[ok], 2021.0)
    assert ((doy[ok] >= 1) & (doy[ok] <= 120)).all()


def test_area_shares_in_cli_summary_and_run_record(prov_run):
    sim, out, stdout = prov_run
    rec = json.loads((out / "run.json").read_text())
    shares = rec["summary"]["provenance_share"]
    prov = _read(out / "PROVENANCE.tif")[0].astype(np.float64)
    tot = prov.sum((1, 2))
    assert list(shares) == list(KP.RULES)
    np.testing.assert_allclose([shares[r] for r in KP.RULES], tot / tot.sum())
    assert "provenance" in stdout and "scene_filter" in stdout
    # STAC: the product is an asset of the window's item with its bands
    items = {p.stem: json.loads(p.read_text()) for p in (out / "items").glob("*.json")} if (out / "items").is_dir() \
        else {}
    text = json.dumps(items) + (out / "collection.json").read_text()
    assert "PROVENANCE" in text
    assert (out / "PROVENANCE.qml").exists() and (out / "quicklooks" / "PROVENANCE.png").exists()


def test_compute_refuses_provenance():
    from soilsuite.errors import ConfigError
    from soilsuite.pipeline.compute import _config

    with pytest.raises(ConfigError, match="compute: provenance needs the scene list"):
        _config(None, {"provenance": True}, START, END)


def test_viewer_lists_the_provenance_layers(prov_run):
    from soilsuite.viewer.layers import discover_layers

    _, out, _ = prov_run
    layers = {la.id: la for la in discover_layers(out)}
    prov = next(la for la in layers.values() if la.name == "PROVENANCE" and "/" not in la.id)
    assert prov.kind == "count" and tuple(prov.bands) == KP.RULES and prov.nodata == 65535
    doy = next(la for la in layers.values() if la.name == "BARE_MEAN_DOY" and "/" not in la.id)
    assert doy.unit.startswith("day of year")
