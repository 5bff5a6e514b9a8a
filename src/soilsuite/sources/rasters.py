"""Auxiliary rasters (WorldCover, threshold raster, user covariates) read onto a target grid.

Reprojection is GDAL's (rasterio ``WarpedVRT``): only the source windows that cover the target
grid are read, so a 36000 x 36000 WorldCover tile is never read whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from ..errors import InputError


def read_on_grid(
    path: str | Path, geobox, *, resampling: str = "nearest", band: int = 1,
    dtype: str | None = None, fill: float | None = None,
) -> np.ndarray:
    """Read one band of a raster onto an odc-geo ``GeoBox`` (any source CRS/resolution).

    Parameters
    ----------
    path : str or Path
        Raster readable by GDAL.
    geobox : odc.geo.geobox.GeoBox
        Target grid (CRS, transform, shape).
    resampling : str
        GDAL resampling name: ``nearest`` for classes, ``bilinear`` for continuous values.
    band : int
        1-based band index.
    dtype : str, optional
        Output dtype (default: the source's).
    fill : float, optional
        Value for target pixels outside the source or at source nodata (default: the source
        nodata, else 0; NaN is allowed for float output). Pixels outside the source's extent
        get ``fill`` also when the source has no nodata value (GDAL's warp alpha marks them),
        so they are never read as 0.

    Returns
    -------
    numpy.ndarray
        Array of ``geobox.shape``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"raster {path}: no such file")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"raster {path}: has no CRS")
            if band > src.count:
                raise InputError(f"raster {path}: has {src.count} band(s), band {band} requested")
            out_dtype = dtype or src.dtypes[band - 1]
            nodata = src.nodatavals[band - 1]
            fill_value = fill if fill is not None else (nodata if nodata is not None else 0)
            with WarpedVRT(
                src, crs=geobox.crs.to_wkt(), transform=geobox.affine,
                width=geobox.shape.x, height=geobox.shape.y,
                resampling=Resampling[resampling], src_nodata=nodata,
                tolerance=1e-9,  # (almost) exact transformer: the same pixels whatever the tiling
                nodata=nodata if nodata is not None else None,
                # without a nodata value, an alpha band is the only way to tell "outside"
                add_alpha=nodata is None,
            ) as vrt:
                arr = vrt.read(band, out_dtype=out_dtype, masked=True)
                if nodata is None:
                    outside = vrt.read(vrt.count) == 0
                    arr = np.ma.masked_array(np.ma.getdata(arr), mask=np.ma.getmaskarray(arr) | outside)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"raster {path}: cannot be read: {exc}") from exc
    return np.ma.filled(arr, fill_value).astype(out_dtype, copy=False)
