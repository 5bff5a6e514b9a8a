"""The spatial edge guard (issue 11, ``--edge-guard N``): kernel, tile halo, provenance, bad input.

The kernel is checked against its numpy reference and against scipy's binary erosion (N = 8),
with tile edges (a frame of False) and nodata neighbours. The pipeline is checked on a small
simulated archive: the flags of a run equal the reference edge guard applied by hand to the
flags of the same run without it (outside the archive counts as "not bare"), two tile layouts
give identical products (the 1-pixel ring of pipeline/edges.py; without it they differ), and
the provenance counts (rule ``edge_guard``) add up per pixel and match the removed observations.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio
from scipy import ndimage
from typer.testing import CliRunner

from soilsuite.cli import app
from soilsuite.kernels import edges as KE
from soilsuite.kernels import provenance as KP
from soilsuite.kernels.composite import FLAG_BARE, FLAG_BELOW, FLAG_VALID
from soilsuite.pipeline.edges import framed, ring_of

START, END = dt.date(2021, 4, 1), dt.date(2021, 7, 31)


# ----------------------------------------------------------------------------- kernel
@pytest.mark.parametrize("n", range(9))
def test_kernel_equals_reference(n):
    rng = np.random.default_rng(n)
    cand = rng.random((7, 13, 11)) < 0.7
    neigh = rng.random((7, 15, 13)) < 0.7
    neigh[:, 1:-1, 1:-1] = cand
    got = KE.edge_guard(cand, neigh, n)
    ref = KE.edge_guard_reference(cand, neigh, n)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(KE.edge_guard(cand, neigh, n, parallel=True), ref)
    if n == 0:
        np.testing.assert_array_equal(got, cand)  # N = 0 keeps every candidate


def test_n8_is_the_erosion_with_false_outside_and_nodata_neighbours():
    rng = np.random.default_rng(1)
    cand = rng.random((5, 9, 10)) < 0.85
    valid = rng.random(cand.shape) < 0.9  # nodata / clouds: an invalid neighbour is not bare
    own = cand & valid
    got = KE.edge_guard(own, KE.pad_false(own), 8)
    erosion = np.stack([ndimage.binary_erosion(m, np.ones((3, 3)), border_value=0) for m in own])
    np.testing.assert_array_equal(got, erosion)
    assert not got[:, 0].any() and not got[:, :, -1].any()  # the edge of the data: never 8 bare neighbours
    # a single pixel with 5 of its 8 neighbours bare (and itself)
    one = np.ones((1, 1, 1), bool)
    frame = np.ones((1, 3, 3), bool)
    frame[0, 0, :] = False  # top-left, top, top-right not bare
    assert KE.edge_guard(one, frame, 5)[0, 0, 0]
    assert not KE.edge_guard(one, frame, 6)[0, 0, 0]
    assert not KE.edge_guard(~one, frame, 0)[0, 0, 0]  # not a candidate: never kept


def test_kernel_rejects_bad_shapes_and_counts():
    cand = np.zeros((2, 4, 4), bool)
    with pytest.raises(ValueError, match="Y \\+ 2"):
        KE.edge_guard(cand, np.zeros((2, 4, 4), bool), 3)
    with pytest.raises(ValueError, match="0..8"):
        KE.edge_guard(cand, KE.pad_false(cand), 9)


def test_ring_round_trip():
    a = np.arange(3 * 6 * 7).reshape(3, 6, 7)
    r = ring_of(a)
    assert r.shape == (3, 1, 2 * 7 + 2 * 4)
    np.testing.assert_array_equal(framed(a[:, 1:-1, 1:-1], r), a)


# ----------------------------------------------------------------------------- the pipeline
@pytest.fixture(scope="module")
def archive(sim_archive):
    """The session's simulated archive (96 px, v1 spectra), used over a four-month window."""
    return sim_archive


def _opts(sim, **kw):
    return dict(start=START, end=END, crs=f"EPSG:{sim.epsg}", worldcover=sim.worldcover_path, **kw)


@pytest.fixture(scope="module")
def flags(archive):
    """Flags of the archive with the dry guard, without and with ``edge_guard=6``."""
    from soilsuite.pipeline.composite import observation_flags

    return tuple(observation_flags(archive.catalog_path, **_opts(archive, dry_guard=0.12, edge_guard=n))["flags"].values
                 for n in (None, 6))


def test_flags_are_the_reference_edge_guard_of_the_plain_flags(flags):
    plain, got = flags
    cand = (plain & FLAG_BELOW) > 0  # valid, selector and dry guard
    expect = KE.edge_guard_reference(cand, KE.pad_false(cand), 6)  # outside the archive: not bare
    np.testing.assert_array_equal((got & FLAG_BELOW) > 0, expect)
    np.testing.assert_array_equal((got & KP.FLAG_EDGE) > 0, cand & ~expect)
    np.testing.assert_array_equal(got & FLAG_VALID, plain & FLAG_VALID)
    assert 0 < (cand & ~expect).sum() < cand.sum()  # the guard has work and keeps something


@pytest.fixture(scope="module")
def layouts(archive, tmp_path_factory):
    """Runs with --edge-guard 6 and --provenance: one tile, and 2 x 2 tiles of 48 px."""
    from soilsuite.pipeline.composite import composite

    root = tmp_path_factory.mktemp("edge_runs")
    out = {}
    for name, ts in (("one", 1024), ("tiles", 64)):
        out[name] = composite(archive.catalog_path, out=root / name, tile_size=ts, scheduler="sync",
                              provenance=True, **_opts(archive, dry_guard=0.12, edge_guard=6))
    return root, out


def test_two_tile_layouts_give_identical_products(layouts):
    root, ds = layouts
    assert json.loads((root / "tiles" / "run.json").read_text())["plan"]["tiles"] > 1
    assert json.loads((root / "one" / "run.json").read_text())["plan"]["tiles"] == 1
    for v in ds["one"].data_vars:
        np.testing.assert_array_equal(ds["tiles"][v].values, ds["one"][v].values, err_msg=v)


@pytest.fixture(scope="module")
def loaded(archive):
    """The archive's kernel inputs as one block (with the edge guard's ring) and its config."""
    from soilsuite.pipeline.composite import (
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.sources import stac as S

    cfg = build_config(source=str(archive.catalog_path), out=".", **_opts(archive, dry_guard=0.12, edge_guard=6))
    _, sel = select_items(cfg)
    gb = target_geobox(cfg, sel.items)
    return cfg, load_tile_inputs(sel.items, S.resolve_assets(sel.items), gb, cfg, cfg.mask.dilation_px // 2)


def test_without_the_ring_tile_borders_differ(loaded):
    """The halo matters: classifying two halves of the grid without their ring changes the result
    along the cut (so the layout test above can fail)."""
    from soilsuite.pipeline.block import TileInputs, classify_inputs

    cfg, inp = loaded
    whole = classify_inputs(inp, cfg)[1]
    half = inp.valid.shape[-1] // 2
    parts = [classify_inputs(TileInputs(inp.meta, np.ascontiguousarray(inp.refl[..., s]), inp.valid[..., s],
                                        inp.threshold[:, s], inp.never_bare[:, s], inp.other[:, s]), cfg)[1]
             for s in (slice(0, half), slice(half, None))]
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1)[..., : half - 1], whole[..., : half - 1])
    assert (np.concatenate(parts, axis=-1)[..., half - 1: half + 1] != whole[..., half - 1: half + 1]).any()


@pytest.mark.parametrize("selector", ["geos3", "barest", "geomedian"])
def test_any_selector_composes_with_the_edge_guard(loaded, selector):
    """The guard acts on whatever the selector chose (geomedian: the observations fed to it)."""
    from soilsuite.pipeline.block import classify_inputs

    cfg, inp = loaded

    def with_(**kw):
        bare = cfg.bare.model_copy(update={"selector": selector, "threshold": 0.2, **kw})
        return classify_inputs(inp, cfg.model_copy(update={"bare": bare}))[1]

    plain, got = with_(edge_guard=None), with_(edge_guard=4)
    cand = (plain & FLAG_BELOW) > 0
    ring = inp.aux["edge_ring"]
    assert ring.valid.shape == (len(inp.valid), 1, 2 * (inp.valid.shape[2] + 2) + 2 * inp.valid.shape[1])
    expect = KE.edge_guard_reference(cand, KE.pad_false(cand), 4)  # the ring lies outside the archive: no data
    assert not ring.valid.any()
    np.testing.assert_array_equal((got & FLAG_BELOW) > 0, expect)
    assert 0 < (cand & ~expect).sum() < cand.sum()


def test_provenance_counts_the_edge_guard_and_adds_up(layouts, flags):
    root, ds = layouts
    out = root / "tiles"
    with rasterio.open(out / "PROVENANCE.tif") as src:
        prov = src.read().astype(np.int64)
        assert src.descriptions == KP.RULES
    with rasterio.open(out / "BSC.tif") as src:
        bsc = src.read(1)
    with rasterio.open(out / "VPC.tif") as src:
        vpc = src.read(1)
    n_obs = prov.sum(0)
    assert (n_obs == n_obs.flat[0]).all()  # every pixel: every solar day of the search
    np.testing.assert_array_equal(prov[KP.BARE], bsc)
    np.testing.assert_array_equal(prov[KP.SELECTOR:].sum(0), vpc)
    assert prov[KP.EDGE_GUARD].sum() > 0
    # the edge guard's count is the observations the guard removed (flags of the same options)
    fl = flags[1]
    np.testing.assert_array_equal(prov[KP.EDGE_GUARD], ((fl & KP.FLAG_EDGE) > 0).sum(0))
    np.testing.assert_array_equal(prov[KP.BARE], ((fl & FLAG_BARE) > 0).sum(0))


def test_rule_codes_with_the_edge_flag_equal_the_reference():
    rng = np.random.default_rng(8)
    codes = rng.choice([KP.PASS, KP.PASS, KP.NO_OBSERVATION, 1, 2], size=(9, 4, 5)).astype(np.uint8)
    flags = rng.integers(0, 128, size=codes.shape).astype(np.uint8)
    flags[codes == KP.PASS] |= FLAG_VALID
    np.testing.assert_array_equal(KP.rule_codes(codes, flags), KP.rule_codes_reference(codes, flags))
    assert (KP.rule_codes(codes, flags) == KP.EDGE_GUARD).any()


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("value", ["9", "-1"])
def test_cli_refuses_an_edge_guard_outside_0_8(value, tmp_path):
    res = CliRunner().invoke(app, ["composite", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"),
                                   "--start", "2021-01-01", "--end", "2021-02-01", "--edge-guard", value])
    assert res.exit_code == 2, res.output
    assert "edge_guard" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_compute_refuses_the_edge_guard_across_spatial_chunks(archive):
    """soilsuite.compute has no halo between chunks: one clear error, before any data is read."""
    import odc.stac

    import soilsuite
    from soilsuite.errors import ConfigError
    from soilsuite.sources import stac as S

    items = S.search_items(archive.catalog_path, start=START, end=END)
    assets = S.resolve_assets(items)
    cube = odc.stac.load(items, bands=list(assets.values()), crs=f"EPSG:{archive.epsg}", resolution=20,
                         groupby="solar_day", chunks={"x": 48, "y": 48})
    with pytest.raises(ConfigError, match="edge_guard: soilsuite.compute passes no neighbours between spatial chunks"):
        soilsuite.compute(cube, items=items, edge_guard=6)


def test_exact_period_blue_filter_slices_the_ring(loaded):
    """``--period-blue-filter exact`` classifies each period alone: the ring goes with its dates,
    and the per-observation decision (selector, dry guard, edge guard) is the window's."""
    from soilsuite.pipeline.block import _stitched_flags, classify_inputs

    cfg, inp = loaded
    period = (np.arange(len(inp.meta.dates)) % 3).astype(np.int32)
    stitched = _stitched_flags(inp, cfg, period, 3)
    window = classify_inputs(inp, cfg)[1]
    for bit in (FLAG_VALID, FLAG_BELOW, KP.FLAG_EDGE):
        np.testing.assert_array_equal(stitched & bit, window & bit)
    assert (window & KP.FLAG_EDGE).any()
