"""Read a product folder back: product files, decimated reads, xarray Dataset, run record.

A product folder holds one COG per product (``<NAME>.tif``, names from
:data:`soilsuite.products.PRODUCTS`), optionally per-period sub-folders of the same layout,
``quicklooks/``, the STAC ``collection.json`` + ``items/`` and the run record ``run.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.enums import Resampling

from .. import __version__
from .. import products as P
from ..errors import InputError, OutputExistsError

__all__ = [
    "RUN_RECORD",
    "jsonable",
    "open_products",
    "product_files",
    "read_product",
    "read_run_record",
    "write_run_record",
]

#: File name of the run record in a product folder.
RUN_RECORD = "run.json"


# ----------------------------------------------------------------------------- files
def product_files(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Product files present in a folder (not its sub-folders), in catalogue order.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Product folder.

    Returns
    -------
    dict of str to Path
        Product name -> ``<out_dir>/<NAME>.tif`` (one COG) or, if there is none,
        ``<out_dir>/<NAME>.vrt`` (the mosaic of the tile COGs of ``--layout tiles``) for every
        catalogue product that exists.
    """
    out = Path(out_dir)
    found = {}
    for name in P.PRODUCTS:
        for ext in ("tif", "vrt"):
            if (out / f"{name}.{ext}").is_file():
                found[name] = out / f"{name}.{ext}"
                break
    return found


def spec_of(path: str | os.PathLike) -> P.ProductSpec:
    """The catalogue entry of a product file (from its ``PRODUCT`` tag, else its file stem)."""
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            name = src.tags().get("PRODUCT", path.stem)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"cannot open product file {path}: {exc}") from exc
    try:
        return P.get(name)
    except KeyError as exc:
        raise InputError(f"{path}: {exc.args[0]}") from None


def read_product(
    path: str | os.PathLike, *, max_size: int | None = None, decode: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a whole product file, optionally decimated, as stored or physical values.

    Parameters
    ----------
    path : str or os.PathLike
        A product COG.
    max_size : int, optional
        Largest side of the result in pixels. A larger file is read at a reduced size with
        nearest-neighbour sampling, which GDAL serves from the COG's overviews (fast, and
        classes and counts stay values that occur). None reads every pixel.
    decode : bool
        Physical float64 values with NaN for nodata (``spec.decode``); else stored values.

    Returns
    -------
    numpy.ndarray
        ``[B, Y, X]`` (B = 1 for single-band products).
    dict
        ``spec`` (ProductSpec), ``crs`` (rasterio CRS), ``transform`` (Affine of the array
        read, i.e. scaled when decimated), ``shape`` (full-resolution ``(rows, cols)``),
        ``band_names``, ``nodata``, ``dtype``.
    """
    path = Path(path)
    spec = spec_of(path)
    with rasterio.open(path) as src:
        h, w = src.height, src.width
        transform = src.transform
        if max_size is not None and max(h, w) > max_size:
            f = max(h, w) / max_size
            oh, ow = max(1, round(h / f)), max(1, round(w / f))
            data = src.read(out_shape=(src.count, oh, ow), resampling=Resampling.nearest)
            transform = transform * transform.scale(w / ow, h / oh)
        else:
            data = src.read()
        names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        info = dict(spec=spec, crs=src.crs, transform=transform, shape=(h, w), band_names=names,
                    nodata=src.nodata, dtype=src.dtypes[0])
    return (spec.decode(data) if decode else data), info


# ----------------------------------------------------------------------------- Dataset
class _WindowReader:
    """Array-like view of a product file for ``dask.array.from_array`` (reads windows)."""

    def __init__(self, path: Path, count: int, height: int, width: int, dtype: str):
        self.path = path
        self.shape = (count, height, width)
        self.dtype = np.dtype(dtype)
        self.ndim = 3

    def __getitem__(self, key):
        from rasterio.windows import Window

        b, r, c = (k if isinstance(k, slice) else slice(k, k + 1) for k in key)
        bi = range(self.shape[0])[b]
        ri = range(self.shape[1])[r]
        ci = range(self.shape[2])[c]
        if not len(bi) or not len(ri) or not len(ci):
            return np.empty((len(bi), len(ri), len(ci)), self.dtype)
        win = Window(ci.start, ri.start, ci.stop - ci.start, ri.stop - ri.start)
        with rasterio.open(self.path) as src:
            out = src.read([i + 1 for i in bi], window=win)
        return out[:, :: ri.step, :: ci.step]


def _coords(transform, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    x = transform.c + transform.a * (np.arange(width) + 0.5)
    y = transform.f + transform.e * (np.arange(height) + 0.5)
    return x, y


def open_products(
    out_dir: str | os.PathLike,
    *,
    decode: bool = True,
    products: list[str] | None = None,
    chunks: int | None = None,
) -> xr.Dataset:
    """Open the product COGs of a folder as one :class:`xarray.Dataset`.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Product folder (the window products; a period sub-folder such as ``<out>/2019`` works
        the same).
    decode : bool
        True: physical values (float64; reflectance 0-1, counts, fraction, classes) with NaN
        where the file holds nodata. False: the stored values in their dtype (int16 reflectance
        x 10000 with -9999, ...); attrs ``nodata``, ``scale``, ``offset`` tell how to decode.
    products : list of str, optional
        Names to open; default every catalogue product present.
    chunks : int, optional
        Open lazily as dask arrays of ``chunks x chunks`` pixels (all bands per chunk); the
        default reads everything into memory.

    Returns
    -------
    xarray.Dataset
        One variable per product, dims ``(y, x)`` or ``(band, y, x)`` for spectral products
        (``band`` = ``B02 .. B12``); coords ``x``, ``y`` (pixel centres, CRS units) and
        ``spatial_ref`` (attrs ``crs_wkt``, ``spatial_ref``, ``GeoTransform``; odc-geo and
        rioxarray read it). Variable attrs: ``long_name``, ``description``, ``units``,
        ``product``. Dataset attrs: ``crs`` (WKT), ``epsg`` (if any), ``transform``.

    Raises
    ------
    InputError
        The folder holds no product, a product asked for is missing, or the products are not
        on the same grid.
    """
    out = Path(out_dir)
    files = product_files(out)
    if products is not None:
        missing = [p for p in products if P.get(p).name not in files]
        if missing:
            raise InputError(f"product folder {out}: missing {', '.join(missing)} (found {', '.join(files) or 'none'})")
        files = {P.get(p).name: files[P.get(p).name] for p in products}
    if not files:
        raise InputError(f"no product files (<NAME>.tif or .vrt for NAME in {', '.join(P.PRODUCTS)}) in {out}")

    grid = None
    data_vars: dict[str, xr.DataArray] = {}
    band_coord: list[str] | None = None
    extra_coords: dict[str, list[str]] = {}
    for name, path in files.items():
        spec = P.get(name)
        with rasterio.open(path) as src:
            this = (src.crs, src.transform, src.height, src.width)
            names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
            count, dtype = src.count, src.dtypes[0]
            if grid is None:
                grid = this
            elif this != grid:
                raise InputError(
                    f"{path}: grid {this[2]}x{this[3]} {this[1]!r} differs from the folder's "
                    f"first product ({grid[2]}x{grid[3]} {grid[1]!r})"
                )
            if chunks is None:
                raw: Any = src.read()
        if chunks is not None:
            import dask.array as da

            reader = _WindowReader(path, count, this[2], this[3], dtype)
            raw = da.from_array(reader, chunks=(count, chunks, chunks), asarray=True,
                                name=f"soilsuite-{name}-{os.fspath(path)}-{os.path.getmtime(path)}")
        if decode:
            values = raw.map_blocks(spec.decode, dtype="float64") if chunks is not None else spec.decode(raw)
        else:
            values = raw
        attrs = dict(long_name=spec.description, description=spec.description, units=spec.unit,
                     product=spec.name, grid_mapping="spatial_ref")
        if not decode:
            attrs.update(nodata=spec.nodata, scale=spec.scale, offset=spec.offset)
        if count > 1 and not spec.is_spectral and len(spec.bands) == count:
            # a multi-band product that is not spectral (BSF_MONTHLY: months): its own dimension
            dim = "month" if spec.bands[0] == "M01" else f"{name.lower()}_band"
            extra_coords[dim] = list(spec.bands)
            data_vars[name] = xr.DataArray(values, dims=(dim, "y", "x"), attrs=attrs)
        elif spec.is_spectral or count > 1:
            if band_coord is not None and band_coord != names:
                raise InputError(f"{path}: bands {names} differ from other products' {band_coord}")
            band_coord = names
            data_vars[name] = xr.DataArray(values, dims=("band", "y", "x"), attrs=attrs)
        else:
            data_vars[name] = xr.DataArray(values[0], dims=("y", "x"), attrs=attrs)
        if spec.classes:
            data_vars[name].attrs["flag_values"] = list(spec.classes)
            data_vars[name].attrs["flag_meanings"] = " ".join(
                v.split(" (")[0].replace(" / ", "_").replace(" ", "_") for v in spec.classes.values()
            )

    crs, transform, height, width = grid  # type: ignore[misc]
    x, y = _coords(transform, height, width)
    wkt = crs.to_wkt() if crs else ""
    gt = " ".join(str(v) for v in (transform.c, transform.a, transform.b, transform.f, transform.d, transform.e))
    coords: dict[str, Any] = {
        "x": ("x", x, {"units": "metre" if crs and crs.is_projected else "degree", "axis": "X"}),
        "y": ("y", y, {"units": "metre" if crs and crs.is_projected else "degree", "axis": "Y"}),
        "spatial_ref": ((), np.int32(0), {"crs_wkt": wkt, "spatial_ref": wkt, "GeoTransform": gt}),
    }
    if band_coord is not None:
        coords["band"] = ("band", band_coord)
    coords.update({d: (d, v) for d, v in extra_coords.items()})
    attrs = {"crs": wkt, "transform": list(transform)[:6], "source": os.fspath(out)}
    if crs and crs.to_epsg():
        attrs["epsg"] = int(crs.to_epsg())
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# ----------------------------------------------------------------------------- run record
def jsonable(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``.

    Dates and times become ISO 8601 strings, paths strings, tuples/sets lists, numpy scalars
    and arrays Python numbers and lists, enums their value, dataclasses and pydantic models
    dicts; NaN and infinities become None (JSON has no NaN). Anything else unknown becomes
    ``str(obj)``.
    """
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, (dt.date, dt.datetime, dt.time)):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "model_dump"):
        return jsonable(obj.model_dump(mode="json"))
    return str(obj)


def write_run_record(out_dir: str | os.PathLike, record: Mapping[str, Any], *, overwrite: bool = True) -> Path:
    """Write the run record ``<out_dir>/run.json`` atomically.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Product folder (must exist).
    record : mapping
        Parameters, inputs and results of the run; made JSON-safe with :func:`jsonable`.
        ``soilsuite_version`` (this version) and ``written`` (UTC time) are added unless
        present.
    overwrite : bool
        Replace an existing record (default: the pipeline rewrites it at the end of a run);
        False raises :class:`~soilsuite.errors.OutputExistsError`.

    Returns
    -------
    Path
        The record file.
    """
    path = Path(out_dir) / RUN_RECORD
    if path.exists() and not overwrite:
        raise OutputExistsError(f"run record {path} exists already; use overwrite=True to replace it")
    doc = {"soilsuite_version": __version__,
           "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    doc.update(jsonable(dict(record)))
    text = json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_run_record(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read a run record: ``<out_dir>/run.json`` (or a path to the JSON file itself).

    Raises
    ------
    InputError
        The record is missing or is not a JSON object.
    """
    path = Path(out_dir)
    if path.is_dir():
        path = path / RUN_RECORD
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no run record {path} (the run did not finish, or this is not a product folder)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"run record {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"run record {path}: expected a JSON object, found {type(doc).__name__}")
    return doc
