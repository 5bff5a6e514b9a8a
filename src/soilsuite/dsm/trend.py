"""Linear trend + forest on its residuals (regression-enhanced random forest), chosen per fit.

A forest trained on 100-250 samples approximates a linear relationship by a staircase and
flattens it at the ends of the training range: on several LimeSoDa Sentinel-2 tasks the
published multiple linear regression beats the tuned random forest by far (B.204 clay R2 0.61
against 0.45, G.104 clay 0.38 against 0.25). The remedy of Zhang et al. (2019, "Regression-
Enhanced Random Forests") is a linear model first and the forest on its residuals:

1. a ridge regression on the standardised forest features (the covariates after the
   reduction plus any spatial covariates), its penalty chosen by generalised (leave-one-out)
   cross-validation (:class:`sklearn.linear_model.RidgeCV`);
2. its *out-of-fold* predictions on the training rows (``inner_folds``-fold, every fold
   refitting the ridge and its penalty), so the residuals the forest learns are honest;
3. the quantile forest on those residuals; mean and quantiles = trend + the forest's
   residual mean / quantiles (target unit), calibrated on the out-of-bag residual quantiles
   plus the out-of-fold trend.

:func:`choose_trend` makes the choice inside the training data only (``trend="auto"``): two
forests with the same seed (so the same bootstrap samples) on the target and on the residuals,
compared by out-of-bag mean squared error of the mean prediction; the trend is kept only if it
lowers that error by more than ``margin`` (relative) and by more than ``z`` standard errors of
the paired per-sample difference of squared errors (so small, noisy training sets keep the
plain forest), and if the trend alone beats the mean out of fold. Up to
:data:`FINAL_MAX_ROWS` training rows the two have the final forest's trees (its number,
settings and seed; scikit-learn forests: the trees the quantile forest grows), and the chosen
one becomes the model's forest (:func:`adopt_trees`), so no tree is grown twice. They are
compared first on half the trees (:data:`EARLY_SHARE`) and grown to the full number only when
that decision is close (:data:`EARLY_GAP`); the out-of-bag predictions are summed tree by tree
(:class:`OOBMean`), so the second stage adds only its new trees. Above, two small forests
(``max(20, n_estimators // 5)`` trees on bootstraps of 2,000 rows) decide. Nothing from a
held-out fold enters the choice: in cross-validation every fold's model makes its own choice on
its training rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: Values of ``SoilModel(trend=...)`` / ``--trend``.
TREND_METHODS = ("auto", "none", "ridge")

#: Ridge penalties searched by generalised cross-validation (standardised features).
RIDGE_ALPHAS = np.logspace(-3, 4, 15)

#: Rows on which the penalty is chosen for larger training sets (generalised CV costs
#: O(n p^2) per penalty in scikit-learn); the ridge itself is then fitted on all rows.
RIDGE_ALPHA_ROWS = 2000

#: Fewest training samples for ``trend="auto"`` to compare (below: no trend, recorded): the
#: out-of-bag comparison of two forests on fewer samples is too noisy to act on.
MIN_TREND_SAMPLES = 40

#: Relative out-of-bag MSE improvement the trend must bring under ``auto``.
TREND_MARGIN = 0.02

#: ... and in standard errors of the paired per-sample difference of squared errors.
TREND_Z = 0.5

#: Largest training set on which ``auto`` compares the first trees of the final forest (the chosen one is
#: kept as the model's forest); larger sets are compared on small forests, whose out-of-bag
#: errors are then averaged over enough rows (issue 16: with 100 trees on 100-250 rows the
#: comparison missed the trend in folds that needed it).
FINAL_MAX_ROWS = 2000

#: Bootstrap sample of each tree of the small comparison forests above :data:`FINAL_MAX_ROWS`.
COMPARISON_SAMPLE_ROWS = 2000

#: Up to :data:`FINAL_MAX_ROWS` rows the comparison runs in two stages (issue 16's fit cost): first
#: on this share of the final forest's trees (its first trees: the same seed); if the decision is
#: clear there (:data:`EARLY_GAP`), the chosen forest is grown to the full number and kept, else
#: both are grown to the full number and compared again. 1.0: always the full comparison.
EARLY_SHARE = 0.5

#: The first stage decides when the improvement misses or exceeds the bar of :func:`paired_oob`
#: (``max(margin x MSE plain, z x SE)``) by more than this share of the plain forest's
#: out-of-bag MSE (``gap``). Measured on the 674 LimeSoDa training folds that compare (docs/dsm.md,
#: "Two-stage decision"): from 250 to 500 trees the gap moved towards the bar by at most 0.074
#: where it was below 0.3; no fold with a gap beyond 0.10 at 250 trees came closer than 0.065
#: to the bar at 500, so every decision equals the 500-tree one.
EARLY_GAP = 0.10


def check_trend(value: Any, option: str = "trend") -> str:
    """``value`` if it names a trend method, else a :class:`~soilsuite.errors.ConfigError`."""
    from ..errors import check_choice

    return check_choice(value, TREND_METHODS, option)


class RidgeTrend:
    """Ridge regression on standardised features with out-of-fold training predictions.

    Attributes (after :meth:`fit`)
    ------------------------------
    mean_, scale_ : ndarray [p]
        Standardisation of the features (scale 1 for constant features).
    coef_ : ndarray [p]
        Coefficients on the standardised features (target unit per standard deviation).
    intercept_ : float
        Target unit.
    alpha_ : float
        Penalty chosen by generalised cross-validation on all training rows.
    oof_ : ndarray [n]
        Out-of-fold trend of each training row (target unit).
    """

    def __init__(self, inner_folds: int = 5, random_state: int = 0):
        self.inner_folds = inner_folds
        self.random_state = random_state

    @staticmethod
    def _fit_one(X: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        from sklearn.linear_model import Ridge, RidgeCV

        mu = X.mean(axis=0)
        sd = X.std(axis=0)
        sd[~(sd > 0)] = 1.0
        Z = (X - mu) / sd
        if len(y) <= RIDGE_ALPHA_ROWS:
            r = RidgeCV(alphas=RIDGE_ALPHAS).fit(Z, y)
            return mu, sd, np.asarray(r.coef_, dtype="float64"), float(r.intercept_), float(r.alpha_)
        sub = np.random.default_rng(seed).choice(len(y), RIDGE_ALPHA_ROWS, replace=False)
        alpha = float(RidgeCV(alphas=RIDGE_ALPHAS).fit(Z[sub], y[sub]).alpha_)
        r = Ridge(alpha=alpha).fit(Z, y)
        return mu, sd, np.asarray(r.coef_, dtype="float64"), float(r.intercept_), alpha

    def fit(self, X: Any, y: Any) -> RidgeTrend:
        """Fit on all rows and compute the out-of-fold predictions ``oof_``."""
        from sklearn.model_selection import KFold

        X = np.asarray(X, dtype="float64")
        y = np.asarray(y, dtype="float64")
        self.mean_, self.scale_, self.coef_, self.intercept_, self.alpha_ = self._fit_one(X, y, self.random_state)
        k = int(min(self.inner_folds, len(y)))
        oof = np.empty(len(y))
        for tr, te in KFold(k, shuffle=True, random_state=self.random_state).split(X):
            mu, sd, coef, b, _ = self._fit_one(X[tr], y[tr], self.random_state)
            oof[te] = ((X[te] - mu) / sd) @ coef + b
        self.oof_ = oof
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Trend of feature rows (float64, target unit)."""
        X = np.asarray(X, dtype="float64")
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_


def _forest(params: dict, random_state: int, n_jobs: int | None):
    """An unfitted scikit-learn random forest with ``warm_start``, grown by :func:`_grow` (a
    forest of this seed grown in steps has the trees of one grown at once)."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=0, random_state=random_state, warm_start=True,
                                 n_jobs=-1 if n_jobs is None else n_jobs, **params)


def _grow(rf: Any, X: np.ndarray, y: np.ndarray, n_trees: int) -> Any:
    """``rf`` with its trees grown to ``n_trees`` (the ones it has are kept)."""
    rf.set_params(n_estimators=int(n_trees))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rf.fit(X, y)
    return rf


class OOBMean:
    """Out-of-bag mean prediction of the training rows, added tree by tree.

    Equals scikit-learn's ``oob_prediction_`` bit for bit (the same float64 sums in tree order),
    without its second pass over the bootstrap samples: forests of the same seed, rows and
    ``max_samples`` have the same samples, so :func:`oob_masks` of one serves both, and a forest
    grown further adds only its new trees. A row that was in every tree's sample is NaN
    (scikit-learn: 0 with a warning).
    """

    def __init__(self, X: np.ndarray):
        self.X = np.asarray(X, dtype=np.float32)  # what the trees split (scikit-learn's DTYPE)
        self.sum = np.zeros(len(self.X))
        self.count = np.zeros(len(self.X))
        self.trees = 0

    def add(self, rf: Any, oob: np.ndarray) -> np.ndarray:
        """Add the trees of ``rf`` after the ones already added (``oob``: [trees, n] masks of
        :func:`oob_masks` for those trees); the mean prediction so far."""
        for est, out in zip(rf.estimators_[self.trees:], oob, strict=True):
            self.sum[out] += est.tree_.predict(self.X[out]).ravel()
            self.count[out] += 1
        self.trees = len(rf.estimators_)
        with np.errstate(invalid="ignore"):
            return self.sum / self.count


def oob_masks(rf: Any, n: int, start: int = 0) -> np.ndarray:
    """[trees, n] True where one of the ``n`` training rows is out of the bootstrap sample of a
    tree of ``rf``, tree ``start`` on (scikit-learn's ``estimators_samples_``)."""
    samples = rf.estimators_samples_[start:]
    out = np.ones((len(samples), n), dtype=bool)
    for row, idx in zip(out, samples, strict=True):
        row[idx] = False
    return out


def paired_oob(y: np.ndarray, p_plain: np.ndarray, resid: np.ndarray, p_res: np.ndarray, *,
               margin: float = TREND_MARGIN, z: float = TREND_Z) -> dict:
    """``auto``'s comparison of two out-of-bag mean predictions of the same training rows.

    ``p_plain`` predicts ``y`` (forest on the target), ``p_res`` predicts ``resid`` = ``y`` minus
    the out-of-fold trend (forest on the residuals); rows without a finite prediction in either
    are left out. Returns both MSEs, the standard error of the paired per-sample difference of
    squared errors, ``take``: the trend lowers the MSE by more than ``max(margin x MSE plain,
    z x SE)`` (the bar), and ``gap``: (improvement - bar) / MSE plain, positive where taken.
    """
    ok = np.isfinite(p_plain) & np.isfinite(p_res)
    if ok.sum() < 2:  # no row out of bag in both (tiny forests): nothing to decide on
        return {"oob_mse_forest": float("nan"), "oob_mse_trend_forest": float("nan"), "se_difference": float("nan"),
                "take": False, "gap": float("nan")}
    d = (y[ok] - p_plain[ok]) ** 2 - (resid[ok] - p_res[ok]) ** 2  # > 0 where the trend helps
    mse_plain = float(np.mean((y[ok] - p_plain[ok]) ** 2))
    mse_trend = float(np.mean((resid[ok] - p_res[ok]) ** 2))
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    over = mse_plain - mse_trend - max(margin * mse_plain, z * se)
    return {"oob_mse_forest": mse_plain, "oob_mse_trend_forest": mse_trend, "se_difference": se,
            "take": bool(over > 0), "gap": over / mse_plain if mse_plain > 0 else float("-inf")}


def adopt_trees(qrf: Any, rf: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """``qrf`` (an unfitted quantile forest) fitted on ``X``, ``y`` with the trees of ``rf``.

    ``rf`` is a scikit-learn forest fitted on the same ``X``, ``y`` with the same number of
    trees, seed and tree settings, i.e. exactly the trees ``qrf.fit`` would grow
    (quantile-forest's ``fit`` calls scikit-learn's): they are handed over and ``qrf.fit`` runs
    with ``warm_start`` and no tree to add, so only the quantile bookkeeping (training samples
    per leaf) is computed. ``tests/test_dsm_trend.py`` checks the result equals a fresh fit.
    """
    # what shapes each tree (scikit-learn's own list, ``estimator_params``) and the forest's sampling
    keys = {*qrf.estimator_params, *rf.estimator_params, "n_estimators", "random_state", "bootstrap", "max_samples"}
    mine, theirs = qrf.get_params(), rf.get_params()
    if any(mine[k] != theirs[k] for k in keys) or len(rf.estimators_) != qrf.n_estimators:
        return qrf.fit(X, y)  # not the same trees: grow them
    warm = qrf.warm_start
    qrf.set_params(warm_start=True)
    qrf.estimators_ = list(rf.estimators_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Warm-start fitting without increasing n_estimators ..."
        qrf.fit(X, y)
    qrf.set_params(warm_start=warm)
    return qrf


def choose_trend(method: str, X: np.ndarray, y: np.ndarray, *, n_estimators: int, params: dict,
                 random_state: int = 0, n_jobs: int | None = None,
                 margin: float = TREND_MARGIN, z: float = TREND_Z, keep_forest: bool = False) -> tuple:
    """Fit the trend for ``method`` and decide whether to use it (training rows only).

    Parameters
    ----------
    method : {"auto", "none", "ridge"}
        ``none``: no trend; ``ridge``: always; ``auto``: the trend only if the out-of-bag
        MSE of trend + forest on the residuals is below ``(1 - margin)`` x that of the forest
        on the target (two forests, same seed: up to :data:`FINAL_MAX_ROWS` rows the first
        ``EARLY_SHARE`` of the final forest's trees, all of them if the improvement is within
        ``EARLY_GAP`` x MSE of the bar; above, ``max(20, n_estimators // 5)`` trees on
        bootstraps of 2,000 rows), the
        improvement exceeds ``z`` standard errors of the paired per-sample difference of
        squared errors, and the trend alone beats the mean out of fold (R2 > 0).
    X : ndarray [n, p]
        The forest's features of the training rows.
    y : ndarray [n]
        Target (its unit).
    n_estimators : int
        Trees of the final forest (sets the size of the comparison forests).
    params : dict
        Tree settings of the final forest (``max_features``, ``min_samples_leaf``, ...).
    keep_forest : bool
        Also return the chosen compared forest grown to ``n_estimators`` trees (scikit-learn,
        fitted on the target or on the residuals; None above :data:`FINAL_MAX_ROWS` rows or
        without a comparison), for :func:`adopt_trees`.

    Returns
    -------
    (RidgeTrend or None, dict) or (RidgeTrend or None, dict, forest or None)
        The fitted trend if used, and the record for the model card: ``requested``, ``used``
        (``ridge`` or ``none``), ``alpha``, the two out-of-bag MSEs, ``comparison_trees`` and
        ``reason``.
    """
    trend, rec, forest = _choose(method, X, y, n_estimators=n_estimators, params=params,
                                 random_state=random_state, n_jobs=n_jobs, margin=margin, z=z)
    return (trend, rec, forest) if keep_forest else (trend, rec)


def _choose(method: str, X: np.ndarray, y: np.ndarray, *, n_estimators: int, params: dict,
            random_state: int, n_jobs: int | None, margin: float, z: float) -> tuple:
    check_trend(method)
    rec: dict = {"requested": method, "used": "none"}
    if method == "none":
        return None, rec, None
    n = len(y)
    if method == "auto" and n < MIN_TREND_SAMPLES:
        rec["reason"] = f"{n} training samples, fewer than {MIN_TREND_SAMPLES} for the out-of-bag comparison"
        return None, rec, None
    trend = RidgeTrend(random_state=random_state).fit(X, y)
    rec["alpha"] = trend.alpha_
    resid = y - trend.oof_
    rec["trend_oof_r2"] = float(1 - np.sum(resid ** 2) / np.sum((y - y.mean()) ** 2))
    if method == "ridge":
        rec["used"] = "ridge"
        return trend, rec, None
    if not rec["trend_oof_r2"] > 0.0:
        rec["reason"] = "the trend alone predicts no better than the mean out of fold"
        return None, rec, None
    final = n <= FINAL_MAX_ROWS
    if final:  # the first trees of the final forest, in two stages; the chosen one is kept (adopt_trees)
        stages = [int(n_estimators)]
        first = max(20, int(np.ceil(EARLY_SHARE * n_estimators)))
        if first < n_estimators:
            stages.insert(0, first)
    else:  # small forests, each tree on a bootstrap of 2,000 rows (out-of-bag for most others)
        stages = [max(20, int(n_estimators) // 5)]
        params = {**params, "max_samples": COMPARISON_SAMPLE_ROWS}
    rf_plain, rf_res = _forest(params, random_state, n_jobs), _forest(params, random_state, n_jobs)
    oob_plain, oob_res = OOBMean(X), OOBMean(X)
    for t in stages:
        _grow(rf_plain, X, y, t)
        _grow(rf_res, X, resid, t)
        oob = oob_masks(rf_plain, n, oob_plain.trees)  # the same seed and rows: the same samples
        c = paired_oob(y, oob_plain.add(rf_plain, oob), resid, oob_res.add(rf_res, oob), margin=margin, z=z)
        if abs(c["gap"]) > EARLY_GAP:
            break
    take = c.pop("take")
    rec.update(c, comparison_trees=t, margin=margin, z=z)
    keep = None
    if final:  # the chosen forest grown to the final number of trees
        keep = rf_res if take else rf_plain
        if len(keep.estimators_) < n_estimators:
            _grow(keep, X, resid if take else y, n_estimators)
    if take:
        rec["used"] = "ridge"
        return trend, rec, keep
    rec["reason"] = ("the trend did not lower the out-of-bag error by more than "
                     f"{100 * margin:g} % and {z:g} standard error")
    return None, rec, keep
