"""Quicklook pictures (PNG) of the products: true colour, SWIR false colour, BSF, MASK.

Pictures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed), north up, axes in km of the product's CRS (degrees for geographic CRSs), with
a title, and at most ``max_size`` pixels of data per side: files are read decimated from their
overviews (:func:`soilsuite.io.products.read_product`). The PNG is :data:`WIDTH_PX` pixels wide
and at most :data:`MAX_HEIGHT_PX` high. Nodata is drawn grey (MASK: its class-0 colour), and
every picture says so (colour-bar label or legend).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import products as P
from ..errors import InputError, OutputExistsError
from ..sensors import SENTINEL2_L2A as _SENSOR
from .products import product_files, read_product

__all__ = [
    "MAX_HEIGHT_PX",
    "WIDTH_PX",
    "quicklook_bsf",
    "quicklook_mask",
    "quicklook_rgb",
    "quicklook_swir",
    "quicklooks_for",
]

#: Width of every quicklook PNG in pixels; the height follows the image's aspect ratio.
WIDTH_PX = 800
#: Upper bound of the PNG height in pixels.
MAX_HEIGHT_PX = 1000
_DPI = 100
NODATA_GREY = (0.6, 0.6, 0.6)

Source = str | os.PathLike | np.ndarray


# ----------------------------------------------------------------------------- input
def _load(src: Source, *, bands: Sequence[str] | None, band_names: Sequence[str] | None,
          transform, crs, max_size: int, decode: bool = True,
          fit: tuple[bool, int] | None = None) -> tuple[np.ndarray, Any, Any]:
    """-> (array [n, Y, X] of the wanted bands, transform or None, crs or None).

    ``fit = (colorbar, legend_rows)``: a file is read with at most as many pixels a side as
    the picture's axes have (:func:`_layout`; a larger read would be sampled down to them
    by the drawing anyway, nearest neighbour as the decimated read)."""
    if isinstance(src, np.ndarray):
        arr = np.asarray(src, dtype="float64" if decode else src.dtype)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        names = list(band_names) if band_names is not None else (
            list(_SENSOR.band_names) if arr.shape[0] == len(_SENSOR.band_names)
            else [f"band{i + 1}" for i in range(arr.shape[0])])
        step = max(1, int(np.ceil(max(arr.shape[1:]) / max_size)))
        arr = arr[:, ::step, ::step]
        if transform is not None and step > 1:
            transform = transform * transform.scale(step, step)
    else:
        if fit is not None:
            max_size = min(max_size, _fit_px(src, *fit))
        arr, info = read_product(src, max_size=max_size, decode=decode)
        names, transform, crs = info["band_names"], info["transform"], info["crs"]
    if bands is None:
        return arr, transform, crs
    missing = [b for b in bands if b not in names]
    if missing:
        raise InputError(f"quicklook of {src if not isinstance(src, np.ndarray) else 'array'}: "
                         f"bands {missing} not among {names}")
    return arr[[names.index(b) for b in bands]], transform, crs


def _stretch(rgb: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """[3, Y, X] physical -> [Y, X, 3] in 0-1, per-band percentile stretch, nodata grey."""
    ok = np.isfinite(rgb).all(axis=0)
    out = np.empty(rgb.shape[1:] + (3,), "float64")
    for i in range(3):
        band = rgb[i]
        if ok.any():
            lo, hi = np.percentile(band[ok], percentiles)
        else:
            lo, hi = 0.0, 1.0
        out[..., i] = np.clip((band - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out[~ok] = NODATA_GREY
    return out


# ----------------------------------------------------------------------------- figure
#: The frame's margins in inches (fixed layout, :func:`_figure`): tick labels and axis labels
#: left and below, the title above; a colour bar or legend rows add their own room.
_MARGIN_IN = {"left": 0.95, "right": 0.3, "top": 0.4, "bottom": 0.65}
_COLORBAR_IN = 1.3  # gap, bar (0.25 in), its tick labels and label
_LEGEND_ROW_IN = 0.26


def _aspect(transform) -> float:
    """Height / width of one pixel in the axes' units (1 without a north-up transform)."""
    if transform is None or transform.b != 0 or transform.d != 0 or transform.a == 0:
        return 1.0
    return abs(transform.e / transform.a)


def _layout(shape: tuple[int, int], aspect: float, colorbar: bool, legend_rows: int):
    """The fixed frame of :func:`_figure` in inches: (figure width, height, axes x0, y0,
    axes width, height, bottom margin)."""
    ny, nx = shape
    m = _MARGIN_IN
    width_in = WIDTH_PX / _DPI
    right = m["right"] + (_COLORBAR_IN if colorbar else 0.0)
    bottom = m["bottom"] + (0.06 + _LEGEND_ROW_IN * legend_rows if legend_rows else 0.0)
    ratio = aspect * ny / max(nx, 1)  # axes height / width
    box_w = width_in - m["left"] - right
    box_h = box_w * ratio
    max_h = MAX_HEIGHT_PX / _DPI - m["top"] - bottom
    if box_h > max_h:
        box_h, box_w = max_h, max_h / ratio
    height_in = max(3.0, m["top"] + box_h + bottom)
    x0 = m["left"] + (width_in - m["left"] - right - box_w) / 2
    y0 = bottom + (height_in - m["top"] - bottom - box_h) / 2
    return width_in, height_in, x0, y0, box_w, box_h, bottom


def _fit_px(path, colorbar: bool, legend_rows: int) -> int:
    """The longer side in pixels of the axes a picture of the file gets."""
    import rasterio

    with rasterio.open(path) as ds:
        shape, aspect = (ds.height, ds.width), _aspect(ds.transform)
    box_w, box_h = _layout(shape, aspect, colorbar, legend_rows)[4:6]
    return max(1, int(np.ceil(max(box_w, box_h) * _DPI)))


def _figure(shape: tuple[int, int], *, aspect: float = 1.0, colorbar: bool = False,
            legend_rows: int = 0) -> tuple[Figure, Any, Any]:
    """A figure :data:`WIDTH_PX` wide whose axes hold the image at its aspect ratio, in a
    fixed layout computed here (matplotlib's constrained layout draws every picture once more
    to measure it: about half of a quicklook's CPU). The height follows the image (at most
    :data:`MAX_HEIGHT_PX`, at least 300 px). Returns (figure, image axes, colour-bar axes or
    None); ``legend_rows`` rows of a figure legend fit below the axes."""
    m = _MARGIN_IN
    width_in, height_in, x0, y0, box_w, box_h, bottom = _layout(shape, aspect, colorbar, legend_rows)
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    ax = fig.add_axes((x0 / width_in, y0 / height_in, box_w / width_in, box_h / height_in))
    cax = None
    if colorbar:  # 80 % of the image's height, at least 2 in (or what the figure has) for its label
        bar_h = max(0.8 * box_h, min(2.0, height_in - m["top"] - bottom))
        cax = fig.add_axes(((x0 + box_w + 0.2) / width_in, (y0 + (box_h - bar_h) / 2) / height_in,
                            0.25 / width_in, bar_h / height_in))
    return fig, ax, cax


def _bar_label(text: str, cax, fig: Figure) -> str:
    """The colour-bar label, on two lines (at its "; ") when one would be longer than the bar."""
    bar_in = cax.get_position().height * fig.get_figheight()
    return text.replace("; ", ";\n", 1) if 0.075 * len(text) > bar_in else text


def _show(ax, img, transform, crs, **kw) -> Any:
    """imshow north up with axes in km (projected CRS) or degrees; a north arrow."""
    ny, nx = img.shape[:2]
    if transform is not None and transform.b == 0 and transform.d == 0:
        x0, y0 = transform.c, transform.f
        x1, y1 = x0 + transform.a * nx, y0 + transform.e * ny
        geographic = crs is not None and getattr(crs, "is_geographic", False)
        f = 1.0 if geographic else 1e-3
        extent = (x0 * f, x1 * f, min(y0, y1) * f, max(y0, y1) * f)
        im = ax.imshow(img, extent=extent, origin="upper" if transform.e < 0 else "lower",
                       interpolation="nearest", **kw)
        unit = "degrees" if geographic else "km"
        code = f", EPSG:{crs.to_epsg()}" if crs is not None and crs.to_epsg() else ""
        ax.set_xlabel(f"{'longitude' if geographic else 'easting'} ({unit}{code})")
        ax.set_ylabel(f"{'latitude' if geographic else 'northing'} ({unit})")
        ax.ticklabel_format(useOffset=False, style="plain")
    else:
        im = ax.imshow(img, interpolation="nearest", **kw)
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    ax.annotate("N", xy=(0.05, 0.97), xytext=(0.05, 0.85), xycoords="axes fraction",
                ha="center", va="center", fontsize=11, fontweight="bold",
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.5),
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
    return im


def _save(fig: Figure, out_png: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(out_png)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"quicklook {path} exists already; use overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        # zlib level 1: the same pixels, ~10 % larger files, half the encoding time of level 6
        fig.savefig(tmp, format="png", dpi=_DPI, pil_kwargs={"compress_level": 1})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _title(src: Source, default: str, title: str | None) -> str:
    if title is not None:
        return title
    if isinstance(src, np.ndarray):
        return default
    p = Path(src)
    return f"{default} - {p.parent.name}/{p.name}" if p.parent.name else default


# ----------------------------------------------------------------------------- pictures
def _composite(src: Source, out_png, bands, percentiles, what: str, *, band_names, transform, crs,
               title, max_size, overwrite) -> Path:
    arr, transform, crs = _load(src, bands=bands, band_names=band_names, transform=transform,
                                crs=crs, max_size=max_size, fit=(False, 1))
    img = _stretch(arr, percentiles)
    fig, ax, _ = _figure(img.shape[:2], aspect=_aspect(transform), legend_rows=1)
    _show(ax, img, transform, crs)
    # what grey means: no value at the pixel (e.g. SRC: fewer bare observations than needed)
    fig.legend(handles=[Patch(facecolor=NODATA_GREY, edgecolor="0.4", label="nodata (no value at this pixel)")],
               loc="lower center", fontsize=9, frameon=False)
    ax.set_title(_title(src, f"{what} ({'/'.join(bands)}), {percentiles[0]:g}-{percentiles[1]:g} % stretch", title),
                 fontsize=10)
    return _save(fig, out_png, overwrite)


def quicklook_rgb(src: Source, out_png: str | os.PathLike, *, bands: Sequence[str] = ("B04", "B03", "B02"),
                  percentiles: tuple[float, float] = (2, 98), band_names: Sequence[str] | None = None,
                  transform=None, crs=None, title: str | None = None, max_size: int = 1000,
                  overwrite: bool = True) -> Path:
    """True-colour picture of a spectral product (default red/green/blue = B04/B03/B02).

    Parameters
    ----------
    src : path or numpy.ndarray
        A spectral product COG (SRC_MEAN, MREF_MEAN, ...), or physical reflectance ``[B, Y, X]``
        (0-1, NaN = nodata) whose bands are ``band_names`` (default
        Sentinel-2's ``SENTINEL2_L2A.band_names`` when B = 10).
    out_png : path
        The PNG to write (atomic; its folder is created).
    bands : 3 band names
        Bands shown as red, green, blue.
    percentiles : (float, float)
        Per-band linear stretch between these percentiles (%) of the valid pixels.
    band_names : sequence of str, optional
        Band names of an array ``src``.
    transform, crs : optional
        Grid of an array ``src`` (for axes in km); read from the file otherwise.
    title : str, optional
        Title; default names the bands, stretch and file.
    max_size : int
        Largest number of data pixels per side (decimated read above).
    overwrite : bool
        Replace an existing PNG (default); False raises OutputExistsError.

    Returns
    -------
    Path
        The PNG file, :data:`WIDTH_PX` wide and at most :data:`MAX_HEIGHT_PX` high.
    """
    return _composite(src, out_png, tuple(bands), percentiles, "true colour", band_names=band_names,
                      transform=transform, crs=crs, title=title, max_size=max_size, overwrite=overwrite)


def quicklook_swir(src: Source, out_png: str | os.PathLike, *, bands: Sequence[str] = ("B12", "B11", "B04"),
                   percentiles: tuple[float, float] = (2, 98), band_names: Sequence[str] | None = None,
                   transform=None, crs=None, title: str | None = None, max_size: int = 1000,
                   overwrite: bool = True) -> Path:
    """SWIR false-colour picture (B12/B11/B04 as red/green/blue): soils' colour and mineralogy.

    Parameters are those of :func:`quicklook_rgb`.
    """
    return _composite(src, out_png, tuple(bands), percentiles, "SWIR false colour", band_names=band_names,
                      transform=transform, crs=crs, title=title, max_size=max_size, overwrite=overwrite)


def quicklook_bsf(src: Source, out_png: str | os.PathLike, *, cmap: str = "YlOrBr", transform=None, crs=None,
                  title: str | None = None, max_size: int = 1000, overwrite: bool = True) -> Path:
    """Bare soil frequency (0-1) in a sequential colour map with a colour bar; nodata grey.

    Parameters
    ----------
    src : path or numpy.ndarray
        The BSF COG, or BSF values ``[Y, X]`` (fraction 0-1, NaN = nodata).
    out_png : path
        The PNG to write.
    cmap : str
        Matplotlib sequential colour map (0 light, 1 dark brown by default).
    transform, crs, title, max_size, overwrite
        As for :func:`quicklook_rgb`.

    Returns
    -------
    Path
        The PNG file.
    """
    return quicklook_layer(src, out_png, cmap=cmap, vmin=0.0, vmax=1.0, label="bare soil frequency BSC / VPC (0-1)",
                           transform=transform, crs=crs, title=_title(src, "bare soil frequency (BSF)", title),
                           max_size=max_size, overwrite=overwrite)


#: Quicklooks of the optional layers (docs/temporal.md): product -> (colour map, vmin, vmax, colour-bar label).
LAYER_QUICKLOOKS: dict[str, tuple[str, float, float, str]] = {
    "MEDIAN_BARE_DOY": ("twilight", 1.0, 366.0, "median day of year of bare observations"),
    "TILLAGE_EVENTS": ("viridis", 0.0, 4.0, "tillage events (count)"),
    "PLOUGHED": ("RdYlGn_r", 0.0, 1.0, "grassland ploughed (1) / not (0)"),
    "C_FACTOR": ("YlOrBr", 0.0, 1.0, "erosivity-weighted bare-soil fraction (C-factor, 0-1)"),
    "BARE_MEAN_DOY": ("twilight", 1.0, 366.0, "mean day of year of bare observations"),
}


def quicklook_layer(src: Source, out_png: str | os.PathLike, *, cmap: str, vmin: float, vmax: float, label: str,
                    transform=None, crs=None, title: str | None = None, max_size: int = 1000,
                    overwrite: bool = True) -> Path:
    """A single-band layer (physical values, NaN = nodata) in ``cmap`` from ``vmin`` to ``vmax``
    with a colour bar labelled ``label``; nodata grey. Other arguments as :func:`quicklook_bsf`."""
    import matplotlib

    arr, transform, crs = _load(src, bands=None, band_names=None, transform=transform, crs=crs,
                                max_size=max_size, fit=(True, 0))
    img = np.ma.masked_invalid(arr[0])
    cm = matplotlib.colormaps[cmap].with_extremes(bad=NODATA_GREY)
    fig, ax, cax = _figure(img.shape, aspect=_aspect(transform), colorbar=True)
    im = _show(ax, img, transform, crs, cmap=cm, vmin=vmin, vmax=vmax)
    fig.colorbar(im, cax=cax, label=_bar_label(f"{label}; grey = nodata", cax, fig))
    ax.set_title(_title(src, label, title), fontsize=10)
    return _save(fig, out_png, overwrite)


def quicklook_mask(src: Source, out_png: str | os.PathLike, *, transform=None, crs=None,
                   title: str | None = None, max_size: int = 1000, overwrite: bool = True) -> Path:
    """MASK classes in their catalogue colours with a legend of the class names.

    Parameters
    ----------
    src : path or numpy.ndarray
        The MASK COG, or class values ``[Y, X]`` (0-3; NaN is drawn as class 0).
    out_png : path
        The PNG to write.
    transform, crs, title, max_size, overwrite
        As for :func:`quicklook_rgb`.

    Returns
    -------
    Path
        The PNG file.
    """
    arr, transform, crs = _load(src, bands=None, band_names=None, transform=transform, crs=crs,
                                max_size=max_size, decode=False, fit=(False, 2))
    classes = sorted(P.MASK_CLASSES)
    img = np.nan_to_num(np.asarray(arr[0], "float64"), nan=P.MASK_NODATA)
    cm = ListedColormap([P.MASK_COLORS[c] for c in classes])
    norm = BoundaryNorm([c - 0.5 for c in classes] + [classes[-1] + 0.5], cm.N)
    fig, ax, _ = _figure(img.shape, aspect=_aspect(transform), legend_rows=2)
    _show(ax, img, transform, crs, cmap=cm, norm=norm)
    total = img.size
    handles = [
        Patch(facecolor=P.MASK_COLORS[c], edgecolor="0.3",
              label=f"{c} {P.MASK_CLASSES[c].split(' (')[0]} ({100 * np.count_nonzero(img == c) / total:.0f} %)")
        for c in classes
    ]
    fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=9, frameon=False)
    ax.set_title(_title(src, "MASK (SCMaP surface classes)", title), fontsize=10)
    return _save(fig, out_png, overwrite)


def quicklooks_for(out_dir: str | os.PathLike, *, max_size: int = 1000, overwrite: bool = True) -> list[Path]:
    """Draw every quicklook that applies to the products present in a folder.

    SRC_MEAN -> ``SRC_MEAN_rgb.png`` and ``SRC_MEAN_swir.png``; BSF -> ``BSF.png``;
    MASK -> ``MASK.png``; all in ``<out_dir>/quicklooks/``. Period sub-folders are not visited.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Product folder.
    max_size : int
        Largest number of data pixels per side.
    overwrite : bool
        Replace existing pictures (default).

    Returns
    -------
    list of Path
        The pictures written (empty if no product applies).
    """
    out = Path(out_dir)
    files = product_files(out)
    ql = out / "quicklooks"
    written: list[Path] = []
    kw = dict(max_size=max_size, overwrite=overwrite)
    if "SRC_MEAN" in files:
        written.append(quicklook_rgb(files["SRC_MEAN"], ql / "SRC_MEAN_rgb.png", **kw))
        written.append(quicklook_swir(files["SRC_MEAN"], ql / "SRC_MEAN_swir.png", **kw))
    if "BSF" in files:
        written.append(quicklook_bsf(files["BSF"], ql / "BSF.png", **kw))
    if "MASK" in files:
        written.append(quicklook_mask(files["MASK"], ql / "MASK.png", **kw))
    for name, (cmap, lo, hi, label) in LAYER_QUICKLOOKS.items():  # optional layers, when written
        if name in files:
            written.append(quicklook_layer(files[name], ql / f"{name}.png", cmap=cmap, vmin=lo, vmax=hi, label=label,
                                           **kw))
    if "PROVENANCE" in files:  # --provenance
        written.append(quicklook_provenance(files["PROVENANCE"], ql / "PROVENANCE.png", **kw))
    return written


#: Colours of the provenance rules (``--provenance``; as the statuses of :mod:`soilsuite.plots`).
PROVENANCE_COLORS: dict[str, str] = {
    "scene_filter": "#5b6f8a", "nodata": "#000000", "scl": "#c7b3d9", "dilation": "#8ec3ea", "sun": "#e3c800",
    "selector": "#2e8b3a", "dry_guard": "#e08a00", "edge_guard": "#9c4dc4", "land_cover": "#4d4d4d", "blue_filter": "#1f5fbf",
    "bare": "#b5651d",
}


def quicklook_provenance(src: Source, out_png: str | os.PathLike, *, transform=None, crs=None,
                         title: str | None = None, max_size: int = 1000, overwrite: bool = True) -> Path:
    """PROVENANCE (``--provenance``): left, the most frequent rule of each pixel's loaded
    observations (scene filter left out; ``bare`` where most were kept); right, the share of each rule in the observations of the
    pixels drawn (the picture's decimated pixels; the run's summary has the exact area shares).
    Nodata (no observation) grey. Other arguments as :func:`quicklook_bsf`."""
    from ..kernels.provenance import RULES

    arr, transform, crs = _load(src, bands=None, band_names=list(RULES), transform=transform, crs=crs,
                                max_size=max_size)
    if arr.shape[0] != len(RULES):
        raise InputError(f"{_title(src, 'PROVENANCE', None)}: expected {len(RULES)} bands ({', '.join(RULES)}), "
                         f"found {arr.shape[0]}")
    ok = np.isfinite(arr).all(0)
    counts = np.where(np.isfinite(arr), arr, 0.0)
    # the scene filter removes whole scenes (much the same everywhere): the map shows the other rules
    top = np.ma.masked_array(1 + counts[1:].argmax(0), mask=~ok | (counts[1:].sum(0) == 0))
    colors = [PROVENANCE_COLORS[r] for r in RULES]
    cm = ListedColormap(colors).with_extremes(bad=NODATA_GREY)
    fig = Figure(figsize=(WIDTH_PX / _DPI, 4.4), dpi=_DPI, layout="constrained")
    ax, bar = fig.subplots(1, 2, width_ratios=(1.5, 1))
    _show(ax, top, transform, crs, cmap=cm, norm=BoundaryNorm(np.arange(len(RULES) + 1) - 0.5, len(RULES)))
    # over the whole figure: with the file name the title is wider than the map axes
    fig.suptitle(_title(src, "PROVENANCE: most frequent rule of the loaded observations", title), fontsize=9)
    tot = counts[:, ok].sum(1)
    share = 100 * tot / tot.sum() if tot.sum() > 0 else np.zeros(len(RULES))
    y = np.arange(len(RULES))[::-1]
    bar.barh(y, share, color=colors)
    bar.set_yticks(y, list(RULES), fontsize=8)
    for yi, s in zip(y, share, strict=True):
        bar.text(s, yi, f" {s:.1f} %", va="center", fontsize=7)
    bar.set_xlim(0, max(10.0, float(share.max()) * 1.3))
    bar.set_xlabel("share of the observations (%)")
    ax.legend(handles=[Patch(color=NODATA_GREY, label="no observation")], loc="lower right", fontsize=7)
    return _save(fig, out_png, overwrite)
