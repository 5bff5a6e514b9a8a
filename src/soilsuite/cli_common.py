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


# ----------------------------------------------------------------------------- options
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
    kwargs.setdefault("show_default", default not in (None, False, ...))
    return typer.Option(default, *decls, help=field.description, rich_help_panel=panel, **kwargs)


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
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            lines = one_line(exc)
            if lines is None:
                raise  # a bug: keep the traceback
            from rich.markup import escape

            for line in lines:
                console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

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
    t.add_row("tiles", f"{summary.tiles} of {summary.tile_side} px ({summary.tiles_resumed} resumed)")
    t.add_row("time", f"{summary.seconds:.1f} s")
    t.add_row("products", ", ".join(summary.products))
    t.add_row("quicklooks", "\n".join(summary.quicklooks))
    Console().print(t)
