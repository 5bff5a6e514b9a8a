"""Find the product files of an output folder (window and periods), or take a list of COGs.

The commands that work on finished products (``soilsuite parcels``, ``soilsuite export``,
``soilsuite plot-years``) accept either a composite output folder or product files, and must
work on any product of the catalogue (:data:`soilsuite.products.PRODUCTS`), including products
registered after they were written. This module is the one place that turns that input into
a list of :class:`ProductFile` records.

A folder's periods are read from its STAC Items (property ``soilsuite:period``, written by
:func:`soilsuite.io.stac.write_output_catalog`); without a STAC catalogue, every sub-folder
(:func:`soilsuite.io.layout.label_dir`) holding product files is a period. The files of a label
are ``<NAME>.tif`` (or the ``.vrt`` mosaic of the tiled layout), :func:`product_files`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import products as P
from ..errors import InputError
from . import layout as L
from .products import product_files

__all__ = ["ProductFile", "catalogue_spec", "collect_products", "file_spec", "spec_from_file"]


@dataclass(frozen=True)
class ProductFile:
    """One product file: its product facts, its period label and its path.

    ``label`` is ``"window"`` for the whole time window, else the period label (``"2021"``,
    or any label of the run's periods); ``spec`` comes from the product catalogue (or from
    the file's own metadata for a file the catalogue does not know, :func:`spec_from_file`).
    """

    name: str
    label: str
    path: Path
    spec: P.ProductSpec

    @property
    def key(self) -> str:
        """``NAME`` for the window, ``NAME_<label>`` for a period (column and variable prefix)."""
        return self.name if self.label == L.WINDOW else f"{self.name}_{self.label}"


#: Soil-map layer names without tags (``<target>_<layer>``): the viewer's guess from a file name
_DSM_NAME = re.compile(r"(.+?)_(mean|q\d+|uncertainty|di|aoa|outside_range)")


def catalogue_spec(path: str | os.PathLike, tags: Mapping[str, str] | None = None, *, soil_maps: bool = True,
                   by_name: bool = False) -> P.ProductSpec | None:
    """The catalogue record of a product file, or None for a raster soilsuite does not describe.

    The one place that matches a file to the catalogue (QGIS styles, the viewer, the commands
    on finished products): its ``PRODUCT`` tag (or file stem) in :data:`soilsuite.products.PRODUCTS`;
    with ``soil_maps``, a soil-map layer from its ``layer``/``target`` tags
    (:func:`soilsuite.dsm.products.layer_spec`) or a stock map (stem ``*_stock`` or unit kg/m2);
    with ``by_name`` also an untagged soil-map layer by its file name (``soc_mean``, ``soc_q05``,
    ``ocstk...``).

    Parameters
    ----------
    path : str or os.PathLike
        The product file (COG or VRT).
    tags : mapping, optional
        Its dataset tags if already read (else the file is opened).
    """
    path = Path(path)
    if tags is None:
        import rasterio

        with rasterio.open(path) as src:
            tags = src.tags()
    name = tags.get("PRODUCT") or path.stem
    if name.upper() in P.PRODUCTS:
        return P.get(name)
    if not soil_maps:
        return None
    from ..dsm.products import DSM_LAYERS, layer_spec, stock_spec

    unit = tags.get("unit", tags.get("UNIT", ""))
    layer, target = tags.get("layer"), tags.get("target")
    if layer and target:
        m = re.fullmatch(r"q(\d+)", layer)
        if m:
            return layer_spec(layer, target, unit, int(m.group(1)) / 100)
        if layer in DSM_LAYERS:
            return layer_spec(layer, target, unit)
    if path.stem.endswith("_stock") or tags.get("UNIT") == "kg/m2":
        return stock_spec(float(tags.get("depth_m", 0) or 0))
    if by_name:
        m = _DSM_NAME.fullmatch(path.stem)
        if m:
            q = re.fullmatch(r"q(\d+)", m.group(2))
            return layer_spec(m.group(2), m.group(1), unit, int(q.group(1)) / 100 if q else None)
        if path.stem == "stock" or path.stem.startswith(("ocstk", "icstk", "nistk")):
            return stock_spec(float(tags.get("depth_m", 0) or 0))
    return None


def file_spec(src, path: str | os.PathLike, tags: Mapping[str, str]) -> P.ProductSpec:
    """A record made from an open file's own metadata (dtype, nodata, scale/offset, unit and
    band descriptions as GDAL reads them), for a file the catalogue does not know; group
    ``"external"``."""
    path = Path(path)
    nodata = src.nodata
    dtype = src.dtypes[0]
    return P.ProductSpec(
        name=path.stem, dtype=dtype,
        nodata=float("nan") if nodata is None and np.dtype(dtype).kind == "f" else (
            float(nodata) if nodata is not None else float("nan")),
        scale=float(src.scales[0] or 1.0), offset=float(src.offsets[0] or 0.0),
        unit=(src.units[0] if src.units and src.units[0] else tags.get("UNIT", "")),
        description=tags.get("DESCRIPTION", f"{path.name} (not in the soilsuite product catalogue)"),
        bands=tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions)) if src.count > 1
        else ("value",),
        group="external",
    )


def spec_from_file(path: str | os.PathLike) -> P.ProductSpec:
    """The catalogue entry of a product file (its ``PRODUCT`` tag or file stem); for a file the
    catalogue does not know, a spec made from the file's own metadata (:func:`file_spec`)."""
    import rasterio

    path = Path(path)
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            return catalogue_spec(path, tags, soil_maps=False) or file_spec(src, path, tags)
    except rasterio.errors.RasterioError as exc:
        raise InputError(f"cannot open product file {path}: {exc}") from None


def _stac_labels(out: Path) -> list[str]:
    """Period labels of a folder's STAC Items (``soilsuite:period``), window first; [] if none."""
    items = sorted((out / "items").glob("*.json"))
    labels: list[str] = []
    for p in items:
        try:
            label = json.loads(p.read_text(encoding="utf-8")).get("properties", {}).get("soilsuite:period")
        except (OSError, ValueError):
            continue
        if isinstance(label, str) and label not in labels:
            labels.append(label)
    return sorted(labels, key=lambda s: (s != L.WINDOW, s))


def _folder_labels(out: Path) -> list[str]:
    """Labels of a folder without STAC: the window (if it has product files) and every
    sub-folder holding product files."""
    skip = {L.WORK_DIR, "items", "quicklooks", L.OUTPUT_TILES_DIR}
    labels = [L.WINDOW] if product_files(out) else []
    for d in sorted(out.iterdir()):
        if d.is_dir() and d.name not in skip and not d.name.startswith(".") and product_files(d):
            labels.append(d.name)
    return labels


def collect_products(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    products: Sequence[str] | None = None,
    periods: Sequence[str] | None = None,
) -> list[ProductFile]:
    """The product files to work on.

    Parameters
    ----------
    inputs : path or list of paths
        A composite output folder (the window's products and every period's, found through
        the folder's STAC Items or its sub-folders), or product files (COG/GeoTIFF/VRT; a
        file in a period sub-folder of an output folder gets that period's label).
    products : list of str, optional
        Product names to keep (case-insensitive); default all found.
    periods : list of str, optional
        Labels to keep (``window``, ``2021``...); default all found.

    Returns
    -------
    list of ProductFile
        In label order (window first), then catalogue order.

    Raises
    ------
    InputError
        A path does not exist, the folder holds no product, or a product or period asked for
        is not there (the message lists what is).
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise InputError("no products given: pass an output folder or product files")
    found: list[ProductFile] = []
    for p in paths:
        if not p.exists():
            raise InputError(f"products: {p} does not exist")
        if p.is_dir():
            labels = _stac_labels(p) or _folder_labels(p)
            for label in labels:
                for name, f in product_files(L.label_dir(p, label)).items():
                    found.append(ProductFile(name, label, f, P.get(name)))
            if not labels:
                raise InputError(f"no product files (<NAME>.tif or .vrt for NAME in {', '.join(P.PRODUCTS)}) in {p} "
                                 "or its period sub-folders")
        else:
            spec = spec_from_file(p)
            parent = p.parent
            run_folder = (parent.parent / "collection.json").exists() or (parent.parent / L.RUN_RECORD).exists()
            label = parent.name if run_folder and not (parent / "collection.json").exists() else L.WINDOW
            found.append(ProductFile(spec.name, label, p, spec))
    seen: dict[tuple[str, str], Path] = {}
    for f in found:
        if (f.name, f.label) in seen and seen[(f.name, f.label)] != f.path:
            raise InputError(f"products: {f.path} and {seen[(f.name, f.label)]} are both {f.name} of "
                             f"'{f.label}'; give one of them")
        seen[(f.name, f.label)] = f.path
    if products:
        want = [n.upper() for n in products]
        have = sorted({f.name for f in found})
        missing = [n for n in want if n not in have]
        if missing:
            raise InputError(f"products: {', '.join(missing)} not found; there are: {', '.join(have)}")
        found = [f for f in found if f.name in want]
    if periods:
        have_l = list(dict.fromkeys(f.label for f in found))
        missing = [q for q in periods if q not in have_l]
        if missing:
            raise InputError(f"periods: {', '.join(missing)} not found; there are: {', '.join(have_l)}")
        found = [f for f in found if f.label in periods]
    order = {n: i for i, n in enumerate(P.PRODUCTS)}
    labels = list(dict.fromkeys(f.label for f in found))
    return sorted(found, key=lambda f: (labels.index(f.label), order.get(f.name, len(order)), f.name))
