"""The viewer's ASGI app (Starlette): the page, the layer list, map tiles from the COGs, pixel values.

Routes
------
``/``                               the map page (Leaflet, shipped in ``static/``)
``/api/layers``                     the folder's layers with stretch and legend (JSON)
``/tiles/{z}/{x}/{y}.png?layer=ID[&style=swir][&band=K]`` a 256 px Web Mercator tile of one layer
                                    (rio-tiler); ``band``: number (1-based) or name of one band
``/api/point?lon=&lat=``            every layer's value at a point, decoded (JSON)
``/api/series?lon=&lat=[&format=png]``  the pixel's PV+IR2 series from the run's archive
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .layers import Layer, discover_layers

STATIC = Path(__file__).parent / "static"
_EMPTY_PNG: bytes | None = None


def _empty_png() -> bytes:
    """A transparent 256 x 256 PNG (tiles outside a layer: a 200 answer keeps the console clean)."""
    global _EMPTY_PNG
    if _EMPTY_PNG is None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buf, format="PNG")
        _EMPTY_PNG = buf.getvalue()
    return _EMPTY_PNG


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def render_tile(layer: Layer, z: int, x: int, y: int, style: str | None = None, band: int | None = None) -> bytes:
    """A PNG tile of one layer: stretch and colour ramp, true colour (or another band
    combination of ``layer.styles``, e.g. ``"swir"``), or class colours.

    ``band`` (1-based, see :meth:`Layer.band_index`) draws that band of a multi-band layer
    with its own stretch (``layer.band_stretch``); default band 1 (or the RGB bands)."""
    from rio_tiler.colormap import cmap
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with Reader(layer.path) as src:
            if not src.tile_exists(x, y, z):
                return _empty_png()
            try:
                alt = None if band is not None else layer.styles.get(style or "")
                indexes = [band] if band is not None else alt["bands"] if alt else (layer.rgb or [1])
                img = src.tile(x, y, z, indexes=indexes, resampling_method="nearest")
            except TileOutsideBounds:
                return _empty_png()
        if layer.kind == "classes":
            colors = {int(k): (*_hex(v[1]), 255) for k, v in layer.classes.items()}
            return img.render(img_format="PNG", colormap=colors)
        st = alt or layer.stretch(band)
        vmin, vmax = st["vmin"], st["vmax"]
        lo = (vmin - layer.offset) / layer.scale
        hi = (vmax - layer.offset) / layer.scale
        img = img.rescale(in_range=[(lo, hi)] * img.count)
        if layer.kind == "rgb":
            return img.render(img_format="PNG")
        return img.render(img_format="PNG", colormap=cmap.get(layer.ramp))


def _hex(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def point_values(layers: list[Layer], lon: float, lat: float) -> list[dict[str, Any]]:
    """Every layer's value at a point (lon, lat in degrees): stored and physical per band.

    The pixel is the one of each file's own grid that holds the point (no resampling), read
    with rasterio; physical = stored * scale + offset, None where nodata.
    """
    import rasterio
    from rasterio.warp import transform as warp
    from rasterio.windows import Window

    out = []
    for lay in layers:
        with rasterio.open(lay.path) as src:
            xs, ys = warp("EPSG:4326", src.crs, [lon], [lat])
            row, col = src.index(xs[0], ys[0])
            inside = 0 <= row < src.height and 0 <= col < src.width
            rec: dict[str, Any] = {"id": lay.id, "name": lay.name, "group": lay.group, "unit": lay.unit,
                                   "row": int(row), "col": int(col), "inside": inside}
            if inside:
                stored = src.read(window=Window(col, row, 1, 1))[:, 0, 0]
                phys = lay.decode(stored)
                rec["stored"] = [_finite(float(v)) for v in stored]
                rec["values"] = {b: _finite(float(v)) for b, v in zip(lay.bands, phys, strict=True)}
                if lay.kind == "classes" and rec["stored"][0] is not None:
                    rec["label"] = lay.classes.get(int(stored[0]), ("nodata",))[0]
            out.append(rec)
    return out


def create_app(out_dir: str | os.PathLike):
    """The viewer of one product folder as an ASGI app (Starlette).

    Parameters
    ----------
    out_dir : str or os.PathLike
        A folder of products (composite run, per-year products, soil maps, or any folder of
        georeferenced GeoTIFFs); its layers are found when the app is made
        (:func:`soilsuite.viewer.discover_layers`).

    Returns
    -------
    starlette.applications.Starlette
        Serve it with :func:`soilsuite.viewer.serve`, uvicorn, or test it with
        ``starlette.testclient.TestClient``.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from ..errors import InputError
    from .timeseries import find_source, pixel_series, series_png

    out = Path(out_dir).resolve()
    if not out.is_dir():
        raise InputError(f"viewer: {out} is not a folder")
    layers = discover_layers(out)
    if not layers:
        raise InputError(f"viewer: no georeferenced product file (*.tif, *.vrt) in {out}")
    by_id = {lay.id: lay for lay in layers}
    # the composite run whose archive gives the time series: the folder's own run record, else
    # the first one in a sub-folder holding layers (e.g. demo_out/products of demo_out)
    run_dirs = [d for d in dict.fromkeys([out, *(Path(lay.path).parent for lay in layers)])
                if (d / "run.json").is_file()]
    has_run = bool(run_dirs)
    run_dir = next((d for d in run_dirs if find_source(d) is not None), run_dirs[0] if run_dirs else None)
    source = find_source(run_dir) if run_dir is not None else None

    def _bounds() -> list[float]:
        b = np.array([lay.bounds for lay in layers])
        return [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]

    async def index(request: Request) -> Response:
        html = (STATIC / "index.html").read_text().replace("{{title}}", out.name)
        return HTMLResponse(html)

    async def api_layers(request: Request) -> Response:
        return JSONResponse({"folder": out.name, "bounds": _bounds(), "layers": [lay.public() for lay in layers],
                             "series": source is not None,
                             "series_note": None if source is not None else (
                                 "no run record in this folder" if not has_run else
                                 "the run's archive is not reachable from here")})

    async def tile(request: Request) -> Response:
        lay = by_id.get(request.query_params.get("layer", ""))
        if lay is None:
            return JSONResponse({"error": "unknown layer"}, status_code=404)
        z, x, y = (int(request.path_params[k]) for k in ("z", "x", "y"))
        band = request.query_params.get("band")
        try:
            band = None if band in (None, "") else lay.band_index(band)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        png = await run_in_threadpool(render_tile, lay, z, x, y, request.query_params.get("style"), band)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    def _lonlat(request: Request) -> tuple[float, float] | Response:
        """(lon, lat) in degrees from the query, or the 400 answer saying what is missing."""
        try:
            return float(request.query_params["lon"]), float(request.query_params["lat"])
        except (KeyError, ValueError):
            return JSONResponse({"error": "give lon and lat in degrees"}, status_code=400)

    async def point(request: Request) -> Response:
        if isinstance(ll := _lonlat(request), Response):
            return ll
        lon, lat = ll
        vals = await run_in_threadpool(point_values, layers, lon, lat)
        return JSONResponse({"lon": lon, "lat": lat, "layers": vals})

    def _series(lon: float, lat: float) -> dict[str, Any]:  # cached per pixel in timeseries
        if source is None:
            return {"error": "no time series: " + ("no run record in this folder" if not has_run
                                                   else "the run's archive is not reachable from here")}
        try:
            return pixel_series(run_dir, lon, lat)
        except Exception as exc:  # noqa: BLE001 - any archive problem is shown, not raised
            return {"error": f"time series failed: {type(exc).__name__}: {exc}"}

    async def series(request: Request) -> Response:
        if isinstance(ll := _lonlat(request), Response):
            return ll
        lon, lat = ll
        s = await run_in_threadpool(_series, lon, lat)
        if request.query_params.get("format") == "png":
            png = await run_in_threadpool(series_png, s)
            return Response(png, media_type="image/png")
        return Response(json.dumps(s), media_type="application/json")

    return Starlette(routes=[
        Route("/", index),
        Route("/api/layers", api_layers),
        Route("/api/point", point),
        Route("/api/series", series),
        Route("/tiles/{z:int}/{x:int}/{y:int}.png", tile),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
