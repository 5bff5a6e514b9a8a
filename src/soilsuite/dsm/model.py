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

from ..errors import ConfigError, InputError, OutputExistsError, check_choice
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


def forest_importances(forest: Any) -> np.ndarray:
    """Impurity-based feature importances of a fitted scikit-learn forest: its
    ``feature_importances_`` bit for bit (each tree's normalised importances, trees with a
    single node left out, averaged and renormalised), in one loop instead of scikit-learn's
    thread pool of one task per tree (0.01 s instead of 0.1 s for 500 trees on a few hundred
    samples; ``tests/test_dsm_trend.py``)."""
    imps = [e.tree_.compute_feature_importances() for e in forest.estimators_ if e.tree_.node_count > 1]
    if not imps:
        return np.zeros(forest.n_features_in_)
    mean = np.mean(imps, axis=0, dtype=np.float64)
    return mean / np.sum(mean)


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


#: Samples whose cross-validated training DI sets the area-of-applicability threshold (random subset above).
AOA_MAX_QUERIES = 5000


def other_fold_nn_distance(Z: np.ndarray, folds: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row ``Z[queries]`` to its nearest row of another fold.

    Squared distances of a chunk of queries to all rows by matrix product (``|a|^2 + |b|^2 -
    2 a.b``, memory about 16 MB per chunk), same-fold rows masked, then the distance to the chosen
    neighbour recomputed directly. NaN for a query whose fold holds every row.
    """
    Z = np.asarray(Z, dtype="float64")
    folds = np.asarray(folds)
    sq = np.einsum("ij,ij->i", Z, Z)
    out = np.full(len(queries), np.nan)
    step = max(1, 2_000_000 // max(1, len(Z)))
    for s in range(0, len(queries), step):
        qi = queries[s:s + step]
        d2 = sq[qi, None] + sq[None, :] - 2.0 * (Z[qi] @ Z.T)
        d2[folds[qi][:, None] == folds[None, :]] = np.inf
        j = np.argmin(d2, axis=1)
        found = np.isfinite(d2[np.arange(len(qi)), j])
        d = np.sqrt(((Z[qi] - Z[j]) ** 2).sum(axis=1))
        out[s:s + step] = np.where(found, d, np.nan)
    return out


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
        Forest features tried per split: a share in (0, 1] (default 0.5), a count, ``"sqrt"``,
        ``"log2"`` or ``"third"`` (a third, at least 2; :mod:`soilsuite.dsm.forestparams`). The
        count used is ``best_params_["max_features"]``.
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
    reduce : {"auto", "none", "pca", "filter"}
        Covariate reduction fitted inside :meth:`fit` on the training rows only (so each
        cross-validation fold refits it), see :mod:`soilsuite.dsm.reduce`. ``auto`` (default)
        reduces only wide stacks (>= 30 covariates and more than half as many covariates as
        samples, or >= 30 near-duplicate covariates, e.g. spectra) by a PCA of the collinear
        block or a correlation filter, chosen by out-of-bag error; narrower stacks are used
        as given. ``feature_names_`` stay the input covariates; ``reducer_`` records what was
        used (model card).

    spatial : {"none", "xy", "distances", "rk"}
        Spatial structure (:mod:`soilsuite.dsm.spatial`): none (default), the sample coordinates
        as two covariates, buffer distances to reference points as covariates (RFsp), or
        regression kriging of the forest's out-of-bag residuals (mean and quantiles shifted by
        the kriged residual, interval width unchanged). Needs ``coords`` at ``fit`` and at
        prediction (:meth:`predict_array` ``coords=``, the map's pixel centres in
        :func:`~soilsuite.dsm.predict.predict_map`). Fallbacks (too few samples, one location)
        are warned about and recorded in ``spatial_``.
    trend : {"auto", "none", "ridge"}
        Linear trend + forest on its residuals (regression-enhanced RF,
        :mod:`soilsuite.dsm.trend`): a ridge regression on the standardised forest features,
        the forest fitted on its out-of-fold residuals, mean and quantiles = trend + the
        forest's residual mean / quantiles (calibrated the same way). ``auto`` (default) uses
        it only when it lowers the out-of-bag error of two small comparison forests by more
        than 2 % and half a standard error, with at least 40 samples, decided on the training
        rows only (so per cross-validation fold); ``ridge`` always; ``none`` never (the model
        before this option). Recorded in ``trend_`` (model card).

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
    reducer_ : Reducer
        The fitted covariate reduction (:class:`~soilsuite.dsm.reduce.Reducer`); the forest,
        its importances (``importances_``, indexed by ``reducer_.names_out_``), the calibration
        and the area of applicability work on its output.
    covariate_check_ : dict
        Covariates with NaN at sample points (name -> count) and constant covariates.
    spatial_ : dict
        The spatial option asked for and used, the extra covariates, the variogram, or the
        reason for a fallback (model card); the fitted part is ``spatial_fit_``
        (:class:`~soilsuite.dsm.spatial.SpatialFit`).
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
        reduce: str = "auto",
        spatial: str = "none",
        trend: str = "auto",
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
        self.reduce = reduce
        self.spatial = spatial
        self.trend = trend

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
        from .reduce import REDUCE_METHODS

        check_choice(getattr(self, "reduce", "none"), REDUCE_METHODS, "reduce")
        from .spatial import check_spatial

        check_spatial(getattr(self, "spatial", "none"))
        from .trend import check_trend

        check_trend(getattr(self, "trend", "none"))
        from .forestparams import check_max_features

        check_max_features(self.max_features)

    def _features(self, X: np.ndarray) -> np.ndarray:
        """The forest's features of input covariate rows: the fitted reduction's output (float32);
        the rows unchanged when there is no reduction (``none``, or a model saved before it)."""
        r = getattr(self, "reducer_", None)
        return np.asarray(X) if r is None or r.is_identity else r.transform(X)

    def _forest_input(self, X: np.ndarray, coords: Any = None) -> np.ndarray:
        """The forest's input rows: :meth:`_features` plus the spatial covariates at ``coords``
        (:mod:`soilsuite.dsm.spatial`; none for ``spatial="none"`` or models saved before it)."""
        F = self._features(X)
        sp = getattr(self, "spatial_fit_", None)
        if sp is None or not sp.names:
            return F
        return np.hstack([np.asarray(F, dtype=np.float32), sp.features(coords, len(F))])

    def _fast(self) -> dict:
        """The forest packed for the numba predictor (:mod:`soilsuite.dsm.fastforest`), cached."""
        if getattr(self, "_packed", None) is None:
            from .fastforest import pack_forest

            self._packed = pack_forest(self.forest_)
        return self._packed

    def _forest(self, n_estimators: int, **params):
        from quantile_forest import RandomForestQuantileRegressor

        kw = dict(min_samples_leaf=self.min_samples_leaf, max_features=getattr(self, "max_features_", self.max_features))
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
        from .reduce import check_covariates, make_reducer

        self.covariate_check_ = check_covariates(Xa[np.isfinite(ya)], self.feature_names_, what=str(self.target))
        ok = np.isfinite(ya) & np.isfinite(Xa).all(axis=1)
        if not ok.all():
            bad = np.asarray(index)[~ok]
            nan = self.covariate_check_["nan"]
            which = (f"; covariates with NaN at sample points: "
                     f"{', '.join(f'{k} ({v})' for k, v in list(nan.items())[:10])}{' ...' if len(nan) > 10 else ''}"
                     " (fill the gaps, or leave these covariates out)" if nan else "")
            warnings.warn(f"{self.target}: {int((~ok).sum())} of {len(ya)} samples left out "
                          f"(missing target or covariate), labels: {list(bad[:10])}"
                          f"{' ...' if len(bad) > 10 else ''}{which}", UserWarning, stacklevel=2)
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
        const = check_covariates(Xa, self.feature_names_)["constant"]
        if const:
            warnings.warn(f"{self.target}: covariates {const[:10]}{' ...' if len(const) > 10 else ''} are constant "
                          f"over the {len(ya)} training samples and cannot inform the model; leave them out "
                          "(reduce='filter'/'pca' drops them)", UserWarning, stacklevel=2)
        self.reducer_ = make_reducer(self.reduce, feature_names=self.feature_names_,
                                     random_state=self.random_state, n_jobs=self.n_jobs).fit(Xa, ya)
        from .spatial import SpatialFit

        self._packed = None
        self.spatial_fit_ = SpatialFit(getattr(self, "spatial", "none"), self.coords_train_, self.random_state)
        Xf = self._forest_input(Xa, self.coords_train_)
        from .forestparams import resolve_max_features

        self.max_features_ = resolve_max_features(self.max_features, Xf.shape[1])  # "third" -> a count
        if self.tune:
            self.best_params_ = self._tune(Xf, ya)
        else:
            self.best_params_ = {"max_features": self.max_features_, "min_samples_leaf": self.min_samples_leaf}
            self.cv_results_ = None
        from .trend import adopt_trees, choose_trend

        self.trend_fit_, self.trend_, compared = choose_trend(
            getattr(self, "trend", "none"), Xf, ya, n_estimators=self.n_estimators, params=self.best_params_,
            random_state=self.random_state, n_jobs=self.n_jobs, keep_forest=True)
        t_oof = None if self.trend_fit_ is None else self.trend_fit_.oof_
        target = ya if t_oof is None else ya - t_oof
        forest = self._forest(self.n_estimators, **self.best_params_)
        # trend="auto" compared forests with the final forest's trees: the chosen one's are the model's
        self.forest_ = forest.fit(Xf, target) if compared is None else adopt_trees(forest, compared, Xf, target)
        self.importances_ = pd.Series(forest_importances(self.forest_),
                                      index=[*self.reducer_.names_out_, *self.spatial_fit_.names])
        self.level_map_ = self._calibrate_levels(t_oof) if self.calibrate else None
        if not self.calibrate:
            self.calibration_ = {"calibrated": False, "reason": "calibrate=False"}
        if self.spatial_fit_.used == "rk":
            from .fastforest import oob_quantiles

            oob_mean, _ = oob_quantiles(self.forest_, self._fast(), Xf, [0.5], parallel=self.n_jobs != 1)
            if t_oof is not None:
                oob_mean = oob_mean + t_oof
            self.spatial_fit_.fit_kriging(self.coords_train_, ya - oob_mean, self.random_state)
            if self.calibrate and self.spatial_fit_.kriging is not None:
                shift = self.spatial_fit_.cv_kriged(self.coords_train_, ya - oob_mean, random_state=self.random_state)
                self.level_map_ = self._calibrate_levels(shift if t_oof is None else shift + t_oof)
                if self.level_map_ is not None:
                    self.calibration_["rule"] += "; quantiles plus the out-of-fold kriged residual (spatial='rk')"
        self.spatial_ = self.spatial_fit_.record
        fl = None if folds is None else np.asarray(folds)[ok]
        self.aoa_ = self._aoa_reference(fl)
        self.created_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if not hasattr(self, "stack_"):
            self.stack_ = None
        return self

    # ------------------------------------------------------------------ prediction
    def predict_array(self, X: np.ndarray, quantiles: Sequence[float] | None = None, *,
                      coords: Any = None) -> np.ndarray:
        """Mean and quantiles as float32 [n, 1 + n_quantiles]; NaN rows where a covariate is NaN.

        The forest mean and the quantiles come from one pass of the numba predictor
        (:mod:`soilsuite.dsm.fastforest`): the quantiles equal quantile-forest's ``predict``
        exactly, the mean scikit-learn's forest mean. ``coords`` ([n, 2], the model's CRS) are
        needed by models with ``spatial`` other than ``none``; with ``rk`` the kriged residual
        is added to the mean and every quantile.
        """
        qs = list(self.quantiles if quantiles is None else quantiles)
        X = np.asarray(X, dtype="float32")
        out = np.full((len(X), 1 + len(qs)), np.nan, dtype=np.float32)
        ok = np.isfinite(X).all(axis=1)
        sp = getattr(self, "spatial_fit_", None)
        if sp is not None and sp.needs_coords:
            if coords is None:
                raise InputError(f"the {self.target} model uses spatial={sp.used!r}: give coords= (x, y of the rows "
                                 f"in {self.crs_ or 'the samples CRS'})")
            coords = np.asarray(coords, dtype="float64")
            if coords.shape != (len(X), 2):
                raise InputError(f"coords must be [{len(X)}, 2] for {len(X)} rows, got shape {coords.shape}")
        if ok.any():
            c = None if coords is None else np.asarray(coords, dtype="float64")[ok]
            Xo = self._forest_input(X[ok], c)
            from .fastforest import forest_predict

            mean, q = forest_predict(self._fast(), Xo, self.levels(qs), parallel=self.n_jobs != 1)
            tr = getattr(self, "trend_fit_", None)
            if tr is not None:
                t = tr.predict(Xo)
                mean = mean + t
                q = q + t[:, None]
            if sp is not None and sp.kriging is not None:
                r = sp.kriged(c, len(Xo))
                mean = mean + r
                q = q + r[:, None]
            out[ok, 0] = mean
            out[ok, 1:] = q
        return out

    def _calibrate_levels(self, shift: np.ndarray | None = None) -> dict | None:
        """Out-of-bag coverage curves of the training data (see ``calibrate``).

        Returns ``{"grid", "below", "at_or_below"}``: per forest level of ``grid`` the
        out-of-bag shares of observations strictly below (``y < Q``) and at or below
        (``y <= Q``) the predicted quantile; None (with a warning) if too few samples.
        ``shift`` (per sample, target unit) is added to the quantiles first (``spatial="rk"``:
        the out-of-fold kriged residual).
        """
        n = len(self.y_train_)
        need = MIN_CALIBRATION_SAMPLES
        if n < need:
            return self._no_calibration(f"{n} training samples, fewer than {need}")
        grid = CALIBRATION_GRID
        from .fastforest import oob_quantiles

        _, q = oob_quantiles(self.forest_, self._fast(), self._forest_input(self.X_train_, self.coords_train_),
                             list(grid), parallel=self.n_jobs != 1)  # = quantile-forest's oob_score=True
        ok = np.isfinite(q).all(axis=1)
        if ok.sum() < need:
            return self._no_calibration(f"only {int(ok.sum())} of {n} training samples have out-of-bag "
                                        f"predictions, fewer than {need} (use more trees)")
        if shift is not None:
            q = q + np.asarray(shift, dtype="float64")[:, None]
            ok &= np.isfinite(q).all(axis=1)
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

    def predict(self, X: Any, quantiles: Sequence[float] | None = None, *, coords: Any = None) -> pd.DataFrame:
        """Predict the mean and quantiles.

        Parameters
        ----------
        X : DataFrame or ndarray [n, p]
            Covariates (DataFrame columns are matched by name).
        quantiles : sequence of float, optional
            Default: the model's ``quantiles``.
        coords : ndarray [n, 2], optional
            x, y of the rows in the model's CRS (needed with ``spatial`` other than ``none``).

        Returns
        -------
        DataFrame
            Columns ``mean`` and ``q05``/``q50``/``q95`` (see :func:`qname`), in the target unit.
        """
        qs = list(self.quantiles if quantiles is None else quantiles)
        idx = X.index if isinstance(X, pd.DataFrame) else None
        arr = self.predict_array(self._as_array(X), qs, coords=coords)
        return pd.DataFrame(arr, index=idx, columns=["mean", *[qname(q) for q in qs]])

    def oob_predict(self, quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """Out-of-bag predictions for the training samples (each from trees that did not see it).

        With ``spatial="rk"`` these are the forest's out-of-bag predictions without the kriged
        residual (kriging at a sample reproduces its own residual); evaluate rk by (spatial)
        cross-validation.
        """
        qs = list(self.quantiles if quantiles is None else quantiles)
        X = self._forest_input(self.X_train_, self.coords_train_)
        m = self.forest_.predict(X, quantiles="mean", weighted_leaves=True, oob_score=True)
        q = np.asarray(self.forest_.predict(X, quantiles=self.levels(qs), oob_score=True)).reshape(len(X), len(qs))
        tr = getattr(self, "trend_fit_", None)
        if tr is not None:  # the out-of-fold trend: as honest as the out-of-bag forest
            m = m + tr.oof_
            q = q + tr.oof_[:, None]
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
        """Meyer & Pebesma (2021) reference: weighted standardised space, mean distance, threshold.

        The training DI of a sample is its distance to the nearest sample of another fold over
        ``dbar``; for more than :data:`AOA_MAX_QUERIES` samples it is computed for that many random
        samples (the others keep NaN in ``train_di``) and the threshold is taken from them. The
        weights are the forest importances of the covariates (spatial covariates excluded: the
        AOA is a covariate-space notion).
        """
        from scipy.spatial.distance import pdist

        X = self._features(self.X_train_).astype("float64")
        mean = X.mean(axis=0)
        std = X.std(axis=0, ddof=1)
        std[~(std > 0)] = 1.0
        w = self.importances_.to_numpy(dtype="float64")[:X.shape[1]]  # the forest's, computed once in fit
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
        folds = np.asarray(folds)
        queries = (np.arange(n) if n <= AOA_MAX_QUERIES
                   else np.sort(np.random.default_rng(self.random_state + 1).choice(n, AOA_MAX_QUERIES, replace=False)))
        train_di = np.full(n, np.nan)
        train_di[queries] = other_fold_nn_distance(Z, folds, queries) / dbar
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
        are outside the area of applicability. NaN where a covariate is NaN. With a covariate
        reduction (``reducer_``) the distances are taken in the reduced features (components and
        kept covariates), where the forest works.
        """
        from sklearn.neighbors import NearestNeighbors

        X = self._as_array(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype="float64")
        out = np.full(len(X), np.nan)
        ok = np.isfinite(X).all(axis=1)
        if ok.any():
            if not hasattr(self, "_nn") or self._nn is None:
                self._nn = NearestNeighbors(n_neighbors=1).fit(self._weighted(self._features(self.X_train_)))
            d, _ = self._nn.kneighbors(self._weighted(self._features(X[ok])))
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
        state.pop("_packed", None)
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
            "reduction": getattr(getattr(self, "reducer_", None), "summary_", None),
            "spatial": getattr(self, "spatial_", None),
            "trend": getattr(self, "trend_", None),
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
