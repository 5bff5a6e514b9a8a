"""The fast forest predictor (kernels/qrf.py): both ways of counting a pixel's leaf samples
(dense count table, sparse sort-and-merge), every row layout (chunks of 256, count tables of a
few rows), and scikit-learn's float32 split semantics at the thresholds, against quantile-forest
and scikit-learn (the independent reference), bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from quantile_forest import RandomForestQuantileRegressor

from soilsuite.dsm.fastforest import pack_forest
from soilsuite.dsm.model import _rf_mean
from soilsuite.kernels.qrf import _hist_rows, inbag_mask, predict_qrf

LEVELS = [0.95, 0.05, 0.5, 0.0, 1.0, 0.2718]


def _fit(n, trees, leaf, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype("float32")
    X[:, 3] = np.round(X[:, 3], 1)  # repeated covariate values: thresholds between close values
    y = np.round(X[:, 0] + 0.5 * X[:, 3] + rng.normal(size=n), 1)  # ties in y
    f = RandomForestQuantileRegressor(n_estimators=trees, max_samples_leaf=None, min_samples_leaf=leaf,
                                      max_features=0.75, random_state=seed, n_jobs=1).fit(X, y)
    return f, X


def _rows_at_thresholds(f, X, rng):
    """Rows whose values sit exactly on, just below and just above float32-cast split thresholds
    (scikit-learn goes left on ``float32(x) <= threshold``), plus training rows."""
    rows = [X[rng.integers(0, len(X), 64)]]
    for e in f.estimators_[:5]:
        tr = e.tree_
        inner = np.flatnonzero(tr.children_left != -1)[:40]
        for step in (-np.inf, None, np.inf):
            v = tr.threshold[inner].astype(np.float32)
            if step is not None:
                v = np.nextafter(v, np.float32(step))
            r = X[rng.integers(0, len(X), len(inner))].copy()
            r[np.arange(len(inner)), tr.feature[inner]] = v
            rows.append(r)
    return np.concatenate(rows)


@pytest.fixture(scope="module")
def forests():
    # (n_train, trees, min_samples_leaf): dense by default (small n_train), sparse by default
    # (n_train > 4x the pairs per row; count tables of 2^18 / (4 n_train) = 21 rows when forced)
    return {key: _fit(*key, seed=i) for i, key in enumerate([(90, 25, 1), (160, 20, 4), (3100, 6, 2)])}


@pytest.mark.parametrize("key", [(90, 25, 1), (160, 20, 4), (3100, 6, 2)])
def test_dense_and_sparse_equal_quantile_forest(forests, key):
    f, X = forests[key]
    packed = pack_forest(f)
    auto = "sparse" if _hist_rows(packed) == 0 else "dense"
    assert auto == ("sparse" if key[0] == 3100 else "dense")
    rng = np.random.default_rng(1)
    Xt = np.concatenate([_rows_at_thresholds(f, X, rng), rng.normal(size=(300, 4)).astype("float32")])
    ref_q = f.predict(Xt, quantiles=LEVELS)
    ref_mean = _rf_mean(f, Xt)
    for path in ("dense", "sparse", "auto"):
        for parallel in (False, True):
            mean, q = predict_qrf(Xt, packed, LEVELS, parallel=parallel, path=path)
            np.testing.assert_array_equal(q, ref_q, err_msg=f"{path} parallel={parallel}")
            np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("key", [(90, 25, 1), (3100, 6, 2)])
def test_oob_dense_and_sparse_equal_quantile_forest(forests, key):
    f, X = forests[key]
    packed = pack_forest(f)
    n = len(X)
    pos = np.empty(n, np.int64)
    pos[np.asarray(f.sorter_)[:, 0]] = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantile-forest: "Some inputs do not have OOB scores"
        ref = f.predict(X, quantiles=LEVELS, oob_score=True)
    inbag = inbag_mask(packed)
    assert inbag.sum(axis=1).max() <= n and inbag.any(axis=1).all()
    for path in ("dense", "sparse"):
        mean, q = predict_qrf(X, packed, LEVELS, parallel=False, oob=True, inbag=inbag, train_pos=pos, path=path)
        np.testing.assert_array_equal(q, ref)
        assert np.array_equal(np.isnan(mean), np.isnan(ref[:, 0]))


def test_packed_pairs_are_the_bootstrap_counts(forests):
    """Each leaf's (position, count) pairs hold every bootstrap draw of the tree once."""
    f, X = forests[(160, 20, 4)]
    packed = pack_forest(f)
    ls = packed["lstart"]
    per_tree = np.add.reduceat(packed["wt"], ls[:, 0])
    np.testing.assert_array_equal(per_tree, np.full(len(f.estimators_), len(X)))  # n draws per tree
    assert packed["wt"].max() > 1 and (np.diff(packed["pos"]) > 0).sum() > 0
    with pytest.raises(ValueError, match="path must be"):
        predict_qrf(X[:3], packed, LEVELS, path="fast")
