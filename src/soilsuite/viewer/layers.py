"""Which map layers a product folder holds, and how each is drawn (stretch, colour ramp, legend).

Layers are discovered from the folder's files: every ``<NAME>.tif`` / ``<NAME>.vrt`` of the
folder and of its sub-folders (per-year products, soil maps, ...), except soilsuite's scratch
and tile folders. Each file is matched to the product catalogue
(:data:`soilsuite.products.PRODUCTS`, including products registered later, and the soil-map
layers of :mod:`soilsuite.dsm.products`) by its ``PRODUCT`` tag or file stem; a file the
catalogue does not know is still shown, with the scale, offset, nodata and unit stored in it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .. import products as P
from ..io.collect import catalogue_spec, file_spec

__all__ = ["Layer", "constant_range", "discover_layers", "legend", "style_for"]

#: Sub-folders never searched for layers (scratch, output tiles behind a VRT, pictures, STAC,
#: single-band views of the spectral products, QGIS files); input archives are skipped too.
SKIP_DIRS = {".work", "tiles", "quicklooks", "items", "__pycache__", "bands", "qgis"}
#: Largest depth of sub-folders searched (``<out>/<period>/<NAME>.tif`` is depth 1).
MAX_DEPTH = 3

#: Colour ramps by product kind (matplotlib names; rio-tiler ships the same ramps).
RAMPS = {
    "fraction": "ylorbr",
    "count": "viridis",
    "date": "twilight",
    "days": "magma",
    "uncertainty": "magma",
    "spread": "cividis",
    "soil": "ylgnbu",
    "value": "viridis",
}


@dataclass
class Layer:
    """One map layer: a product file and how to draw and decode it.

    Attributes
    ----------
    id : str
        Path of the file relative to the folder, without extension (``"2021/BSF"``).
    name : str
        Product name (``"BSF"``, ``"soc_mean"``).
    group : str
        ``"window"`` for the folder itself, else the sub-folder (``"2021"``, ``"soc"``).
    path : str
        Absolute path of the file.
    kind : str
        ``"rgb"`` (true colour of a spectral product), ``"classes"`` or a ramp kind of :data:`RAMPS`.
    unit, description : str
        From the catalogue or the file's tags.
    scale, offset, nodata : float
        ``physical = stored * scale + offset``; ``nodata`` as stored (NaN allowed).
    bands : list of str
        Band names.
    rgb : list of int
        1-based band indexes drawn as red, green, blue (``kind == "rgb"``).
    styles : dict
        Other band combinations of an RGB layer (``"swir"``: B12/B11/B04 false colour), each with
        its 1-based ``bands``, its stretch ``vmin``/``vmax`` and a ``label``.
    vmin, vmax : float
        Stretch in physical units (2nd-98th percentile of the file, or the product's range) of
        what the layer draws by default (band 1 of a single-band drawing).
    constant : float or None
        The value of a layer that holds one value only (all valid pixels equal, e.g. a count of 0
        over a small area): its stretch is a fixed range around the value
        (:func:`constant_range`) and its legend says "constant value X". None otherwise.
    band_stretch : list of dict
        Layers drawn one band at a time with more than one band (``PROVENANCE``,
        ``BSF_MONTHLY``, ...): per band (1-based band ``k`` at index ``k - 1``) its ``vmin``,
        ``vmax`` and ``constant``, the stretch of that band alone. Empty otherwise.
    ramp : str
        Colour ramp name (single-band layers).
    classes : dict
        Class value -> (label, colour) for class layers.
    bounds : list of float
        West, south, east, north in degrees.
    """

    id: str
    name: str
    group: str
    path: str
    kind: str
    unit: str
    description: str
    scale: float
    offset: float
    nodata: float
    bands: list[str]
    rgb: list[int] = field(default_factory=list)
    #: other band combinations of an RGB layer: name -> {"bands": [...], "vmin", "vmax", "label"}
    styles: dict[str, dict[str, Any]] = field(default_factory=dict)
    vmin: float = 0.0
    vmax: float = 1.0
    constant: float | None = None
    #: per band of a multi-band layer drawn one band at a time: {"vmin", "vmax", "constant"}
    band_stretch: list[dict[str, Any]] = field(default_factory=list)
    ramp: str = "viridis"
    classes: dict[int, tuple[str, str]] = field(default_factory=dict)
    bounds: list[float] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """JSON-able description for the web page (no file system paths)."""
        d = asdict(self)
        d.pop("path")
        d["nodata"] = None if isinstance(self.nodata, float) and math.isnan(self.nodata) else self.nodata
        d["classes"] = {str(k): {"label": v[0], "color": v[1]} for k, v in self.classes.items()}
        d["legend"] = legend(self)
        if self.band_stretch:
            d["band_legends"] = [legend(self, k) for k in range(1, len(self.band_stretch) + 1)]
        return d

    def band_index(self, band: str | int) -> int:
        """The 1-based index of a band given by number (``3``, ``"3"``) or name (``"dilation"``).

        Raises
        ------
        ValueError
            The layer has no such band, or it is drawn in colour (RGB) and shows no single band.
        """
        if self.kind == "rgb":
            raise ValueError(f"layer {self.id} is drawn in colour: choose a band combination with style=, not band=")
        text = str(band).strip()
        if text in self.bands:
            return self.bands.index(text) + 1
        if text.isdigit() and 1 <= int(text) <= len(self.bands):
            return int(text)
        raise ValueError(f"layer {self.id} has no band {text!r}: give 1-{len(self.bands)} or one of "
                         f"{', '.join(self.bands)}")

    def stretch(self, band: int | None = None) -> dict[str, Any]:
        """``{"vmin", "vmax", "constant"}`` of the default drawing, or of one band (1-based)."""
        if band is not None and self.band_stretch:
            return dict(self.band_stretch[band - 1])
        return {"vmin": self.vmin, "vmax": self.vmax, "constant": self.constant}

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> physical float64 values, NaN where nodata."""
        stored = np.asarray(stored)
        out = stored.astype("float64") * self.scale + self.offset
        if not (isinstance(self.nodata, float) and math.isnan(self.nodata)):
            out[stored == self.nodata] = np.nan
        out[~np.isfinite(stored.astype("float64"))] = np.nan
        return out


#: The viewer's kind of each QGIS style kind (:func:`soilsuite.io.qgis.style_kind`, the one rule).
VIEWER_KINDS = {"class": "classes", "reflectance": "value", "doy": "date", "continuous": "value"}


def style_for(name: str, unit: str, spec: P.ProductSpec | None, bands: list[str]) -> tuple[str, str]:
    """(kind, colour ramp) of a layer: ``"rgb"`` for a spectral product (or any file with bands
    B02, B03, B04), else the product's style kind (:func:`soilsuite.io.qgis.style_kind`, the rule
    the QGIS styles follow) from its record, or from ``name`` and ``unit`` without one."""
    from ..io.qgis import style_kind

    short = {b.rsplit("_", 1)[-1] for b in bands}
    if len(bands) >= 3 and (spec is not None and spec.is_spectral or {"B02", "B03", "B04"} <= short):
        return "rgb", ""
    if spec is None:
        spec = P.ProductSpec(name, "float32", float("nan"), 1.0, 0.0, unit, "", group="external")
    kind = style_kind(spec)
    kind = VIEWER_KINDS.get(kind, kind)
    return kind, RAMPS.get(kind, "")


def _classes(spec: P.ProductSpec | None, tags: dict[str, str], name: str) -> dict[int, tuple[str, str]]:
    if spec is not None and spec.name == "MASK" or name.upper() == "MASK":
        return {k: (v, P.MASK_COLORS[k]) for k, v in P.MASK_CLASSES.items() if k != P.MASK_NODATA}
    labels = {int(k[6:]): v for k, v in tags.items() if k.startswith("CLASS_") and k[6:].isdigit()}
    if spec is not None and spec.classes:
        labels = dict(spec.classes)
    if not labels and name.lower().endswith("_aoa"):
        labels = {0: "outside the area of applicability", 1: "inside the area of applicability"}
    palette = ["#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    return {k: (v, palette[i % len(palette)]) for i, (k, v) in enumerate(sorted(labels.items()))}


def _decimated(src, layer: Layer, bands: list[int]) -> np.ndarray:
    """Physical values of ``bands`` (1-based) from a read of at most ~512 px a side, ``[n, y, x]``."""
    h, w = src.height, src.width
    f = max(1.0, max(h, w) / 512)
    shape = (max(1, round(h / f)), max(1, round(w / f)))
    data = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.nearest)
    return layer.decode(data)


def constant_range(value: float, kind: str, step: float) -> tuple[float, float]:
    """The stretch of a layer holding one value only: the product's own range for fractions
    (0-1, so that a constant fraction keeps its colour), else ``value`` +- max(10 % of
    ``|value|``, ``step``) (``step``: one stored unit for integer products, 1 for float ones),
    which draws the value in the middle of the colour ramp."""
    if kind == "fraction":
        return 0.0, 1.0
    half = max(abs(value) * 0.1, step)
    return value - half, value + half


def _stretch_of(vals: np.ndarray, layer: Layer, step: float) -> tuple[float, float, float | None]:
    """(vmin, vmax, constant value or None) of physical values: 2nd-98th percentile, the
    product's range for fractions, 0 to the 98th percentile for counts."""
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0, None
    if layer.kind != "rgb" and vals.min() == vals.max():
        value = float(vals[0])
        return (*constant_range(value, layer.kind, step), value)
    if layer.kind == "fraction":
        return 0.0, 1.0, None
    if layer.kind == "count":
        return 0.0, float(max(1.0, np.percentile(vals, 98))), None
    lo, hi = (float(v) for v in np.percentile(vals, [2, 98]))
    if layer.kind == "rgb":
        lo = max(0.0, lo)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    return lo, hi, None


def _stretch(src, layer: Layer, bands: list[int] | None = None) -> tuple[float, float]:
    """2nd-98th percentile of the (decimated) physical values; for RGB over the three bands."""
    lo, hi, _ = _stretch_of(_decimated(src, layer, bands or layer.rgb or [1]), layer, 1.0)
    return lo, hi


def _single_band_stretches(src, layer: Layer) -> list[dict[str, Any]]:
    """The stretch of each band of a layer drawn one band at a time (its first is the default)."""
    step = abs(layer.scale) if np.dtype(src.dtypes[0]).kind in "iu" else 1.0
    vals = _decimated(src, layer, list(range(1, src.count + 1)))
    out = []
    for band_vals in vals:
        lo, hi, const = _stretch_of(band_vals, layer, step)
        out.append({"vmin": lo, "vmax": hi, "constant": const})
    return out


def _layer(out: Path, path: Path) -> Layer | None:
    from rasterio.warp import transform_bounds

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioError:
        return None
    with src:
        if src.crs is None:
            return None
        tags = src.tags()
        spec = catalogue_spec(path, tags, by_name=True) or file_spec(src, path, tags)
        bands = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        unit = tags.get("UNIT") or (src.units[0] if src.units and src.units[0] else "") or spec.unit
        nodata = src.nodata if src.nodata is not None else spec.nodata
        rel = path.relative_to(out).with_suffix("").as_posix()
        group = rel.rsplit("/", 1)[0] if "/" in rel else "window"
        kind, ramp = style_for(path.stem, unit, spec, bands)
        layer = Layer(
            id=rel, name=path.stem, group=group, path=str(path), kind=kind, unit=unit,
            description=tags.get("DESCRIPTION") or spec.description,
            scale=float(src.scales[0] if src.scales else 1.0), offset=float(src.offsets[0] if src.offsets else 0.0),
            nodata=float(nodata), bands=bands, ramp=ramp,
            bounds=list(transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)),
        )
        if kind == "rgb":
            # band names as stored (B04) or prefixed (SRC_MEAN_B04); else the catalogue's order
            names = bands if {"B02", "B03", "B04"} <= {b.rsplit("_", 1)[-1] for b in bands} else list(spec.bands)
            short = [b.rsplit("_", 1)[-1] for b in names]
            layer.rgb = [short.index(b) + 1 for b in ("B04", "B03", "B02")]
            if {"B12", "B11"} <= set(short):
                swir = [short.index(b) + 1 for b in ("B12", "B11", "B04")]
                lo, hi = _stretch(src, layer, swir)
                layer.styles["swir"] = {"bands": swir, "vmin": lo, "vmax": hi,
                                        "label": "SWIR false colour (B12/B11/B04)"}
        if kind == "classes":
            layer.classes = _classes(spec, src.tags(1), path.stem)
            layer.vmin, layer.vmax = 0.0, float(max(layer.classes, default=1))
        elif kind == "rgb":
            layer.vmin, layer.vmax = _stretch(src, layer)
        else:
            per_band = _single_band_stretches(src, layer)
            first = per_band[0]
            layer.vmin, layer.vmax, layer.constant = first["vmin"], first["vmax"], first["constant"]
            if len(per_band) > 1:
                layer.band_stretch = per_band
        return layer


def _input_archive(d: Path) -> bool:
    """A sub-folder that is an input archive (a STAC catalog of scenes, e.g. ``demo_out/archive``),
    not products: it holds a ``catalog.json`` and no run record. Its scenes are not layers."""
    return (d / "catalog.json").is_file() and not (d / "run.json").is_file()


def _files(out: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(out):
        rel = Path(root).relative_to(out)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".") and len(rel.parts) < MAX_DEPTH
                         and not _input_archive(Path(root) / d))
        stems = {}
        for f in sorted(files):
            p = Path(root) / f
            if p.suffix in (".tif", ".tiff", ".vrt") and not f.startswith("."):
                # a product as COG and as VRT mosaic: keep the COG
                if p.stem in stems and p.suffix == ".vrt":
                    continue
                stems[p.stem] = p
        found.extend(stems.values())
    return found


def _order(layer: Layer) -> tuple:
    names = list(P.PRODUCTS)
    group_key = (0, "") if layer.group == "window" else (1, layer.group)
    return (*group_key, names.index(layer.name) if layer.name in names else len(names), layer.name)


def discover_layers(out_dir: str | os.PathLike) -> list[Layer]:
    """Every map layer of a product folder, window products first, then each sub-folder.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A folder written by ``soilsuite composite``, ``soilsuite dsm``, the demo, or any folder
        of georeferenced GeoTIFFs / VRTs.

    Returns
    -------
    list of Layer
        In catalogue order within each group; files without a CRS are skipped.
    """
    out = Path(out_dir).resolve()
    layers = [lay for p in _files(out) if (lay := _layer(out, p)) is not None]
    return sorted(layers, key=_order)


def legend(layer: Layer, band: int | None = None) -> dict[str, Any]:
    """What the page draws under a layer's name: a ramp with its ends and unit, class swatches,
    or one swatch and "constant value X" for a layer (or band) holding one value only.

    Parameters
    ----------
    layer : Layer
        The layer.
    band : int, optional
        1-based band of a multi-band layer drawn one band at a time (its own stretch); default
        the layer's default drawing (band 1).
    """
    if layer.kind == "classes":
        return {"type": "classes", "items": [{"value": k, "label": v[0], "color": v[1]}
                                             for k, v in layer.classes.items()],
                "note": "transparent: nodata"}
    if layer.kind == "rgb":
        return {"type": "rgb", "bands": [layer.bands[i - 1] for i in layer.rgb], "min": layer.vmin,
                "max": layer.vmax, "unit": layer.unit, "note": "true colour (R=B04, G=B03, B=B02); transparent: nodata"}
    st = layer.stretch(band)
    out: dict[str, Any] = {"type": "ramp", "ramp": layer.ramp, "min": st["vmin"], "max": st["vmax"],
                           "unit": layer.unit, "colors": ramp_colors(layer.ramp), "note": "transparent: nodata"}
    if layer.band_stretch:
        out["band"] = layer.bands[(band or 1) - 1]
    if st["constant"] is not None:
        value = st["constant"]
        pos = (value - st["vmin"]) / (st["vmax"] - st["vmin"])
        text = f"constant value {value:.6g}" + (f" {layer.unit}" if layer.unit else "")
        out.update(type="constant", value=value, color=ramp_color_at(layer.ramp, pos),
                   note=f"{text} (every valid pixel); transparent: nodata")
    return out


def ramp_colors(ramp: str, n: int = 9) -> list[str]:
    """``n`` hex colours along a ramp (for the CSS gradient of the legend)."""
    from rio_tiler.colormap import cmap

    cm = cmap.get(ramp)
    return ["#{:02x}{:02x}{:02x}".format(*cm[round(i * 255 / (n - 1))][:3]) for i in range(n)]


def ramp_color_at(ramp: str, pos: float) -> str:
    """The hex colour a tile draws at relative position ``pos`` (0-1) of the stretch."""
    from rio_tiler.colormap import cmap

    i = int(np.clip(pos, 0.0, 1.0) * 255)  # as the tile renderer: rescale to 0-255, then truncate
    return "#{:02x}{:02x}{:02x}".format(*cmap.get(ramp)[i][:3])
