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

from .cli_dsm import PROPERTY, SAMPLES, _friendly, dsm_app, sample_options, samples_and_stack
from .cli_options import with_option_groups
from .errors import ConfigError


@dsm_app.command()
@_friendly
@with_option_groups
def compare(
    samples: Annotated[Path, SAMPLES],
    prop: Annotated[str, PROPERTY],
    out: Annotated[Path, typer.Option("--out", "-o", help="report folder (comparison.md/.csv/.json/.png)")],
    model_out: Annotated[Path | None, typer.Option("--model-out", "-m", help="write the best model, refitted on all samples (.joblib)")] = None,
    inputs: dict = sample_options(),
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
    key, s, stack = samples_and_stack(samples, prop, inputs)
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
