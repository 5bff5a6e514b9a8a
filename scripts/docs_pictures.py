"""Pictures of the docs site: one PNG per product of a product folder, drawn as the viewer draws it.

    .venv/bin/python scripts/docs_pictures.py demo_out docs/img/products

Each product file of the folder (window products, soil maps; not the per-year copies) becomes
``<out>/<name>.png``: the viewer's stretch and colour ramp (or class colours, or true colour),
a colour bar or class legend with the unit, axes in the file's CRS (km) and "white: nodata".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def draw(layer, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import rasterio
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    with rasterio.open(layer.path) as src:
        idx = layer.rgb or [1]
        data = layer.decode(src.read(idx))
        b = src.bounds
        crs = src.crs.to_string()
    extent = [b.left / 1000, b.right / 1000, b.bottom / 1000, b.top / 1000]
    fig = Figure(figsize=(5.2, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    if layer.kind == "rgb":
        rgb = np.clip((data - layer.vmin) / (layer.vmax - layer.vmin), 0, 1)
        alpha = np.all(np.isfinite(data), axis=0).astype(float)
        img = np.dstack([np.nan_to_num(rgb[i]) for i in range(3)] + [alpha])
        ax.imshow(img, extent=extent, interpolation="nearest")
        ax.set_title(f"{layer.name}: B04/B03/B02, reflectance {layer.vmin:.2f}-{layer.vmax:.2f}", fontsize=9,
                     loc="left")
    elif layer.kind == "classes":
        vals = sorted(layer.classes)
        cmap = ListedColormap([layer.classes[v][1] for v in vals])
        lut = {v: i for i, v in enumerate(vals)}
        arr = np.full(data[0].shape, np.nan)
        for v, i in lut.items():
            arr[data[0] == v] = i
        ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, vmin=-0.5, vmax=len(vals) - 0.5, extent=extent,
                  interpolation="nearest")
        ax.legend(handles=[Patch(color=layer.classes[v][1], label=f"{v}: {layer.classes[v][0].split(' (')[0]}") for v in vals],
                  fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=1, frameon=False)
        ax.set_title(f"{layer.name} ({layer.unit})", fontsize=9, loc="left")
    else:
        im = ax.imshow(np.ma.masked_invalid(data[0]), cmap=_mpl_ramp(layer.ramp), vmin=layer.vmin, vmax=layer.vmax,
                       extent=extent, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        cb.set_label(layer.unit, fontsize=8)
        cb.formatter.set_useOffset(False)
        ax.set_title(layer.name, fontsize=9, loc="left")
    ax.set_xlabel(f"easting (km, {crs}); white: nodata", fontsize=8)
    ax.set_ylabel(f"northing (km, {crs})", fontsize=8)
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    fig.savefig(out_png)


def _mpl_ramp(name: str) -> str:
    return {"ylorbr": "YlOrBr", "ylgnbu": "YlGnBu"}.get(name, name)


def main() -> None:
    from soilsuite.viewer import discover_layers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="a product folder (e.g. demo_out)")
    ap.add_argument("out", type=Path, help="folder of the PNGs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for layer in discover_layers(args.folder):
        if layer.group.isdigit() or "/20" in f"/{layer.group}":  # per-period copies: one picture per product
            continue
        png = args.out / f"{layer.name}.png"
        draw(layer, png)
        print(png)


if __name__ == "__main__":
    main()
