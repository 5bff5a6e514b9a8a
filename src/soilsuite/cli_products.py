"""Commands that work on finished products: ``parcels``, ``export``, ``plot-pixel``,
``plot-parcel``, ``plot-years`` (registered on the main app by :func:`register`).

Thin: parse, call the API (:mod:`soilsuite.parcels`, :mod:`soilsuite.export`,
:mod:`soilsuite.plots`), report. Errors become one line and exit 2 (:func:`friendly`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Annotated

import typer

from .cli_common import OUTPUT, console, friendly, numbers
from .errors import ConfigError

__all__ = ["register"]

QUIET = typer.Option("--quiet", help="no progress bar", rich_help_panel=OUTPUT)
_SUMMARY_RE = re.compile(r"^([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+))?(?:>(-?[0-9.eE+-]+))?$")


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _summary_rule(text: str) -> tuple[str, str | None, float]:
    """``ploughing`` or ``PRODUCT[:STAT][>THRESHOLD]`` -> (product, stat, threshold)."""
    if text.lower() == "ploughing":
        return "PLOUGHED", "share_1", 0.0
    m = _SUMMARY_RE.match(text.replace(" ", ""))
    if not m:
        raise ConfigError(f"--summary {text!r}: expected 'ploughing' or PRODUCT[:STAT][>THRESHOLD], "
                          "e.g. MASK:share_1>0.5 or BSF:mean>0.3")
    return m.group(1).upper(), m.group(2), float(m.group(3)) if m.group(3) else 0.0


def parcels(
    products: Annotated[list[Path], typer.Argument(help="a composite output folder (window and periods) or product "
                                                        "files (COG/VRT)", show_default=False)],
    parcels: Annotated[Path, typer.Argument(help="parcel polygons: .gpkg .parquet .shp .fgb .geojson, or .csv with a "
                                                 "WKT column; any CRS", show_default=False)],
    id: Annotated[str, typer.Option("--id", help="column with the unique parcel id (the table's key)")],  # noqa: A002
    out: Annotated[Path, typer.Option("--out", "-o", help="table to write: .gpkg, .parquet (GeoParquet) or .csv")],
    names: Annotated[str | None, typer.Option(help="products to use, comma-separated (default: all found)")] = None,
    periods: Annotated[str | None, typer.Option(help="period labels to use, comma-separated, e.g. window,2021 "
                                                     "(default: all)")] = None,
    stats: Annotated[str, typer.Option(help="statistics of continuous products")] = "count,mean,median,min,max,std,"
                                                                                      "coverage",
    parcels_crs: Annotated[str | None, typer.Option(help="CRS of a CSV's WKT geometries (e.g. EPSG:4326); "
                                                         "overrides a file's CRS")] = None,
    wkt_column: Annotated[str | None, typer.Option(help="CSV column with the WKT geometry (default: wkt, "
                                                        "geometry, geom)")] = None,
    keep: Annotated[str | None, typer.Option(help="parcel columns to copy into the table, comma-separated")] = None,
    summary: Annotated[str | None, typer.Option(help="also write <out>_summary.csv: per period, the share of parcels "
                                                     "above a threshold: 'ploughing' (PLOUGHED:share_1>0) or "
                                                     "PRODUCT[:STAT][>THRESHOLD], e.g. MASK:share_1>0.5")] = None,
    summary_by: Annotated[str | None, typer.Option(help="break the summary down by this parcel column "
                                                        "(copied with --keep)")] = None,
    batch_size: Annotated[int, typer.Option(help="parcels per batch (bounded memory)")] = 2000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing table")] = False,
    quiet: Annotated[bool, QUIET] = False,
):
    """Exact-area zonal statistics of products over parcels (exactextract), one row per parcel."""
    from .parcels import ParcelWarning, parcel_stats, parcel_summary

    rule = _summary_rule(summary) if summary else None
    keep_cols = _names(keep) or []
    if summary_by and summary_by not in keep_cols:
        keep_cols.append(summary_by)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParcelWarning)
        res = parcel_stats(products if len(products) > 1 else products[0], parcels, id=id, out=out,
                           names=_names(names), periods=_names(periods), stats=_names(stats) or (),
                           parcels_crs=parcels_crs, wkt_column=wkt_column, keep=keep_cols, batch_size=batch_size,
                           overwrite=overwrite, progress=not quiet)
    for w in caught:
        if issubclass(w.category, ParcelWarning):
            console.print(f"[yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)
    console.print(f"{res.n_parcels} parcels x {len(res.products)} product file(s) -> {res.path} "
                  f"({len(res.columns)} statistics columns, {res.seconds:.1f} s)", highlight=False)
    if rule:
        product, stat, threshold = rule
        table = res.table if res.table is not None else res.path
        s = parcel_summary(table, product=product, stat=stat, threshold=threshold, by=summary_by)
        path = out.with_name(f"{out.stem}_summary.csv")
        if path.exists() and not overwrite:
            raise ConfigError(f"summary table {path} exists already; use --overwrite to replace it")
        tmp = path.with_name(path.name + ".tmp")
        s.to_csv(tmp, index=False)
        tmp.replace(path)
        from rich.table import Table

        t = Table(title=f"summary: {s['rule'].iloc[0]} -> {path}")
        for c in s.columns:
            if c != "rule":
                t.add_column(str(c))
        for _, row in s.iterrows():
            t.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for k, v in row.items() if k != "rule"))
        console.print(t)


def export(
    products: Annotated[list[Path], typer.Argument(help="a composite output folder or product files",
                                                   show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    crs: Annotated[str | None, typer.Option(help="target CRS, e.g. EPSG:25833 (default: the products' CRS)")] = None,
    res: Annotated[float | None, typer.Option("--res", help="target pixel size in target CRS units "
                                                            "(default: the products')")] = None,
    bbox: Annotated[str | None, typer.Option(help="target extent minx,miny,maxx,maxy in the target CRS "
                                                  "(default: the products' extent)", metavar="MINX,MINY,MAXX,MAXY")] = None,
    like: Annotated[Path | None, typer.Option(help="take the target grid (CRS, transform, size) from this "
                                                   "raster")] = None,
    format: Annotated[str, typer.Option("--format", help="cog, gtiff, netcdf or zarr")] = "cog",  # noqa: A002
    counts: Annotated[str, typer.Option(help="count products: 'nearest' (a pixel's count) or 'sum' (counts "
                                             "summed over the target pixel: totals stay consistent)")] = "nearest",
    names: Annotated[str | None, typer.Option(help="products to export, comma-separated (default: all)")] = None,
    periods: Annotated[str | None, typer.Option(help="period labels, comma-separated (default: all)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier export in OUT (only the "
                                                                "files soilsuite wrote)")] = False,
    force_clean: Annotated[bool, typer.Option("--force-clean", help="with --overwrite: also replace changed "
                                                                    "files, write beside files soilsuite did "
                                                                    "not write")] = False,
    quiet: Annotated[bool, QUIET] = False,
):
    """Resample products to another grid and format (per-product method from the catalogue)."""
    from .export import export_products

    r = export_products(products if len(products) > 1 else products[0], out, crs=crs, res=res,
                        bbox=numbers(bbox, 4, "--bbox", "minx,miny,maxx,maxy"), like=like, format=format,
                        counts=counts, names=_names(names), periods=_names(periods), overwrite=overwrite,
                        force_clean=force_clean, progress=not quiet)
    console.print(r.summary(), highlight=False)


def plot_pixel(
    source: Annotated[str, typer.Argument(help="a composite output folder (its run record gives the archive and "
                                               "options) or a STAC source", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    lon: Annotated[float | None, typer.Option(help="longitude of the pixel (degrees)")] = None,
    lat: Annotated[float | None, typer.Option(help="latitude of the pixel (degrees)")] = None,
    x: Annotated[float | None, typer.Option(help="x of the pixel in the grid's CRS")] = None,
    y: Annotated[float | None, typer.Option(help="y of the pixel in the grid's CRS")] = None,
    start: Annotated[str | None, typer.Option(help="first day (with a STAC source)")] = None,
    end: Annotated[str | None, typer.Option(help="last day (with a STAC source)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing PNG")] = False,
):
    """PV+IR2 time series of one pixel: bare, rejected (and why) observations, tillage events."""
    from .plots import plot_pixel as _plot

    r = _plot(source, out, lon=lon, lat=lat, x=x, y=y, start=start, end=end, overwrite=overwrite)
    console.print(r.summary(), highlight=False)


def plot_parcel(
    source: Annotated[str, typer.Argument(help="a composite output folder or a STAC source", show_default=False)],
    parcels: Annotated[Path, typer.Option("--parcels", help="parcel file (as for soilsuite parcels)")],
    parcel: Annotated[str, typer.Option("--parcel", help="the id of the parcel to plot")],
    id: Annotated[str, typer.Option("--id", help="the parcel file's id column")],  # noqa: A002
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    parcels_crs: Annotated[str | None, typer.Option(help="CRS of a CSV's WKT geometries")] = None,
    start: Annotated[str | None, typer.Option(help="first day (with a STAC source)")] = None,
    end: Annotated[str | None, typer.Option(help="last day (with a STAC source)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing PNG")] = False,
):
    """PV+IR2 time series of a parcel (median of its pixels) with bare/rejected shares and tillage events."""
    from .plots import plot_parcel as _plot

    r = _plot(source, out, parcels=parcels, parcel=parcel, id=id, parcels_crs=parcels_crs, start=start, end=end,
              overwrite=overwrite)
    console.print(r.summary(), highlight=False)


def plot_years(
    products: Annotated[Path, typer.Argument(help="a composite output folder with periods", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")],
    product: Annotated[str, typer.Option(help="the product to show per period")] = "BSF",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing PNG")] = False,
):
    """A panel of per-period maps of a product (default BSF) with one colour bar."""
    from .plots import plot_years as _plot

    r = _plot(products, out, product=product, overwrite=overwrite)
    console.print(r.summary(), highlight=False)


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the main app."""
    app.command("parcels")(friendly(parcels))
    app.command("export")(friendly(export))
    app.command("plot-pixel")(friendly(plot_pixel))
    app.command("plot-parcel")(friendly(plot_parcel))
    app.command("plot-years")(friendly(plot_years))
