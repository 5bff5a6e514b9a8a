"""Pictures of the method at work: a pixel's or a parcel's PV+IR2 series, and per-period maps.

``plot_pixel`` / ``plot_parcel`` read the archive for a small window around the pixel or parcel
with the pipeline's own loading and classification (:func:`soilsuite.pipeline.composite.load_tile_inputs`,
:func:`soilsuite.pipeline.block.classify_inputs`), so every mark on the picture is the decision
the composite made; tillage events come from the temporal kernel
(:func:`soilsuite.kernels.temporal.bare_dates`). Given a composite output folder, the run
record (``run.json``) gives the archive, the time window, every option and the grid.

Why an observation is not bare (first reason that applies, in the order of SPEC 2; the rules of
the provenance products, docs/provenance.md):

==================  ===========================================================================
``missing band``    no data at the pixel: a band is nodata, or SCL 0 "no data"
``invalid: SCL n``  the pixel's scene class ``n`` is invalid (cloud, shadow, snow...)
``near cloud``      within the dilation window of a cloud / shadow class (SCL dilation)
``sun``             sun zenith above the limit
``vegetated``       valid, index above the threshold (PV+IR2 > 0.2)
``NBR2 guard``      index at or below the threshold, removed by the dry-vegetation guard
``edge guard``      a bare candidate with too few bare neighbours that date (``--edge-guard``)
``land cover``      WorldCover built-up / water: never bare
``blue filter``     a bare candidate removed by the blue (B02) outlier filter
==================  ===========================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, InputError, OutputExistsError

__all__ = ["PlotResult", "pixel_series", "parcel_series", "plot_pixel", "plot_parcel", "plot_years", "REASONS"]

#: Observation status, in the order of the method (the first that applies).
REASONS = ("bare", "missing band", "invalid: SCL", "near cloud", "sun", "vegetated", "NBR2 guard", "edge guard",
           "land cover", "blue filter")
_STYLE = {  # status -> (marker, colour, label)
    "bare": ("o", "#b5651d", "bare"),
    "vegetated": ("o", "#2e8b3a", "vegetated (index > threshold)"),
    "NBR2 guard": ("x", "#e08a00", "rejected: NBR2 dry-vegetation guard"),
    "edge guard": ("+", "#9c4dc4", "rejected: edge guard (few bare neighbours)"),
    "land cover": ("s", "#7a7a7a", "rejected: land cover (WorldCover 50/80)"),
    "blue filter": ("^", "#1f5fbf", "rejected: blue outlier filter"),
}
_INVALID_STYLE = {"invalid: SCL": "#9a9a9a", "near cloud": "#8ec3ea", "sun": "#e3c800", "missing band": "#000000"}


@dataclass
class PlotResult:
    """A written picture and the data drawn on it (``data``: a DataFrame per observation
    (pixel/parcel series) or a dict of arrays (maps)); ``marks``: points drawn per status,
    read back from the figure."""

    path: Path
    data: Any
    marks: dict[str, int] = field(default_factory=dict)
    title: str = ""

    def summary(self) -> str:
        marks = ", ".join(f"{k} {v}" for k, v in self.marks.items())
        return f"{self.path}: {self.title}" + (f" ({marks})" if marks else "")


# ----------------------------------------------------------------------------- the run's setup
def _run_setup(source: str | os.PathLike, start=None, end=None):
    """(CompositeConfig, full GeoBox or None) from an output folder's run record, or from a
    STAC source and a time window (then the default options)."""
    from .config import CompositeConfig, parse_date
    from .io.products import read_run_record

    p = Path(source)
    if p.is_dir() and (p / "run.json").exists():
        rec = read_run_record(p)
        cfg_d = dict(rec.get("config") or {})
        if not cfg_d:
            raise InputError(f"{p / 'run.json'}: no 'config' in the run record")
        cfg_d["out"] = str(Path("/nonexistent-plot-output"))  # nothing is written there
        cfg_d["overwrite"] = False
        cfg = CompositeConfig.model_validate(cfg_d)
        if start or end:
            cfg = cfg.model_copy(update={"start": parse_date(start, "--start") if start else cfg.start,
                                         "end": parse_date(end, "--end") if end else cfg.end})
        g = rec.get("grid")
        gb = None
        if g:
            from affine import Affine
            from odc.geo.geobox import GeoBox

            gb = GeoBox(tuple(g["shape"]), Affine(*g["transform"][:6]), g["crs"])
        return cfg, gb
    if start is None or end is None:
        raise ConfigError(f"{source} is not a composite output folder (no run.json): give --start and --end to read "
                          "it as a STAC source")
    from .pipeline.composite import build_config

    return build_config(source=str(source), out=Path("/nonexistent-plot-output"), start=parse_date(start, "--start"),
                        end=parse_date(end, "--end")), None


def _load(cfg, gb_full, window_bounds=None, point=None, pad: int = 0):
    """Load and classify the observations of a small window of the run's grid.

    Returns (window GeoBox, TileInputs, index [T, Y, X], flags [T, Y, X], SCL [T, Y+2h, X+2h], halo)."""
    from .pipeline.block import classify_inputs
    from .pipeline.composite import _items_over, load_tile_inputs, select_items, target_geobox
    from .sources import stac as S

    _, sel = select_items(cfg)
    assets = S.resolve_assets(sel.items)
    gb = gb_full if gb_full is not None else target_geobox(cfg, sel.items)
    if point is not None:
        px, py = point
        col, row = ~gb.affine * (px, py)
        col, row = int(np.floor(col)), int(np.floor(row))
        if not (0 <= row < gb.shape.y and 0 <= col < gb.shape.x):
            raise InputError(f"the point ({px:.2f}, {py:.2f}) in {gb.crs} lies outside the products' grid "
                             f"({gb.shape.y} x {gb.shape.x} px, bounds {tuple(round(v, 1) for v in gb.extent.boundingbox)})")
        win = gb[max(0, row - pad): row + pad + 1, max(0, col - pad): col + pad + 1]
    else:
        minx, miny, maxx, maxy = window_bounds
        c0, r0 = ~gb.affine * (minx, maxy)
        c1, r1 = ~gb.affine * (maxx, miny)
        r0, c0 = max(0, int(np.floor(r0))), max(0, int(np.floor(c0)))
        r1, c1 = min(gb.shape.y, int(np.ceil(r1))), min(gb.shape.x, int(np.ceil(c1)))
        if r1 <= r0 or c1 <= c0:
            raise InputError("the parcel lies outside the products' grid")
        win = gb[r0:r1, c0:c1]
    halo = cfg.mask.dilation_px // 2
    items = _items_over(sel.items, win.pad(halo))
    inp = load_tile_inputs(items, assets, win, cfg, halo)
    index, flags = classify_inputs(inp, cfg)
    scl = (S.load_cube(items, win.pad(halo), assets, chunks=None, bands=("SCL",))["SCL"].values.astype(np.uint8)
           if items else np.zeros((0, win.shape.y + 2 * halo, win.shape.x + 2 * halo), np.uint8))
    return win, inp, index, flags, scl, halo


def _status(cfg, inp, index, flags, scl, halo) -> np.ndarray:
    """Status of each observation and pixel (object array [T, Y, X], :data:`REASONS`): the
    provenance rule of the observation (:mod:`soilsuite.kernels.provenance`, the code behind
    ``--provenance``) under its name here."""
    from .kernels import provenance as KP

    m = cfg.mask
    codes = KP.rule_codes(KP.invalid_reasons(scl, inp.refl, inp.meta.sun_zenith, m.invalid_scl, m.dilate_scl,
                                             m.dilation_px, m.max_sun_zenith), flags)
    names = np.full(256, "missing band", object)
    names[list(range(len(KP.RULES)))] = [_RULE_STATUS[r] for r in KP.RULES]
    out = names[codes]
    if index is not None:  # flags without the guard bit (a run without --provenance): the index tells
        with np.errstate(invalid="ignore"):
            out[(codes == KP.SELECTOR) & (index <= inp.threshold[None])] = "NBR2 guard"
    return out


#: Provenance rule (:data:`soilsuite.kernels.provenance.RULES`) -> status name (:data:`REASONS`).
_RULE_STATUS = {"scene_filter": "scene filter", "nodata": "missing band", "scl": "invalid: SCL",
                "dilation": "near cloud", "sun": "sun", "selector": "vegetated", "dry_guard": "NBR2 guard",
                "edge_guard": "edge guard",
                "land_cover": "land cover", "blue_filter": "blue filter", "bare": "bare"}


def _tillage(flags: np.ndarray, days: np.ndarray, max_gap: int) -> np.ndarray:
    """bool ``[T, N]``: observation t of series n starts a tillage event (the temporal kernel's
    rule: a bare episode following a vegetated observation within ``max_gap`` days).

    The kernel counts events per pixel; run on every prefix of each series (observations after
    t made invalid), the count steps up exactly at the observations that start an event."""
    from .kernels import temporal as KT

    t, n = flags.shape
    if t == 0:
        return np.zeros((0, n), bool)
    order = np.argsort(days, kind="stable")
    f = flags[order]
    cube = np.repeat(f[:, :, None], t, axis=2)  # [T, N, prefix]
    ar = np.arange(t)
    cube = np.where(ar[:, None, None] > ar[None, None, :], np.uint8(0), cube)  # obs after the prefix end: invalid
    d = np.asarray(days, np.int64)[order]
    res = KT.bare_dates(cube, d, np.zeros(t, np.int64), 1, np.array([d.max()], np.int64), max_gap)
    counts = np.nan_to_num(res["tillage_events"][0], nan=0.0)  # [N, prefix]
    steps = np.diff(np.concatenate([np.zeros((n, 1)), counts], axis=1), axis=1) > 0  # [N, T]
    out = np.zeros((t, n), bool)
    out[order] = steps.T
    return out


def _max_gap(cfg) -> int:
    layers = getattr(cfg, "layers", None)
    return int(getattr(layers, "tillage_max_gap_days", 30)) if layers is not None else 30


# ----------------------------------------------------------------------------- pixel
def _to_grid(gb_crs, lon, lat, x, y) -> tuple[float, float]:
    if (lon is None) != (lat is None) or (x is None) != (y is None) or ((lon is None) == (x is None)):
        raise ConfigError("give the pixel as --lon and --lat (degrees) or as --x and --y (the grid's CRS)")
    if x is not None:
        return float(x), float(y)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ConfigError(f"--lon {lon} --lat {lat}: not a longitude/latitude in degrees (use --x/--y for "
                          "projected coordinates)")
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", str(gb_crs), always_xy=True).transform(lon, lat)


def pixel_series(source, *, lon=None, lat=None, x=None, y=None, start=None, end=None) -> tuple[pd.DataFrame, dict]:
    """One pixel's observations as the composite saw them.

    Returns a DataFrame (one row per solar day: ``date``, ``index`` (PV+IR2 for SCMaP),
    ``status`` (:data:`REASONS`), ``scl``, ``tillage`` (starts a tillage event)) and facts
    (``x``, ``y``, ``crs``, ``threshold``, ``row``/``col`` in the run's grid)."""
    cfg, gb_full = _run_setup(source, start, end)
    crs = gb_full.crs if gb_full is not None else None
    if crs is None:
        from .pipeline.composite import select_items, target_geobox

        gb_full = target_geobox(cfg, select_items(cfg)[1].items)
        crs = gb_full.crs
    px, py = _to_grid(crs, lon, lat, x, y)
    win, inp, index, flags, scl, halo = _load(cfg, gb_full, point=(px, py))
    status = _status(cfg, inp, index, flags, scl, halo)
    days = np.array(inp.meta.dates, dtype="datetime64[D]").astype(np.int64)
    till = _tillage(flags[:, 0, 0][:, None], days, _max_gap(cfg))[:, 0]
    df = pd.DataFrame({
        "date": pd.to_datetime(np.array(inp.meta.dates, dtype="datetime64[D]")),
        "index": (index[:, 0, 0] if index is not None else np.full(len(days), np.nan)).astype(np.float64),
        "status": status[:, 0, 0], "flags": flags[:, 0, 0],
        "scl": scl[:, halo, halo] if len(scl) else np.zeros(0, np.uint8), "tillage": till,
    }).sort_values("date").reset_index(drop=True)
    col, row = ~gb_full.affine * (px, py)
    facts = {"x": px, "y": py, "crs": str(crs), "threshold": float(inp.threshold[0, 0]), "row": int(row),
             "col": int(col), "selector": cfg.bare.selector}
    return df, facts


def save_png(fig, out: Path, overwrite: bool, *, close: bool = False) -> Path:
    """Write ``fig`` to the PNG ``out`` (110 dpi) under a temporary name, then rename it;
    ``close``: close the figure afterwards, also when writing fails."""
    out = Path(out)
    try:
        if out.suffix.lower() != ".png":
            raise ConfigError(f"--out {out}: pictures are written as PNG (.png)")
        if out.exists() and not overwrite:
            raise OutputExistsError(f"picture {out} exists already; use --overwrite to replace it")
        if not out.parent.is_dir():
            raise InputError(f"output folder {out.parent} does not exist (writing {out.name})")
        tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.png")
        try:
            fig.savefig(tmp, dpi=110)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return out


def _series_figure(df: pd.DataFrame, threshold: float, title: str, *, share_col: str | None = None):
    """The time-series figure; returns (figure, marks per status read back from the axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8), layout="constrained")
    valid = df[df["status"].isin(list(_STYLE))]
    lo = np.nanmin(valid["index"]) if len(valid) and np.isfinite(valid["index"]).any() else -0.5
    hi = np.nanmax(valid["index"]) if len(valid) and np.isfinite(valid["index"]).any() else 1.5
    span = max(hi - lo, 0.5)
    floor = lo - 0.12 * span
    if share_col:
        ok = np.isfinite(df["index"])
        ax.fill_between(df["date"][ok], df["q25"][ok], df["q75"][ok], color="#bbbbbb", alpha=0.4, lw=0,
                        label="parcel pixels: 25-75 %")
    line = valid[np.isfinite(valid["index"])]
    ax.plot(line["date"], line["index"], color="#999999", lw=0.7, zorder=1)  # valid observations only
    for st, (marker, colour, label) in _STYLE.items():
        d = df[df["status"] == st]
        ax.scatter(d["date"], d["index"], marker=marker, c=colour, s=28, label=f"{label} ({len(d)})", zorder=3,
                   gid=f"status:{st}")
    for st, colour in _INVALID_STYLE.items():
        d = df[df["status"] == st]
        ax.scatter(d["date"], np.full(len(d), floor), marker="|", c=colour, s=60, zorder=2,
                   label=f"invalid: {st.replace('invalid: ', '')} ({len(d)})", gid=f"status:{st}")
    ax.axhline(threshold, color="#444444", ls="--", lw=1, label=f"threshold {threshold:g}")
    ev = df[df["tillage"]]
    for i, d in enumerate(ev["date"]):
        ax.axvline(d, color="#d62728", lw=1.4, alpha=0.8, label=f"tillage event ({len(ev)})" if i == 0 else None,
                   gid="tillage")
    ax.set_ylabel("PV+IR2 = NDVI + NBR (1)")
    ax.set_xlabel("date (UTC solar day)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(floor - 0.05 * span, hi + 0.1 * span)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    marks = {}
    for coll in ax.collections:
        gid = coll.get_gid() or ""
        if gid.startswith("status:"):
            marks[gid[7:]] = len(coll.get_offsets())
    marks["tillage"] = sum(1 for ln in ax.lines if ln.get_gid() == "tillage")
    return fig, marks


def plot_pixel(source, out, *, lon=None, lat=None, x=None, y=None, start=None, end=None,
               overwrite: bool = False) -> PlotResult:
    """PNG of a pixel's PV+IR2 series: bare observations, rejected ones and why, tillage events.

    Parameters
    ----------
    source : path or str
        A composite output folder (its ``run.json`` gives archive, window, options and grid) or
        a STAC source (then ``start``/``end`` and the default options and grid).
    out : path
        The PNG (replaced only with ``overwrite``).
    lon, lat : float, optional
        The pixel in degrees; or ``x``, ``y`` in the grid's CRS.

    Returns
    -------
    PlotResult
        ``data``: the DataFrame of :func:`pixel_series`; ``marks``: points drawn per status.
    """

    df, facts = pixel_series(source, lon=lon, lat=lat, x=x, y=y, start=start, end=end)
    title = (f"pixel x={facts['x']:.1f}, y={facts['y']:.1f} ({facts['crs']}; row {facts['row']}, col {facts['col']}): "
             f"{int((df['status'] == 'bare').sum())} bare of {int(df['status'].isin(list(_STYLE)).sum())} valid, "
             f"{len(df)} solar days; selector {facts['selector']}")
    fig, marks = _series_figure(df, facts["threshold"], title)
    return PlotResult(save_png(fig, Path(out), overwrite, close=True), df, marks, title)


# ----------------------------------------------------------------------------- parcel
def parcel_series(source, *, parcels, parcel, id, parcels_crs=None, start=None, end=None):  # noqa: A002
    """A parcel's observations: per solar day the median, 25 % and 75 % of the index over the
    parcel's valid pixels (pixel centres inside the parcel), the share of them that is bare,
    the most frequent status, and whether most pixels (>= 50 %) start a tillage event."""
    from rasterio.features import geometry_mask

    from .parcels import read_parcels

    cfg, gb_full = _run_setup(source, start, end)
    if gb_full is None:
        from .pipeline.composite import select_items, target_geobox

        gb_full = target_geobox(cfg, select_items(cfg)[1].items)
    g = read_parcels(parcels, id, parcels_crs=parcels_crs)
    sel = g[g[id].astype(str) == str(parcel)]
    if sel.empty:
        raise InputError(f"parcels: {parcels}: no parcel with {id} = {parcel!r}")
    geom = sel.to_crs(str(gb_full.crs)).geometry.iloc[0]
    win, inp, index, flags, scl, halo = _load(cfg, gb_full, window_bounds=geom.bounds)
    inside = ~geometry_mask([geom], out_shape=(win.shape.y, win.shape.x), transform=win.affine)
    if not inside.any():
        raise InputError(f"parcel {parcel}: no pixel centre inside it on the {abs(win.resolution.x):g} m grid")
    status = _status(cfg, inp, index, flags, scl, halo)[:, inside]  # [T, N]
    fl = flags[:, inside]
    idx = index[:, inside] if index is not None else np.full(fl.shape, np.nan)
    days = np.array(inp.meta.dates, dtype="datetime64[D]").astype(np.int64)
    till = _tillage(fl, days, _max_gap(cfg))
    valid = np.isin(status, list(_STYLE))
    with np.errstate(invalid="ignore", divide="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        vi = np.where(valid, idx, np.nan)
        med, q25, q75 = (np.nanpercentile(vi, q, axis=1) for q in (50, 25, 75))
        nvalid = valid.sum(1)
        bare_share = np.where(nvalid > 0, (status == "bare").sum(1) / np.maximum(nvalid, 1), np.nan)
    major = []
    for t in range(len(days)):
        vals, cnt = np.unique(status[t].astype(str), return_counts=True)
        major.append(vals[np.argmax(cnt)] if len(vals) else "missing band")
    df = pd.DataFrame({"date": pd.to_datetime(np.array(inp.meta.dates, dtype="datetime64[D]")), "index": med,
                       "q25": q25, "q75": q75, "bare_share": bare_share, "valid_pixels": nvalid,
                       "status": major, "tillage_share": till.mean(1) if till.size else np.zeros(len(days)),
                       "tillage": (till.mean(1) >= 0.5) if till.size else np.zeros(len(days), bool)})
    df = df.sort_values("date").reset_index(drop=True)
    facts = {"parcel": parcel, "pixels": int(inside.sum()), "crs": str(gb_full.crs),
             "threshold": float(np.median(inp.threshold[inside]))}
    return df, facts


def plot_parcel(source, out, *, parcels, parcel, id, parcels_crs=None, start=None, end=None,  # noqa: A002
                overwrite: bool = False) -> PlotResult:
    """PNG of a parcel's PV+IR2 series (median of its pixels, 25-75 % band), each day marked
    by the status of most of its pixels, and tillage events started by at least half of them."""

    df, facts = parcel_series(source, parcels=parcels, parcel=parcel, id=id, parcels_crs=parcels_crs, start=start,
                              end=end)
    title = (f"parcel {facts['parcel']} ({facts['pixels']} pixels, {facts['crs']}): median PV+IR2 of the valid "
             f"pixels; status of most pixels; {int(df['tillage'].sum())} tillage event(s)")
    fig, marks = _series_figure(df, facts["threshold"], title, share_col="bare_share")
    return PlotResult(save_png(fig, Path(out), overwrite, close=True), df, marks, title)


# ----------------------------------------------------------------------------- yearly maps
def plot_years(products, out, *, product: str = "BSF", max_size: int = 1024, overwrite: bool = False) -> PlotResult:
    """PNG panel of a product's per-period maps (the window if there are no periods), one
    colour bar with the product's unit, axes in the grid's CRS units.

    Returns a PlotResult whose ``data`` maps each period label to the (decimated) array drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.ticker import MaxNLocator

    from .io.collect import collect_products
    from .io.layout import WINDOW
    from .io.products import read_product

    files = collect_products(products, products=[product])
    per = [f for f in files if f.label != WINDOW] or files
    n = len(per)
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.2, 3.4 * nrows + 0.6), squeeze=False,
                             layout="constrained")
    spec = per[0].spec
    data: dict[str, np.ndarray] = {}
    crs = None
    for f in per:
        arr, info = read_product(f.path, max_size=max_size)
        data[f.label] = arr[0]
        crs = info["crs"]
        f_info = info
        data[f.label + "__extent"] = np.array(_extent(f_info["transform"], arr.shape[1:]))
    vals = np.concatenate([data[f.label][np.isfinite(data[f.label])].ravel() for f in per]) if per else np.zeros(0)
    if spec.classes:
        classes = [c for c in spec.classes if c != spec.nodata]
        from .products import MASK_COLORS

        cmap = ListedColormap([MASK_COLORS.get(c, "#444444") if spec.name == "MASK" else
                               plt.get_cmap("tab10")(i) for i, c in enumerate(classes)])
        norm = BoundaryNorm(np.arange(min(classes) - 0.5, max(classes) + 1.5), cmap.N)
        kw = dict(cmap=cmap, norm=norm)
    elif spec.unit.startswith("fraction"):
        kw = dict(cmap="YlOrBr", vmin=0.0, vmax=1.0)
    else:
        lo, hi = (np.percentile(vals, [2, 98]) if vals.size else (0, 1))
        kw = dict(cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1)
    im = None
    unit = "m" if crs is not None and crs.is_projected else "degree"
    for ax, f in zip(axes.ravel(), per, strict=False):
        im = ax.imshow(data[f.label], extent=tuple(data[f.label + "__extent"]), interpolation="nearest", **kw)
        ax.set_title(f"{spec.name} {f.label}", fontsize=10)
        ax.set_xlabel(f"x [{unit}] ({_crs_name(crs)})", fontsize=8)
        ax.set_ylabel(f"y [{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(style="plain", useOffset=False)
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_major_locator(MaxNLocator(4))
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85)
        cb.set_label(f"{spec.name} [{spec.unit}]")
        if spec.classes:
            cb.set_ticks(classes)
            cb.set_ticklabels([f"{c} {spec.classes[c].split(' (')[0]}"[:28] for c in classes], fontsize=7)
    title = f"{spec.name} per period: {', '.join(f.label for f in per)}"
    fig.suptitle(title, fontsize=11)
    try:
        path = save_png(fig, Path(out), overwrite)
    finally:
        plt.close(fig)
    arrays = {k: v for k, v in data.items() if not k.endswith("__extent")}
    return PlotResult(path, arrays, {"panels": n}, title)


def _extent(transform, shape) -> tuple[float, float, float, float]:
    h, w = shape
    x0, y0 = transform.c, transform.f
    return (x0, x0 + w * transform.a, y0 + h * transform.e, y0)


def _crs_name(crs) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:30]

