"""The composite's fixed costs (issue 14): statistics reused from the mosaic, the quicklooks'
fixed layout, the preflight's CRS comparison cache.

Each cheaper path is checked against what it replaces: the running statistics against numpy
on the whole array and against :func:`soilsuite.io.stac.band_statistics` of the written COG;
the STAC writer takes given statistics instead of reading the file; the quicklook frame keeps
every label inside the picture and the image at its aspect ratio.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from soilsuite import products as P
from soilsuite.io import cog, quicklook, stac
from soilsuite.io.statistics import RunningBandStats

CRS = "EPSG:32633"
TRANSFORM = Affine(20.0, 0.0, 400_000.0, 0.0, -20.0, 5_800_000.0)


def _numpy_stats(arr: np.ndarray, nodata: float) -> list[dict]:
    """The obvious reference: every pixel of each band, nodata (or non-finite) left out."""
    out = []
    for band in arr.reshape(arr.shape[0], -1).astype("float64"):
        ok = np.isfinite(band) if math.isnan(nodata) else (band != nodata) & np.isfinite(band)
        v = band[ok]
        s = {"valid_percent": 100.0 * v.size / band.size}
        if v.size:
            s.update(minimum=v.min(), maximum=v.max(), mean=v.mean(), stddev=v.std())
        out.append(s)
    return out


def _assert_stats_equal(got: list[dict], ref: list[dict]) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert set(g) == set(r)
        assert g["valid_percent"] == pytest.approx(r["valid_percent"], rel=1e-12)
        if "mean" in r:
            assert g["minimum"] == r["minimum"] and g["maximum"] == r["maximum"]
            assert g["mean"] == pytest.approx(r["mean"], rel=1e-12)
            assert g["stddev"] == pytest.approx(r["stddev"], rel=1e-10)


def _blocks(arr: np.ndarray, rows: int, cols: int):
    for r in range(0, arr.shape[-2], rows):
        for c in range(0, arr.shape[-1], cols):
            yield (r, c), arr[..., r:r + rows, c:c + cols]


@pytest.mark.parametrize("name", ["SRC_MEAN", "VPC", "MASK", "BSF"])
def test_running_stats_equal_numpy_and_the_written_file(tmp_path, name):
    spec = P.get(name)
    rng = np.random.default_rng(3)
    shape = (len(spec.bands), 70, 90)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        arr = rng.uniform(0, 1, shape).astype(dtype)
    else:
        hi = min(np.iinfo(dtype).max, 9000)
        arr = rng.integers(max(np.iinfo(dtype).min, -200), hi, shape).astype(dtype)
    nodata = spec.nodata
    fill = np.nan if math.isnan(nodata) else nodata
    arr[:, rng.uniform(size=shape[1:]) < 0.3] = fill  # scattered nodata
    arr[-1] = fill  # a band without any valid pixel
    acc = RunningBandStats(spec, shape[0], shape[1] * shape[2])
    for _ in acc.wrap(_blocks(arr, 32, 40)):  # uneven blocks: 3 x 3, the last ones smaller
        pass
    got = acc.result()
    _assert_stats_equal(got, _numpy_stats(arr, nodata))
    assert got[-1] == {"valid_percent": 0.0}
    path = cog.write_cog(tmp_path / f"{name}.tif", arr if shape[0] > 1 else arr[0], spec,
                         geobox=GeoBox(shape[1:], TRANSFORM, CRS), blocksize=32)
    _assert_stats_equal(got, stac.band_statistics(path, max_size=None))


def test_running_stats_count_uncovered_pixels_as_nodata():
    spec = P.get("VPC")
    acc = RunningBandStats(spec, 1, 100)  # a file of 100 px of which the blocks cover 20
    acc.add(np.arange(20, dtype="uint16").reshape(4, 5))
    (s,) = acc.result()
    assert s["valid_percent"] == pytest.approx(19.0)  # 0 is VPC's nodata
    assert (s["minimum"], s["maximum"], s["mean"]) == (1.0, 19.0, 10.0)
    assert s["stddev"] == pytest.approx(np.arange(1, 20).std(), rel=1e-15)


def test_running_stats_of_physical_blocks_are_those_of_the_stored_values():
    spec = P.get("SRC_MEAN")
    phys = np.random.default_rng(1).uniform(0, 0.5, (10, 8, 8))
    phys[:, :2] = np.nan
    a, b = RunningBandStats(spec, 10, 64), RunningBandStats(spec, 10, 64)
    a.add(phys)
    b.add(spec.encode(phys))
    assert a.result() == b.result()


def test_stac_takes_given_statistics_and_reads_the_others(tmp_path):
    gb = GeoBox((40, 50), TRANSFORM, CRS)
    rng = np.random.default_rng(0)
    vpc = cog.write_cog(tmp_path / "VPC.tif", rng.integers(1, 30, (40, 50)).astype("uint16"), P.get("VPC"), geobox=gb)
    bsc = cog.write_cog(tmp_path / "BSC.tif", rng.integers(0, 5, (40, 50)).astype("uint16"), P.get("BSC"), geobox=gb)
    given = [{"valid_percent": 12.5, "minimum": 7.0, "maximum": 8.0, "mean": 7.5, "stddev": 0.5}]
    stac.write_output_catalog(tmp_path, {"VPC": vpc, "BSC": bsc}, start="2021-01-01", end="2021-12-31", geobox=gb,
                              statistics={vpc: given}, band_assets=False)
    item = json.loads(next((tmp_path / "items").glob("*.json")).read_text())
    assert item["assets"]["VPC"]["raster:bands"][0]["statistics"] == given[0]  # not read again
    assert item["assets"]["BSC"]["raster:bands"][0]["statistics"] == stac.band_statistics(bsc)[0]


# ----------------------------------------------------------------------------- quicklook frame
@pytest.fixture
def saved_figures(monkeypatch):
    """Every figure a quicklook saves (drawn by savefig, so text extents are known)."""
    from matplotlib.figure import Figure

    saved, orig = [], Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _inside(fig, artist, renderer) -> bool:
    bb = artist.get_window_extent(renderer)
    w, h = fig.bbox.width, fig.bbox.height
    return bb.x0 >= -0.5 and bb.y0 >= -0.5 and bb.x1 <= w + 0.5 and bb.y1 <= h + 0.5


@pytest.mark.parametrize("ny, nx, geographic", [(600, 600, False), (1500, 300, False), (120, 900, False),
                                                 (400, 500, True)])
def test_quicklook_frame_fits_every_label_and_keeps_the_aspect(tmp_path, saved_figures, ny, nx, geographic):
    from matplotlib.legend import Legend
    from matplotlib.text import Text
    from rasterio.crs import CRS as RCRS

    if geographic:
        transform, crs = Affine(0.0002, 0, 13.4, 0, -0.0002, 52.5), RCRS.from_epsg(4326)
    else:
        transform, crs = TRANSFORM, RCRS.from_string(CRS)
    rng = np.random.default_rng(0)
    refl = rng.uniform(0, 0.4, (10, ny, nx))
    refl[:, : ny // 4] = np.nan
    bsf = rng.uniform(0, 1, (ny, nx))
    mask = rng.integers(0, 4, (ny, nx)).astype("float64")
    paths = [quicklook.quicklook_rgb(refl, tmp_path / "rgb.png", transform=transform, crs=crs),
             quicklook.quicklook_bsf(bsf, tmp_path / "bsf.png", transform=transform, crs=crs),
             quicklook.quicklook_mask(mask, tmp_path / "mask.png", transform=transform, crs=crs)]
    assert len(saved_figures) == 3
    for fig, png in zip(saved_figures, paths, strict=True):
        img = quicklook_png_shape(png)
        assert img[1] == quicklook.WIDTH_PX and 300 <= img[0] <= quicklook.MAX_HEIGHT_PX
        ax = fig.axes[0]
        renderer = _renderer(fig)
        box = ax.get_position()  # the image fills its axes: the box has the image's aspect
        box_ratio = (box.height * fig.get_figheight()) / (box.width * fig.get_figwidth())
        assert box_ratio == pytest.approx(ny / nx * abs(transform.e / transform.a), rel=0.01)
        texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
        texts += list(fig.findobj(Legend))
        outside = [getattr(t, "get_text", lambda: "legend")() for t in texts if not _inside(fig, t, renderer)]
        assert not outside, outside
        for leg in fig.legends:  # below the axes' tick labels, not over the image
            assert leg.get_window_extent(renderer).y1 <= ax.get_tightbbox(renderer).y0 + 1
        for cax in fig.axes[1:]:  # the colour bar: right of the image axes and their labels
            assert cax.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def quicklook_png_shape(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


def test_preflight_crs_cache_still_tells_crs_apart():
    from rasterio.crs import CRS as RCRS

    from soilsuite.pipeline.preflight import _same_crs

    utm33, utm32 = RCRS.from_epsg(32633), RCRS.from_epsg(32632)
    for _ in range(2):  # the second round answers from the cache
        assert _same_crs("EPSG:32633", utm33)
        assert not _same_crs("EPSG:32632", utm33)
        assert _same_crs("EPSG:32632", utm32)
        assert not _same_crs("not a crs", utm33)


def test_quicklook_reads_no_more_pixels_than_its_axes_show(tmp_path, saved_figures):
    from soilsuite.io import products as iop

    gb = GeoBox((900, 1200), TRANSFORM, CRS)
    bsf = np.random.default_rng(0).uniform(0, 1, (900, 1200)).astype("float32")
    path = cog.write_cog(tmp_path / "BSF.tif", bsf, P.get("BSF"), geobox=gb, blocksize=256)
    reads = []
    orig = iop.read_product

    def read_product(*args, **kw):
        arr, info = orig(*args, **kw)
        reads.append(arr.shape)
        return arr, info

    import soilsuite.io.quicklook as Q

    Q.read_product, saved = read_product, Q.read_product
    try:
        quicklook.quicklook_bsf(path, tmp_path / "bsf.png")
    finally:
        Q.read_product = saved
    fig = saved_figures[0]
    ax_px = fig.axes[0].get_position().width * fig.get_figwidth() * fig.dpi
    (shape,) = reads
    assert max(shape[-2:]) == int(np.ceil(ax_px))  # the axes' pixels, not the file's 1200
    assert shape[-1] / shape[-2] == pytest.approx(1200 / 900, rel=0.01)
