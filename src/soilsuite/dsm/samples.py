"""Soil samples: read point files, check property units and ranges, report problems.

The reader accepts a CSV with coordinate columns (and a CRS), or any vector file that
geopandas/pyogrio reads (GeoPackage, Shapefile, GeoJSON, FlatGeobuf) and GeoParquet. Property
columns are chosen by the user and renamed to the property keys of :data:`PROPERTIES`
(``soc``, ``phh2o``, ``clay`` ...). Values are checked against plausible ranges and for the
usual unit mix-ups (SOC in % instead of g/kg, pH x 10, bulk density in kg/m3 ...). Nothing is
dropped silently: duplicates and points outside a raster extent are listed in a
:class:`SampleReport` and announced with warnings.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from .properties import PROPERTIES, Property, stock  # noqa: F401 - Property: public name here too


class SampleWarning(UserWarning):
    """A problem in the sample table that does not stop the run (duplicates, outside extent)."""



_XY_NAMES = [("x", "y"), ("easting", "northing"), ("east", "north"), ("lon", "lat"),
             ("longitude", "latitude"), ("long", "lat"), ("lng", "lat")]


@dataclass
class SampleReport:
    """What the reader found and did.

    Attributes
    ----------
    source : str
        File read.
    n_read : int
        Rows in the file.
    n_missing : dict of str to int
        Rows without a value, per property.
    conversions : dict of str to str
        Unit conversions applied, ``{property: "from -> to (xfactor)"}``.
    unit_warnings : list of str
        Unit suspicions that were reported as warnings (``unit_check="warn"``).
    duplicates : list of list of int
        Groups of row labels that share a location (within ``duplicate_tolerance``).
    outside_extent : list of int
        Row labels of points outside the raster extent (filled by :func:`check_extent`).
    nodata : dict of int to list of str
        Row labels inside the extent whose covariates have no value, with those covariates.
    """

    source: str = ""
    n_read: int = 0
    n_missing: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, str] = field(default_factory=dict)
    unit_warnings: list[str] = field(default_factory=list)
    duplicates: list[list[int]] = field(default_factory=list)
    outside_extent: list[int] = field(default_factory=list)
    nodata: dict[int, list[str]] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The report as a short markdown section."""
        lines = ["## Samples", "", f"- source: `{self.source}`", f"- rows read: {self.n_read}"]
        for k, v in self.n_missing.items():
            lines.append(f"- `{k}`: {v} rows without a value")
        for k, v in self.conversions.items():
            lines.append(f"- unit conversion `{k}`: {v}")
        for w in self.unit_warnings:
            lines.append(f"- unit warning: {w}")
        if self.duplicates:
            lines.append(f"- {len(self.duplicates)} groups of duplicate locations (row labels): "
                         + "; ".join(str(g) for g in self.duplicates[:20])
                         + (" ..." if len(self.duplicates) > 20 else ""))
        if self.outside_extent:
            lines.append(f"- {len(self.outside_extent)} points outside the raster extent (row labels): "
                         f"{self.outside_extent[:50]}" + (" ..." if len(self.outside_extent) > 50 else ""))
        if self.nodata:
            items = list(self.nodata.items())[:20]
            lines.append(f"- {len(self.nodata)} points with covariate nodata: "
                         + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in items))
        return "\n".join(lines) + "\n"


@dataclass
class Samples:
    """Soil samples as a point GeoDataFrame plus what is known about them.

    Attributes
    ----------
    gdf : geopandas.GeoDataFrame
        One row per sample: point geometry, one column per property (renamed to the property
        key and converted to the property unit), and any ``keep`` columns.
    properties : list of str
        Property columns.
    units : dict of str to str
        Unit of each property column.
    report : SampleReport
        Problems found and conversions applied.
    """

    gdf: Any
    properties: list[str]
    units: dict[str, str]
    report: SampleReport

    @property
    def crs(self):
        return self.gdf.crs

    def __len__(self) -> int:
        return len(self.gdf)

    def coords(self, crs: Any = None) -> np.ndarray:
        """Point coordinates [n, 2] (x, y), in ``crs`` if given (e.g. the raster CRS)."""
        g = self.gdf if crs is None else self.gdf.to_crs(crs)
        return np.column_stack([g.geometry.x.to_numpy(), g.geometry.y.to_numpy()])


def _parse_properties(properties: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``"soc"``, ``["soc", "clay"]``, ``{"soc": "SOC_target"}`` or ``["soc=SOC_target"]``."""
    if isinstance(properties, str):
        properties = [properties]
    if isinstance(properties, Mapping):
        return {str(k): str(v) for k, v in properties.items()}
    out: dict[str, str] = {}
    for p in properties:
        name, _, col = str(p).partition("=")
        out[name.strip()] = (col or name).strip()
    return out


def _find_xy(columns: Sequence[str]) -> tuple[str, str] | None:
    lower = {c.lower(): c for c in columns}
    for xn, yn in _XY_NAMES:
        if xn in lower and yn in lower:
            return lower[xn], lower[yn]
    return None


def _check_degrees(gdf, path: Path) -> None:
    """Refuse coordinates outside +-180 / +-90 in a geographic CRS: they look projected (e.g.
    UTM metres declared as EPSG:4326), and no covariate would be found at them."""
    if gdf.crs is None or not gdf.crs.is_geographic or gdf.empty:
        return
    xmin, ymin, xmax, ymax = (float(v) for v in gdf.total_bounds)
    if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        raise InputError(
            f"{path}: the coordinates look projected, not degrees: x {xmin:.6g}..{xmax:.6g}, "
            f"y {ymin:.6g}..{ymax:.6g} are outside +-180/+-90 of {gdf.crs.to_string()}; give their CRS "
            "with --crs (crs= in Python), e.g. --crs EPSG:32633 for UTM zone 33N metres"
        )


def _read_table(path: Path, *, x: str | None, y: str | None, crs: Any, layer: str | None,
                sep: str | None):
    import geopandas as gpd

    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        try:
            df = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
        except Exception as exc:  # pandas raises many types
            raise InputError(f"{path}: could not read as a delimited table: {exc}") from None
        if x is None or y is None:
            found = _find_xy(list(df.columns))
            if found is None:
                raise InputError(f"{path}: no coordinate columns; expected one of "
                                 f"{', '.join('/'.join(p) for p in _XY_NAMES)} or give x= and y=; "
                                 f"found columns {list(df.columns)}")
            x, y = found
        for c in (x, y):
            if c not in df.columns:
                raise InputError(f"{path}: coordinate column {c!r} not found; columns: {list(df.columns)}")
        if crs is None:
            if x.lower() in {"lon", "longitude", "long", "lng"}:
                crs = "EPSG:4326"
                warnings.warn(f"{path}: no CRS given; assuming EPSG:4326 from the column names {x!r}/{y!r}",
                              SampleWarning, stacklevel=3)
            else:
                raise InputError(f"{path}: a CSV carries no CRS; give crs= (e.g. 'EPSG:25833') "
                                 f"for the coordinate columns {x!r}/{y!r}")
        xs = pd.to_numeric(df[x], errors="coerce")
        ys = pd.to_numeric(df[y], errors="coerce")
        bad = xs.isna() | ys.isna()
        if bad.any():
            raise InputError(f"{path}: {int(bad.sum())} rows without numeric coordinates in {x!r}/{y!r} "
                             f"(first row labels: {list(df.index[bad][:10])})")
        return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xs, ys), crs=crs)
    try:
        if suffix in {".parquet", ".geoparquet"}:
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise InputError(f"{path}: could not read as a vector file: {exc}") from None
    if gdf.crs is None:
        if crs is None:
            raise InputError(f"{path}: the file carries no CRS; give crs=")
        gdf = gdf.set_crs(crs)
    elif crs is not None:
        gdf = gdf.to_crs(crs)
    types = set(gdf.geometry.geom_type.dropna())
    if not types <= {"Point"}:
        raise InputError(f"{path}: expected point geometries, found {sorted(types)}")
    return gdf


def check_units(values: np.ndarray, prop: str, column: str, *, unit: str | None = None,
                unit_check: str = "error", where: str = "") -> tuple[np.ndarray, str | None, str | None]:
    """Convert ``values`` to the unit of ``prop`` and check the range and unit heuristics.

    Parameters
    ----------
    values : ndarray
        Column values (NaN = missing).
    prop : str
        Property key in :data:`PROPERTIES`.
    column : str
        Column name (for messages).
    unit : str, optional
        Unit the values are in; converted with the factor of ``PROPERTIES[prop].conversions``.
        ``None`` means the property unit, and the unit heuristic runs.
    unit_check : {"error", "warn", "off"}
        What a suspected unit mix-up does.
    where : str
        File name for messages.

    Returns
    -------
    values : ndarray
        Values in the property unit.
    conversion : str or None
        Description of a conversion applied.
    warning : str or None
        Unit suspicion reported as a warning.
    """
    p = PROPERTIES[prop]
    values = np.asarray(values, dtype="float64")
    conversion = warning = None
    if unit is not None and unit != p.unit:
        if unit not in p.conversions:
            raise ConfigError(f"unit {unit!r} of {prop} (column {column!r}) unknown; "
                              f"known: {', '.join(p.conversions)}")
        f = p.conversions[unit]
        values = values * f
        conversion = f"{unit} -> {p.unit} (x{f:g})"
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values, conversion, warning
    if unit is None and p.suspect is not None and unit_check != "off":
        s = p.suspect(finite)
        if s is not None:
            sus_unit, reason = s
            ex = ", ".join(f"{v:.4g}" for v in finite[:5])
            msg = (f"{where}column {column!r} ({prop}, expected {p.unit}): {reason} "
                   f"(first values: {ex}); if the values are in {sus_unit}, "
                   f"convert with units={{'{prop}': '{sus_unit}'}} "
                   f"(CLI: --unit {prop}={sus_unit}); to keep them as they are use unit_check='warn'")
            if unit_check == "error":
                raise InputError(msg)
            warnings.warn(msg, SampleWarning, stacklevel=3)
            warning = msg
    lo, hi = p.valid
    bad = (finite < lo) | (finite > hi)
    if bad.any():
        ex = ", ".join(f"{v:.4g}" for v in finite[bad][:8])
        raise InputError(f"{where}column {column!r} ({prop}): {int(bad.sum())} values outside the "
                         f"possible range {lo:g}-{hi:g} {p.unit}: {ex}")
    return values, conversion, warning


def find_duplicates(xy: np.ndarray, tolerance: float = 0.0, labels: Sequence[Any] | None = None) -> list[list[Any]]:
    """Groups of points closer than ``tolerance`` (CRS units) to each other.

    Parameters
    ----------
    xy : ndarray [n, 2]
        Coordinates.
    tolerance : float
        Points within this distance are duplicates (0: identical coordinates).
    labels : sequence, optional
        Row labels returned instead of positions.

    Returns
    -------
    list of list
        Each group (two or more points) in order of first appearance.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype="float64")
    if len(xy) < 2:
        return []
    tree = cKDTree(xy)
    pairs = tree.query_pairs(r=max(float(tolerance), 0.0), output_type="ndarray")
    if len(pairs) == 0:
        return []
    from scipy.sparse import coo_matrix

    n = len(xy)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    counts = np.bincount(comp)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(comp):
        if counts[c] > 1:
            groups.setdefault(c, []).append(i)
    lab = list(labels) if labels is not None else list(range(n))
    return [[lab[i] for i in g] for g in groups.values()]


def read_samples(
    path: str | Path,
    properties: str | Sequence[str] | Mapping[str, str],
    *,
    x: str | None = None,
    y: str | None = None,
    crs: Any = None,
    layer: str | None = None,
    sep: str | None = None,
    units: Mapping[str, str] | None = None,
    unit_check: str = "error",
    keep: Sequence[str] = (),
    duplicate_tolerance: float = 0.0,
    duplicates: str = "keep",
    id_column: str | None = None,
) -> Samples:
    """Read soil samples from a point file.

    Parameters
    ----------
    path : str or Path
        CSV/TXT/TSV (coordinates in columns), GeoPackage, Shapefile, GeoJSON, FlatGeobuf or
        GeoParquet.
    properties : str, list or dict
        Properties to read: keys of :data:`PROPERTIES` (``"soc"``), ``"key=column"`` strings,
        or a dict ``{key: column}``. Keys not in :data:`PROPERTIES` are allowed (e.g. ``om``);
        they are read as numbers without unit checks.
    x, y : str, optional
        Coordinate columns of a CSV; found automatically for x/y, easting/northing, lon/lat.
    crs : any, optional
        CRS of a CSV's coordinates (required unless lon/lat), or the CRS to assume for a
        vector file without one (a vector file with a CRS is reprojected to ``crs``).
    layer : str, optional
        Layer of a multi-layer file (GeoPackage).
    sep : str, optional
        CSV separator (sniffed if None).
    units : dict, optional
        Units the columns are in, e.g. ``{"soc": "%"}``; converted to the property unit.
    unit_check : {"error", "warn", "off"}
        What a suspected unit mix-up (e.g. SOC in %) does: raise :class:`InputError`
        (default), warn and keep the values, or nothing.
    keep : sequence of str
        Further columns to keep (e.g. point covariates, an id).
    duplicate_tolerance : float
        Points closer than this (CRS units, m for projected CRS) count as duplicates.
    duplicates : {"keep", "mean", "first"}
        ``keep`` keeps all rows and warns; ``mean`` averages each duplicate group (numeric
        columns); ``first`` keeps the first row of each group. The report lists the groups
        in every case.
    id_column : str, optional
        Column whose values become the row labels (used in reports).

    Returns
    -------
    Samples
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"sample file {path} does not exist")
    if unit_check not in {"error", "warn", "off"}:
        raise ConfigError(f"unit_check must be 'error', 'warn' or 'off', got {unit_check!r}")
    if duplicates not in {"keep", "mean", "first"}:
        raise ConfigError(f"duplicates must be 'keep', 'mean' or 'first', got {duplicates!r}")
    props = _parse_properties(properties)
    if not props:
        raise ConfigError("no properties given; e.g. properties=['soc=SOC_gkg']")
    units = dict(units or {})
    for k in units:
        if k not in props:
            raise ConfigError(f"units given for {k!r}, which is not among the properties {list(props)}")
    gdf = _read_table(path, x=x, y=y, crs=crs, layer=layer, sep=sep)
    _check_degrees(gdf, path)
    if id_column is not None:
        if id_column not in gdf.columns:
            raise InputError(f"{path}: id column {id_column!r} not found; columns: {list(gdf.columns)}")
        gdf = gdf.set_index(id_column, drop=False)
    report = SampleReport(source=str(path), n_read=len(gdf))
    out_units: dict[str, str] = {}
    cols = {}
    for key, col in props.items():
        if col not in gdf.columns:
            raise InputError(f"{path}: column {col!r} for property {key!r} not found; "
                             f"columns: {[c for c in gdf.columns if c != 'geometry']}")
        vals = pd.to_numeric(gdf[col], errors="coerce")
        nonnum = vals.isna() & gdf[col].notna() & (gdf[col].astype(str).str.strip() != "")
        if nonnum.any():
            raise InputError(f"{path}: column {col!r} has {int(nonnum.sum())} non-numeric values, "
                             f"e.g. {list(gdf[col][nonnum].astype(str)[:5])}")
        v = vals.to_numpy(dtype="float64")
        if key in PROPERTIES:
            v, conv, warn = check_units(v, key, col, unit=units.get(key), unit_check=unit_check,
                                        where=f"{path.name}: ")
            if conv:
                report.conversions[key] = conv
            if warn:
                report.unit_warnings.append(warn)
            out_units[key] = PROPERTIES[key].unit
        else:
            out_units[key] = units.get(key, "")
        report.n_missing[key] = int(np.isnan(v).sum())
        cols[key] = v
    for c in keep:
        if c not in gdf.columns:
            raise InputError(f"{path}: column {c!r} to keep not found; columns: {list(gdf.columns)}")
    import geopandas as gpd

    data = {c: gdf[c].to_numpy() for c in keep if c not in cols}
    data.update(cols)
    out = gpd.GeoDataFrame(data, geometry=gdf.geometry.to_numpy(), crs=gdf.crs, index=gdf.index)
    xy = np.column_stack([out.geometry.x, out.geometry.y])
    groups = find_duplicates(xy, duplicate_tolerance, labels=list(out.index))
    report.duplicates = groups
    if groups:
        n_dup = sum(len(g) for g in groups)
        action = {"keep": "kept all (set duplicates='mean' or 'first' to merge them)",
                  "mean": "averaged each group", "first": "kept the first row of each group"}[duplicates]
        warnings.warn(f"{path.name}: {len(groups)} groups of duplicate locations ({n_dup} rows, "
                      f"tolerance {duplicate_tolerance:g}); {action}; first groups: {groups[:5]}",
                      SampleWarning, stacklevel=2)
        if duplicates != "keep":
            pos = {lab: i for i, lab in enumerate(out.index)}
            drop: list[int] = []
            for g in groups:
                idx = [pos[lab] for lab in g]
                if duplicates == "mean":
                    for c in cols:
                        out.iloc[idx[0], out.columns.get_loc(c)] = float(np.nanmean(out[c].to_numpy()[idx]))
                drop.extend(idx[1:])
            out = out.iloc[np.setdiff1d(np.arange(len(out)), drop)]
    return Samples(gdf=out, properties=list(props), units=out_units, report=report)


def check_extent(samples: Samples, bounds: tuple[float, float, float, float], crs: Any) -> list[Any]:
    """Row labels of samples outside ``bounds`` (in ``crs``); recorded in the report and warned.

    Parameters
    ----------
    samples : Samples
    bounds : tuple of float
        (left, bottom, right, top) of the raster in ``crs``.
    crs : any
        CRS of the raster.
    """
    xy = samples.coords(crs)
    left, bottom, right, top = bounds
    out = ~((xy[:, 0] >= left) & (xy[:, 0] < right) & (xy[:, 1] > bottom) & (xy[:, 1] <= top))
    labels = list(samples.gdf.index[out])
    samples.report.outside_extent = labels
    if labels:
        warnings.warn(f"{len(labels)} of {len(samples)} samples lie outside the raster extent "
                      f"{tuple(round(b, 3) for b in bounds)}; they get no covariates and are left "
                      f"out of training (row labels: {labels[:10]}{' ...' if len(labels) > 10 else ''})",
                      SampleWarning, stacklevel=2)
    return labels


def stock_column(samples: Samples, content: str, *, bdod: str | float = "bdod", depth_m: float = 0.3,
                 cfvo: str | float = 0.0, name: str | None = None) -> Samples:
    """Add a stock column (kg/m2) computed per sample, to model stocks directly.

    ``stock = C * bdod * depth_m * (1 - cfvo/100)`` (SPEC 6) with C in g/kg.

    Parameters
    ----------
    samples : Samples
    content : str
        Content column in g/kg (``soc``, ``sic``, ``nitrogen``).
    bdod, cfvo : str or float
        Column names or constants (kg/dm3, cm3/100cm3).
    depth_m : float
        Layer thickness (m).
    name : str, optional
        Stock column name; default ``ocstk``/``icstk``/``nistk`` from ``content``.
    """
    name = name or {"soc": "ocstk", "sic": "icstk", "nitrogen": "nistk"}.get(content)
    if name is None:
        raise ConfigError(f"give name= for the stock of {content!r}")

    def col(v):
        if isinstance(v, str):
            if v not in samples.gdf.columns:
                raise InputError(f"column {v!r} not in the samples; columns: {list(samples.gdf.columns)}")
            return samples.gdf[v].to_numpy(dtype="float64")
        return float(v)

    samples.gdf[name] = stock(col(content), col(bdod), depth_m, col(cfvo))
    samples.properties.append(name)
    samples.units[name] = "kg/m2"
    return samples
