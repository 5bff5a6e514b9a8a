"""QGIS styles and projects, opened and rendered by QGIS itself (Debian's ``python3-qgis``).

The renders run ``tests/qgis_render.py`` with the system Python (``/usr/bin/python3``, which has
QGIS's bindings; the venv does not) and ``QT_QPA_PLATFORM=offscreen``; each layer is drawn at
its raster's own resolution, so image pixel (row, col) is raster pixel (row, col), and its
colours are checked against the product values: MASK classes, BSF and VPC on their colour ramp,
SRC_MEAN true colour (B04/B03/B02) and SWIR false colour (B12/B8A/B04) from the stretch.
Skipped, with the reason, where QGIS is not importable. Set ``SOILSUITE_QGIS_RENDERS`` to keep
the PNGs (default: the test's tmp folder).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox

from soilsuite import products as P
from soilsuite.io import cog
from soilsuite.io import qgis as Q

QGIS_PYTHON = Path("/usr/bin/python3")
SCRIPT = Path(__file__).with_name("qgis_render.py")


def _qgis_reason() -> str | None:
    if not QGIS_PYTHON.exists():
        return f"{QGIS_PYTHON} not found (QGIS's Python: apt-get install python3-qgis qgis-providers)"
    r = subprocess.run([str(QGIS_PYTHON), "-c", "import qgis.core"], capture_output=True, text=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=60)
    if r.returncode:
        return ("QGIS is not importable by /usr/bin/python3 (Debian: apt-get install --no-install-recommends "
                f"python3-qgis qgis-providers; .ci/run does it as root): {r.stderr.strip().splitlines()[-1:]}")
    return None


needs_qgis = pytest.mark.skipif(bool(reason := _qgis_reason()), reason=reason or "")


def _render(project: Path, out: Path) -> dict:
    r = subprocess.run([str(QGIS_PYTHON), str(SCRIPT), str(project), str(out)], capture_output=True, text=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=300)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _renders_dir(tmp_path: Path, name: str) -> Path:
    base = os.environ.get("SOILSUITE_QGIS_RENDERS")
    return Path(base) / name if base else tmp_path / name


def _png(path: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGBA")).astype(int)


def _hex(c: str) -> np.ndarray:  # "#aarrggbb" (QColor.HexArgb) or "#rrggbb" -> [r, g, b, a]
    c = c.lstrip("#")
    if len(c) == 8:
        return np.array([int(c[2:4], 16), int(c[4:6], 16), int(c[6:8], 16), int(c[0:2], 16)])
    return np.array([int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255])


def _ramp(legend: list, v: np.ndarray) -> np.ndarray:
    """QGIS's INTERPOLATED colour ramp: linear in RGB between the legend's items."""
    values = np.array([i[0] for i in legend], float)
    cols = np.array([_hex(i[1])[:3] for i in legend], float)
    return np.stack([np.interp(v, values, cols[:, k]) for k in range(3)], -1)


def _layers(res: dict) -> dict:
    return {(lay["group"], lay["name"]): lay for lay in res["layers"]}


# ----------------------------------------------------------------------------- without QGIS
def test_style_kind_of_every_product_and_a_new_one():
    kinds = {n: Q.style_kind(s) for n, s in P.PRODUCTS.items()}
    assert kinds["MASK"] == "class" and kinds["SRC_MEAN"] == kinds["MREF_STD"] == "reflectance"
    assert kinds["BSF"] == "fraction" and kinds["VPC"] == kinds["BSC"] == "count"
    assert "continuous" not in {kinds[n] for n in P.SCMAP_PRODUCTS}
    later = {"FIRST_BARE_DOY": "doy", "LONGEST_BARE_SPELL": "days", "BARE_EPISODES": "count", "PLOUGHED": "class",
             "C_FACTOR": "fraction", "BSF_MONTHLY": "fraction"}  # the optional layers (issue 15), by unit
    assert all(kinds[n] == k for n, k in later.items() if n in kinds)
    from soilsuite.dsm.products import layer_spec

    assert Q.style_kind(layer_spec("mean", "soc", "g/kg")) == "soil"
    assert Q.style_kind(layer_spec("q05", "soc", "g/kg", 0.05)) == "soil"
    assert Q.style_kind(layer_spec("uncertainty", "soc", "g/kg")) == "uncertainty"
    assert Q.style_kind(layer_spec("aoa", "soc", "g/kg")) == "class"
    # a product registered later (by unit and classes, no change in io/qgis.py)
    new = P.ProductSpec("LAST_BARE_DOY_X", "uint16", 0, 1.0, 0.0, "day of year (1-366)", "latest bare day")
    assert Q.style_kind(new) == "doy"
    assert Q.style_kind(dataclasses.replace(new, unit="count")) == "count"
    assert Q.style_kind(dataclasses.replace(new, unit="days")) == "days"
    assert Q.style_kind(dataclasses.replace(new, classes={1: "yes", 2: "no"})) == "class"


def test_run_writes_styles_and_project(sim_products):
    for d in (sim_products, sim_products / "2021"):
        for name in P.SCMAP_PRODUCTS:
            assert (d / f"{name}.qml").is_file(), d / f"{name}.qml"
        assert (d / "SRC_MEAN.swir.qml").is_file()
    qml = (sim_products / "SRC_MEAN.qml").read_text()
    assert 'type="multibandcolor"' in qml and 'redBand="3" greenBand="2" blueBand="1"' in qml
    assert 'redBand="10" greenBand="8" blueBand="3"' in (sim_products / "SRC_MEAN.swir.qml").read_text()
    assert 'label="100 %"' in (sim_products / "BSF.qml").read_text()
    qgs = (sim_products / "soilsuite.qgs").read_text()
    assert "<datasource>./2021/BSF.tif</datasource>" in qgs and 'name="per period"' in qgs
    from soilsuite.io.manifest import OutputFolder

    listed = OutputFolder(sim_products, "composite").read()["files"]
    assert {"soilsuite.qgs", "BSF.qml", "SRC_MEAN.swir.qml", "2021/MASK.qml"} <= set(listed)


# ----------------------------------------------------------------------------- with QGIS
@needs_qgis
def test_qgis_renders_the_composite_project(sim_products, tmp_path):
    res = _render(sim_products / "soilsuite.qgs", _renders_dir(tmp_path, "composite"))
    assert res["read"]
    layers = _layers(res)
    n_styles = sum(len(Q.layer_styles(f)) for f in sim_products.glob("*.tif"))
    assert len(res["layers"]) == 3 * n_styles  # the window, 2021, 2022
    assert all(lay["valid"] and lay["png"] for lay in res["layers"]), [lay for lay in res["layers"] if not lay["valid"]]
    assert [g for g, _ in layers][0] == "composites"
    assert {g for g, _ in layers} == {"composites", "statistics", "per period/2021/composites",
                                      "per period/2021/statistics", "per period/2022/composites",
                                      "per period/2022/statistics"}
    assert all(s["ok"] for s in res["styles"]) and len(res["styles"]) == len(res["layers"])
    expect = {"MASK": "paletted", "BSF": "singlebandpseudocolor", "VPC": "singlebandpseudocolor",
              "BSC": "singlebandpseudocolor", "SRC_MEAN": "multibandcolor", "SRC_MEAN SWIR": "multibandcolor",
              "MREF_STD": "multibandcolor"}
    for name, kind in expect.items():
        group = "composites" if name.startswith(("SRC", "MREF")) else "statistics"
        assert layers[(group, name)]["renderer"] == kind, name

    def stored(name, folder=sim_products):
        with rasterio.open(folder / f"{name}.tif") as src:
            return src.read()

    # MASK: the catalogue's class colours; class 0 (nodata) transparent
    img, mask = _png(layers[("statistics", "MASK")]["png"]), stored("MASK")[0]
    for value, color in P.MASK_COLORS.items():
        if (mask == value).any():
            got = img[mask == value]
            assert (got[:, 3] == 0).all() if value == 0 else (got == _hex(color)).all(), value
    # BSF on its ramp (0-1); NaN transparent
    lay = layers[("statistics", "BSF")]
    img, bsf = _png(lay["png"]), stored("BSF")[0]
    ok = np.isfinite(bsf)
    assert [i[0] for i in lay["legend"]] == [0, 0.25, 0.5, 0.75, 1] and lay["legend"][-1][2] == "100 %"
    assert np.abs(img[ok][:, :3] - _ramp(lay["legend"], bsf[ok])).max() <= 2
    assert (img[ok][:, 3] == 255).all() and (img[~ok][:, 3] == 0).all()
    # VPC per period: 0 .. its own 98 % percentile
    lay = layers[("per period/2021/statistics", "VPC (2021)")]
    img, vpc = _png(lay["png"]), stored("VPC", sim_products / "2021")[0].astype(float)
    ok = vpc > 0
    assert lay["legend"][0][0] == 0 and lay["legend"][-1][0] >= np.percentile(vpc[ok], 98)
    assert np.abs(img[ok][:, :3] - _ramp(lay["legend"], vpc[ok])).max() <= 2
    # SRC_MEAN true colour and SWIR false colour: one 2-98 % stretch of the three bands
    src = stored("SRC_MEAN").astype(float)
    valid = (src != -9999).all(axis=0)
    for name, bands in (("SRC_MEAN", ("B04", "B03", "B02")), ("SRC_MEAN SWIR", ("B12", "B8A", "B04"))):
        lay = layers[("composites", name)]
        idx = [P.get("SRC_MEAN").bands.index(b) for b in bands]
        assert [b for b, _, _ in lay["legend"]] == [i + 1 for i in idx]  # B04 in the red channel
        lo, hi = lay["legend"][0][1], lay["legend"][0][2]
        refl = src[idx][:, valid] * 1e-4
        assert lo == pytest.approx(np.percentile(refl, 2), abs=0.01) and hi == pytest.approx(np.percentile(refl, 98),
                                                                                               abs=0.01)
        want = np.clip((refl - lo) / (hi - lo) * 255, 0, 255).T
        img = _png(lay["png"])
        assert np.abs(img[valid][:, :3] - want).max() <= 2, name
        assert (img[~valid][:, 3] == 0).all()
    rgb = _png(layers[("composites", "SRC_MEAN")]["png"])[valid][:, :3]
    assert (rgb[:, 0] > rgb[:, 2]).mean() > 0.9  # bare soil is redder than blue: R and B not swapped


@needs_qgis
def test_qgis_renders_soil_maps(tmp_path):
    """Soil-map layers (dsm/products.py) written as predict_map writes them: styled by kind."""
    from soilsuite.dsm.products import layer_spec

    maps = tmp_path / "soil"
    maps.mkdir()
    gb = GeoBox((40, 50), rasterio.Affine(20, 0, 400_000, 0, -20, 5_800_000), "EPSG:32633")
    yy, xx = np.mgrid[0:40, 0:50]
    values = {"mean": 5 + 20 * xx / 49.0, "uncertainty": 0.2 + yy / 39.0, "aoa": (xx > 10).astype(np.uint8)}
    for layer, v in values.items():
        spec = layer_spec(layer, "soc", "g/kg")
        v = v.astype(spec.dtype)
        if layer != "aoa":
            v[0, 0] = np.nan
        cog.write_cog(maps / f"soc_{layer}.tif", v, spec, geobox=gb, band_names=[spec.description],
                      tags={"target": "soc", "layer": layer, "unit": spec.unit})
    Q.write_styles(maps)
    Q.write_project(maps)
    res = _render(maps / "soilsuite.qgs", _renders_dir(tmp_path, "soil"))
    layers = _layers(res)
    assert set(layers) == {("soil maps", "soc_mean"), ("soil maps", "soc_uncertainty"), ("soil maps", "soc_aoa")}
    lay = layers[("soil maps", "soc_mean")]
    assert lay["renderer"] == "singlebandpseudocolor" and lay["legend"][-1][2].endswith(" g/kg")
    img = _png(lay["png"])
    ok = np.isfinite(values["mean"]) & ~((yy == 0) & (xx == 0))
    assert np.abs(img[ok][:, :3] - _ramp(lay["legend"], values["mean"].astype("float32")[ok])).max() <= 2
    assert img[0, 0, 3] == 0
    assert layers[("soil maps", "soc_uncertainty")]["renderer"] == "singlebandpseudocolor"
    lay = layers[("soil maps", "soc_aoa")]
    assert lay["renderer"] == "paletted" and [c[2] for c in lay["legend"]][1].startswith("1: inside")
    img = _png(lay["png"])
    assert len({tuple(c) for c in img[values["aoa"] == 1][:, :3]}) == 1
    assert not np.array_equal(img[0, 0], img[0, 20])  # outside and inside differ


def test_qgis_command_rewrites_only_its_own_files(sim_products, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from soilsuite.cli import app
    from soilsuite.io.manifest import OutputFolder

    out = tmp_path / "products"
    shutil.copytree(sim_products, out)
    (out / "BSF.qml").write_text("<qgis>my own BSF style</qgis>")  # changed by hand: kept
    (out / "VPC.qml").unlink()  # gone: written again
    r = CliRunner().invoke(app, ["qgis", str(out)])
    assert r.exit_code == 0, r.output
    assert "1 left alone" in r.output and "BSF.qml" in r.output
    assert (out / "BSF.qml").read_text() == "<qgis>my own BSF style</qgis>"
    assert 'type="singlebandpseudocolor"' in (out / "VPC.qml").read_text()
    s = OutputFolder(out, "composite").survey()
    assert s.changed == ["BSF.qml"] and not s.foreign  # the manifest knows what it rewrote
    r = CliRunner().invoke(app, ["qgis", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "not a folder" in r.output
