"""Products against the simulator's truth: the numbers the demo prints and the tests check.

- **Observations** (cropland pixels, observations that passed the scene filter): precision and
  recall of the bare observations the method selected (``FLAG_BARE``) against the truth's
  "really bare" flag (soil fraction >= 85 %, clear sky); ``precision_soil50`` against a looser
  truth (soil fraction >= 50 %, clear sky): PV+IR2 also accepts half-covered observations
  (stubble, residue, emergence), its known weakness (SPEC). Recall is given over all truly
  bare observations and over those the method saw as valid (the 11 x 11 cloud dilation
  removes clear observations by design).
- **SRC_MEAN**: RMSE per band (reflectance) against the true dry-soil spectrum, on cropland
  pixels with a composite. The composite averages moist and dry bare observations, so it is
  expected darker than the dry spectrum by a few hundredths in the SWIR; the bias is reported.
- **BSF**: mean bias on cropland against the true bare frequency among truly clear
  observations (no cloud, shadow, haze or snow).
- **MASK**: confusion matrix of true land cover (rows) against MASK (columns), and the share of
  each land cover given its expected class (cropland 1, grassland and forest 2, built-up and
  water 3 when WorldCover is used).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .products import MASK_CLASSES


def _truth_codes(classes: dict) -> dict[str, int]:
    return {str(name).lower(): int(code) for code, name in classes.items()}


def observation_scores(pred_bare: np.ndarray, pred_valid: np.ndarray, true_bare: np.ndarray,
                       where: np.ndarray) -> dict[str, float]:
    """Precision / recall of bare observations [T, Y, X] over pixels ``where`` [Y, X]."""
    sel = np.broadcast_to(where, pred_bare.shape)
    p, t, v = pred_bare[sel], true_bare[sel], pred_valid[sel]
    tp = int(np.sum(p & t))
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    fn_valid = int(np.sum(~p & t & v))
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "recall_valid": tp / (tp + fn_valid) if tp + fn_valid else float("nan"),
        "n_selected": tp + fp,
        "n_true_bare": tp + fn,
    }


def evaluate(products_dir: str | Path, archive_dir: str | Path, *, flags=None) -> dict:
    """Compare a window product folder with the simulator's truth.

    Parameters
    ----------
    products_dir : str or Path
        Output folder of :func:`soilsuite.composite` on a simulated archive (same grid as the
        truth: the default grid of a single-CRS archive).
    archive_dir : str or Path
        The simulated archive (its ``truth/``).
    flags : xarray.Dataset, optional
        Output of :func:`soilsuite.pipeline.composite.observation_flags` on the same grid and
        time window, for the observation-level scores.

    Returns
    -------
    dict
        ``rmse`` {band: float}, ``bias`` {band: float}, ``bsf_bias``, ``bsf_mae``, ``mask_share``
        {landcover: share of its expected class}, ``confusion`` (pandas DataFrame, pixel counts),
        ``composite_share`` (cropland pixels with a SRC composite) and, with ``flags``, the
        observation scores (``precision``, ``recall``, ``recall_valid``, ...).
    """
    from .io.products import open_products
    from .kernels.composite import FLAG_BARE, FLAG_VALID
    from .sources.simulate import (
        TRUTH_BARE,
        TRUTH_CLASSES,
        TRUTH_CLOUD,
        TRUTH_HAZE,
        TRUTH_SHADOW,
        TRUTH_SNOW,
        load_truth,
    )

    ds = open_products(products_dir)
    truth = load_truth(archive_dir)
    if ds.sizes["y"] != truth.sizes["y"] or ds.sizes["x"] != truth.sizes["x"] or not (
        np.allclose(ds.x.values, truth.x.values) and np.allclose(ds.y.values, truth.y.values)
    ):
        raise ValueError("products and truth are on different grids (composite with the archive's own grid)")
    codes = _truth_codes(TRUTH_CLASSES)
    lc = truth["landcover"].values
    crop = lc == codes["cropland"]
    out: dict = {}

    src = ds["SRC_MEAN"].values
    soil = truth["soil_reflectance"].values.astype("float64")
    ok = crop & np.isfinite(src).all(axis=0)
    out["composite_share"] = float(ok.sum() / max(crop.sum(), 1))
    out["rmse"], out["bias"] = {}, {}
    for i, band in enumerate(ds["band"].values):
        d = src[i][ok] - soil[i][ok]
        out["rmse"][str(band)] = float(np.sqrt(np.mean(d**2))) if d.size else float("nan")
        out["bias"][str(band)] = float(np.mean(d)) if d.size else float("nan")

    obs = truth["obs_flags"].values
    clear = (obs & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW)) == 0
    bare = (obs & TRUTH_BARE) != 0
    if flags is not None:
        # restrict the truth to the observations the run used (scene filter)
        t_times = pd.DatetimeIndex(truth["time"].values).normalize()
        f_times = pd.DatetimeIndex(flags["time"].values).normalize()
        idx = t_times.get_indexer(f_times)
        if (idx < 0).any():
            raise ValueError("observation dates of the run are missing from the truth")
        clear, bare = clear[idx], bare[idx]
        fl = flags["flags"].values
        picked, valid = (fl & FLAG_BARE) != 0, (fl & FLAG_VALID) != 0
        out.update(observation_scores(picked, valid, bare, crop))
        if "soil_fraction" in truth:
            # a looser truth: soil covers at least half of the pixel and the sky is clear
            soil50 = (truth["soil_fraction"].values[idx] >= 50) & clear
            out["precision_soil50"] = observation_scores(picked, valid, soil50, crop)["precision"]
    with np.errstate(invalid="ignore", divide="ignore"):
        true_bsf = (bare & clear).sum(0) / clear.sum(0)
    bsf = ds["BSF"].values
    sel = crop & np.isfinite(bsf) & np.isfinite(true_bsf)
    out["bsf_bias"] = float(np.mean(bsf[sel] - true_bsf[sel])) if sel.any() else float("nan")
    out["bsf_mae"] = float(np.mean(np.abs(bsf[sel] - true_bsf[sel]))) if sel.any() else float("nan")

    mask = np.nan_to_num(ds["MASK"].values, nan=0).astype(int)
    names = {code: name for name, code in codes.items()}
    conf = pd.crosstab(pd.Series([names.get(int(v), str(v)) for v in lc.ravel()], name="truth"),
                       pd.Series(mask.ravel(), name="MASK"))
    conf = conf.reindex(columns=sorted(MASK_CLASSES), fill_value=0)
    out["confusion"] = conf
    expected = {"cropland": 1, "grassland": 2, "forest": 2, "built-up": 3, "water": 3}
    out["mask_share"] = {
        name: float(conf.loc[name, exp] / conf.loc[name].sum()) for name, exp in expected.items() if name in conf.index
    }
    return out


def format_metrics(m: dict) -> list[tuple[str, str]]:
    """(metric, value) rows for a table."""
    rows = []
    for k in ("precision", "recall", "recall_valid", "precision_soil50"):
        if k in m:
            rows.append((f"bare observations {k} (cropland)", f"{m[k]:.3f}"))
    rows.append(("cropland pixels with a composite", f"{m['composite_share']:.1%}"))
    rows.append(("SRC_MEAN RMSE, B04 / B08 / B11 / B12",
                 " / ".join(f"{m['rmse'][b]:.4f}" for b in ("B04", "B08", "B11", "B12"))))
    rows.append(("BSF bias / MAE (cropland)", f"{m['bsf_bias']:+.3f} / {m['bsf_mae']:.3f}"))
    for name, share in m["mask_share"].items():
        rows.append((f"MASK agreement: {name}", f"{share:.1%}"))
    return rows
