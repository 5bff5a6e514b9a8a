"""Block-wise prediction of a soil model over its covariate grid, written as COGs.

For each block of the target grid the covariate stack is read (:meth:`CovariateStack.read`),
the forest predicts the mean and quantiles of the pixels with all covariates, and these layers
are written (float32, NaN = nodata) as Cloud Optimized GeoTIFFs:

=============================  ==================================================================
``<target>_mean.tif``          forest mean
``<target>_q05/q50/q95.tif``   quantiles (one file per model quantile)
``<target>_uncertainty.tif``   ``(Q0.95 - Q0.05) / Q0.50`` (SoilGrids ratio; NaN where Q0.50 <= 0)
``<target>_di.tif``            dissimilarity index (Meyer & Pebesma 2021), see
                               :meth:`SoilModel.dissimilarity`
``<target>_aoa.tif``           uint8: 1 inside the area of applicability (DI <= threshold), 0
                               outside, 255 nodata
``<target>_outside_range.tif`` uint8: number of covariates outside their training range
                               (255 nodata)
=============================  ==================================================================

Models with ``spatial="xy"``, ``"distances"`` or ``"rk"`` (:mod:`soilsuite.dsm.spatial`) get the
pixel centres of each block (x, y in the stack's CRS, which must be the model's) computed per block:
the coordinate / distance covariates of a block (``block_size**2 * k * 4`` bytes for ``k``
reference points) and the kriged residual (pykrige, in chunks of at most 4e6 pixel x sample
cells) are never held for the whole map.

The layers are written by the project's COG writer (:func:`soilsuite.io.cog.write_cogs_from_blocks`,
one pass over the blocks for every layer) with their facts from :mod:`soilsuite.dsm.products`:
staging GeoTIFFs next to the output, converted to COG and renamed into place; existing files
are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, OutputExistsError
from .covariates import CovariateStack
from .model import SoilModel, qname, uncertainty_ratio


def output_names(model: SoilModel, aoa: bool = True) -> list[str]:
    """Layer names written by :func:`predict_map` (without the target prefix)."""
    names = ["mean", *[qname(q) for q in model.quantiles]]
    if 0.05 in model.quantiles and 0.95 in model.quantiles and 0.5 in model.quantiles:
        names.append("uncertainty")
    if aoa:
        names += ["di", "aoa", "outside_range"]
    return names


def predict_map(
    model: SoilModel | str | Path,
    out: str | Path,
    *,
    stack: CovariateStack | None = None,
    products: str | Path | None = None,
    block_size: int = 256,
    aoa: bool = True,
    overwrite: bool = False,
    progress: bool | Callable[[int, int], None] = False,
    prefix: str | None = None,
    force_clean: bool = False,
) -> dict[str, Path]:
    """Predict a soil map block by block and write COGs.

    Parameters
    ----------
    model : SoilModel or path
        Fitted model (or its file). Its covariates must match the stack's names.
    out : path
        Output folder (created).
    stack : CovariateStack, optional
        Covariates; default: the stack the model was trained on (``model.stack_``).
    products : path, optional
        Replacement folder for the model's product layers (data moved since training).
    block_size : int
        Block side (pixels); memory is about ``block_size**2 * (n_covariates + n_outputs) * 4``
        bytes plus the forest's working arrays.
    aoa : bool
        Also write the DI, AOA and outside-range layers.
    overwrite : bool
        Replace the maps an earlier prediction wrote into ``out`` (listed in its manifest);
        a file of that name that soilsuite did not write is never replaced.
    force_clean : bool
        Also replace such maps if they were changed since.
    progress : bool or callable
        True shows a rich progress bar; a callable gets ``(done_blocks, total_blocks)``.
    prefix : str, optional
        File name prefix (default: the target).

    Returns
    -------
    dict of str to Path
        Layer name -> COG path.
    """

    if not isinstance(model, SoilModel):
        model = SoilModel.load(model)
    if not hasattr(model, "forest_"):
        raise ConfigError("the model is not fitted")
    if stack is None:
        if getattr(model, "stack_", None) is None:
            raise InputError(f"the {model.target} model was not trained on a raster covariate stack "
                             "(point covariates only?); give stack=")
        stack = CovariateStack.from_dict(model.stack_, products=products)
    if stack.names != list(model.feature_names_):
        raise InputError(f"covariates of the stack {stack.names} differ from the model's {model.feature_names_}")
    if block_size < 16:
        raise ConfigError(f"block_size must be >= 16 pixels, got {block_size}")
    prefix = prefix or model.target
    out = Path(out)
    names = output_names(model, aoa)
    final = {n: out / f"{prefix}_{n}.tif" for n in names}
    # the folder may hold other files (samples, models, reports): only the maps soilsuite wrote
    # there before are replaced (io/manifest.py)
    from ..io.manifest import OutputFolder
    from ..io.qgis import PROJECT_FILE, style_path, write_file_styles, write_project

    folder = OutputFolder(out, "dsm")
    # the maps and their QGIS styles (io/qgis.py); the folder's QGIS project is shared by every
    # model predicted into it: rewritten if soilsuite wrote it, never if it is yours or you changed it
    targets = [*final.values(), *(style_path(p) for p in final.values())]
    folder.claim(targets, overwrite=overwrite, force_clean=force_clean)
    with folder.lock():
        folder.claim(targets, overwrite=overwrite, force_clean=force_clean)  # again, under the lock
        _predict_into(model, stack, out, final, names, prefix, block_size, aoa, progress)
        written = [*final.values(), *write_file_styles(final.values())]
        try:
            folder.claim([out / PROJECT_FILE], overwrite=True)
            written.append(write_project(out))
        except OutputExistsError:
            pass
        folder.record(written, state="complete")
    return final


def _predict_into(model, stack, out: Path, final: dict, names: list[str], prefix: str, block_size: int,
                  aoa: bool, progress) -> None:
    """Predict block by block into the map COGs (:func:`soilsuite.io.cog.write_cogs_from_blocks`:
    staging GeoTIFFs next to ``final``, converted to COG and renamed into place)."""
    from ..io.cog import write_cogs_from_blocks
    from .products import layer_spec

    unit = model.unit_
    quantile_of = {qname(q): q for q in model.quantiles}
    specs = {n: layer_spec(n, model.target, unit, quantile_of.get(n)) for n in names}
    common = {"target": model.target, "aoa_threshold": f"{model.aoa_['threshold']:.6g}",
              "covariates": ",".join(model.feature_names_), "software": "soilsuite.dsm"}
    tags = {n: {**common, "unit": specs[n].unit, "layer": n} for n in names}
    windows = list(stack.windows(block_size))
    bar = None
    if progress is True:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(TextColumn(f"predict {model.target}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=False)
        task = bar.add_task("blocks", total=len(windows))
        bar.start()

    # spatial models (dsm/spatial.py) need the pixel centres (stack CRS = the model's), per block
    sp = getattr(model, "spatial_fit_", None)
    need_xy = sp is not None and sp.needs_coords
    if need_xy and getattr(model, "crs_", None) and not _same_crs(model.crs_, stack.crs):
        raise InputError(f"the {model.target} model uses spatial={sp.used!r} with coordinates in {model.crs_}; "
                         f"the covariate stack is in {stack.crs}: predict on a stack in the model's CRS")

    def blocks():
        from .spatial import pixel_centres

        lo, med, hi = qname(0.05), qname(0.5), qname(0.95)
        cols = ["mean", *[qname(q) for q in model.quantiles]]
        for i, win in enumerate(windows):
            cov = stack.read(win)
            nb, bh, bw = cov.shape
            X = cov.reshape(nb, -1).T
            pred = model.predict_array(X, coords=pixel_centres(stack.geobox, win) if need_xy else None)
            layers = {c: pred[:, j] for j, c in enumerate(cols)}
            if "uncertainty" in names:
                layers["uncertainty"] = uncertainty_ratio(layers[lo], layers[hi], layers[med]).astype(np.float32)
            if aoa:
                di = model.dissimilarity(X).astype(np.float32)
                layers["di"] = di
                a = np.full(di.shape, 255, np.uint8)
                a[np.isfinite(di)] = (di[np.isfinite(di)] <= model.aoa_["threshold"]).astype(np.uint8)
                layers["aoa"] = a
                layers["outside_range"] = model.outside_range(X)
            yield win, {n: layers[n].reshape(bh, bw).astype(specs[n].dtype) for n in names}
            if bar is not None:
                bar.update(task, advance=1)
            elif callable(progress):
                progress(i + 1, len(windows))

    try:
        write_cogs_from_blocks({n: (final[n], specs[n]) for n in names}, geobox=stack.geobox, blocks=blocks(),
                               band_names={n: [specs[n].description] for n in names}, tags=tags, overwrite=True)
    finally:
        if bar is not None:
            bar.stop()


def _same_crs(a, b) -> bool:
    """True if two CRS descriptions (WKT, ``EPSG:n``, CRS objects) are the same CRS."""
    from pyproj import CRS

    return CRS.from_user_input(str(a)).equals(CRS.from_user_input(str(b)), ignore_axis_order=True)


def stock_map(
    content: str | Path,
    bdod: str | Path | float,
    out: str | Path,
    *,
    depth_m: float,
    cfvo: str | Path | float = 0.0,
    overwrite: bool = False,
    block_size: int = 512,
) -> Path:
    """Stock map (kg/m2) from maps (or constants) of content, bulk density and coarse fragments.

    ``stock = C * bdod * depth_m * (1 - cfvo/100)`` per pixel (SPEC 6). All rasters must share
    the grid of ``content`` (e.g. the ``*_mean.tif`` of models predicted on one stack). The
    stock of mean contents is not the mean stock when C and bdod co-vary, and quantiles do not
    combine this way: for stock intervals model the stock directly
    (:func:`~soilsuite.dsm.samples.stock_column`).
    """
    import rasterio

    from .properties import stock

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass overwrite=True to replace it")
    with rasterio.open(content) as src:
        shape, transform, crs = src.shape, src.transform, src.crs
    others = {}
    for name, v in (("bdod", bdod), ("cfvo", cfvo)):
        if isinstance(v, str | Path):
            with rasterio.open(v) as s:
                if s.shape != shape or not s.transform.almost_equals(transform) or s.crs != crs:
                    raise InputError(f"{name} raster {v} is not on the grid of {content}")
            others[name] = v
    from odc.geo.geobox import GeoBox
    from rasterio.windows import Window

    from ..io.cog import write_cog_from_blocks
    from .products import stock_spec

    def blocks():
        with rasterio.open(content) as c:
            srcs = {k: rasterio.open(v) for k, v in others.items()}
            try:
                for r in range(0, shape[0], block_size):
                    for col in range(0, shape[1], block_size):
                        win = Window(col, r, min(block_size, shape[1] - col), min(block_size, shape[0] - r))
                        cv = c.read(1, window=win, masked=True).filled(np.nan).astype("float64")
                        vals = {k: s.read(1, window=win, masked=True).filled(np.nan).astype("float64")
                                for k, s in srcs.items()}
                        res = stock(cv, vals.get("bdod", bdod), depth_m, vals.get("cfvo", cfvo))
                        yield win, np.asarray(res, dtype="float32")
            finally:
                for s in srcs.values():
                    s.close()

    spec = stock_spec(depth_m)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_cog_from_blocks(out, spec, geobox=GeoBox(shape, transform, crs), blocks=blocks(),
                          band_names=[spec.description], tags={"unit": "kg/m2", "depth_m": str(depth_m)},
                          overwrite=True)
    return out
