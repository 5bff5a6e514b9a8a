"""Covariate stack: soilsuite products and user rasters aligned onto one target grid.

A :class:`CovariateStack` knows its target grid (an :class:`odc.geo.geobox.GeoBox`) and its
sources. Rasters in another CRS or resolution are aligned with rasterio's ``WarpedVRT``
(GDAL warping; bilinear for continuous layers, nearest for classes); nothing is reprojected by
hand. Values are physical (product scale/offset applied, nodata -> NaN), float32.

Layers
------
- products by name from a soilsuite product folder: ``SRC_MEAN`` gives ``SRC_MEAN_B02`` ...
  ``SRC_MEAN_B12``; single-band products keep their name (``BSF``, ``VPC``).
- user rasters ``{name: path}``; a multi-band raster gives ``name_1``, ``name_2`` ... (or its
  band descriptions).
- terrain derivatives of a DEM raster (:func:`terrain_derivatives`), computed once on the
  whole aligned DEM (they need neighbours and, for the TWI, the whole catchment).
- spectral indices of ``SRC_MEAN`` (:data:`SPECTRAL_INDICES`).

:meth:`CovariateStack.read` returns a window of the stack; prediction and point extraction use
the same reader, so a pixel's covariates are identical in both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError

#: Spectral indices of SRC_MEAN: name -> (formula, bands). All from reflectance 0-1.
SPECTRAL_INDICES: dict[str, str] = {
    "SRC_NDVI": "(B08 - B04) / (B08 + B04)",
    "SRC_NBR2": "(B11 - B12) / (B11 + B12)",
    "SRC_B11_B12": "B11 / B12",
    "SRC_BRIGHTNESS": "mean of B02 B03 B04 B08 B11 B12",
}

#: Terrain covariates derived from a DEM (see :func:`terrain_derivatives`).
TERRAIN_LAYERS: tuple[str, ...] = ("slope", "northness", "eastness", "curvature", "tpi", "twi")


# ----------------------------------------------------------------------------- terrain
def _make_flow_acc():
    from numba import njit

    @njit(cache=True)
    def flow_acc(dem, order, dx, dy):
        ny, nx = dem.shape
        acc = np.ones(ny * nx, dtype=np.float64)
        diag = math.sqrt(dx * dx + dy * dy)
        for k in range(order.size):
            i = order[k]
            r = i // nx
            c = i - r * nx
            z = dem[r, c]
            if not np.isfinite(z):
                continue
            best = 0.0
            bi = -1
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if dr == 0 and dc == 0:
                        continue
                    rr = r + dr
                    cc = c + dc
                    if rr < 0 or rr >= ny or cc < 0 or cc >= nx:
                        continue
                    zn = dem[rr, cc]
                    if not np.isfinite(zn):
                        continue
                    d = diag if (dr != 0 and dc != 0) else (dx if dr == 0 else dy)
                    s = (z - zn) / d
                    if s > best:
                        best = s
                        bi = rr * nx + cc
            if bi >= 0:
                acc[bi] += acc[i]
        return acc.reshape(ny, nx)

    return flow_acc


_FLOW_ACC = None


def flow_accumulation(dem: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """D8 flow accumulation (number of cells draining through each cell, itself included).

    Each cell passes its accumulated count to its steepest downslope neighbour (drop /
    distance); cells are processed from high to low, so every contributor is done first. Pits
    and flats pass nothing on (no depression filling).
    """
    global _FLOW_ACC
    if _FLOW_ACC is None:
        _FLOW_ACC = _make_flow_acc()
    z = np.asarray(dem, dtype=np.float64)
    key = np.where(np.isfinite(z), z, -np.inf).ravel()
    order = np.argsort(-key, kind="stable").astype(np.int64)
    return _FLOW_ACC(z, order, float(dx), float(dy))


def terrain_derivatives(dem: np.ndarray, dx: float, dy: float, *, tpi_radius: int = 5) -> dict[str, np.ndarray]:
    """Local terrain covariates of a DEM on a projected grid.

    Parameters
    ----------
    dem : ndarray [Y, X]
        Elevation (m), NaN = nodata, rows from north to south.
    dx, dy : float
        Pixel size in x and y (m, positive).
    tpi_radius : int
        Half side (pixels) of the square window of the topographic position index.

    Returns
    -------
    dict of str to ndarray (float32)
        With ``p = dz/dx`` (east) and ``q = dz/dy`` (north) from ``numpy.gradient``
        (central differences, one-sided at the edges):

        - ``slope`` = ``degrees(arctan(sqrt(p**2 + q**2)))``
        - ``aspect`` = direction of steepest descent, clockwise from north:
          ``atan2(-p, -q)``; ``northness = cos(aspect)``, ``eastness = sin(aspect)``
          (both 0 where the slope is < 0.01 degrees).
        - ``curvature`` = Laplacian ``d2z/dx2 + d2z/dy2`` (1/m; negative on convex crests,
          positive in hollows).
        - ``tpi`` = ``z - mean(z)`` in a ``(2r+1)**2`` window (m; positive on ridges).
        - ``twi`` = ``ln(a / tan(beta))`` with ``a`` the D8 contributing area per unit contour
          width (cells x dx*dy / dx, m) and ``beta`` the slope, at least 0.1 degree.
    """
    from scipy.ndimage import uniform_filter

    z = np.asarray(dem, dtype=np.float64)
    valid = np.isfinite(z)
    if not valid.any():
        return {k: np.full(z.shape, np.nan, np.float32) for k in TERRAIN_LAYERS}
    # fill nodata with the nearest valid value for the derivatives, masked again at the end
    if not valid.all():
        from scipy.ndimage import distance_transform_edt

        idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        zf = z[tuple(idx)]
    else:
        zf = z
    dzdy_rows, dzdx = np.gradient(zf, dy, dx) if min(z.shape) > 1 else (np.zeros_like(zf), np.zeros_like(zf))
    q = -dzdy_rows  # rows go south; dz/dnorth = -dz/drow
    p = dzdx
    grad = np.hypot(p, q)
    slope = np.degrees(np.arctan(grad))
    aspect = np.arctan2(-p, -q)
    flat = slope < 0.01
    north = np.where(flat, 0.0, np.cos(aspect))
    east = np.where(flat, 0.0, np.sin(aspect))
    if min(z.shape) >= 3:
        d2x = np.gradient(np.gradient(zf, dx, axis=1), dx, axis=1)
        d2y = np.gradient(np.gradient(zf, dy, axis=0), dy, axis=0)
        curv = d2x + d2y
    else:
        curv = np.zeros_like(zf)
    tpi = zf - uniform_filter(zf, size=2 * tpi_radius + 1, mode="nearest")
    acc = flow_accumulation(np.where(valid, z, np.nan), dx, dy)
    a = acc * dx * dy / dx
    tanb = np.tan(np.radians(np.maximum(slope, 0.1)))
    twi = np.log(a / tanb)
    out = {"slope": slope, "northness": north, "eastness": east, "curvature": curv, "tpi": tpi, "twi": twi}
    return {k: np.where(valid, v, np.nan).astype(np.float32) for k, v in out.items()}


def spectral_indices(src_mean: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Indices of :data:`SPECTRAL_INDICES` from SRC_MEAN bands (reflectance 0-1, NaN nodata)."""
    b = src_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "SRC_NDVI": (b["B08"] - b["B04"]) / (b["B08"] + b["B04"]),
            "SRC_NBR2": (b["B11"] - b["B12"]) / (b["B11"] + b["B12"]),
            "SRC_B11_B12": b["B11"] / b["B12"],
            "SRC_BRIGHTNESS": np.mean([b[k] for k in ("B02", "B03", "B04", "B08", "B11", "B12")], axis=0),
        }
    return {k: np.where(np.isfinite(v), v, np.nan).astype(np.float32) for k, v in out.items()}


# ----------------------------------------------------------------------------- sources
@dataclass
class RasterLayer:
    """One raster file contributing one or more covariates.

    Attributes
    ----------
    path : str
    names : list of str
        Covariate names of the bands read.
    bands : list of int
        1-based band indexes.
    product : str or None
        soilsuite product name (decoded with its catalogue scale/nodata), else None (the
        file's own nodata, scales and offsets).
    resampling : str
        rasterio resampling name used when the file's grid differs from the target grid.
    """

    path: str
    names: list[str]
    bands: list[int]
    product: str | None = None
    resampling: str = "bilinear"


@dataclass
class CovariateStack:
    """Covariates on a target grid.

    Build it with :func:`build_stack`. ``names`` lists the covariates in band order of
    :meth:`read`.
    """

    geobox: Any
    layers: list[RasterLayer]
    dem: str | None = None
    terrain: tuple[str, ...] = ()
    indices: tuple[str, ...] = ()
    tpi_radius: int = 5
    _terrain_cache: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    # -- description
    @property
    def names(self) -> list[str]:
        out = [n for lay in self.layers for n in lay.names]
        out += list(self.terrain) + list(self.indices)
        return out

    @property
    def crs(self):
        return self.geobox.crs

    @property
    def transform(self):
        return self.geobox.affine

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.geobox.shape)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        from rasterio.transform import array_bounds

        h, w = self.shape
        b = array_bounds(h, w, self.transform)
        return (b[0], b[1], b[2], b[3])

    def to_dict(self) -> dict:
        """A plain description (paths, names, grid) that :meth:`from_dict` rebuilds."""
        return {
            "crs": self.geobox.crs.to_wkt(),
            "transform": tuple(self.transform)[:6],
            "shape": self.shape,
            "layers": [vars(lay).copy() for lay in self.layers],
            "dem": self.dem,
            "terrain": list(self.terrain),
            "indices": list(self.indices),
            "tpi_radius": self.tpi_radius,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, products: str | Path | None = None) -> CovariateStack:
        """Rebuild a stack; ``products`` replaces the folder of product layers (moved data)."""
        from affine import Affine
        from odc.geo.geobox import GeoBox

        gb = GeoBox(tuple(d["shape"]), Affine(*d["transform"]), d["crs"])
        layers = []
        for lay in d["layers"]:
            lay = dict(lay)
            if products is not None and lay.get("product"):
                lay["path"] = str(Path(products) / Path(lay["path"]).name)
            layers.append(RasterLayer(**lay))
        return cls(gb, layers, d.get("dem"), tuple(d.get("terrain", ())), tuple(d.get("indices", ())),
                   int(d.get("tpi_radius", 5)))

    # -- reading
    def windows(self, block: int = 512) -> Iterator[Any]:
        """Windows of at most ``block`` x ``block`` pixels covering the grid, row-major."""
        from rasterio.windows import Window

        h, w = self.shape
        for r in range(0, h, block):
            for c in range(0, w, block):
                yield Window(c, r, min(block, w - c), min(block, h - r))

    def _read_layer(self, lay: RasterLayer, window) -> np.ndarray:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        from .. import products as _products

        try:
            src = rasterio.open(lay.path)
        except Exception as exc:
            raise InputError(f"covariate raster {lay.path}: cannot open: {exc}") from None
        with src:
            if max(lay.bands) > src.count:
                raise InputError(f"covariate raster {lay.path}: band {max(lay.bands)} requested, file has {src.count}")
            same = (src.crs == self.crs and src.shape == self.shape
                    and src.transform.almost_equals(self.transform, precision=1e-9))
            h, w = self.shape
            if same:
                data = src.read(lay.bands, window=window, masked=True)
                scales = [src.scales[b - 1] for b in lay.bands]
                offsets = [src.offsets[b - 1] for b in lay.bands]
            else:
                nodata = src.nodata
                with WarpedVRT(src, crs=self.crs, transform=self.transform, width=w, height=h,
                               resampling=Resampling[lay.resampling],
                               src_nodata=nodata, nodata=nodata,
                               tolerance=1e-9) as vrt:  # exact: blocks match a whole read
                    data = vrt.read(lay.bands, window=window, masked=True)
                scales = [src.scales[b - 1] for b in lay.bands]
                offsets = [src.offsets[b - 1] for b in lay.bands]
        if lay.product:
            spec = _products.get(lay.product)
            raw = np.ma.filled(data.astype("float64"), np.nan) if np.ma.is_masked(data) else np.asarray(data, "float64")
            # decode with the catalogue (scale, nodata); masked pixels are already NaN
            dec = raw * spec.scale + spec.offset
            if not np.isnan(spec.nodata):
                dec[raw == spec.nodata] = np.nan
            return dec.astype(np.float32)
        arr = np.ma.filled(np.ma.asarray(data).astype("float64"), np.nan)
        for i, (s, o) in enumerate(zip(scales, offsets, strict=True)):
            if s != 1.0 or o != 0.0:
                arr[i] = arr[i] * s + o
        return arr.astype(np.float32)

    def _terrain_full(self) -> dict[str, np.ndarray]:
        if self._terrain_cache is None:
            lay = next((lay for lay in self.layers if self.dem in lay.names), None)
            if lay is None:
                raise ConfigError(f"terrain covariates need the DEM layer {self.dem!r} in the stack")
            if self.crs.geographic:
                raise ConfigError("terrain covariates need a projected target grid (metres); "
                                  f"the grid CRS is geographic ({self.crs})")
            dem = self._read_layer(lay, None)[lay.names.index(self.dem)]
            dx, dy = abs(self.transform.a), abs(self.transform.e)
            self._terrain_cache = terrain_derivatives(dem, dx, dy, tpi_radius=self.tpi_radius)
        return self._terrain_cache

    def read(self, window: Any = None) -> np.ndarray:
        """Covariates of a window as float32 [n_covariates, rows, cols], NaN = no value.

        Parameters
        ----------
        window : rasterio.windows.Window, optional
            Part of the target grid; the whole grid if None.
        """
        from rasterio.windows import Window

        h, w = self.shape
        if window is None:
            window = Window(0, 0, w, h)
        out: list[np.ndarray] = []
        named: dict[str, np.ndarray] = {}
        for lay in self.layers:
            arr = self._read_layer(lay, window)
            for n, a in zip(lay.names, arr, strict=True):
                named[n] = a
                out.append(a)
        if self.terrain:
            t = self._terrain_full()
            r0, c0 = int(window.row_off), int(window.col_off)
            sl = (slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width)))
            out += [t[k][sl] for k in self.terrain]
        if self.indices:
            bands = {k.removeprefix("SRC_MEAN_"): v for k, v in named.items() if k.startswith("SRC_MEAN_")}
            idx = spectral_indices(bands)
            out += [idx[k] for k in self.indices]
        return np.stack(out).astype(np.float32, copy=False)

    def extract(self, samples: Any, *, block: int = 512) -> tuple[pd.DataFrame, dict]:
        """Covariate values at sample points (nearest pixel of the target grid).

        Points are transformed to the grid CRS; the windows holding points are read with
        :meth:`read`, so values equal those used for prediction.

        Parameters
        ----------
        samples : Samples or ndarray [n, 2]
            Samples (any CRS), or x/y coordinates already in the grid CRS.

        Returns
        -------
        table : DataFrame
            One row per sample (same index), one column per covariate; NaN where the point is
            outside the grid or a covariate has no value.
        info : dict
            ``outside``: row labels outside the grid; ``nodata``: {label: [covariates]};
            ``row``/``col``: pixel indexes (-1 outside).
        """
        from .samples import Samples, SampleWarning

        if isinstance(samples, Samples):
            xy = samples.coords(self.crs)
            index = samples.gdf.index
        else:
            xy = np.asarray(samples, dtype="float64")
            index = pd.RangeIndex(len(xy))
        inv = ~self.transform
        cols_f = inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c
        rows_f = inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f
        rows = np.floor(rows_f).astype(np.int64)
        cols = np.floor(cols_f).astype(np.int64)
        h, w = self.shape
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        names = self.names
        values = np.full((len(xy), len(names)), np.nan, dtype=np.float32)
        br, bc = rows // block, cols // block
        for key in sorted(set(zip(br[inside].tolist(), bc[inside].tolist(), strict=True))):
            from rasterio.windows import Window

            r0, c0 = key[0] * block, key[1] * block
            win = Window(c0, r0, min(block, w - c0), min(block, h - r0))
            sel = inside & (br == key[0]) & (bc == key[1])
            data = self.read(win)
            values[sel] = data[:, rows[sel] - r0, cols[sel] - c0].T
        table = pd.DataFrame(values, index=index, columns=names)
        outside = list(index[~inside])
        nodata = {}
        miss = inside & np.isnan(values).any(axis=1)
        for i in np.flatnonzero(miss):
            nodata[index[i]] = [n for n, v in zip(names, values[i], strict=True) if np.isnan(v)]
        if isinstance(samples, Samples):
            samples.report.outside_extent = outside
            samples.report.nodata = nodata
        import warnings

        if outside:
            warnings.warn(f"{len(outside)} of {len(xy)} samples lie outside the covariate grid "
                          f"(bounds {tuple(round(b, 2) for b in self.bounds)}, {self.crs}); row labels: "
                          f"{outside[:10]}{' ...' if len(outside) > 10 else ''}", SampleWarning, stacklevel=2)
        if nodata:
            first = list(nodata.items())[:5]
            warnings.warn(f"{len(nodata)} samples have covariates without a value (nodata), e.g. "
                          + "; ".join(f"{k}: {', '.join(v[:4])}" for k, v in first), SampleWarning, stacklevel=2)
        return table, {"outside": outside, "nodata": nodata, "row": np.where(inside, rows, -1),
                       "col": np.where(inside, cols, -1)}


def _grid_of(path: str | Path):
    import rasterio
    from odc.geo.geobox import GeoBox

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"raster {path} has no CRS")
            return GeoBox(src.shape, src.transform, src.crs)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"raster {path}: cannot open: {exc}") from None


def make_grid(like: str | Path, *, crs: Any = None, resolution: float | None = None,
              bounds: Sequence[float] | None = None):
    """Target grid: the grid of ``like``, optionally in another CRS / resolution / bounds.

    Parameters
    ----------
    like : path
        Raster whose grid (or extent, if ``crs``/``resolution`` change) is used.
    crs : any, optional
        Target CRS.
    resolution : float, optional
        Pixel size in target CRS units.
    bounds : (left, bottom, right, top), optional
        Extent in the target CRS.

    Returns
    -------
    odc.geo.geobox.GeoBox
    """
    from odc.geo.geobox import GeoBox
    from rasterio.warp import transform_bounds

    gb = _grid_of(like)
    if crs is None and resolution is None and bounds is None:
        return gb
    tcrs = crs if crs is not None else gb.crs
    res = resolution if resolution is not None else abs(gb.affine.a)
    if bounds is None:
        b = gb.extent.boundingbox
        bounds = transform_bounds(gb.crs, tcrs, b.left, b.bottom, b.right, b.top, densify_pts=21)
    if crs is not None and resolution is None and str(crs) != str(gb.crs):
        raise ConfigError("give resolution= when changing the CRS of the grid")
    return GeoBox.from_bbox(tuple(bounds), tcrs, resolution=res)


def build_stack(
    products: str | Path | None = None,
    product_names: Sequence[str] = ("SRC_MEAN",),
    rasters: Mapping[str, str | Path] | None = None,
    *,
    grid: Any = None,
    crs: Any = None,
    resolution: float | None = None,
    bounds: Sequence[float] | None = None,
    terrain: bool | str = False,
    indices: bool = False,
    resampling: Mapping[str, str] | None = None,
    tpi_radius: int = 5,
) -> CovariateStack:
    """Assemble a covariate stack.

    Parameters
    ----------
    products : path, optional
        Folder of soilsuite product COGs (``<NAME>.tif``).
    product_names : sequence of str
        Products to use (``SRC_MEAN``, ``SRC_STD``, ``BSF``, ``MREF_MEAN`` ...).
    rasters : dict of str to path, optional
        User rasters by covariate name (DEM, climate, maps), any CRS and resolution.
    grid : GeoBox or path, optional
        Target grid, or a raster whose grid to use. Default: the first product, else the
        first raster, changed by ``crs``/``resolution``/``bounds`` if given.
    terrain : bool or str
        Add :data:`TERRAIN_LAYERS` from the raster named ``"dem"`` (True) or the given name.
    indices : bool
        Add :data:`SPECTRAL_INDICES` (needs SRC_MEAN).
    resampling : dict, optional
        Resampling per raster name (``"nearest"`` for class maps); default bilinear
        (nearest for MASK).

    Returns
    -------
    CovariateStack
    """
    from rasterio.enums import Resampling

    from .. import products as _products
    from ..io.products import product_files

    rasters = dict(rasters or {})
    resampling = dict(resampling or {})
    for k, v in resampling.items():
        if v not in Resampling.__members__:
            raise ConfigError(f"resampling {v!r} for {k!r} unknown; e.g. nearest, bilinear, cubic, average")
    layers: list[RasterLayer] = []
    if products is not None:
        pdir = Path(products)
        if not pdir.is_dir():
            raise InputError(f"product folder {pdir} does not exist")
        present = product_files(pdir)
        for name in product_names:
            try:
                spec = _products.get(name)
            except KeyError as exc:
                raise ConfigError(str(exc.args[0])) from None
            if spec.name not in present:
                raise InputError(f"product {spec.name} not found: neither {pdir / spec.name}.tif nor .vrt exists "
                                 f"(found: {sorted(present)})")
            p = present[spec.name]
            names = [spec.name] if len(spec.bands) == 1 else [f"{spec.name}_{b}" for b in spec.bands]
            layers.append(RasterLayer(str(p), names, list(range(1, len(spec.bands) + 1)), spec.name,
                                      resampling.get(spec.name, "nearest" if spec.name == "MASK" else "bilinear")))
    elif product_names and indices:
        raise ConfigError("indices=True needs SRC_MEAN from a product folder (products=)")
    import rasterio

    for name, path in rasters.items():
        p = Path(path)
        if not p.exists():
            raise InputError(f"covariate raster {name!r}: {p} does not exist")
        with rasterio.open(p) as src:
            n = src.count
            desc = list(src.descriptions)
        if n == 1:
            names = [name]
        elif all(desc) and len(set(desc)) == n:
            names = [f"{name}_{d}" for d in desc]
        else:
            names = [f"{name}_{i}" for i in range(1, n + 1)]
        layers.append(RasterLayer(str(p), names, list(range(1, n + 1)), None, resampling.get(name, "bilinear")))
    if not layers:
        raise ConfigError("no covariates: give products= with product_names, and/or rasters=")
    if grid is None:
        gb = make_grid(layers[0].path, crs=crs, resolution=resolution, bounds=bounds)
    elif isinstance(grid, str | Path):
        gb = make_grid(grid, crs=crs, resolution=resolution, bounds=bounds)
    else:
        gb = grid
    dem = None
    tl: tuple[str, ...] = ()
    if terrain:
        dem = "dem" if terrain is True else str(terrain)
        if dem not in rasters:
            raise ConfigError(f"terrain covariates need a raster named {dem!r} in rasters= (have {list(rasters)})")
        tl = TERRAIN_LAYERS
    il: tuple[str, ...] = ()
    if indices:
        if not any(lay.product == "SRC_MEAN" for lay in layers):
            raise ConfigError("indices=True needs the SRC_MEAN product in product_names")
        il = tuple(SPECTRAL_INDICES)
    stack = CovariateStack(gb, layers, dem, tl, il, tpi_radius)
    names = stack.names
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"covariate names repeat: {sorted(dup)}; rename the rasters")
    return stack
