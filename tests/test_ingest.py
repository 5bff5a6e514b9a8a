"""``soilsuite ingest`` and ``composite CUBE.zarr`` (sources/cube.py, ingest.py; docs/ingest.md).

One tiny simulated archive (40 x 40 px, three months) is ingested by the CLI and composited
from the archive and from the cube: the product files must be byte-identical; the cube's
values are checked against the archive's COGs read directly with rasterio; bad input exits 2
with one line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite import cli

START, END = "2021-04-01", "2021-06-30"
RUN = dict(scheduler="sync", tile_size=64)


def _cli(*argv: str):
    return CliRunner().invoke(cli.app, [str(a) for a in argv])


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The archive, its cube (by the CLI) and the composites from both."""
    from soilsuite.pipeline.composite import composite
    from soilsuite.sources.simulate import simulate

    base = tmp_path_factory.mktemp("ingest")
    sim = simulate(base / "archive", size=40, start=dt.date(2021, 4, 1), end=dt.date(2021, 6, 30), seed=11)
    cube = base / "cube.zarr"
    res = _cli("ingest", sim.catalog_path, "--out", cube, "--start", START, "--end", END, "--chunk-px", "32",
               "--quiet")
    assert res.exit_code == 0, res.output
    composite(sim.catalog_path, out=base / "from_archive", start=START, end=END, **RUN)
    composite(cube, out=base / "from_cube", start=START, end=END, **RUN)
    return dict(sim=sim, base=base, cube=cube)


def test_composite_from_cube_is_byte_identical(case):
    a, b = case["base"] / "from_archive", case["base"] / "from_cube"
    tifs = sorted(p.name for p in a.glob("*.tif"))
    assert {"VPC.tif", "BSC.tif", "SRC_MEAN.tif", "MREF_STD.tif", "MASK.tif"} <= set(tifs)
    assert sorted(p.name for p in b.glob("*.tif")) == tifs
    for name in tifs:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with rasterio.open(a / "VPC.tif") as src:
        assert src.read(1).max() > 0  # the products hold observations
    ra, rb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert ra["observations"] == rb["observations"]  # same days, items, sun zenith
    assert ra["grid"] == rb["grid"]


def test_cube_metadata_and_values(case):
    import xarray as xr
    import zarr
    from pyproj import CRS

    from soilsuite.sources.cube import open_cube

    info = open_cube(case["cube"])
    run = json.loads((case["base"] / "from_archive" / "run.json").read_text())
    assert CRS.from_user_input(info.crs) == CRS.from_epsg(case["sim"].epsg)
    assert list(info.transform) == pytest.approx(run["grid"]["transform"])
    assert list(info.shape) == run["grid"]["shape"]
    g = zarr.open_group(str(case["cube"]), mode="r")
    b11 = g["B11"]
    assert b11.dtype == np.int16 and b11.fill_value == -32768 and b11.attrs["scale_factor"] == 1e-4
    assert b11.chunks == (1, 32, 32)
    assert g["SCL"].shape[1:] == (info.shape[0] + 2 * info.halo_px, info.shape[1] + 2 * info.halo_px)
    assert "crs_wkt" in g["spatial_ref"].attrs and g["B02"].attrs["grid_mapping"] == "spatial_ref"
    ds = xr.open_zarr(case["cube"])  # CF decoding: reflectance 0-1, NaN = nodata, dates
    assert ds["B11"].dtype == np.float64 and ds.sizes["time"] == len(run["observations"])
    assert str(ds["solar_day"].values[0])[:10] == run["observations"][0]["date"]
    # the values: an archive COG read directly (20 m band B11 = swir16), DN + BOA_ADD_OFFSET
    days = [str(d)[:10] for d in ds["solar_day"].values]
    n_items = g["n_items"][:]
    t = next(i for i in range(len(days)) if n_items[i] == 1)
    item_id = run["observations"][t]["items"][0]
    item = json.loads(next(Path(case["sim"].out).rglob(f"{item_id}.json")).read_text())
    href = Path(item["assets"]["swir16"]["href"])
    href = href if href.is_absolute() else next(Path(case["sim"].out).rglob(f"{item_id}.json")).parent / href
    offset = round(item["assets"]["swir16"]["raster:bands"][0].get("offset", 0) / 1e-4)
    with rasterio.open(href) as src:
        x0, y0 = info.transform[2], info.transform[5]
        win = rasterio.windows.from_bounds(x0, y0 + info.transform[4] * info.shape[0],
                                           x0 + info.transform[0] * info.shape[1], y0, transform=src.transform)
        dn = src.read(1, window=win.round_offsets().round_lengths(), boundless=True, fill_value=0).astype(np.int32)
    cube_val = b11[t]
    have = dn != 0
    assert have.mean() > 0.5
    np.testing.assert_array_equal(cube_val[have], dn[have] + offset)
    assert (cube_val[~have] == -32768).all()


def test_cube_reads_decode_chunks_in_batches(case):
    """The cube's arrays are opened with zarr's codec pipeline batching READ_BATCH chunks (the
    read's CPU, docs/performance.md) and the setting does not leak into zarr's global config;
    the tile read equals plain zarr slicing of the same window."""
    import zarr

    from soilsuite.pipeline.composite import build_config, select_items, target_geobox
    from soilsuite.sources import cube as C
    from soilsuite.sources.stac import observation_meta

    before = zarr.config.get("codec_pipeline.batch_size")
    path = str(case["cube"])
    arrays, index = C._arrays(path, (case["cube"] / "zarr.json").stat().st_mtime_ns)
    assert C.READ_BATCH > 1 and zarr.config.get("codec_pipeline.batch_size") == before
    for name, arr in arrays.items():  # zarr keeps the pipeline it built at open (private attribute)
        assert arr._async_array.codec_pipeline.batch_size == C.READ_BATCH, name
    cfg = build_config(source=path, start=START, end=END, out=case["base"] / "unused")
    items = select_items(cfg)[1].items
    gb = target_geobox(cfg, items)
    meta = observation_meta(items, C.CUBE_ASSETS, C.SENSOR)
    refl, _ = C.read_tile(items, gb[5:30, 3:40], 0, meta)
    plain = zarr.open_group(path, mode="r")
    info = C.open_cube(path)
    r0, c0 = C._window(info, gb[5:30, 3:40])
    tidx = [index[(d - C.EPOCH).days] for d in meta.dates]
    for b, name in enumerate(C.BANDS):
        np.testing.assert_array_equal(refl[:, b], plain[name].oindex[tidx, r0:r0 + 25, c0:c0 + 37], err_msg=name)


def test_area_option_subsets_the_cube(case):
    """A bbox inside the cube: the products are the full products' window (the cube holds the
    SCL around it, so even the cloud dilation at the bbox edge is the same)."""
    from soilsuite.pipeline.composite import composite

    sim = case["sim"]
    w, s, e, n = sim.bbox_lonlat
    bbox = (w + 0.3 * (e - w), s + 0.3 * (n - s), w + 0.7 * (e - w), s + 0.7 * (n - s))
    out = case["base"] / "bbox"
    composite(case["cube"], out=out, start=START, end=END, bbox=bbox, **RUN)
    full = case["base"] / "from_cube"
    for name in ("VPC", "BSC", "SRC_MEAN", "MREF_STD", "MASK"):
        with rasterio.open(out / f"{name}.tif") as a, rasterio.open(full / f"{name}.tif") as b:
            col, row = ~b.transform * (a.transform.c, a.transform.f)
            assert col == round(col) and row == round(row) and a.width < b.width
            win = rasterio.windows.Window(round(col), round(row), a.width, a.height)
            np.testing.assert_array_equal(a.read(), b.read(window=win), err_msg=name)
    # the time options subset it too: the run's days are the cube's days of the shorter window
    from soilsuite.pipeline.composite import build_config, select_items

    _, sel = select_items(build_config(source=str(case["cube"]), start="2021-05-01", end="2021-05-31", out=out))
    days = sorted({str(it.properties["soilsuite:solar_day"]) for it in sel.items})
    all_obs = json.loads((full / "run.json").read_text())["observations"]
    may = [o["date"] for o in all_obs if o["date"].startswith("2021-05")]
    assert len(days) == len(may) > 0
    assert all(dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) == dt.date.fromisoformat(m)
               for d, m in zip(days, may, strict=True))


def _one_line(res, pattern: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert any(re.search(pattern, " ".join(lines)) for _ in [0]), res.output
    assert sum(ln.startswith("error:") for ln in lines) == 1, res.output


def test_refuses_to_overwrite(case, tmp_path):
    cube = case["cube"]
    before = sorted((p.relative_to(cube).as_posix(), p.stat().st_mtime_ns) for p in cube.rglob("*") if p.is_file())
    res = _cli("ingest", case["sim"].catalog_path, "--out", cube, "--start", START, "--end", END, "--quiet")
    _one_line(res, r"cube\.zarr.*(already|--overwrite)")
    after = sorted((p.relative_to(cube).as_posix(), p.stat().st_mtime_ns) for p in cube.rglob("*") if p.is_file())
    assert before == after
    # a folder of the user's is never written into
    mine = tmp_path / "mine.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    res = _cli("ingest", case["sim"].catalog_path, "--out", mine, "--start", START, "--end", END, "--quiet",
               "--overwrite")
    _one_line(res, r"mine\.zarr")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def _comp(src, out, *extra):
    return _cli("composite", src, "--out", out, "--start", START, "--end", END, "--scheduler", "sync", "--quiet",
                *extra)


def test_bad_cubes(case, tmp_path):
    import zarr

    # a Zarr store that ingest did not write
    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w", zarr_format=3).create_array("a", shape=(2,), dtype="int8")
    _one_line(_comp(other, tmp_path / "o1"), r"other\.zarr: a Zarr store that soilsuite ingest did not write")
    # no such store
    _one_line(_comp(tmp_path / "missing.zarr", tmp_path / "o2"), r"missing\.zarr: no such Zarr store")
    # a cube missing a variable
    broken = tmp_path / "broken.zarr"
    shutil.copytree(case["cube"], broken)
    shutil.rmtree(broken / "B03")
    _one_line(_comp(broken, tmp_path / "o3"), r"broken\.zarr: missing variable\(s\) B03")
    # another grid than the cube's
    _one_line(_comp(case["cube"], tmp_path / "o4", "--crs", "EPSG:3035"), r"--crs: the cube .* EPSG:3035")
    _one_line(_comp(case["cube"], tmp_path / "o5", "--resolution", "30"), r"--resolution: the cube .* 20 m pixels")
    # ingest of a cube
    _one_line(_cli("ingest", case["cube"], "--out", tmp_path / "c2.zarr", "--start", START, "--end", END),
              r"is a Zarr cube; ingest reads an archive")
    for d in ("o1", "o2", "o3", "o4", "o5", "c2.zarr"):
        assert not (tmp_path / d).exists(), d


def test_partial_days_warn(case):
    """A stricter scene filter than the ingest's drops some items of a fused day: said, not hidden."""
    import warnings

    from soilsuite.pipeline.composite import build_config, select_items, target_geobox
    from soilsuite.sources.cube import CubeWarning, check_cube_run

    def check(**kw):
        cfg = build_config(source=str(case["cube"]), start=START, end=END, out=case["base"] / "x", **kw)
        _, sel = select_items(cfg)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            check_cube_run(cfg, sel.items, target_geobox(cfg, sel.items))
        return [str(x.message) for x in w if issubclass(x.category, CubeWarning)]

    assert check() == []  # the ingest's own filter: every day whole
    msgs = check(max_cloud_cover=30.0)
    assert len(msgs) == 1 and "keeps only some items of" in msgs[0]
