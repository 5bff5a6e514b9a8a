"""Cloud-Optimized GeoTIFF writer for the SoilSuite products, and a COG validator.

Every product file is written the same way, whatever its size:

1. a *staging* GeoTIFF (tiled, lightly compressed; in memory for :func:`write_cog`, on disk
   next to the target for :func:`write_cog_from_blocks`) receives the encoded values and all
   metadata: nodata, band descriptions, scale/offset, units, tags, colour table;
2. GDAL's ``COG`` driver (GDAL >= 3.1) copies it to ``<name>.<pid>.tmp`` in the target folder:
   tiles of ``blocksize`` pixels, DEFLATE (or ZSTD) with the predictor that fits the data type
   (2 = horizontal differencing for integers, 3 = floating point), overviews down to one tile
   (resampling from :func:`overview_resampling`) and GDAL statistics in the metadata;
3. ``os.replace`` moves the finished file over ``<name>``, so a reader never sees half a file.

Values on disk follow :mod:`soilsuite.products`: ``physical = stored * scale + offset`` and
``stored == nodata`` means no value. The MASK product carries a colour table
(:data:`soilsuite.products.MASK_COLORS`), its class names as band metadata (``CLASS_<v>``) and a
QGIS style side-car ``MASK.qml`` (QGIS loads ``<name>.qml`` next to a raster as its default
style, so the legend shows the class names).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window

from .. import __version__
from ..errors import InputError, OutputExistsError
from ..products import ProductSpec
from ..sensors import SENTINEL2_L2A as _SENSOR

__all__ = [
    "overview_resampling",
    "predictor",
    "validate_cog",
    "write_cog",
    "write_cog_from_blocks",
    "write_cogs_from_blocks",
]

#: Compression codecs accepted by :func:`write_cog`.
COMPRESSIONS = ("DEFLATE", "ZSTD")


# ----------------------------------------------------------------------------- helpers
def overview_resampling(spec: ProductSpec) -> str:
    """Overview resampling method that suits a product.

    Classes (MASK) and counts (VPC, BSC: integer products with unit scale) take ``"nearest"``
    so every overview pixel is a value that occurs in the data; continuous products
    (reflectance statistics, BSF) take ``"average"`` (GDAL skips nodata when averaging).

    Parameters
    ----------
    spec : ProductSpec
        The product.

    Returns
    -------
    str
        ``"nearest"`` or ``"average"`` (GDAL / rasterio resampling name).
    """
    kind = np.dtype(spec.dtype).kind
    if spec.classes or spec.unit in ("class", "count"):
        return "nearest"
    if kind in "ui" and spec.scale == 1.0 and spec.offset == 0.0:
        return "nearest"
    return "average"


def predictor(dtype: str | np.dtype) -> int:
    """TIFF predictor for a data type: 3 (floating point) for floats, 2 (horizontal) for ints."""
    return 3 if np.dtype(dtype).kind == "f" else 2


def _band_names(spec: ProductSpec, count: int, band_names: Sequence[str] | None) -> list[str]:
    if band_names is not None:
        names = [str(b) for b in band_names]
    elif len(spec.bands) > 1:
        names = list(spec.bands)
    else:
        names = [spec.name]
    if len(names) != count:
        raise InputError(
            f"product {spec.name}: {len(names)} band names {names} for {count} band(s) of data"
        )
    return names


def _n_bands(spec: ProductSpec, band_names: Sequence[str] | None) -> int:
    return len(band_names) if band_names is not None else len(spec.bands)


def _as_stored(block: np.ndarray, spec: ProductSpec) -> np.ndarray:
    """Encode physical values; pass through arrays that are already of ``spec.dtype``."""
    block = np.asarray(block)
    if block.dtype == np.dtype(spec.dtype):
        return block
    if block.dtype.kind not in "biuf":
        raise InputError(f"product {spec.name}: cannot write an array of dtype {block.dtype}")
    return spec.encode(block)


def _as_3d(block: np.ndarray, count: int, spec: ProductSpec, what: str) -> np.ndarray:
    if block.ndim == 2 and count == 1:
        return block[np.newaxis]
    if block.ndim == 3 and block.shape[0] == count:
        return block
    raise InputError(
        f"product {spec.name}: {what} has shape {block.shape}; expected "
        f"{'[Y, X] or ' if count == 1 else ''}[{count}, Y, X]"
    )


def _hex_rgba(color: str) -> tuple[int, int, int, int]:
    c = color.lstrip("#")
    rgb = tuple(int(c[i : i + 2], 16) for i in (0, 2, 4))
    alpha = int(c[6:8], 16) if len(c) == 8 else 255
    return (*rgb, alpha)  # type: ignore[return-value]


def _colormap(spec: ProductSpec) -> dict[int, tuple[int, int, int, int]] | None:
    if not spec.classes:
        return None
    from ..products import MASK_COLORS

    cmap = {}
    for value in spec.classes:
        rgba = _hex_rgba(MASK_COLORS.get(value, "#000000"))
        if value == spec.nodata:
            rgba = (*rgba[:3], 0)  # nodata transparent
        cmap[int(value)] = rgba
    return cmap


def _qml(spec: ProductSpec) -> str:
    """QGIS style (paletted renderer with labelled classes) for a class product."""
    from ..products import MASK_COLORS

    entries = "\n".join(
        f'        <paletteEntry value="{v}" color="{MASK_COLORS.get(v, "#000000")}" '
        f'alpha="{0 if v == spec.nodata else 255}" label={quoteattr(name)}/>'
        for v, name in sorted(spec.classes.items())
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="Symbology">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        "  </pipe>\n"
        "</qgis>\n"
    )


def _grid(geobox, crs, transform, shape, what: str) -> tuple[CRS, Affine, tuple[int, int] | None]:
    """(rasterio CRS, Affine, (rows, cols) or None) of a GeoBox, or of the deprecated loose
    ``crs``/``transform``/``shape`` keywords (a :class:`DeprecationWarning`)."""
    if geobox is not None:
        if crs is not None or transform is not None or shape is not None:
            raise TypeError(f"{what}: give geobox= or the deprecated crs=/transform=/shape=, not both")
        return (CRS.from_user_input(geobox.crs.to_wkt()), Affine(*tuple(geobox.affine)[:6]),
                (int(geobox.shape.y), int(geobox.shape.x)))
    if crs is None or transform is None:
        raise TypeError(f"{what}: the grid is missing; give geobox= (an odc.geo GeoBox)")
    import warnings

    warnings.warn(f"{what}: crs=/transform=/shape= are deprecated; give geobox= (an odc.geo GeoBox)",
                  DeprecationWarning, stacklevel=3)
    return (CRS.from_user_input(crs), Affine(*tuple(transform)[:6]),
            None if shape is None else (int(shape[0]), int(shape[1])))


def _staging_profile(spec: ProductSpec, count: int, shape: tuple[int, int], crs, transform,
                     blocksize: int) -> dict:
    height, width = int(shape[0]), int(shape[1])
    return dict(
        driver="GTiff", width=width, height=height, count=count, dtype=spec.dtype,
        crs=CRS.from_user_input(crs), transform=Affine(*tuple(transform)[:6]),
        nodata=spec.nodata, tiled=True, blockxsize=blocksize, blockysize=blocksize,
        compress="ZSTD", zstd_level=1, interleave="band", bigtiff="IF_SAFER", sparse_ok=True,
    )


def _set_metadata(dst, spec: ProductSpec, names: list[str], tags: Mapping[str, object] | None) -> None:
    count = dst.count
    dst.descriptions = tuple(names)
    dst.scales = (float(spec.scale),) * count
    dst.offsets = (float(spec.offset),) * count
    dst.units = (spec.unit,) * count
    dst.update_tags(
        PRODUCT=spec.name, DESCRIPTION=spec.description, UNIT=spec.unit,
        SOILSUITE_VERSION=__version__, TIFFTAG_SOFTWARE=f"soilsuite {__version__}",
        **{str(k): str(v) for k, v in (tags or {}).items()},
    )
    for i, name in enumerate(names, start=1):
        band_tags: dict[str, str] = {"NAME": name}
        if name in _SENSOR.wavelength_um:
            band_tags.update(WAVELENGTH=f"{_SENSOR.wavelength_um[name]}", WAVELENGTH_UNIT="micrometres",
                             COMMON_NAME=_SENSOR.common_name[name])
        for value, label in spec.classes.items():
            band_tags[f"CLASS_{value}"] = label
        dst.update_tags(i, **band_tags)
    cmap = _colormap(spec)
    if cmap is not None and count == 1:
        dst.write_colormap(1, cmap)


def _cog_options(spec: ProductSpec, blocksize: int, compress: str) -> dict:
    compress = compress.upper()
    if compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {COMPRESSIONS}, got {compress!r}")
    if blocksize < 16 or blocksize % 16:
        raise ValueError(f"blocksize must be a positive multiple of 16, got {blocksize}")
    return dict(
        BLOCKSIZE=str(blocksize),
        COMPRESS=compress,
        LEVEL="6" if compress == "DEFLATE" else "9",
        PREDICTOR="FLOATING_POINT" if predictor(spec.dtype) == 3 else "STANDARD",
        OVERVIEW_RESAMPLING=overview_resampling(spec).upper(),
        OVERVIEWS="AUTO",
        BIGTIFF="IF_SAFER",
        STATISTICS="YES",
    )


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file {path} exists already; use overwrite=True to replace it")
    if not path.parent.is_dir():
        raise InputError(f"output folder {path.parent} does not exist (writing {path.name})")


def _tmp_name(path: Path, what: str = "") -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}{what}.tmp")


def _finish(staging_src, path: Path, spec: ProductSpec, blocksize: int, compress: str) -> Path:
    """COG-copy an open staging dataset to a temporary name, then rename over ``path``."""
    tmp = _tmp_name(path)
    qml_tmp = _tmp_name(path.with_suffix(".qml"))
    try:
        with rasterio.Env(GDAL_PAM_ENABLED=False):
            rasterio.shutil.copy(staging_src, tmp, driver="COG", **_cog_options(spec, blocksize, compress))
        if spec.classes:
            qml_tmp.write_text(_qml(spec), encoding="utf-8")
            os.replace(qml_tmp, path.with_suffix(".qml"))
        os.replace(tmp, path)
    finally:
        for p in (tmp, qml_tmp, tmp.with_name(tmp.name + ".aux.xml")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return path


# ----------------------------------------------------------------------------- writers
def write_cog(
    path: str | os.PathLike,
    data: np.ndarray,
    spec: ProductSpec,
    *,
    geobox=None,
    crs=None,
    transform=None,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, object] | None = None,
    overwrite: bool = False,
    blocksize: int = 512,
    compress: str = "DEFLATE",
) -> Path:
    """Write one product as a Cloud-Optimized GeoTIFF.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (``<product>.tif``); its folder must exist.
    data : numpy.ndarray
        ``[Y, X]`` (single-band products) or ``[B, Y, X]``. Either **physical values** of any
        numeric dtype other than ``spec.dtype``, with NaN = nodata (encoded with
        ``spec.encode``: reflectance 0-1 becomes int16 x 10000 with nodata -9999), or
        **stored values** already of ``spec.dtype`` (written as they are). BSF (float32,
        scale 1, nodata NaN) is the same in both forms.
    spec : ProductSpec
        The product (:data:`soilsuite.products.PRODUCTS`): dtype, nodata, scale, offset, unit.
    geobox : odc.geo.geobox.GeoBox
        The grid (CRS, pixel-corner transform in CRS units, shape); its shape must be the
        data's ``[Y, X]``.
    crs, transform : optional, deprecated
        The grid as loose values (anything ``CRS.from_user_input`` takes; an Affine or 6
        numbers) instead of ``geobox``: still accepted, with a :class:`DeprecationWarning`.
    band_names : sequence of str, optional
        Band descriptions; default ``spec.bands`` for multi-band products, ``(spec.name,)``
        otherwise.
    tags : mapping, optional
        Extra dataset metadata items (``key=value`` strings).
    overwrite : bool
        Replace an existing file; otherwise :class:`~soilsuite.errors.OutputExistsError`.
    blocksize : int
        Tile side in pixels (multiple of 16). Overviews are built until the smallest fits in
        one tile, so an image not larger than ``blocksize`` has none.
    compress : {"DEFLATE", "ZSTD"}
        Compression codec; the predictor follows the dtype (2 integers, 3 floats).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False (the file is left untouched).
    InputError
        The array's shape does not fit the product's bands, or the folder does not exist.
    """
    path = Path(path)
    crs, transform, gshape = _grid(geobox, crs, transform, None, f"write_cog({path.name})")
    _check_target(path, overwrite)
    data = np.asarray(data)
    count = _n_bands(spec, band_names) if data.ndim == 3 or len(spec.bands) > 1 else 1
    arr = _as_3d(_as_stored(data, spec), count, spec, "data")
    if gshape is not None and tuple(arr.shape[1:]) != gshape:
        raise InputError(f"product {spec.name}: data of {arr.shape[1]} x {arr.shape[2]} px do not fit "
                         f"the grid of {gshape[0]} x {gshape[1]} px (writing {path})")
    names = _band_names(spec, arr.shape[0], band_names)
    profile = _staging_profile(spec, arr.shape[0], arr.shape[1:], crs, transform, blocksize)
    profile.update(compress="NONE", sparse_ok=False)
    profile.pop("zstd_level")
    with rasterio.Env(GDAL_PAM_ENABLED=False), MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(arr)
            _set_metadata(dst, spec, names, tags)
        with mem.open() as src:
            return _finish(src, path, spec, blocksize, compress)


def write_cog_from_blocks(
    path: str | os.PathLike,
    spec: ProductSpec,
    *,
    blocks: Iterable[tuple[Window, np.ndarray]],
    geobox=None,
    crs=None,
    transform=None,
    shape: tuple[int, int] | None = None,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, object] | None = None,
    overwrite: bool = False,
    blocksize: int = 512,
    compress: str = "DEFLATE",
) -> Path:
    """Write a product COG from blocks, holding one block in memory at a time.

    The blocks go into a tiled staging GeoTIFF next to the target (``<name>.<pid>.staging.tmp``,
    ZSTD level 1, sparse: pixels no block covers are nodata), which GDAL's COG driver then
    copies (streaming) into the final COG; the staging file is removed in every case.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist.
    spec : ProductSpec
        The product.
    geobox : odc.geo.geobox.GeoBox
        The whole grid (CRS, transform, shape in pixels).
    crs, transform, shape : optional, deprecated
        The grid as loose values (``shape`` = ``(rows, columns)`` in pixels) instead of
        ``geobox``, as for :func:`write_cog`.
    blocks : iterable of (rasterio.windows.Window, numpy.ndarray)
        Window of the grid (``col_off, row_off, width, height`` in pixels) and its values,
        ``[h, w]`` or ``[B, h, w]``; physical or stored values as for :func:`write_cog`.
    band_names, tags, overwrite, blocksize, compress
        As for :func:`write_cog`.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    crs, transform, shape = _grid(geobox, crs, transform, shape, f"write_cog_from_blocks({path.name})")
    if shape is None:
        raise TypeError(f"write_cog_from_blocks({path.name}): the grid's shape is missing; give geobox=")
    _check_target(path, overwrite)
    count = _n_bands(spec, band_names)
    names = _band_names(spec, count, band_names)
    height, width = int(shape[0]), int(shape[1])
    profile = _staging_profile(spec, count, (height, width), crs, transform, blocksize)
    staging = _tmp_name(path, ".staging")
    try:
        with rasterio.Env(GDAL_PAM_ENABLED=False):
            with rasterio.open(staging, "w", **profile) as dst:
                _set_metadata(dst, spec, names, tags)
                for window, block in blocks:
                    _write_block(dst, spec, count, window, block, (height, width))
            with rasterio.open(staging) as src:
                return _finish(src, path, spec, blocksize, compress)
    finally:
        for p in (staging, staging.with_name(staging.name + ".aux.xml")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _write_block(dst, spec: ProductSpec, count: int, window, block: np.ndarray, shape: tuple[int, int]) -> None:
    """Check one block against its window and the grid, encode it, write it into ``dst``."""
    height, width = shape
    window = Window(*window.flatten()) if not isinstance(window, Window) else window
    h, w = int(window.height), int(window.width)
    if (window.col_off < 0 or window.row_off < 0 or window.col_off + w > width
            or window.row_off + h > height):
        raise InputError(
            f"product {spec.name}: block window {window} lies outside the "
            f"grid of {height} x {width} pixels"
        )
    arr = _as_3d(_as_stored(block, spec), count, spec, f"block at {window}")
    if arr.shape[1:] != (h, w):
        raise InputError(
            f"product {spec.name}: block of shape {arr.shape} does not fit its "
            f"window of {h} x {w} pixels at {window}"
        )
    dst.write(arr, window=window)


def write_cogs_from_blocks(
    targets: Mapping[str, tuple[str | os.PathLike, ProductSpec]],
    *,
    geobox,
    blocks: Iterable[tuple[Window, Mapping[str, np.ndarray]]],
    band_names: Mapping[str, Sequence[str]] | None = None,
    tags: Mapping[str, Mapping[str, object]] | None = None,
    overwrite: bool = False,
    blocksize: int = 512,
    compress: str = "DEFLATE",
) -> dict[str, Path]:
    """Write several single-grid COGs from one pass over blocks (e.g. the layers of a model's
    prediction, computed together block by block), one block of each in memory at a time.

    Each file is written as by :func:`write_cog_from_blocks`: a tiled staging GeoTIFF next
    to its target, then GDAL's COG driver, then a rename over the target.

    Parameters
    ----------
    targets : mapping of str to (path, ProductSpec)
        Layer key -> target file and its product facts (dtype, nodata, unit...).
    geobox : odc.geo.geobox.GeoBox
        The grid of every file.
    blocks : iterable of (rasterio.windows.Window, mapping of str to numpy.ndarray)
        Window of the grid and the values of every layer key there (``[h, w]`` or
        ``[B, h, w]``; physical or stored values as for :func:`write_cog`).
    band_names, tags : mapping of layer key to band names / extra dataset tags, optional
        As for :func:`write_cog`, per layer.
    overwrite, blocksize, compress
        As for :func:`write_cog`.

    Returns
    -------
    dict of str to Path
        Layer key -> written file.
    """
    crs, transform, shape = _grid(geobox, None, None, None, "write_cogs_from_blocks")
    paths = {k: Path(p) for k, (p, _) in targets.items()}
    for p in paths.values():
        _check_target(p, overwrite)
    band_names, tags = band_names or {}, tags or {}
    staging = {k: _tmp_name(p, ".staging") for k, p in paths.items()}
    done: dict[str, Path] = {}
    try:
        with rasterio.Env(GDAL_PAM_ENABLED=False), contextlib.ExitStack() as stack:
            dsts, counts = {}, {}
            for k, (_, spec) in targets.items():
                counts[k] = _n_bands(spec, band_names.get(k))
                names = _band_names(spec, counts[k], band_names.get(k))
                profile = _staging_profile(spec, counts[k], shape, crs, transform, blocksize)
                dsts[k] = stack.enter_context(rasterio.open(staging[k], "w", **profile))
                _set_metadata(dsts[k], spec, names, tags.get(k))
            for window, layers in blocks:
                for k, dst in dsts.items():
                    _write_block(dst, targets[k][1], counts[k], window, layers[k], shape)
        with rasterio.Env(GDAL_PAM_ENABLED=False):
            for k, (_, spec) in targets.items():
                with rasterio.open(staging[k]) as src:
                    done[k] = _finish(src, paths[k], spec, blocksize, compress)
        return done
    finally:
        for st in staging.values():
            for p in (st, st.with_name(st.name + ".aux.xml")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


# ----------------------------------------------------------------------------- validation
def validate_cog(path: str | os.PathLike, *, strict: bool = False) -> tuple[bool, list[str], list[str]]:
    """Check that a file is a valid Cloud-Optimized GeoTIFF (``rio_cogeo``'s ``cog_validate``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    strict : bool
        Count warnings (e.g. a large image without overviews) as errors.

    Returns
    -------
    (bool, list of str, list of str)
        Whether the file is valid, the errors, and the warnings.
    """
    from rio_cogeo.cogeo import cog_validate

    if not Path(path).exists():
        return False, [f"{path}: no such file"], []
    ok, errors, warnings = cog_validate(str(path), strict=strict, quiet=True)
    return bool(ok), list(errors), list(warnings)
