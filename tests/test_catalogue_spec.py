"""One place matches a file to the product catalogue (``soilsuite.io.collect.catalogue_spec``):
the QGIS styles, the viewer and the commands on finished products agree on what a file is."""

from __future__ import annotations

import math

import numpy as np
import pytest
from odc.geo.geobox import GeoBox

from soilsuite import products as P
from soilsuite.dsm.products import layer_spec
from soilsuite.io.cog import write_cog
from soilsuite.io.collect import catalogue_spec, spec_from_file
from soilsuite.io.qgis import product_spec_of, style_kind
from soilsuite.viewer import discover_layers


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import rasterio

    out = tmp_path_factory.mktemp("catalogue_spec")
    gb = GeoBox.from_bbox((400_000, 5_799_040, 400_640, 5_799_680), crs="EPSG:32633", resolution=20)
    write_cog(out / "BSF.tif", np.full(gb.shape, 0.5, "float32"), P.get("BSF"), geobox=gb)
    soil = layer_spec("q05", "soc", "g/kg", 0.05)
    write_cog(out / "soc_q05.tif", np.full(gb.shape, 12.0, "float32"), soil, geobox=gb,
              tags={"layer": "q05", "target": "soc", "unit": "g/kg"})
    # files without soilsuite's tags: another tool's raster, and a soil map renamed by hand
    for name, unit in (("wetness", "mm"), ("clay_uncertainty", "1")):
        with rasterio.open(out / f"{name}.tif", "w", driver="GTiff", width=32, height=32, count=1, dtype="int16",
                           nodata=-1, crs="EPSG:32633", transform=gb.affine) as dst:
            dst.write(np.arange(32 * 32, dtype="int16").reshape(1, 32, 32))
            dst.units = (unit,)
            dst.scales = (0.5,)
    return out


def test_catalogue_products_and_soil_maps(files):
    assert catalogue_spec(files / "BSF.tif") is P.get("BSF") is spec_from_file(files / "BSF.tif")
    soil = catalogue_spec(files / "soc_q05.tif")
    assert (soil.name, soil.unit, soil.description, soil.group) == ("soc_q05", "g/kg", "soc quantile 0.05 [g/kg]", "dsm")
    assert product_spec_of(files / "soc_q05.tif") == soil and style_kind(soil) == "soil"
    # the commands on finished products take a soil map as a file with its own metadata (as before)
    ext = spec_from_file(files / "soc_q05.tif")
    assert (ext.name, ext.group, ext.unit) == ("soc_q05", "external", "g/kg")


def test_unknown_files(files):
    assert catalogue_spec(files / "wetness.tif") is None and product_spec_of(files / "wetness.tif") is None
    ext = spec_from_file(files / "wetness.tif")
    assert (ext.dtype, ext.nodata, ext.scale, ext.offset, ext.unit, ext.group) == ("int16", -1.0, 0.5, 0.0, "mm",
                                                                                 "external")
    assert style_kind(ext) == "continuous"
    # an untagged soil-map layer: unknown to QGIS styles, guessed by its name for the viewer
    assert catalogue_spec(files / "clay_uncertainty.tif") is None
    guess = catalogue_spec(files / "clay_uncertainty.tif", by_name=True)
    assert guess.name == "clay_uncertainty" and style_kind(guess) == "uncertainty"


def test_viewer_uses_the_same_records(files):
    lay = {x.id: x for x in discover_layers(files)}
    assert lay["BSF"].kind == "fraction" and lay["BSF"].constant == 0.5
    assert lay["soc_q05"].kind == "soil" and lay["soc_q05"].description == "soc quantile 0.05 [g/kg]"
    assert lay["clay_uncertainty"].kind == "uncertainty"
    w = lay["wetness"]
    assert (w.kind, w.unit, w.scale, w.nodata) == ("value", "mm", 0.5, -1.0)
    assert math.isclose(w.vmin, np.percentile(np.arange(1024) * 0.5, 2))  # physical = stored (0..1023) x 0.5
