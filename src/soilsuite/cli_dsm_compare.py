"""``soilsuite dsm compare``: candidate soil models under the same cross-validation.

Registered on :data:`soilsuite.cli_dsm.dsm_app` (imported by ``soilsuite.cli`` when it registers the sub-commands). Thin:
read the samples and covariates as ``dsm train`` does, call :func:`soilsuite.dsm.compare`,
write the report and the best model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .cli_dsm import _covariates, _friendly, _pairs, dsm_app
from .errors import ConfigError


@dsm_app.command()
@_friendly
def compare(
    samples: Annotated[Path, typer.Argument(help="sample points: CSV (with --x/--y/--crs), GeoPackage, GeoParquet, Shapefile")],
    prop: Annotated[str, typer.Option("--property", "-p", help="property to model: key (soc, phh2o, clay ...) or key=COLUMN")],
    out: Annotated[Path, typer.Option("--out", "-o", help="report folder (comparison.md/.csv/.json/.png)")],
    model_out: Annotated[Path | None, typer.Option("--model-out", "-m", help="write the best model, refitted on all samples (.joblib)")] = None,
    products: Annotated[Path | None, typer.Option(help="soilsuite product folder (covariates by name)")] = None,
    product: Annotated[list[str] | None, typer.Option("--product", help="product to use (repeatable); default SRC_MEAN and BSF")] = None,
    covariate: Annotated[list[str] | None, typer.Option("--covariate", "-c", help="user raster NAME=PATH or PATH (repeatable; any CRS/resolution)")] = None,
    dem: Annotated[Path | None, typer.Option(help="DEM raster: adds it and its terrain derivatives")] = None,
    indices: Annotated[bool, typer.Option(help="add spectral indices of SRC_MEAN (NDVI, NBR2, ...)")] = False,
    x: Annotated[str | None, typer.Option(help="CSV: x/longitude column")] = None,
    y: Annotated[str | None, typer.Option(help="CSV: y/latitude column")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of the CSV coordinates, e.g. EPSG:25833")] = None,
    unit: Annotated[list[str] | None, typer.Option(help="unit of a property column, e.g. soc=% (converted)")] = None,
    unit_check: Annotated[str, typer.Option(help="suspected unit mix-up: error, warn or off")] = "error",
    duplicates: Annotated[str, typer.Option(help="samples at one location: keep, mean or first")] = "keep",
    candidates: Annotated[str | None, typer.Option(help="comma-separated candidates (default all available: ols, qrf, "
                                                        "qrf_reduced and the spatial ones)")] = None,
    method: Annotated[str, typer.Option(help="spatial (blocked k-fold) or kfold")] = "spatial",
    k: Annotated[int, typer.Option(help="folds")] = 10,
    block_size: Annotated[float | None, typer.Option(help="spatial: block side (m, CRS units); default 1/8 of the sample extent")] = None,
    trees: Annotated[int, typer.Option(help="trees of each forest")] = 500,
    seed: Annotated[int, typer.Option(help="seed of the folds and the forests")] = 0,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier report in --out and an existing --model-out")] = False,
):
    """Compare candidate models (OLS floor, QRF, QRF on reduced covariates, spatial QRFs) on the same folds."""
    from . import dsm
    from .errors import OutputExistsError
    from .io.manifest import OutputFolder

    if method not in ("spatial", "kfold"):
        raise ConfigError(f"--method must be 'spatial' or 'kfold', got {method!r}")
    names = None if not candidates else [c.strip() for c in candidates.split(",") if c.strip()]
    from .dsm.compare import available_candidates

    available_candidates(names)  # unknown names fail before any work
    if model_out is not None and model_out.exists() and not overwrite:
        raise OutputExistsError(f"{model_out} exists; use --overwrite to replace it")
    OutputFolder(out, "comparison-report").check_build(overwrite=overwrite, force_clean=False, what="comparison report")
    key = prop.partition("=")[0].strip()
    s = dsm.read_samples(samples, [prop], x=x, y=y, crs=crs, units=_pairs(unit, "--unit"),
                         unit_check=unit_check, duplicates=duplicates)
    rasters = _covariates(covariate)
    if dem is not None:
        if "dem" in rasters:
            raise ConfigError("--dem given and a --covariate named 'dem'; use one")
        rasters["dem"] = str(dem)
    if products is None and not rasters:
        raise ConfigError("no covariates: give --products and/or --covariate/--dem")
    stack = dsm.build_stack(products, product or (["SRC_MEAN", "BSF"] if products is not None else []), rasters,
                            terrain=dem is not None, indices=indices)
    comp = dsm.compare(s, key, stack, method=method, k=k, block_size=block_size, seed=seed, candidates=names,
                       n_estimators=trees, random_state=seed, n_jobs=None)
    folder = comp.write(out, overwrite=overwrite)
    con = Console()
    for r in comp.table.to_dict("records"):
        if r["error"]:
            con.print(f"{r['candidate']:14s} failed: {r['error']}")
        else:
            con.print(f"{r['candidate']:14s} R2={r['r2']:.3f} RMSE={r['rmse']:.4g} bias={r['bias']:.3g} "
                      f"PICP90={r['picp']:.3f}{'  <- best' if r['candidate'] == comp.best else ''}")
    if model_out is not None and comp.model is not None:
        comp.model.samples_report_ = s.report
        comp.model.save(model_out, overwrite=overwrite)
        con.print(f"model ({comp.saved}) -> {model_out}")
    con.print(f"report -> {folder / 'comparison.md'}")
