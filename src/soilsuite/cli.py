"""Command-line interface (typer). Thin: parse, build the config, call the API, report.

Every error soilsuite raises on purpose (:class:`~soilsuite.errors.SoilsuiteError`) is shown
as one clear line and exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import SoilsuiteError

app = typer.Typer(
    name="soilsuite",
    help="Soil Composite Mapping Processor: bare-soil composites and soil maps from Sentinel-2 L2A.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _chain(exc: BaseException):
    """``exc`` and the exceptions it was raised from (cause or context), outermost first."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _one_line(exc: BaseException) -> list[str] | None:
    """The one-line message(s) for an error caused by input or the machine, else None.

    The one place where errors become user messages: soilsuite's own errors, pydantic
    validation, a full disk (ENOSPC anywhere in the chain), a permission problem, and known
    third-party error types raised by bad input (pystac, rasterio/GDAL, Dask workers).
    Anything else is a bug and keeps its traceback.
    """
    import errno

    from pydantic import ValidationError

    for e in _chain(exc):  # a full disk, however deep it was wrapped
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
            where = getattr(e, "filename", None) or next(
                (x.filename for x in _chain(exc) if getattr(x, "filename", None)), None)
            return [f"no space left on device writing {where or '(a file of the output folder)'}; "
                    "free space and re-run the same command to resume"]
    if isinstance(exc, SoilsuiteError):
        return [str(exc)]
    if isinstance(exc, ValidationError):
        return [f"option {'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()]
    if isinstance(exc, PermissionError):
        return [f"permission denied: {exc.filename or exc}: {exc.strerror or 'not allowed'} "
                "(choose a folder you can write to, or fix its permissions)"]
    mod = type(exc).__module__.split(".")[0]
    if mod == "pystac":
        return [f"STAC: {exc}"]
    if mod == "rasterio":
        return [f"GDAL: {' '.join(str(exc).split())}"]
    if type(exc).__name__ == "KilledWorker":
        return [f"a Dask worker died while running {exc} (out of memory?); lower --tile-size or "
                "--workers, or raise --max-memory; re-run the same command to resume"]
    return None


def _friendly(fn):
    """Turn errors from input or the machine (:func:`_one_line`) into one clear line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            lines = _one_line(exc)
            if lines is None:
                raise  # a bug: keep the traceback
            from rich.markup import escape

            for line in lines:
                console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


FORCE_CLEAN_HELP = ("with --overwrite: also replace soilsuite's files that were changed since; and write beside "
                    "files soilsuite did not write (those are never removed)")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"expected a date YYYY-MM-DD, got {text!r}") from None


@app.command()
@_friendly
def simulate(
    out: Annotated[Path, typer.Argument(help="output folder for the archive (COGs + STAC catalog + truth)")],
    size: Annotated[int, typer.Option(help="scene side in 20 m pixels")] = 256,
    start: Annotated[str, typer.Option(help="first date YYYY-MM-DD")] = "2021-01-01",
    end: Annotated[str, typer.Option(help="last date YYYY-MM-DD")] = "2022-12-31",
    revisit_days: Annotated[int, typer.Option(help="days between acquisitions")] = 5,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same archive)")] = 0,
    epsg: Annotated[int, typer.Option(help="UTM CRS of the scene (EPSG code)")] = 32633,
    cloud_fraction: Annotated[float, typer.Option(help="mean cloud cover of the scenes (0-1)")] = 0.35,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier simulated archive in OUT (only the files soilsuite wrote)")] = False,
    force_clean: Annotated[bool, typer.Option(help=FORCE_CLEAN_HELP)] = False,
    hrefs: Annotated[str, typer.Option(help="asset hrefs: 'relative' (movable folder) or 'absolute' (file:// URIs, for serving the items through a STAC API)")] = "relative",
    format: Annotated[str, typer.Option("--format", help="'stac' (catalog of COGs) or 'safe' (Sentinel-2 L2A SAFE products: JPEG2000 + metadata XML)")] = "stac",  # noqa: A002
    safe_zip: Annotated[bool, typer.Option(help="with --format safe: each product as <name>.zip")] = False,
):
    """Write a synthetic Sentinel-2 L2A archive with known truth (static STAC catalog of COGs)."""
    from .sources.simulate import simulate as _simulate

    res = _simulate(
        out, size=size, start=_date(start), end=_date(end), revisit_days=revisit_days, seed=seed,
        epsg=epsg, cloud_fraction=cloud_fraction, overwrite=overwrite, force_clean=force_clean, progress=True,
        hrefs=hrefs, format=format, safe_zip=safe_zip,
    )
    console.print(res.summary())


@app.command("index-safe")
@_friendly
def index_safe(
    source: Annotated[Path, typer.Argument(help="a .SAFE folder, a .zip of one, or a folder of them (Sentinel-2 L2A)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the static STAC catalog JSON to write (items in sentinel-2-l2a/ beside it)")] = Path("catalog.json"),
    overwrite: Annotated[bool, typer.Option(help="replace a catalog written earlier by index-safe (only its own files)")] = False,
):
    """Index Sentinel-2 L2A SAFE products (folders or zips) as a static STAC catalog."""
    import pystac

    from .sources.safe import SUPERSEDED_REASON
    from .sources.safe import index_safe as _index_safe

    path = _index_safe(source, out, overwrite=overwrite)
    items = list(pystac.Catalog.from_file(str(path)).get_items(recursive=True))
    console.print(f"{len(items)} product(s) indexed -> {path}")
    for it in items:
        if SUPERSEDED_REASON in it.properties:
            console.print(f"  superseded (composite will reject it): {it.id}: {it.properties[SUPERSEDED_REASON]}")


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        parts = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise typer.BadParameter(f"--bbox expects four numbers west,south,east,north; got {text!r}") from None
    if len(parts) != 4:
        raise typer.BadParameter(f"--bbox expects four numbers west,south,east,north; got {len(parts)}")
    return parts  # type: ignore[return-value]


def print_summary(summary) -> None:
    """The end-of-run table: area, scenes used/rejected and why, MASK shares, mean BSF."""
    from rich.table import Table

    t = Table(title=f"soilsuite composite -> {summary.out}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("area", f"{summary.area_km2:,.1f} km2, {summary.shape[0]} x {summary.shape[1]} px, {summary.crs}")
    t.add_row("scenes", f"{summary.n_items_found} found, {summary.n_items_used} used, "
              f"{summary.n_items_found - summary.n_items_used} rejected")
    for reason, n in summary.rejected.items():
        t.add_row("  rejected", f"{n} x {reason}")
    t.add_row("observations", f"{summary.n_observations} solar days")
    for name, share in summary.mask_share.items():
        t.add_row("  MASK", f"{100 * share:5.1f} %  {name}")
    t.add_row("mean BSF", f"{summary.mean_bsf:.3f}")
    t.add_row("tiles", f"{summary.tiles} of {summary.tile_side} px ({summary.tiles_resumed} resumed)")
    t.add_row("time", f"{summary.seconds:.1f} s")
    t.add_row("products", ", ".join(summary.products))
    t.add_row("quicklooks", "\n".join(summary.quicklooks))
    Console().print(t)


@app.command()
@_friendly
def composite(
    source: Annotated[str, typer.Argument(help="STAC catalog/collection JSON (or folder), STAC API URL, or Sentinel-2 SAFE folder/zip(s) (docs/safe.md)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    start: Annotated[str, typer.Option(help="first day YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="last day YYYY-MM-DD (inclusive)")],
    bbox: Annotated[str | None, typer.Option(help="area: west,south,east,north in degrees")] = None,
    area: Annotated[Path | None, typer.Option(help="area: vector file (GeoPackage, GeoJSON, Shapefile...)")] = None,
    tile: Annotated[str | None, typer.Option(help="area: a Sentinel-2 MGRS tile, e.g. 33UUU (its items, native extent)")] = None,
    collection: Annotated[str | None, typer.Option(help="collection id (required for a STAC API)")] = None,
    crs: Annotated[str | None, typer.Option(help="target CRS (default: UTM zone of the area)")] = None,
    resolution: Annotated[float, typer.Option(help="target pixel size (m)")] = 20.0,
    worldcover: Annotated[Path | None, typer.Option(help="ESA WorldCover raster: never bare on built-up/water; MASK class 3")] = None,
    threshold: Annotated[float, typer.Option(help="PV+IR2 (NDVI+NBR) threshold: bare candidate if <=")] = 0.2,
    threshold_raster: Annotated[Path | None, typer.Option(help="raster of regional PV+IR2 thresholds (bilinear)")] = None,
    max_cloud_cover: Annotated[float, typer.Option(help="scene filter: max eo:cloud_cover (%)")] = 80.0,
    min_sun_elevation: Annotated[float, typer.Option(help="scene filter: min view:sun_elevation (deg)")] = 20.0,
    dilation_px: Annotated[int, typer.Option(help="cloud/shadow dilation window (px, odd)")] = 11,
    max_sun_zenith: Annotated[float, typer.Option(help="observations above this sun zenith are invalid (deg)")] = 70.0,
    max_nbr2: Annotated[float | None, typer.Option(help="optional dry-vegetation filter: bare also needs NBR2 <= this (off by default; e.g. 0.1)")] = None,
    blue_k_bare: Annotated[float, typer.Option(help="blue outlier filter k for the bare composite")] = 3.0,
    blue_k_mref: Annotated[float, typer.Option(help="blue outlier filter k for MREF")] = 4.0,
    min_bare_obs: Annotated[int, typer.Option(help="min bare observations for SRC products and MASK=1")] = 3,
    ci_method: Annotated[str, typer.Option(help="95 % CI: 't' (Student) or 'z' (1.96, as DLR's openEO code)")] = "t",
    periods: Annotated[str, typer.Option(help="'none' or 'year': also write per-year products")] = "none",
    layout: Annotated[str, typer.Option(help="'single' COG per product, 'tiles' (tile COGs + <NAME>.vrt + a STAC Item per tile) or 'auto' (tiles above 2**30 px)")] = "auto",
    out_tile_px: Annotated[int, typer.Option(help="side of the output tile COGs (px) with --layout tiles")] = 8192,
    tile_size: Annotated[int, typer.Option(help="max tile side (px); smaller if the memory budget needs it")] = 1024,
    max_memory: Annotated[str, typer.Option(help="memory budget of the run, e.g. 2GB")] = "2GB",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (default: local cluster; 'sync': in-process)", envvar="SOILSUITE_SCHEDULER")] = None,
    n_workers: Annotated[int | None, typer.Option("--workers", help="local cluster workers (default: cores)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier run in --out (only the files soilsuite wrote; refuses if others are there)")] = False,
    force_clean: Annotated[bool, typer.Option(help=FORCE_CLEAN_HELP)] = False,
    on_error: Annotated[str, typer.Option(help="broken scene (asset unreadable or truncated, CRS mismatch): 'fail' stops naming it, 'skip' leaves it out and lists it in run.json and the summary")] = "fail",
    allow_partial_coverage: Annotated[bool, typer.Option(help="accept a --worldcover/--threshold-raster that covers only part of the area (warn instead of refusing)")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
):
    """Bare-soil composites (SRC), statistics (VPC, BSC, BSF, MREF) and MASK from a Sentinel-2 L2A archive."""
    from .pipeline.composite import build_config, run

    cfg = build_config(
        source=source, out=out, start=_date(start), end=_date(end), bbox=_bbox(bbox), area=area, tile=tile,
        collection=collection, crs=crs, resolution=resolution, worldcover=worldcover,
        threshold=threshold, threshold_raster=threshold_raster, max_cloud_cover=max_cloud_cover,
        min_sun_elevation=min_sun_elevation, dilation_px=dilation_px, max_sun_zenith=max_sun_zenith,
        max_nbr2=max_nbr2, blue_k_bare=blue_k_bare, blue_k_mref=blue_k_mref, min_bare_obs=min_bare_obs,
        ci_method=ci_method, periods=periods, layout=layout, out_tile_px=out_tile_px, tile_size=tile_size, max_memory=max_memory,
        scheduler=scheduler, n_workers=n_workers, overwrite=overwrite, force_clean=force_clean,
        on_error=on_error, allow_partial_coverage=allow_partial_coverage,
    )
    summary = run(cfg, progress=not quiet)
    if summary.already_complete:
        console.print(f"[green]already complete:[/] {out} holds a finished run of these parameters; nothing to do "
                      "(--overwrite recomputes it)")
        return
    print_summary(summary)


@app.command()
@_friendly
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="demo output folder")] = Path("demo_out"),
    size: Annotated[int, typer.Option(help="scene side in 20 m pixels")] = 256,
    start: Annotated[str, typer.Option(help="first date")] = "2021-01-01",
    end: Annotated[str, typer.Option(help="last date")] = "2022-12-31",
    seed: Annotated[int, typer.Option(help="simulator seed")] = 0,
    overwrite: Annotated[bool, typer.Option(help="replace an existing demo folder")] = False,
):
    """Simulate an archive, composite it, compare with the truth and map soil carbon."""
    from .demo import run_demo

    run_demo(out, size=size, start=start, end=end, seed=seed, overwrite=overwrite)


@app.command()
def version():
    """Print the soilsuite version and the versions of its key dependencies."""
    import importlib.metadata as md

    from . import __version__

    print(f"soilsuite {__version__}")
    for pkg in ("numpy", "numba", "rasterio", "xarray", "dask", "odc-stac", "pystac", "quantile-forest"):
        try:
            print(f"  {pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"  {pkg} (not installed)")


@app.command("export-force")
@_friendly
def export_force(
    source: Annotated[str, typer.Argument(help="STAC catalog/collection JSON (or folder), or STAC API URL")],
    out: Annotated[Path, typer.Option("--out", "-o", help="FORCE datacube folder (datacube-definition.prj + X####_Y#### tiles)")],
    start: Annotated[str, typer.Option(help="first day YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="last day YYYY-MM-DD (inclusive)")],
    bbox: Annotated[str | None, typer.Option(help="area: west,south,east,north in degrees (default: all items)")] = None,
    collection: Annotated[str | None, typer.Option(help="collection id (required for a STAC API)")] = None,
    crs: Annotated[str | None, typer.Option(help="projected CRS of the cube, e.g. EPSG:3035 (default: UTM zone of the area)")] = None,
    resolution: Annotated[float, typer.Option(help="pixel size (m)")] = 20.0,
    tile_size: Annotated[float, typer.Option(help="FORCE TILE_SIZE (m)")] = 30000.0,
    block_size: Annotated[float, typer.Option(help="FORCE BLOCK_SIZE (m)")] = 3000.0,
    origin: Annotated[str | None, typer.Option(help="grid origin x,y in the cube CRS (m); default: area corner snapped to the tile size")] = None,
    max_cloud_cover: Annotated[float, typer.Option(help="scene filter: max eo:cloud_cover (%)")] = 80.0,
    min_sun_elevation: Annotated[float, typer.Option(help="scene filter: min view:sun_elevation (deg)")] = 20.0,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier export in --out (only the files soilsuite wrote)")] = False,
    force_clean: Annotated[bool, typer.Option(help=FORCE_CLEAN_HELP)] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
):
    """Export the archive as a FORCE Level-2 datacube (BOA + QAI per date, FORCE tiles and .prj)."""
    from .io.force import export_force as _export_force

    xy = None
    if origin is not None:
        try:
            xy = tuple(float(v) for v in origin.replace(" ", "").split(","))
        except ValueError:
            raise typer.BadParameter(f"--origin expects two numbers x,y; got {origin!r}") from None
        if len(xy) != 2:
            raise typer.BadParameter(f"--origin expects two numbers x,y; got {len(xy)}")
    res = _export_force(
        source, out=out, start=_date(start), end=_date(end), bbox=_bbox(bbox), crs=crs,
        resolution=resolution, tile_size_m=tile_size, block_size_m=block_size, origin=xy,
        max_cloud_cover=max_cloud_cover, min_sun_elevation=min_sun_elevation, collection=collection,
        overwrite=overwrite, force_clean=force_clean, progress=not quiet,
    )
    if res.already_complete:
        console.print(f"[green]already complete:[/] {out} holds a finished export of these parameters; nothing to "
                      "do (--overwrite exports again)")
        return
    Console().print(res.summary())


def _register_subapps() -> None:
    from .cli_dsm import dsm_app

    app.add_typer(dsm_app, name="dsm")


_register_subapps()


def main() -> None:  # console-script entry point
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished tiles are kept; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
