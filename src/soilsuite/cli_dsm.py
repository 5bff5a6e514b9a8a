"""``soilsuite dsm``: digital soil mapping from samples and the composites (train, validate, predict).

Thin: parse the options, call :mod:`soilsuite.dsm`, report. Errors raised on purpose
(:class:`~soilsuite.errors.SoilsuiteError`) are shown as one line and exit with code 2, as in
the main CLI (:func:`soilsuite.cli_common.friendly`).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .cli_common import console, friendly
from .cli_options import OptionGroup, with_option_groups
from .errors import ConfigError, check_choice

_HELP = "Digital soil mapping: quantile regression forest maps of soil properties with uncertainty."
dsm_app = typer.Typer(name="dsm", help=_HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)


def _friendly(fn):
    """The main CLI's error handling (:func:`~soilsuite.cli_common.friendly`), and warnings shown once."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with warnings.catch_warnings(record=True) as caught:
                try:
                    return friendly(fn)(*args, **kwargs)
                finally:
                    _show_warnings(caught)

    return wrapper


def _show_warnings(caught) -> None:
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg in seen:
            continue
        seen.add(msg)
        if issubclass(w.category, UserWarning):
            console.print(f"[yellow]warning:[/] {msg}")


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """``["soc=%", "clay=g/kg"]`` -> dict; ``what`` names the option in messages."""
    out: dict[str, str] = {}
    for v in values or []:
        k, sep, val = v.partition("=")
        if not sep or not k.strip() or not val.strip():
            raise ConfigError(f"{what} expects NAME=VALUE, got {v!r}")
        out[k.strip()] = val.strip()
    return out


def _covariates(values: list[str] | None) -> dict[str, str]:
    """``--covariate name=PATH`` or ``--covariate PATH`` (named after the file stem)."""
    out: dict[str, str] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).stem, v
        name = name.strip()
        if name in out:
            raise ConfigError(f"--covariate {name!r} given twice; name them NAME=PATH")
        out[name] = path.strip()
    return out


#: The SAMPLES argument and ``--property`` of ``dsm train`` and ``dsm compare``
SAMPLES = typer.Argument(help="sample points: CSV (with --x/--y/--crs), GeoPackage, GeoParquet, Shapefile")
PROPERTY = typer.Option("--property", "-p", help="property to model: key (soc, phh2o, clay ...) or key=COLUMN")
#: ``--dem`` help (train and compare say more or less of the derivatives)
DEM_HELP = "DEM raster: adds it and its terrain derivatives"


def sample_options(dem_help: str = DEM_HELP) -> OptionGroup:
    """The samples' and covariates' options of ``dsm train`` and ``dsm compare`` (one dict for
    :func:`samples_and_stack`)."""
    return OptionGroup((
        ("products", Path | None, typer.Option(None, help="soilsuite product folder (covariates by name)")),
        ("product", list[str] | None, typer.Option(None, "--product", help="product to use (repeatable); default "
                                                                           "SRC_MEAN and BSF")),
        ("covariate", list[str] | None, typer.Option(None, "--covariate", "-c", help="user raster NAME=PATH or PATH "
                                                                                     "(repeatable; any CRS/resolution)")),
        ("dem", Path | None, typer.Option(None, help=dem_help)),
        ("indices", bool, typer.Option(False, help="add spectral indices of SRC_MEAN (NDVI, NBR2, ...)")),
        ("x", str | None, typer.Option(None, help="CSV: x/longitude column")),
        ("y", str | None, typer.Option(None, help="CSV: y/latitude column")),
        ("crs", str | None, typer.Option(None, help="CRS of the CSV coordinates, e.g. EPSG:25833")),
        ("unit", list[str] | None, typer.Option(None, help="unit of a property column, e.g. soc=% (converted)")),
        ("unit_check", str, typer.Option("error", help="suspected unit mix-up: error, warn or off")),
        ("duplicates", str, typer.Option("keep", help="samples at one location: keep, mean or first")),
    ))


def samples_and_stack(samples: Path, prop: str, o: dict):
    """(property key, samples, covariate stack) from the options of :func:`sample_options`."""
    from . import dsm

    key = prop.partition("=")[0].strip()
    s = dsm.read_samples(samples, [prop], x=o["x"], y=o["y"], crs=o["crs"], units=_pairs(o["unit"], "--unit"),
                         unit_check=o["unit_check"], duplicates=o["duplicates"])
    rasters = _covariates(o["covariate"])
    if o["dem"] is not None:
        if "dem" in rasters:
            raise ConfigError("--dem given and a --covariate named 'dem'; use one")
        rasters["dem"] = str(o["dem"])
    if o["products"] is None and not rasters:
        raise ConfigError("no covariates: give --products and/or --covariate/--dem")
    names = o["product"] or (["SRC_MEAN", "BSF"] if o["products"] is not None else [])
    stack = dsm.build_stack(o["products"], names, rasters, terrain=o["dem"] is not None, indices=o["indices"])
    return key, s, stack


@dsm_app.command()
@_friendly
@with_option_groups
def train(
    samples: Annotated[Path, SAMPLES],
    prop: Annotated[str, PROPERTY],
    model_out: Annotated[Path, typer.Option("--model-out", "-m", help="model file to write (.joblib)")],
    inputs: dict = sample_options(DEM_HELP + " (slope, aspect, curvature, TPI, TWI)"),
    trees: Annotated[int, typer.Option(help="trees of the forest")] = 500,
    min_samples_leaf: Annotated[int, typer.Option(help="minimum samples per leaf")] = 1,
    max_features: Annotated[str, typer.Option(help="covariates tried per split: 'third' (a third, at least 2), "
                                                   "a share in (0, 1] (0.5) or a count (5)")] = "0.5",
    tune: Annotated[bool, typer.Option(help="tune max_features and min_samples_leaf (see --tune-method); off by "
                                            "default: on LimeSoDa it did not beat the defaults (docs/dsm.md)")] = False,
    tune_method: Annotated[str, typer.Option(help="tuning score: 'cv' (inner 5-fold CV) or 'oob' (out-of-bag, faster)")] = "cv",
    reduce: Annotated[str, typer.Option(help=REDUCE_HELP)] = "auto",
    spatial: Annotated[str, typer.Option(help=SPATIAL_HELP)] = "none",
    trend: Annotated[str, typer.Option(help=TREND_HELP)] = "auto",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    overwrite: Annotated[bool, typer.Option(help="replace an existing model file")] = False,
):
    """Fit a quantile regression forest for one soil property and save it (with its covariate stack)."""
    from . import dsm

    if tune_method not in ("oob", "cv"):
        raise ConfigError(f"--tune-method must be 'oob' or 'cv', got {tune_method!r}")
    from .dsm.forestparams import parse_max_features

    max_features = parse_max_features(max_features)
    check_reduce(reduce)
    from .dsm.spatial import check_spatial

    check_spatial(spatial, "--spatial")
    from .dsm.trend import check_trend

    check_trend(trend, "--trend")
    if model_out.exists() and not overwrite:
        from .errors import OutputExistsError

        raise OutputExistsError(f"{model_out} exists; use --overwrite to replace it")
    key, s, stack = samples_and_stack(samples, prop, inputs)
    model = dsm.train(s, key, stack, n_estimators=trees, min_samples_leaf=min_samples_leaf,
                      max_features=max_features, tune=tune_method if tune else False, random_state=seed, n_jobs=None,
                      reduce=reduce, spatial=spatial, trend=trend)
    model.samples_report_ = s.report
    model.save(model_out, overwrite=overwrite)
    oob = dsm.cross_validate(model, method="oob")
    Console().print(f"[bold]{key}[/] model: {len(model.y_train_)} samples, {len(model.feature_names_)} covariates "
                    f"({', '.join(model.feature_names_[:8])}{' ...' if len(model.feature_names_) > 8 else ''}), "
                    f"params {model.best_params_}")
    Console().print(f"covariate reduction: {model.reducer_.describe()}")
    tr = model.trend_
    Console().print(f"trend: {tr['used']} (asked {tr['requested']}"
                    + (f"; {tr['reason']})" if tr.get("reason") else ")"))
    sp = model.spatial_
    if sp["requested"] != "none":
        Console().print(f"spatial: {sp['used']}" + (f" (asked {sp['requested']}: {sp['reason']})" if sp.get("reason") else "")
                        + (" - out-of-bag scores below are without the kriged residual; use `dsm validate`"
                           if sp["used"] == "rk" else ""))
    Console().print(oob.summary_line())
    Console().print(f"model -> {model_out}")


@dsm_app.command()
@_friendly
def validate(
    model: Annotated[Path, typer.Argument(help="model file from `soilsuite dsm train`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report folder (report.md, report.html, plots, predictions.csv)")],
    method: Annotated[str, typer.Option(help="kfold, spatial (blocked k-fold) or oob")] = "spatial",
    k: Annotated[int, typer.Option(help="folds")] = 10,
    block_size: Annotated[float | None, typer.Option(help="spatial: block side (m, CRS units); default 1/8 of the sample extent")] = None,
    seed: Annotated[int, typer.Option(help="seed of the fold assignment")] = 0,
    reduce: Annotated[str | None, typer.Option(help="covariate reduction refitted in each fold: auto, none, pca "
                                                    "or filter; default: the model's own")] = None,
    spatial: Annotated[str | None, typer.Option(help="spatial option refitted in each fold: none, xy, distances "
                                                     "or rk; default: the model's own")] = None,
    trend: Annotated[str | None, typer.Option(help="trend option refitted in each fold: auto, none or ridge; "
                                                   "default: the model's own")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier report in --out (only the files soilsuite wrote)")] = False,
    force_clean: Annotated[bool, typer.Option(help="with --overwrite: also replace soilsuite's files changed since; write beside other files (kept)")] = False,
):
    """Validate a model (out-of-bag, k-fold or spatially blocked k-fold) and write a report."""
    from . import dsm
    from .io.manifest import OutputFolder

    OutputFolder(out, "validation-report").check_build(overwrite=overwrite, force_clean=force_clean,
                                                        what="report")  # refuse before the work
    m = dsm.load_model(model)
    if reduce is not None:
        check_reduce(reduce)
        m.set_params(reduce=reduce)
    if spatial is not None:
        from .dsm.spatial import check_spatial

        m.set_params(spatial=check_spatial(spatial, "--spatial"))
    if trend is not None:
        from .dsm.trend import check_trend

        m.set_params(trend=check_trend(trend, "--trend"))
    if method == "spatial" and block_size is None:
        block_size = default_block_size(m)
    res = dsm.cross_validate(m, method=method, k=k, block_size=block_size, seed=seed)
    folder = res.write(out, overwrite=overwrite, force_clean=force_clean)
    Console().print(res.summary_line())
    Console().print(f"report -> {folder / 'report.html'}")


REDUCE_HELP = ("covariate reduction fitted on the training rows (in each CV fold): auto (PCA of collinear "
               "covariates or a correlation filter for wide stacks such as spectra, else none), none, pca, filter")


SPATIAL_HELP = ("spatial structure: none, xy (sample coordinates as covariates), distances (buffer distances to "
                "<= 32 reference points, RFsp) or rk (kriging of the out-of-bag residuals added to mean and "
                "quantiles); measured in docs/dsm.md")


TREND_HELP = ("linear trend + forest on its residuals (regression-enhanced RF): auto (used when it lowers the "
              "out-of-bag error, decided on the training rows), none, ridge (always)")


def check_reduce(value: str) -> None:
    """``--reduce`` must name a method of :mod:`soilsuite.dsm.reduce`."""
    from .dsm.reduce import REDUCE_METHODS

    check_choice(value, REDUCE_METHODS, "--reduce")


def default_block_size(model) -> float:
    """1/8 of the larger side of the training extent (at least one pixel of the stack)."""
    if model.extent_ is None:
        raise ConfigError("spatial validation needs sample coordinates; the model has none (use --method kfold)")
    left, bottom, right, top = model.extent_
    side = max(right - left, top - bottom) / 8.0
    if getattr(model, "stack_", None):
        side = max(side, abs(model.stack_["transform"][0]))
    return side if side > 0 else 1.0


@dsm_app.command()
@_friendly
def predict(
    model: Annotated[Path, typer.Argument(help="model file from `soilsuite dsm train`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for the COGs")],
    products: Annotated[Path | None, typer.Option(help="product folder, if moved since training")] = None,
    block_size: Annotated[int, typer.Option(help="block side (px)")] = 256,
    aoa: Annotated[bool, typer.Option(help="also write dissimilarity index, AOA and outside-range layers")] = True,
    overwrite: Annotated[bool, typer.Option(help="replace maps an earlier prediction wrote in --out (never other files)")] = False,
    force_clean: Annotated[bool, typer.Option(help="with --overwrite: also replace such maps if they were changed since")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
):
    """Predict the map: COGs of Q0.05, Q0.50, Q0.95, mean, uncertainty ratio and area of applicability."""
    from . import dsm

    paths = dsm.predict_map(model, out, products=products, block_size=block_size, aoa=aoa,
                            overwrite=overwrite, force_clean=force_clean, progress=not quiet)
    for name, p in paths.items():
        Console().print(f"{name:14s} {p}")

