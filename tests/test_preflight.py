"""Input checks before computing, --on-error, and one-line errors at the CLI edge (issue 10).

Each case makes a bad copy of one small simulated archive (32 px, two months) and asserts the
exit code, a regex on the one-line message and that nothing was written.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from soilsuite.cli import app
from soilsuite.pipeline.preflight import PreflightWarning

START, END = "2021-05-01", "2021-06-30"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    from soilsuite.sources.simulate import simulate

    out = tmp_path_factory.mktemp("pf") / "archive"
    simulate(out, size=32, start=dt.date(2021, 5, 1), end=dt.date(2021, 6, 30), seed=1)
    return out


def _copy(small: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "archive"
    shutil.copytree(small, dst)
    return dst


def _items(archive: Path) -> list[Path]:
    return sorted(archive.glob("sentinel-2-l2a/*/*.json"))


def _used_item(archive: Path) -> Path:
    """The JSON of the first item the scene filter keeps (cloud cover <= 80 %)."""
    return next(p for p in _items(archive) if json.loads(p.read_text())["properties"]["eo:cloud_cover"] <= 80)


def _cli(*args: str, env: dict | None = None):
    res = CliRunner().invoke(app, list(args), env=env)
    res.flat = " ".join((res.output or "").split())  # rich wraps long lines
    return res


def _composite(archive: Path, out: Path, *extra: str, env: dict | None = None):
    return _cli("composite", str(archive / "catalog.json"), "--out", str(out), "--start", START, "--end", END,
                "--scheduler", "sync", "--quiet", *extra, env=env)


def _refused(res, pattern: str, out: Path | None) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert re.search(pattern, res.flat), res.flat
    assert "Traceback" not in res.output
    assert res.output.strip().count("\n") == 0, res.output  # one line
    if out is not None:
        assert not out.exists(), "nothing may be written"


# ----------------------------------------------------------------------------- broken scenes
def test_truncated_cog_fails_naming_file_item_and_gdal_reason(small, tmp_path):
    arch = _copy(small, tmp_path)
    item = _used_item(arch)
    cog = item.parent / "red.tif"
    data = cog.read_bytes()
    cog.write_bytes(data[: len(data) // 2])
    out = tmp_path / "run"
    res = _composite(arch, out)
    _refused(res, rf"STAC item '{item.stem}', asset B04 \S*red\.tif: .*(TIFF|Read).*--on-error skip", out)


def test_truncated_cog_skip_finishes_and_lists_the_scene(small, tmp_path):
    arch = _copy(small, tmp_path)
    item = _used_item(arch)
    cog = item.parent / "swir16.tif"
    cog.write_bytes(cog.read_bytes()[:-500])
    out = tmp_path / "run"
    # --quiet: no summary table, but the skipped scene is a warning (stderr, or a --log-json record)
    with pytest.warns(PreflightWarning, match=rf"broken scene {item.stem} .*swir16\.tif.*left out"):
        res = _composite(arch, out, "--on-error", "skip")
    assert res.exit_code == 0, (res.output, res.exception)
    rec = json.loads((out / "run.json").read_text())
    skipped = [r for r in rec["rejected_items"] if r["id"] == item.stem]
    assert len(skipped) == 1 and "swir16.tif" in skipped[0]["reason"], rec["rejected_items"]
    used = {i for o in rec["observations"] for i in o["items"]}
    assert item.stem not in used and len(used) > 5
    assert (out / "BSF.tif").exists()


def test_truncated_cog_found_mid_run_names_the_file(small, tmp_path, monkeypatch):
    """A COG the preflight did not sample fails in the tile load: the message names it."""
    from soilsuite.pipeline import preflight

    monkeypatch.setattr(preflight, "_sample", lambda *a, **k: set())  # preflight reads nothing
    arch = _copy(small, tmp_path)
    item = _used_item(arch)
    cog = item.parent / "nir.tif"
    cog.write_bytes(cog.read_bytes()[:-400])
    res = _composite(arch, tmp_path / "run")
    assert res.exit_code == 2, (res.output, res.exception)
    assert re.search(rf"STAC item '{item.stem}', asset B08 \S*nir\.tif: .*while loading the tile", res.flat), res.flat
    assert not (tmp_path / "run" / "run.json").exists()


def test_item_crs_disagreeing_with_its_cog(small, tmp_path):
    arch = _copy(small, tmp_path)
    item = _used_item(arch)
    d = json.loads(item.read_text())
    d["properties"]["proj:epsg"] = 32632
    item.write_text(json.dumps(d))
    out = tmp_path / "run"
    _refused(_composite(arch, out), rf"'{item.stem}'.*declares CRS EPSG:32632 but the file is in EPSG:32633", out)


def test_missing_asset_file_found_before_any_tile(small, tmp_path, monkeypatch):
    from soilsuite.pipeline import composite

    monkeypatch.setattr(composite, "process_tile", lambda t: pytest.fail("a tile ran"))
    arch = _copy(small, tmp_path)
    item = _used_item(arch)
    (item.parent / "scl.tif").unlink()
    out = tmp_path / "run"
    _refused(_composite(arch, out), rf"'{item.stem}', asset SCL \S*scl\.tif: no such file", out)


def test_all_observations_masked_by_scl(small, tmp_path):
    arch = _copy(small, tmp_path)
    for scl in arch.glob("sentinel-2-l2a/*/scl.tif"):
        with rasterio.open(scl) as src:
            prof, shape = src.profile, src.shape
        prof.update(driver="GTiff")
        with rasterio.open(scl, "w", **prof) as dst:
            dst.write(np.full(shape, 9, np.uint8), 1)
    out = tmp_path / "run"
    _refused(_composite(arch, out), r"no valid observation: \d+ items, all masked by SCL classes 9 "
                                    r"\(cloud high probability\) 100 %", out)


# ----------------------------------------------------------------------------- auxiliary rasters
def _grid(archive: Path):
    from soilsuite.pipeline.composite import build_config, select_items, target_geobox

    cfg = build_config(source=str(archive / "catalog.json"), start=START, end=END, out=Path("x"))
    return target_geobox(cfg, select_items(cfg)[1].items)


def _write_left_half(path: Path, gb, value, dtype: str, nodata=None) -> None:
    """A raster on the grid's CRS covering the left half of ``gb`` (no nodata by default)."""
    nx = gb.shape.x // 2
    prof = dict(driver="GTiff", width=nx, height=gb.shape.y, count=1, dtype=dtype, crs=str(gb.crs),
                transform=gb.affine, nodata=nodata)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.full((gb.shape.y, nx), value, dtype), 1)


def test_worldcover_covering_half_is_refused_or_warned(small, tmp_path):
    from soilsuite.pipeline.preflight import PreflightWarning, check_coverage

    gb = _grid(small)
    wc = tmp_path / "wc_half.tif"
    _write_left_half(wc, gb, 40, "uint8", nodata=0)
    out = tmp_path / "run"
    _refused(_composite(small, out, "--worldcover", str(wc)),
             r"--worldcover \S*wc_half\.tif covers 50\.0 % of the area; .*--allow-partial-coverage", out)
    with pytest.warns(PreflightWarning, match="covers 50.0 %"):
        assert check_coverage(wc, gb, option="--worldcover", outside="x", allow_partial=True)
    assert check_coverage(small / "worldcover.tif", gb, option="--worldcover", outside="x", allow_partial=False) is None


def test_missing_worldcover_found_before_any_tile(small, tmp_path):
    out = tmp_path / "run"
    _refused(_composite(small, out, "--worldcover", str(tmp_path / "nope.tif")), r"raster \S*nope\.tif: no such file", out)


def test_threshold_raster_without_nodata_falls_back_outside(small, tmp_path):
    """Case 5: outside a threshold raster without nodata, the constant threshold applies (not 0)."""
    from soilsuite.pipeline.composite import observation_flags
    from soilsuite.pipeline.preflight import PreflightWarning
    from soilsuite.sources.rasters import read_on_grid

    gb = _grid(small)
    thr = tmp_path / "thr_half.tif"
    _write_left_half(thr, gb, 0.5, "float32")
    arr = read_on_grid(thr, gb, resampling="bilinear", dtype="float32", fill=np.nan)
    half = gb.shape.x // 2
    assert np.all(arr[:, :half] == 0.5) and np.all(np.isnan(arr[:, half:]))

    # the test can fail: threshold 0 in the right half would change the flags there
    f05 = observation_flags(small / "catalog.json", start=START, end=END, geobox=gb, threshold=0.5)["flags"].values
    f0 = observation_flags(small / "catalog.json", start=START, end=END, geobox=gb, threshold=0.0)["flags"].values
    assert (f05[:, :, half:] != f0[:, :, half:]).any()

    with pytest.warns(PreflightWarning, match=r"covers 50\.0 % .*constant --threshold 0\.5 applies"):
        a = _composite(small, tmp_path / "a", "--threshold", "0.5", "--threshold-raster", str(thr),
                       "--allow-partial-coverage")
    b = _composite(small, tmp_path / "b", "--threshold", "0.5")
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    for name in ("BSC", "VPC", "BSF", "SRC_MEAN", "MREF_MEAN", "MASK"):
        with rasterio.open(tmp_path / "a" / f"{name}.tif") as ra, rasterio.open(tmp_path / "b" / f"{name}.tif") as rb:
            np.testing.assert_array_equal(ra.read(), rb.read(), err_msg=name)


# ----------------------------------------------------------------------------- resources and options
def test_workers_and_memory_beyond_the_machine(small, tmp_path, monkeypatch):
    import distributed

    from soilsuite.pipeline import cluster

    monkeypatch.setattr(cluster, "_cores", lambda: 2)
    monkeypatch.setattr(cluster, "_total_memory", lambda: 23 * 10**9)
    monkeypatch.setattr(distributed, "LocalCluster", lambda *a, **k: pytest.fail("workers spawned"))
    monkeypatch.delenv("SOILSUITE_SCHEDULER", raising=False)
    args = ("composite", str(small / "catalog.json"), "--out", str(tmp_path / "run"), "--start", START, "--end", END,
            "--quiet")
    _refused(_cli(*args, "--workers", "1000", "--max-memory", "2000GB"),
             r"--max-memory 2000GB \(2000\.0 GB\) exceeds this machine's memory \(23\.0 GB\)", tmp_path / "run")
    _refused(_cli(*args, "--workers", "1000", "--max-memory", "20GB"),
             r"--workers 1000 is too many for this machine \(2 core", tmp_path / "run")


def test_max_memory_lots(small, tmp_path):
    _refused(_composite(small, tmp_path / "run", "--max-memory", "lots"),
             r"option max_memory: .*expected a size such as 2GB.*'lots'", tmp_path / "run")


def test_scheduler_garbage_from_environment(small, tmp_path):
    res = _cli("composite", str(small / "catalog.json"), "--out", str(tmp_path / "run"), "--start", START,
               "--end", END, "--quiet", env={"SOILSUITE_SCHEDULER": "garbage"})
    _refused(res, r"option scheduler: .*'garbage'.*SOILSUITE_SCHEDULER", tmp_path / "run")


# ----------------------------------------------------------------------------- STAC catalogs
def test_item_without_datetime(small, tmp_path):
    arch = _copy(small, tmp_path)
    item = _items(arch)[0]
    d = json.loads(item.read_text())
    d["properties"]["datetime"] = None
    item.write_text(json.dumps(d))
    _refused(_composite(arch, tmp_path / "run"),
             rf"STAC item \S*{item.name}: cannot be read: .*datetime", tmp_path / "run")


def test_catalog_links_forming_a_cycle(small, tmp_path):
    arch = _copy(small, tmp_path)
    col = arch / "sentinel-2-l2a" / "collection.json"
    d = json.loads(col.read_text())
    d["links"].append({"rel": "child", "href": "../catalog.json", "type": "application/json"})
    col.write_text(json.dumps(d))
    _refused(_composite(arch, tmp_path / "run"), r"links form a cycle \(\S*catalog\.json -> \S*collection\.json -> "
                                                 r"\S*catalog\.json\)", tmp_path / "run")


# ----------------------------------------------------------------------------- the machine
def test_read_only_output_folder(small, tmp_path, monkeypatch):
    from soilsuite.pipeline import composite

    ro = tmp_path / "ro"
    ro.mkdir()
    out = ro / "run"
    if os.geteuid() == 0:  # root writes anywhere: raise what mkdir raises for a user
        def deny(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(out))

        monkeypatch.setattr(composite, "_prepare_out", deny)
    else:
        ro.chmod(0o500)
    try:
        res = _composite(small, out)
    finally:
        ro.chmod(0o700)
    _refused(res, rf"permission denied: {re.escape(str(out))}: Permission denied", None)
    assert not any(out.glob("*.tif"))


def test_disk_full_says_how_to_resume(small, tmp_path, monkeypatch):
    from soilsuite.pipeline import composite

    target = tmp_path / "run" / ".work" / "tiles" / "VPC.npy"

    def full(task):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(composite, "process_tile", full)
    res = _composite(small, tmp_path / "run")
    assert res.exit_code == 2, (res.output, res.exception)
    assert re.search(rf"no space left on device writing {re.escape(str(target))}; free space and re-run the same "
                     "command to resume", res.flat), res.flat


def test_unexpected_error_keeps_its_traceback(small, tmp_path, monkeypatch):
    from soilsuite.pipeline import composite

    monkeypatch.setattr(composite, "process_tile", lambda task: 1 / 0)
    res = _composite(small, tmp_path / "run")
    assert isinstance(res.exception, ZeroDivisionError)
    assert res.exit_code == 1


def test_dsm_utm_coordinates_declared_as_degrees(tmp_path):
    csv = tmp_path / "samples.csv"
    csv.write_text("x,y,soc\n" + "".join(f"{414000 + 20 * i},{5834500 + 10 * i},{1 + i / 10}\n" for i in range(10)))
    res = _cli("dsm", "train", str(csv), "-p", "soc", "-m", str(tmp_path / "m.joblib"), "--crs", "EPSG:4326",
               "--covariate", str(tmp_path / "none.tif"))
    assert res.exit_code == 2, (res.output, res.exception)
    assert re.search(r"coordinates look projected, not degrees: x 414000\.\.414180.*outside \+-180/\+-90.*--crs",
                     res.flat), res.flat
    assert not (tmp_path / "m.joblib").exists()


def test_preflight_api_on_a_good_archive(small):
    """The checks pass on a sound archive and read every asset of a small one."""
    from soilsuite.pipeline.composite import build_config, select_items
    from soilsuite.pipeline.preflight import PreflightWarning, check_inputs
    from soilsuite.sources import stac as S

    cfg = build_config(source=str(small / "catalog.json"), start=START, end=END, out=Path("x"),
                       worldcover=small / "worldcover.tif")
    _, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    gb = _grid(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PreflightWarning)
        rep = check_inputs(cfg, sel.items, assets, gb)
    assert rep.broken == [] and rep.warnings == []
    assert rep.assets_read == rep.assets_total == len(sel.items) * 11
    assert rep.scl_histogram.sum() > 0
