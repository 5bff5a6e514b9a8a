"""FORCE export: layout, datacube definition, BOA values (offset!), QAI bits, reader, refusal.

The expected values are read straight from the simulated archive's COGs with rasterio (not
through soilsuite's loader), with the offset decided by the acquisition date (SPEC 1: -1000
DN from 2022-01-25), so the export is checked against an independent oracle.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS

from soilsuite.errors import ConfigError, OutputExistsError
from soilsuite.io import force as F
from soilsuite.sentinel2 import BANDS, EARTH_SEARCH_KEYS, NATIVE_RES_M, REFL_NODATA

START, END = dt.date(2022, 1, 5), dt.date(2022, 2, 20)
TILE, BLOCK, RES = 640.0, 320.0, 20.0
NPX = int(TILE / RES)
#: the window straddles the 2022-01-25 offset change in winter: at the simulator's ~52 N the
#: sun stays below the default 20 degrees, so the scene filter is relaxed for this export
MIN_SUN = 10.0
FILE_RE = re.compile(r"^(\d{8})_LEVEL2_(SEN2[ABCD])_(BOA|QAI)\.tif$")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    simulate = pytest.importorskip("soilsuite.sources.simulate").simulate
    return simulate(tmp_path_factory.mktemp("force_arch") / "archive", size=64, start=START, end=END, seed=7,
                    overlap_tiles=True)


@pytest.fixture(scope="module")
def cube(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("force_cube") / "cube"
    res = F.export_force(sim.catalog_path, out=out, start=START, end=END, bbox=sim.bbox_lonlat,
                         crs=f"EPSG:{sim.epsg}", resolution=RES, force_tile_m=TILE, force_block_m=BLOCK,
                         min_sun_elevation=MIN_SUN)
    return res


@pytest.fixture(scope="module")
def items_by_day(sim):
    """Archive items (kept by the scene filter of the export) grouped by UTC date."""
    cat = pystac.read_file(str(sim.catalog_path))
    out: dict[dt.date, list[pystac.Item]] = {}
    for it in cat.get_items(recursive=True):
        p = it.properties
        if p.get("eo:cloud_cover", 0) > 80 or p.get("view:sun_elevation", 90) < MIN_SUN:
            continue
        out.setdefault(it.datetime.date(), []).append(it)
    return out


def _tiles(cube) -> list[Path]:
    return sorted(p for p in cube.out.iterdir() if p.is_dir())


def _pairs(tile: Path) -> list[tuple[dt.date, str, Path, Path]]:
    out = []
    for p in sorted(tile.glob("*_BOA.tif")):
        m = FILE_RE.match(p.name)
        assert m, p.name
        out.append((dt.datetime.strptime(m.group(1), "%Y%m%d").date(), m.group(2), p,
                    p.with_name(p.name.replace("_BOA", "_QAI"))))
    return out


def _source_at(item: pystac.Item, key: str, x: float, y: float, res: int) -> int | None:
    """DN of an asset at a 20 m pixel centre (x, y): the 20 m value, or the 2x2 mean of 10 m pixels
    (valid ones).

    None where the asset does not cover the point or is nodata (0) there.
    """
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
        if res == 20:
            r, c = src.index(x, y)
            if not (0 <= r < src.height and 0 <= c < src.width):
                return None
            v = int(src.read(1, window=((r, r + 1), (c, c + 1)))[0, 0])
            return v or None
        r, c = src.index(x - 5, y + 5)
        if not (0 <= r < src.height - 1 and 0 <= c < src.width - 1):
            return None
        block = src.read(1, window=((r, r + 2), (c, c + 2))).astype(float)
        block = block[block != 0]  # GDAL's average skips nodata
        return float(block.mean()) if block.size else None


def _expected_offset(day: dt.date) -> int:
    return -1000 if day >= dt.date(2022, 1, 25) else 0


# ----------------------------------------------------------------------------- layout
def test_tile_folders_and_file_names(cube, items_by_day):
    tiles = _tiles(cube)
    assert len(tiles) >= 2
    assert sorted(cube.tiles) == [t.name for t in tiles]
    for t in tiles:
        assert re.fullmatch(r"X\d{4}_Y\d{4}", t.name)
        names = sorted(p.name for p in t.iterdir())
        assert names and all(FILE_RE.match(n) for n in names), names
        for day, sensor, _boa, qai in _pairs(t):
            assert qai.exists()
            assert START <= day <= END
            platforms = {str(it.properties.get("platform", "")).lower() for it in items_by_day[day]}
            expected = {f"SEN2{p[-1].upper()}" for p in platforms if re.fullmatch(r"sentinel-2[a-d]", p)}
            assert sensor in (expected or {"SEN2A", "SEN2B", "SEN2C", "SEN2D"}), (sensor, platforms)
    assert len(cube.files) == 2 * sum(len(_pairs(t)) for t in tiles)
    assert {d for t in tiles for d, *_ in _pairs(t)} == set(cube.dates)


def test_datacube_definition(cube, sim):
    lines = (cube.out / "datacube-definition.prj").read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 8  # 7 lines, each ended by a newline
    assert CRS.from_wkt(lines[0]) == CRS.from_epsg(sim.epsg)
    assert lines[0].startswith("PROJCS[")  # one-line WKT1, as FORCE writes it
    for ln in lines[1:7]:
        assert re.fullmatch(r"-?\d+\.\d{6}", ln), ln  # printf("%f")
    lon, lat, x0, y0, ts, bs = (float(v) for v in lines[1:7])
    assert (ts, bs) == (TILE, BLOCK)
    assert x0 % TILE == 0 and y0 % TILE == 0
    exp_lon, exp_lat = Transformer.from_crs(sim.epsg, 4326, always_xy=True).transform(x0, y0)
    assert abs(lon - exp_lon) < 1e-6 and abs(lat - exp_lat) < 1e-6
    g = F.ForceGrid.from_prj(cube.out)
    assert (g.origin_x, g.origin_y, g.tile_size, g.block_size) == (x0, y0, ts, bs)


def test_tile_grid_convention(cube):
    """X grows east, Y grows south from the origin; files cover the whole tile."""
    g = cube.grid
    seen = set()
    for t in _tiles(cube):
        tx, ty = (int(v) for v in re.findall(r"\d{4}", t.name))
        seen.add((tx, ty))
        _, _, boa, qai = _pairs(t)[0]
        for p in (boa, qai):
            with rasterio.open(p) as src:
                assert (src.width, src.height) == (NPX, NPX)
                assert src.transform.c == pytest.approx(g.origin_x + tx * TILE)
                assert src.transform.f == pytest.approx(g.origin_y - ty * TILE)
                assert src.transform.a == RES and src.transform.e == -RES
    xs, ys = {s[0] for s in seen}, {s[1] for s in seen}
    assert len(xs) >= 2 or len(ys) >= 2


def test_tiles_cover_the_data(cube, sim, items_by_day):
    """Tiles found from the .prj numbers alone (X east, Y south) cover the archive's data extent."""
    lines = (cube.out / "datacube-definition.prj").read_text().splitlines()
    ox, oy = float(lines[3]), float(lines[4])
    bounds = []
    for items in items_by_day.values():
        for it in items:
            with rasterio.open(it.assets[EARTH_SEARCH_KEYS["SCL"]].get_absolute_href()) as src:
                bounds.append(src.bounds)
    x0, y0 = max(min(b.left for b in bounds), 0), min(b.bottom for b in bounds)
    x1, y1 = max(b.right for b in bounds), max(b.top for b in bounds)
    w, s, e, n = Transformer.from_crs(4326, sim.epsg, always_xy=True).transform_bounds(*sim.bbox_lonlat)
    x0, y0, x1, y1 = max(x0, w) + RES, max(y0, s) + RES, min(x1, e) - RES, min(y1, n) - RES
    names = {t.name for t in _tiles(cube)}
    for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)):
        tx, ty = math.floor((x - ox) / TILE), math.floor((oy - y) / TILE)
        assert f"X{tx:04d}_Y{ty:04d}" in names, (x, y, sorted(names))


def test_dates_without_data_are_not_written(sim, tmp_path, monkeypatch):
    """A date whose pixels are all nodata in a tile gets no file there (FORCE's rule)."""
    from soilsuite.sources import stac

    real = stac.to_reflectance
    calls = {"n": 0}

    def second_date_empty(dn, offset_dn):
        calls["n"] += 1
        out = real(dn, offset_dn)
        if calls["n"] % 3 == 2:  # every third observation loaded becomes all-nodata
            out[:] = REFL_NODATA
        return out

    monkeypatch.setattr(stac, "to_reflectance", second_date_empty)
    r = F.export_force(sim.catalog_path, out=tmp_path / "c", start=START, end=END, bbox=sim.bbox_lonlat,
                       crs=f"EPSG:{sim.epsg}", force_tile_m=TILE, force_block_m=BLOCK)
    assert r.skipped_empty > 0 and r.files
    for p in r.files:
        if p.name.endswith("_QAI.tif"):
            with rasterio.open(p) as src:
                assert (src.read(1) != 1).any(), p


def test_geotiff_options_as_force(cube):
    _, sensor, boa, qai = _pairs(_tiles(cube)[0])[0]
    with rasterio.open(boa) as src:
        assert src.count == 10 and src.dtypes == ("int16",) * 10 and src.nodata == -9999
        assert src.descriptions == F.FORCE_BANDS
        assert F.FORCE_BANDS[6:8] == ("BROADNIR", "NIR")
        assert src.compression.name.upper() == "LZW"
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        assert src.interleaving.name.upper() == "BAND"
        assert src.block_shapes[0] == (int(BLOCK / RES), NPX)  # strips: tile-wide, block-high
        assert src.tags(7, ns="FORCE")["Domain"] == "BROADNIR"
        assert src.tags(1, ns="FORCE")["Sensor"] == sensor
    with rasterio.open(qai) as src:
        assert src.count == 1 and src.dtypes == ("int16",) and src.nodata == 1
    assert not list(cube.out.rglob("*.tmp")) and not list(cube.out.rglob("*.aux.xml"))


# ----------------------------------------------------------------------------- values
def _samples(cube, rng, per_file=12):
    """(day, x, y, boa[10], qai) at random pixels of every written file."""
    for t in _tiles(cube):
        for day, _, boa_p, qai_p in _pairs(t):
            with rasterio.open(boa_p) as b, rasterio.open(qai_p) as q:
                boa, qai, tr = b.read(), q.read(1), b.transform
            valid = np.argwhere(qai != 1)
            rows = list(valid[rng.choice(len(valid), size=min(per_file // 2, len(valid)), replace=False)])
            rows += [rng.integers(0, NPX, 2) for _ in range(per_file // 2)]
            for r, c in rows:
                x, y = tr.c + (c + 0.5) * RES, tr.f - (r + 0.5) * RES
                yield day, x, y, boa[:, r, c], int(qai[r, c])


def _expected_scl(items, x, y) -> set[int]:
    vals = {_source_at(it, EARTH_SEARCH_KEYS["SCL"], x, y, 20) for it in items}
    return {v for v in vals if v is not None}


def test_boa_equals_dn_plus_offset(cube, items_by_day):
    rng = np.random.default_rng(0)
    checked = {"before": 0, "after": 0, "nodata": 0}
    for day, x, y, boa, qai in _samples(cube, rng):
        items = items_by_day[day]
        scl = _expected_scl(items, x, y)
        if not scl or scl == {0}:
            assert qai == 1 and (boa == -9999).all(), (day, x, y, boa, qai)
            checked["nodata"] += 1
            continue
        if qai == 1:  # a band missing there
            assert (boa == -9999).all()
            continue
        off = _expected_offset(day)
        for b, band in enumerate(BANDS):
            res = NATIVE_RES_M[band]
            cands = [v for it in items if (v := _source_at(it, EARTH_SEARCH_KEYS[band], x, y, res)) is not None]
            assert cands, (day, band, x, y)
            if res == 20:
                assert int(boa[b]) in {int(v) + off for v in cands}, (day, band, boa[b], cands, off)
            else:  # 10 m bands averaged onto the 20 m grid
                assert min(abs(int(boa[b]) - (v + off)) for v in cands) <= 1, (day, band, boa[b], cands, off)
        checked["after" if day >= dt.date(2022, 1, 25) else "before"] += 1
    assert checked["before"] >= 5 and checked["after"] >= 5, checked


def test_nodata_where_scl_is_zero(cube, items_by_day):
    """Every pixel whose source SCL is 0 in all items of the day is -9999 / QAI 1."""
    found = 0
    for t in _tiles(cube)[:2]:
        for day, _, boa_p, qai_p in _pairs(t)[:4]:
            with rasterio.open(boa_p) as b, rasterio.open(qai_p) as q:
                boa, qai, tr = b.read(), q.read(1), b.transform
            for r in range(0, NPX, 3):
                for c in range(0, NPX, 3):
                    x, y = tr.c + (c + 0.5) * RES, tr.f - (r + 0.5) * RES
                    if _expected_scl(items_by_day[day], x, y) <= {0}:
                        found += 1
                        assert qai[r, c] == 1 and (boa[:, r, c] == -9999).all()
    assert found > 0  # the tiles reach beyond the data, or SCL has no-data pixels


def test_qai_bits_match_scl(cube, items_by_day):
    rng = np.random.default_rng(1)
    n = 0
    for day, x, y, boa, qai in _samples(cube, rng):
        scl = _expected_scl(items_by_day[day], x, y)
        if qai == 1 or len(scl) != 1:
            continue
        (s,) = scl
        expected = F.SCL_TO_QAI.get(s, 0)
        refl = boa.astype(int)
        if (refl < 0).any():
            expected |= 1 << 8
        if (refl > 10000).any():
            expected |= 1 << 9
        assert qai & ~(1 << 10) == expected, (day, s, qai, expected)
        assert qai & 1 == 0
        n += 1
    assert n >= 10


def test_qai_from_scl_every_class():
    scl = np.arange(12, dtype=np.uint8).reshape(1, 12)
    refl = np.full((10, 1, 12), 500, np.int16)
    q = F.qai_from_scl(scl, refl, 30.0)[0]
    assert q.tolist() == [1, 512, 3 << 11, 8, 0, 0, 32, 2, 2, 4, 6, 16]
    assert F.qai_cloud(q).tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 0]
    # subzero, saturation, a missing band, high sun zenith (> 75 degrees as FORCE)
    refl[3, 0, 4] = -20
    refl[8, 0, 5] = 10500
    refl[0, 0, 6] = REFL_NODATA
    q = F.qai_from_scl(scl, refl, 76.0)[0]
    assert q[4] == (1 << 8) | (1 << 10)
    assert q[5] == (1 << 9) | (1 << 10)
    assert q[6] == 1 and q[0] == 1
    assert q[11] == 16 | (1 << 10)
    assert F.qai_from_scl(scl, np.full((10, 1, 12), 500, np.int16), 75.0)[0][4] == 0


# ----------------------------------------------------------------------------- reader
def test_read_force_tile_round_trip(cube):
    tile = _tiles(cube)[0]
    ds = F.read_force_tile(tile)
    pairs = _pairs(tile)
    assert ds["BOA"].dims == ("time", "band", "y", "x")
    assert tuple(ds["band"].values) == F.FORCE_BANDS
    assert [np.datetime64(d, "ns") for d, *_ in pairs] == list(ds["time"].values)
    assert list(ds["sensor"].values) == [s for _, s, *_ in pairs]
    for i, (_, _, boa_p, qai_p) in enumerate(pairs):
        with rasterio.open(boa_p) as b, rasterio.open(qai_p) as q:
            np.testing.assert_array_equal(ds["BOA"].values[i], b.read())
            np.testing.assert_array_equal(ds["QAI"].values[i], q.read(1))
            assert ds["x"].values[0] == pytest.approx(b.transform.c + RES / 2)
            assert ds["y"].values[0] == pytest.approx(b.transform.f - RES / 2)


# ----------------------------------------------------------------------------- refusal, options
def test_rerun_is_complete_and_other_parameters_refused(cube, sim):
    stamps = {p: p.stat().st_mtime_ns for p in cube.files}
    again = F.export_force(sim.catalog_path, out=cube.out, start=START, end=END, bbox=sim.bbox_lonlat,
                           crs=f"EPSG:{sim.epsg}", resolution=RES, force_tile_m=TILE, force_block_m=BLOCK,
                           min_sun_elevation=MIN_SUN)
    assert again.already_complete and sorted(again.files) == sorted(cube.files)
    assert again.tiles == cube.tiles and again.dates == cube.dates
    with pytest.raises(OutputExistsError, match=re.escape(str(cube.out)) + ".*other parameters"):
        F.export_force(sim.catalog_path, out=cube.out, start=START, end=END, bbox=sim.bbox_lonlat,
                       force_tile_m=TILE, force_block_m=BLOCK)
    assert {p: p.stat().st_mtime_ns for p in cube.files} == stamps


def test_interrupted_export_resumes(sim, cube, tmp_path, monkeypatch):
    """An export stopped after its first tile resumes with the same call: the finished tile is
    not written again and the cube equals an uninterrupted export."""
    out = tmp_path / "cube"
    kw = dict(out=out, start=START, end=END, bbox=sim.bbox_lonlat, crs=f"EPSG:{sim.epsg}", resolution=RES,
              force_tile_m=TILE, force_block_m=BLOCK, min_sun_elevation=MIN_SUN)
    real = F._export_tile
    calls = []

    def stop_after_first(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(F, "_export_tile", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        F.export_force(sim.catalog_path, **kw)
    monkeypatch.setattr(F, "_export_tile", real)
    first = sorted(p for p in out.glob("X*/*.tif"))
    assert first and len(cube.tiles) > 1
    stamps = {p: p.stat().st_mtime_ns for p in first}
    r = F.export_force(sim.catalog_path, **kw)
    assert not r.already_complete and r.tiles == cube.tiles and r.dates == cube.dates
    assert {p: p.stat().st_mtime_ns for p in first} == stamps  # not written again
    assert sorted(p.relative_to(out) for p in r.files) == sorted(p.relative_to(cube.out) for p in cube.files)
    for p in r.files:
        assert p.read_bytes() == (cube.out / p.relative_to(out)).read_bytes()


def test_overwrite_and_other_crs(sim, tmp_path):
    """EPSG:3035 (LAEA Europe) cube of a short window; then overwrite replaces it, but never a
    file soilsuite did not write."""
    day = START + dt.timedelta(days=20)
    out = tmp_path / "laea"
    r = F.export_force(sim.catalog_path, out=out, start=START, end=day, bbox=sim.bbox_lonlat, crs="EPSG:3035",
                       force_tile_m=TILE, force_block_m=BLOCK, min_sun_elevation=MIN_SUN)
    prj = (out / "datacube-definition.prj").read_text().splitlines()
    assert CRS.from_wkt(prj[0]) == CRS.from_epsg(3035)
    assert r.files and all(p.exists() for p in r.files)
    mine = out / "X9999_Y9999" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("user's")
    kw = dict(start=START, end=day, bbox=sim.bbox_lonlat, crs="EPSG:3035", force_tile_m=TILE, force_block_m=BLOCK,
              overwrite=True, min_sun_elevation=MIN_SUN)
    with pytest.raises(OutputExistsError, match="notes.txt"):
        F.export_force(sim.catalog_path, out=out, **kw)
    assert all(p.exists() for p in r.files)
    mine.unlink()
    r2 = F.export_force(sim.catalog_path, out=out, **kw)
    assert sorted(r2.files) == sorted(r.files)


def test_bad_sizes_rejected(sim, tmp_path):
    with pytest.raises(ConfigError, match="multiple"):
        F.export_force(sim.catalog_path, out=tmp_path / "x", start=START, end=END, force_tile_m=650, force_block_m=320)
    with pytest.raises(ConfigError, match="force_block_m"):
        F.export_force(sim.catalog_path, out=tmp_path / "x", start=START, end=END, force_tile_m=640, force_block_m=300)


def test_old_size_keywords_still_work_with_a_warning(sim, tmp_path):
    """``tile_size_m``/``block_size_m`` (earlier releases) are ``force_tile_m``/``force_block_m``."""
    with pytest.warns(DeprecationWarning) as caught:
        with pytest.raises(ConfigError, match="force_tile_m 640 must be a multiple of force_block_m 300"):
            F.export_force(sim.catalog_path, out=tmp_path / "x", start=START, end=END, tile_size_m=640,
                           block_size_m=300)
    assert sorted(str(w.message).split(";")[0] for w in caught) == [
        "option 'block_size_m' is renamed 'force_block_m'", "option 'tile_size_m' is renamed 'force_tile_m'"]
    assert not (tmp_path / "x").exists()


def test_grid_round_trip(tmp_path):
    g = F.make_grid("EPSG:3035", (2456026.25, 4574919.5), 30000, 3000)
    (tmp_path / "datacube-definition.prj").write_text(g.to_prj())
    g2 = F.ForceGrid.from_prj(tmp_path)
    assert (g2.crs_wkt, g2.origin_x, g2.origin_y, g2.tile_size, g2.block_size) == (
        g.crs_wkt, g.origin_x, g.origin_y, g.tile_size, g.block_size)
    assert abs(g2.origin_lon - g.origin_lon) < 1e-6 and abs(g2.origin_lat - g.origin_lat) < 1e-6  # "%f"
    assert g.tile_index(g.origin_x + 1, g.origin_y - 1) == (0, 0)
    assert g.tile_index(g.origin_x + 30001, g.origin_y - 60001) == (1, 2)
    assert g.tile_index(g.origin_x - 1, g.origin_y + 1) == (-1, -1)
    assert math.isclose(g.origin_lon, -25.0, abs_tol=0.1) and math.isclose(g.origin_lat, 60.0, abs_tol=0.1)


def test_cli_export_force(sim, tmp_path):
    from typer.testing import CliRunner

    from soilsuite.cli import app

    out = tmp_path / "cli_cube"
    args = ["export-force", str(sim.catalog_path), "--out", str(out), "--start", str(START),
            "--end", str(START + dt.timedelta(days=10)), "--force-tile-m", "640", "--force-block-m", "320", "--quiet",
            "--min-sun-elevation", str(MIN_SUN)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "datacube-definition.prj").exists() and list(out.glob("X*_Y*/*_BOA.tif"))
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "already complete" in r.output, r.output
    r = CliRunner().invoke(app, [*args, "--resolution", "40"])
    assert r.exit_code == 2 and "other parameters" in r.output, r.output
