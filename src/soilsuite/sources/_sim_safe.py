"""Write a simulated archive as Sentinel-2 L2A SAFE products (``simulate(..., format="safe")``).

The simulator first writes its STAC catalog of COGs into its temporary folder; :func:`to_safe`
turns every item into a product with the real layout and real-format metadata::

    S2A_MSIL2A_20220203T100131_N0400_R022_T33UUU_20220203T151748.SAFE/
        MTD_MSIL2A.xml
        GRANULE/L2A_T33UUU_A034567_20220203T100134/
            MTD_TL.xml
            IMG_DATA/R10m/T33UUU_20220203T100131_B02_10m.jp2  (B02 B03 B04 B08)
            IMG_DATA/R20m/T33UUU_20220203T100131_B05_20m.jp2  (B05 B06 B07 B8A B11 B12 SCL)

(the parts soilsuite does not read - R60m, QI_DATA, AUX_DATA, DATASTRIP, manifest.safe - are
left out), JPEG2000 written lossless (reversible 5/3 wavelet) so the DN survive exactly, then
removes the catalog and the COGs. ``zip=True`` stores each product as ``<name>.zip`` holding
``<name>.SAFE/`` (as the Copernicus hubs deliver them). ``duplicate=True`` adds one reprocessed
twin of a product (same tile and sensing time, the previous processing baseline, DN + 50) to test
the newest-baseline rule.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np

from ..sensors.sentinel2 import EARTH_SEARCH_KEYS, PB04_START, SCL_NAMES
from .safe import PRODUCT_MTD, SAFE_BANDS, TILE_MTD

NS_PRODUCT = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
NS_TILE = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: Processing baselines in order (the duplicate takes the one before the original's).
BASELINES = ("02.14", "03.00", "03.01", "04.00", "05.00", "05.09", "05.10")
_S2A_EPOCH = dt.date(2015, 6, 23)  # absolute orbit 1 of Sentinel-2A
#: Solar irradiance (W/m2/um) per band id, as the L2A metadata lists it.
_IRRADIANCE = (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92,
               367.15, 245.59, 85.25)
_PHYS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
_RES = (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20)
_WL = (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4)


def _el(parent, tag: str, text=None, **attrib) -> ET.Element:
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        e.text = str(text)
    return e


def _num(v: float) -> str:
    """A coordinate as ESA writes it: ``699960``, not ``6.9996e+05``."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _iso(t: dt.datetime, digits: int = 3) -> str:
    s = t.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (s[: len(s) - (6 - digits)] if digits < 6 else s) + "Z"


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    path.write_text('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + body + "\n", encoding="utf-8")


def _product_xml(p: dict, path: Path) -> None:
    """MTD_MSIL2A.xml (the parts a reader uses, element names and nesting as ESA writes them)."""
    ET.register_namespace("n1", NS_PRODUCT)
    ET.register_namespace("xsi", NS_XSI)
    root = ET.Element(f"{{{NS_PRODUCT}}}Level-2A_User_Product",
                      {f"{{{NS_XSI}}}schemaLocation": f"{NS_PRODUCT} {NS_PRODUCT}"})
    gi = _el(root, f"{{{NS_PRODUCT}}}General_Info")
    pi = _el(gi, "Product_Info")
    _el(pi, "PRODUCT_START_TIME", _iso(p["start"]))
    _el(pi, "PRODUCT_STOP_TIME", _iso(p["start"]))
    _el(pi, "PRODUCT_URI", p["name"] + ".SAFE")
    _el(pi, "PROCESSING_LEVEL", "Level-2A")
    _el(pi, "PRODUCT_TYPE", "S2MSI2A")
    _el(pi, "PROCESSING_BASELINE", p["baseline"])
    _el(pi, "PRODUCT_DOI", "https://doi.org/10.5270/S2_-znk9xsj")
    _el(pi, "GENERATION_TIME", _iso(p["generation"], 6))
    _el(pi, "PREVIEW_IMAGE_URL", "Not applicable")
    _el(pi, "PREVIEW_GEO_INFO", "Not applicable")
    dtk = _el(pi, "Datatake", datatakeIdentifier=f"G{p['sat']}_{p['start']:%Y%m%dT%H%M%S}_{p['abs_orbit']:06d}_N{p['baseline']}")
    _el(dtk, "SPACECRAFT_NAME", p["spacecraft"])
    _el(dtk, "DATATAKE_TYPE", "INS-NOBS")
    _el(dtk, "DATATAKE_SENSING_START", _iso(p["start"]))
    _el(dtk, "SENSING_ORBIT_NUMBER", p["rel_orbit"])
    _el(dtk, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    qo = _el(pi, "Query_Options", completeSingleTile="true")
    _el(qo, "PRODUCT_FORMAT", "SAFE_COMPACT")
    gl = _el(_el(pi, "Product_Organisation"), "Granule_List")
    g = _el(gl, "Granule", datastripIdentifier=p["datastrip_id"], granuleIdentifier=p["tile_id"], imageFormat="JPEG2000")
    for band, res in SAFE_BANDS.items():
        _el(g, "IMAGE_FILE", f"GRANULE/{p['granule']}/IMG_DATA/R{res}m/{p['file_stem']}_{band}_{res}m")
    pic = _el(gi, "Product_Image_Characteristics")
    for txt, idx in (("NODATA", 0), ("SATURATED", 65535)):
        sv = _el(pic, "Special_Values")
        _el(sv, "SPECIAL_VALUE_TEXT", txt)
        _el(sv, "SPECIAL_VALUE_INDEX", idx)
    ido = _el(pic, "Image_Display_Order")
    for tag, bid in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        _el(ido, tag, bid)
    q = _el(pic, "QUANTIFICATION_VALUES_LIST")
    _el(q, "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
    _el(q, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
    _el(q, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
    if float(p["baseline"]) >= 4.0:
        bl = _el(pic, "BOA_ADD_OFFSET_VALUES_LIST")
        for bid in range(13):
            _el(bl, "BOA_ADD_OFFSET", -1000, band_id=bid)
    rc = _el(pic, "Reflectance_Conversion")
    doy = p["start"].timetuple().tm_yday
    _el(rc, "U", repr(1.0 / (1 - 0.01673 * math.cos(0.0172 * (doy - 4))) ** 2))
    sil = _el(rc, "Solar_Irradiance_List")
    for bid, irr in enumerate(_IRRADIANCE):
        _el(sil, "SOLAR_IRRADIANCE", irr, bandId=bid, unit="W/m²/µm")
    sp = _el(pic, "Spectral_Information_List")
    for bid, (phys, res, wl) in enumerate(zip(_PHYS, _RES, _WL, strict=True)):
        si = _el(sp, "Spectral_Information", bandId=bid, physicalBand=phys)
        _el(si, "RESOLUTION", res)
        w = _el(si, "Wavelength")
        _el(w, "CENTRAL", wl, unit="nm")
    scl = _el(pic, "Scene_Classification_List")
    for idx, name in SCL_NAMES.items():
        sc = _el(scl, "Scene_Classification_ID")
        _el(sc, "SCENE_CLASSIFICATION_TEXT", "SC_" + name.upper().replace(" / ", "_").replace(" ", "_"))
        _el(sc, "SCENE_CLASSIFICATION_INDEX", idx)
    geo = _el(root, f"{{{NS_PRODUCT}}}Geometric_Info")
    pf = _el(geo, "Product_Footprint")
    gf = _el(_el(pf, "Product_Footprint"), "Global_Footprint")
    _el(gf, "EXT_POS_LIST", " ".join(f"{lat} {lon}" for lon, lat in p["ring"]) + " ")
    _el(pf, "RASTER_CS_TYPE", "POINT")
    _el(pf, "PIXEL_ORIGIN", 1)
    crs = _el(geo, "Coordinate_Reference_System")
    _el(crs, "GEO_TABLES", "EPSG", version="1")
    _el(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")
    qi = _el(root, f"{{{NS_PRODUCT}}}Quality_Indicators_Info")
    _el(qi, "Cloud_Coverage_Assessment", repr(p["cloud_cover"]))
    tqa = _el(qi, "Technical_Quality_Assessment")
    _el(tqa, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    _el(tqa, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    ic = _el(qi, "Image_Content_QI")
    _el(ic, "NODATA_PIXEL_PERCENTAGE", repr(p["nodata_pct"]))
    _write_xml(root, path)


def _tile_xml(p: dict, path: Path) -> None:
    """GRANULE/<granule>/MTD_TL.xml."""
    ET.register_namespace("n1", NS_TILE)
    ET.register_namespace("xsi", NS_XSI)
    root = ET.Element(f"{{{NS_TILE}}}Level-2A_Tile_ID", {f"{{{NS_XSI}}}schemaLocation": f"{NS_TILE} {NS_TILE}"})
    gi = _el(root, f"{{{NS_TILE}}}General_Info")
    _el(gi, "L1C_TILE_ID", p["tile_id"].replace("L2A", "L1C").rsplit("_N", 1)[0] + f"_N{p['baseline']}", metadataLevel="Brief")
    _el(gi, "TILE_ID", p["tile_id"], metadataLevel="Brief")
    _el(gi, "DATASTRIP_ID", p["datastrip_id"], metadataLevel="Standard")
    _el(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _el(gi, "SENSING_TIME", _iso(p["sensing"], 6), metadataLevel="Standard")
    ai = _el(gi, "Archiving_Info", metadataLevel="Expertise")
    _el(ai, "ARCHIVING_CENTRE", "2BPS")
    _el(ai, "ARCHIVING_TIME", _iso(p["generation"], 6))
    geo = _el(root, f"{{{NS_TILE}}}Geometric_Info")
    tg = _el(geo, "Tile_Geocoding", metadataLevel="Brief")
    zone = p["epsg"] % 100
    _el(tg, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {zone}{'N' if p['epsg'] < 32700 else 'S'}")
    _el(tg, "HORIZONTAL_CS_CODE", f"EPSG:{p['epsg']}")
    ulx, uly, ny20, nx20 = p["grid20"]
    for res, (ny, nx) in ((10, (2 * ny20, 2 * nx20)), (20, (ny20, nx20)), (60, (-(-ny20 // 3), -(-nx20 // 3)))):
        s = _el(tg, "Size", resolution=res)
        _el(s, "NROWS", ny)
        _el(s, "NCOLS", nx)
    for res in (10, 20, 60):
        gp = _el(tg, "Geoposition", resolution=res)
        _el(gp, "ULX", _num(ulx))
        _el(gp, "ULY", _num(uly))
        _el(gp, "XDIM", res)
        _el(gp, "YDIM", -res)
    ta = _el(geo, "Tile_Angles", metadataLevel="Standard")
    ms = _el(ta, "Mean_Sun_Angle")
    _el(ms, "ZENITH_ANGLE", repr(90.0 - p["sun_elevation"]), unit="deg")
    _el(ms, "AZIMUTH_ANGLE", repr(p["sun_azimuth"]), unit="deg")
    qi = _el(root, f"{{{NS_TILE}}}Quality_Indicators_Info", metadataLevel="Standard")
    ic = _el(qi, "Image_Content_QI")
    _el(ic, "NODATA_PIXEL_PERCENTAGE", repr(p["nodata_pct"]))
    _el(ic, "CLOUDY_PIXEL_PERCENTAGE", repr(p["cloud_cover"]))
    _write_xml(root, path)


def _write_jp2(path: Path, arr: np.ndarray, transform, epsg: int) -> None:
    import rasterio

    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=arr.dtype.name, crs=f"EPSG:{epsg}", transform=transform,
                       QUALITY=100, REVERSIBLE="YES", YCC="NO") as dst:
        dst.write(arr, 1)


def _product_params(item: dict, baseline: str, generation: dt.datetime) -> dict:
    props = item["properties"]
    sensing = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    start = sensing - dt.timedelta(seconds=3)  # the datatake starts a little before the tile
    tile = f"{int(props['mgrs:utm_zone']):02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    sat = "S2A" if props["platform"].endswith("a") else "S2B"
    abs_orbit = int((sensing.date() - _S2A_EPOCH).days * 143 / 10) + 1
    rel_orbit = 22
    proc = f"{generation:%Y%m%dT%H%M%S}"
    name = f"{sat}_MSIL2A_{start:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_R{rel_orbit:03d}_T{tile}_{proc}"
    tr20 = item["assets"]["scl"]["proj:transform"]
    ny, nx = item["assets"]["scl"]["proj:shape"]
    return {
        "name": name, "sat": sat, "spacecraft": "Sentinel-2" + sat[-1], "start": start, "sensing": sensing,
        "generation": generation, "baseline": baseline, "tile": tile, "abs_orbit": abs_orbit, "rel_orbit": rel_orbit,
        "granule": f"L2A_T{tile}_A{abs_orbit:06d}_{sensing:%Y%m%dT%H%M%S}",
        "file_stem": f"T{tile}_{start:%Y%m%dT%H%M%S}",
        "tile_id": f"{sat}_OPER_MSI_L2A_TL_2APS_{proc}_A{abs_orbit:06d}_T{tile}_N{baseline}",
        "datastrip_id": f"{sat}_OPER_MSI_L2A_DS_2APS_{proc}_S{start:%Y%m%dT%H%M%S}_N{baseline}",
        "epsg": int(props["proj:epsg"]), "grid20": (tr20[2], tr20[5], ny, nx),
        "sun_elevation": float(props["view:sun_elevation"]), "sun_azimuth": float(props["view:sun_azimuth"]),
        "cloud_cover": float(props["eo:cloud_cover"]), "nodata_pct": float(props.get("s2:nodata_pixel_percentage", 0.0)),
        "ring": item["geometry"]["coordinates"][0],
    }


def _write_product(dest: Path, item_dir: Path, item: dict, p: dict, add_dn: int = 0, zip_it: bool = False) -> str:
    """One SAFE product from the COGs of ``item_dir``; returns the product (item) id."""
    import rasterio

    safe = dest / f"{p['name']}.SAFE"
    gran = safe / "GRANULE" / p["granule"]
    for res in (10, 20):
        (gran / "IMG_DATA" / f"R{res}m").mkdir(parents=True)
    for band, res in SAFE_BANDS.items():
        key = "scl" if band == "SCL" else EARTH_SEARCH_KEYS[band]
        with rasterio.open(item_dir / f"{key}.tif") as src:
            arr, tr, epsg = src.read(1), src.transform, src.crs.to_epsg()
        if add_dn and band != "SCL":
            arr = np.where(arr > 0, np.minimum(arr.astype(np.int32) + add_dn, 65535), 0).astype(arr.dtype)
        _write_jp2(gran / "IMG_DATA" / f"R{res}m" / f"{p['file_stem']}_{band}_{res}m.jp2", arr, tr, epsg)
    _product_xml(p, safe / PRODUCT_MTD)
    _tile_xml(p, gran / TILE_MTD)
    if zip_it:
        with zipfile.ZipFile(dest / f"{p['name']}.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(safe.rglob("*")):
                if f.is_file():  # fixed member times: the same arguments give the same bytes
                    zi = zipfile.ZipInfo(f.relative_to(dest).as_posix(), date_time=p["generation"].timetuple()[:6])
                    zi.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(zi, f.read_bytes())
        shutil.rmtree(safe)
    return p["name"]


def to_safe(tmp: Path, res, *, zip: bool = False, duplicate: bool = False) -> list[str]:  # noqa: A002
    """Turn the simulated STAC archive in ``tmp`` into SAFE products in ``tmp``.

    Parameters
    ----------
    tmp : Path
        The simulator's (temporary) archive folder holding ``catalog.json`` and
        ``sentinel-2-l2a/<item>/`` (COGs and item JSON); both are removed afterwards.
    res : SimulationResult
        Updated in place: ``catalog_path`` becomes the archive folder (what ``composite``
        reads), ``collection_path`` None, ``item_ids`` the product ids.
    zip : bool
        Write ``<name>.zip`` files instead of ``.SAFE`` folders.
    duplicate : bool
        Also write one older-baseline twin of a product (the first from 25 Jan 2022 on, else the
        first): same tile and sensing time, baseline the previous of :data:`BASELINES`,
        generated earlier, DN + 50.

    Returns
    -------
    list of str
        The product ids written (the twin last).
    """
    coll = tmp / "sentinel-2-l2a"
    entries = []
    for d in sorted(p for p in coll.iterdir() if p.is_dir()):
        item = json.loads((d / f"{d.name}.json").read_text())
        entries.append((d, item))
    entries.sort(key=lambda e: (e[1]["properties"]["datetime"], e[0].name))
    names = []
    for d, item in entries:
        props = item["properties"]
        sensing = dt.datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
        p = _product_params(item, props["s2:processing_baseline"], sensing + dt.timedelta(hours=5, minutes=17))
        names.append(_write_product(tmp, d, item, p, zip_it=zip))
    if duplicate and entries:
        big = max(entries, key=lambda e: e[1]["assets"]["scl"]["proj:shape"][1])[1]["properties"]["mgrs:grid_square"]
        main = [e for e in entries if e[1]["properties"]["mgrs:grid_square"] == big]  # the full tile
        late = [e for e in main if dt.date.fromisoformat(e[1]["properties"]["datetime"][:10]) >= PB04_START]
        d, item = (late or main)[0]
        pb = item["properties"]["s2:processing_baseline"]
        older = BASELINES[max(0, BASELINES.index(pb) - 1)] if pb in BASELINES else "02.14"
        sensing = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
        p = _product_params(item, older, sensing + dt.timedelta(hours=1, minutes=3))
        names.append(_write_product(tmp, d, item, p, add_dn=50, zip_it=zip))
    shutil.rmtree(coll)
    for f in ("catalog.json",):
        (tmp / f).unlink(missing_ok=True)
    res.catalog_path = res.out
    res.collection_path = None
    res.item_ids = names
    return names

