"""Command-line interface (typer). Thin: parse, build the config, call the API, report.

Every error soilsuite raises on purpose (:class:`~soilsuite.errors.SoilsuiteError`) is shown
as one clear line and exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

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


def _friendly(fn):
    """Turn SoilsuiteError and pydantic validation errors into one clear line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        try:
            return fn(*args, **kwargs)
        except SoilsuiteError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "options"
                console.print(f"[bold red]error:[/] option {loc}: {err['msg']}")
            raise typer.Exit(2) from None

    return wrapper


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
    overwrite: Annotated[bool, typer.Option(help="replace an existing archive")] = False,
):
    """Write a synthetic Sentinel-2 L2A archive with known truth (static STAC catalog of COGs)."""
    from .sources.simulate import simulate as _simulate

    res = _simulate(
        out, size=size, start=_date(start), end=_date(end), revisit_days=revisit_days, seed=seed,
        epsg=epsg, cloud_fraction=cloud_fraction, overwrite=overwrite, progress=True,
    )
    console.print(res.summary())


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


def main() -> None:  # console-script entry point
    try:
        app()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished tiles are kept; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
