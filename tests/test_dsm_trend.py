"""Linear trend + forest on its residuals (issue 16): reference ridge, choice inside the training
rows only, gain on a linear signal, no change on a non-linear one, calibrated intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from soilsuite import dsm
from soilsuite.dsm.trend import RIDGE_ALPHAS, RidgeTrend, choose_trend
from soilsuite.errors import ConfigError


def _linear(n: int = 240, p: int = 8, seed: int = 0):
    """A linear signal in 3 of p covariates (forests approximate it by a staircase)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 1.5 * X[:, 2] + rng.normal(size=n)
    return X, y


def _ridge_reference(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge on standardised columns (population sd), intercept = mean of y."""
    mu, sd = X.mean(axis=0), X.std(axis=0)
    Z = (X - mu) / sd
    beta = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return beta, float(y.mean())


def test_ridge_trend_equals_closed_form_and_out_of_fold():
    from sklearn.model_selection import KFold

    X, y = _linear(120, 5, seed=1)
    t = RidgeTrend(inner_folds=5, random_state=3).fit(X, y)
    assert t.alpha_ in RIDGE_ALPHAS
    beta, b0 = _ridge_reference(X, y, t.alpha_)
    np.testing.assert_allclose(t.coef_, beta, rtol=1e-8, atol=1e-10)
    assert t.intercept_ == pytest.approx(b0)
    np.testing.assert_allclose(t.predict(X[:7]), ((X[:7] - X.mean(0)) / X.std(0)) @ beta + b0, rtol=1e-8)
    # out-of-fold: each row predicted by a ridge fitted without it (its penalty chosen without it)
    tr, te = next(iter(KFold(5, shuffle=True, random_state=3).split(X)))
    ref = RidgeTrend._fit_one(X[tr], y[tr])
    beta_f, b_f = _ridge_reference(X[tr], y[tr], ref[4])
    np.testing.assert_allclose(t.oof_[te], ((X[te] - X[tr].mean(0)) / X[tr].std(0)) @ beta_f + b_f, rtol=1e-8)
    assert not np.allclose(t.oof_, t.predict(X))
    # large n: penalty chosen on a 2,000-row subsample, the ridge fitted on all rows
    Xl, yl = _linear(2500, 5, seed=4)
    tl = RidgeTrend(inner_folds=2).fit(Xl, yl)
    beta, b0 = _ridge_reference(Xl, yl, tl.alpha_)
    np.testing.assert_allclose(tl.coef_, beta, rtol=1e-6, atol=1e-8)
    assert tl.intercept_ == pytest.approx(b0)


def test_trend_beats_plain_forest_on_linear_signal():
    """Independent truth: the noise-free linear signal. auto chooses the trend in every fold and
    its CV R2 beats the plain forest's; the intervals stay calibrated."""
    X, y = _linear()
    rng = np.random.default_rng(5)
    Xt = rng.normal(size=(400, X.shape[1]))
    truth = 3.0 * Xt[:, 0] - 2.0 * Xt[:, 1] + 1.5 * Xt[:, 2]
    yt = truth + rng.normal(size=400)
    folds = np.arange(len(y)) % 5
    res = {}
    for trend in ("none", "auto"):
        m = dsm.SoilModel(target="t", unit="u", n_estimators=50, n_jobs=1, trend=trend)
        res[trend] = dsm.cross_validate(m, X, y, folds=folds)
    assert res["auto"].info["trend per fold"] == "ridge x5"
    assert res["none"].info["trend per fold"] == "none x5"
    assert res["auto"].metrics["r2"] > res["none"].metrics["r2"] + 0.05
    m = dsm.SoilModel(target="t", unit="u", n_estimators=80, n_jobs=1).fit(X, y)
    assert m.trend_["used"] == "ridge"
    assert m.trend_["oob_mse_trend_forest"] < m.trend_["oob_mse_forest"]
    assert m.metadata()["trend"]["used"] == "ridge"
    p = m.predict(Xt)
    plain = dsm.SoilModel(target="t", unit="u", n_estimators=80, n_jobs=1, trend="none").fit(X, y).predict(Xt)
    rmse = {k: float(np.sqrt(np.mean((v["mean"] - truth) ** 2))) for k, v in (("trend", p), ("plain", plain))}
    assert rmse["trend"] < 0.7 * rmse["plain"]
    picp = float(np.mean((yt >= p["q05"]) & (yt <= p["q95"])))
    assert 0.84 <= picp <= 0.96
    assert (p["q05"] <= p["q50"]).all() and (p["q50"] <= p["q95"]).all()
    # mean = trend + forest mean on the residuals
    from sklearn.ensemble import RandomForestRegressor

    x32 = Xt.astype("float32")
    np.testing.assert_allclose(p["mean"], m.trend_fit_.predict(x32) + RandomForestRegressor.predict(m.forest_, x32),
                               rtol=1e-5, atol=1e-4)
    oob = dsm.cross_validate(m, method="oob").metrics
    assert oob["r2"] > 0.8 and 0.84 <= oob["picp"] <= 0.96


def test_auto_keeps_plain_forest_without_linear_signal():
    """A step/interaction signal with no linear part: auto keeps the plain forest and its
    predictions are bit-identical to trend='none'."""
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(200, 4))
    y = 4.0 * ((X[:, 0] > 0) ^ (X[:, 1] > 0)) + 0.3 * rng.normal(size=200)
    m = dsm.SoilModel(target="t", unit="u", n_estimators=60, n_jobs=1).fit(X, y)
    assert m.trend_["used"] == "none" and m.trend_fit_ is None
    assert m.trend_["trend_oof_r2"] < 0.0
    ref = dsm.SoilModel(target="t", unit="u", n_estimators=60, n_jobs=1, trend="none").fit(X, y)
    np.testing.assert_array_equal(m.predict_array(X[:50]), ref.predict_array(X[:50]))


def test_trend_choice_never_sees_held_out_rows(monkeypatch):
    """The held-out fold carries a linear target-only signal (covariate 0 = target there, noise in
    the training folds): the per-fold choice and ridge only see training rows, so CV does not learn
    it; the same signal in the training rows is learned (the test can fail)."""
    import soilsuite.dsm.trend as trend_mod

    rng = np.random.default_rng(11)
    n, p = 100, 6
    X = rng.normal(size=(n, p))
    y = rng.normal(size=n)
    folds = np.arange(n) % 5
    tr = folds != 0
    yc = y[tr] - y[tr].mean()
    z = X[tr, 0] - X[tr, 0].mean()
    X[tr, 0] = z - (z @ yc) / (yc @ yc) * yc  # in the training rows covariate 0 is uncorrelated with y
    X[folds == 0, 0] = y[folds == 0]
    seen: list[set] = []
    orig = trend_mod.choose_trend
    X32 = X.astype("float32").astype("float64")

    def spy(method, Xf, yf, **kw):
        seen.append({tuple(r) for r in np.asarray(Xf, dtype="float64")})
        return orig(method, Xf, yf, **kw)

    monkeypatch.setattr(trend_mod, "choose_trend", spy)
    m = dsm.SoilModel(target="t", unit="u", n_estimators=20, n_jobs=1, trend="ridge")
    res = dsm.cross_validate(m, pd.DataFrame(X), y, folds=folds)
    assert len(seen) == 5
    for f, rows in zip(np.unique(folds), seen, strict=True):  # folds are fitted in label order
        assert rows == {tuple(r) for r in X32[folds != f]}
    f0 = res.predictions[res.predictions["fold"] == 0]
    r2_0 = 1 - np.sum((f0["obs"] - f0["mean"]) ** 2) / np.sum((f0["obs"] - f0["obs"].mean()) ** 2)
    assert r2_0 < 0.3
    Xl = X.copy()
    Xl[:, 0] = y + 0.1 * rng.normal(size=n)
    res_l = dsm.cross_validate(m, pd.DataFrame(Xl), y, folds=folds)
    assert res_l.metrics["r2"] > 0.9


def test_trend_small_samples_and_bad_value():
    X, y = _linear(15, 3)
    tr, rec = choose_trend("auto", X, y, n_estimators=50, params={"max_features": 0.5, "min_samples_leaf": 1})
    assert tr is None and rec["used"] == "none" and "15 training samples" in rec["reason"]
    tr, rec = choose_trend("ridge", X, y, n_estimators=50, params={})
    assert tr is not None and rec["used"] == "ridge"
    with pytest.raises(ConfigError, match=r"trend must be one of auto, none, ridge, got 'lasso'"):
        dsm.SoilModel(target="t", trend="lasso").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # calibration off below 20 samples
        m = dsm.SoilModel(target="t", unit="u", n_estimators=30, n_jobs=1).fit(X, y)
    assert m.trend_["used"] == "none"


@pytest.mark.filterwarnings("ignore:Some inputs do not have OOB scores")
@pytest.mark.parametrize(("a", "seed", "expect", "early_gap", "stage"),
                         [(0.4, 1, "none", None, "full"), (None, 5, "ridge", None, "first"),
                          (None, 5, "ridge", float("inf"), "full")])
def test_auto_decides_on_final_size_forests_and_keeps_the_chosen(monkeypatch, a, seed, expect, early_gap, stage):
    """Up to FINAL_MAX_ROWS rows ``auto`` compares the first EARLY_SHARE of the final forest's
    trees, and all of them if the improvement is within EARLY_GAP x MSE of the bar: the stage,
    the decision and its out-of-bag errors equal an independent recomputation with scikit-learn
    forests of the same seed (the same trees) and their ``oob_prediction_``, and the model's
    quantile forest (the chosen forest, grown to 100 trees if decided on fewer, handed over)
    equals a fresh quantile-forest fit on the chosen target, quantile for quantile. Case 1:
    20-tree forests (the comparison before issue 16's change) see the trend 8 % better, the
    compared forests see the plain forest better (the noise the change removes), and the first
    stage is too close to call; case 2: the first stage decides; case 3: the same data with the
    first stage switched off (EARLY_GAP infinite: always the full comparison)."""
    import math

    import soilsuite.dsm.trend as trend_mod

    if early_gap is not None:
        monkeypatch.setattr(trend_mod, "EARLY_GAP", early_gap)
    first = max(20, math.ceil(trend_mod.EARLY_SHARE * 100))
    from quantile_forest import RandomForestQuantileRegressor
    from sklearn.ensemble import RandomForestRegressor

    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(200, 5))
    if a is None:
        y = 3 * X[:, 0] - 2 * X[:, 1] + rng.normal(size=200)
    else:
        y = 2 * np.sin(4 * X[:, 0]) + a * X[:, 1] + 0.5 * rng.normal(size=200)
    m = dsm.SoilModel(target="t", unit="u", n_estimators=100, n_jobs=1).fit(X, y)
    rec = m.trend_
    X32 = X.astype("float32").astype("float64")
    resid = y - RidgeTrend(random_state=0).fit(X32, y).oof_
    oob, rfs = {}, {}
    for name, target in (("plain", y), ("trend", resid)):
        for trees in (20, first, 100):
            rf = RandomForestRegressor(trees, random_state=0, oob_score=True, **m.best_params_).fit(X32, target)
            oob[name, trees], rfs[name, trees] = rf.oob_prediction_, rf
    sq = {k: ((y if k[0] == "plain" else resid) - v) ** 2 for k, v in oob.items()}
    if a is not None:  # the small forests would have taken the trend
        assert sq["plain", 20].mean() > 1.08 * sq["trend", 20].mean()

    def rule(k):  # improvement over the bar, relative to the plain forest's MSE
        se = np.std(sq["plain", k] - sq["trend", k], ddof=1) / np.sqrt(len(y))
        bar = max(0.02 * sq["plain", k].mean(), 0.5 * se)
        return se, (sq["plain", k].mean() - sq["trend", k].mean() - bar) / sq["plain", k].mean()

    k = first if abs(rule(first)[1]) > trend_mod.EARLY_GAP else 100
    assert rec["comparison_trees"] == k == {"first": first, "full": 100}[stage]
    se, gap = rule(k)
    take = gap > 0
    assert rec["used"] == ("ridge" if take else "none") == expect
    np.testing.assert_allclose([rec["oob_mse_forest"], rec["oob_mse_trend_forest"], rec["se_difference"], rec["gap"]],
                               [sq["plain", k].mean(), sq["trend", k].mean(), se, gap], rtol=1e-9)
    assert (m.trend_fit_ is not None) == take
    fresh = RandomForestQuantileRegressor(n_estimators=100, max_samples_leaf=None, random_state=0, n_jobs=1,
                                          **m.best_params_).fit(X32, resid if take else y)
    Xn = rng.uniform(-1, 1, size=(50, 5)).astype("float32")
    np.testing.assert_array_equal(m.forest_.predict(Xn, quantiles=[0.05, 0.5, 0.95]),
                                  fresh.predict(Xn, quantiles=[0.05, 0.5, 0.95]))
    np.testing.assert_array_equal(m.forest_.feature_importances_, fresh.feature_importances_)
    ref = rfs["trend" if take else "plain", 100].predict(Xn) + (m.trend_fit_.predict(Xn) if take else 0.0)
    np.testing.assert_allclose(m.predict_array(Xn)[:, 0], ref, rtol=1e-5, atol=1e-5)


def test_oob_mean_equals_scikit_learn_in_stages():
    """OOBMean summed over two growth stages of one forest (masks of the first forest serving a
    second forest of the same seed) equals scikit-learn's ``oob_prediction_`` bit for bit."""
    from sklearn.ensemble import RandomForestRegressor

    from soilsuite.dsm.trend import OOBMean, _forest, _grow, oob_masks

    rng = np.random.default_rng(4)
    X = rng.normal(size=(150, 6))
    y1, y2 = X[:, 0] + rng.normal(size=150), np.sin(X[:, 1]) + 0.1 * rng.normal(size=150)
    a, b = _forest({"max_features": 0.5}, 3, 1), _forest({"max_features": 0.5}, 3, 1)
    ma, mb = OOBMean(X), OOBMean(X)
    for t in (30, 70):
        _grow(a, X, y1, t)
        _grow(b, X, y2, t)
        oob = oob_masks(a, len(X), ma.trees)
        pa, pb = ma.add(a, oob), mb.add(b, oob)
    for target, p in ((y1, pa), (y2, pb)):
        ref = RandomForestRegressor(70, max_features=0.5, random_state=3, oob_score=True).fit(X, target)
        np.testing.assert_array_equal(p, ref.oob_prediction_)


def test_auto_on_large_sets_compares_small_forests(monkeypatch):
    """Above FINAL_MAX_ROWS the comparison uses max(20, trees // 5) trees on bootstraps of 2,000
    rows (here 100 of the 200) and the model's forest is grown afresh (same result as trend="none" when not taken)."""
    import soilsuite.dsm.trend as trend_mod

    monkeypatch.setattr(trend_mod, "FINAL_MAX_ROWS", 100)
    monkeypatch.setattr(trend_mod, "COMPARISON_SAMPLE_ROWS", 100)
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(200, 4))
    y = 4.0 * ((X[:, 0] > 0) ^ (X[:, 1] > 0)) + 0.8 * X[:, 2] + 0.3 * rng.normal(size=200)
    m = dsm.SoilModel(target="t", unit="u", n_estimators=60, n_jobs=1).fit(X, y)
    assert m.trend_["comparison_trees"] == 20 and np.isfinite(m.trend_["oob_mse_forest"])
    ref = dsm.SoilModel(target="t", unit="u", n_estimators=60, n_jobs=1,
                        trend="ridge" if m.trend_["used"] == "ridge" else "none").fit(X, y)
    np.testing.assert_array_equal(m.predict_array(X[:40]), ref.predict_array(X[:40]))


def test_forest_importances_equal_scikit_learn():
    """``forest_importances`` (the model's ``importances_``) equals scikit-learn's
    ``feature_importances_`` bit for bit, also with single-node trees left out (a constant target
    on some bootstrap samples) and for a forest of single-node trees only (zeros)."""
    from sklearn.ensemble import RandomForestRegressor

    from soilsuite.dsm.model import forest_importances

    rng = np.random.default_rng(8)
    X = rng.normal(size=(60, 4))
    y = np.where(np.arange(60) < 3, 1.0, 0.0)  # a bootstrap sample missing the three ones is constant
    for target in (X[:, 0] + 0.5 * rng.normal(size=60), y):
        rf = RandomForestRegressor(40, max_features=0.5, random_state=1).fit(X, target)
        assert any(e.tree_.node_count == 1 for e in rf.estimators_) == (target is y)
        np.testing.assert_array_equal(forest_importances(rf), rf.feature_importances_)
    rf = RandomForestRegressor(5, random_state=1).fit(X, np.ones(60))
    np.testing.assert_array_equal(forest_importances(rf), np.zeros(4))
    np.testing.assert_array_equal(rf.feature_importances_, np.zeros(4))
