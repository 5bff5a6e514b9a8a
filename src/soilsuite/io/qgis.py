"""QGIS styles (``.qml``) for every product file and a QGIS project (``.qgs``) per folder.

Written as XML from Python: QGIS is not needed to write them (``tests/test_qgis.py`` opens
them with QGIS's own Python when it is installed and renders every layer).

A style is chosen by the product's *kind*, read from the product catalogue
(:mod:`soilsuite.products`, :mod:`soilsuite.dsm.products`), so a product registered later gets
a sensible default with no change here:

============  ==========================  ==============================================
kind          products                    QGIS renderer
============  ==========================  ==============================================
class         MASK, PLOUGHED, ``*_aoa``   ``paletted``: one colour and label per class
reflectance   SRC_*, MREF_*               ``multibandcolor``: true colour B04/B03/B02
                                          (``<NAME>.qml``), SWIR false colour B12/B8A/B04
                                          (``<NAME>.swir.qml``); one stretch for the three
                                          bands from the 2 and 98 % percentiles of their
                                          pixels (keeps the soil's hue)
fraction      BSF, C_FACTOR, BSF_MONTHLY  ``singlebandpseudocolor`` 0-1, YlOrBr, legend in %
count         VPC, BSC, episodes          ``singlebandpseudocolor`` 0 to the 98 % percentile, viridis
doy           FIRST_BARE_DOY ...          ``singlebandpseudocolor`` 1-366, cyclic, month labels
days          LONGEST_BARE_SPELL ...      ``singlebandpseudocolor`` 0 to the 98 % percentile, magma
uncertainty   ``*_uncertainty``, ``*_di`` ``singlebandpseudocolor`` 2-98 %, plasma
soil          ``<target>_mean``, ``_qNN`` ``singlebandpseudocolor`` 2-98 %, YlGnBu, legend with the unit
continuous    anything else               ``singlebandpseudocolor`` 2-98 %, viridis
============  ==========================  ==============================================

Values in a style are physical (QGIS applies the files' scale and offset: reflectance 0-1);
nodata is transparent (QGIS takes it from the file). QGIS loads ``<name>.qml`` beside a raster
as its default style; the project (``soilsuite.qgs``) embeds the same styles and groups the
layers: composites, statistics, one group per optional layer group (temporal, ploughing,
erosion), per period (``per period/2021``...) and soil maps; paths are relative, so the folder
can be moved.
"""

from __future__ import annotations

import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import products as P
from .layout import QGIS_PROJECT

__all__ = ["STYLE_KINDS", "layer_styles", "update_folder", "product_spec_of", "style_kind", "style_path", "write_file_styles",
           "write_project", "write_styles"]

QGIS_VERSION = "3.22.0"
PROJECT_FILE = QGIS_PROJECT
STYLE_KINDS = ("class", "reflectance", "fraction", "count", "doy", "days", "uncertainty", "soil", "continuous")
#: colour ramps by kind: a matplotlib colormap name
RAMPS = {"fraction": "YlOrBr", "count": "viridis", "doy": "twilight_shifted", "days": "magma",
         "uncertainty": "plasma", "soil": "YlGnBu", "continuous": "viridis"}
#: (red, green, blue) sensor bands of the RGB styles of spectral products: suffix -> bands
RGB_STYLES = {"": ("B04", "B03", "B02"), "swir": ("B12", "B8A", "B04")}
_CLASS_FALLBACK = ["#d9d9d9", "#c0392b", "#2e86c1", "#27ae60", "#f39c12", "#8e44ad", "#16a085", "#7f8c8d"]
_AOA_CLASSES = {0: "outside the area of applicability", 1: "inside the area of applicability"}
_MONTH_DOY = [(1, "1 Jan"), (91, "1 Apr"), (182, "1 Jul"), (274, "1 Oct"), (366, "31 Dec")]


# ----------------------------------------------------------------------------- what a file is
def product_spec_of(path: str | os.PathLike) -> P.ProductSpec | None:
    """The catalogue record of a product file, from its ``PRODUCT`` tag (or file stem): a
    composite product, or a soil-map layer (``<target>_<layer>`` with ``layer``/``target``
    tags, :mod:`soilsuite.dsm.products`); None for a raster soilsuite does not describe
    (:func:`soilsuite.io.collect.catalogue_spec`)."""
    from .collect import catalogue_spec

    return catalogue_spec(path)


def _classes(spec: P.ProductSpec) -> dict[int, str]:
    if spec.classes:
        return dict(spec.classes)
    if spec.name.endswith("_aoa"):
        return dict(_AOA_CLASSES)
    return {}


def style_kind(spec: P.ProductSpec) -> str:
    """The style kind of a product (one of :data:`STYLE_KINDS`), from its catalogue record, or
    from a record made from a file's own metadata (:func:`soilsuite.io.collect.file_spec`: by
    unit and name). The one rule for QGIS styles and the viewer's ramps."""
    unit, name = spec.unit.lower(), spec.name.lower()
    if _classes(spec):
        return "class"
    if spec.is_spectral or unit.startswith("reflectance"):
        return "reflectance"
    if "day of year" in unit or "date" in unit:
        return "doy"
    if "count" in unit or name.endswith("_outside_range"):
        return "count"
    if "day" in unit:
        return "days"
    if ("fraction" in unit or name == "bsf" or name.endswith("_freq")
            or "frequency" in spec.description.lower().split(";")[0]):
        return "fraction"
    if name.endswith(("_uncertainty", "_di")):
        return "uncertainty"
    if spec.group == "dsm" or any(u in unit for u in ("kg/m2", "g/kg", "kg/dm3", "cm3", "g/100g")):
        return "soil"
    if "doy" in name:  # by name only where the unit says nothing
        return "doy"
    return "continuous"


# ----------------------------------------------------------------------------- XML pieces
def _qgis_root() -> ET.Element:
    return ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")


def _pipe(renderer: ET.Element) -> ET.Element:
    pipe = ET.Element("pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(provider, "resampling", enabled="false", maxOversampling="2",
                  zoomedInResamplingMethod="nearestNeighbour", zoomedOutResamplingMethod="nearestNeighbour")
    pipe.append(renderer)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", colorizeOn="0", grayscaleMode="0",
                  colorizeRed="255", colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    return pipe


def _min_max_origin(parent: ET.Element) -> None:
    mmo = ET.SubElement(parent, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                      ("cumulativeCutLower", "0.02"), ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        ET.SubElement(mmo, tag).text = text


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in rgb[:3]))


#: where a ramp starts (0-1 of the colormap): YlOrBr's own start is near white, which on a white
#: map canvas would look like nodata (transparent) for BSF = 0
RAMP_START = {"YlOrBr": 0.15, "YlGnBu": 0.1}


def _ramp_colors(name: str, n: int) -> list[str]:
    from matplotlib import colormaps

    cmap, a = colormaps[name], RAMP_START.get(name, 0.0)
    return [_hex(cmap(a + (1 - a) * i / (n - 1))) for i in range(n)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _paletted(spec: P.ProductSpec) -> ET.Element:
    r = ET.Element("rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1", nodataColor="")
    ET.SubElement(r, "rasterTransparency")
    _min_max_origin(r)
    pal = ET.SubElement(r, "colorPalette")
    for i, (value, label) in enumerate(sorted(_classes(spec).items())):
        if spec.name == "MASK":
            color = P.MASK_COLORS.get(value, "#000000")
        elif spec.name.endswith("_aoa"):
            color = {0: "#bdbdbd", 1: "#1a9850"}.get(value, "#000000")
        else:
            color = _CLASS_FALLBACK[i % len(_CLASS_FALLBACK)]
        ET.SubElement(pal, "paletteEntry", value=str(value), color=color,
                      alpha="0" if value == spec.nodata else "255", label=f"{value}: {label}")
    return r


def _pseudocolor(spec: P.ProductSpec, kind: str, lo: float, hi: float, band: int = 1) -> ET.Element:
    if not hi > lo:
        hi = lo + 1.0
    r = ET.Element("rasterrenderer", type="singlebandpseudocolor", band=str(band), opacity="1", alphaBand="-1",
                   classificationMin=repr(lo), classificationMax=repr(hi), nodataColor="")
    ET.SubElement(r, "rasterTransparency")
    _min_max_origin(r)
    shader = ET.SubElement(ET.SubElement(r, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                           classificationMode="1", clip="0", minimumValue=repr(lo), maximumValue=repr(hi),
                           labelPrecision="4")
    if kind == "doy":
        stops = [(float(v), lab) for v, lab in _MONTH_DOY]
    elif kind == "fraction":
        stops = [(lo + (hi - lo) * f, f"{100 * (lo + (hi - lo) * f):.0f} %") for f in np.linspace(0, 1, 5)]
    else:
        unit = "" if spec.unit in ("1", "count", "") else f" {spec.unit}"
        stops = [(lo + (hi - lo) * f, f"{_fmt(lo + (hi - lo) * f)}{unit}") for f in np.linspace(0, 1, 5)]
    colors = _ramp_colors(RAMPS[kind], len(stops))
    ramp = ET.SubElement(shader, "colorramp", type="gradient", name="[source]")
    ET.SubElement(ramp, "prop", k="color1", v=colors[0])
    ET.SubElement(ramp, "prop", k="color2", v=colors[-1])
    ET.SubElement(ramp, "prop", k="stops", v=":".join(
        f"{i / (len(colors) - 1):g};{c}" for i, c in enumerate(colors[1:-1], start=1)))
    for (value, label), color in zip(stops, colors, strict=True):
        ET.SubElement(shader, "item", alpha="255", value=repr(float(value)), label=label, color=color)
    return r


def _multiband(spec: P.ProductSpec, rgb: tuple[str, str, str], lo: float, hi: float) -> ET.Element:
    idx = [spec.bands.index(b) + 1 for b in rgb]
    r = ET.Element("rasterrenderer", type="multibandcolor", opacity="1", alphaBand="-1", nodataColor="",
                   redBand=str(idx[0]), greenBand=str(idx[1]), blueBand=str(idx[2]))
    ET.SubElement(r, "rasterTransparency")
    _min_max_origin(r)
    for channel in ("red", "green", "blue"):
        ce = ET.SubElement(r, f"{channel}ContrastEnhancement")
        ET.SubElement(ce, "minValue").text = repr(float(lo))
        ET.SubElement(ce, "maxValue").text = repr(float(hi))
        ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"
    return r


# ----------------------------------------------------------------------------- styles of a file
@dataclass(frozen=True)
class LayerStyle:
    """One style of one product file: ``suffix`` "" is the default ``<name>.qml``."""

    suffix: str
    kind: str
    renderer: str
    pipe: ET.Element
    title: str

    def qml(self) -> str:
        root = _qgis_root()
        root.append(self.pipe)
        ET.SubElement(root, "blendMode").text = "0"
        ET.indent(root)
        return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"


#: :func:`_percentiles` by (file, size, modification time, bands, q, max_size): a run's styles
#: (:func:`write_file_styles`) and its project (:func:`write_project`) need the same ranges of
#: the same files; reading them once halves the QGIS files' CPU (issue 14).
_RANGES: dict = {}


def _percentiles(path: Path, bands: list[int], q=(2.0, 98.0), max_size: int = 1024) -> tuple[float, float] | None:
    """(low, high) percentiles of the physical values of ``bands`` (1-based) pooled; None if
    no pixel is valid. From a decimated read (the COG's overviews) of at most ``max_size`` px."""
    try:
        st = os.stat(path)
        key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, tuple(bands), tuple(q), max_size)
    except OSError:  # not a local file: not cached
        return _percentiles_of(path, bands, q, max_size)
    if key not in _RANGES:
        if len(_RANGES) > 4096:
            _RANGES.clear()
        _RANGES[key] = _percentiles_of(path, bands, q, max_size)
    return _RANGES[key]


def _percentiles_of(path: Path, bands: list[int], q, max_size: int) -> tuple[float, float] | None:
    import rasterio

    with rasterio.open(path) as src:
        f = max(1.0, max(src.height, src.width) / max_size)
        shape = (len(bands), max(1, int(src.height / f)), max(1, int(src.width / f)))
        data = src.read(bands, out_shape=shape, masked=True).astype("float64")
        scales, offsets = np.array(src.scales)[[b - 1 for b in bands]], np.array(src.offsets)[[b - 1 for b in bands]]
    phys = data * scales[:, None, None] + offsets[:, None, None]
    v = phys.filled(np.nan).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = np.percentile(v, q)
    return float(lo), float(hi)


def layer_styles(path: str | os.PathLike, spec: P.ProductSpec | None = None) -> list[LayerStyle]:
    """The styles of one product file (the first is its default), from its catalogue record.

    Parameters
    ----------
    path : str or os.PathLike
        A product COG or VRT mosaic.
    spec : ProductSpec, optional
        Its record; default :func:`product_spec_of`.

    Returns
    -------
    list of LayerStyle
        Empty for a raster that is no product.
    """
    path = Path(path)
    spec = spec or product_spec_of(path)
    if spec is None:
        return []
    kind = style_kind(spec)
    if kind == "class":
        return [LayerStyle("", kind, "paletted", _pipe(_paletted(spec)), "classes")]
    if kind == "reflectance" and spec.is_spectral:
        out = []
        for suffix, rgb in RGB_STYLES.items():
            rng = _percentiles(path, [spec.bands.index(b) + 1 for b in rgb]) or (0.0, 0.3)
            title = f"{'true colour' if not suffix else 'SWIR false colour'} {'/'.join(rgb)}, 2-98 %"
            out.append(LayerStyle(suffix, kind, "multibandcolor", _pipe(_multiband(spec, rgb, *rng)), title))
        return out
    if kind == "fraction":
        lo, hi = 0.0, 1.0
    elif kind == "doy":
        lo, hi = 1.0, 366.0
    else:
        rng = _percentiles(path, [1], (0.0, 98.0) if kind in ("count", "days") else (2.0, 98.0)) or (0.0, 1.0)
        lo, hi = rng
        if kind in ("count", "days"):
            lo, hi = 0.0, float(np.ceil(hi))
    return [LayerStyle("", kind, "singlebandpseudocolor", _pipe(_pseudocolor(spec, kind, lo, hi)),
                       f"{kind} {_fmt(lo)}-{_fmt(hi)} {spec.unit}")]


def style_path(path: str | os.PathLike, suffix: str = "") -> Path:
    """``BSF.tif`` -> ``BSF.qml``; with a suffix ``SRC_MEAN.swir.qml``."""
    path = Path(path)
    return path.with_name(f"{path.stem}{'.' + suffix if suffix else ''}.qml")


# ----------------------------------------------------------------------------- a folder
_SKIP_DIRS = {"bands", "tiles", "quicklooks", "items", ".work"}


def _product_files(folder: Path) -> list[Path]:
    """Raster products directly in ``folder``: ``*.tif`` and the tiled layout's ``*.vrt``
    mosaics (a ``.vrt`` wins over a ``.tif`` of the same name), in catalogue order."""
    files: dict[str, Path] = {}
    for p in sorted(folder.glob("*.tif")) + sorted(folder.glob("*.vrt")):
        if ".tmp" not in p.name:
            files[p.stem] = p
    order = {n: i for i, n in enumerate(P.PRODUCTS)}
    return sorted(files.values(), key=lambda p: (order.get(p.stem, len(order)), p.stem))


def _subfolders(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name not in _SKIP_DIRS
            and not d.name.startswith(".") and _product_files(d)]


def write_styles(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Write the styles (``<name>.qml``, ``<name>.<style>.qml``) of every product file in a
    folder and, with ``recursive``, in its period sub-folders; returns the files written
    (replaced if present: they are soilsuite's sidecars)."""
    folder = Path(folder)
    dirs = [folder, *(_subfolders(folder) if recursive else [])]
    return write_file_styles([f for d in dirs for f in _product_files(d)])


def write_file_styles(files) -> list[Path]:
    """Write the styles of the given product files (see :func:`write_styles`); a raster that
    is no product gets none. Returns the ``.qml`` files written."""
    written = []
    for f in files:
        for st in layer_styles(f):
            target = style_path(f, st.suffix)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            tmp.write_text(st.qml(), encoding="utf-8")
            os.replace(tmp, target)
            written.append(target)
    return written


def _group_of(spec: P.ProductSpec) -> str:
    if spec.group == "dsm":
        return "soil maps"
    if spec.is_spectral:
        return "composites"
    return "statistics" if spec.group == "composite" else f"{spec.group} layers"


def _crs_element(parent: ET.Element, wkt: str, authid: str) -> None:
    srs = ET.SubElement(parent, "spatialrefsys", nativeFormat="Wkt")
    ET.SubElement(srs, "wkt").text = wkt
    ET.SubElement(srs, "authid").text = authid


def write_project(folder: str | os.PathLike, *, title: str | None = None,
                  periods: list[str] | None = None) -> Path:
    """Write ``<folder>/soilsuite.qgs``: every product of the folder (and its period
    sub-folders) as a styled layer, grouped; relative paths.

    Groups: ``composites`` (spectral products, true colour), ``statistics`` (counts, BSF,
    MASK...), ``<group> layers`` for optional product groups (temporal, ploughing, erosion),
    ``soil maps`` (DSM layers) and ``per period/<label>`` with the same inside. Spectral
    products also appear in their SWIR style (a second layer, hidden). Only the window's
    composites and MASK are visible at first.

    Parameters
    ----------
    folder : str or os.PathLike
        The product folder.
    title : str, optional
        Project title.
    periods : list of str, optional
        The period sub-folders to include (a run's labels); default every sub-folder holding
        product files.

    Returns
    -------
    Path
        The project file.
    """
    import rasterio

    folder = Path(folder)
    entries: list[tuple[str, str, Path, LayerStyle, bool]] = []  # (group path, name, file, style, visible)
    crs = None
    subs = _subfolders(folder) if periods is None else [folder / p for p in periods if (folder / p).is_dir()]
    for d in [folder, *subs]:
        period = None if d == folder else d.name
        for f in _product_files(d):
            spec = product_spec_of(f)
            if spec is None:
                continue
            if crs is None:
                with rasterio.open(f) as src:
                    crs = src.crs
            group = _group_of(spec)
            gpath = group if period is None else f"per period/{period}/{group}"
            for st in layer_styles(f, spec):
                name = f"{spec.name}{' (' + period + ')' if period else ''}{' SWIR' if st.suffix else ''}"
                visible = period is None and not st.suffix and spec.name in ("SRC_MEAN", "MASK")
                entries.append((gpath, name, f, st, visible))
    rank = {"composites": 0, "statistics": 1, "soil maps": 3}
    entries.sort(key=lambda e: (e[0].startswith("per period/"), e[0].split("/")[2] if e[0].startswith("per period/")
                                else "", rank.get(e[0].rsplit("/", 1)[-1], 2)))
    if not entries:
        from ..errors import InputError

        raise InputError(f"{folder}: no soilsuite product files (*.tif, *.vrt) to put into a QGIS project")

    root = ET.Element("qgis", projectname=title or f"soilsuite {folder.resolve().name}", version=QGIS_VERSION)
    ET.SubElement(root, "title").text = title or f"soilsuite products: {folder.resolve().name}"
    wkt, authid = crs.to_wkt(), (f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else "")
    _crs_element(ET.SubElement(root, "projectCrs"), wkt, authid)
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    groups: dict[str, ET.Element] = {"": tree}
    order_el = ET.Element("custom-order", enabled="0")
    layers_el = ET.Element("projectlayers")

    def group_el(gpath: str) -> ET.Element:
        if gpath not in groups:
            parent, _, name = gpath.rpartition("/")
            g = ET.SubElement(group_el(parent), "layer-tree-group", name=name, checked="Qt::Checked",
                              expanded="1" if not parent else "0")
            ET.SubElement(g, "customproperties")
            groups[gpath] = g
        return groups[gpath]

    for gpath, name, f, st, visible in entries:
        lid = f"{re.sub(r'[^0-9A-Za-z]+', '_', name)}_{uuid.uuid5(uuid.NAMESPACE_URL, str(f) + st.suffix).hex}"
        src = "./" + os.path.relpath(f, folder).replace(os.sep, "/")
        ET.SubElement(group_el(gpath), "layer-tree-layer", id=lid, name=name, source=src, providerKey="gdal",
                      checked="Qt::Checked" if visible else "Qt::Unchecked", expanded="0", legend_exp="")
        ET.SubElement(order_el, "item").text = lid
        ml = ET.SubElement(layers_el, "maplayer", type="raster", hasScaleBasedVisibilityFlag="0",
                           styleCategories="AllStyleCategories", autoRefreshEnabled="0", refreshOnNotifyEnabled="0")
        ET.SubElement(ml, "id").text = lid
        ET.SubElement(ml, "datasource").text = src
        ET.SubElement(ml, "layername").text = name
        ET.SubElement(ml, "abstract").text = f"{st.title}; {f.name}"
        with rasterio.open(f) as s:
            b = s.bounds
            lwkt, lauth = s.crs.to_wkt(), (f"EPSG:{s.crs.to_epsg()}" if s.crs.to_epsg() else "")
        ext = ET.SubElement(ml, "extent")
        for tag, v in (("xmin", b.left), ("ymin", b.bottom), ("xmax", b.right), ("ymax", b.top)):
            ET.SubElement(ext, tag).text = repr(float(v))
        _crs_element(ET.SubElement(ml, "srs"), lwkt, lauth)
        ET.SubElement(ml, "provider").text = "gdal"
        ml.append(st.pipe)
        ET.SubElement(ml, "blendMode").text = "0"
    tree.append(order_el)
    root.append(layers_el)
    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    ET.indent(root)
    target = folder / PROJECT_FILE
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
                   + ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def update_folder(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Styles and project of an existing folder (``soilsuite qgis OUT_DIR``), safely.

    A style or project that soilsuite wrote (listed, unchanged, in the folder's manifest) or that
    does not exist is (re)written and recorded in the manifest; a file you wrote or changed is
    left alone.

    Returns
    -------
    (list of Path, list of Path)
        Files written, files left alone.
    """
    from ..errors import OutputExistsError
    from .manifest import OutputFolder

    folder = Path(folder)
    m = OutputFolder(folder, "composite").read()
    out = OutputFolder(folder, m["kind"] if m else "qgis")
    dirs = [folder, *_subfolders(folder)]
    files = [f for d in dirs for f in _product_files(d)]
    written, skipped = [], []

    def free(target: Path) -> bool:
        if not target.exists():
            return True
        if m is None:
            return False
        try:
            out.claim([target], overwrite=True)
            return True
        except OutputExistsError:
            return False

    with out.lock():
        for f in files:
            for st in layer_styles(f):
                target = style_path(f, st.suffix)
                if not free(target):
                    skipped.append(target)
                    continue
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                tmp.write_text(st.qml(), encoding="utf-8")
                os.replace(tmp, target)
                written.append(target)
        if free(folder / PROJECT_FILE):
            written.append(write_project(folder))
        else:
            skipped.append(folder / PROJECT_FILE)
        if m is not None:
            out.record(written)
    return written, skipped
