"""How much the PV+IR2 threshold matters: ``soilsuite threshold-sweep``.

One read of the archive (the composite's loader, masks and classification, tile by tile on
Dask); per tile and per threshold step the observations are classified, accumulated and
finalised exactly as a composite run at that constant threshold would, and reduced at once to
area sums (no rasters): the number of pixels with a BSF and its sum, BSC and VPC sums, and
per band the number and sum of SRC_MEAN values. Tiles merge by summation.

Outputs in the output folder: ``threshold_sweep.csv`` (one row per step) and
``threshold_sweep.png`` (BSF and SRC_MEAN per band against the threshold).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, InputError, OutputExistsError

__all__ = ["threshold_sweep", "parse_sweep", "SweepResult", "SWEEP_FILES"]

SWEEP_FILES = ("threshold_sweep.csv", "threshold_sweep.png")
MAX_STEPS = 60


def parse_sweep(text: str | tuple | list) -> list[float]:
    """``"START:STOP:STEP"`` (inclusive) -> the thresholds, e.g. ``0.10:0.30:0.05`` ->
    ``[0.1, 0.15, 0.2, 0.25, 0.3]``; a list of numbers is taken as it is.

    Raises
    ------
    ConfigError
        Not three numbers, STEP <= 0, STOP < START, a value outside [-2, 2] or more than
        ``MAX_STEPS`` steps.
    """
    if isinstance(text, (list, tuple)):
        vals = [float(v) for v in text]
    else:
        parts = str(text).split(":")
        msg = f"--thresholds {text!r}: expected START:STOP:STEP with STEP > 0 and START <= STOP, e.g. 0.10:0.30:0.05"
        try:
            a, b, s = (float(p) for p in parts)
        except ValueError:
            raise ConfigError(msg) from None
        if not (s > 0 and b >= a) or not all(np.isfinite([a, b, s])):
            raise ConfigError(msg)
        n = int(np.floor((b - a) / s + 1e-9)) + 1
        if n > MAX_STEPS:
            raise ConfigError(f"--thresholds {text!r}: {n} steps; at most {MAX_STEPS}")
        vals = [round(a + i * s, 6) for i in range(n)]
    if not vals or len(vals) > MAX_STEPS:
        raise ConfigError(f"--thresholds: expected 1 to {MAX_STEPS} thresholds, got {len(vals)}")
    if any(not -2 <= v <= 2 for v in vals):
        raise ConfigError(f"--thresholds: PV+IR2 thresholds must be in [-2, 2], got {vals}")
    return vals


@dataclass
class SweepResult:
    """The sweep's table (one row per threshold) and files."""

    table: Any  # pandas.DataFrame
    csv: Path
    plot: Path
    reference: float

    def summary(self):
        """A rich table: threshold, area BSF and its change, SRC coverage, mean |change| of SRC_MEAN."""
        from rich.table import Table

        t = Table(title=f"threshold sweep (reference {self.reference:g}) -> {self.csv}")
        t.caption = "BSF: area mean; SRC: share of pixels with SRC_MEAN, its area mean (B04 B08 B11) and the mean |change| over bands x 1e4; *: reference"
        for c in ("threshold", "BSF", "change", "SRC px", "B04", "B08", "B11", "|chg|e4"):
            t.add_column(c, justify="right")
        for _, r in self.table.iterrows():
            t.add_row(f"{r.threshold:g}" + (" *" if r.is_reference else ""), f"{r.bsf_mean:.4f}",
                      f"{r.bsf_change:+.4f}", f"{r.src_share * 100:.1f} %", f"{r.src_mean_B04:.4f}",
                      f"{r.src_mean_B08:.4f}", f"{r.src_mean_B11:.4f}", f"{r.src_abs_change_1e4:.1f}")
        return t


@dataclass
class _SweepTask:
    tile: Any
    items: list
    assets: dict
    cfg: dict
    halo: int
    steps: list[float]


def tile_reductions(inp, cfg, steps: list[float]) -> np.ndarray:
    """Area sums of one block per threshold step: float64 ``[S, 5 + 2 B]``, columns
    ``n_pixels, n_bsf, sum_bsf, sum_bsc, sum_vpc, n_src[B], sum_src[B]`` (``n_pixels``: pixels
    of the block; BSF and SRC_MEAN as :func:`soilsuite.kernels.composite.finalize` gives them,
    physical values, NaN skipped)."""
    from .kernels import composite as K
    from .pipeline.block import classify_inputs

    nb = inp.refl.shape[1]
    out = np.zeros((len(steps), 5 + 2 * nb))
    period = np.zeros(inp.refl.shape[0], np.int32)
    for i, t in enumerate(steps):
        sub = dataclasses.replace(inp, threshold=np.full(inp.valid.shape[1:], t, np.float32))
        ring = inp.aux.get("edge_ring")  # --edge-guard: the neighbours beyond the tile take the same step
        if ring is not None:
            sub.aux = {**inp.aux, "edge_ring": dataclasses.replace(ring, threshold=np.full(ring.threshold.shape, t,
                                                                                            np.float32))}
        _, flags = classify_inputs(sub, cfg)
        acc = K.accumulate(inp.refl, flags, period, 1)
        prods = K.finalize(acc, inp.other, cfg.bare.min_bare_obs, cfg.bare.ci_method)
        bsf = prods["BSF"]
        src = prods["SRC_MEAN"]
        ok = np.isfinite(bsf)
        out[i, 0] = bsf.size
        out[i, 1] = ok.sum()
        out[i, 2] = bsf[ok].sum(dtype=np.float64)
        out[i, 3] = prods["BSC"][np.isfinite(prods["BSC"])].sum(dtype=np.float64)
        out[i, 4] = prods["VPC"][np.isfinite(prods["VPC"])].sum(dtype=np.float64)
        fin = np.isfinite(src)
        out[i, 5:5 + nb] = fin.reshape(nb, -1).sum(axis=1)
        out[i, 5 + nb:] = np.where(fin, src, 0.0).reshape(nb, -1).sum(axis=1, dtype=np.float64)
    return out


def _tile_sweep(task: _SweepTask) -> np.ndarray | str:
    from .config import CompositeConfig
    from .errors import SoilsuiteError
    from .pipeline.composite import load_tile_inputs

    try:
        cfg = CompositeConfig(**task.cfg)
        inp = load_tile_inputs(task.items, task.assets, task.tile.geobox, cfg, task.halo)
        return tile_reductions(inp, cfg, task.steps)
    except SoilsuiteError as exc:
        return f"error: tile {task.tile.name}: {exc}"


def _plot(path: Path, df, bands: list[str], reference: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(df.threshold, df.bsf_mean, "o-", color="#8b4513", label="BSF (area mean)")
    a1.plot(df.threshold, df.src_share, "s--", color="#555555", label="share of pixels with SRC")
    a1.axvline(reference, color="k", lw=0.8, ls=":")
    a1.set_xlabel("PV+IR2 threshold")
    a1.set_ylabel("fraction")
    a1.legend(fontsize=8)
    for b in bands:
        a2.plot(df.threshold, df[f"src_mean_{b}"], "o-", ms=3, label=b)
    a2.axvline(reference, color="k", lw=0.8, ls=":")
    a2.set_xlabel("PV+IR2 threshold")
    a2.set_ylabel("SRC_MEAN (reflectance, area mean)")
    a2.legend(fontsize=7, ncol=2)
    fig.suptitle(f"threshold sweep (dotted: reference threshold {reference:g})", fontsize=9)
    fig.tight_layout()
    from .plots import save_png

    save_png(fig, path, overwrite=True, close=True)  # temporary name, then renamed


def threshold_sweep(
    source: str | Path,
    *,
    start: str | dt.date,
    end: str | dt.date,
    out: str | Path,
    thresholds: str | list[float] = "0.10:0.30:0.05",
    threshold: float = 0.2,
    bbox: tuple[float, float, float, float] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **options: Any,
) -> SweepResult:
    """Area BSF and SRC_MEAN per band at each of several constant PV+IR2 thresholds.

    Parameters
    ----------
    source : str or Path
        The archive, as for :func:`soilsuite.composite`.
    start, end : str or datetime.date
        Time window (inclusive).
    out : str or Path
        Output folder (created): ``threshold_sweep.csv`` and ``threshold_sweep.png``.
    thresholds : str or list of float
        ``"START:STOP:STEP"`` (inclusive, :func:`parse_sweep`) or the values.
    threshold : float
        The reference threshold (the run's ``--threshold``; added if not a step): the table's
        ``*_change`` columns are differences to it.
    bbox : (west, south, east, north), optional
        Area in degrees (or ``area=``, ``mgrs=``).
    overwrite : bool
        Replace the sweep files of an earlier run in ``out``.
    progress : bool
        Show a progress bar.
    **options
        Composite options that change the classification or the reading: ``worldcover``,
        ``selector``, ``blue_k_bare``, ``min_bare_obs``, ``max_cloud_cover``,
        ``dilation_px``, ``crs``, ``resolution``, ``tile_size``, ``max_memory``, ``scheduler``...
        (not ``threshold_raster``: a sweep is over constant thresholds).

    Returns
    -------
    SweepResult
        ``table``: one row per threshold with ``threshold``, ``is_reference``, ``bsf_mean``
        (mean BSF over pixels with a BSF, 0-1), ``bsf_change``, ``bsc_over_vpc`` (sum BSC /
        sum VPC), ``src_share`` (share of pixels with SRC_MEAN), ``src_mean_<band>``
        (reflectance 0-1, mean over pixels with SRC_MEAN), ``src_change_<band>`` and
        ``src_abs_change_1e4`` (mean over bands of |change| x 10000).
    """
    import pandas as pd

    from .calibrate import map_tiles
    from .config import parse_date
    from .pipeline.composite import build_config
    from .sentinel2 import BANDS

    if options.get("threshold_raster") is not None:
        raise ConfigError("--threshold-raster: a sweep runs constant thresholds; give --thresholds START:STOP:STEP")
    options.pop("threshold_raster", None)
    steps = parse_sweep(thresholds)
    reference = float(threshold)
    if reference not in steps:
        steps = sorted([*steps, reference])
    out = Path(out)
    files = [out / f for f in SWEEP_FILES]
    if not overwrite:
        for p in files:
            if p.exists():
                raise OutputExistsError(f"{p} exists already; use --overwrite to replace it")
    cfg = build_config(source=str(source), start=parse_date(start, "start"), end=parse_date(end, "end"), out=out,
                       bbox=bbox, threshold=reference, **options)

    def make_task(tile, items, assets, halo):
        return _SweepTask(tile, items, assets, cfg.model_dump(), halo, steps)

    _, _, results = map_tiles(cfg, _tile_sweep, make_task, progress=progress, what="threshold sweep")
    total = None
    for r in results:
        total = r if total is None else total + r
    if total is None or total[:, 1].max() == 0:
        raise InputError("threshold sweep: no pixel has a valid observation in the area and window")
    nb = len(BANDS)
    rows = []
    for i, t in enumerate(steps):
        s = total[i]
        row = {"threshold": t, "is_reference": t == reference,
               "bsf_mean": s[2] / s[1] if s[1] else np.nan,
               "bsc_over_vpc": s[3] / s[4] if s[4] else np.nan,
               "src_share": s[5] / s[0] if s[0] else np.nan}
        for b, name in enumerate(BANDS):
            n = s[5 + b]
            row[f"src_mean_{name}"] = s[5 + nb + b] / n if n else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    ref = df[df.is_reference].iloc[0]
    df.insert(3, "bsf_change", df.bsf_mean - ref.bsf_mean)
    for name in BANDS:
        df[f"src_change_{name}"] = df[f"src_mean_{name}"] - ref[f"src_mean_{name}"]
    df["src_abs_change_1e4"] = df[[f"src_change_{n}" for n in BANDS]].abs().mean(axis=1) * 1e4
    out.mkdir(parents=True, exist_ok=True)
    tmp = files[0].with_name(f"{files[0].name}.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, files[0])
    _plot(files[1], df, list(BANDS), reference)
    return SweepResult(df, files[0], files[1], reference)
