"""Open a soilsuite QGIS project with QGIS's own Python and render every layer (tests/test_qgis.py).

Run with the system Python that has QGIS (``/usr/bin/python3``, Debian's ``python3-qgis``) and
``QT_QPA_PLATFORM=offscreen``::

    python3 tests/qgis_render.py PROJECT.qgs OUT_DIR

Prints one JSON document: whether the project was read and, per layer of its layer tree, the
group path, validity, renderer type, raster size, the legend (value, colour, label) and the PNG
rendered at the raster's own resolution (image pixel = raster pixel, transparent background);
and for each ``*.qml`` beside the layers' files whether QGIS loads it and the renderer it makes.
Not a soilsuite module: it must not import soilsuite (QGIS's Python does not have it).
"""

import json
import os
import re
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def legend(renderer):
    kind = renderer.type()
    if kind == "paletted":
        return [[c.value, c.color.name(QColor.HexArgb), c.label] for c in renderer.classes()]
    if kind == "singlebandpseudocolor":
        fn = renderer.shader().rasterShaderFunction()
        return [[i.value, i.color.name(QColor.HexArgb), i.label] for i in fn.colorRampItemList()]
    if kind == "multibandcolor":
        out = []
        for band, ce in ((renderer.redBand(), renderer.redContrastEnhancement()),
                         (renderer.greenBand(), renderer.greenContrastEnhancement()),
                         (renderer.blueBand(), renderer.blueContrastEnhancement())):
            out.append([band, ce.minimumValue(), ce.maximumValue()])
        return out
    return []


def render(layer, png):
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setOutputSize(QSize(layer.width(), layer.height()))
    settings.setExtent(layer.extent())
    settings.setBackgroundColor(QColor(255, 255, 255, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    return bool(job.renderedImage().save(str(png), "PNG"))


def main(project_path, out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    res = {"read": bool(project.read(str(project_path))), "qgis": app.version() if hasattr(app, "version") else "",
           "layers": [], "styles": []}
    files = set()
    for node in project.layerTreeRoot().findLayers():
        layer = node.layer()
        groups, p = [], node.parent()
        while p is not None and p.parent() is not None:
            groups.insert(0, p.name())
            p = p.parent()
        png = out / (re.sub(r"[^0-9A-Za-z]+", "_", layer.name()).strip("_") + ".png")
        info = {"name": layer.name(), "group": "/".join(groups), "valid": layer.isValid(),
                "source": layer.source(), "visible": node.isVisible()}
        if layer.isValid():
            files.add(layer.source())
            info.update(renderer=layer.renderer().type(), width=layer.width(), height=layer.height(),
                        legend=legend(layer.renderer()), png=str(png) if render(layer, png) else None)
        res["layers"].append(info)
    for src in sorted(files):
        stem = Path(src).with_suffix("")
        for qml in sorted(Path(src).parent.glob(stem.name + "*.qml")):
            if qml.name.split(".")[0] != stem.name:
                continue
            layer = QgsRasterLayer(src, qml.stem)
            msg, ok = layer.loadNamedStyle(str(qml))
            res["styles"].append({"qml": str(qml), "ok": bool(ok), "message": msg,
                                  "renderer": layer.renderer().type() if layer.renderer() else None})
    print(json.dumps(res))
    sys.stdout.flush()
    os._exit(0)  # QGIS 3.22 can abort in its exit handlers ("double free"); the result is out


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main(*sys.argv[1:3])
