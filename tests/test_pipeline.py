"""The compositor end to end on a simulated archive: truth metrics, outputs, refusal, resume, cluster.

The archive is the session fixture ``sim_archive`` (tests/conftest.py: 96 x 96 px at 20 m,
2021-2022, 5-day revisit, seed 3). Thresholds on the truth metrics come from what the method
achieves on this archive (measured values are in the comments), with a margin; they are set so
that a broken stage (validity mask, offset, PV+IR2, blue filter, accumulators, grid alignment)
fails them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite import products as P
from soilsuite.cli import app
from soilsuite.errors import OutputExistsError
from soilsuite.evaluate import evaluate
from soilsuite.io.cog import validate_cog
from soilsuite.io.stac import validate_output_catalog
from soilsuite.pipeline.composite import composite, observation_flags

START, END = dt.date(2021, 1, 1), dt.date(2022, 12, 31)
SOILSUITE = str(Path(sys.executable).with_name("soilsuite"))


def _opts(sim, **kw):
    return dict(start=START, end=END, crs=f"EPSG:{sim.epsg}", worldcover=sim.worldcover_path,
                periods="year", tile_size=64, **kw)


@pytest.fixture(scope="module")
def run_local(sim_archive, tmp_path_factory):
    """The reference run: embedded LocalCluster (2 workers), 64 px tiles, per-year products."""
    out = tmp_path_factory.mktemp("products") / "out"
    ds = composite(sim_archive.catalog_path, out=out, **_opts(sim_archive, n_workers=2))
    return out, ds


@pytest.fixture(scope="module")
def metrics(sim_archive, run_local):
    flags = observation_flags(sim_archive.catalog_path, start=START, end=END, crs=f"EPSG:{sim_archive.epsg}",
                              worldcover=sim_archive.worldcover_path)
    m = evaluate(run_local[0], sim_archive.out, flags=flags)
    m["flags_sha256"] = hashlib.sha256(flags["flags"].values.tobytes()).hexdigest()
    print({k: v for k, v in m.items() if k != "confusion"})
    print(m["confusion"])
    return m


# ----------------------------------------------------------------------------- byte identity
#: Checksums recorded before the seams refactor (issue 13): refactors keep every byte.
RECORDED = json.loads((Path(__file__).parent / "data" / "product_checksums.json").read_text())


def test_products_and_flags_byte_identical_to_recorded(run_local, metrics):
    out = run_local[0]
    got = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.tif"))}
    assert got == RECORDED["products"]
    assert metrics["flags_sha256"] == RECORDED["flags"]


# ----------------------------------------------------------------------------- truth
def test_bare_observations_precision_and_recall(metrics):
    """Measured on this archive: precision 0.59, recall 0.40, recall_valid 0.69.

    The truth's "really bare" is strict (soil fraction >= 85 %, clear). PV+IR2 <= 0.2 also takes
    observations dominated by dry vegetation (stubble, straw, residue; more than half of the
    false positives carry the truth's dry-vegetation flag) and partly green ones (emergence,
    field edges): SPEC's "where the method is weak", reproduced by the simulator on purpose.
    So precision against the strict truth is about 0.6, far below the issue's 0.95 aim with the
    SPEC's parameters; ``--max-nbr2`` (next test) is the lever for users who need a purer
    composite. Recall is limited by design: the 11 x 11 dilation drops clear observations next
    to clouds, and moist soil rises above the threshold.
    """
    assert metrics["precision"] >= 0.5, metrics["precision"]
    assert metrics["recall_valid"] >= 0.55, metrics["recall_valid"]
    assert metrics["recall"] >= 0.3, metrics["recall"]


def test_dry_vegetation_filter_trades_recall_for_precision(sim_archive, run_local, metrics):
    """The optional NBR2 limit (not in SCMaP) removes stubble/residue observations."""
    flags = observation_flags(sim_archive.catalog_path, start=START, end=END, crs=f"EPSG:{sim_archive.epsg}",
                              worldcover=sim_archive.worldcover_path, max_nbr2=0.1)
    assert hashlib.sha256(flags["flags"].values.tobytes()).hexdigest() == RECORDED["flags_max_nbr2_0.1"]
    m = evaluate(run_local[0], sim_archive.out, flags=flags)
    assert m["precision"] > metrics["precision"] + 0.1, (m["precision"], metrics["precision"])
    assert m["recall"] < metrics["recall"]


def test_src_mean_close_to_true_soil_spectrum(metrics):
    """Measured: RMSE 0.008 (B02) rising to 0.033 (B12); bias -0.003 (B04), -0.025 (B12).

    SRC_MEAN averages moist and dry bare observations and some residue, so it is darker than
    the true *dry* soil spectrum, most in the SWIR (moisture darkening); the limits allow that
    but would catch a missed BOA_ADD_OFFSET (+0.1 on 2022 scenes) or a grid shift.
    """
    assert metrics["composite_share"] > 0.6
    for band, rmse in metrics["rmse"].items():
        assert rmse < (0.05 if band in ("B11", "B12") else 0.03), (band, rmse)
    assert abs(metrics["bias"]["B04"]) < 0.015
    assert abs(metrics["bias"]["B12"]) < 0.04


def test_bsf_bias_on_cropland(metrics):
    """Measured: +0.02 (residue observations counted as bare, cloud-adjacent bare ones lost)."""
    assert abs(metrics["bsf_bias"]) < 0.06, metrics["bsf_bias"]
    assert metrics["bsf_mae"] < 0.12, metrics["bsf_mae"]


def test_mask_agrees_with_true_classes(metrics):
    """Measured: cropland 0.76 as MASK 1 (the rest: fields under grass-like crops or cover
    crops for both years -> 2, or 1-2 bare observations -> 0); grassland 0.97, forest 0.99 as
    2; water 0.81 as 3 (narrow river pixels mixed with banks; WorldCover label noise)."""
    share = metrics["mask_share"]
    assert share["cropland"] > 0.65, share
    assert share["forest"] > 0.95, share
    assert share["grassland"] > 0.9, share
    assert share["water"] > 0.7, share
    conf = metrics["confusion"]
    assert conf.loc["forest", 1] == 0 and conf.loc["grassland", 1] == 0  # never bare


# ----------------------------------------------------------------------------- outputs
def test_products_are_valid_cogs_with_catalogue_metadata(run_local):
    out, ds = run_local
    years = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name.isdigit())
    assert years == ["2021", "2022"]
    for folder in (out, out / "2021"):
        for name in P.COMPOSITE_PRODUCTS:
            path = folder / f"{name}.tif"
            ok, errors, _ = validate_cog(path)
            assert ok, (path, errors)
            spec = P.get(name)
            with rasterio.open(path) as src:
                assert src.dtypes[0] == spec.dtype
                assert (np.isnan(src.nodata) if np.isnan(spec.nodata) else src.nodata == spec.nodata)
                assert src.scales[0] == pytest.approx(spec.scale)
                assert src.overviews(1) or max(src.shape) <= 512, path  # no overviews below one block
                if spec.is_spectral:
                    assert src.descriptions == P.BANDS
    assert set(ds.data_vars) >= set(P.COMPOSITE_PRODUCTS)
    assert {"quicklooks", "items"} <= {p.name for p in out.iterdir()}
    assert len(list((out / "quicklooks").glob("*.png"))) >= 4


def test_years_merge_into_the_window(run_local):
    out, _ = run_local
    def counts(folder, name):
        with rasterio.open(folder / f"{name}.tif") as src:
            return src.read(1).astype(int)
    for name in ("VPC", "BSC"):
        np.testing.assert_array_equal(counts(out, name), counts(out / "2021", name) + counts(out / "2022", name))


def test_stac_output_and_run_record(run_local, sim_archive):
    out, _ = run_local
    ok, errors = validate_output_catalog(out)
    assert ok, errors
    rec = json.loads((out / "run.json").read_text())
    assert rec["config"]["bare"]["threshold"] == 0.2
    ids = {i for o in rec["observations"] for i in o["items"]}
    assert ids <= set(sim_archive.item_ids) and len(ids) > 50
    offsets = {o["date"][:4]: o["boa_add_offset_dn"] for o in rec["observations"] if o["date"] < "2022-01-01"}
    assert set(offsets.values()) == {0}
    assert {o["boa_add_offset_dn"] for o in rec["observations"] if o["date"] >= "2022-01-25"} == {-1000}


def test_run_plan_in_run_record(run_local):
    """The plan decided once at the start is in run.json and agrees with the summary."""
    from soilsuite.io.layout import run_record_path, work_dir

    out, ds = run_local
    rec = json.loads(run_record_path(out).read_text())
    plan = rec["plan"]
    summary = json.loads(ds.attrs["summary"])
    assert plan["tile_side"] == summary["tile_side"] == 64
    assert plan["tiles"] == summary["tiles"] == 4  # 96 x 96 px in tiles of 64
    assert plan["workers"] == 2 and plan["layout"] == "single" and plan["cog_tile_px"] is None
    assert plan["grid"] == rec["grid"] and plan["periods"] == rec["periods"] == ["2021", "2022"]
    assert Path(out / plan["tile_store"]).parent.parent == work_dir(out)
    assert not work_dir(out).exists()  # the tile store is removed once the run is finished


def test_refuses_to_overwrite_without_flag(run_local, sim_archive):
    out, _ = run_local
    before = (out / "BSF.tif").read_bytes()
    # other parameters: refused
    with pytest.raises(OutputExistsError, match="--overwrite"):
        composite(sim_archive.catalog_path, out=out, **_opts(sim_archive, scheduler="sync", threshold=0.25))
    r = CliRunner().invoke(app, ["composite", str(sim_archive.catalog_path), "--out", str(out),
                                 "--start", str(START), "--end", str(END)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    # the same parameters: already complete, exit 0, nothing written (a batch retry succeeds)
    r = CliRunner().invoke(app, ["composite", str(sim_archive.catalog_path), "--out", str(out),
                                 "--start", str(START), "--end", str(END), "--crs", f"EPSG:{sim_archive.epsg}",
                                 "--worldcover", str(sim_archive.worldcover_path), "--periods", "year"])
    assert r.exit_code == 0 and "already complete" in r.output, r.output
    assert (out / "BSF.tif").read_bytes() == before


def test_bad_input_is_reported(tmp_path, sim_archive):
    runner = CliRunner()
    r = runner.invoke(app, ["composite", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"),
                            "--start", "2021-01-01", "--end", "2021-12-31"])
    assert r.exit_code == 2 and "nope.json" in r.output
    r = runner.invoke(app, ["composite", str(sim_archive.catalog_path), "--out", str(tmp_path / "o"),
                            "--start", "2021-12-31", "--end", "2021-01-01"])
    assert r.exit_code == 2 and "before start" in r.output
    r = runner.invoke(app, ["composite", str(sim_archive.catalog_path), "--out", str(tmp_path / "o"),
                            "--start", "2021-01-01", "--end", "2021-12-31", "--dilation-px", "10"])
    assert r.exit_code == 2 and "dilation_px" in r.output


def test_missing_asset_file_is_named(sim_archive, tmp_path):
    import shutil

    arch = tmp_path / "archive"
    shutil.copytree(sim_archive.out, arch)
    victim = sorted(arch.glob("sentinel-2-l2a/*2021061*/red.tif"))[0]
    victim.unlink()
    r = subprocess.run([SOILSUITE, "composite", str(arch / "catalog.json"), "--out", str(tmp_path / "o"),
                        "--start", "2021-06-01", "--end", "2021-06-30", "--min-sun-elevation", "0",
                        "--max-cloud-cover", "100", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert victim.name in r.stderr and victim.parent.name in r.stderr.replace("\n", "")
    assert "Traceback" not in r.stderr


def _tifs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.tif"))}


# ----------------------------------------------------------------------------- scale: resume, cluster
def _cmd(sim, out, *extra):
    return [SOILSUITE, "composite", str(sim.catalog_path), "--out", str(out), "--start", str(START),
            "--end", str(END), "--crs", f"EPSG:{sim.epsg}", "--worldcover", str(sim.worldcover_path),
            "--periods", "year", "--tile-size", "64", "--quiet", *extra]


def test_killed_run_resumes_and_matches(run_local, sim_archive, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(sim_archive, out, "--scheduler", "sync"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tiles = out / ".work" / "tiles" / "side64"
    deadline = time.time() + 240
    while time.time() < deadline and not list(tiles.glob("*/done")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.parent.name for p in tiles.glob("*/done"))
    assert 1 <= len(done) < 4, done  # 96 px in 64 px tiles: 4 tiles, killed midway
    assert not (out / "run.json").exists()
    stamps = {d: (tiles / d / "done").stat().st_mtime_ns for d in done}

    # a different parameter set must not resume into it
    r = subprocess.run(_cmd(sim_archive, out, "--threshold", "0.25"), capture_output=True, text=True)
    assert r.returncode == 2 and "other parameters" in r.stderr
    assert {d: (tiles / d / "done").stat().st_mtime_ns for d in done} == stamps  # finished tiles untouched

    r = subprocess.run(_cmd(sim_archive, out, "--workers", "2"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "run.json").read_text())
    assert rec["summary"]["tiles_resumed"] == len(done)
    assert _tifs(out) == _tifs(run_local[0])


def test_existing_dask_cluster_gives_identical_bytes(run_local, sim_archive, tmp_path):
    """`dask scheduler` + 2 `dask worker` processes on localhost, as a user's cluster would be;
    then a second run during which one worker is killed (lost node): it finishes on the other
    worker with the same bytes."""
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1", "--memory-limit", "1GB",
                 "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                start_new_session=True))
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        out = tmp_path / "out"
        r = subprocess.run(_cmd(sim_archive, out, "--scheduler", address), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert _tifs(out) == _tifs(run_local[0])

        out2 = tmp_path / "out2"
        run = subprocess.Popen(_cmd(sim_archive, out2, "--scheduler", address), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        tiles = out2 / ".work" / "tiles" / "side64"
        deadline = time.time() + 240
        while time.time() < deadline and not list(tiles.glob("*/done")):
            time.sleep(0.05)
        os.killpg(procs[2].pid, signal.SIGKILL)  # the worker and its nanny: gone for good
        n_done = len(list(tiles.glob("*/done")))
        _, err = run.communicate(timeout=300)
        assert 1 <= n_done < 4, n_done  # the worker was lost midway (4 tiles)
        assert run.returncode == 0, err
        assert _tifs(out2) == _tifs(run_local[0])
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait(timeout=30)


def test_named_grid_tile_selects_its_items_and_extent(sim_archive, tmp_path):
    import pystac

    from soilsuite.errors import InputError
    from soilsuite.pipeline.composite import build_config, target_geobox
    from soilsuite.sources import stac as S

    items = list(pystac.read_file(str(sim_archive.catalog_path)).get_items(recursive=True))
    tiles = sorted({S.mgrs_tile(it) for it in items})
    assert len(tiles) == 2  # the simulator's main tile and the overlapping neighbour
    by_tile = {t: S.select_tile(items, "T" + t) for t in tiles}
    boxes = {t: target_geobox(build_config(source=str(sim_archive.catalog_path), start=START, end=END,
                                           out=Path("x"), mgrs=t), by_tile[t]) for t in tiles}
    main = max(boxes, key=lambda t: boxes[t].shape.x)
    other = next(t for t in tiles if t != main)
    assert (boxes[main].shape.y, boxes[main].shape.x) == tuple(sim_archive.shape)
    assert boxes[main].affine == sim_archive.transform
    assert boxes[other].shape.x == sim_archive.shape[1] // 4  # the neighbour covers the western quarter
    with pytest.raises(InputError, match=main):
        S.select_tile(items, "31TCJ")
    r = CliRunner().invoke(app, ["composite", str(sim_archive.catalog_path), "--out", str(tmp_path / "o"),
                                 "--start", str(START), "--end", str(END), "--mgrs", "31TCJ"])
    assert r.exit_code == 2 and "31TCJ" in r.output
    assert not (tmp_path / "o").exists()  # bad input is found before the output folder is made


def test_old_option_names_still_work_with_a_warning():
    """``tile`` and ``out_tile_px`` (earlier releases) are ``mgrs`` and ``cog_tile_px`` now."""
    from soilsuite.errors import ConfigError
    from soilsuite.pipeline.composite import build_config

    kw = dict(source="x", start=START, end=END, out=Path("x"))
    with pytest.warns(DeprecationWarning, match="'tile' is renamed 'mgrs'"):
        assert build_config(**kw, tile="33UUU").mgrs == "33UUU"
    with pytest.warns(DeprecationWarning, match="'out_tile_px' is renamed 'cog_tile_px'"):
        assert build_config(**kw, out_tile_px=512).cog_tile_px == 512
    with pytest.raises(ConfigError, match="give only 'mgrs'"):
        build_config(**kw, tile="33UUU", mgrs="33UUV")


def test_cli_options_take_default_and_help_from_the_config():
    """No default is written twice: each ``composite``/``export-force`` option that is a config
    field has the field's default, and its description as help (or the one-line form that
    ``cli_common`` gives the option to keep ``--help`` readable at 80 columns)."""
    import typer

    from soilsuite.cli_common import ADVANCED_HELP, SHORT_HELP
    from soilsuite.config import (
        BareOptions,
        CompositeConfig,
        EngineOptions,
        ForceExportConfig,
        MaskOptions,
        SceneFilter,
    )

    cmds = typer.main.get_command(app).commands
    for cmd, models in (("composite", (CompositeConfig, SceneFilter, MaskOptions, BareOptions, EngineOptions)),
                        ("export-force", (ForceExportConfig, SceneFilter))):
        fields = {k: f for m in models for k, f in m.model_fields.items()}
        checked = 0
        for p in cmds[cmd].params:
            if p.name in fields and not p.hidden and p.name != "source":
                f = fields[p.name]
                assert p.help in (f.description, SHORT_HELP.get(p.name), ADVANCED_HELP.get(p.name)), (cmd, p.name)
                assert p.required if f.is_required() else p.default == f.default, (cmd, p.name, p.default)
                checked += 1
        assert checked >= (30 if cmd == "composite" else 14), (cmd, checked)


def test_memory_budget_sets_workers_and_tiles():
    from soilsuite.config import EngineOptions
    from soilsuite.errors import ConfigError
    from soilsuite.pipeline.cluster import n_local_workers
    from soilsuite.pipeline.tiles import (
        MAIN_PROCESS_BYTES,
        WORKER_BASE_BYTES,
        bytes_per_pixel,
        tile_side_for_budget,
        workers_for_budget,
    )

    assert workers_for_budget("1GB", 8)[0] == 1  # a small budget: fewer workers, not tiny tiles
    n, per = workers_for_budget("16GB", 8)
    assert n == 8 and MAIN_PROCESS_BYTES + n * per <= 16e9
    for budget, n_obs in [("1GB", 40), ("2GB", 250), ("8GB", 250), ("64GB", 1250)]:
        n, _ = workers_for_budget(budget, 4)
        side = tile_side_for_budget(budget, n, n_obs, 5, 8192)
        # every worker's tile fits in its share of the budget
        assert MAIN_PROCESS_BYTES + n * (WORKER_BASE_BYTES + side**2 * bytes_per_pixel(n_obs, 5)) <= float(
            budget[:-2]) * 1e9, (budget, n_obs, side)
    with pytest.raises(ConfigError, match="too small"):
        workers_for_budget("600MB", 2)
    with pytest.raises(ConfigError, match="--workers 4"):
        n_local_workers(EngineOptions(max_memory="1GB", n_workers=4))


def test_per_tile_progress_rows():
    """Each tile in flight gets a row showing its stage (and dates read); the row goes when the
    tile is done; the overall row moves by fractions of tiles."""
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from soilsuite.pipeline import composite as C

    with Progress(TextColumn("{task.description} {task.fields[stage]}"), console=Console(file=open(os.devnull, "w"))) as p:
        overall = p.add_task("tiles", total=2, stage="")
        bars = C._TileBars(p, overall, 2, 0)
        C._LOCAL_HOOK.append(bars)
        try:
            C._report("r0000_c0001", 0)  # not on a Dask worker: the local hook gets it
            bars((123.0, {"tile": "r0000_c0002", "step": 1}))  # as a Dask event (timestamp, msg)
            stages = {p.tasks[i].description.strip(): p.tasks[i].fields["stage"] for i in bars.rows.values()}
            assert stages == {"r0000_c0001": "load", "r0000_c0002": "composite"}
            C._report("r0000_c0001", 0, 45, 90, "bands")  # half the dates read
            assert p.tasks[bars.rows["r0000_c0001"]].fields["stage"] == "load 45/90 dates"
            assert 0 < p.tasks[overall].completed < 1
            C._report("r0000_c0001", len(C.TILE_STAGES))
            assert list(bars.rows) == ["r0000_c0002"]
            bars.finish("r0000_c0001")  # the result arrives after the last event: counted once
            C._report("r0000_c0001", 2)  # a late event of a finished tile brings no row back
            assert list(bars.rows) == ["r0000_c0002"] and 1 <= p.tasks[overall].completed < 2
            bars({"garbage": 1})  # never raises
        finally:
            C._LOCAL_HOOK.clear()


# ----------------------------------------------------------------------------- large areas: tiled layout
def test_tiled_layout_vrt_mosaics_equal_the_single_cogs(run_local, sim_archive, tmp_path):
    """`--layout tiles`: tile COGs + <NAME>.vrt + one STAC Item per tile and period; the VRT reads
    exactly as the single COG of the reference run. Output tiles of 80 px straddle the 64 px
    processing tiles, so blocks are cut and re-assembled."""
    from soilsuite.io.products import open_products

    out = tmp_path / "tiled"
    r = subprocess.run(_cmd(sim_archive, out, "--scheduler", "sync", "--layout", "tiles", "--cog-tile-px", "80"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    single = run_local[0]
    names = ["r0000_c0000", "r0000_c0001", "r0001_c0000", "r0001_c0001"]  # 96 px in 80 px tiles
    for label in ("", "2021", "2022"):
        assert not list((out / label).glob("*.tif"))
        assert sorted(p.name for p in (out / label / "tiles").iterdir()) == names
        for name in P.COMPOSITE_PRODUCTS:
            with rasterio.open(single / label / f"{name}.tif") as a, rasterio.open(out / label / f"{name}.vrt") as v:
                np.testing.assert_array_equal(v.read(), a.read(), err_msg=f"{label}/{name}")
                meta = [(s.crs, s.transform, s.dtypes, s.descriptions, s.scales, s.offsets, str(s.nodatavals),
                         s.tags()["PRODUCT"]) for s in (a, v)]
                assert meta[0] == meta[1], (label, name)
                if name == "MASK":
                    assert v.colormap(1) == a.colormap(1)
                assert not any(k.startswith("STATISTICS_") for k in v.tags(1))  # not the first tile's
            with rasterio.open(out / label / "tiles" / names[3] / f"{name}.tif") as t:
                assert (t.height, t.width) == (16, 16)
    for p in out.rglob("tiles/*/*.tif"):
        ok, errors, _ = validate_cog(p)
        assert ok, (p, errors)
    a, b = open_products(single), open_products(out)
    for k in a.data_vars:
        np.testing.assert_array_equal(b[k].values, a[k].values, err_msg=k)
    ok, errors = validate_output_catalog(out)
    assert ok, errors
    items = [json.loads(p.read_text()) for p in (out / "items").glob("*.json")]
    assert len(items) == 3 * 4
    corner = next(i for i in items if i["properties"]["soilsuite:tile"] == names[3]
                  and i["properties"]["soilsuite:period"] == "window")
    assert corner["properties"]["proj:shape"] == [16, 16]
    assert corner["properties"]["proj:transform"][2] == sim_archive.transform.c + 80 * 20
    coll = json.loads((out / "collection.json").read_text())
    assert "quicklook_MASK" in coll["assets"] and "run_record" in coll["assets"]
    rec = json.loads((out / "run.json").read_text())
    assert rec["layout"] == {"layout": "tiles", "cog_tile_px": 80, "tiles": names}
    assert rec["summary"]["mask_share"] == json.loads((single / "run.json").read_text())["summary"]["mask_share"]
    assert len(list((out / "quicklooks").glob("*.png"))) >= 4


def test_auto_layout_switches_to_tiles_for_large_grids():
    from odc.geo.geobox import GeoBox

    from soilsuite.pipeline.composite import build_config
    from soilsuite.pipeline.mosaic import AUTO_TILES_PIXELS, resolve_layout

    cfg = build_config(source="x.json", start=START, end=END, out=Path("x"))
    side = int(AUTO_TILES_PIXELS**0.5)
    small = GeoBox.from_bbox((0, 0, side * 20, side * 20), "EPSG:32633", resolution=20)
    large = GeoBox.from_bbox((0, 0, (side + 1) * 20, side * 20), "EPSG:32633", resolution=20)
    assert resolve_layout(cfg, small) == "single" and resolve_layout(cfg, large) == "tiles"
    cfg.layout = "single"
    assert resolve_layout(cfg, large) == "single"


def test_resume_keeps_the_tile_side_of_the_interrupted_run(tmp_path):
    """Tiles live in side<N>/ folders: a resumed run reuses finished tiles of a side that fits
    its budget, and never mixes tiles of two sides under one name."""
    from soilsuite.pipeline.composite import _resume_side

    tiles = tmp_path / "tiles"
    assert _resume_side(tiles, 256) == 256  # nothing to resume
    (tiles / "side192" / "r0000_c0000").mkdir(parents=True)
    assert _resume_side(tiles, 256) == 256  # no finished tile there
    (tiles / "side192" / "r0000_c0000" / "done").touch()
    assert _resume_side(tiles, 256) == 192  # reuse: fits the (larger) budget
    assert _resume_side(tiles, 128) == 128  # a smaller budget: start over in side128/


def test_switching_layout_removes_the_other_layouts_files(tmp_path):
    """A run interrupted while writing products may resume with another --layout: the folder
    must end with one layout only (readers prefer <NAME>.tif)."""
    from soilsuite.pipeline.mosaic import _remove_other_layout

    for base in (tmp_path, tmp_path / "2021"):
        (base / "tiles" / "r0000_c0000").mkdir(parents=True)
        (base / "tiles" / "r0000_c0000" / "BSF.tif").touch()
        for ext in ("tif", "vrt"):
            (base / f"BSF.{ext}").touch()
    (tmp_path / "notes.txt").touch()
    _remove_other_layout(tmp_path, ["window", "2021"], "single")
    for base in (tmp_path, tmp_path / "2021"):
        assert (base / "BSF.tif").exists() and not (base / "BSF.vrt").exists() and not (base / "tiles").exists()
    _remove_other_layout(tmp_path, ["window", "2021"], "tiles")
    assert not (tmp_path / "BSF.tif").exists() and (tmp_path / "notes.txt").exists()
