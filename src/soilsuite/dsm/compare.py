"""Compare candidate soil models under the same cross-validation (``soilsuite dsm compare``).

Every candidate is validated on the same folds (spatially blocked k-fold by default, see
:func:`~soilsuite.dsm.validation.spatial_folds`); each fold refits the candidate, including
its covariate reduction, on the training rows only. The result is one table (R2, RMSE, bias,
MAE, PICP of the 90 % interval, share of held-out samples inside the area of applicability),
one plot, and the best candidate (highest pooled R2; within :data:`TIE_R2` of it the simpler
one) refitted on all samples.

The candidates are data (:data:`CANDIDATES`): a name, a description, the
:class:`~soilsuite.dsm.model.SoilModel` parameters that make it, a simplicity rank for ties,
and the model parameter it needs (a candidate whose parameter the installed ``SoilModel`` does
not have, e.g. the spatial options, is left out). Add one by appending a :class:`Candidate`.

The OLS candidate is the floor: scikit-learn ``LinearRegression`` on standardised covariates
(after the ``auto`` covariate reduction, so a wide spectral stack gives principal components
rather than an under-determined fit), with a normal-theory 90 % interval
(``mean +- t(q, n - p - 1) * s * sqrt(1 + 1/n)``). It is a yardstick, not a map model: if it
wins, the table says so and the best forest candidate is the one refitted and saved.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..errors import ConfigError, InputError
from .model import SoilModel, training_table
from .validation import ValidationResult, cross_validate

#: Candidates within this pooled R2 of the best count as tied; the simplest of them wins.
TIE_R2 = 0.005


@dataclass(frozen=True)
class Candidate:
    """One candidate model of :func:`compare`.

    Attributes
    ----------
    name : str
        Short name (table row, ``--candidates``).
    description : str
        One line for the table.
    params : dict
        :class:`SoilModel` parameters (over the common ones), or OLS options for ``kind="ols"``.
    simplicity : int
        Lower is simpler; decides ties.
    kind : {"qrf", "ols"}
    needs : str, optional
        A :class:`SoilModel` parameter the candidate needs (else it is skipped).
    """

    name: str
    description: str
    params: dict = field(default_factory=dict)
    simplicity: int = 0
    kind: str = "qrf"
    needs: str | None = None


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("ols", "OLS on standardised covariates (auto reduction): the floor", {}, 0, "ols"),
    Candidate("qrf", "quantile regression forest, covariates as given (+ linear trend if it helps)",
              {"reduce": "none"}, 1),
    Candidate("qrf_reduced", "QRF on PCA of the collinear covariates (components by out-of-bag error)",
              {"reduce": "pca"}, 2),
    Candidate("qrf_xy", "QRF + sample coordinates as covariates", {"spatial": "xy"}, 3, needs="spatial"),
    Candidate("qrf_distances", "QRF + buffer distances to reference points (RFsp)", {"spatial": "distances"}, 4,
              needs="spatial"),
    Candidate("qrf_rk", "QRF + kriging of its residuals (regression kriging)", {"spatial": "rk"}, 5,
              needs="spatial"),
)


class OLSModel(BaseEstimator):
    """Ordinary least squares on standardised (reduced) covariates with a t-interval (the floor).

    Same interface as :class:`SoilModel` where :func:`cross_validate` needs it (``fit``,
    ``predict_array``, ``importances_``, ``target``, ``unit_``, ``quantiles``).
    """

    def __init__(self, target: str | None = None, quantiles: Sequence[float] = (0.05, 0.5, 0.95),
                 unit: str | None = None, reduce: str = "auto", random_state: int = 0, n_jobs: int | None = None):
        self.target = target
        self.quantiles = quantiles
        self.unit = unit
        self.reduce = reduce
        self.random_state = random_state
        self.n_jobs = n_jobs

    @property
    def unit_(self) -> str:
        return self.unit if self.unit else "unknown"

    def fit(self, X: Any, y: Any, **_: Any) -> OLSModel:
        from sklearn.linear_model import LinearRegression
        from sklearn.preprocessing import StandardScaler

        from .reduce import make_reducer

        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        Xa = np.asarray(X, dtype="float64")
        ya = np.asarray(y, dtype="float64")
        ok = np.isfinite(ya) & np.isfinite(Xa).all(axis=1)
        Xa, ya = Xa[ok], ya[ok]
        if len(ya) < 3:
            raise InputError(f"{self.target}: OLS needs at least 3 usable samples, got {len(ya)}")
        self.feature_names_ = names or [f"x{i}" for i in range(Xa.shape[1])]
        self.reducer_ = make_reducer(self.reduce, feature_names=self.feature_names_,
                                     random_state=self.random_state, n_jobs=self.n_jobs).fit(Xa, ya)
        Z = self.reducer_.transform(Xa).astype("float64")
        self.scaler_ = StandardScaler().fit(Z)
        self.lm_ = LinearRegression().fit(self.scaler_.transform(Z), ya)
        res = ya - self.lm_.predict(self.scaler_.transform(Z))
        n, p = Z.shape
        self.dof_ = max(n - p - 1, 1)
        self.sigma_ = float(np.sqrt(np.sum(res ** 2) / self.dof_))
        self.n_train_ = n
        coef = np.abs(self.lm_.coef_)
        self.importances_ = pd.Series(coef / coef.sum() if coef.sum() > 0 else coef, index=self.reducer_.names_out_)
        return self

    def predict_array(self, X: np.ndarray, quantiles: Sequence[float] | None = None, coords: Any = None) -> np.ndarray:
        """Mean and quantiles [n, 1 + n_quantiles] (float32; NaN rows where a covariate is NaN);
        ``coords`` is accepted for the interface and not used."""
        from scipy.stats import t

        qs = list(self.quantiles if quantiles is None else quantiles)
        X = np.asarray(X, dtype="float64")
        out = np.full((len(X), 1 + len(qs)), np.nan, dtype=np.float32)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            Z = self.scaler_.transform(self.reducer_.transform(X[ok]).astype("float64"))
            m = self.lm_.predict(Z)
            s = self.sigma_ * np.sqrt(1 + 1 / self.n_train_)
            out[ok, 0] = m
            for j, q in enumerate(qs):
                out[ok, 1 + j] = m + s * t.ppf(q, self.dof_)
        return out


@dataclass
class Comparison:
    """Result of :func:`compare`: the table, each candidate's validation, the best one.

    Attributes
    ----------
    table : DataFrame
        One row per candidate: ``candidate``, ``description``, ``n``, ``r2``, ``rmse`` and ``bias``
        and ``mae`` (target unit), ``picp`` (share inside the 90 % interval), ``aoa_share``,
        ``reduction`` (per fold), ``seconds``, ``error`` (why a candidate failed, else empty).
    results : dict
        Candidate name -> :class:`ValidationResult`.
    best : str
        Name of the best candidate (highest pooled R2, ties within :data:`TIE_R2` to the simpler).
    saved : str
        Name of the candidate refitted on all samples (``best`` unless that is OLS).
    model : SoilModel or None
        The refitted ``saved`` candidate.
    info : dict
        Target, unit, CV design (method, folds, block size, seed), common model parameters.
    """

    table: pd.DataFrame
    results: dict[str, ValidationResult]
    best: str
    saved: str
    model: Any
    info: dict

    def to_markdown(self) -> str:
        u = self.info.get("unit", "")
        lines = [f"# Model comparison: {self.info.get('target')} [{u}]", "",
                 f"Cross-validation: {self.info.get('cv design')}. Metrics pooled over all held-out "
                 "predictions; every candidate saw the same folds.", "",
                 f"| candidate | description | R2 | RMSE [{u}] | bias [{u}] | MAE [{u}] | PICP90 | inside AOA "
                 "| reduction (folds) | time (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.table.to_dict("records"):
            if r.get("error"):
                lines.append(f"| {r['candidate']} | {r['description']} | failed: {r['error']} | | | | | | | |")
                continue
            mark = " (best)" if r["candidate"] == self.best else ""
            lines.append(f"| {r['candidate']}{mark} | {r['description']} | {r['r2']:.3f} | {r['rmse']:.4g} | "
                         f"{r['bias']:.3g} | {r['mae']:.4g} | {r['picp']:.3f} | {_fmt(r.get('aoa_share'))} | "
                         f"{r.get('reduction', '')} | {r['seconds']:.1f} |")
        lines += ["", f"Best: **{self.best}** (highest R2; candidates within {TIE_R2} of it count as tied and "
                  "the simpler wins)."]
        if self.saved != self.best:
            lines.append(f"The OLS floor won; the best forest candidate, **{self.saved}**, is the one refitted "
                         "(OLS gives no quantile maps or area of applicability).")
        lines += ["", "![comparison](comparison.png)", ""]
        return "\n".join(lines)

    def _plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        t = self.table[self.table["error"] == ""]
        fig, axes = plt.subplots(1, 2, figsize=(9, max(2.5, 0.45 * len(t) + 1.2)), sharey=True)
        colors = ["tab:orange" if c == self.best else "tab:blue" for c in t["candidate"]]
        axes[0].barh(t["candidate"], t["r2"], color=colors)
        axes[0].set_xlabel("R2 (1 - SSE/SST, pooled over held-out samples)")
        axes[0].axvline(0, color="k", lw=0.8)
        axes[1].barh(t["candidate"], t["picp"], color=colors)
        axes[1].axvline(0.9, color="k", ls="--", lw=1, label="nominal 0.90")
        axes[1].set_xlim(0, 1)
        axes[1].set_xlabel("PICP of the 90 % interval")
        axes[1].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"{self.info.get('target')}: {self.info.get('cv design')}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def write(self, folder: str | Path, *, overwrite: bool = False, force_clean: bool = False) -> Path:
        """Write ``comparison.md``, ``comparison.csv``, ``comparison.png`` and ``comparison.json``
        into ``folder`` (a scratch folder moved in when complete; see :mod:`soilsuite.io.manifest`)."""
        from ..io.manifest import OutputFolder

        def fill(tmp: Path) -> None:
            self._plot(tmp / "comparison.png")
            (tmp / "comparison.md").write_text(self.to_markdown())
            self.table.to_csv(tmp / "comparison.csv", index=False)
            (tmp / "comparison.json").write_text(json.dumps(
                {"best": self.best, "saved": self.saved, "info": {k: str(v) for k, v in self.info.items()},
                 "table": json.loads(self.table.to_json(orient="records"))}, indent=2))

        folder = Path(folder)
        OutputFolder(folder, "comparison-report").build(fill, overwrite=overwrite, force_clean=force_clean,
                                                         what="comparison report")
        return folder


def _fmt(v: Any) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.2f}"


def available_candidates(names: Sequence[str] | None = None) -> list[Candidate]:
    """The candidates to run: ``names`` (in that order) or every candidate the installed model supports."""
    supported = set(SoilModel().get_params())
    by_name = {c.name: c for c in CANDIDATES}
    if names is None:
        return [c for c in CANDIDATES if c.needs is None or c.needs in supported]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown candidates {unknown}; choose from {', '.join(by_name)}")
    out = []
    for n in names:
        c = by_name[n]
        if c.needs is not None and c.needs not in supported:
            raise ConfigError(f"candidate {n!r} needs the SoilModel option {c.needs!r}, which this version lacks")
        out.append(c)
    if not out:
        raise ConfigError("no candidates to compare")
    return out


def default_block_size(coords: np.ndarray) -> float:
    """1/8 of the larger side of the samples' extent (CRS units), as ``dsm validate``."""
    c = np.asarray(coords, dtype="float64")
    side = max(np.ptp(c[:, 0]), np.ptp(c[:, 1])) / 8.0
    return float(side) if side > 0 else 1.0


def _make(c: Candidate, common: dict) -> Any:
    if c.kind == "ols":
        keep = {k: common[k] for k in ("target", "quantiles", "unit", "random_state", "n_jobs") if k in common}
        return OLSModel(**keep, **c.params)
    return SoilModel(**{**common, **c.params})


def compare_models(X: Any, y: Any, *, target: str, unit: str | None = None, coords: Any = None, crs: Any = None,
                   method: str = "spatial", k: int = 10, block_size: float | None = None, folds: Any = None,
                   seed: int = 0, candidates: Sequence[str] | None = None, refit: bool = True,
                   progress: Callable[[str, int, int], None] | None = None, **params: Any) -> Comparison:
    """Validate the candidates on the same folds and refit the best (see the module docstring).

    Parameters
    ----------
    X : DataFrame [n, p]
        Covariates at the samples.
    y : array-like [n]
        Target values (``unit``).
    target, unit : str
        Property name and unit (reports).
    coords : ndarray [n, 2], optional
        Sample coordinates in ``crs`` (needed by ``method="spatial"`` and the spatial candidates).
    method : {"spatial", "kfold", "folds"}
        Spatially blocked k-fold (default), random k-fold, or the given ``folds``.
    k, block_size, seed
        Folds, block side (CRS units, m; default 1/8 of the sample extent), fold seed.
    folds : array-like, optional
        Fold labels (implies ``method="folds"``).
    candidates : sequence of str, optional
        Candidate names (default: every available one, :func:`available_candidates`).
    refit : bool
        Refit the best forest candidate on all samples (``Comparison.model``).
    progress : callable, optional
        ``(candidate, fold_done, folds)`` after each fold.
    **params
        Common :class:`SoilModel` parameters (``n_estimators``, ``random_state``, ...).
    """
    cands = available_candidates(candidates)
    X = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=None)
    X.columns = [str(c) for c in X.columns]
    y = np.asarray(y, dtype="float64")
    c = None if coords is None else np.asarray(coords, dtype="float64")
    ok = np.isfinite(y) & np.isfinite(X.to_numpy(dtype="float64")).all(axis=1)
    if c is not None:
        ok &= np.isfinite(c).all(axis=1)
    if ok.sum() < 10:
        raise InputError(f"{target}: only {int(ok.sum())} samples with the target and every covariate; "
                         "need at least 10 to compare models")
    Xo, yo, co = X[ok], y[ok], None if c is None else c[ok]
    if folds is not None:
        fl = np.asarray(folds)[ok]
        design = f"given folds ({len(np.unique(fl))})"
    elif method == "spatial":
        if co is None:
            raise ConfigError("spatial cross-validation needs sample coordinates (or method='kfold')")
        from .validation import spatial_blocks, spatial_folds

        bs = block_size or default_block_size(co)
        fl = spatial_folds(co, bs, k, seed)
        design = (f"spatially blocked {k}-fold, blocks of {bs:g} CRS units ({int(spatial_blocks(co, bs).max() + 1)} "
                  f"blocks), seed {seed}")
    elif method == "kfold":
        from .validation import random_folds

        fl = random_folds(len(yo), k, seed)
        design = f"random {k}-fold, seed {seed}"
    else:
        raise ConfigError(f"method must be spatial, kfold or folds, got {method!r}")
    common = {"target": target, "unit": unit, **params}
    rows, results = [], {}
    for cand in cands:
        model = _make(cand, common)
        t0 = time.perf_counter()
        prog = None if progress is None else (lambda d, n, _c=cand.name: progress(_c, d, n))
        try:
            res = cross_validate(model, Xo, yo, folds=fl, coords=co, progress=prog)
        except (InputError, ConfigError) as exc:
            rows.append({"candidate": cand.name, "description": cand.description, "error": str(exc)})
            continue
        m = res.metrics
        results[cand.name] = res
        rows.append({"candidate": cand.name, "description": cand.description, "n": m["n"], "r2": m["r2"],
                     "rmse": m["rmse"], "bias": m["bias"], "mae": m["mae"], "picp": m["picp"],
                     "below": m["below"], "above": m["above"], "aoa_share": m.get("aoa_share", np.nan),
                     "reduction": res.info.get("reduction per fold", ""),
                     "seconds": time.perf_counter() - t0, "error": ""})
    table = pd.DataFrame(rows)
    if "error" not in table:
        table["error"] = ""
    table["error"] = table["error"].fillna("")
    okt = table[table["error"] == ""]
    if okt.empty:
        raise InputError(f"{target}: every candidate failed: {'; '.join(table['error'])}")
    simp = {c.name: c.simplicity for c in cands}
    kinds = {c.name: c.kind for c in cands}

    def pick(sub: pd.DataFrame) -> str:
        top = sub["r2"].max()
        tied = sub[sub["r2"] >= top - TIE_R2]
        return min(tied["candidate"], key=lambda n: simp[n])

    best = pick(okt)
    forests = okt[[kinds[n] == "qrf" for n in okt["candidate"]]]
    saved = best if kinds[best] == "qrf" else (pick(forests) if len(forests) else best)
    info = {"target": target, "unit": unit or "unknown", "cv design": design, "samples": int(ok.sum()),
            "covariates": X.shape[1], "crs": None if crs is None else str(crs),
            "common parameters": {k_: v for k_, v in params.items()}}
    model = None
    if refit and kinds[saved] == "qrf":
        cand = next(c for c in cands if c.name == saved)
        model = _make(cand, common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # already shown during the folds
            model.fit(Xo, yo, coords=co, crs=crs, folds=fl)
        model.comparison_ = {"best": best, "saved": saved,
                             "table": table[["candidate", "r2", "rmse", "picp"]].to_dict("records")}
    return Comparison(table, results, best, saved, model, info)


def compare(samples: Any, target: str, stack: Any = None, *, point_covariates: Sequence[str] = (),
            method: str = "spatial", k: int = 10, block_size: float | None = None, folds: Any = None,
            seed: int = 0, candidates: Sequence[str] | None = None,
            progress: Callable[[str, int, int], None] | None = None, **params: Any) -> Comparison:
    """Compare the candidate models for ``target`` on samples and a covariate stack.

    As :func:`~soilsuite.dsm.train` takes them (``samples`` from
    :func:`~soilsuite.dsm.read_samples`, ``stack`` from :func:`~soilsuite.dsm.build_stack`,
    optional ``point_covariates``); the CV and candidates as :func:`compare_models`. The refitted
    best model carries the stack (``Comparison.model.save(path)`` writes a file
    ``soilsuite dsm predict`` reads).
    """
    X, y = training_table(samples, target, stack, point_covariates)
    crs = stack.crs if stack is not None else samples.crs
    coords = samples.coords(crs)
    unit = params.pop("unit", None) or samples.units.get(target) or None
    comp = compare_models(X, y, target=target, unit=unit, coords=coords, crs=crs, method=method, k=k,
                          block_size=block_size, folds=folds, seed=seed, candidates=candidates,
                          progress=progress, **params)
    if comp.model is not None:
        comp.model.stack_ = stack.to_dict() if stack is not None and not point_covariates else None
    return comp


__all__ = ["CANDIDATES", "TIE_R2", "Candidate", "Comparison", "OLSModel", "available_candidates", "compare",
           "compare_models"]
