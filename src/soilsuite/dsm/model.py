"""Quantile regression forest soil model (Meinshausen 2006) with its metadata.

:class:`SoilModel` wraps :class:`quantile_forest.RandomForestQuantileRegressor` with the things
a soil map needs: the target and its unit, covariate names, training data (for out-of-bag and
cross-validation reports), training ranges and extent, an area-of-applicability reference
(Meyer & Pebesma 2021), and the covariate stack it was trained on (so ``predict`` needs only
the model file). It saves to one joblib file.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..errors import ConfigError, InputError, OutputExistsError
from .properties import PROPERTIES

#: Default tuning grid (small on purpose: the forest is robust to both).
DEFAULT_GRID: dict[str, list] = {"max_features": [0.33, 0.67, 1.0], "min_samples_leaf": [1, 3]}

#: Fewest samples with out-of-bag predictions for the quantile-level calibration.
MIN_CALIBRATION_SAMPLES = 20

#: Forest quantile levels on which the out-of-bag coverage curves are computed.
CALIBRATION_GRID = np.round(np.linspace(0.0025, 0.9975, 200), 6)

_FORMAT = "soilsuite.dsm.SoilModel"
_FORMAT_VERSION = 1


def _rf_mean(forest: Any, X: np.ndarray) -> np.ndarray:
    """The forest mean (Breiman): average of the trees' leaf means.

    Equals quantile-forest's ``predict(quantiles="mean", weighted_leaves=True)`` and is about
    twice as fast.
    """
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor.predict(forest, X)


def qname(q: float) -> str:
    """Column / file name of a quantile: 0.05 -> ``q05``, 0.5 -> ``q50``, 0.025 -> ``q2_5``."""
    pct = round(float(q) * 100, 6)
    return f"q{int(pct):02d}" if pct == int(pct) else "q" + f"{pct:g}".replace(".", "_")


def uncertainty_ratio(q_lo: Any, q_hi: Any, q50: Any) -> np.ndarray:
    """SoilGrids prediction-interval ratio ``(Q0.95 - Q0.05) / Q0.50``; NaN where Q0.50 <= 0."""
    lo, hi, med = (np.asarray(a, dtype="float64") for a in (q_lo, q_hi, q50))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (hi - lo) / med
    return np.where(med > 0, r, np.nan)


def invert_coverage(cover: Any, grid: Any, targets: Sequence[float], n: int) -> np.ndarray:
    """Forest levels whose expected share on new data equals each target share.

    The out-of-bag coverage curve is the empirical distribution of the samples' probability
    integral transforms (PIT): sample i enters the curve at the level ``u_i`` where its
    predicted quantile passes its observation. The level for a share ``t`` is the
    ``t (n + 1)``-th order statistic of the ``u_i`` (Weibull plotting position, interpolated),
    since a new observation falls below the k-th of n PIT values with probability
    ``k / (n + 1)``: unbiased and symmetric in both tails, unlike reading the curve at the
    first (or middle) level of a flat stretch, which shifts one tail by up to a gap between
    order statistics (large for small n).

    Parameters
    ----------
    cover : array [n_levels]
        Out-of-bag share of observations below (or at or below) the quantile predicted at each
        ``grid`` level; made monotone here.
    grid : array [n_levels]
        Forest quantile levels (increasing, 0-1). A sample entering at ``grid[j]`` is placed
        half-way between ``grid[j - 1]`` and ``grid[j]``.
    targets : sequence of float
        Shares wanted (0-1).
    n : int
        Number of samples behind ``cover``.

    Returns
    -------
    ndarray
        One level per target, within 0.001-0.999.
    """
    g = np.asarray(grid, dtype="float64")
    counts = np.maximum.accumulate(np.asarray(cover, dtype="float64")) * n
    jump = 0.5 * (g + np.r_[0.0, g[:-1]])
    j = np.searchsorted(counts, np.arange(1, n + 1) - 1e-6, side="left")
    u = np.where(j < len(g), jump[np.minimum(j, len(g) - 1)], 0.5 * (g[-1] + 1.0))  # order statistics
    h = np.asarray(targets, dtype="float64") * (n + 1)
    out = np.interp(h, np.r_[0.0, np.arange(1, n + 1), n + 1.0], np.r_[0.0, u, 1.0])
    return np.clip(out, 0.001, 0.999)


def tail_shares(obs: Any, lo: Any, hi: Any) -> tuple[float, float]:
    """Shares of observations strictly below ``lo`` and strictly above ``hi``.

    The complement of the interval's coverage (``lo <= obs <= hi`` counts as inside, ties
    included), split by side: a balanced 90 % interval has 0.05 on each side.
    """
    o, lo_, hi_ = (np.asarray(a, dtype="float64") for a in (obs, lo, hi))
    ok = np.isfinite(o) & np.isfinite(lo_) & np.isfinite(hi_)
    if not ok.any():
        return float("nan"), float("nan")
    return float(np.mean(o[ok] < lo_[ok])), float(np.mean(o[ok] > hi_[ok]))


def check_float32(X64: np.ndarray, X32: np.ndarray, names: Sequence[str], what: str = "covariates") -> dict:
    """Covariates whose values the float32 cast changed materially, with a warning naming them.

    Material: distinct values merged (e.g. coordinates in metres with a large offset, which
    float32 resolves to about 0.5 m near 5,800,000) or values beyond the float32 range
    (+-3.4e38, which become inf). The rounding of every value by ~6e-8 relative is not
    reported: scikit-learn's trees split on float32 anyway.

    Returns
    -------
    dict
        name -> ``distinct_float64``, ``distinct_float32``, ``overflow`` (count),
        ``max_abs_change`` (covariate unit); empty if nothing changed materially.
    """
    changed: dict[str, dict] = {}
    with np.errstate(invalid="ignore", over="ignore"):
        for j, name in enumerate(names):
            a, b = X64[:, j], X32[:, j].astype("float64")
            fa = np.isfinite(a)
            fb = fa & np.isfinite(b)
            overflow = int(np.sum(fa & ~np.isfinite(b)))
            n64 = len(np.unique(a[fa]))
            n32 = len(np.unique(b[fb]))
            if overflow or n32 < n64:
                dmax = float(np.max(np.abs(a[fb] - b[fb]))) if fb.any() else float("nan")
                changed[str(name)] = {"distinct_float64": n64, "distinct_float32": n32,
                                      "overflow": overflow, "max_abs_change": dmax}
    if changed:
        parts = [f"{k}: {v['distinct_float64']} distinct values -> {v['distinct_float32']}"
                 + (f", {v['overflow']} beyond the float32 range" if v["overflow"] else "")
                 + f", largest change {v['max_abs_change']:.3g}" for k, v in list(changed.items())[:5]]
        more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
        warnings.warn(f"{what}: covariates are used as float32 (scikit-learn's trees split on float32); "
                      f"the cast changed {len(changed)} of {len(names)} covariates: {'; '.join(parts)}{more}. "
                      "Centre or rescale them (e.g. subtract a coordinate offset) before fitting",
                      UserWarning, stacklevel=4)
    return changed


class SoilModel(BaseEstimator):
    """Quantile regression forest for one soil property.

    Parameters
    ----------
    target : str, optional
        Property name (``soc``, ``clay`` ... or any name). If not given it is taken from the
        name of ``y`` (a named pandas Series) at ``fit``; without either, ``fit`` stops with
        a message asking for ``target=`` (a model is never labelled with a wrong property).
    quantiles : tuple of float
        Quantiles to predict besides the mean (default 0.05, 0.5, 0.95).
    n_estimators : int
        Trees.
    min_samples_leaf : int
        Minimum training samples per leaf.
    max_features : float, int or str
        Covariates tried per split (fraction if float).
    tune : bool or {"oob", "cv"}
        Default False (no tuning): the forest defaults ``max_features=0.5``,
        ``min_samples_leaf=1`` scored R2 0.385 on the 30 LimeSoDa Sentinel-2 tasks, inner-CV
        tuning 0.365 at about 7x the CPU (docs/dsm.md). Otherwise choose ``max_features``
        and ``min_samples_leaf`` from ``tune_grid`` by the out-of-bag MSE of the mean
        (``"oob"``, cheap) or by ``tune_cv``-fold inner cross-validation (``"cv"`` or True).
    tune_grid : dict, optional
        Grid of forest parameters; default :data:`DEFAULT_GRID`.
    tune_cv : int
        Folds of the inner cross-validation.
    tune_n_estimators : int
        Trees per forest while tuning.
    unit : str, optional
        Unit of the target (for reports and file metadata). Not guessed from the target
        name: a model fitted without ``unit`` reports its unit as ``"unknown"``
        (:func:`~soilsuite.dsm.train` passes the samples' unit).
    calibrate : bool
        Recalibrate the quantile levels on the out-of-bag predictions of the training data
        (Kuleshov et al. 2018), each tail on its own and with ties counted as the interval
        counts them (``lo <= y <= hi`` is inside): for a requested ``q < 0.5`` the level used
        is the one whose out-of-bag share of observations strictly below the predicted
        quantile (``y < Q``) equals ``q``; for ``q > 0.5`` the one whose share at or below
        it (``y <= Q``) equals ``q``, i.e. whose share strictly above equals ``1 - q``; for
        ``q = 0.5`` ties count half. So both tails of the 90 % interval are 5 % even with
        rounded lab values (a QRF quantile is always a training value, so ties are common).
        QRF intervals of small samples are often too narrow (PICP of the nominal 90 % interval
        ~0.83); this brings the coverage near nominal without looking at test data. Monotone,
        so Q0.05 <= Q0.50 <= Q0.95 still holds. Needs at least
        :data:`MIN_CALIBRATION_SAMPLES` (20) samples; below that it is switched off with a
        warning and the reason is kept in ``calibration_`` (model card).
    random_state : int
        Seed.
    n_jobs : int, optional
        Threads for fitting and prediction; None (default) or -1: all cores, as the CLI.

    Attributes
    ----------
    forest_ : RandomForestQuantileRegressor
    feature_names_ : list of str
    X_train_, y_train_ : ndarray
        Training data (float32 covariates, float64 target) used by OOB/CV reports and the AOA.
        Covariates are float32 because scikit-learn's trees split on float32 anyway; ``fit``
        warns (and records in ``float32_cast_``) when the cast merges distinct values or
        overflows, naming the covariates.
    float32_cast_ : dict
        Covariates whose values the float32 cast changed materially: name -> distinct values
        before/after and the largest absolute change.
    calibration_ : dict
        Whether the quantile levels were calibrated, on how many samples, or why not.
    coords_train_ : ndarray [n, 2] or None
        Sample coordinates (x, y) in ``crs_``.
    training_range_ : ndarray [2, n_features]
        Minimum and maximum of each covariate in the training data.
    extent_ : tuple or None
        (left, bottom, right, top) of the training points.
    best_params_ : dict
        Parameters chosen by tuning (or the given ones).
    cv_results_ : DataFrame or None
        Tuning scores.
    aoa_ : dict
        Area-of-applicability reference: covariate means/sds, weights, mean training distance,
        training DI and threshold.
    stack_ : dict or None
        Covariate stack description (:meth:`CovariateStack.to_dict`) when trained from rasters.
    """

    def __init__(
        self,
        target: str | None = None,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        n_estimators: int = 500,
        min_samples_leaf: int = 1,
        max_features: float | int | str = 0.5,
        tune: bool | str = False,
        tune_grid: Mapping[str, Sequence] | None = None,
        tune_cv: int = 5,
        tune_n_estimators: int = 200,
        unit: str | None = None,
        calibrate: bool = True,
        random_state: int = 0,
        n_jobs: int | None = None,
    ):
        self.target = target
        self.quantiles = quantiles
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.tune = tune
        self.tune_grid = tune_grid
        self.tune_cv = tune_cv
        self.tune_n_estimators = tune_n_estimators
        self.unit = unit
        self.calibrate = calibrate
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ helpers
    @property
    def unit_(self) -> str:
        """The target's unit as given (``unit=``), else ``"unknown"`` (never guessed)."""
        return self.unit if self.unit else "unknown"

    def _resolve_target(self, y: Any) -> None:
        if self.target is not None:
            if not isinstance(self.target, str) or not self.target.strip():
                raise ConfigError(f"target must be a property name such as 'soc' or 'clay', got {self.target!r}")
            return
        name = getattr(y, "name", None)
        if isinstance(name, str) and name.strip():
            self.target = name.strip()
            return
        known = ", ".join(sorted(PROPERTIES))
        raise ConfigError("SoilModel: name the property, e.g. SoilModel(target='clay', unit='g/100g'); "
                          f"y has no name to take it from (package properties: {known})")

    @property
    def output_names(self) -> list[str]:
        """``["mean", "q05", "q50", "q95"]`` for the default quantiles."""
        return ["mean", *[qname(q) for q in self.quantiles]]

    def _check_params(self) -> None:
        qs = list(self.quantiles)
        if not qs or any(not (0 < q < 1) for q in qs):
            raise ConfigError(f"quantiles must be within (0, 1), got {self.quantiles}")
        if self.n_estimators < 1:
            raise ConfigError(f"n_estimators must be >= 1, got {self.n_estimators}")
        if self.tune not in (False, True, "oob", "cv"):
            raise ConfigError(f"tune must be False, True, 'oob' or 'cv', got {self.tune!r}")

    def _forest(self, n_estimators: int, **params):
        from quantile_forest import RandomForestQuantileRegressor

        kw = dict(min_samples_leaf=self.min_samples_leaf, max_features=self.max_features)
        kw.update(params)
        # max_samples_leaf=None keeps every training sample in the leaves (Meinshausen's QRF)
        return RandomForestQuantileRegressor(
            n_estimators=n_estimators, max_samples_leaf=None, random_state=self.random_state,
            n_jobs=-1 if self.n_jobs is None else self.n_jobs, **kw,
        )

    def _check_float32(self, X64: np.ndarray, X32: np.ndarray) -> None:
        """Record (and warn about) covariates the float32 cast changed materially."""
        self.float32_cast_ = check_float32(X64, X32, self.feature_names_, what=str(self.target))

    def _as_array(self, X: Any, *, fitting: bool = False) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if fitting:
                self.feature_names_ = [str(c) for c in X.columns]
            else:
                missing = [c for c in self.feature_names_ if c not in X.columns]
                if missing:
                    raise InputError(f"covariates missing for the {self.target} model: {missing}; "
                                     f"the model was trained on {self.feature_names_}")
                X = X[self.feature_names_]
            if fitting:
                X64 = X.to_numpy(dtype="float64")
                X32 = X64.astype("float32")
                self._check_float32(X64, X32)
                return X32
            return X.to_numpy(dtype="float32")
        if fitting:
            X64 = np.asarray(X, dtype="float64")
            X = X64.astype("float32")
        else:
            X = np.asarray(X, dtype="float32")
        if X.ndim != 2:
            raise InputError(f"covariates must be a 2-D table [samples, covariates], got shape {X.shape}")
        if fitting:
            if not hasattr(self, "feature_names_") or len(self.feature_names_) != X.shape[1]:
                self.feature_names_ = [f"x{i}" for i in range(X.shape[1])]
            self._check_float32(X64, X)
        elif X.shape[1] != len(self.feature_names_):
            raise InputError(f"expected {len(self.feature_names_)} covariates ({self.feature_names_}), "
                             f"got {X.shape[1]}")
        return X

    # ------------------------------------------------------------------ fitting
    def _tune(self, X: np.ndarray, y: np.ndarray) -> dict:
        import itertools

        grid = dict(self.tune_grid or DEFAULT_GRID)
        unknown = set(grid) - {"max_features", "min_samples_leaf", "max_depth", "min_samples_split", "max_samples"}
        if unknown:
            raise ConfigError(f"tune_grid has unsupported parameters {sorted(unknown)}")
        keys = list(grid)
        combos = [dict(zip(keys, v, strict=True)) for v in itertools.product(*(grid[k] for k in keys))]
        rows = []
        mode = "oob" if self.tune == "oob" else "cv"
        if mode == "cv":
            from sklearn.model_selection import KFold

            k = min(self.tune_cv, len(y))
            splits = list(KFold(k, shuffle=True, random_state=self.random_state).split(X))
        for params in combos:
            if mode == "oob":
                f = self._forest(self.tune_n_estimators, **params).fit(X, y)
                pred = f.predict(X, quantiles="mean", weighted_leaves=True, oob_score=True)
                ok = np.isfinite(pred)
                mse = float(np.mean((y[ok] - pred[ok]) ** 2))
            else:
                sse = 0.0
                for tr, te in splits:
                    f = self._forest(self.tune_n_estimators, **params).fit(X[tr], y[tr])
                    sse += float(np.sum((y[te] - _rf_mean(f, X[te])) ** 2))
                mse = sse / len(y)
            rows.append({**params, "mse": mse})
        self.cv_results_ = pd.DataFrame(rows)
        best = min(range(len(rows)), key=lambda i: rows[i]["mse"])
        return combos[best]

    def fit(self, X: Any, y: Any, *, coords: Any = None, crs: Any = None, folds: Any = None,
            index: Any = None) -> SoilModel:
        """Fit the forest.

        Rows with a missing target or covariate are left out with a warning that names them.

        Parameters
        ----------
        X : DataFrame or ndarray [n, p]
            Covariates (a DataFrame's columns become ``feature_names_``).
        y : array-like [n]
            Target in ``unit_``.
        coords : ndarray [n, 2], optional
            Sample coordinates (x, y) in ``crs`` (spatial CV, residual maps, extent).
        crs : any, optional
            CRS of ``coords``.
        folds : array-like [n], optional
            Fold labels for the area-of-applicability threshold (default: random 10 folds).
        index : array-like [n], optional
            Sample labels (default: the DataFrame index or 0..n-1).
        """
        self._check_params()
        self._resolve_target(y)
        if index is None:
            index = X.index.to_numpy() if isinstance(X, pd.DataFrame) else np.arange(len(X))
        Xa = self._as_array(X, fitting=True)
        ya = np.asarray(y, dtype="float64").ravel()
        if len(ya) != len(Xa):
            raise InputError(f"{len(Xa)} covariate rows but {len(ya)} target values")
        ok = np.isfinite(ya) & np.isfinite(Xa).all(axis=1)
        if not ok.all():
            bad = np.asarray(index)[~ok]
            warnings.warn(f"{self.target}: {int((~ok).sum())} of {len(ya)} samples left out "
                          f"(missing target or covariate), labels: {list(bad[:10])}"
                          f"{' ...' if len(bad) > 10 else ''}", UserWarning, stacklevel=2)
        Xa, ya = Xa[ok], ya[ok]
        if len(ya) < 5:
            raise InputError(f"{self.target}: only {len(ya)} usable samples; need at least 5")
        self.index_train_ = np.asarray(index)[ok]
        self.X_train_, self.y_train_ = Xa, ya
        self.coords_train_ = None if coords is None else np.asarray(coords, dtype="float64")[ok]
        self.crs_ = None if crs is None else str(crs)
        self.extent_ = None
        if self.coords_train_ is not None:
            c = self.coords_train_
            self.extent_ = (float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max()))
        self.training_range_ = np.vstack([Xa.min(axis=0), Xa.max(axis=0)])
        if self.tune:
            self.best_params_ = self._tune(Xa, ya)
        else:
            self.best_params_ = {"max_features": self.max_features, "min_samples_leaf": self.min_samples_leaf}
            self.cv_results_ = None
        self.forest_ = self._forest(self.n_estimators, **self.best_params_).fit(Xa, ya)
        self.importances_ = pd.Series(self.forest_.feature_importances_, index=self.feature_names_)
        self.level_map_ = self._calibrate_levels() if self.calibrate else None
        if not self.calibrate:
            self.calibration_ = {"calibrated": False, "reason": "calibrate=False"}
        fl = None if folds is None else np.asarray(folds)[ok]
        self.aoa_ = self._aoa_reference(fl)
        self.created_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if not hasattr(self, "stack_"):
            self.stack_ = None
        return self

    # ------------------------------------------------------------------ prediction
    def predict_array(self, X: np.ndarray, quantiles: Sequence[float] | None = None) -> np.ndarray:
        """Mean and quantiles as float32 [n, 1 + n_quantiles]; NaN rows where a covariate is NaN."""
        qs = list(self.quantiles if quantiles is None else quantiles)
        X = np.asarray(X, dtype="float32")
        out = np.full((len(X), 1 + len(qs)), np.nan, dtype=np.float32)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            Xo = X[ok]
            out[ok, 0] = _rf_mean(self.forest_, Xo)
            q = self.forest_.predict(Xo, quantiles=self.levels(qs))
            out[ok, 1:] = np.asarray(q).reshape(len(Xo), len(qs))
        return out

    def _calibrate_levels(self) -> dict | None:
        """Out-of-bag coverage curves of the training data (see ``calibrate``).

        Returns ``{"grid", "below", "at_or_below"}``: per forest level of ``grid`` the
        out-of-bag shares of observations strictly below (``y < Q``) and at or below
        (``y <= Q``) the predicted quantile; None (with a warning) if too few samples.
        """
        n = len(self.y_train_)
        need = MIN_CALIBRATION_SAMPLES
        if n < need:
            return self._no_calibration(f"{n} training samples, fewer than {need}")
        grid = CALIBRATION_GRID
        q = np.asarray(self.forest_.predict(self.X_train_, quantiles=list(grid), oob_score=True))
        q = q.reshape(n, len(grid))
        ok = np.isfinite(q).all(axis=1)
        if ok.sum() < need:
            return self._no_calibration(f"only {int(ok.sum())} of {n} training samples have out-of-bag "
                                        f"predictions, fewer than {need} (use more trees)")
        y = self.y_train_[ok, None]
        self.calibration_ = {"calibrated": True, "n_oob": int(ok.sum()),
                             "rule": "lower levels on y < Q, upper levels on y <= Q, median with ties halved"}
        return {"grid": grid, "n": int(ok.sum()), "below": np.mean(y < q[ok], axis=0),
                "at_or_below": np.mean(y <= q[ok], axis=0)}

    def _no_calibration(self, why: str) -> None:
        self.calibration_ = {"calibrated": False, "reason": why}
        warnings.warn(f"{self.target}: quantile levels not calibrated ({why}); the intervals are the raw "
                      "forest quantiles, which for small samples are often too narrow (90 % interval "
                      "covering ~83 %)", UserWarning, stacklevel=3)
        return None

    def levels(self, quantiles: Sequence[float]) -> list[float]:
        """Forest quantile levels used for the requested ``quantiles`` (see ``calibrate``)."""
        qs = [float(q) for q in quantiles]
        lm = getattr(self, "level_map_", None)
        if lm is None:
            return qs
        if isinstance(lm, tuple):  # models saved before the two-sided rule: (nominal, used)
            nominal, used = lm
            out = np.interp(qs, nominal, used, left=0.001, right=0.999)
        else:
            g, below, at = lm["grid"], lm["below"], lm["at_or_below"]
            mid = 0.5 * (below + at)
            out = np.array([invert_coverage(below if q < 0.5 else at if q > 0.5 else mid, g, [q], lm["n"])[0]
                            for q in qs])
        out = np.clip(out, 0.001, 0.999)
        return [round(float(v), 6) for v in np.maximum.accumulate(out)]

    def predict(self, X: Any, quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """Predict the mean and quantiles.

        Parameters
        ----------
        X : DataFrame or ndarray [n, p]
            Covariates (DataFrame columns are matched by name).
        quantiles : sequence of float, optional
            Default: the model's ``quantiles``.

        Returns
        -------
        DataFrame
            Columns ``mean`` and ``q05``/``q50``/``q95`` (see :func:`qname`), in the target unit.
        """
        qs = list(self.quantiles if quantiles is None else quantiles)
        idx = X.index if isinstance(X, pd.DataFrame) else None
        arr = self.predict_array(self._as_array(X), qs)
        return pd.DataFrame(arr, index=idx, columns=["mean", *[qname(q) for q in qs]])

    def oob_predict(self, quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """Out-of-bag predictions for the training samples (each from trees that did not see it)."""
        qs = list(self.quantiles if quantiles is None else quantiles)
        X = self.X_train_
        m = self.forest_.predict(X, quantiles="mean", weighted_leaves=True, oob_score=True)
        q = np.asarray(self.forest_.predict(X, quantiles=self.levels(qs), oob_score=True)).reshape(len(X), len(qs))
        return pd.DataFrame(np.column_stack([m, q]), index=self.index_train_,
                            columns=["mean", *[qname(v) for v in qs]])

    def score(self, X: Any, y: Any) -> float:
        """R2 = 1 - SSE/SST of the mean prediction."""
        y = np.asarray(y, dtype="float64")
        p = self.predict(X)["mean"].to_numpy()
        return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))

    # ------------------------------------------------------------------ area of applicability
    def _weighted(self, X: np.ndarray) -> np.ndarray:
        a = self.aoa_
        return (np.asarray(X, dtype="float64") - a["mean"]) / a["std"] * a["weights"]

    def _aoa_reference(self, folds: np.ndarray | None) -> dict:
        """Meyer & Pebesma (2021) reference: weighted standardised space, mean distance, threshold."""
        from scipy.spatial.distance import pdist
        from sklearn.neighbors import NearestNeighbors

        X = self.X_train_.astype("float64")
        mean = X.mean(axis=0)
        std = X.std(axis=0, ddof=1)
        std[~(std > 0)] = 1.0
        w = np.asarray(self.forest_.feature_importances_, dtype="float64")
        if not np.isfinite(w).all() or w.sum() <= 0:
            w = np.ones(X.shape[1])
        ref = {"mean": mean, "std": std, "weights": w}
        self.aoa_ = ref
        Z = self._weighted(X)
        n = len(Z)
        sub = Z if n <= 4000 else Z[np.random.default_rng(self.random_state).choice(n, 4000, replace=False)]
        dbar = float(np.mean(pdist(sub))) if len(sub) > 1 else 1.0
        if not dbar > 0:
            dbar = 1.0
        if folds is None:
            rng = np.random.default_rng(self.random_state)
            folds = rng.permutation(np.arange(n) % min(10, n))
        train_di = np.full(n, np.nan)
        for f in np.unique(folds):
            te = folds == f
            if te.all():
                continue
            nn = NearestNeighbors(n_neighbors=1).fit(Z[~te])
            d, _ = nn.kneighbors(Z[te])
            train_di[te] = d[:, 0] / dbar
        q1, q3 = np.nanpercentile(train_di, [25, 75])
        upper = q3 + 1.5 * (q3 - q1)
        thr = float(np.nanmax(train_di[train_di <= upper]))
        ref.update(dbar=dbar, train_di=train_di, threshold=thr)
        return ref

    def dissimilarity(self, X: Any) -> np.ndarray:
        """Dissimilarity index DI (Meyer & Pebesma 2021) of new covariate rows.

        ``DI = d_min / dbar``: ``d_min`` is the distance, in covariates standardised with the
        training mean/sd and weighted by the forest's variable importance, to the nearest
        training sample; ``dbar`` the mean distance between training samples. Locations with
        DI above ``aoa_["threshold"]`` (the upper whisker of the cross-validated training DI)
        are outside the area of applicability. NaN where a covariate is NaN.
        """
        from sklearn.neighbors import NearestNeighbors

        X = self._as_array(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype="float64")
        out = np.full(len(X), np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            if not hasattr(self, "_nn") or self._nn is None:
                self._nn = NearestNeighbors(n_neighbors=1).fit(self._weighted(self.X_train_))
            d, _ = self._nn.kneighbors(self._weighted(X[ok]))
            out[ok] = d[:, 0] / self.aoa_["dbar"]
        return out

    def outside_range(self, X: np.ndarray) -> np.ndarray:
        """Number of covariates outside their training range, per row (uint8; 255 if any NaN)."""
        X = np.asarray(X, dtype="float32")
        lo, hi = self.training_range_
        n = ((X < lo) | (X > hi)).sum(axis=1)
        n = np.minimum(n, 254).astype(np.uint8)
        n[~np.isfinite(X).all(axis=1)] = 255
        return n

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_nn", None)
        return state

    # ------------------------------------------------------------------ persistence
    def metadata(self) -> dict:
        """What the model is: target, unit, covariates, training extent, parameters, versions."""
        import quantile_forest
        import sklearn

        from .. import __version__

        return {
            "format": _FORMAT, "format_version": _FORMAT_VERSION,
            "target": self.target, "unit": self.unit_, "quantiles": list(self.quantiles),
            "covariates": list(getattr(self, "feature_names_", [])),
            "n_train": int(len(getattr(self, "y_train_", []))),
            "extent": getattr(self, "extent_", None), "crs": getattr(self, "crs_", None),
            "params": self.get_params(), "best_params": getattr(self, "best_params_", None),
            "calibration": getattr(self, "calibration_", None),
            "float32_cast": getattr(self, "float32_cast_", None),
            "point_prediction": "mean",
            "created": getattr(self, "created_", None),
            "versions": {"soilsuite": __version__, "scikit-learn": sklearn.__version__,
                         "quantile-forest": quantile_forest.__version__},
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model and its metadata to one joblib file (temporary name, then rename)."""
        import joblib

        if not hasattr(self, "forest_"):
            raise ConfigError("the model is not fitted; call fit() first")
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump({"metadata": self.metadata(), "model": self}, tmp, compress=3)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SoilModel:
        """Read a model written by :meth:`save`; warns if library versions differ."""
        import joblib
        import quantile_forest
        import sklearn

        path = Path(path)
        if not path.exists():
            raise InputError(f"model file {path} does not exist")
        try:
            obj = joblib.load(path)
        except Exception as exc:
            raise InputError(f"{path}: not a readable soilsuite model file: {exc}") from None
        if not isinstance(obj, dict) or obj.get("metadata", {}).get("format") != _FORMAT:
            raise InputError(f"{path}: not a soilsuite SoilModel file")
        v = obj["metadata"].get("versions", {})
        now = {"scikit-learn": sklearn.__version__, "quantile-forest": quantile_forest.__version__}
        diff = {k: (v.get(k), now[k]) for k in now if v.get(k) != now[k]}
        if diff:
            warnings.warn(f"{path}: saved with other library versions {diff}; results may differ",
                          UserWarning, stacklevel=2)
        return obj["model"]


def load_model(path: str | Path) -> SoilModel:
    """Read a model file (see :meth:`SoilModel.save`)."""
    return SoilModel.load(path)


def training_table(samples: Any, target: str, stack: Any = None,
                   point_covariates: Sequence[str] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """Covariates at the samples (from ``stack`` and/or sample columns) and the target values."""
    if target not in samples.gdf.columns:
        raise InputError(f"target {target!r} is not a sample column; have {samples.properties}")
    parts = []
    if stack is not None:
        table, _ = stack.extract(samples)
        parts.append(table)
    if point_covariates:
        missing = [c for c in point_covariates if c not in samples.gdf.columns]
        if missing:
            raise InputError(f"point covariates {missing} are not sample columns; read them with keep=")
        parts.append(samples.gdf[list(point_covariates)].apply(pd.to_numeric, errors="coerce").astype("float32"))
    if not parts:
        raise ConfigError("no covariates: give a covariate stack and/or point_covariates")
    X = pd.concat(parts, axis=1)
    return X, samples.gdf[target].to_numpy(dtype="float64")


def train(samples: Any, target: str, stack: Any = None, *, point_covariates: Sequence[str] = (),
          folds: Any = None, **params: Any) -> SoilModel:
    """Fit a :class:`SoilModel` for ``target`` from samples and a covariate stack.

    Parameters
    ----------
    samples : Samples
        From :func:`~soilsuite.dsm.samples.read_samples`.
    target : str
        Sample column to model (``soc``, ``ocstk`` ...).
    stack : CovariateStack, optional
        Raster covariates; their description is stored in the model for ``predict``.
    point_covariates : sequence of str
        Sample columns used as covariates (no map prediction possible with these alone).
    folds : array-like, optional
        Fold labels for the area-of-applicability threshold.
    **params
        :class:`SoilModel` parameters.
    """
    X, y = training_table(samples, target, stack, point_covariates)
    crs = stack.crs if stack is not None else samples.crs
    coords = samples.coords(crs)
    unit = samples.units.get(target) or None
    model = SoilModel(target=target, unit=params.pop("unit", unit), **params)
    model.stack_ = stack.to_dict() if stack is not None and not point_covariates else None
    return model.fit(X, y, coords=coords, crs=crs, folds=folds)
