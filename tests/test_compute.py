"""soilsuite.compute (Dataset -> Dataset on a lazy odc-stac cube) equals the CLI's products."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

import soilsuite
from soilsuite import products as P

# A winter window: two calendar years (periods) and both BOA_ADD_OFFSETs (0 before 2022-01-25,
# -1000 from it); the low winter sun needs the relaxed sun options to keep observations.
START, END = dt.date(2021, 11, 20), dt.date(2022, 2, 20)
OPTIONS = dict(min_sun_elevation=5.0, max_sun_zenith=85.0, threshold=0.3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return soilsuite.simulate(tmp_path_factory.mktemp("compute") / "archive", size=64, start=START, end=END, seed=11)


@pytest.fixture(scope="module")
def cli_run(archive, tmp_path_factory):
    """The composite run of the archive (window and per-year products) as the CLI does it."""
    out = tmp_path_factory.mktemp("compute_run") / "out"
    soilsuite.composite(archive.catalog_path, start=START, end=END, out=out, periods="year", scheduler="sync",
                        worldcover=archive.worldcover_path, **OPTIONS)
    return out


@pytest.fixture(scope="module")
def loaded(archive, cli_run):
    """The user's path: STAC items -> odc.stac.load(chunks=32 px) on the run's grid -> compute.

    Returns the computed products, the items and the cube in memory (read in the same dask
    graph, so the archive is read once)."""
    import dask
    import odc.stac
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from soilsuite.config import SceneFilter
    from soilsuite.sentinel2 import BANDS
    from soilsuite.sources import stac as S

    grid = json.loads((cli_run / "run.json").read_text())["grid"]
    geobox = GeoBox(tuple(grid["shape"]), Affine(*grid["transform"]), grid["crs"])
    items = S.search_items(archive.catalog_path, start=START, end=END)
    items = S.filter_scenes(items, SceneFilter(min_sun_elevation=OPTIONS["min_sun_elevation"])).items
    assets = S.resolve_assets(items)  # Earth Search keys: "blue", ..., "scl"
    resampling = {assets[b]: "average" for b in BANDS} | {assets["SCL"]: "nearest"}
    cube = odc.stac.load(items, bands=list(assets.values()), geobox=geobox, groupby="solar_day",
                         resampling=resampling, chunks={"x": 32, "y": 32})
    assert cube[assets["B04"]].chunks[1:] == ((32, 32), (32, 32))  # several chunks: the halo crosses edges
    lazy = soilsuite.compute(cube, items=items, periods="year", worldcover=archive.worldcover_path,
                             max_sun_zenith=OPTIONS["max_sun_zenith"], threshold=OPTIONS["threshold"])
    assert lazy["SRC_MEAN"].chunks is not None  # lazy until computed
    ds, cube_np = dask.compute(lazy, cube)
    return ds, items, cube_np


def _assert_equals_cli(ds, out, periods):
    """Every product of the window and of each period, encoded as the COGs, equals the COG."""
    assert periods == ["2021", "2022"]
    n = 0
    for label, folder in [("window", out), *((p, out / p) for p in periods)]:
        ref = soilsuite.open_products(folder, decode=False)
        assert set(ref.data_vars) == set(P.COMPOSITE_PRODUCTS)
        for name in ref.data_vars:
            var = name if label == "window" else f"{name}_{label}"
            got = ds[var]
            assert got.dtype == np.float32 and got.attrs["product"] == name and got.attrs["period"] == label
            enc = P.get(name).encode(got.values)
            assert enc.dtype == ref[name].dtype and enc.shape == ref[name].shape
            np.testing.assert_array_equal(enc, ref[name].values, err_msg=f"{label} {name}")
            n += 1
    assert n == 3 * len(P.COMPOSITE_PRODUCTS)


def test_compute_equals_cli_products(loaded, cli_run):
    ds, _, _ = loaded
    rec = json.loads((cli_run / "run.json").read_text())
    assert ds.attrs["periods"] == rec["periods"]
    assert ds.attrs["n_observations"] == len(rec["observations"])
    assert {o["boa_add_offset_dn"] for o in rec["observations"]} == {0, -1000}  # both offsets exercised
    _assert_equals_cli(ds, cli_run, ds.attrs["periods"])
    # not a trivial comparison: bare pixels with a composite, vegetation, other surfaces
    mask = ds["MASK"].values
    assert {1, 2, 3} <= set(np.unique(mask).tolist())
    assert np.isfinite(ds["SRC_MEAN"].values).any() and np.isnan(ds["SRC_MEAN"].values).any()


def test_compute_grid_and_attrs(loaded, cli_run):
    ds, _, _ = loaded
    ref = soilsuite.open_products(cli_run)
    gb = ds.odc.geobox
    assert gb is not None and gb.crs.epsg == ref.attrs["epsg"]
    assert list(gb.affine)[:6] == pytest.approx(ref.attrs["transform"])
    assert ds["SRC_MEAN"].dims == ("band", "y", "x") and ds["VPC"].dims == ("y", "x")
    assert list(ds["band"].values) == list(P.get("SRC_MEAN").bands)
    np.testing.assert_array_equal(ds["x"].values, ref["x"].values)
    a = ds["SRC_MEAN_2021"].attrs
    spec = P.get("SRC_MEAN")
    assert (a["units"], a["stored_dtype"], a["stored_nodata"], a["stored_scale"]) == (
        spec.unit, spec.dtype, spec.nodata, spec.scale)
    assert np.isnan(a["nodata"])


def test_compute_16px_chunks_explicit_offsets(loaded, cli_run, archive):
    """Chunks of 16 px (9 chunk edges per axis crossing the 5 px halo), with the offsets and sun
    zenith given as arrays instead of items: the same products."""
    from soilsuite.sources import stac as S

    _, items, cube_np = loaded
    meta = S.observation_meta(items, S.resolve_assets(items))
    cube16 = cube_np.chunk({"time": 1, "x": 16, "y": 16})
    config = {"periods": "year", "max_sun_zenith": OPTIONS["max_sun_zenith"], "threshold": OPTIONS["threshold"]}
    lazy = soilsuite.compute(cube16, config, offset_dn=meta.offset_dn, sun_zenith=meta.sun_zenith,
                             worldcover=archive.worldcover_path)
    assert lazy["VPC"].chunks == ((16,) * 4, (16,) * 4)
    ds = lazy.compute()
    _assert_equals_cli(ds, cli_run, ds.attrs["periods"])


def test_compute_per_pixel_dataarrays(loaded, cli_run, archive):
    """threshold and worldcover as (y, x) DataArrays on the cube's grid: the same products
    (NaN in the threshold falls back to the scalar threshold option)."""
    import xarray as xr

    from soilsuite.sources.rasters import read_on_grid

    _, items, cube_np = loaded
    gb = cube_np.odc.geobox
    coords = {"y": cube_np["y"], "x": cube_np["x"]}
    wc = xr.DataArray(read_on_grid(archive.worldcover_path, gb, dtype="uint8", fill=0), dims=("y", "x"), coords=coords)
    thr = np.full(gb.shape.yx, OPTIONS["threshold"], np.float32)
    thr[::7] = np.nan
    thr = xr.DataArray(thr, dims=("y", "x"), coords=coords)
    config = {"threshold": OPTIONS["threshold"], "max_sun_zenith": OPTIONS["max_sun_zenith"]}  # NaN -> 0.3
    ds = soilsuite.compute(cube_np.chunk({"x": 32, "y": 32}), config, items=items, periods="year", worldcover=wc,
                           threshold=thr.transpose("x", "y")).compute()
    _assert_equals_cli(ds, cli_run, ds.attrs["periods"])


def test_compute_refuses_bad_input(loaded):
    from soilsuite.errors import ConfigError, InputError

    _, items, cube_np = loaded
    with pytest.raises(ConfigError, match="offset"):
        soilsuite.compute(cube_np)
    with pytest.raises(ConfigError, match="unknown option 'tile_size'"):
        soilsuite.compute(cube_np, items=items, tile_size=256)
    with pytest.raises(InputError, match="no variable for band B11"):
        soilsuite.compute(cube_np.drop_vars("swir16"), items=items)
    with pytest.raises(InputError, match="solar days"):
        soilsuite.compute(cube_np, items=items[: len(items) // 2])
