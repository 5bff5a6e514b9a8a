"""Validation of soil models: out-of-bag, k-fold and spatially blocked k-fold cross-validation.

Metrics are pooled over all held-out predictions (not averaged over folds):

- RMSE = sqrt(mean((pred - obs)^2))
- R2 = 1 - SSE/SST with SSE = sum((obs - pred)^2), SST = sum((obs - mean(obs))^2)
- bias = mean(pred - obs) (positive: the model over-predicts)
- PICP = share of observations inside the 90 % prediction interval [Q0.05, Q0.95]
  (``Q0.05 <= obs <= Q0.95``, ties inside)
- below / above = shares strictly below Q0.05 and strictly above Q0.95 (0.05 each if the
  interval is balanced; PICP = 1 - below - above)
- MPIW = mean width of that interval

The mean prediction is used for RMSE, R2 and bias. A report (markdown + HTML + PNG plots +
predictions CSV + metrics JSON) is written by :meth:`ValidationResult.write`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from .model import SoilModel, check_float32, qname, tail_shares

#: Quantiles predicted in cross-validation for the coverage-by-quantile plot.
CALIBRATION_QUANTILES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def at_map_precision(*arrays: Any) -> list[np.ndarray]:
    """The arrays rounded to float32 (the precision of the predicted maps), returned as float64.

    Predictions are float32 (``SoilModel.predict_array``, the COGs), and a QRF quantile is one of
    the training values: compared with a float64 observation of the same lab value, its float32
    rounding (e.g. 0.93 -> 0.9300000072) would turn a tie into "below" or "above" at random.
    Rounding the observation the same way keeps a tie a tie, as the calibration counts it
    (``lo <= y <= hi`` is inside); values further apart than a float32 step (relative 6e-8)
    compare as before.
    """
    return [np.asarray(a, dtype="float64").astype("float32").astype("float64") for a in arrays]


def metrics(obs: Any, pred: Any, lo: Any = None, hi: Any = None) -> dict[str, float]:
    """Pooled validation metrics.

    Parameters
    ----------
    obs, pred : array-like
        Observations and (mean) predictions, same unit.
    lo, hi : array-like, optional
        Lower and upper bounds of the 90 % prediction interval (Q0.05, Q0.95).

    Returns
    -------
    dict
        ``n``, ``rmse``, ``r2``, ``bias``, ``mae`` and, with bounds, ``picp``, ``below``
        (share strictly below ``lo``), ``above`` (share strictly above ``hi``), ``mpiw``.
        Observations and bounds are compared at float32 precision (:func:`at_map_precision`),
        so an observation equal to a bound counts as inside.
    """
    o = np.asarray(obs, dtype="float64")
    p = np.asarray(pred, dtype="float64")
    ok = np.isfinite(o) & np.isfinite(p)
    o, p = o[ok], p[ok]
    if o.size < 2:
        raise InputError(f"need at least 2 predictions to compute metrics, got {o.size}")
    sse = float(np.sum((o - p) ** 2))
    sst = float(np.sum((o - o.mean()) ** 2))
    out = {"n": int(o.size), "rmse": float(np.sqrt(sse / o.size)),
           "r2": 1.0 - sse / sst if sst > 0 else float("nan"),
           "bias": float(np.mean(p - o)), "mae": float(np.mean(np.abs(p - o)))}
    if lo is not None and hi is not None:
        lo_ = np.asarray(lo, dtype="float64")[ok]
        hi_ = np.asarray(hi, dtype="float64")[ok]
        o32, lo32, hi32 = at_map_precision(o, lo_, hi_)
        out["picp"] = float(np.mean((o32 >= lo32) & (o32 <= hi32)))
        out["below"], out["above"] = tail_shares(o32, lo32, hi32)
        out["mpiw"] = float(np.mean(hi_ - lo_))
    return out


def random_folds(n: int, k: int = 10, seed: int = 0) -> np.ndarray:
    """Random fold labels 0..k-1 with sizes differing by at most one."""
    if not 2 <= k <= n:
        raise ConfigError(f"k must be within 2..{n} (number of samples), got {k}")
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % k)


def spatial_blocks(coords: Any, block_size: float) -> np.ndarray:
    """Square block id of each point: blocks of ``block_size`` (CRS units) on a grid anchored
    at the minimum x/y of the points. Returns int64 ids."""
    c = np.asarray(coords, dtype="float64")
    if not block_size > 0:
        raise ConfigError(f"block_size must be > 0 (CRS units, m), got {block_size}")
    bx = np.floor((c[:, 0] - c[:, 0].min()) / block_size).astype(np.int64)
    by = np.floor((c[:, 1] - c[:, 1].min()) / block_size).astype(np.int64)
    _, ids = np.unique(np.column_stack([bx, by]), axis=0, return_inverse=True)
    return ids.ravel().astype(np.int64)


def spatial_folds(coords: Any, block_size: float, k: int = 10, seed: int = 0) -> np.ndarray:
    """Spatially blocked fold labels 0..k-1: every point of a square block gets the same fold.

    Blocks are shuffled, then assigned largest first to the fold with the fewest points so far
    (balanced folds).

    Parameters
    ----------
    coords : ndarray [n, 2]
        x, y in a projected CRS.
    block_size : float
        Side of the square blocks (CRS units, m). Choose it at least as large as the range of
        spatial autocorrelation of the residuals.
    k : int
        Folds; must not exceed the number of non-empty blocks.
    """
    blocks = spatial_blocks(coords, block_size)
    nb = int(blocks.max()) + 1
    if nb < k:
        raise ConfigError(f"only {nb} non-empty blocks of {block_size:g} for {k} folds; "
                          "use a smaller block_size or fewer folds")
    counts = np.bincount(blocks, minlength=nb)
    rng = np.random.default_rng(seed)
    order = rng.permutation(nb)
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(k, dtype=np.int64)
    fold_of_block = np.empty(nb, dtype=np.int64)
    for b in order:
        f = int(np.argmin(load))
        fold_of_block[b] = f
        load[f] += counts[b]
    return fold_of_block[blocks]


@dataclass
class ValidationResult:
    """Held-out predictions and pooled metrics of one validation.

    Attributes
    ----------
    method : str
        ``oob``, ``kfold``, ``spatial`` or ``folds`` (user folds).
    target, unit : str
    predictions : DataFrame
        Per sample: ``obs``, ``mean``, quantile columns, ``fold``, ``x``, ``y``.
    metrics : dict
        See :func:`metrics`.
    importances : Series
        Variable importance of the fitted model (OOB, or a fitted model validated on its own
        training data), else the mean over the fold models.
    info : dict
        Parameters of the validation (k, block size, seeds, model parameters).
    """

    method: str
    target: str
    unit: str
    predictions: pd.DataFrame
    metrics: dict[str, float]
    importances: pd.Series
    info: dict = field(default_factory=dict)

    def coverage(self) -> pd.DataFrame:
        """Observed share below each predicted quantile vs the nominal level.

        Ties count as the interval counts them (and as the calibration does): below a lower
        quantile (``q < 0.5``) means ``obs < Q``, below an upper one ``obs <= Q``, and at the
        median a tie counts half. Compared at float32 precision (:func:`at_map_precision`).
        """
        rows = []
        (o,) = at_map_precision(self.predictions["obs"].to_numpy())
        for q in CALIBRATION_QUANTILES:
            c = qname(q)
            if c in self.predictions:
                (v,) = at_map_precision(self.predictions[c].to_numpy())
                share = (np.mean(o < v) if q < 0.5 else np.mean(o <= v) if q > 0.5
                         else np.mean(o < v) + 0.5 * np.mean(o == v))
                rows.append({"nominal": q, "observed": float(share)})
        return pd.DataFrame(rows)

    def summary_line(self) -> str:
        m = self.metrics
        tails = f" (below Q05 {m['below']:.3f}, above Q95 {m['above']:.3f})" if "below" in m else ""
        return (f"{self.target} [{self.unit}] {self.method}: n={m['n']} RMSE={m['rmse']:.4g} "
                f"R2={m['r2']:.3f} bias={m['bias']:.3g} PICP90={m.get('picp', float('nan')):.3f}{tails}")

    def to_markdown(self, images: dict[str, str] | None = None) -> str:
        m = self.metrics
        lines = [f"# Validation of the {self.target} model ({self.method})", "",
                 "| metric | value |", "|---|---|",
                 f"| samples | {m['n']} |",
                 f"| RMSE | {m['rmse']:.4g} {self.unit} |",
                 f"| R2 (1 - SSE/SST, pooled) | {m['r2']:.3f} |",
                 f"| bias (mean pred - obs) | {m['bias']:.4g} {self.unit} |",
                 f"| MAE | {m['mae']:.4g} {self.unit} |"]
        if "aoa_share" in m:
            lines.append(f"| held-out samples inside the area of applicability | {m['aoa_share']:.3f} (share) |")
        if "picp" in m:
            lines += [f"| PICP of the 90 % interval | {m['picp']:.3f} (nominal 0.90; an observation equal to a "
                      "bound at the maps' float32 precision counts as inside) |",
                      f"| share below Q0.05 / above Q0.95 | {m['below']:.3f} / {m['above']:.3f} (nominal 0.05 each) |",
                      f"| mean 90 % interval width | {m['mpiw']:.4g} {self.unit} |"]
        lines += ["", "Point prediction: the forest mean (`mean`, map `<target>_mean.tif`); RMSE, R2, bias "
                  "and MAE are of the mean. Q0.05/Q0.50/Q0.95 describe the uncertainty: the calibrated "
                  "median Q0.50 is the interval's centre, not the best point prediction (its squared error "
                  "is larger). See docs/dsm.md, 'Which map to read'."]
        cal = self.info.get("calibration")
        if cal:
            lines += ["", f"Quantile-level calibration: {cal}."]
        lines += ["", "## Settings", "", "| setting | value | unit |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {u} |" for k, v, u in settings_rows(self.info, self.unit)]
        if images:
            lines += ["", "## Plots", ""]
            lines += [f"![{k}]({v})" for k, v in images.items()]
        imp = self.importances.sort_values(ascending=False)
        lines += ["", "## Variable importance (impurity decrease)", "",
                  "| covariate | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in imp.items()]
        return "\n".join(lines) + "\n"

    def _plots(self, folder: Path) -> dict[str, str]:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        p = self.predictions
        lo, hi = qname(0.05), qname(0.95)
        images = {}
        # observed vs predicted
        fig, ax = plt.subplots(figsize=(5, 5))
        if lo in p and hi in p:
            ax.errorbar(p["mean"], p["obs"], xerr=[p["mean"] - p[lo], p[hi] - p["mean"]], fmt="none",
                        ecolor="0.75", lw=0.8, zorder=1,
                        label="90 % prediction interval (Q0.05 to Q0.95)")
        ax.scatter(p["mean"], p["obs"], s=12, c="tab:blue", zorder=2, label="sample (held-out forest mean)")
        lim = [np.nanmin([p["obs"].min(), p["mean"].min()]), np.nanmax([p["obs"].max(), p["mean"].max()])]
        ax.plot(lim, lim, "k--", lw=1, label="1:1 line")
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.set_xlabel(f"predicted {self.target} [{self.unit}]")
        ax.set_ylabel(f"observed {self.target} [{self.unit}]")
        ax.set_title(f"{self.method}: R2={self.metrics['r2']:.2f}, RMSE={self.metrics['rmse']:.3g}")
        fig.tight_layout()
        fig.savefig(folder / "observed_vs_predicted.png", dpi=110)
        plt.close(fig)
        images["observed vs predicted"] = "observed_vs_predicted.png"
        # residual map
        if p["x"].notna().all():
            fig, ax = plt.subplots(figsize=(6, 5))
            r = p["mean"] - p["obs"]
            v = float(np.nanmax(np.abs(r))) or 1.0
            crs = self.info.get("crs")
            geographic = crs is not None and "4326" in str(crs)
            f, unit = (1.0, "degrees") if geographic or crs is None else (1e-3, "km")
            sc = ax.scatter(p["x"] * f, p["y"] * f, c=r, cmap="RdBu_r", vmin=-v, vmax=v, s=18, edgecolors="0.3",
                            linewidths=0.3)
            cb = fig.colorbar(sc, ax=ax, label=f"residual: predicted - observed [{self.unit}]")
            cb.formatter.set_useOffset(False)
            ax.ticklabel_format(useOffset=False, style="plain")
            where = f"{unit}, {crs}" if crs else "sample coordinate units"
            ax.set_xlabel(f"{'longitude' if geographic else 'easting'} ({where})")
            ax.set_ylabel(f"{'latitude' if geographic else 'northing'} ({where})")
            ax.set_aspect("equal")
            ax.set_title("residuals at the sample locations (red: over-, blue: under-predicted)", fontsize=9)
            fig.tight_layout()
            fig.savefig(folder / "residual_map.png", dpi=110)
            plt.close(fig)
            images["residual map"] = "residual_map.png"
        # importance
        imp = self.importances.sort_values()
        fig, ax = plt.subplots(figsize=(5, max(2.5, 0.25 * len(imp) + 1)))
        ax.barh(imp.index, imp.to_numpy(), color="tab:green")
        ax.set_xlabel("importance (impurity decrease)")
        fig.tight_layout()
        fig.savefig(folder / "importance.png", dpi=110)
        plt.close(fig)
        images["variable importance"] = "importance.png"
        # coverage by quantile
        cov = self.coverage()
        if len(cov):
            fig, ax = plt.subplots(figsize=(5, 5))
            ax.plot([0, 1], [0, 1], "k--", lw=1)
            ax.plot(cov["nominal"], cov["observed"], "o-", color="tab:orange")
            ax.set_xlabel("nominal quantile level")
            ax.set_ylabel("share of observations below the predicted quantile")
            ax.set_title(f"coverage by quantile (PICP90 = {self.metrics.get('picp', float('nan')):.2f})")
            fig.tight_layout()
            fig.savefig(folder / "coverage.png", dpi=110)
            plt.close(fig)
            images["coverage by quantile"] = "coverage.png"
        return images

    def write(self, folder: str | Path, *, overwrite: bool = False, force_clean: bool = False) -> Path:
        """Write ``report.md``, ``report.html``, PNG plots, ``predictions.csv``, ``metrics.json``.

        The files are written into a scratch folder and moved in when complete. An earlier
        report in ``folder`` is replaced only with ``overwrite=True``, and only the files
        soilsuite wrote: files of the user's in the folder make it refuse (``force_clean``
        keeps them and writes beside them), see :mod:`soilsuite.io.manifest`.
        """
        from ..io.manifest import OutputFolder

        def fill(tmp: Path) -> None:
            images = self._plots(tmp)
            md = self.to_markdown(images)
            (tmp / "report.md").write_text(md)
            (tmp / "report.html").write_text(_html(md, self))
            self.predictions.to_csv(tmp / "predictions.csv", index_label="sample")
            (tmp / "metrics.json").write_text(json.dumps(
                {"method": self.method, "target": self.target, "unit": self.unit, **self.metrics,
                 "info": {k: str(v) for k, v in self.info.items()}}, indent=2))

        folder = Path(folder)
        OutputFolder(folder, "validation-report").build(fill, overwrite=overwrite, force_clean=force_clean,
                                                         what="report")
        return folder


#: Units of the validation settings (``ValidationResult.info`` keys and model parameters).
SETTING_UNITS = {"k": "folds", "seed": "", "block_size": "CRS units (m for a projected CRS)", "blocks": "count",
                 "n_estimators": "trees", "min_samples_leaf": "samples", "max_features": "share of covariates",
                 "max_depth": "levels", "min_samples_split": "samples", "max_samples": "share of samples",
                 "quantiles": "quantile levels (0-1)", "random_state": "", "n_jobs": "processes"}


def settings_rows(info: dict, unit: str = "") -> list[tuple[str, str, str]]:
    """``(setting, value, unit)`` rows of a validation's settings: nested dicts (the model's
    parameters) are flattened as ``model: <name>``; values are shown plainly (not as Python)."""

    def show(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, list | tuple):
            return ", ".join(show(x) for x in v)
        return "none" if v is None else str(v)

    rows = []
    for k, v in info.items():
        if isinstance(v, dict):
            rows += [(f"model: {kk}", show(vv), SETTING_UNITS.get(kk, "")) for kk, vv in v.items()]
        else:
            rows.append((k, show(v), SETTING_UNITS.get(k, "")))
    return rows


def _html(md: str, res: ValidationResult) -> str:
    """A small self-contained HTML rendering of the report (tables, lists, images)."""
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>{html.escape(res.target)} validation</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
           "img{max-width:48%;margin:4px}</style></head><body>"]
    in_table = in_list = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("!["):
            alt, src = line[2:].split("](")
            out.append(f"<img alt='{html.escape(alt)}' src='{html.escape(src.rstrip(')'))}'>")
        elif line.startswith("#"):
            lvl = len(line) - len(line.lstrip("#"))
            out.append(f"<h{lvl}>{html.escape(line.lstrip('#').strip())}</h{lvl}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def _training(model: SoilModel, X: Any, y: Any, coords: Any):
    if X is None:
        if not hasattr(model, "X_train_"):
            raise ConfigError("give X and y, or a fitted model (its training data is used)")
        return (model.X_train_, model.y_train_, model.coords_train_, model.index_train_,
                list(model.feature_names_))
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    idx = X.index.to_numpy() if isinstance(X, pd.DataFrame) else np.arange(len(X))
    X64 = np.asarray(X, dtype="float64")
    Xa = X64.astype("float32")
    check_float32(X64, Xa, names or [f"x{i}" for i in range(Xa.shape[1])], what=str(model.target))
    ya = np.asarray(y, dtype="float64")
    ok = np.isfinite(ya) & np.isfinite(Xa).all(axis=1)
    c = None if coords is None else np.asarray(coords, dtype="float64")[ok]
    return Xa[ok], ya[ok], c, idx[ok], names or [f"x{i}" for i in range(Xa.shape[1])]


def _short(names: list, n: int = 12) -> str:
    """Covariate names for a report: all of them, or the first ``n`` and how many in all."""
    names = [str(v) for v in names]
    return ", ".join(names) if len(names) <= n else f"{', '.join(names[:n])} ... ({len(names)} in all)"


def _reduction_label(model: Any) -> str:
    """Short label of a fitted model's covariate reduction: ``none``, ``filter``, ``pca:10``
    (components)."""
    r = getattr(model, "reducer_", None)
    if r is None or r.method_used_ == "none":
        return "none"
    return f"pca:{r.pca_.n_components_}" if r.method_used_ == "pca" else "filter"


def cross_validate(
    model: SoilModel,
    X: Any = None,
    y: Any = None,
    *,
    method: str = "kfold",
    k: int = 10,
    folds: Any = None,
    coords: Any = None,
    block_size: float | None = None,
    seed: int = 0,
    progress: Any = None,
) -> ValidationResult:
    """Validate a soil model by out-of-bag predictions or (spatially blocked) k-fold CV.

    Parameters
    ----------
    model : SoilModel
        Fitted (its training data is used) or a template with ``X``/``y``. Each fold fits a
        clone with the same parameters (including tuning, which then runs inside the fold).
    X, y : optional
        Covariates and target (default: the model's training data).
    method : {"kfold", "spatial", "oob", "folds"}
        Random k-fold, spatially blocked k-fold (needs coordinates and ``block_size``),
        out-of-bag predictions of the fitted model, or the given ``folds``.
    k : int
        Number of folds.
    folds : array-like, optional
        Fold labels per sample (any values); implies ``method="folds"``.
    coords : ndarray [n, 2], optional
        Sample coordinates (default: the model's).
    block_size : float, optional
        Block side for ``spatial`` (CRS units, m).
    seed : int
        Seed of the fold assignment.
    progress : callable, optional
        Called with ``(done, total)`` after each fold.

    Returns
    -------
    ValidationResult
    """
    from sklearn.base import clone

    if folds is not None:
        method = "folds"
    if method not in {"kfold", "spatial", "oob", "folds"}:
        raise ConfigError(f"method must be kfold, spatial, oob or folds, got {method!r}")
    if getattr(model, "target", None) is None:
        name = getattr(y, "name", None)
        if not (isinstance(name, str) and name.strip()):
            raise ConfigError("cross_validate: the model has no target name and y has none; "
                              "give SoilModel(target='clay', unit='g/100g')")
        model = clone(model).set_params(target=name.strip())
    Xa, ya, c, idx, names = _training(model, X, y, coords)
    if coords is not None and X is None:
        c = np.asarray(coords, dtype="float64")
    qs = sorted(set(model.quantiles) | set(CALIBRATION_QUANTILES))
    info: dict[str, Any] = {"method": method, "model parameters": model.get_params(),
                            "crs": getattr(model, "crs_", None)}
    cal = getattr(model, "calibration_", None)
    if cal is not None and X is None:
        info["calibration"] = ("on, " + str(cal.get("n_oob")) + " out-of-bag samples; " + cal.get("rule", "")
                               if cal.get("calibrated") else "off: " + str(cal.get("reason")))
    if method == "oob":
        fitted = model if X is None else clone(model).fit(pd.DataFrame(Xa, columns=names), ya, coords=c)
        pred = fitted.oob_predict(qs)
        fl = np.full(len(ya), -1)
        importances = fitted.importances_
    else:
        if method == "kfold":
            fl = random_folds(len(ya), k, seed)
            info.update(k=k, seed=seed)
        elif method == "spatial":
            if c is None:
                raise ConfigError("spatial cross-validation needs sample coordinates")
            if block_size is None:
                raise ConfigError("spatial cross-validation needs block_size (CRS units, m)")
            fl = spatial_folds(c, block_size, k, seed)
            info.update(k=k, block_size=block_size, seed=seed, blocks=int(spatial_blocks(c, block_size).max() + 1))
        else:
            fl = np.asarray(folds)
            if len(fl) != len(ya):
                raise InputError(f"{len(fl)} fold labels for {len(ya)} samples")
            info.update(k=len(np.unique(fl)))
        out = np.full((len(ya), 1 + len(qs)), np.nan)
        labels = np.unique(fl)
        if len(labels) < 2:
            raise ConfigError(f"cross-validation needs at least 2 folds, got {len(labels)}")
        imps = []
        reductions = []
        trends = []
        di = np.full(len(ya), np.nan)
        inside = np.full(len(ya), np.nan)
        for i, f in enumerate(labels):
            te = fl == f
            m = clone(model)
            # coordinates go with the rows: spatial models (dsm/spatial.py) refit their
            # coordinates / distances / residual kriging on the training fold only
            m.fit(pd.DataFrame(Xa[~te], columns=names), ya[~te], coords=None if c is None else c[~te])
            out[te] = m.predict_array(Xa[te], qs, coords=None if c is None else c[te])
            imps.append(m.importances_)
            reductions.append(_reduction_label(m))
            trends.append((getattr(m, "trend_", None) or {}).get("used", "none"))
            if hasattr(m, "dissimilarity") and getattr(m, "aoa_", None):
                di[te] = m.dissimilarity(Xa[te])
                inside[te] = di[te] <= m.aoa_["threshold"]
            if progress is not None:
                progress(i + 1, len(labels))
        pred = pd.DataFrame(out, index=idx, columns=["mean", *[qname(q) for q in qs]])
        if np.isfinite(di).any():
            pred["di"] = di
            pred["inside_aoa"] = inside
        counts = pd.Series(reductions).value_counts()
        info["reduction per fold"] = ", ".join(f"{k} x{v}" for k, v in counts.items())
        info["trend per fold"] = ", ".join(f"{k} x{v}" for k, v in pd.Series(trends).value_counts().items())
        info["cv design"] = (f"{len(labels)} folds ({method}); covariate reduction and calibration refitted in "
                             "each fold on its training rows only")
        # importance of the fitted model if there is one, else the mean over the fold models
        importances = (model.importances_ if hasattr(model, "forest_") and X is None
                       else pd.concat(imps, axis=1).mean(axis=1))
    pred.index = idx
    pred.insert(0, "obs", ya)
    pred["fold"] = fl
    pred["x"] = c[:, 0] if c is not None else np.nan
    pred["y"] = c[:, 1] if c is not None else np.nan
    met = metrics(pred["obs"], pred["mean"], pred[qname(0.05)], pred[qname(0.95)])
    if "inside_aoa" in pred:
        met["aoa_share"] = float(np.nanmean(pred["inside_aoa"]))
    fitted_red = getattr(model, "reducer_", None) if X is None else None
    if fitted_red is not None and fitted_red.summary_.get("method") != getattr(model, "reduce", None):
        fitted_red = None  # validated with another reduce= than the model was fitted with
    if fitted_red is not None:
        info["reduction"] = fitted_red.describe()
        info["covariates after reduction"] = _short(fitted_red.names_out_)
    else:
        info["reduction"] = f"reduce={getattr(model, 'reduce', 'none')} (see reduction per fold)"
    info["covariates"] = _short(names)
    if "spatial" in model.get_params():
        info["spatial option"] = model.get_params()["spatial"]
    if "trend" in model.get_params():
        tr = getattr(model, "trend_", None) if X is None else None
        info["trend"] = (f"trend={model.get_params()['trend']}"
                         + (f": used {tr['used']}" + (f" ({tr['reason']})" if tr.get("reason") else "") if tr else
                            " (see trend per fold)"))
    return ValidationResult(method, model.target, model.unit_, pred, met, importances, info)
