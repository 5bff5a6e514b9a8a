"""Per-pixel inputs of the optional layers (issue 15) read onto a tile's grid.

- grassland (``ploughing``): ESA WorldCover class 30 (grassland) or inside a user polygon
  layer of permanent grassland (``grassland``: any vector file GDAL/pyogrio reads, any CRS; a
  pixel belongs to a polygon if its centre does);
- monthly rainfall-erosivity shares (``erosion``): a CSV table ``month,share`` (12 rows,
  month 1-12) or a raster with 12 bands (January first, any CRS, bilinear onto the grid);
  shares are normalised to sum 1 (per pixel for a raster). Default: 1/12 each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["WORLDCOVER_GRASSLAND", "check_layer_inputs", "erosivity_table", "grassland_mask", "layer_inputs"]

#: ESA WorldCover class "grassland".
WORLDCOVER_GRASSLAND = 30


def grassland_mask(geobox, worldcover: np.ndarray | None, polygons: str | Path | None) -> np.ndarray:
    """bool ``[Y, X]``: WorldCover 30 or inside a polygon of ``polygons``."""
    ny, nx = geobox.shape.y, geobox.shape.x
    mask = np.zeros((ny, nx), bool) if worldcover is None else (worldcover == WORLDCOVER_GRASSLAND)
    if polygons is None:
        return mask
    import geopandas as gpd
    from rasterio.features import rasterize

    path = Path(polygons)
    if not path.exists():
        raise InputError(f"grassland file {path}: no such file")
    try:
        crs = gpd.read_file(path, rows=0).crs
        if crs is None:
            raise InputError(f"grassland file {path}: has no CRS")
        bbox = geobox.extent.to_crs(crs).boundingbox
        gdf = gpd.read_file(path, bbox=tuple(bbox))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error: name the file
        raise InputError(f"grassland file {path}: cannot be read: {exc}") from exc
    geoms = [g for g in gdf.to_crs(geobox.crs.to_wkt()).geometry if g is not None and not g.is_empty]
    if geoms:
        mask |= rasterize(geoms, out_shape=(ny, nx), transform=geobox.affine, fill=0, default_value=1,
                          dtype="uint8").astype(bool)
    return mask


def erosivity_table(path: str | Path) -> np.ndarray:
    """Monthly erosivity shares from a CSV ``month,share`` (12 rows), normalised to sum 1; float32 ``[12]``."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"erosivity table {path}: cannot be read as CSV: {exc}") from exc
    cols = {c.strip().lower(): c for c in df.columns}
    if "month" not in cols or "share" not in cols:
        raise InputError(f"erosivity table {path}: expected columns 'month' and 'share', found {list(df.columns)}")
    months = pd.to_numeric(df[cols["month"]], errors="coerce")
    share = pd.to_numeric(df[cols["share"]], errors="coerce")
    if months.isna().any() or sorted(months.astype(int)) != list(range(1, 13)):
        raise InputError(f"erosivity table {path}: 'month' must list 1..12 once each, found {list(df[cols['month']])}")
    if share.isna().any() or (share < 0).any() or share.sum() <= 0:
        raise InputError(f"erosivity table {path}: 'share' must be numbers >= 0 with a positive sum, "
                         f"found {list(df[cols['share']])}")
    out = np.zeros(12, np.float64)
    out[months.astype(int).to_numpy() - 1] = share.to_numpy(float)
    return (out / out.sum()).astype(np.float32)


def _erosivity_raster(path: Path, geobox) -> np.ndarray:
    import rasterio

    from .rasters import read_on_grid

    try:
        with rasterio.open(path) as src:
            count = src.count
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"erosivity raster {path}: cannot be read: {exc}") from exc
    if count != 12:
        raise InputError(f"erosivity raster {path}: expected 12 bands (January..December), found {count}")
    w = np.stack([read_on_grid(path, geobox, resampling="bilinear", band=b, dtype="float32", fill=np.nan)
                  for b in range(1, 13)])
    w[~np.isfinite(w) | (w < 0)] = np.nan
    total = np.nansum(w, axis=0)
    ok = np.isfinite(w).all(0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok[None], w / total[None], np.float32(1 / 12))  # outside / gaps: flat shares
    return w.astype(np.float32)


def erosivity_on_grid(path: str | Path, geobox) -> np.ndarray:
    """Monthly erosivity shares on ``geobox``: ``[12]`` (CSV) or ``[12, Y, X]`` (raster)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"erosivity file {path}: no such file")
    if path.suffix.lower() in (".csv", ".txt"):
        return erosivity_table(path)
    return _erosivity_raster(path, geobox)


def check_layer_inputs(cfg) -> None:
    """Before any work: the grassland file and the erosivity table/raster of the run's optional
    layers exist and can be read (:class:`InputError` naming the file otherwise)."""
    lay = cfg.layers
    if lay.ploughing and lay.grassland is not None:
        import geopandas as gpd

        path = Path(lay.grassland)
        if not path.exists():
            raise InputError(f"grassland file {path}: no such file")
        try:
            crs = gpd.read_file(path, rows=1).crs
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"grassland file {path}: cannot be read: {exc}") from exc
        if crs is None:
            raise InputError(f"grassland file {path}: has no CRS")
    if lay.erosion and lay.erosivity is not None:
        path = Path(lay.erosivity)
        if not path.exists():
            raise InputError(f"erosivity file {path}: no such file")
        if path.suffix.lower() in (".csv", ".txt"):
            erosivity_table(path)
        else:
            import rasterio

            try:
                with rasterio.open(path) as src:
                    count, crs = src.count, src.crs
            except rasterio.errors.RasterioError as exc:
                raise InputError(f"erosivity raster {path}: cannot be read: {exc}") from exc
            if count != 12 or crs is None:
                raise InputError(f"erosivity raster {path}: expected 12 bands (January..December) with a CRS, "
                                 f"found {count} band(s), CRS {crs}")


def layer_inputs(cfg, geobox, worldcover: np.ndarray | None) -> dict[str, np.ndarray]:
    """The per-pixel inputs the run's optional layers need on ``geobox`` (``TileInputs.aux``)."""
    aux: dict[str, np.ndarray] = {}
    lay = cfg.layers
    if lay.ploughing:
        aux["grassland"] = grassland_mask(geobox, worldcover, lay.grassland)
    if lay.erosion and lay.erosivity is not None:
        aux["erosivity"] = erosivity_on_grid(lay.erosivity, geobox)
    return aux
