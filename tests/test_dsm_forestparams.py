"""Covariates tried per split (``max_features``, issue 16): the ``"third"`` rule, its wiring into the
forest (checked against quantile-forest fitted directly), the model card and bad values."""

from __future__ import annotations

import numpy as np
import pytest
from quantile_forest import RandomForestQuantileRegressor

from soilsuite import dsm
from soilsuite.dsm.forestparams import parse_max_features, resolve_max_features
from soilsuite.dsm.model import _rf_mean
from soilsuite.errors import ConfigError


def _data(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(size=n)
    return X, y


def test_third_rule_counts():
    """floor(p / 3), at least 2 (all of them below 2)."""
    got = [resolve_max_features("third", p) for p in (1, 2, 3, 4, 5, 6, 9, 10, 15, 16, 17, 30)]
    assert got == [1, 2, 2, 2, 2, 2, 3, 3, 5, 5, 5, 10]
    assert resolve_max_features(0.5, 16) == 0.5 and resolve_max_features("sqrt", 16) == "sqrt"


def test_third_is_the_forest_with_that_count():
    """The model's forest is quantile-forest's with max_features = floor(p / 3) = 5 of 16 (same seed,
    identical means), recorded in best_params_ and the metadata; different from a half (8)."""
    X, y = _data(120, 16)
    m = dsm.SoilModel(target="t", unit="u", n_estimators=40, n_jobs=1, max_features="third", trend="none",
                      calibrate=False).fit(X, y)
    assert m.best_params_["max_features"] == 5
    meta = m.metadata()
    assert meta["params"]["max_features"] == "third" and meta["best_params"]["max_features"] == 5
    Xt = np.random.default_rng(9).normal(size=(50, 16)).astype("float32")
    ref = RandomForestQuantileRegressor(n_estimators=40, max_features=5, max_samples_leaf=None, random_state=0,
                                        n_jobs=1).fit(X.astype("float32"), y)
    np.testing.assert_allclose(m.predict_array(Xt)[:, 0], _rf_mean(ref, Xt), rtol=1e-5, atol=1e-5)
    half = RandomForestQuantileRegressor(n_estimators=40, max_features=0.5, max_samples_leaf=None, random_state=0,
                                         n_jobs=1).fit(X.astype("float32"), y)
    assert np.max(np.abs(_rf_mean(half, Xt) - _rf_mean(ref, Xt))) > 1e-3


def test_third_keeps_two_covariates_on_narrow_stacks():
    """p = 4: the floor gives 2 per split, the same forest as a half (not 1, a random covariate)."""
    X, y = _data(80, 4, seed=1)
    kw = dict(target="t", unit="u", n_estimators=30, n_jobs=1, trend="none", calibrate=False)
    a = dsm.SoilModel(max_features="third", **kw).fit(X, y)
    b = dsm.SoilModel(max_features=0.5, **kw).fit(X, y)
    c = dsm.SoilModel(max_features=1, **kw).fit(X, y)
    assert a.best_params_["max_features"] == 2
    np.testing.assert_array_equal(a.predict_array(X[:20]), b.predict_array(X[:20]))
    assert not np.array_equal(a.predict_array(X[:20]), c.predict_array(X[:20]))


@pytest.mark.parametrize("bad", ["half", 0.0, 1.5, -2, True])
def test_bad_max_features(bad):
    X, y = _data(30, 3)
    with pytest.raises(ConfigError, match=r"^max_features must be 'third', 'sqrt', 'log2', a share in \(0, 1\] or a "
                                          r"count >= 1, got"):
        dsm.SoilModel(target="t", max_features=bad, n_estimators=5).fit(X, y)


def test_parse_max_features_cli():
    assert parse_max_features("third") == "third"
    assert parse_max_features("0.5") == 0.5 and parse_max_features("5") == 5
    with pytest.raises(ConfigError, match=r"^--max-features must be .* got 'half'"):
        parse_max_features("half")
    with pytest.raises(ConfigError, match=r"got 1.5"):
        parse_max_features("1.5")
