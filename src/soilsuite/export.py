"""Export products to another grid and format: ``soilsuite export`` (docs/export.md).

Every product file of an output folder (window and periods; or a list of product files) is
warped by GDAL (a rasterio ``WarpedVRT`` read window by window, so memory stays bounded) onto
one target grid (an odc-geo ``GeoBox``: CRS + transform + shape) with the product's resampling
method from the catalogue (:func:`soilsuite.products.resampling`):

- ``average`` for reflectance statistics and fractions (nodata pixels left out),
- ``mode`` for classes (MASK, PLOUGHED...),
- ``nearest`` for days/dates and, by default, counts; ``counts="sum"`` adds the counts of the
  source pixels inside each target pixel instead (weighted by the part of each source pixel
  inside it), so totals over an area stay the same; the stored type becomes uint32.

Values are warped in float64 stored units and encoded once with the product's dtype, scale,
offset and nodata (no double rounding). Formats:

- ``cog`` / ``gtiff``: the output layout of a composite run (``<out>/<NAME>.tif``,
  ``<out>/<period>/<NAME>.tif``) with the same metadata (band names, scale/offset, units, MASK
  colours), written by :mod:`soilsuite.io.cog` (``gtiff``: tiled DEFLATE GeoTIFF, no overviews);
- ``netcdf`` / ``zarr``: one file per label (``soilsuite_window.nc``, ``soilsuite_2021.nc``...;
  Zarr format 2 with consolidated metadata, which GDAL and every zarr reader open) via xarray,
  CF conventions: stored values with ``scale_factor``/``add_offset``/``_FillValue``,
  ``units``, ``long_name``, ``flag_values``/``flag_meanings`` for classes, a ``spatial_ref``
  grid mapping (``crs_wkt``, ``GeoTransform``), pixel-centre ``x``/``y``.

The output folder follows the ownership rules of :mod:`soilsuite.io.manifest` (written in a
scratch folder, moved in when complete; ``overwrite`` replaces only soilsuite's files).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import products as P
from .errors import ConfigError, InputError
from .io import layout as L
from .io.collect import ProductFile, collect_products

__all__ = ["FORMATS", "ExportResult", "export_products", "target_geobox"]

FORMATS = ("cog", "gtiff", "netcdf", "zarr")
#: Side of the blocks warped at a time (pixels of the target grid).
BLOCK = 1024
#: GDAL block cache while exporting (MB).
GDAL_CACHE_MB = 256
#: The export record written into the output folder.
RECORD = "export.json"


@dataclass
class ExportResult:
    """What :func:`export_products` wrote: the folder, files, target grid and methods."""

    out: Path
    files: list[Path]
    geobox: object
    methods: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        gb = self.geobox
        res = abs(gb.resolution.x)
        crs = f"EPSG:{gb.crs.epsg}" if gb.crs.epsg else gb.crs.to_wkt()[:60]
        unit = gb.crs.units[0] if gb.crs.units else ""
        lines = [f"exported {len(self.methods)} product file(s) to {self.out} in {self.seconds:.1f} s: "
                 f"{gb.shape.y} x {gb.shape.x} px of {res:g} {unit} in {crs}"]
        by: dict[str, list[str]] = {}
        for k, m in self.methods.items():
            by.setdefault(m, []).append(k)
        lines += [f"  {m}: {', '.join(v)}" for m, v in by.items()]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the target grid
def target_geobox(files: Sequence[ProductFile], *, crs: str | None = None, res: float | None = None,
                  bbox: Sequence[float] | None = None, like: str | os.PathLike | None = None):
    """The target GeoBox: ``like`` (a raster's grid), else ``crs`` (default the products'),
    ``res`` (default the products' pixel size; required when the CRS changes) and ``bbox``
    (minx, miny, maxx, maxy in the target CRS; default the products' extent), pixel edges
    aligned to multiples of ``res``."""
    import rasterio
    from odc.geo.geobox import GeoBox
    from rasterio.warp import transform_bounds

    if like is not None:
        if crs is not None or res is not None or bbox is not None:
            raise ConfigError("--like gives the whole target grid: give it without --crs, --res and --bbox")
        try:
            with rasterio.open(like) as src:
                if src.crs is None:
                    raise InputError(f"--like {like}: the raster has no CRS")
                return GeoBox((src.height, src.width), src.transform, src.crs.to_wkt())
        except rasterio.errors.RasterioError as exc:
            raise InputError(f"--like {like}: cannot open the raster: {exc}") from None
    with rasterio.open(files[0].path) as src:
        src_crs, src_bounds, src_res = src.crs, src.bounds, abs(src.transform.a)
    from rasterio.crs import CRS

    try:
        dst_crs = CRS.from_user_input(crs) if crs is not None else src_crs
    except rasterio.errors.CRSError as exc:
        raise ConfigError(f"--crs {crs!r}: not a CRS ({exc})") from None
    if res is None:
        if dst_crs != src_crs:
            raise ConfigError(f"--res is needed when the CRS changes ({src_crs} -> {dst_crs}): give the target "
                              "pixel size in the target CRS's units")
        res = src_res
    if not res > 0:
        raise ConfigError(f"--res must be > 0, got {res}")
    if bbox is None:
        bbox = transform_bounds(src_crs, dst_crs, *src_bounds, densify_pts=21)
    else:
        minx, miny, maxx, maxy = bbox
        if not (minx < maxx and miny < maxy):
            raise ConfigError(f"--bbox {','.join(f'{v:g}' for v in bbox)}: expected minx < maxx and miny < maxy "
                              "(in the target CRS)")
    gb = GeoBox.from_bbox(tuple(bbox), dst_crs.to_wkt(), resolution=res)
    if gb.shape.x * gb.shape.y > 2**31:
        raise ConfigError(f"the target grid would be {gb.shape.y} x {gb.shape.x} px; check --res and --bbox units")
    return gb


# ----------------------------------------------------------------------------- warping
class _Warp:
    """A product file seen on the target grid: ``[bands, y, x]`` windows as float64 stored
    values with NaN for nodata, warped by GDAL (array-like for dask, and block reader)."""

    def __init__(self, pf: ProductFile, geobox, method: str):
        import rasterio

        self.pf, self.gb, self.method = pf, geobox, method
        with rasterio.open(pf.path) as src:
            self.count = src.count
            self.names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        self.shape = (self.count, int(geobox.shape.y), int(geobox.shape.x))
        self.spec = _out_spec(pf.spec, method)
        self.dtype = np.dtype(self.spec.dtype)
        self.ndim = 3

    def read(self, row: int, col: int, h: int, w: int, bands=None) -> np.ndarray:
        import rasterio
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT
        from rasterio.windows import Window

        spec = self.pf.spec
        src_nodata = None if (isinstance(spec.nodata, float) and np.isnan(spec.nodata)) else spec.nodata
        with rasterio.open(self.pf.path) as src:
            nd = src.nodata if src.nodata is not None else src_nodata
            with WarpedVRT(src, crs=self.gb.crs.to_wkt(), transform=Affine(*tuple(self.gb.affine)[:6]),
                           width=self.shape[2], height=self.shape[1], resampling=Resampling[self.method],
                           src_nodata=nd, nodata=np.nan, dtype="float64") as vrt:
                return vrt.read(bands, window=Window(col, row, w, h))

    def __getitem__(self, key):
        b, r, c = (k if isinstance(k, slice) else slice(k, k + 1) for k in key)
        bi, ri, ci = range(self.shape[0])[b], range(self.shape[1])[r], range(self.shape[2])[c]
        if not len(bi) or not len(ri) or not len(ci):
            return np.empty((len(bi), len(ri), len(ci)), self.dtype)
        out = self.read(ri.start, ci.start, ri.stop - ri.start, ci.stop - ci.start, [i + 1 for i in bi])
        return self.stored(out[:, :: ri.step, :: ci.step])

    def stored(self, warped: np.ndarray) -> np.ndarray:
        """Warped values (float64 stored units, NaN = nodata) -> the output's stored dtype,
        rounded once (half to even) in stored units, as :meth:`ProductSpec.encode` does."""
        spec = self.spec
        dt = np.dtype(spec.dtype)
        if dt.kind == "f":
            out = warped.astype(dt)
            if not np.isnan(spec.nodata):
                out[np.isnan(out)] = spec.nodata
            return out
        bad = np.isnan(warped)
        info = np.iinfo(dt)
        v = np.clip(np.rint(np.where(bad, 0, warped)), info.min, info.max)
        if spec.nodata != 0:  # a value rounding onto the nodata sentinel is nudged (ProductSpec.encode)
            v[(v == spec.nodata) & ~bad] = spec.nodata + (1 if spec.nodata < 0 else -1)
        v[bad] = spec.nodata
        return v.astype(dt)

    def blocks(self, block: int = BLOCK):
        from rasterio.windows import Window

        _, h, w = self.shape
        for r0 in range(0, h, block):
            for c0 in range(0, w, block):
                hh, ww = min(block, h - r0), min(block, w - c0)
                yield Window(c0, r0, ww, hh), self.stored(self.read(r0, c0, hh, ww))


def _out_spec(spec: P.ProductSpec, method: str) -> P.ProductSpec:
    """The product's facts on the target grid: a summed count needs a wider type."""
    if method == "sum" and np.dtype(spec.dtype).kind in "ui" and np.dtype(spec.dtype).itemsize < 4:
        return dataclasses.replace(spec, dtype="uint32" if np.dtype(spec.dtype).kind == "u" else "int32")
    return spec


# ----------------------------------------------------------------------------- writers
def _write_tif(w: _Warp, spec: P.ProductSpec, path: Path, fmt: str) -> Path:
    from .io import cog

    path.parent.mkdir(parents=True, exist_ok=True)
    tags = {"RESAMPLING": w.method, "SOURCE": os.fspath(w.pf.path)}
    if fmt == "cog":
        return cog.write_cog_from_blocks(path, spec, blocks=w.blocks(), geobox=w.gb, band_names=w.names, tags=tags)
    import rasterio

    profile = cog._staging_profile(spec, w.count, w.shape[1:], w.gb.crs.to_wkt(), tuple(w.gb.affine)[:6], 512)
    profile.update(compress="DEFLATE", predictor=cog.predictor(spec.dtype))
    profile.pop("zstd_level")
    tmp = path.with_name(path.name + ".tmp")
    with rasterio.Env(GDAL_PAM_ENABLED=False):
        with rasterio.open(tmp, "w", **profile) as dst:
            cog._set_metadata(dst, spec, w.names, tags)
            for window, block in w.blocks():
                cog._write_block(dst, spec, w.count, window, block, w.shape[1:])
    os.replace(tmp, path)
    return path


def _dataset(warps: list[tuple[_Warp, P.ProductSpec]], gb, block: int):
    """The lazy xarray Dataset of one label's products (physical values; CF encoding)."""
    import dask.array as da
    import xarray as xr

    tr = gb.affine
    wkt = gb.crs.to_wkt()
    x = tr.c + tr.a * (np.arange(gb.shape.x) + 0.5)
    y = tr.f + tr.e * (np.arange(gb.shape.y) + 0.5)
    units = "metre" if gb.crs.geographic is False else "degree"
    coords = {
        "x": ("x", x, {"units": units, "standard_name": "projection_x_coordinate", "axis": "X"}),
        "y": ("y", y, {"units": units, "standard_name": "projection_y_coordinate", "axis": "Y"}),
        "spatial_ref": ((), np.int32(0), {"crs_wkt": wkt, "spatial_ref": wkt,
                                          "GeoTransform": " ".join(str(v) for v in (tr.c, tr.a, tr.b, tr.f, tr.d,
                                                                                     tr.e))}),
    }
    data_vars, encoding = {}, {}
    for w, spec in warps:
        arr = da.from_array(w, chunks=(w.count, block, block), asarray=True, meta=np.empty((0, 0, 0), w.dtype),
                            name=f"soilsuite-export-{w.pf.key}-{os.fspath(w.pf.path)}")
        attrs = {"long_name": spec.description, "units": spec.unit, "product": spec.name, "grid_mapping":
                 "spatial_ref", "resampling": w.method}
        if spec.classes:
            attrs["flag_values"] = [int(c) for c in spec.classes]
            attrs["flag_meanings"] = " ".join(v.split(" (")[0].replace(" / ", "_").replace(" ", "_").replace(",", "")
                                              for v in spec.classes.values())
        name = w.pf.name
        if w.count > 1:
            bdim = "band" if spec.is_spectral else f"{name}_band"
            data_vars[name] = xr.DataArray(arr, dims=(bdim, "y", "x"), attrs=attrs, coords={bdim: w.names})
        else:
            data_vars[name] = xr.DataArray(arr[0], dims=("y", "x"), attrs=attrs)
        # stored values as they are, with CF's scale_factor / add_offset / _FillValue: readers decode
        # them exactly as the COG's scale / offset / nodata (no second rounding)
        enc = {"dtype": spec.dtype, "_FillValue": np.dtype(spec.dtype).type(spec.nodata)}
        if (spec.scale, spec.offset) != (1.0, 0.0):
            data_vars[name].attrs.update(scale_factor=spec.scale, add_offset=spec.offset)
        encoding[name] = enc
    ds = xr.Dataset(data_vars, coords=coords, attrs={"Conventions": "CF-1.8", "crs": wkt,
                                                      "source": "soilsuite export"})
    return ds, encoding


# ----------------------------------------------------------------------------- the command
def export_products(
    products: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    crs: str | None = None,
    res: float | None = None,
    bbox: Sequence[float] | None = None,
    like: str | os.PathLike | None = None,
    format: str = "cog",  # noqa: A002
    counts: str = "nearest",
    names: Sequence[str] | None = None,
    periods: Sequence[str] | None = None,
    overwrite: bool = False,
    force_clean: bool = False,
    progress: bool = False,
    block: int = BLOCK,
) -> ExportResult:
    """Resample products onto another grid and write them as COG, GeoTIFF, NetCDF or Zarr.

    Parameters
    ----------
    products : path or list of paths
        A composite output folder (window and periods) or product files.
    out : path
        Output folder (refused if it holds files soilsuite did not write; a finished export
        is replaced only with ``overwrite``).
    crs, res, bbox, like
        The target grid (:func:`target_geobox`): ``bbox`` is minx, miny, maxx, maxy **in the
        target CRS** (metres for a projected CRS), ``res`` the pixel size in its units.
    format : {"cog", "gtiff", "netcdf", "zarr"}
        Output format.
    counts : {"nearest", "sum"}
        How count products (VPC, BSC, TILLAGE_EVENTS...) are resampled (docs/export.md).
    names, periods : list of str, optional
        Products and period labels to export (default all).
    progress : bool
        A progress bar over the product files.

    Returns
    -------
    ExportResult
    """
    from .io.manifest import OutputFolder
    from .progress import progress_bar

    t0 = time.perf_counter()
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if counts not in ("nearest", "sum"):
        raise ConfigError(f"--counts {counts!r}: choose 'nearest' or 'sum'")
    files = collect_products(products, products=names, periods=periods)
    gb = target_geobox(files, crs=crs, res=res, bbox=bbox, like=like)
    warps = []
    for f in files:
        method = P.resampling(f.spec, counts)
        warps.append((_Warp(f, gb, method), _out_spec(f.spec, method)))
    folder = OutputFolder(out, "export")

    def fill(tmp: Path) -> list[Path]:
        written = []
        bar = progress_bar(progress)
        with bar:
            task = bar.add_task(f"export ({fmt})", total=len(warps))
            if fmt in ("cog", "gtiff"):
                for w, spec in warps:
                    written.append(_write_tif(w, spec, L.product_path(tmp, w.pf.label, w.pf.name), fmt))
                    bar.advance(task)
            else:
                import dask

                by_label: dict[str, list] = {}
                for w, spec in warps:
                    by_label.setdefault(w.pf.label, []).append((w, spec))
                for label, ws in by_label.items():
                    ds, enc = _dataset(ws, gb, block)
                    path = tmp / f"soilsuite_{label}.{'nc' if fmt == 'netcdf' else 'zarr'}"
                    with dask.config.set(scheduler="synchronous"):
                        if fmt == "netcdf":
                            for v in enc.values():
                                v.update(zlib=True, complevel=4)
                            ds.to_netcdf(path, engine="netcdf4", encoding=enc)
                        else:
                            ds.to_zarr(path, encoding=enc, mode="w", consolidated=True, zarr_format=2)
                    written.append(path)
                    bar.advance(task, len(ws))
        record = {"format": fmt, "crs": gb.crs.to_wkt(), "epsg": gb.crs.epsg,
                  "transform": list(tuple(gb.affine)[:6]), "shape": [int(gb.shape.y), int(gb.shape.x)],
                  "counts": counts,
                  "products": [{"name": w.pf.name, "label": w.pf.label, "source": os.fspath(w.pf.path),
                                "resampling": w.method, "dtype": s.dtype} for w, s in warps]}
        (tmp / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        return [out_path(p, tmp) for p in written]

    def out_path(p: Path, tmp: Path) -> Path:
        return Path(out) / p.relative_to(tmp)

    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):  # GDAL's block cache, else 5 % of the RAM
        written = folder.build(fill, overwrite=overwrite, force_clean=force_clean, what="export")
    return ExportResult(Path(out), written, gb, {w.pf.key: w.method for w, _ in warps}, time.perf_counter() - t0)
