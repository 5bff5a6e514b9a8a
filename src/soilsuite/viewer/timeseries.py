"""The PV+IR2 time series of one pixel of a composite run, from the archive the run read.

The run record (``run.json``) says where the source was, the window, the grid and every
option; :func:`soilsuite.pipeline.composite.observation_flags` repeats the run's own
classification for a 1-pixel grid, so the bare observations counted here are the ones the
run counted (their number equals BSC at the pixel, the valid ones VPC).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["find_source", "pixel_series", "series_png"]

_SECTIONS = ("scene", "mask", "bare")
_TOP = ("collection", "worldcover", "resolution")


def _resolve(path: str | None, out: Path) -> str | None:
    """A path of the run record as it is, relative to the folder, or to the folder's parent."""
    if path is None:
        return None
    if "://" in path:
        return path
    for cand in (Path(path), out / path, out.parent / path):
        if cand.exists():
            return str(cand.resolve())
    return None


def find_source(out_dir: str | os.PathLike) -> str | None:
    """The archive of the run in ``out_dir`` if it can be reached from here, else None.

    A URL (STAC API) is returned as is (reached when a series is asked for); a local path is
    looked up as written, relative to the folder and relative to its parent folder.
    """
    out = Path(out_dir)
    rec = out / "run.json"
    if not rec.is_file():
        return None
    cfg = json.loads(rec.read_text()).get("config", {})
    return _resolve(cfg.get("source"), out)


def _options(out: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for sec in _SECTIONS:
        opts.update({k: v for k, v in (cfg.get(sec) or {}).items() if v is not None})
    for k in _TOP:
        if cfg.get(k) is not None:
            opts[k] = cfg[k]
    for k in ("worldcover", "threshold_raster"):
        if k in opts:
            opts[k] = _resolve(str(opts[k]), out)
            if opts[k] is None:
                raise FileNotFoundError(f"{k} of the run ({cfg.get(k) or cfg['bare'].get(k)}) is not reachable")
    return opts


def pixel_series(out_dir: str | os.PathLike, lon: float, lat: float) -> dict[str, Any]:
    """PV+IR2 and the classification of every observation of one pixel of a composite run.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A composite run's folder (with ``run.json``).
    lon, lat : float
        The point in degrees (WGS84).

    Returns
    -------
    dict
        ``dates`` (ISO), ``pvir2`` (float, None for no value), ``valid``, ``bare``, ``rejected``
        (bare candidates dropped by the blue outlier filter) as booleans per observation,
        ``threshold``, ``row``/``col`` in the run grid, and counts ``n_valid``/``n_bare``.
        ``{"error": ...}`` if the point is outside the grid or the archive is not reachable.
    """
    from affine import Affine
    from pyproj import Transformer

    out = Path(out_dir).resolve()
    rec_path = out / "run.json"
    grid = json.loads(rec_path.read_text())["grid"]
    tr = Affine(*grid["transform"])
    x, y = Transformer.from_crs("EPSG:4326", grid["crs"], always_xy=True).transform(lon, lat)
    col, row = (int(np.floor(v)) for v in ~tr * (x, y))
    if not (0 <= row < grid["shape"][0] and 0 <= col < grid["shape"][1]):
        return {"error": "the point is outside the run's grid"}
    return dict(_series_at(str(out), rec_path.stat().st_mtime_ns, row, col))


@functools.lru_cache(maxsize=256)
def _series_at(out_dir: str, record_mtime: int, row: int, col: int) -> dict[str, Any]:
    """The series of pixel (row, col) of the run grid; cached per run record version."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from ..kernels.composite import FLAG_BARE, FLAG_CANDIDATE, FLAG_VALID
    from ..pipeline.composite import observation_flags

    out = Path(out_dir)
    rec = json.loads((out / "run.json").read_text())
    cfg, grid = rec["config"], rec["grid"]
    source = _resolve(cfg.get("source"), out)
    if source is None:
        return {"error": f"the archive of this run ({cfg.get('source')}) is not reachable from here"}
    tr = Affine(*grid["transform"])
    gb = GeoBox((1, 1), tr * Affine.translation(col, row), grid["crs"])
    ds = observation_flags(source, start=dt.date.fromisoformat(cfg["start"]), end=dt.date.fromisoformat(cfg["end"]),
                           geobox=gb, **_options(out, cfg))
    flags = ds["flags"].values[:, 0, 0]
    pv = ds["pvir2"].values[:, 0, 0].astype("float64")
    valid = (flags & FLAG_VALID) > 0
    bare = (flags & FLAG_BARE) > 0
    rejected = ((flags & FLAG_CANDIDATE) > 0) & ~bare
    dates = [str(np.datetime_as_string(t, unit="D")) for t in ds["time"].values]
    return {
        "dates": dates, "pvir2": [None if not np.isfinite(v) else round(float(v), 5) for v in pv],
        "valid": valid.tolist(), "bare": bare.tolist(), "rejected": rejected.tolist(),
        "threshold": float((cfg.get("bare") or {}).get("threshold", 0.2)), "row": row, "col": col,
        "n_valid": int(valid.sum()), "n_bare": int(bare.sum()), "source": source,
    }


def series_png(series: dict[str, Any]) -> bytes:
    """A small chart (PNG) of a pixel's PV+IR2 series: bare, rejected and other valid observations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if "error" in series:
        ax.text(0.5, 0.5, series["error"], ha="center", va="center", wrap=True, fontsize=8)
        ax.set_axis_off()
    else:
        t = np.array(series["dates"], dtype="datetime64[D]").astype("datetime64[ms]").astype(object)
        pv = np.array([np.nan if v is None else v for v in series["pvir2"]])
        valid, bare, rej = (np.array(series[k], dtype=bool) for k in ("valid", "bare", "rejected"))
        other = valid & ~bare & ~rej
        ax.plot(t[valid], pv[valid], color="0.75", lw=0.8, zorder=1)
        ax.scatter(t[other], pv[other], s=10, color="#2e8b3a", label="valid, not bare", zorder=2)
        ax.scatter(t[bare], pv[bare], s=18, color="#c8843c", edgecolor="k", lw=0.4, label="bare", zorder=3)
        ax.scatter(t[rej], pv[rej], s=24, marker="x", color="#d62728", label="rejected (blue outlier)", zorder=3)
        ax.axhline(series["threshold"], color="k", ls="--", lw=0.8, label=f"threshold {series['threshold']:g}")
        ax.set_ylabel("PV+IR2 (NDVI + NBR)")
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
        fig.suptitle(f"{series['n_bare']} bare of {series['n_valid']} valid observations "
                     f"(pixel row {series['row']}, col {series['col']})", fontsize=8)
        ax.legend(fontsize=6, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=4, frameon=False,
                  borderaxespad=0.2)
        ax.tick_params(labelsize=7)
        ax.yaxis.label.set_size(8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
