"""Parcel statistics: exact-area zonal statistics of any product over polygons (exactextract).

For every parcel (polygon) and every product file of an output folder (window and periods;
:func:`soilsuite.io.collect.collect_products`), the statistics of the product's **physical**
values (decoded with the catalogue's scale, offset and nodata, :mod:`soilsuite.products`),
each pixel weighted by the fraction of its area inside the parcel (exactextract computes the
exact coverage fraction of every pixel a polygon touches):

``count``     covered valid pixels: sum of the coverage fractions of pixels with a value (px)
``mean``      coverage-weighted mean
``median``    coverage-weighted median (exactextract's weighted quantile)
``min/max``   smallest / largest value of a pixel the parcel touches
``std``       coverage-weighted population standard deviation (ddof = 0)
``coverage``  share of the parcel's area covered by pixels with a value (0-1):
              ``count * pixel area / parcel area``
``share_<c>`` class products (MASK, PLOUGHED...): share of class ``c`` among the covered
              pixels with a class (0-1); ``MASK_share_1`` is the bare-surface share
``majority``  class products: the class covering the largest area
``share_gt0`` count products (VPC, BSC, TILLAGE_EVENTS...): share of the covered pixels with a
              count above 0 (``TILLAGE_EVENTS_share_gt0``: share with a tillage event)

Parcels are read, repaired and reprojected to the products' CRS in batches, so memory stays
bounded whatever the number of parcels; the table is written batch by batch to a temporary
file and renamed at the end.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputError, OutputExistsError
from .io.collect import ProductFile, collect_products

__all__ = ["ParcelResult", "STATS", "parcel_stats", "parcel_summary", "read_parcels"]

#: Statistics of continuous products (default); class and count products add theirs.
STATS: tuple[str, ...] = ("count", "mean", "median", "min", "max", "std", "coverage")
_EXACT = {"count": "count", "mean": "mean", "median": "median", "min": "min", "max": "max", "std": "stdev"}
#: Parcel formats read (by extension) and table formats written.
READ_FORMATS = (".gpkg", ".parquet", ".geoparquet", ".shp", ".fgb", ".geojson", ".json", ".csv")
WRITE_FORMATS = (".gpkg", ".parquet", ".geoparquet", ".csv")
#: Columns a CSV's WKT geometry may be in (first found), unless ``wkt_column`` is given.
WKT_COLUMNS = ("wkt", "WKT", "geometry", "geom", "the_geom")
#: Parcels per batch (bounded memory; exactextract works on one batch at a time).
BATCH = 2000


# ----------------------------------------------------------------------------- reading parcels
class _ParcelFile:
    """A parcel file read in batches: ids, extra columns and shapely geometries with their CRS."""

    def __init__(self, path: str | os.PathLike, id_col: str, *, crs: str | None = None,
                 wkt_column: str | None = None, keep: Sequence[str] = ()):
        self.path = Path(path)
        self.id = id_col
        self.keep = [c for c in keep if c != id_col]
        if not self.path.exists():
            raise InputError(f"parcels: {self.path} does not exist")
        ext = self.path.suffix.lower()
        if ext not in READ_FORMATS:
            raise InputError(f"parcels: {self.path}: unknown format {ext!r}; give one of {', '.join(READ_FORMATS)}")
        self.kind = "csv" if ext == ".csv" else "parquet" if ext in (".parquet", ".geoparquet") else "ogr"
        self.wkt = None
        if self.kind == "csv":
            cols = list(pd.read_csv(self.path, nrows=0).columns)
            self.wkt = wkt_column or next((c for c in WKT_COLUMNS if c in cols), None)
            if self.wkt is None or self.wkt not in cols:
                raise InputError(f"parcels: {self.path}: no WKT geometry column "
                                 f"({wkt_column or ' / '.join(WKT_COLUMNS)}); columns: {', '.join(cols)}")
            if crs is None:
                raise InputError(f"parcels: {self.path} is a CSV and carries no CRS; give it with --parcels-crs "
                                 "(Python: parcels_crs=), e.g. EPSG:4326 for lon/lat")
            self.crs = crs
            self.columns = cols
        elif self.kind == "parquet":
            import json

            import pyarrow.parquet as pq

            pf = pq.ParquetFile(self.path)
            meta = pf.schema_arrow.metadata or {}
            if b"geo" not in meta:
                raise InputError(f"parcels: {self.path} is not a GeoParquet file (no 'geo' metadata)")
            geo = json.loads(meta[b"geo"])
            self.geom_col = geo["primary_column"]
            c = geo["columns"][self.geom_col].get("crs", "OGC:CRS84")
            self.crs = crs or (None if c is None else (json.dumps(c) if isinstance(c, dict) else c))
            self.columns = [n for n in pf.schema_arrow.names if n != self.geom_col]
        else:
            import pyogrio

            try:
                info = pyogrio.read_info(self.path)
            except Exception as exc:  # pyogrio's DataSourceError etc.
                raise InputError(f"parcels: cannot read {self.path}: {exc}") from None
            self.crs = crs or info["crs"]
            self.columns = list(info["fields"])
        if self.crs is None:
            raise InputError(f"parcels: {self.path} has no CRS; give it with --parcels-crs (Python: parcels_crs=)")
        missing = [c for c in (id_col, *self.keep) if c not in self.columns]
        if missing:
            raise InputError(f"parcels: {self.path} has no column {', '.join(missing)}; columns: "
                             f"{', '.join(c for c in self.columns if c != self.wkt)}")

    def ids(self) -> pd.Series:
        """The id column (whole file, without geometries)."""
        if self.kind == "csv":
            s = pd.read_csv(self.path, usecols=[self.id])[self.id]
        elif self.kind == "parquet":
            import pyarrow.parquet as pq

            s = pq.read_table(self.path, columns=[self.id]).to_pandas()[self.id]
        else:
            import pyogrio

            try:
                s = pyogrio.read_dataframe(self.path, columns=[self.id], read_geometry=False)[self.id]
            except pyogrio.errors.DataSourceError as exc:
                raise InputError(f"parcels: cannot read {self.path}: {exc}") from None
        return s

    def batches(self, size: int) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """``(attributes, shapely geometries)`` of ``size`` parcels at a time, in file order."""
        import shapely

        cols = [self.id, *self.keep]
        if self.kind == "csv":
            for chunk in pd.read_csv(self.path, usecols=[*cols, self.wkt], chunksize=size):
                wkt = chunk.pop(self.wkt)
                geoms = np.array([None if (not isinstance(w, str) or not w.strip()) else w for w in wkt], object)
                try:
                    geoms = shapely.from_wkt(geoms, on_invalid="raise")
                except shapely.errors.GEOSException as exc:
                    raise InputError(f"parcels: {self.path}: column {self.wkt}: unreadable WKT ({exc})") from None
                yield chunk.reset_index(drop=True), geoms
        elif self.kind == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(self.path)
            for rb in pf.iter_batches(batch_size=size, columns=[*cols, self.geom_col]):
                df = rb.to_pandas()
                geoms = shapely.from_wkb(df.pop(self.geom_col).to_numpy())
                yield df.reset_index(drop=True), geoms
        else:
            import pyogrio

            try:
                with pyogrio.open_arrow(self.path, columns=cols, batch_size=size, use_pyarrow=True) as (meta, reader):
                    gname = meta.get("geometry_name") or "wkb_geometry"
                    for rb in reader:
                        df = rb.to_pandas()
                        geoms = shapely.from_wkb(df.pop(gname).to_numpy(), on_invalid="warn")
                        yield df.reset_index(drop=True), geoms
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
                raise InputError(f"parcels: cannot read {self.path}: {exc}") from None


def read_parcels(path: str | os.PathLike, id: str, *, parcels_crs: str | None = None,  # noqa: A002
                 wkt_column: str | None = None, keep: Sequence[str] = ()):
    """Read a whole parcel file as a GeoDataFrame (ids checked; geometries as they are).

    Same formats and options as :func:`parcel_stats`; for small files (pictures, tests)."""
    import geopandas as gpd

    src = _ParcelFile(path, id, crs=parcels_crs, wkt_column=wkt_column, keep=keep)
    _check_ids(src.ids(), src)
    parts = [gpd.GeoDataFrame(df, geometry=g, crs=src.crs) for df, g in src.batches(100_000)]
    return pd.concat(parts, ignore_index=True) if len(parts) != 1 else parts[0]


def _check_ids(ids: pd.Series, src: _ParcelFile) -> None:
    null = np.flatnonzero(ids.isna().to_numpy())
    if len(null):
        raise InputError(f"parcels: {src.path}: {len(null)} parcel(s) without an id in column {src.id!r} "
                         f"(rows {', '.join(str(i + 1) for i in null[:8])}{' ...' if len(null) > 8 else ''})")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        vals = list(dict.fromkeys(dup.astype(str)))
        raise InputError(f"parcels: {src.path}: {len(vals)} id(s) in column {src.id!r} occur more than once: "
                         f"{', '.join(vals[:8])}{' ...' if len(vals) > 8 else ''}; ids must be unique")


# ----------------------------------------------------------------------------- raster sources
class _Reader:
    """One open product file; remembers the last band window read (a band's value source and
    its indicator sources read the same window one after the other)."""

    def __init__(self, pf: ProductFile):
        import rasterio

        self.pf = pf
        self.ds = rasterio.open(pf.path)
        self._key: tuple | None = None
        self._val: np.ndarray | None = None

    def read(self, band: int, x0: int, y0: int, nx: int, ny: int) -> np.ndarray:
        key = (band, x0, y0, nx, ny)
        if key != self._key:  # one band's window at a time: bounded memory
            from rasterio.windows import Window

            self._val = None
            raw = self.ds.read(band + 1, window=Window(x0, y0, nx, ny))
            self._val = self.pf.spec.decode(raw)  # physical float64, NaN = nodata
            self._key = key
        return self._val

    def close(self) -> None:
        self.ds.close()


def _source_class():
    from exactextract.raster import RasterSource

    class _Source(RasterSource):
        """A product band as exactextract sees it: physical values with NaN for nodata
        (exactextract leaves NaN out of every statistic), optionally turned into an indicator
        (1.0 / 0.0, NaN kept) whose mean is a share."""

        def __init__(self, reader: _Reader, band: int, name: str, indicator=None):
            super().__init__()
            self.r, self.band, self.ind = reader, band, indicator
            ds = reader.ds
            self._t = ds.transform
            self._shape = (ds.height, ds.width)
            self._wkt = ds.crs.to_wkt() if ds.crs else None
            self.set_name(name)

        def res(self):
            return (abs(self._t.a), abs(self._t.e))

        def srs_wkt(self):
            return self._wkt

        def extent(self):
            t, (h, w) = self._t, self._shape
            return (t.c, t.f + h * t.e, t.c + w * t.a, t.f)

        def nodata_value(self):
            return None

        def read_window(self, x0, y0, nx, ny):
            v = self.r.read(self.band, x0, y0, nx, ny)
            if self.ind is None:
                return v
            with np.errstate(invalid="ignore"):
                return np.where(np.isnan(v), np.nan, self.ind(v).astype(np.float64))

    return _Source


def _features(rows: np.ndarray, geoms: np.ndarray, wkt: str):
    """An exactextract feature source over shapely geometries (as WKB; much faster than the
    GeoJSON round trip of a GeoDataFrame) with one attribute ``_row``."""
    import shapely
    from exactextract.feature import Feature, FeatureSource

    class _F(Feature):
        def __init__(self, row, wkb):
            Feature.__init__(self)
            self.row, self.wkb = row, wkb

        def get(self, name):
            return self.row

        def geometry(self):
            return self.wkb

        def fields(self):
            return ["_row"]

    class _Src(FeatureSource):
        def __init__(self):
            super().__init__()
            self.wkbs = shapely.to_wkb(geoms)

        def count(self):
            return len(rows)

        def __iter__(self):
            for r, w in zip(rows, self.wkbs, strict=True):
                yield _F(int(r), bytes(w))

        def srs_wkt(self):
            return wkt

    return _Src()


def _kind(spec) -> str:
    if spec.classes:
        return "class"
    if spec.unit == "count":
        return "count"
    return "value"


def _band_label(pf: ProductFile, b: int, names: list[str]) -> str:
    return pf.key if len(names) == 1 else f"{pf.key}_{names[b]}"


# ----------------------------------------------------------------------------- result
@dataclass
class ParcelResult:
    """What :func:`parcel_stats` did.

    ``table``: the statistics (a DataFrame, one row per parcel, keyed by the id column; None
    when written to a file of more than ``keep_table_rows`` rows); ``path``: the table file (or
    None); ``repaired``: id -> reason of each invalid geometry that was repaired; ``empty``:
    ids of parcels without a usable geometry; ``outside``: ids of parcels entirely outside the
    products' extent (kept, NaN statistics, ``outside`` True); ``partial``: ids of parcels
    partly outside; ``columns``: the statistics columns; ``seconds``.
    """

    table: pd.DataFrame | None
    path: Path | None
    n_parcels: int
    products: list[ProductFile]
    columns: list[str]
    repaired: dict[Any, str] = field(default_factory=dict)
    empty: list[Any] = field(default_factory=list)
    outside: list[Any] = field(default_factory=list)
    partial: list[Any] = field(default_factory=list)
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """One line per kind of problem, naming the parcels (the first few ids)."""

        def ids(v):
            v = list(v)
            return ", ".join(str(i) for i in v[:10]) + (f" and {len(v) - 10} more" if len(v) > 10 else "")

        out = []
        if self.repaired:
            first = list(self.repaired.items())[:5]
            out.append(f"{len(self.repaired)} invalid geometr{'y' if len(self.repaired) == 1 else 'ies'} repaired "
                       f"(shapely make_valid; column 'repaired'): "
                       + "; ".join(f"{k}: {v}" for k, v in first) + (" ..." if len(self.repaired) > 5 else ""))
        if self.empty:
            out.append(f"{len(self.empty)} parcel(s) without a polygon (empty or collapsed geometry; NaN "
                       f"statistics): {ids(self.empty)}")
        if self.outside:
            out.append(f"{len(self.outside)} parcel(s) entirely outside the products' extent (kept with NaN "
                       f"statistics, column 'outside'): {ids(self.outside)}")
        if self.partial:
            out.append(f"{len(self.partial)} parcel(s) partly outside the products' extent (more than 0.01 % of its area; column "
                       f"'inside_fraction' < 1): {ids(self.partial)}")
        return out


# ----------------------------------------------------------------------------- writing
class _TableWriter:
    """Appends batches to a temporary table file; :meth:`close` renames it into place."""

    def __init__(self, out: Path, overwrite: bool):
        self.out = out
        ext = out.suffix.lower()
        if ext not in WRITE_FORMATS:
            raise InputError(f"--out {out}: unknown table format {ext!r}; give one of {', '.join(WRITE_FORMATS)}")
        if out.exists() and not overwrite:
            raise OutputExistsError(f"output table {out} exists already; use --overwrite (Python: overwrite=True) "
                                    "to replace it")
        if not out.parent.is_dir():
            raise InputError(f"output folder {out.parent} does not exist (writing {out.name})")
        self.kind = "csv" if ext == ".csv" else "parquet" if ext in (".parquet", ".geoparquet") else "gpkg"
        self.tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp{out.suffix}")
        self._pq = None
        self._n = 0

    def write(self, df) -> None:
        if self.kind == "csv":
            d = pd.DataFrame(df.drop(columns="geometry")) if "geometry" in df else df
            d.to_csv(self.tmp, mode="a" if self._n else "w", header=not self._n, index=False)
        elif self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if "geometry" in df:
                from geopandas.io.arrow import _geopandas_to_arrow

                table = _geopandas_to_arrow(df, index=False)  # GeoParquet 'geo' metadata
            else:
                table = pa.Table.from_pandas(df, preserve_index=False)
            if self._pq is None:
                md = dict(table.schema.metadata or {})
                if b"geo" in md:  # batches may mix Polygon and MultiPolygon: declare no types
                    import json

                    geo = json.loads(md[b"geo"])
                    for col in geo["columns"].values():
                        col["geometry_types"] = []
                        col.pop("bbox", None)
                    md[b"geo"] = json.dumps(geo).encode()
                self._pq = pq.ParquetWriter(self.tmp, table.schema.with_metadata(md))
            self._pq.write_table(table.cast(self._pq.schema))
        else:
            import pyogrio

            pyogrio.write_dataframe(df, self.tmp, layer=self.out.stem, driver="GPKG", append=bool(self._n))
        self._n += 1

    def close(self) -> Path:
        if self._pq is not None:
            self._pq.close()
        os.replace(self.tmp, self.out)
        return self.out

    def abort(self) -> None:
        if self._pq is not None:
            try:
                self._pq.close()
            except Exception:  # noqa: BLE001 - clean-up only
                pass
        for p in (self.tmp, self.tmp.with_name(self.tmp.name + "-journal")):
            if p.exists():
                p.unlink()


# ----------------------------------------------------------------------------- the statistics
def _repair(geoms: np.ndarray, ids: Sequence[Any]) -> tuple[np.ndarray, dict[Any, str], np.ndarray]:
    """Repaired polygonal geometries, the repaired ids with GEOS's reason, and the empty mask."""
    import shapely

    repaired: dict[Any, str] = {}
    missing = shapely.is_missing(geoms)
    geoms = np.where(missing, shapely.from_wkt("POLYGON EMPTY"), geoms)
    bad = ~shapely.is_valid(geoms)
    for i in np.flatnonzero(bad):
        repaired[ids[i]] = shapely.is_valid_reason(geoms[i])
    if bad.any():
        geoms = geoms.copy()
        fixed = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
        geoms[bad] = [_polygonal(g) for g in fixed]
    geoms = np.array([_polygonal(g) for g in geoms], object)  # lines/points in collections dropped
    empty = shapely.is_empty(geoms) | missing
    return geoms, repaired, empty


def _polygonal(g):
    import shapely

    t = shapely.get_type_id(g)
    if t in (3, 6):  # Polygon, MultiPolygon
        return g
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
    if not parts:
        return shapely.from_wkt("POLYGON EMPTY")
    return shapely.union_all(parts)


def parcel_stats(
    products: str | os.PathLike | Sequence[str | os.PathLike],
    parcels: str | os.PathLike,
    *,
    id: str,  # noqa: A002
    out: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    periods: Sequence[str] | None = None,
    stats: Sequence[str] = STATS,
    parcels_crs: str | None = None,
    wkt_column: str | None = None,
    keep: Sequence[str] = (),
    batch_size: int = BATCH,
    overwrite: bool = False,
    progress: bool = False,
    strategy: str = "raster-sequential",
    max_cells: int = 1_000_000,
) -> ParcelResult:
    """Exact-area zonal statistics of products over parcels (module docs: the statistics).

    Parameters
    ----------
    products : path or list of paths
        A composite output folder (window and every period) or product files (COG/VRT).
    parcels : path
        Polygons: GeoPackage, GeoParquet, Shapefile, FlatGeobuf, GeoJSON, or CSV with a WKT
        column (``wkt_column``; its CRS in ``parcels_crs``). Any CRS: parcels are reprojected
        to the products' CRS.
    id : str
        The column with each parcel's unique id (the key of the table).
    out : path, optional
        Table to write: ``.gpkg`` (with the parcels' geometry, repaired, in their CRS),
        ``.parquet`` (GeoParquet, with geometry) or ``.csv`` (no geometry). Written under a
        temporary name, renamed when complete; an existing file is replaced only with
        ``overwrite``.
    names : list of str, optional
        Products to use (default all found); ``periods``: labels (``window``, ``2021``...).
    stats : list of str
        Statistics of continuous products (subset of :data:`STATS`); class products get
        count/coverage/majority/share_<c>, count products also share_gt0.
    keep : list of str
        Parcel columns to copy into the table (e.g. a land-use column for :func:`parcel_summary`).
    batch_size : int
        Parcels per batch (memory: one batch of geometries and results at a time).
    progress : bool
        A progress bar (parcels done).
    strategy : str
        exactextract's processing strategy: ``raster-sequential`` (default: reads each raster
        chunk once per batch, at most ``max_cells`` pixels of a band in memory; 3x faster on
        the bench) or ``feature-sequential`` (reads the pixels of one parcel at a time).
    max_cells : int
        exactextract's ``max_cells_in_memory`` (pixels of one raster chunk).

    Returns
    -------
    ParcelResult
        The table (in memory when ``out`` is None or small), where it was written, and the
        parcels that were repaired, empty, outside or partly outside the products' extent.
        Columns: the id, the ``keep`` columns, ``area`` (parcel area in the products' CRS
        units squared, m2 for a projected CRS), ``inside_fraction``, ``outside``, ``repaired``,
        then ``<PRODUCT>[_<period>][_<band>]_<stat>`` for every product, period and band.

    Raises
    ------
    InputError
        Unreadable parcels, a missing id column, missing or duplicate ids, products on
        different grids, an unknown table format.
    """
    import geopandas as gpd
    import shapely
    from exactextract import exact_extract

    from .progress import progress_bar

    t0 = time.perf_counter()
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ConfigError(f"stats: unknown {', '.join(unknown)}; choose from {', '.join(STATS)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    files = collect_products(products, products=names, periods=periods)
    src = _ParcelFile(parcels, id, crs=parcels_crs, wkt_column=wkt_column, keep=keep)
    all_ids = src.ids()
    _check_ids(all_ids, src)
    n = len(all_ids)
    del all_ids
    writer = _TableWriter(Path(out), overwrite) if out is not None else None

    readers = [_Reader(f) for f in files]
    try:
        first = readers[0].ds
        for r in readers[1:]:
            if (r.ds.crs, r.ds.transform, r.ds.shape) != (first.crs, first.transform, first.shape):
                raise InputError(f"products: {r.pf.path} is not on the grid of {readers[0].pf.path} "
                                 f"({r.ds.crs} {r.ds.shape} vs {first.crs} {first.shape}); export them to one grid "
                                 "first (soilsuite export)")
        raster_crs = first.crs
        ext_box = shapely.box(*first.bounds)
        px_area = abs(first.transform.a * first.transform.e)

        Source = _source_class()
        plain, shares = [], []  # exactextract sources: values (several ops) and indicators (mean = share)
        post = []  # (table column, exactextract column, op)
        for r in readers:
            spec = r.pf.spec
            names_b = [nm or f"band{i + 1}" for i, nm in enumerate(r.ds.descriptions)] if r.ds.count > 1 \
                else [spec.name]
            kind = _kind(spec)
            ops = ["count", "majority"] if kind == "class" else \
                ["count", *(_EXACT[s] for s in stats if s in _EXACT and s != "count")]
            for b in range(r.ds.count):
                base = _band_label(r.pf, b, names_b)
                plain.append(Source(r, b, base))
                post.extend((f"{base}_{'std' if op == 'stdev' else op}", f"{base}_{op}", op) for op in ops
                            if op != "count" or "count" in stats or kind == "class")
                if "coverage" in stats or kind == "class":
                    post.append((f"{base}_coverage", f"{base}_count", "coverage"))
                indicators = ([(f"{base}_share_{c}", lambda v, c=c: v == c) for c in spec.classes if c != spec.nodata]
                              if kind == "class" else
                              [(f"{base}_share_gt0", lambda v: v > 0)] if kind == "count" and spec.nodata != 0
                              else [])
                for nm, fn in indicators:
                    shares.append(Source(r, b, nm, indicator=fn))
                    post.append((nm, f"{nm}_mean", "share"))
        plain_ops = [op for op in ("count", "mean", "min", "max", "stdev", "majority")
                     if any(o == op for _, _, o in post)]
        if "count" not in plain_ops:
            plain_ops.insert(0, "count")
        if any(o == "median" for _, _, o in post):  # exactextract's median interpolates between distinct
            plain_ops += ["values", "coverage"]  # values; the weighted median is computed here
        columns = [c for c, _, _ in post]

        result = ParcelResult(None, None, n, files, columns)
        kept: list[pd.DataFrame] = []
        bar = progress_bar(progress and n > 0)
        with bar:
            task = bar.add_task(f"parcels x {len(files)} product file(s)", total=n)
            for attrs, geoms in src.batches(batch_size):
                ids = attrs[id].tolist()
                geoms, repaired, empty = _repair(geoms, ids)
                result.repaired.update(repaired)
                result.empty.extend(i for i, e in zip(ids, empty, strict=True) if e)
                gdf = gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(geoms, crs=src.crs))
                proj = gdf.geometry.to_crs(raster_crs) if gdf.crs != raster_crs else gdf.geometry
                pg = proj.to_numpy()
                bad = ~shapely.is_valid(pg) & ~shapely.is_empty(pg)
                if bad.any():  # reprojection can fold a valid ring; repair silently
                    pg[bad] = [_polygonal(g) for g in shapely.make_valid(pg[bad], method="structure",
                                                                         keep_collapsed=False)]
                area = shapely.area(pg)
                inside = shapely.area(shapely.intersection(pg, ext_box))
                with np.errstate(invalid="ignore", divide="ignore"):
                    frac = np.where(area > 0, inside / area, np.nan)
                outside = ~(frac > 0)
                result.outside.extend(i for i, o, e in zip(ids, outside, empty, strict=True) if o and not e)
                result.partial.extend(i for i, f in zip(ids, frac, strict=True) if 0 < f < 1 - 1e-4)
                cols_out = {c: np.full(len(ids), np.nan) for c in columns}
                todo = np.flatnonzero(~outside)
                if len(todo):
                    feats = _features(todo, pg[todo], raster_crs.to_wkt())
                    ee: dict[str, np.ndarray] = {}
                    rows = None
                    for group, ops in ((plain, plain_ops), (shares, ["mean"])):
                        if not group:
                            continue
                        df = exact_extract(group, feats, ops, include_cols=["_row"], output="pandas",
                                           strategy=strategy, max_cells_in_memory=max_cells)
                        rows = df["_row"].to_numpy()
                        pre = f"{group[0].name()}_" if len(group) == 1 else ""  # one source: no name prefix
                        ee.update({pre + c: df[c].to_numpy() for c in df.columns if c != "_row"})
                    if "values" in plain_ops:
                        for sr in plain:
                            nm = sr.name()
                            ee[f"{nm}_median"] = weighted_median(ee.pop(f"{nm}_values"), ee.pop(f"{nm}_coverage"))
                    for col, ecol, op in post:
                        v = np.asarray(ee[ecol], dtype=np.float64)
                        if op == "coverage":
                            with np.errstate(invalid="ignore", divide="ignore"):
                                v = v * px_area / area[rows]
                        elif op == "count":
                            v = np.nan_to_num(v, nan=0.0)  # no covered pixel: 0, not NaN
                        cols_out[col][rows] = v
                stats_df = pd.DataFrame(cols_out)
                table = pd.concat([attrs.reset_index(drop=True), pd.DataFrame({
                    "area": area, "inside_fraction": frac, "outside": outside,
                    "repaired": [i in repaired for i in ids]}), stats_df], axis=1)
                if writer is not None and writer.kind != "csv":
                    table = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms, crs=src.crs))
                if writer is not None:
                    writer.write(table)
                if writer is None or n <= 20_000:  # a large table is only in its file
                    kept.append(pd.DataFrame(table.drop(columns="geometry")) if "geometry" in table else table)
                bar.advance(task, len(ids))
        if writer is not None:
            result.path = writer.close()
        result.table = pd.concat(kept, ignore_index=True) if kept else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        for r in readers:
            r.close()
    result.seconds = time.perf_counter() - t0
    for line in result.warnings():
        warnings.warn(line, ParcelWarning, stacklevel=2)
    return result


def weighted_median(values: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """Weighted median of each pair of arrays (one per parcel), vectorised.

    The smallest value at which the cumulative weight reaches half the total; where it
    reaches half (within 0.01 % of the total weight, the noise of coverage fractions of a
    reprojected polygon), the mean of that value and the next (so with equal weights this is
    :func:`numpy.median`). NaN for an empty array.
    """
    lens = np.array([len(v) for v in values], np.int64)
    out = np.full(len(lens), np.nan)
    if lens.sum() == 0:
        return out
    v = np.concatenate([np.asarray(x, np.float64) for x in values])
    w = np.concatenate([np.asarray(x, np.float64) for x in weights])
    g = np.repeat(np.arange(len(lens)), lens)
    o = np.lexsort((v, g))
    v, w, g = v[o], w[o], g[o]
    cum = np.cumsum(w)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    before = np.where(lens > 0, cum[np.minimum(starts, len(cum) - 1)] - w[np.minimum(starts, len(cum) - 1)], 0.0)
    total = np.zeros(len(lens))
    np.add.at(total, g, w)
    cin = cum - before[g]
    half = total[g] / 2
    tol = 1e-4 * np.maximum(total[g], 1e-300)  # reprojection noise in the coverage fractions
    reach = np.flatnonzero(cin >= half - tol)
    grp, first = np.unique(g[reach], return_index=True)
    k = reach[first]
    med = v[k]
    exact = np.abs(cin[k] - half[k]) <= tol[k]
    nxt = np.minimum(k + 1, len(v) - 1)
    same = g[nxt] == grp
    med = np.where(exact & same, (v[k] + v[nxt]) / 2, med)
    out[grp] = med
    return out


class ParcelWarning(UserWarning):
    """A parcel problem that does not stop the statistics (repaired, empty, outside)."""


# ----------------------------------------------------------------------------- yearly summary
def parcel_summary(
    table: pd.DataFrame | str | os.PathLike,
    *,
    product: str = "PLOUGHED",
    stat: str | None = None,
    threshold: float = 0.0,
    by: str | None = None,
) -> pd.DataFrame:
    """Per period, the share of parcels whose statistic of a product exceeds a threshold.

    The environment agency's table: with the default ``product="PLOUGHED"`` (the per-period
    grassland ploughing flag) and ``stat="share_1"``, a parcel counts as ploughed in a period
    when the share of its grassland pixels flagged ploughed exceeds ``threshold`` (0: any
    ploughed pixel). Any product and statistic work the same, e.g. ``product="MASK",
    stat="share_1", threshold=0.5`` (parcels more than half bare surface) or ``product="BSF",
    stat="mean", threshold=0.3``.

    Parameters
    ----------
    table : DataFrame or path
        A table of :func:`parcel_stats` (or its file: .csv, .parquet, .gpkg).
    product, stat : str
        The columns ``<product>[_<period>]_<stat>``; ``stat`` default ``share_1`` for class
        products, else ``mean``.
    threshold : float
        A parcel counts if its value is strictly greater.
    by : str, optional
        A parcel column (copied with ``keep=``) to break the shares down by (e.g. land use).

    Returns
    -------
    DataFrame
        One row per period (and group): ``period``, ``[by]``, ``parcels`` (with a value in that
        period), ``parcels_above`` and ``share`` (0-1), ``parcels_no_data`` (outside, or no
        covered pixel), and the rule in ``rule``.
    """
    from . import products as P
    from .io.layout import WINDOW

    if not isinstance(table, pd.DataFrame):
        p = Path(table)
        if not p.exists():
            raise InputError(f"summary: table {p} does not exist")
        if p.suffix.lower() == ".csv":
            table = pd.read_csv(p)
        elif p.suffix.lower() in (".parquet", ".geoparquet"):
            table = pd.read_parquet(p)
        else:
            import pyogrio

            table = pyogrio.read_dataframe(p, read_geometry=False)
    product = product.upper()
    try:
        spec = P.get(product)
        is_class = bool(spec.classes)
    except KeyError:
        is_class = False
    stat = stat or ("share_1" if is_class else "mean")
    suffix = f"_{stat}"
    cols: dict[str, str] = {}
    for c in table.columns:
        if not (c.startswith(product) and c.endswith(suffix)):
            continue
        middle = c[len(product):-len(suffix)]
        if middle == "":
            cols[WINDOW] = c
        elif middle.startswith("_"):
            cols[middle[1:]] = c
    if not cols:
        have = sorted({c for c in table.columns if c.startswith(product)})
        raise InputError(f"summary: no column {product}[_<period>]{suffix} in the table; columns of {product}: "
                         f"{', '.join(have) or 'none'}")
    if by is not None and by not in table.columns:
        raise InputError(f"summary: no column {by!r} in the table (copy it with --keep {by})")
    rows = []
    groups = [(None, table)] if by is None else list(table.groupby(by, sort=True))
    for label in sorted(cols, key=lambda s: (s == WINDOW, s)):
        for g, t in groups:
            v = t[cols[label]].to_numpy(dtype=np.float64)
            ok = np.isfinite(v)
            above = int(np.sum(v[ok] > threshold))
            row = {"period": label}
            if by is not None:
                row[by] = g
            row.update(parcels=int(ok.sum()), parcels_above=above,
                       share=(above / ok.sum()) if ok.sum() else np.nan, parcels_no_data=int((~ok).sum()),
                       rule=f"{product}_{stat} > {threshold:g}")
            rows.append(row)
    return pd.DataFrame(rows)
