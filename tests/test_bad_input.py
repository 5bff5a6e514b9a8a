"""Bad and hostile input through the CLI, one table row per case (issue 10, item 7).

Every row runs the real command in-process (``typer.testing.CliRunner`` on
:data:`soilsuite.cli.app`) and asserts what the user sees and what is left on disk:

* the exit code (2 for every input problem);
* one output line matching the row's regex (which names the file, item or option at fault);
* no traceback, and no exception that escaped the CLI's error handling;
* every file and folder under the test's folder (the output folder, the user's own files, any
  damaged input copy) and the shared archive unchanged: relative path, size and sha256.

Adding a case is one line in :data:`CASES`: ``Case(id, argv, pattern)`` plus ``setup=`` to build
its input first and ``code=``/``env=`` if needed. argv may use ``{arch}`` (the shared simulated
archive: never write there), ``{tmp}`` (the test's folder), ``{out}`` (``{tmp}/out``, absent
unless a setup creates it) and ``{data}`` (``{tmp}/data``, where setups put damaged inputs).
Rows that do not behave today go in :data:`KNOWN_BAD` with the reason (strict xfail: a row that
starts passing fails the suite until it is moved back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from soilsuite import cli

START, END = "2021-05-01", "2021-06-30"
# a window of the archive and a small area inside it (runs that get that far stay tiny)
WINDOW = ("--start", START, "--end", END)
RUN = ("--scheduler", "sync", "--quiet")
SMALL_BBOX = "13.744,52.716,13.748,52.719"
#: a clear-sky item of the archive over SMALL_BBOX (kept by the scene filter): rows damage it
ITEM = "S2A_33UVU_20210613_0_L2A"


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    pattern: str  #: regex one output line must match (box drawing removed, spaces collapsed)
    setup: Callable[[Ctx], None] | None = None
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)


def comp(*extra: str, src: str = "{arch}", window: tuple[str, ...] = WINDOW) -> tuple[str, ...]:
    """argv of a composite run into {out}."""
    return ("composite", src, "--out", "{out}", *window, *RUN, *extra)


def force(*extra: str, src: str = "{arch}", window: tuple[str, ...] = WINDOW) -> tuple[str, ...]:
    return ("export-force", src, "--out", "{out}", *window, "--quiet", *extra)


def sim(*extra: str, out: str = "{out}") -> tuple[str, ...]:
    return ("simulate", out, "--size", "16", "--start", START, "--end", "2021-05-20", *extra)


# ----------------------------------------------------------------------------- setups
@dataclass
class Ctx:
    tmp: Path
    arch: Path
    finished: Callable[[], Path]  #: a finished composite run of the shared archive (built once)
    model: Callable[[], Path]  #: a small trained dsm model file (built once)

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    @property
    def data(self) -> Path:
        return self.tmp / "data"

    def copy_archive(self) -> Path:
        """A private copy of the archive at {data} (for rows that damage it)."""
        shutil.copytree(self.arch, self.data)
        return self.data

    def item(self, name: str = ITEM) -> Path:
        """The JSON of one item of the copy."""
        return self.data / "sentinel-2-l2a" / name / f"{name}.json"

    def items(self) -> list[Path]:
        return sorted(self.data.glob("sentinel-2-l2a/*/*_L2A.json"))


def user_files(folder: Path) -> None:
    """A user's folder: a QGIS project and notes, nothing soilsuite wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.qgz").write_bytes(b"PK\x03\x04 user project")
    (folder / "notes.txt").write_text("field notes, do not lose\n")


def out_user_files(ctx: Ctx) -> None:
    user_files(ctx.out)


def out_foreign_run_json(ctx: Ctx) -> None:
    user_files(ctx.out)
    (ctx.out / "run.json").write_text(json.dumps({"tool": "someone else's pipeline", "runs": 3}))


def out_is_file(ctx: Ctx) -> None:
    ctx.tmp.mkdir(exist_ok=True)
    (ctx.tmp / "out").write_text("a user's file where the output folder should go\n")


def finished_run(ctx: Ctx) -> None:
    shutil.copytree(ctx.finished(), ctx.out)


def model_file(ctx: Ctx) -> None:
    ctx.data.mkdir(parents=True, exist_ok=True)
    shutil.copy(ctx.model(), ctx.data / "soc.joblib")


def model_and_user_files(ctx: Ctx) -> None:
    model_file(ctx)
    user_files(ctx.out)


def no_collection(ctx: Ctx) -> None:
    ctx.copy_archive()
    (ctx.data / "sentinel-2-l2a" / "collection.json").unlink()


def finished_run_with_user_files(ctx: Ctx) -> None:
    finished_run(ctx)
    user_files(ctx.out)


def finished_run_edited(ctx: Ctx) -> None:
    """The user edited one of soilsuite's products (e.g. hand-corrected MASK)."""
    finished_run(ctx)
    mask = next(p for p in sorted(ctx.out.iterdir()) if p.name.startswith("MASK") and p.suffix == ".tif")
    mask.write_bytes(mask.read_bytes() + b"\0edited")


def write_file(rel: str, text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        p = ctx.data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return setup


def edit_item(change: Callable[[dict], None]) -> Callable[[Ctx], None]:
    """Copy the archive and change the JSON of ITEM."""

    def setup(ctx: Ctx) -> None:
        ctx.copy_archive()
        p = ctx.item()
        d = json.loads(p.read_text())
        change(d)
        p.write_text(json.dumps(d))

    return setup


def _no_datetime(d: dict) -> None:
    d["properties"]["datetime"] = None


def _no_scl(d: dict) -> None:
    del d["assets"]["scl"]


def _bad_baseline(d: dict) -> None:
    """A baseline that is not a number, on an item without declared offsets (so it is needed)."""
    d["properties"]["s2:processing_baseline"] = "four"
    for a in d["assets"].values():
        a.pop("raster:bands", None)
        a.pop("raster:offset", None)


def _other_epsg(d: dict) -> None:
    d["properties"]["proj:epsg"] = 32632


def _asset_elsewhere(d: dict) -> None:
    d["assets"]["red"]["href"] = "./does-not-exist/red.tif"


def damage_cog(name: str, how: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.copy_archive()
        p = ctx.item().parent / name
        if how == "delete":
            p.unlink()
        else:  # truncate: keep the header, lose the data
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])

    return setup


def all_cloudy(ctx: Ctx) -> None:
    """Every SCL pixel of every scene is cloud (class 9): no valid observation anywhere."""
    import rasterio

    ctx.copy_archive()
    for item in ctx.items():
        p = item.parent / "scl.tif"
        with rasterio.open(p) as src:
            prof = src.profile
            arr = np.full((src.height, src.width), 9, src.dtypes[0])
        p.unlink()
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(arr, 1)


def catalog_cycle(ctx: Ctx) -> None:
    ctx.copy_archive()
    coll = ctx.data / "sentinel-2-l2a" / "collection.json"
    d = json.loads(coll.read_text())
    d["links"].append({"rel": "child", "href": "../catalog.json", "type": "application/json"})
    coll.write_text(json.dumps(d))


def empty_catalog(ctx: Ctx) -> None:
    write_file("catalog.json", json.dumps({"type": "Catalog", "id": "empty", "stac_version": "1.1.0",
                                           "description": "no items", "links": []}))(ctx)


def raster(rel: str, *, crs: str | None = "EPSG:32633", left: float = 415000.0, top: float = 5842000.0,
           value: float = 40, nodata: float | None = None, size: int = 8, res: float = 80.0) -> Callable[[Ctx], None]:
    """A small one-band GeoTIFF at {data}/rel."""

    def setup(ctx: Ctx) -> None:
        import rasterio
        from rasterio.transform import from_origin

        p = ctx.data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        prof = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32",
                    transform=from_origin(left, top, res, res), nodata=nodata)
        if crs is not None:
            prof["crs"] = crs
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(np.full((1, size, size), value, np.float32))

    return setup


def area_without_crs(ctx: Ctx) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    ctx.data.mkdir(parents=True)
    gpd.GeoDataFrame(geometry=[box(13.744, 52.716, 13.748, 52.719)], crs="EPSG:4326").to_file(ctx.data / "area.shp")
    (ctx.data / "area.prj").unlink()


def samples_csv(rows: str = "x,y,soc\n" + "".join(f"{415100 + 40 * i},{5841500 + 30 * i},{10 + i}\n"
                                                    for i in range(12))) -> Callable[[Ctx], None]:
    return write_file("samples.csv", rows)


def samples_and_model_file(ctx: Ctx) -> None:
    samples_csv()(ctx)
    (ctx.data / "model.joblib").write_bytes(b"an older model the user keeps")


COVARIATE = "clay={arch}/truth/clay.tif"
TRAIN = ("dsm", "train", "{data}/samples.csv", "--property", "soc", "--model-out", "{out}/soc.joblib",
         "--x", "x", "--y", "y", "--crs", "EPSG:32633", "--trees", "5")
CAL = ("calibrate-threshold", "{arch}", *WINDOW, *RUN, "--worldcover", "{arch}/worldcover.tif", "--out", "{tmp}/thr.tif")

CASES: list[Case] = [
    # --- composite: dates, area, options
    Case("composite-bad-start", comp(window=("--start", "2021-13-01", "--end", END)), r"expected a date YYYY-MM-DD, got '2021-13-01'"),
    Case("composite-bad-end", comp(window=("--start", START, "--end", "30.06.2021")), r"expected a date YYYY-MM-DD, got '30\.06\.2021'"),
    Case("composite-end-before-start", comp(window=("--start", END, "--end", START)), r"end 2021-05-01 is before start 2021-06-30"),
    Case("composite-bbox-three-numbers", comp("--bbox", "13.7,52.7,13.8"), r"--bbox expects four numbers west,south,east,north; got 3"),
    Case("composite-bbox-not-numbers", comp("--bbox", "west,south,east,north"), r"--bbox expects four numbers.*west,south"),
    Case("composite-bbox-out-of-range", comp("--bbox", "13.7,52.7,200,52.8"), r"bbox must be lon/lat.*200"),
    Case("composite-bbox-inverted", comp("--bbox", "13.8,52.7,13.7,52.8"), r"bbox must be lon/lat.*west<east"),
    Case("composite-bbox-outside-archive", comp("--bbox", "-60,-10,-59.9,-9.9"), r"archive: no items between 2021-05-01 and 2021-06-30 intersecting bbox \(-60\.0, -10\.0"),
    Case("composite-threshold-out-of-range", comp("--threshold", "5"), r"option threshold: .*less than or equal to 2"),
    Case("composite-dilation-even", comp("--dilation-px", "4"), r"option dilation_px: .*odd.*4"),
    Case("composite-dilation-zero", comp("--dilation-px", "0"), r"option dilation_px: .*greater than or equal to 1"),
    Case("composite-max-cloud-cover", comp("--max-cloud-cover", "150"), r"option max_cloud_cover: .*less than or equal to 100"),
    Case("composite-min-sun-elevation", comp("--min-sun-elevation", "100"), r"option min_sun_elevation: .*less than or equal to 90"),
    Case("composite-max-sun-zenith", comp("--max-sun-zenith", "-5"), r"option max_sun_zenith: .*greater than or equal to 0"),
    Case("composite-min-bare-obs", comp("--min-bare-obs", "1"), r"option min_bare_obs: .*greater than or equal to 2"),
    Case("composite-blue-k", comp("--blue-k-bare", "0"), r"option blue_k_bare: .*greater than 0"),
    Case("composite-resolution", comp("--resolution", "-20"), r"option resolution: .*greater than 0"),
    Case("composite-tile-size", comp("--tile-size", "10"), r"option tile_size: .*greater than or equal to 64"),
    # --- composite: selectors and their options (issue 11, docs/selectors.md)
    Case("composite-unknown-selector", comp("--selector", "nope"), r"unknown selector 'nope'; known: barest, geomedian, geos3, scmap"),
    Case("composite-barest-k-with-scmap", comp("--barest-k", "3"), r"--barest-k is an option of selector 'barest', not of 'scmap': drop it or give --selector barest"),
    Case("composite-barest-k-zero", comp("--selector", "barest", "--barest-k", "0"), r"option barest_k: .*greater than or equal to 1"),
    Case("composite-geomedian-with-dry-src", comp("--selector", "geomedian", "--src-estimator", "dry"), r"--src-estimator dry: selector .geomedian. computes SRC_MEAN itself"),
    Case("composite-threshold-with-geos3", comp("--selector", "geos3", "--threshold", "0.3"), r"--threshold 0\.3: selector 'geos3' does not use a PV\+IR2 threshold"),
    Case("composite-dry-guard-out-of-range", comp("--dry-guard", "1.5"), r"option dry_guard: .*less than or equal to 1"),
    Case("composite-max-nbr2-out-of-range", comp("--max-nbr2", "-2"), r"option dry_guard: .*greater than or equal to -1"),
    Case("composite-dry-guard-and-max-nbr2", comp("--dry-guard", "0.1", "--max-nbr2", "0.2"), r"max_nbr2 is another name of dry_guard: give one of them, not both"),
    Case("composite-edge-guard-out-of-range", comp("--edge-guard", "9"), r"option edge_guard: .*less than or equal to 8"),
    Case("composite-edge-guard-negative", comp("--edge-guard", "-1"), r"option edge_guard: .*greater than or equal to 0"),
    Case("composite-cog-tile-px", comp("--cog-tile-px", "10"), r"option cog_tile_px: .*greater than or equal to 64"),
    Case("composite-out-tile-px-deprecated", comp("--out-tile-px", "10"), r"option cog_tile_px: .*greater than or equal to 64"),
    Case("composite-workers-zero", comp("--workers", "0"), r"option n_workers: .*greater than or equal to 1"),
    Case("composite-ci-method", comp("--ci-method", "normal"), r"option ci_method: .*'t' or 'z'"),
    Case("composite-profile", comp("--profile", "best"), r"profile: unknown profile 'best'; known: scmap, soilsuite"),
    Case("composite-src-estimator", comp("--src-estimator", "wet"), r"option src_estimator: .*'mean' or 'dry'"),
    Case("composite-src-dry-share", comp("--src-dry-share", "0"), r"option src_dry_share: .*greater than 0"),
    Case("composite-periods", comp("--periods", "weekly"), r"periods: cannot read 'weekly'; expected one of"),
    Case("composite-periods-bad-day", comp("--periods", "a:03-01..02-30"), r"periods: 'a:03-01..02-30': not a valid day"),
    Case("composite-periods-reversed", comp("--periods", "a:2021-05-01..2021-04-01"), r"the last day is before the first"),
    Case("composite-periods-duplicate", comp("--periods", "a:03-01..05-31,a:06-01..07-01"), r"names must be unique, a given twice"),
    Case("composite-periods-overlap", comp("--periods", "a:03-01..05-31,b:04-01..06-30"), r"overlap"),
    Case("composite-layout", comp("--layout", "grid"), r"option layout: .*'auto', 'single' or 'tiles'"),
    Case("composite-read-path", comp("--read-path", "fast"), r"option read_path: .*'auto', 'general' or 'mean'"),
    Case("composite-read-path-env", ("composite", "{arch}", "--out", "{out}", *WINDOW, "--quiet"),
         r"option read_path: .*'auto', 'general' or 'mean'", env={"SOILSUITE_READ_PATH": "fast"}),
    Case("composite-engine", comp("--engine", "fibers"), r"option local_engine: .*'threads' or 'processes'"),
    Case("composite-engine-env", ("composite", "{arch}", "--out", "{out}", *WINDOW, "--quiet"),
         r"option local_engine: .*'threads' or 'processes'", env={"SOILSUITE_ENGINE": "fibers"}),
    Case("composite-max-memory-words", comp("--max-memory", "lots"), r"option max_memory: .*got 'lots'"),
    Case("composite-max-memory-negative", comp("--max-memory", "-2GB"), r"option max_memory: .*got '-2GB'"),
    Case("composite-crs-garbage", comp("--crs", "EPSG:999999"), r"cannot build a 20\.0 m grid in EPSG:999999"),
    Case("composite-scheduler-env-garbage", ("composite", "{arch}", "--out", "{out}", *WINDOW, "--quiet"),
         r"option scheduler: .*got 'garbage'", env={"SOILSUITE_SCHEDULER": "garbage"}),
    Case("composite-too-many-workers", ("composite", "{arch}", "--out", "{out}", *WINDOW, "--quiet",
                                        "--workers", "1000", "--max-memory", "2000GB"), r"--max-memory 2000GB .*exceeds this machine's memory"),
    # --- composite: the source
    Case("composite-source-missing", comp(src="{tmp}/nowhere"), r"STAC source '.*nowhere': no such file or folder"),
    Case("composite-catalog-missing", comp(src="{tmp}/nowhere/catalog.json"), r"nowhere/catalog\.json.*no such file"),
    Case("composite-catalog-not-json", comp(src="{data}/catalog.json"), r"catalog\.json: cannot be read as STAC JSON",
         setup=write_file("catalog.json", '{"type": "Catalog", "id": ')),
    Case("composite-catalog-not-stac", comp(src="{data}/catalog.json"), r"catalog\.json: cannot be read",
         setup=write_file("catalog.json", json.dumps({"hello": "world"}))),
    Case("composite-source-is-a-raster", comp(src="{arch}/worldcover.tif"), r"worldcover\.tif: cannot be read as STAC JSON"),
    Case("composite-child-link-broken", comp(src="{data}"), r"collection\.json: cannot be read", setup=no_collection),
    Case("composite-catalog-empty", comp(src="{data}/catalog.json"), r"catalog\.json: no items between", setup=empty_catalog),
    Case("composite-catalog-cycle", comp(src="{data}/catalog.json"), r"links form a cycle", setup=catalog_cycle),
    Case("composite-no-items-in-window", comp(window=("--start", "2019-01-01", "--end", "2019-02-01")), r"archive: no items between 2019-01-01 and 2019-02-01"),
    Case("composite-all-rejected-sun", comp("--min-sun-elevation", "89"), r"all 24 items were rejected by the scene filter: .*sun elevation < 89"),
    Case("composite-all-rejected-cloud", comp("--max-cloud-cover", "80", "--min-sun-elevation", "56.2"),
         r"all 24 items were rejected by the scene filter: cloud cover > 80 %: \d+, sun elevation < 56\.2"),
    Case("composite-item-without-datetime", comp("--bbox", SMALL_BBOX, src="{data}"), rf"{ITEM}\.json: cannot be read: .*datetime",
         setup=edit_item(_no_datetime)),
    Case("composite-item-without-scl", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}': missing asset\(s\) SCL \(scl\)", setup=edit_item(_no_scl)),
    Case("composite-item-bad-baseline", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}': bad s2:processing_baseline 'four' \(expected a processing baseline",
         setup=edit_item(_bad_baseline)),
    Case("composite-item-epsg-disagrees", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}', asset \w+ .*: the item declares CRS EPSG:32632 but the file is in EPSG:32633",
         setup=edit_item(_other_epsg)),
    Case("composite-asset-href-missing", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}', asset B04 .*does-not-exist/red\.tif: no such file", setup=edit_item(_asset_elsewhere)),
    Case("composite-cog-deleted", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}', asset B02 .*{ITEM}/blue\.tif: no such file", setup=damage_cog("blue.tif", "delete")),
    Case("composite-cog-truncated", comp("--bbox", SMALL_BBOX, src="{data}"), rf"STAC item '{ITEM}', asset SCL .*{ITEM}/scl\.tif: .*TIFF", setup=damage_cog("scl.tif", "truncate")),
    Case("composite-all-cloudy", comp("--bbox", SMALL_BBOX, src="{data}"), r"no valid observation: \d+ items, all masked by SCL classes 9", setup=all_cloudy),
    Case("composite-stac-api-no-collection", comp(src="http://127.0.0.1:9/stac"), r"STAC API http://127\.0\.0\.1:9/stac: give the collection id"),
    Case("composite-stac-api-unreachable", comp("--collection", "sentinel-2-l2a", src="http://127.0.0.1:9/stac"),
         r"STAC API http://127\.0\.0\.1:9/stac.*cannot be opened"),
    # --- composite: the area
    Case("composite-area-missing", comp("--area", "{tmp}/nowhere.gpkg"), r"area file .*nowhere\.gpkg: cannot be read: .*No such file"),
    Case("composite-area-not-vector", comp("--area", "{data}/area.geojson"), r"area file .*area\.geojson: cannot be read",
         setup=write_file("area.geojson", "this is not GeoJSON")),
    Case("composite-area-without-crs", comp("--area", "{data}/area.shp"), r"area file .*area\.shp: has no CRS",
         setup=area_without_crs),
    Case("composite-area-no-features", comp("--area", "{data}/area.geojson"), r"area file .*area\.geojson: has no features",
         setup=write_file("area.geojson", json.dumps({"type": "FeatureCollection", "features": []}))),
    Case("composite-mgrs-unknown", comp("--mgrs", "99XXX"), r"grid tile '99XXX': no item of this MGRS tile"),
    Case("composite-tile-deprecated", comp("--tile", "99XXX"), r"deprecated: --tile is now --mgrs"),
    Case("composite-mgrs-and-old-tile", comp("--mgrs", "33UVU", "--tile", "33UUU"),
         r"--tile is the old spelling of --mgrs: give one of them, not both"),
    Case("composite-cog-tile-px-both", comp("--cog-tile-px", "128", "--out-tile-px", "256"),
         r"--out-tile-px is the old spelling of --cog-tile-px: give one of them, not both"),
    # --- composite: auxiliary rasters
    Case("composite-worldcover-missing", comp("--worldcover", "{tmp}/nowhere.tif"), r"raster .*nowhere\.tif: no such file"),
    Case("composite-worldcover-not-raster", comp("--worldcover", "{data}/wc.tif"), r"raster .*wc\.tif",
         setup=write_file("wc.tif", "not a raster")),
    Case("composite-worldcover-no-crs", comp("--worldcover", "{data}/wc.tif"), r"raster .*wc\.tif: has no CRS",
         setup=raster("wc.tif", crs=None)),
    Case("composite-worldcover-elsewhere", comp("--worldcover", "{data}/wc.tif"), r"--worldcover .*wc\.tif covers 0\.0 % of the area",
         setup=raster("wc.tif", left=215000.0, top=5542000.0)),
    Case("composite-worldcover-is-a-folder", comp("--worldcover", "{tmp}"), r"raster .*: cannot be read"),
    Case("composite-threshold-raster-no-crs", comp("--threshold-raster", "{data}/thr.tif"), r"raster .*thr\.tif: has no CRS",
         setup=raster("thr.tif", crs=None, value=0.3)),
    Case("composite-threshold-raster-missing", comp("--threshold-raster", "{tmp}/nowhere.tif"), r"raster .*nowhere\.tif: no such file"),
    Case("composite-threshold-raster-elsewhere", comp("--threshold-raster", "{data}/thr.tif"), r"--threshold-raster .*thr\.tif covers 0\.0 % of the area",
         setup=raster("thr.tif", value=0.3, left=215000.0, top=5542000.0)),
    # --- composite: the output folder
    Case("composite-out-is-a-file", comp(), r"output .*/out is a file, not a folder", setup=out_is_file),
    Case("composite-out-not-a-run", comp(), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_user_files),
    Case("composite-out-not-a-run-overwrite", comp("--overwrite"), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_user_files),
    Case("composite-out-foreign-run-json", comp("--overwrite"), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_foreign_run_json),
    Case("composite-already-complete", comp("--bbox", SMALL_BBOX), r"already complete: .*/out holds a finished run",
         setup=finished_run, code=0),
    Case("composite-resume-other-params", comp("--bbox", SMALL_BBOX, "--threshold", "0.3"), r"output folder .*/out holds a finished composite run with other parameters",
         setup=finished_run),
    Case("composite-overwrite-keeps-user-files", comp("--bbox", SMALL_BBOX, "--threshold", "0.3", "--overwrite"),
         r"--overwrite refused: .* soilsuite did not write: notes\.txt, project\.qgz", setup=finished_run_with_user_files),
    Case("composite-overwrite-edited-product", comp("--bbox", SMALL_BBOX, "--threshold", "0.3", "--overwrite"),
         r"--overwrite refused: .*changed since soilsuite wrote them: MASK\.tif", setup=finished_run_edited),
    # --- simulate
    Case("simulate-size-small", sim("--size", "8"), r"size: expected an integer >= 16"),
    Case("simulate-size-negative", sim("--size", "-32"), r"size: expected an integer >= 16 \(20 m pixels\), got -32"),
    Case("simulate-cloud-fraction", sim("--cloud-fraction", "1.5"), r"cloud_fraction: expected a value in \[0, 1\]"),
    Case("simulate-revisit-zero", sim("--revisit-days", "0"), r"revisit_days: expected an integer >= 1"),
    Case("simulate-epsg-not-utm", sim("--epsg", "4326"), r"epsg: expected a WGS 84 / UTM code"),
    Case("simulate-spectra", sim("--spectra", "lab"), r"spectra: expected one of v1, field, got 'lab'"),
    Case("simulate-end-before-start", ("simulate", "{out}", "--start", END, "--end", START), r"end: expected end >= start"),
    Case("simulate-bad-date", ("simulate", "{out}", "--start", "May 1st"), r"expected a date YYYY-MM-DD, got 'May 1st'"),
    Case("simulate-hrefs", sim("--hrefs", "sideways"), r"hrefs: expected 'relative' or 'absolute'"),
    Case("simulate-out-not-empty", sim(), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_user_files),
    Case("simulate-overwrite-not-an-archive", sim("--overwrite"), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_user_files),
    Case("simulate-out-is-a-file", sim(), r"output .*/out is a file, not a folder", setup=out_is_file),
    # --- export-force
    Case("force-tile-not-multiple-of-block", force("--force-tile-m", "30000", "--force-block-m", "7000"), r"multiple of force_block_m 7000"),
    Case("force-old-size-flags-deprecated", force("--tile-size", "30000", "--block-size", "7000"), r"deprecated: --block-size is now --force-block-m"),
    Case("force-block-not-multiple-of-resolution", force("--force-block-m", "3010"), r"must be a positive multiple of the resolution 20 m, got 3010"),
    Case("force-block-negative", force("--force-block-m", "-3000"), r"must be a positive multiple of the resolution"),
    Case("force-resolution-zero", force("--resolution", "0"), r"resolution must be > 0 m, got 0"),
    Case("force-origin-three-numbers", force("--origin", "1,2,3"), r"--origin expects two numbers x,y; got 3"),
    Case("force-origin-not-numbers", force("--origin", "x,y"), r"--origin expects two numbers x,y; got 'x,y'"),
    Case("force-crs-geographic", force("--crs", "EPSG:4326"), r"crs 'EPSG:4326': FORCE datacubes need a projected CRS"),
    Case("force-crs-garbage", force("--crs", "not-a-crs"), r"crs 'not-a-crs': .*(not a CRS|Invalid projection)"),
    Case("force-end-before-start", force(window=("--start", END, "--end", START)), r"end 2021-05-01 is before start 2021-06-30"),
    Case("force-bad-date", force(window=("--start", "2021-02-30", "--end", END)), r"expected a date YYYY-MM-DD, got '2021-02-30'"),
    Case("force-bbox-out-of-range", force("--bbox", "13,95,14,96"), r"bbox must be lon/lat"),
    Case("force-source-missing", force(src="{tmp}/nowhere"), r"STAC source '.*nowhere': no such file or folder"),
    Case("force-no-items", force(window=("--start", "2019-01-01", "--end", "2019-02-01")), r"archive: no items between 2019-01-01 and 2019-02-01"),
    Case("force-out-is-a-file", force(), r"output .*/out is a file, not a folder", setup=out_is_file),
    Case("force-tile-m-zero", force("--force-tile-m", "0"), r"force_tile_m must be a positive multiple of the resolution"),
    Case("force-out-not-empty", force(), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_user_files),
    Case("force-out-foreign-overwrite", force("--overwrite"), r"output folder .*/out is not empty and is not a soilsuite output", setup=out_foreign_run_json),
    # --- dsm train / validate / predict
    Case("dsm-train-samples-missing", TRAIN + ("--covariate", COVARIATE), r"sample file .*samples\.csv does not exist"),
    Case("dsm-train-no-covariates", TRAIN, r"no covariates: give --products and/or --covariate/--dem", setup=samples_csv()),
    Case("dsm-train-covariate-missing", TRAIN + ("--covariate", "clay={tmp}/nowhere.tif"), r"covariate raster 'clay': .*nowhere\.tif does not exist",
         setup=samples_csv()),
    Case("dsm-train-covariate-twice", TRAIN + ("--covariate", COVARIATE, "--covariate", COVARIATE),
         r"--covariate 'clay' given twice", setup=samples_csv()),
    Case("dsm-train-products-missing", TRAIN + ("--products", "{tmp}/noproducts"), r"product folder .*noproducts does not exist",
         setup=samples_csv()),
    Case("dsm-train-dem-and-covariate-dem", TRAIN + ("--covariate", "dem={arch}/truth/clay.tif", "--dem", "{arch}/truth/soc.tif"),
         r"--dem given and a --covariate named 'dem'", setup=samples_csv()),
    Case("dsm-train-tune-method", TRAIN + ("--covariate", COVARIATE, "--tune-method", "grid"), r"--tune-method must be 'oob' or 'cv'",
         setup=samples_csv()),
    Case("dsm-train-max-features", TRAIN + ("--covariate", COVARIATE, "--max-features", "1.5"),
         r"--max-features must be 'third', 'sqrt', 'log2', a share in \(0, 1\] or a count >= 1, got 1.5",
         setup=samples_csv()),
    Case("dsm-train-unit-malformed", TRAIN + ("--covariate", COVARIATE, "--unit", "soc"), r"--unit expects NAME=VALUE, got 'soc'",
         setup=samples_csv()),
    Case("dsm-train-unit-unknown", TRAIN + ("--covariate", COVARIATE, "--unit", "soc=furlongs"), r"unit 'furlongs'",
         setup=samples_csv()),
    Case("dsm-train-unit-check", TRAIN + ("--covariate", COVARIATE, "--unit-check", "maybe"), r"unit_check must be 'error', 'warn' or 'off'",
         setup=samples_csv()),
    Case("dsm-train-duplicates", TRAIN + ("--covariate", COVARIATE, "--duplicates", "all"), r"duplicates must be 'keep', 'mean' or 'first'",
         setup=samples_csv()),
    Case("dsm-train-csv-without-crs", ("dsm", "train", "{data}/samples.csv", "--property", "soc", "--model-out", "{out}/m.joblib",
                                       "--covariate", COVARIATE), r"samples\.csv: a CSV carries no CRS", setup=samples_csv()),
    Case("dsm-train-x-column-missing", TRAIN[:7] + ("--x", "easting", "--y", "y", "--crs", "EPSG:32633", "--covariate", COVARIATE),
         r"samples\.csv: coordinate column 'easting' not found", setup=samples_csv()),
    Case("dsm-train-property-missing", ("dsm", "train", "{data}/samples.csv", "--property", "clay=CLAY_PCT", "--model-out",
                                        "{out}/m.joblib", "--x", "x", "--y", "y", "--crs", "EPSG:32633", "--covariate", COVARIATE),
         r"samples\.csv: column 'CLAY_PCT' for property 'clay' not found", setup=samples_csv()),
    Case("dsm-train-not-a-table", TRAIN + ("--covariate", COVARIATE), r"samples\.csv: coordinate column 'x' not found", setup=write_file("samples.csv", "\0\1\2 binary")),
    Case("dsm-train-utm-declared-4326", TRAIN[:7] + ("--x", "x", "--y", "y", "--crs", "EPSG:4326", "--covariate", COVARIATE),
         r"samples\.csv: the coordinates look projected, not degrees.*give their CRS with --crs", setup=samples_csv()),
    Case("dsm-train-model-out-exists", ("dsm", "train", "{data}/samples.csv", "--property", "soc", "--model-out",
                                        "{data}/model.joblib", "--x", "x", "--y", "y", "--crs", "EPSG:32633", "--covariate", COVARIATE),
         r"model\.joblib exists; use --overwrite", setup=samples_and_model_file),
    Case("dsm-validate-model-missing", ("dsm", "validate", "{tmp}/nowhere.joblib", "--out", "{out}"), r"model file .*nowhere\.joblib does not exist"),
    Case("dsm-validate-model-garbage", ("dsm", "validate", "{data}/m.joblib", "--out", "{out}"), r"m\.joblib: not a .*soilsuite model file",
         setup=write_file("m.joblib", "not a model")),
    Case("dsm-validate-method", ("dsm", "validate", "{data}/soc.joblib", "--out", "{out}", "--method", "bogus"), r"method must be kfold, spatial, oob or folds, got 'bogus'",
         setup=model_file),
    Case("dsm-validate-k-one", ("dsm", "validate", "{data}/soc.joblib", "--out", "{out}", "--method", "kfold", "--k", "1"),
         r"k must be within 2\.\.12 \(number of samples\), got 1", setup=model_file),
    Case("dsm-validate-out-not-empty", ("dsm", "validate", "{data}/soc.joblib", "--out", "{out}", "--method", "oob"),
         r"/out is not empty and is not a soilsuite output", setup=model_and_user_files),
    Case("dsm-predict-block-size", ("dsm", "predict", "{data}/soc.joblib", "--out", "{out}", "--block-size", "8"),
         r"block_size must be >= 16 pixels, got 8", setup=model_file),
    Case("dsm-predict-model-missing", ("dsm", "predict", "{tmp}/nowhere.joblib", "--out", "{out}"), r"model file .*nowhere\.joblib does not exist"),
    Case("dsm-predict-model-garbage", ("dsm", "predict", "{data}/m.joblib", "--out", "{out}"), r"m\.joblib: not a .*soilsuite model file",
         setup=write_file("m.joblib", "not a model")),
    Case("dsm-train-reduce-unknown", TRAIN + ("--covariate", COVARIATE, "--reduce", "lda"),
         r"--reduce must be one of auto, none, pca, filter, got 'lda'", setup=samples_csv()),
    Case("dsm-validate-reduce-unknown", ("dsm", "validate", "{data}/soc.joblib", "--out", "{out}", "--reduce", "lda"),
         r"--reduce must be one of auto, none, pca, filter, got 'lda'", setup=model_file),
    Case("dsm-train-trend-unknown", TRAIN + ("--covariate", COVARIATE, "--trend", "lasso"),
         r"--trend must be one of auto, none, ridge, got 'lasso'", setup=samples_csv()),
    Case("dsm-validate-trend-unknown", ("dsm", "validate", "{data}/soc.joblib", "--out", "{out}", "--trend", "lasso"),
         r"--trend must be one of auto, none, ridge, got 'lasso'", setup=model_file),
    Case("dsm-compare-candidate-unknown", ("dsm", "compare", "{data}/samples.csv", "--property", "soc", "--out", "{out}",
                                           "--x", "x", "--y", "y", "--crs", "EPSG:32633", "--covariate", COVARIATE,
                                           "--candidates", "qrf,svm"), r"unknown candidates \['svm'\]", setup=samples_csv()),
    # issue 11: calibrate-threshold, threshold-sweep
    Case("calibrate-too-few-observations", CAL + ("--region-size", "640", "--min-obs", "100000"),
         r"calibration area: no region has 100000 valid cropland \(WorldCover 40\) and 100000 grassland \(30\) "
         r"observations \(most found in one region: \d+ cropland, \d+ grassland\)"),
    Case("calibrate-no-regions", CAL, r"give one of --region-size \(metres\) or --regions"),
    Case("calibrate-both-regions", CAL + ("--region-size", "640", "--regions", "{tmp}/r.gpkg"),
         r"give one of --region-size \(metres\) or --regions"),
    Case("calibrate-regions-missing", CAL + ("--regions", "{tmp}/nowhere.gpkg"), r"--regions .*nowhere\.gpkg: cannot be read"),
    Case("calibrate-out-not-tif", CAL[:-2] + ("--out", "{tmp}/thr.png", "--region-size", "640"),
         r"--out .*thr\.png: expected a GeoTIFF name ending in \.tif"),
    Case("sweep-range-backwards", ("threshold-sweep", "{arch}", *WINDOW, *RUN, "--out", "{out}", "--thresholds", "0.3:0.1:0.05"),
         r"--thresholds '0\.3:0\.1:0\.05': expected START:STOP:STEP with STEP > 0 and START <= STOP"),
    Case("sweep-range-not-numbers", ("threshold-sweep", "{arch}", *WINDOW, *RUN, "--out", "{out}", "--thresholds", "0.1-0.3"),
         r"--thresholds '0\.1-0\.3': expected START:STOP:STEP"),
]

#: Rows that do not behave today (traceback, wrong exit code, damaged files or no clear line).
KNOWN_BAD: dict[str, str] = {}


# ----------------------------------------------------------------------------- machinery
def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: relative path -> (size, sha256) or ("dir",)."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": (root.stat().st_size, hashlib.sha256(root.read_bytes()).hexdigest())}
    snap: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            snap[rel + "/"] = ("dir",)
        else:
            snap[rel] = (p.lstat().st_size, hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "link")
    return snap


BOX = re.compile(r"[\u2500-\u257f]")


def error_lines(output: str) -> list[str]:
    """Output lines without box drawing (typer's usage-error panel) and with spaces collapsed."""
    return [" ".join(BOX.sub(" ", line).split()) for line in output.splitlines()]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from soilsuite import simulate

    return simulate(tmp_path_factory.mktemp("bad_input") / "archive", size=32, start=dt.date.fromisoformat(START),
                    end=dt.date.fromisoformat(END), seed=0).out


@pytest.fixture(scope="module")
def finished(tmp_path_factory, archive):
    """Builds (once, on first use) a finished composite run of a small area of the archive."""
    cache: list[Path] = []

    def get() -> Path:
        if not cache:
            out = tmp_path_factory.mktemp("finished") / "run"
            res = invoke(("composite", str(archive), "--out", str(out), *WINDOW, *RUN, "--bbox", SMALL_BBOX), {})
            assert res.exit_code == 0, res.output
            cache.append(out)
        return cache[0]

    return get


@pytest.fixture(scope="module")
def model(tmp_path_factory, archive):
    """Builds (once, on first use) a 5-tree soc model on one covariate of the archive's truth."""
    cache: list[Path] = []

    def get() -> Path:
        if not cache:
            tmp = tmp_path_factory.mktemp("model")
            samples_csv()(Ctx(tmp=tmp, arch=archive, finished=lambda: tmp, model=lambda: tmp))
            argv = tuple(a.format(arch=archive, data=tmp / "data", out=tmp / "out") for a in TRAIN)
            res = invoke((*argv, "--covariate", COVARIATE.format(arch=archive)), {})
            assert res.exit_code == 0, res.output
            cache.append(tmp / "out" / "soc.joblib")
        return cache[0]

    return get


def invoke(argv: tuple[str, ...], env: dict[str, str]):
    return CliRunner().invoke(cli.app, list(argv), env={"COLUMNS": "2000", "SOILSUITE_SCHEDULER": None, **env},
                              catch_exceptions=True)


def _params() -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BAD[c.id])]
                         if c.id in KNOWN_BAD else []) for c in CASES]


def test_case_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert set(KNOWN_BAD) <= set(ids), set(KNOWN_BAD) - set(ids)


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, tmp_path, archive, finished, model, monkeypatch):
    ctx = Ctx(tmp=tmp_path, arch=archive, finished=finished, model=model)
    if case.setup is not None:
        case.setup(ctx)
    monkeypatch.chdir(tmp_path)  # anything written relative to the working folder is seen too
    monkeypatch.setattr(cli.console, "width", 2000)  # one message, one line
    argv = tuple(a.format(arch=archive, tmp=tmp_path, out=ctx.out, data=ctx.data) for a in case.argv)
    before, before_arch = snapshot(tmp_path), snapshot(archive)

    res = invoke(argv, case.env)

    escaped = res.exception is not None and not isinstance(res.exception, SystemExit)
    detail = "".join(traceback.format_exception(res.exception)) if escaped else ""
    assert not escaped, f"exception escaped the CLI:\n{detail}\noutput:\n{res.output}"
    assert "Traceback" not in res.output, res.output
    assert res.exit_code == case.code, f"exit {res.exit_code}, expected {case.code}; output:\n{res.output}"
    lines = error_lines(res.output)
    assert any(re.search(case.pattern, line) for line in lines), f"no line matches {case.pattern!r}:\n{res.output}"
    assert snapshot(tmp_path) == before, "files changed under the test folder (output folder, user files, inputs)"
    assert snapshot(archive) == before_arch, "the shared archive changed"
