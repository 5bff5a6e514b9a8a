"""How realistic is the simulator? Its per-class PV+IR2 and NBR2 distributions beside field sites'.

The reference (SPEC "Realism targets", issue 11): 3937 Australian field sites with measured
green / dry / bare cover fractions and Landsat surface reflectance (a Sentinel-2 stand-in,
SWIR1 / SWIR2 = B11 / B12). :func:`class_statistics` measures the same numbers on a simulated
archive from its truth (``truth/soil_fraction.tif``, ``green_fraction.tif``, ``dry_fraction.tif``,
``obs_flags.tif``) and the reflectance of its COGs; ``bench/sim_realism.py`` prints both.

Classes (one observation = one pixel and date, clear sky: no cloud, shadow, haze or snow in the
truth; cropland and grassland pixels): ``bare`` soil fraction >= 60 %, ``dry`` dry-vegetation
fraction >= 60 %, ``green`` green-vegetation fraction >= 60 %, ``dry_pass`` the dry class with
PV+IR2 <= 0.2 (what SCMaP's threshold lets through).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: Field-site percentiles (issue 11): PV+IR2 p5 / p50 / p95, share PV+IR2 <= 0.2, NBR2 p5 / p25 /
#: p50 / p75 / p95 per class (NaN: not given).
FIELD_SITES = {
    "bare": {"pvir2": (-0.07, 0.04, 0.22), "share_pass": 0.93, "nbr2": (0.035, 0.056, 0.075, 0.096, 0.134)},
    "dry": {"pvir2": (0.05, 0.29, 0.63), "share_pass": 0.28, "nbr2": (0.118, 0.169, 0.206, 0.238, 0.275)},
    "dry_pass": {"pvir2": (np.nan,) * 3, "share_pass": np.nan, "nbr2": (0.095, 0.129, 0.154, 0.179, 0.224)},
    "green": {"pvir2": (0.53, 1.25, 1.68), "share_pass": 0.00, "nbr2": (0.200, 0.277, 0.365, 0.460, 0.526)},
}
PV_Q = (5, 50, 95)
NBR2_Q = (5, 25, 50, 75, 95)


def observation_indices(archive_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """PV+IR2 and NBR2 of every observation of a simulated archive, with its truth.

    Reads the 20 m grid (10 m bands averaged 2 x 2) of the item covering the whole grid on each
    date, offset-corrected (BOA_ADD_OFFSET from the processing baseline date).

    Returns
    -------
    dict
        ``pvir2``, ``nbr2`` float64 ``[T, Y, X]`` (NaN = nodata); ``soil``, ``green``, ``dry``
        fractions (0-1), ``flags`` (truth bits), ``landcover`` ``[Y, X]``, ``soil_type`` ``[Y, X]``.
    """
    import pystac
    import rasterio

    from ..sensors.sentinel2 import BANDS, EARTH_SEARCH_KEYS, PB04_START, SENTINEL2_L2A
    from .simulate import load_truth

    root = Path(archive_dir)
    truth = load_truth(root)
    if "green_fraction" not in truth:
        from ..errors import InputError

        raise InputError(f"{root}: truth/green_fraction.tif not found (an archive from an older simulator)")
    n_y, n_x = truth.sizes["y"], truth.sizes["x"]
    cat = pystac.read_file(str(root / "catalog.json"))
    items = [it for it in cat.get_items(recursive=True) if it.assets["scl"].extra_fields["proj:shape"] == [n_y, n_x]]
    items.sort(key=lambda it: it.datetime)
    want = {b: BANDS.index(b) for b in ("B04", "B08", "B11", "B12")}
    refl = {b: np.full((len(items), n_y, n_x), np.nan) for b in want}
    for ti, it in enumerate(items):
        off = -1000 if it.datetime.date() >= PB04_START else 0
        for b in want:
            with rasterio.open(it.assets[EARTH_SEARCH_KEYS[b]].get_absolute_href()) as src:
                a = src.read(1).astype("float64")
            nd = a == 0
            if SENTINEL2_L2A.native_res_m[b] == 10:
                a = a.reshape(n_y, 2, n_x, 2).mean(axis=(1, 3))
                nd = nd.reshape(n_y, 2, n_x, 2).any(axis=(1, 3))
            a = (a + off) / 1e4
            a[nd] = np.nan
            refl[b][ti] = a
    r4, r8, r11, r12 = (refl[b] for b in ("B04", "B08", "B11", "B12"))
    with np.errstate(invalid="ignore", divide="ignore"):
        pv = (r8 - r4) / (r8 + r4) + (r8 - r12) / (r8 + r12)
        nbr2 = (r11 - r12) / (r11 + r12)
    return {"pvir2": pv, "nbr2": nbr2, "soil": truth["soil_fraction"].values / 100.0,
            "green": truth["green_fraction"].values / 100.0, "dry": truth["dry_fraction"].values / 100.0,
            "flags": truth["obs_flags"].values, "landcover": truth["landcover"].values,
            "soil_type": truth["soil_type"].values}


def class_statistics(archive_dir: str | os.PathLike, *, obs: dict | None = None) -> dict[str, dict]:
    """The simulator's rows of the field-site table (:data:`FIELD_SITES`), measured on an archive.

    Parameters
    ----------
    archive_dir : path
        A simulated archive (:func:`soilsuite.sources.simulate.simulate`).
    obs : dict, optional
        :func:`observation_indices` of the archive, if already read.

    Returns
    -------
    dict
        Per class (``bare``, ``dry``, ``dry_pass``, ``green``; ``bare85``: soil fraction
        >= 85 %, the truth's "really bare"; ``bare_clay``: bare on the clay-rich soil type): ``n``, ``pvir2`` (p5, p50, p95), ``share_pass`` (PV+IR2 <= 0.2),
        ``nbr2`` (p5, p25, p50, p75, p95), ``nbr2_mean``.
    """
    from .simulate import TRUTH_CLOUD, TRUTH_HAZE, TRUTH_SHADOW, TRUTH_SNOW

    o = obs if obs is not None else observation_indices(archive_dir)
    clear = (o["flags"] & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW)) == 0
    land = np.isin(o["landcover"], (1, 2))[None]
    ok = clear & land & np.isfinite(o["pvir2"]) & np.isfinite(o["nbr2"])
    sel = {
        "bare": ok & (o["soil"] >= 0.6),
        "dry": ok & (o["dry"] >= 0.6),
        "green": ok & (o["green"] >= 0.6),
    }
    sel["dry_pass"] = sel["dry"] & (o["pvir2"] <= 0.2)
    sel["bare85"] = ok & (o["soil"] >= 0.85)
    sel["bare_clay"] = sel["bare"] & (o["soil_type"] == 3)[None]
    out = {}
    for name, m in sel.items():
        pv, nb = o["pvir2"][m], o["nbr2"][m]
        if pv.size == 0:
            out[name] = {"n": 0, "pvir2": (np.nan,) * 3, "share_pass": np.nan, "nbr2": (np.nan,) * 5,
                         "nbr2_mean": np.nan}
            continue
        out[name] = {"n": int(pv.size), "pvir2": tuple(float(v) for v in np.percentile(pv, PV_Q)),
                     "share_pass": float(np.mean(pv <= 0.2)),
                     "nbr2": tuple(float(v) for v in np.percentile(nb, NBR2_Q)), "nbr2_mean": float(nb.mean())}
    return out


def format_table(stats: dict[str, dict], label: str = "simulator") -> list[str]:
    """Lines: each class's field-site row and the simulator's row beside it."""
    def f(v):
        return "   -  " if not np.isfinite(v) else f"{v:6.3f}"

    lines = [f"{'class':10s} {'source':14s} {'n':>7s} | PV+IR2 p5    p50    p95 | <=0.2  | NBR2 p5  p25    p50    p75    p95"]
    for name in ("bare", "bare85", "dry", "dry_pass", "green", "bare_clay"):
        rows = []
        if name in FIELD_SITES:
            fs = FIELD_SITES[name]
            rows.append(("field sites", "", fs["pvir2"], fs["share_pass"], fs["nbr2"]))
        if name in stats:
            s = stats[name]
            rows.append((label, str(s["n"]), s["pvir2"], s["share_pass"], s["nbr2"]))
        for src, n, pv, sh, nb in rows:
            lines.append(f"{name:10s} {src:14s} {n:>7s} | {' '.join(f(v) for v in pv)} | {f(sh)} | "
                         f"{' '.join(f(v) for v in nb)}")
    return lines


def to_json(stats: dict) -> str:
    return json.dumps(stats, indent=1)
