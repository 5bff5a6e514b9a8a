"""What the command-line apps share: error lines, option helpers, the run summary table.

:mod:`soilsuite.cli` and :mod:`soilsuite.cli_dsm` (and the demo) import from here, so no
module imports :mod:`soilsuite.cli`. Every error soilsuite raises on purpose
(:class:`~soilsuite.errors.SoilsuiteError`) is shown as one clear line and exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import typer
from rich.console import Console

from .config import parse_date
from .errors import ConfigError, SoilsuiteError, exception_chain

#: Messages (errors, warnings, notes) go to stderr; results to stdout.
console = Console(stderr=True)

# rich help panels of `soilsuite composite --help` (and `export-force`)
AREA, TIME, METHOD, ENGINE, OUTPUT = "Input and area", "Time", "Method", "Engine", "Output"
#: ``--quiet`` of the commands that run a job (composite, export-force, ingest, calibrate-threshold...)
QUIET = typer.Option("--quiet", "-q", help="only warnings and errors", rich_help_panel=OUTPUT, metavar="")
#: The SOURCE argument of the commands that read an archive of scenes
SOURCE = typer.Argument(help="STAC catalog/folder, STAC API URL or SAFE folder/zip(s)", metavar="SOURCE",
                        show_default=False)
#: Panel of the rarely used options (listed last, with a short help each).
ADVANCED = "Advanced"

#: Rarely used options: moved to the :data:`ADVANCED` panel with this short help (the full
#: text is the field's description in :mod:`soilsuite.config`, shown in the docs).
ADVANCED_HELP: dict[str, str] = {
    "period_blue_filter": "window or exact",
    "barest_k": "barest: k lowest obs.",
    "barest_index": "barest: pvir2 or ndvi",
    "grassland": "ploughing: grassland polygons",
    "erosivity": "erosion: monthly erosivity",
    "blue_filter": "blue filter on/off",
    "src_estimator": "SRC: mean or dry",
    "src_dry_share": "dry SRC: share kept",
    "read_path": "COG reads: auto/general/mean",
    "collection": "STAC API collection id",
    "resolution": "pixel size (m)",
    "on_error": "bad scenes",
    "allow_partial_coverage": "warn on partial cover",
    "max_sun_zenith": "max sun zenith, deg",
    "dilation_px": "cloud dilation (px)",
    "blue_k_bare": "blue outlier k, SRC",
    "blue_k_mref": "blue outlier k, MREF",
    "min_bare_obs": "min bare obs., SRC",
    "ci_method": "CI: t or z (1.96)",
    "tillage_max_gap_days": "tillage gap (days)",
    "min_ploughing_obs": "ploughing: min obs.",
    "tile_size": "tile side (px)",
    "max_memory": "memory budget",
    "scheduler": "Dask address or sync",
    "n_workers": "local Dask workers",
    "local_engine": "workers: threads or processes",
    "cog_tile_px": "COG tile side (px)",
    "stac_hrefs": "STAC href style",
    "force_clean": "also replace changed files",
    "force_block_m": "FORCE block height (m)",
    "origin": "FORCE grid origin x,y",
}
#: One-line help of common options whose description in :mod:`soilsuite.config` is long.
SHORT_HELP: dict[str, str] = {
    "profile": "method preset",
    "start": "first day (inclusive)",
    "end": "last day (inclusive)",
    "periods": "also per year, season...",
    "bbox": "area: lon/lat box",
    "area": "area: a vector file",
    "mgrs": "area: an MGRS tile, e.g. 33UUU",
    "crs": "target CRS (default: UTM of the area)",
    "max_cloud_cover": "max cloud cover (%)",
    "min_sun_elevation": "min sun elevation (deg)",
    "selector": "see docs/selectors.md",
    "threshold": "bare if PV+IR2 <= this",
    "threshold_raster": "raster of regional thresholds",
    "worldcover": "WorldCover: built-up, water never bare",
    "dry_guard": "dry-vegetation guard: NBR2 <= this",
    "edge_guard": "edge guard: N of 8 neighbours bare",
    "temporal": "bare dates, episodes, tillage events",
    "ploughing": "grassland ploughing flag",
    "erosion": "monthly BSF and C-factor",
    "provenance": "observations removed per rule",
    "out": "output folder",
    "layout": "single, tiles or auto",
    "overwrite": "replace an earlier run (its own files)",
}


# ----------------------------------------------------------------------------- options
class PanelCommand(typer.core.TyperCommand):
    """A command whose ``--help`` lists the :data:`ADVANCED` panel last and ``--help`` itself in
    the Output panel (no panel of its own): ``@app.command(cls=PanelCommand)``."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if p.name == "help":
                p.rich_help_panel = OUTPUT
        return sorted(params, key=lambda p: getattr(p, "rich_help_panel", None) == ADVANCED)


def opt(model: type, name: str, *decls: str, panel: str | None = None, **kwargs: Any) -> Any:
    """A typer option whose default and help text come from a field of a pydantic model.

    Parameters
    ----------
    model : type
        A pydantic model of :mod:`soilsuite.config`, e.g. ``BareOptions``.
    name : str
        The field name; the flag is ``--<name with dashes>`` unless ``decls`` are given.
    *decls : str
        Flag spellings, e.g. ``"--workers"``.
    panel : str, optional
        The rich help panel (:data:`AREA`, :data:`TIME`, :data:`METHOD`, :data:`ENGINE`,
        :data:`OUTPUT`).
    **kwargs
        More :func:`typer.Option` arguments (``envvar``, ...).

    Returns
    -------
    typer.models.OptionInfo
        For use as the parameter's default (``threshold: float = opt(BareOptions, "threshold")``).
        A boolean field is one flag (``--overwrite``), without a ``--no-`` twin; a field without
        a default (required) is required on the command line too.
    """
    field = model.model_fields[name]
    default = ... if field.is_required() else field.default
    if field.annotation is bool and not decls:
        decls = (f"--{name.replace('_', '-')}",)
    if field.annotation is bool:
        kwargs.setdefault("metavar", "")  # a flag: no type column
    kwargs.setdefault("show_default", default not in (None, False, ...))
    help_text = SHORT_HELP.get(name, field.description)
    if name in ADVANCED_HELP and not field.is_required():
        panel, help_text = ADVANCED, ADVANCED_HELP[name]
    return typer.Option(default, *decls, help=kwargs.pop("help", help_text), rich_help_panel=panel, **kwargs)


def hidden_alias(flag: str) -> Any:
    """A hidden option for a flag of an earlier release (see :func:`deprecated_alias`)."""
    return typer.Option(None, flag, hidden=True)


def deprecated_alias(value: Any, old_value: Any, old: str, new: str, default: Any = None) -> Any:
    """The option value, taken from the old spelling ``old`` (with a one-line note) if it was used.

    Parameters
    ----------
    value : object
        The value of the option under today's name ``new``.
    old_value : object
        The value given under the old name (None if not given).
    old, new : str
        The flags, e.g. ``"--tile"`` and ``"--mgrs"``.
    default : object
        The default of ``new``: a value other than it means ``new`` was given too, which is refused.
    """
    if old_value is None:
        return value
    if value is not None and value != default:
        raise ConfigError(f"{old} is the old spelling of {new}: give one of them, not both")
    console.print(f"[yellow]deprecated:[/] {old} is now {new}; the old spelling goes in the next release",
                  highlight=False)
    return old_value


def cli_date(text: str, name: str) -> dt.date:
    """``YYYY-MM-DD`` -> date; the message names the option (:func:`soilsuite.config.parse_date`)."""
    return parse_date(text, f"--{name}")


def numbers(text: str | None, n: int, flag: str, names: str) -> tuple[float, ...] | None:
    """``"1,2,3,4"`` -> ``(1.0, 2.0, 3.0, 4.0)``: ``n`` comma-separated numbers, or None.

    Parameters
    ----------
    text : str or None
        The option text; None gives None.
    n : int
        How many numbers are expected.
    flag, names : str
        The flag and the meaning of the numbers for the message, e.g. ``"--bbox"``,
        ``"west,south,east,north"``.
    """
    if text is None:
        return None
    what = {2: "two", 4: "four"}.get(n, str(n))
    try:
        parts = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise typer.BadParameter(f"{flag} expects {what} numbers {names}; got {text!r}") from None
    if len(parts) != n:
        raise typer.BadParameter(f"{flag} expects {what} numbers {names}; got {len(parts)}")
    return parts


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``--bbox west,south,east,north`` (degrees) -> a tuple, or None."""
    return numbers(text, 4, "--bbox", "west,south,east,north")  # type: ignore[return-value]


# ----------------------------------------------------------------------------- batch output
#: ``--log-json``: progress, messages, errors and a last ``done`` record as JSON lines on stderr.
LOG_JSON = typer.Option("--log-json", help="JSON lines on stderr (batch systems)", rich_help_panel=OUTPUT,
                        metavar="")


_SHOWWARNING = None  # warnings.showwarning before batch_output changed it


def batch_output(quiet: bool, log_json: bool, **start: Any) -> None:
    """Set the progress output for ``--quiet`` / ``--log-json`` (:func:`soilsuite.progress.set_output`).

    With ``--log-json`` a ``start`` record (``start`` fields, e.g. the command) is written, Python
    warnings become ``warning`` records, the console prints nothing (every line on stderr is
    JSON) and errors become ``error`` records (:func:`friendly`). With ``--quiet`` no progress
    and no summary: a successful run prints nothing, warnings and errors still print. Without
    either, the defaults are restored (the CLI may be called again in the same process, e.g. by
    tests).
    """
    import logging
    import warnings

    from .progress import emit, set_output

    global _SHOWWARNING
    if _SHOWWARNING is None:
        _SHOWWARNING = warnings.showwarning
    mode = "json" if log_json else "quiet" if quiet else "rich"
    set_output(mode)
    console.quiet = mode == "json"
    logging.getLogger("distributed").setLevel(logging.WARNING if mode == "rich" else logging.ERROR)
    if mode == "rich":
        warnings.showwarning = _SHOWWARNING
    elif mode == "json":
        def showwarning(message, category, filename, lineno, file=None, line=None):
            emit("warning", message=str(message), category=category.__name__)

        warnings.showwarning = showwarning
        emit("start", **{k: str(v) for k, v in start.items()})
    else:
        warnings.showwarning = _SHOWWARNING


def report_done(summary) -> None:
    """The last record of a ``--log-json`` run (nothing with ``--quiet``): where, how long, what."""
    from .progress import emit

    fields = {"out": str(summary.out), "seconds": round(float(summary.seconds), 2),
              "already_complete": bool(getattr(summary, "already_complete", False))}
    if getattr(summary, "provenance_share", None):  # --provenance: shares of the area's observations per rule
        fields["provenance_share"] = summary.provenance_share
    for k in ("tiles", "tiles_resumed", "n_observations", "mean_bsf", "mask_share", "products"):
        v = getattr(summary, k, None)
        if v is not None:
            fields[k] = v if not isinstance(v, float) or v == v else None
    emit("done", status="ok", **fields)


# ----------------------------------------------------------------------------- errors
def one_line(exc: BaseException) -> list[str] | None:
    """The one-line message(s) for an error caused by input or the machine, else None.

    The one place where errors become user messages: soilsuite's own errors, pydantic
    validation, a full disk (ENOSPC anywhere in the chain), a permission problem, and known
    third-party error types raised by bad input (pystac, rasterio/GDAL, Dask workers).
    Anything else is a bug and keeps its traceback.
    """
    import errno

    from pydantic import ValidationError

    for e in exception_chain(exc):  # a full disk, however deep it was wrapped
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
            where = getattr(e, "filename", None) or next(
                (x.filename for x in exception_chain(exc) if getattr(x, "filename", None)), None)
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


def friendly(fn):
    """Turn errors from input or the machine (:func:`one_line`) into one clear line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .progress import emit, output_mode

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            lines = one_line(exc)
            if lines is None:
                if output_mode() == "json":  # a bug: its traceback follows, but the log says so first
                    emit("error", message=f"{type(exc).__name__}: {exc}", bug=True)
                    emit("done", status="error", exit_code=1)
                raise  # a bug: keep the traceback
            from rich.markup import escape

            for line in lines:
                if output_mode() == "json":
                    emit("error", message=line)
                else:
                    console.quiet = False  # --quiet still prints errors
                    console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            if output_mode() == "json":
                emit("done", status="error", exit_code=2)
            raise typer.Exit(2) from None
        finally:
            if output_mode() != "rich":  # --quiet / --log-json end with the command (in-process callers)
                batch_output(False, False)

    return wrapper


# ----------------------------------------------------------------------------- reports
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
    for rule, share in (getattr(summary, "provenance_share", None) or {}).items():  # --provenance
        t.add_row("  provenance", f"{100 * share:5.1f} %  {rule}")
    t.add_row("tiles", f"{summary.tiles} of {summary.tile_side} px ({summary.tiles_resumed} resumed)")
    t.add_row("time", f"{summary.seconds:.1f} s")
    t.add_row("products", ", ".join(summary.products))
    t.add_row("quicklooks", "\n".join(summary.quicklooks))
    Console().print(t)
