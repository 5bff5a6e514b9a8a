"""Command-line interface (typer). Thin: parse, build the config, call the API, report.

Every error soilsuite raises on purpose (:class:`~soilsuite.errors.SoilsuiteError`) is shown
as one clear line and exits with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import cli_options as G
from .cli_common import (
    AREA,
    ENGINE,
    LOG_JSON,
    METHOD,
    OUTPUT,
    QUIET,
    TIME,
    PanelCommand,
    batch_output,
    cli_date,
    console,
    deprecated_alias,
    friendly,
    hidden_alias,
    numbers,
    opt,
    print_summary,
    report_done,
)
from .config import (
    BareOptions,
    CompositeConfig,
    EngineOptions,
    ForceExportConfig,
    LayerOptions,
)

__all__ = ["app", "console", "main", "print_summary"]

app = typer.Typer(
    name="soilsuite",
    help="Soil Composite Mapping Processor: bare-soil composites and soil maps from Sentinel-2 L2A.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
FORCE_CLEAN_HELP = CompositeConfig.model_fields["force_clean"].description
LAYERS = "Optional layers (docs/temporal.md)"


@app.command()
@friendly
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
    ploughed_grassland: Annotated[float, typer.Option(help="share (0-1) of grassland fields ploughed once (truth/events.json)")] = 0.0,
    regional_brightness: Annotated[float, typer.Option(help="amplitude (0-0.5) of regionally varying soil NIR brightness: a varying true PV+IR2 threshold (truth/threshold.tif)")] = 0.0,
    spectra: Annotated[str, typer.Option(help="endmember spectra: 'v1' (earlier releases) or 'field' (fitted to field sites, docs/simulator.md)")] = "v1",
):
    """Write a synthetic Sentinel-2 L2A archive with known truth (static STAC catalog of COGs)."""
    from .sources.simulate import simulate as _simulate

    res = _simulate(
        out, size=size, start=cli_date(start, "start"), end=cli_date(end, "end"), revisit_days=revisit_days, seed=seed,
        epsg=epsg, cloud_fraction=cloud_fraction, overwrite=overwrite, force_clean=force_clean, progress=True,
        hrefs=hrefs, format=format, safe_zip=safe_zip, ploughed_grassland=ploughed_grassland,
        regional_brightness=regional_brightness, spectra=spectra,
    )
    console.print(res.summary())


@app.command("index-safe")
@friendly
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


@app.command(cls=PanelCommand)
@friendly
@G.with_option_groups
def composite(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="STAC catalog/folder, STAC API URL, SAFE folder/zip(s) or a Zarr "
                                               "cube from `soilsuite ingest`",
                                          metavar="SOURCE", show_default=False)],
    window: dict = G.time_options(CompositeConfig),
    periods: str = opt(CompositeConfig, "periods", panel=TIME),
    period_blue_filter: str = opt(CompositeConfig, "period_blue_filter", panel=TIME),
    where: dict = G.area_options(CompositeConfig),
    on_error: str = opt(CompositeConfig, "on_error", panel=AREA),
    allow_partial_coverage: bool = opt(CompositeConfig, "allow_partial_coverage", panel=AREA),
    scene: dict = G.scene_options(),
    mask: dict = G.mask_options(),
    selector: str = opt(BareOptions, "selector", panel=METHOD),
    threshold: float = opt(BareOptions, "threshold", panel=METHOD),
    threshold_raster: Path | None = opt(BareOptions, "threshold_raster", panel=METHOD),
    worldcover: Path | None = opt(CompositeConfig, "worldcover", panel=METHOD),
    dry_guard: float | None = opt(BareOptions, "dry_guard", panel=METHOD),
    max_nbr2: float | None = typer.Option(None, "--max-nbr2", help="alias of --dry-guard", hidden=True),
    edge_guard: int | None = opt(BareOptions, "edge_guard", panel=METHOD),
    barest_k: int | None = opt(BareOptions, "barest_k", panel=METHOD),
    barest_index: str | None = opt(BareOptions, "barest_index", panel=METHOD),
    blue_filter: str = opt(BareOptions, "blue_filter", panel=METHOD),
    blue_k_bare: float = opt(BareOptions, "blue_k_bare", panel=METHOD),
    blue_k_mref: float = opt(BareOptions, "blue_k_mref", panel=METHOD),
    min_bare_obs: int = opt(BareOptions, "min_bare_obs", panel=METHOD),
    ci_method: str = opt(BareOptions, "ci_method", panel=METHOD),
    profile: str = opt(CompositeConfig, "profile", panel=METHOD),
    src_estimator: str = opt(BareOptions, "src_estimator", panel=METHOD),
    src_dry_share: float = opt(BareOptions, "src_dry_share", panel=METHOD),
    temporal: bool = opt(LayerOptions, "temporal", panel=LAYERS),
    tillage_max_gap_days: int = opt(LayerOptions, "tillage_max_gap_days", panel=LAYERS),
    ploughing: bool = opt(LayerOptions, "ploughing", panel=LAYERS),
    grassland: Path | None = opt(LayerOptions, "grassland", panel=LAYERS),
    min_ploughing_obs: int = opt(LayerOptions, "min_ploughing_obs", panel=LAYERS),
    erosion: bool = opt(LayerOptions, "erosion", panel=LAYERS),
    erosivity: Path | None = opt(LayerOptions, "erosivity", panel=LAYERS),
    provenance: bool = opt(LayerOptions, "provenance", panel=LAYERS),
    engine: dict = G.engine_options(),
    read_path: str | None = opt(EngineOptions, "read_path", panel=ENGINE, envvar="SOILSUITE_READ_PATH",
                                show_envvar=False),
    out: Path = opt(CompositeConfig, "out", "--out", "-o", panel=OUTPUT),
    layout: str = opt(CompositeConfig, "layout", panel=OUTPUT),
    cog_tile_px: int = opt(CompositeConfig, "cog_tile_px", panel=OUTPUT),
    stac_hrefs: str = opt(CompositeConfig, "stac_hrefs", panel=OUTPUT),
    overwrite: bool = opt(CompositeConfig, "overwrite", panel=OUTPUT),
    force_clean: bool = opt(CompositeConfig, "force_clean", panel=OUTPUT),
    quiet: Annotated[bool, QUIET] = False,
    log_json: Annotated[bool, LOG_JSON] = False,
    tile: str | None = hidden_alias("--tile"),
    out_tile_px: int | None = hidden_alias("--out-tile-px"),
):
    """Bare-soil composites (SRC), statistics (VPC, BSC, BSF, MREF) and MASK from Sentinel-2 L2A."""
    # defaults and help come from soilsuite.config (one place for both)
    from .pipeline.composite import build_config, run

    batch_output(quiet, log_json, command="composite", out=out)
    from .profiles import cli_value

    # left at its default: the profile's value
    threshold, src_estimator, src_dry_share = (cli_value(ctx, profile, n, v) for n, v in (
        ("threshold", threshold), ("src_estimator", src_estimator), ("src_dry_share", src_dry_share)))
    cfg = build_config(
        source=source, out=out, **window, **{**where, "mgrs": deprecated_alias(where["mgrs"], tile, "--tile", "--mgrs")},
        worldcover=worldcover, selector=selector, threshold=threshold, threshold_raster=threshold_raster, **scene,
        **mask, dry_guard=dry_guard, max_nbr2=max_nbr2, edge_guard=edge_guard, barest_k=barest_k, barest_index=barest_index,
        blue_filter=blue_filter, blue_k_bare=blue_k_bare, blue_k_mref=blue_k_mref, min_bare_obs=min_bare_obs,
        ci_method=ci_method, profile=profile, src_estimator=src_estimator, src_dry_share=src_dry_share,
        periods=periods, period_blue_filter=period_blue_filter, temporal=temporal,
        tillage_max_gap_days=tillage_max_gap_days, ploughing=ploughing, grassland=grassland,
        min_ploughing_obs=min_ploughing_obs, erosion=erosion, erosivity=erosivity, provenance=provenance,
        layout=layout,
        cog_tile_px=deprecated_alias(cog_tile_px, out_tile_px, "--out-tile-px", "--cog-tile-px",
                                     CompositeConfig.model_fields["cog_tile_px"].default),
        stac_hrefs=stac_hrefs,
        **engine, read_path=read_path,
        overwrite=overwrite,
        force_clean=force_clean, on_error=on_error, allow_partial_coverage=allow_partial_coverage,
    )
    summary = run(cfg, progress=not quiet)
    if log_json or (quiet and not summary.already_complete):
        return report_done(summary)
    if summary.already_complete:  # said even with --quiet: the command did nothing
        console.print(f"[green]already complete:[/] {out} holds a finished run of these parameters; nothing to do "
                      "(--overwrite recomputes it)")
        return
    print_summary(summary)


@app.command()
@friendly
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


F = ForceExportConfig


@app.command("export-force", cls=PanelCommand)
@friendly
@G.with_option_groups
def export_force(
    source: Annotated[str, typer.Argument(help="STAC catalog JSON or folder, or STAC API URL", metavar="SOURCE",
                                          show_default=False)],
    window: dict = G.time_options(F),
    where: dict = G.area_options(F, ("collection", "bbox", "crs", "resolution")),
    force_tile_m: float = opt(F, "force_tile_m", panel=AREA),
    force_block_m: float = opt(F, "force_block_m", panel=AREA),
    origin: str | None = opt(F, "origin", panel=AREA, metavar="X,Y"),
    scene: dict = G.scene_options(),
    out: Path = opt(F, "out", "--out", "-o", panel=OUTPUT),
    overwrite: bool = opt(F, "overwrite", panel=OUTPUT),
    force_clean: bool = opt(F, "force_clean", panel=OUTPUT),
    quiet: Annotated[bool, QUIET] = False,
    tile_size: float | None = hidden_alias("--tile-size"),
    block_size: float | None = hidden_alias("--block-size"),
):
    """Export the archive as a FORCE Level-2 datacube (BOA + QAI per date, FORCE tiles and .prj)."""
    from rich.console import Console

    from .io.force import export_force as _export_force

    batch_output(quiet, False)

    res = _export_force(
        source, out=out, **window, **where, force_tile_m=deprecated_alias(force_tile_m, tile_size, "--tile-size", "--force-tile-m",
                                                                   ForceExportConfig.model_fields["force_tile_m"].default),
        force_block_m=deprecated_alias(force_block_m, block_size, "--block-size", "--force-block-m",
                                       ForceExportConfig.model_fields["force_block_m"].default),
        origin=numbers(origin, 2, "--origin", "x,y"), **scene, overwrite=overwrite, force_clean=force_clean,
        progress=not quiet,
    )
    if res.already_complete:
        console.print(f"[green]already complete:[/] {out} holds a finished export of these parameters; nothing to "
                      "do (--overwrite exports again)")
        return
    if not quiet:
        Console().print(res.summary())


@app.command()
@friendly
def serve(
    out_dir: Annotated[Path, typer.Argument(help="a product folder (composite run, per-year products, soil maps)",
                                            metavar="OUT_DIR", show_default=False)],
    port: Annotated[int, typer.Option(help="TCP port (0: any free port)")] = 8765,
    host: Annotated[str, typer.Option(help="loopback address to listen on (the viewer never listens on others)")] = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="open the page in the default web browser")] = False,
):
    """Local web map of a product folder: every layer, legends, pixel values, PV+IR2 series."""
    from .viewer import check_host, discover_layers
    from .viewer import serve as _serve

    check_host(host)
    n = len(discover_layers(out_dir)) if Path(out_dir).is_dir() else 0

    def ready(url: str) -> None:
        console.print(f"soilsuite viewer of {out_dir} ({n} layers) at [bold]{url}[/] (Ctrl-C stops it)",
                      highlight=False)
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    _serve(out_dir, port=port, host=host, ready=ready)


@app.command()
@friendly
def stac(
    out_dir: Annotated[Path, typer.Argument(help="a product folder written by `soilsuite composite`",
                                            metavar="OUT_DIR", show_default=False)],
    absolute: Annotated[bool, typer.Option("--absolute/--relative",
                                           help="asset hrefs as absolute file:// URIs (stackstac, a STAC API) "
                                                "or relative to each JSON file (a movable folder)")] = False,
):
    """Rewrite a product folder's STAC asset hrefs and self links for where the folder is now."""
    from .io.stac import rewrite_hrefs, validate_output_catalog

    paths = rewrite_hrefs(out_dir, "absolute" if absolute else "relative")
    ok, errors = validate_output_catalog(out_dir)
    if not ok:
        from .errors import InputError

        raise InputError(f"{out_dir}: STAC rewritten, but it does not validate: {'; '.join(errors[:3])}")
    console.print(f"{len(paths)} STAC file(s) in {out_dir}: asset hrefs {'absolute' if absolute else 'relative'}")


@app.command()
@friendly
def qgis(
    out_dir: Annotated[Path, typer.Argument(help="a product folder (composite run or soil maps)", metavar="OUT_DIR",
                                            show_default=False)],
):
    """Write QGIS styles (.qml) beside every product and a grouped project (soilsuite.qgs)."""
    from .errors import InputError
    from .io.qgis import update_folder

    if not Path(out_dir).is_dir():
        raise InputError(f"{out_dir} is not a folder")
    written, skipped = update_folder(out_dir)
    console.print(f"{len(written)} QGIS file(s) written in {out_dir} (styles .qml, project soilsuite.qgs)")
    if skipped:
        names = ", ".join(str(p) for p in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        console.print(f"{len(skipped)} left alone (not written by soilsuite, or changed since): {names}")


def _register_subapps() -> None:
    from . import cli_dsm_compare  # noqa: F401 - registers `dsm compare` on dsm_app
    from .cli_dsm import dsm_app
    from .cli_products import register as register_product_commands

    app.add_typer(dsm_app, name="dsm")
    register_product_commands(app)  # parcels, export, plot-pixel, plot-parcel, plot-years
    from .cli_thresholds import register as register_threshold_commands

    register_threshold_commands(app)  # calibrate-threshold, threshold-sweep
    from .cli_ingest import register as register_ingest

    register_ingest(app)  # ingest (the archive as a Zarr cube)


_register_subapps()


def main() -> None:  # console-script entry point
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished tiles are kept; run the same command again to resume")
        sys.exit(130)
    finally:
        # The command is done and its files are closed: spare the interpreter's final garbage
        # collection over every module the command imported (0.5-1 s after a composite;
        # bench/bench_startup.py). Refcounting, atexit handlers and weakref finalizers still run.
        import gc

        gc.freeze()


if __name__ == "__main__":
    main()
