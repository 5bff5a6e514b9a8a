"""Covariate reduction for wide, collinear covariate stacks (spectra), fitted inside the model.

A quantile regression forest on hundreds of collinear spectral bands (vis-NIR, MIR) spreads its
splits over near-duplicate bands and predicts worse than on a few summary variables: on the 45
LimeSoDa tasks with spectral covariates the forest on raw bands reached a mean R2 of 0.36
against 0.45 for the published random forest, which tuned a PCA or a correlation filter as a
hyperparameter (Schmidinger et al. 2025). :class:`Reducer` does that reduction as a
scikit-learn transformer. :class:`~soilsuite.dsm.model.SoilModel` fits it inside
:meth:`~soilsuite.dsm.model.SoilModel.fit` on the training rows only, so every
cross-validation fold refits it without seeing its held-out rows (no leakage), and applies the
same transform at prediction (block by block for maps).

Methods
-------
``none``
    The covariates as given (identity).
``filter``
    Correlation filter: of every pair of covariates with ``|r| > max_corr`` (Pearson, training
    rows) one is dropped, keeping the one better correlated with the target: covariates are
    visited in order of decreasing ``|r(covariate, target)|`` and kept if no kept covariate is
    correlated above ``max_corr`` with them.
``pca``
    Principal components of the *collinear block*: the covariates with at least one partner
    above ``|r| > max_corr`` (the spectral bands; all covariates if there is no such block),
    standardised (training mean and standard deviation) then projected on their first ``k``
    principal components (scikit-learn ``PCA``, full SVD). The other covariates pass through
    unchanged, so an isolated strong covariate (pH-ISE, ERa) is not buried in a component.
    ``k`` is ``n_components`` if given, else chosen from ``grid`` by the out-of-bag mean squared
    error of a random forest (``n_estimators`` trees, training rows only).
``auto`` (default of :class:`~soilsuite.dsm.model.SoilModel`)
    Reduce only *wide* stacks: ``p >= 30`` covariates and either ``p > n / 2`` (more than half
    as many covariates as training samples) or a collinear block of at least 30 covariates.
    Then the candidates ``filter`` and ``pca`` with each ``k`` of ``grid`` are scored by that
    out-of-bag error and the best is used; otherwise ``none``. On LimeSoDa this reduces the 15
    spectral datasets and leaves the 16 others (at most 17 covariates) as they are.

Covariates constant over the training rows carry no information; ``filter``, ``pca`` and a
reducing ``auto`` drop them (recorded in :attr:`Reducer.summary_`); ``none`` keeps them (the
forest never splits on them). Units: components are dimensionless (standardised scores); kept
covariates keep their units.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ..errors import ConfigError, InputError, check_choice

#: Methods of :class:`Reducer` (``--reduce`` on the CLI).
REDUCE_METHODS = ("auto", "none", "pca", "filter")

#: |Pearson r| above which two covariates count as near-duplicates.
MAX_CORR = 0.95

#: Candidate numbers of principal components.
PCA_GRID = (3, 5, 10, 20, 30)

#: Trees of the random forest that scores the candidate reductions (out-of-bag MSE).
SCORE_TREES = 100

#: Fewest covariates for ``auto`` to reduce (and the collinear-block size that alone triggers it).
WIDE_MIN_P = 30


def check_covariates(X: np.ndarray, names: Sequence[str], what: str = "model") -> dict:
    """Covariates that are unusable or suspicious at the sample points.

    Parameters
    ----------
    X : ndarray [n, p]
        Covariates at the samples (rows with a missing target already removed).
    names : sequence of str
        Covariate names.
    what : str
        Model name for the messages.

    Returns
    -------
    dict
        ``nan``: name -> number of samples where the covariate is NaN (those samples are left out
        of fitting); ``constant``: names of covariates with a single value over the finite rows.

    Raises
    ------
    InputError
        A covariate is NaN at every sample, naming it.
    """
    X = np.asarray(X, dtype="float64")
    finite = np.isfinite(X)
    n_nan = (~finite).sum(axis=0)
    allnan = [str(names[j]) for j in np.flatnonzero(n_nan == len(X))]
    if allnan and len(X):
        raise InputError(f"{what}: covariates {allnan} have no value (NaN/nodata) at any of the {len(X)} "
                         "samples; check that the rasters cover the samples, or leave these covariates out")
    nan = {str(names[j]): int(n_nan[j]) for j in np.flatnonzero(n_nan)}
    rows = finite.all(axis=1)
    constant = []
    if rows.sum() > 1:
        Xr = X[rows]
        constant = [str(names[j]) for j in np.flatnonzero(np.ptp(Xr, axis=0) == 0)]
    return {"nan": nan, "constant": constant}


def _corr(X: np.ndarray) -> np.ndarray:
    """|Pearson r| between the columns of X (no constant columns), float64 [p, p]."""
    Z = X - X.mean(axis=0)
    Z /= np.sqrt((Z * Z).sum(axis=0))
    return np.abs(Z.T @ Z)


def correlation_filter(X: np.ndarray, y: np.ndarray, max_corr: float = MAX_CORR) -> np.ndarray:
    """Indices of the covariates a correlation filter keeps (sorted).

    Covariates are visited by decreasing ``|r|`` with ``y``; one is kept unless a kept covariate
    is correlated with it above ``max_corr``. ``X`` must have no constant column.
    """
    X = np.asarray(X, dtype="float64")
    y = np.asarray(y, dtype="float64")
    c = _corr(X)
    yc = y - y.mean()
    Z = X - X.mean(axis=0)
    denom = np.sqrt((Z * Z).sum(axis=0) * (yc @ yc))
    ry = np.abs(Z.T @ yc) / np.where(denom > 0, denom, 1.0)
    kept: list[int] = []
    for j in np.argsort(-ry, kind="stable"):
        if not kept or c[j, kept].max() <= max_corr:
            kept.append(int(j))
    return np.sort(np.asarray(kept, dtype=np.int64))


class Reducer(BaseEstimator, TransformerMixin):
    """Covariate reduction (see the module docstring for the methods and the ``auto`` rule).

    Parameters
    ----------
    method : {"auto", "none", "pca", "filter"}
    max_corr : float
        |Pearson r| above which covariates are near-duplicates (filter, collinear block).
    n_components : int, optional
        ``pca``: number of components; default chosen from ``grid`` by out-of-bag error.
    grid : sequence of int
        Candidate numbers of components (those not below the block size and the number of
        training samples minus one are skipped).
    n_estimators : int
        Trees of the random forest that scores the candidates (out-of-bag MSE).
    random_state : int
        Seed of that forest.
    n_jobs : int, optional
        Threads of that forest (None: all cores).
    feature_names : sequence of str, optional
        Names of the input covariates (for the record and the output names).

    Attributes
    ----------
    method_used_ : str
        ``none``, ``filter`` or ``pca``.
    keep_ : ndarray of int
        Input columns passed through unchanged.
    block_ : ndarray of int
        Input columns projected on principal components (``pca``), else empty.
    scaler_, pca_ : fitted sklearn ``StandardScaler`` and ``PCA`` (``pca`` only).
    names_out_ : list of str
        Names of the output features: kept covariate names, then ``PC1`` ... ``PCk``.
    scores_ : dict
        Candidate -> out-of-bag MSE (target unit squared) when a choice was scored.
    summary_ : dict
        What was done, for the model card: method asked and used, covariates in and out,
        dropped constant covariates, block size, components, explained variance, scores, rule.
    """

    def __init__(self, method: str = "auto", max_corr: float = MAX_CORR, n_components: int | None = None,
                 grid: Sequence[int] = PCA_GRID, n_estimators: int = 100, random_state: int = 0,
                 n_jobs: int | None = None, feature_names: Sequence[str] | None = None):
        self.method = method
        self.max_corr = max_corr
        self.n_components = n_components
        self.grid = grid
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.feature_names = feature_names

    # ------------------------------------------------------------------ fitting
    def _names(self, p: int) -> list[str]:
        fn = self.feature_names
        return [str(v) for v in fn] if fn is not None and len(fn) == p else [f"x{i}" for i in range(p)]

    def _oob_mse(self, Z: np.ndarray, y: np.ndarray) -> float:
        from sklearn.ensemble import RandomForestRegressor

        f = RandomForestRegressor(n_estimators=self.n_estimators, max_features=0.5, oob_score=True,
                                  random_state=self.random_state, n_jobs=-1 if self.n_jobs is None else self.n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "some inputs do not have OOB scores"
            f.fit(Z, y)
        pred = f.oob_prediction_
        ok = np.isfinite(pred)
        return float(np.mean((y[ok] - pred[ok]) ** 2))

    def _fit_pca(self, X: np.ndarray, cols: np.ndarray, k: int) -> None:
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X[:, cols])
        self.pca_ = PCA(n_components=k, svd_solver="full").fit(self.scaler_.transform(X[:, cols]))

    def fit(self, X: Any, y: Any = None) -> Reducer:
        """Choose and fit the reduction on these (training) rows; ``y`` is needed by ``filter``,
        by a scored ``pca`` and by ``auto``."""
        check_choice(self.method, REDUCE_METHODS, "reduce")
        if not 0 < self.max_corr < 1:
            raise ConfigError(f"max_corr must be within (0, 1), got {self.max_corr}")
        X = np.asarray(X, dtype="float64")
        if X.ndim != 2:
            raise InputError(f"covariates must be a 2-D table [samples, covariates], got shape {X.shape}")
        if not np.isfinite(X).all():
            raise InputError("Reducer: covariates contain NaN/inf; leave those samples out first")
        n, p = X.shape
        names = self._names(p)
        self.n_features_in_ = p
        self.scaler_ = self.pca_ = None
        self.block_ = np.zeros(0, dtype=np.int64)
        self.scores_ = {}
        varying = np.flatnonzero(np.ptp(X, axis=0) > 0) if n > 1 else np.arange(p)
        constant = [names[j] for j in np.setdiff1d(np.arange(p), varying)]
        summary: dict[str, Any] = {"method": self.method, "n_in": p, "n_samples": n,
                                   "max_corr": self.max_corr}
        c = _corr(X[:, varying]) if len(varying) > 1 else np.zeros((len(varying), len(varying)))
        np.fill_diagonal(c, 0.0)
        block = varying[(c > self.max_corr).any(axis=1)] if len(varying) else varying
        summary["collinear_block"] = int(len(block))
        method = self.method
        if method == "auto":
            wide = p >= WIDE_MIN_P and (p > n / 2 or len(block) >= WIDE_MIN_P)
            summary["rule"] = (f"auto: reduce if p >= {WIDE_MIN_P} and (p > n/2 or a block of >= {WIDE_MIN_P} "
                               f"covariates with |r| > {self.max_corr:g}); p = {p}, n = {n}, block = {len(block)}")
            method = "choose" if wide else "none"
        if method == "none":
            self.keep_ = np.arange(p)
            self.method_used_ = "none"
        else:
            if len(varying) == 0:
                raise InputError(f"all {p} covariates are constant over the {n} training samples")
            y = None if y is None else np.asarray(y, dtype="float64")
            if y is None and (method in ("filter", "choose") or (method == "pca" and self.n_components is None)):
                raise ConfigError(f"reduce={self.method!r} needs the target y to choose the reduction")
            pcols = block if len(block) >= 2 else varying
            rest = np.setdiff1d(varying, pcols)
            kmax = min(len(pcols), n - 1)
            if self.n_components is not None:
                if not 1 <= int(self.n_components) <= kmax:
                    raise ConfigError(f"n_components must be within 1..{kmax} (covariates in the block / "
                                      f"samples - 1), got {self.n_components}")
                ks = [int(self.n_components)]
            else:
                ks = sorted({int(k) for k in self.grid if 1 <= int(k) <= kmax}) or [max(1, min(kmax, 3))]
            cands: list[tuple[str, Any]] = []
            if method in ("filter", "choose"):
                cands.append(("filter", None))
            if method in ("pca", "choose"):
                cands += [(f"pca:{k}", k) for k in ks]
            if len(cands) > 1:
                for label, k in cands:
                    if k is None:
                        Z = X[:, varying[correlation_filter(X[:, varying], y, self.max_corr)]]
                    else:
                        self._fit_pca(X, pcols, k)
                        Z = np.column_stack([X[:, rest], self.pca_.transform(self.scaler_.transform(X[:, pcols]))])
                    self.scores_[label] = self._oob_mse(Z, y)
                best = min(self.scores_, key=self.scores_.get)
                summary["scores_oob_mse"] = {k: round(v, 6) for k, v in self.scores_.items()}
            else:
                best = cands[0][0]
            if best == "filter":
                self.method_used_ = "filter"
                self.scaler_ = self.pca_ = None  # left over from scoring the pca candidates
                self.keep_ = np.sort(varying[correlation_filter(X[:, varying], y, self.max_corr)])
            else:
                k = int(best.split(":")[1])
                self.method_used_ = "pca"
                self.keep_ = np.sort(rest)
                self.block_ = np.sort(pcols)
                self._fit_pca(X, self.block_, k)
                summary.update(components=k, block_size=int(len(self.block_)),
                               explained_variance=round(float(self.pca_.explained_variance_ratio_.sum()), 4))
            summary["dropped_constant"] = constant
        self.names_out_ = [names[j] for j in self.keep_] + [f"PC{i + 1}" for i in range(self._k())]
        summary.update(method_used=self.method_used_, n_out=len(self.names_out_),
                       kept=[names[j] for j in self.keep_] if self.method_used_ != "none" else "all")
        self.summary_ = summary
        return self

    def _k(self) -> int:
        return 0 if self.pca_ is None else int(self.pca_.n_components_)

    # ------------------------------------------------------------------ transform
    @property
    def is_identity(self) -> bool:
        """True if the transform returns its input unchanged (``none``)."""
        return self.method_used_ == "none"

    def transform(self, X: Any) -> np.ndarray:
        """Reduced covariates [n, len(names_out_)] (float32, as the forest uses); rows with a NaN
        covariate used by the reduction give NaN in the affected outputs."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InputError(f"expected {self.n_features_in_} covariates, got shape {X.shape}")
        if self.is_identity:
            return X.astype("float32", copy=False)
        out = np.empty((len(X), len(self.keep_) + self._k()), dtype=np.float32)
        out[:, :len(self.keep_)] = X[:, self.keep_]
        if self.pca_ is not None:
            # in row chunks of ~4e6 values: a map block of a wide stack never gets float64 copies
            step = max(1, 4_000_000 // max(1, len(self.block_)))
            for s in range(0, len(X), step):
                B = X[s:s + step, self.block_].astype("float64")
                ok = np.isfinite(B).all(axis=1)
                Zb = np.full((len(B), self._k()), np.nan)
                if ok.any():
                    Zb[ok] = self.pca_.transform(self.scaler_.transform(B[ok]))
                out[s:s + step, len(self.keep_):] = Zb
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.names_out_, dtype=object)

    def describe(self) -> str:
        """One line for reports: what the reduction did."""
        s = self.summary_
        if self.method_used_ == "none":
            why = " (stack not wide)" if s["method"] == "auto" else ""
            return f"none{why}: {s['n_in']} covariates used as given"
        drop = f"; dropped constant: {', '.join(s['dropped_constant'])}" if s.get("dropped_constant") else ""
        if self.method_used_ == "filter":
            return (f"correlation filter |r| > {s['max_corr']:g}: {s['n_in']} covariates -> {s['n_out']} "
                    f"(asked: {s['method']}){drop}")
        return (f"PCA of {s['block_size']} collinear covariates (standardised) -> {s['components']} components "
                f"({100 * s['explained_variance']:.1f} % of their variance) + {len(self.keep_)} covariates as given"
                f" = {s['n_out']} features (asked: {s['method']}){drop}")


def make_reducer(method: str, *, feature_names: Sequence[str] | None = None, random_state: int = 0,
                 n_jobs: int | None = None) -> Reducer:
    """A :class:`Reducer` with the package defaults (used by ``SoilModel.fit``)."""
    check_choice(method, REDUCE_METHODS, "reduce")
    return Reducer(method=method, grid=PCA_GRID, n_estimators=SCORE_TREES, feature_names=feature_names,
                   random_state=random_state, n_jobs=n_jobs)
