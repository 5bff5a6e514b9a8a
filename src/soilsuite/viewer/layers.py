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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .. import products as P

__all__ = ["Layer", "discover_layers", "style_for"]

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
        Stretch in physical units (2nd-98th percentile of the file, or the product's range).
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
        return d

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> physical float64 values, NaN where nodata."""
        stored = np.asarray(stored)
        out = stored.astype("float64") * self.scale + self.offset
        if not (isinstance(self.nodata, float) and math.isnan(self.nodata)):
            out[stored == self.nodata] = np.nan
        out[~np.isfinite(stored.astype("float64"))] = np.nan
        return out


def _spec_for(name: str) -> P.ProductSpec | None:
    """The catalogue record of a product or soil-map layer name, if the catalogue knows it."""
    if name.upper() in P.PRODUCTS:
        return P.PRODUCTS[name.upper()]
    from ..dsm.products import DSM_LAYERS

    m = re.fullmatch(r"(.+?)_(mean|q\d+|uncertainty|di|aoa|outside_range)", name)
    if m:
        return DSM_LAYERS["quantile" if m.group(2).startswith("q") else m.group(2)]
    if name == "stock" or name.endswith("_stock") or name.startswith(("ocstk", "icstk", "nistk")):
        return DSM_LAYERS["mean"]
    return None


def style_for(name: str, unit: str, spec: P.ProductSpec | None, bands: list[str]) -> tuple[str, str]:
    """(kind, colour ramp) of a layer from its catalogue record, unit and name."""
    u, n = unit.lower(), name.upper()
    short = {b.rsplit("_", 1)[-1] for b in bands}
    if len(bands) >= 3 and (spec is not None and spec.is_spectral or {"B02", "B03", "B04"} <= short):
        return "rgb", ""
    if spec is not None and spec.classes:
        return "classes", ""
    if n.endswith(("_AOA",)):
        return "classes", ""
    if "fraction" in u or n in ("BSF",) or n.endswith("_FREQ"):
        return "fraction", RAMPS["fraction"]
    if u == "count" or n in ("VPC", "BSC") or "count" in u:
        return "count", RAMPS["count"]
    if "day" in u or "date" in u or "doy" in n.lower():
        return "date", RAMPS["date"]
    if n.endswith(("_UNCERTAINTY", "_DI")):
        return "uncertainty", RAMPS["uncertainty"]
    if spec is not None and spec.group == "dsm" or any(s in u for s in ("g/kg", "kg/m2", "kg/dm3", "cm3", "g/100g")):
        return "soil", RAMPS["soil"]
    return "value", RAMPS["value"]


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


def _stretch(src, layer: Layer, bands: list[int] | None = None) -> tuple[float, float]:
    """2nd-98th percentile of the (decimated) physical values; for RGB over the three bands."""
    h, w = src.height, src.width
    f = max(1.0, max(h, w) / 512)
    shape = (max(1, round(h / f)), max(1, round(w / f)))
    idx = bands or layer.rgb or [1]
    data = src.read(idx, out_shape=(len(idx), *shape), resampling=Resampling.nearest)
    vals = layer.decode(data)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    if layer.kind == "fraction":
        return 0.0, 1.0
    if layer.kind == "count":
        return 0.0, float(max(1.0, np.percentile(vals, 98)))
    lo, hi = (float(v) for v in np.percentile(vals, [2, 98]))
    if layer.kind == "rgb":
        lo = max(0.0, lo)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    return lo, hi


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
        name = tags.get("PRODUCT", path.stem)
        if name == "stock" and path.stem != "stock":
            name = path.stem
        spec = _spec_for(path.stem) or _spec_for(name)
        bands = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        unit = tags.get("UNIT") or (src.units[0] if src.units and src.units[0] else "") or (spec.unit if spec else "")
        nodata = src.nodata if src.nodata is not None else (spec.nodata if spec else float("nan"))
        rel = path.relative_to(out).with_suffix("").as_posix()
        group = rel.rsplit("/", 1)[0] if "/" in rel else "window"
        kind, ramp = style_for(path.stem, unit, spec, bands)
        layer = Layer(
            id=rel, name=path.stem, group=group, path=str(path), kind=kind, unit=unit,
            description=tags.get("DESCRIPTION") or (spec.description if spec else ""),
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
        else:
            layer.vmin, layer.vmax = _stretch(src, layer)
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


def legend(layer: Layer) -> dict[str, Any]:
    """What the page draws under a layer's name: a ramp with its ends and unit, or class swatches."""
    if layer.kind == "classes":
        return {"type": "classes", "items": [{"value": k, "label": v[0], "color": v[1]}
                                             for k, v in layer.classes.items()],
                "note": "transparent: nodata"}
    if layer.kind == "rgb":
        return {"type": "rgb", "bands": [layer.bands[i - 1] for i in layer.rgb], "min": layer.vmin,
                "max": layer.vmax, "unit": layer.unit, "note": "true colour (R=B04, G=B03, B=B02); transparent: nodata"}
    return {"type": "ramp", "ramp": layer.ramp, "min": layer.vmin, "max": layer.vmax, "unit": layer.unit,
            "colors": ramp_colors(layer.ramp), "note": "transparent: nodata"}


def ramp_colors(ramp: str, n: int = 9) -> list[str]:
    """``n`` hex colours along a ramp (for the CSS gradient of the legend)."""
    from rio_tiler.colormap import cmap

    cm = cmap.get(ramp)
    return ["#{:02x}{:02x}{:02x}".format(*cm[round(i * 255 / (n - 1))][:3]) for i in range(n)]
