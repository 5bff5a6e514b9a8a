"""Spatial options of the soil model (dsm/spatial.py), the fast forest predictor
(kernels/qrf.py, dsm/fastforest.py) and the fit-time changes (calibration, AOA)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from quantile_forest import RandomForestQuantileRegressor
from scipy.spatial.distance import cdist
from test_dsm import scene  # noqa: F401  (module fixture: synthetic products + samples)

from soilsuite import dsm
from soilsuite.dsm.fastforest import forest_predict, oob_quantiles, pack_forest
from soilsuite.dsm.model import CALIBRATION_GRID, SoilModel, _rf_mean, other_fold_nn_distance
from soilsuite.dsm.spatial import MAX_DISTANCE_POINTS, MIN_KRIGING_SAMPLES
from soilsuite.dsm.validation import cross_validate
from soilsuite.errors import ConfigError, InputError


def _forest(n, trees, leaf, ties, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype("float32")
    y = X[:, 0] + rng.normal(size=n)
    if ties:
        y = np.round(y, 1)
    f = RandomForestQuantileRegressor(n_estimators=trees, max_samples_leaf=None, min_samples_leaf=leaf,
                                      max_features=0.5, random_state=seed, n_jobs=1).fit(X, y)
    return f, X, y


# (n, trees, leaf, ties): the dense path (n_train <= 4 x gathered samples) and the sort path (large n)
@pytest.mark.parametrize("n,trees,leaf,ties", [(80, 40, 1, True), (150, 30, 3, False), (3000, 8, 1, True)])
def test_fast_predictor_equals_quantile_forest(n, trees, leaf, ties):
    f, X, y = _forest(n, trees, leaf, ties)
    packed = pack_forest(f)
    Xt = np.random.default_rng(5).normal(size=(700, 5)).astype("float32")
    levels = [0.05, 0.5, 0.95, 0.001, 0.999, 0.3333]
    for parallel in (False, True):
        mean, q = forest_predict(packed, Xt, levels, parallel=parallel)
        np.testing.assert_array_equal(q, f.predict(Xt, quantiles=levels))  # bit for bit
        np.testing.assert_allclose(mean, _rf_mean(f, Xt), rtol=1e-12, atol=1e-12)
    grid = list(CALIBRATION_GRID[::7])
    oob_mean, oob_q = oob_quantiles(f, packed, X, grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantile-forest: "Some inputs do not have OOB scores"
        ref = f.predict(X, quantiles=grid, oob_score=True)
    np.testing.assert_array_equal(oob_q, ref)
    f2 = RandomForestQuantileRegressor(n_estimators=trees, max_samples_leaf=None, min_samples_leaf=leaf,
                                       max_features=0.5, random_state=0, n_jobs=1, oob_score=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f2.fit(X, y)
    ok = np.isfinite(oob_mean)  # NaN where every tree drew the sample (scikit-learn reports 0 there)
    assert np.isnan(ref[~ok]).all() and ok.mean() > 0.5
    np.testing.assert_allclose(oob_mean[ok], f2.oob_prediction_[ok], rtol=1e-12, atol=1e-12)


def test_model_predictions_and_calibration_unchanged():
    """SoilModel's predictions and calibration curves equal the quantile-forest ones (the code before)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 6))
    y = np.round(2 * X[:, 0] + rng.normal(size=120), 1)
    m = SoilModel(target="y", unit="", n_estimators=60, reduce="none", n_jobs=1, trend="none").fit(X, y)
    Xt = rng.normal(size=(500, 6)).astype("float32")
    Xt[3, 2] = np.nan
    out = m.predict_array(Xt)
    ok = np.isfinite(Xt).all(axis=1)
    ref = m.forest_.predict(Xt[ok], quantiles=m.levels(m.quantiles)).astype("float32")
    np.testing.assert_array_equal(out[ok, 1:], ref)
    np.testing.assert_allclose(out[ok, 0], _rf_mean(m.forest_, Xt[ok]), rtol=1e-6)
    assert np.isnan(out[~ok]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = m.forest_.predict(m.X_train_, quantiles=list(CALIBRATION_GRID), oob_score=True)
    yv = m.y_train_[:, None]
    np.testing.assert_array_equal(m.level_map_["below"], np.mean(yv < q, axis=0))
    np.testing.assert_array_equal(m.level_map_["at_or_below"], np.mean(yv <= q, axis=0))


def test_aoa_other_fold_neighbour_matches_sklearn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 4))
    folds = rng.integers(0, 5, 300)
    got = other_fold_nn_distance(Z, folds, np.arange(300))
    ref = np.empty(300)
    for f in range(5):
        te = folds == f
        ref[te] = NearestNeighbors(n_neighbors=1).fit(Z[~te]).kneighbors(Z[te])[0][:, 0]
    np.testing.assert_allclose(got, ref, rtol=1e-9)


# ----------------------------------------------------------------------------- spatial covariates
def _field(n, seed=0):
    """Covariates with a weak signal plus a strong smooth spatial field (residual structure)."""
    rng = np.random.default_rng(seed)
    C = rng.uniform(0, 10_000, size=(n, 2)) + [500_000.0, 5_800_000.0]
    X = rng.normal(size=(n, 4))
    g = 2 * np.sin((C[:, 0] - 500_000) / 1500) + 2 * np.cos((C[:, 1] - 5_800_000) / 1200)
    return X, X[:, 0] + g + 0.3 * rng.normal(size=n), C


def test_xy_and_distance_covariates_against_numpy():
    X, y, C = _field(80)
    m = SoilModel(target="y", unit="", n_estimators=20, spatial="xy", reduce="none").fit(X, y, coords=C)
    P = np.random.default_rng(9).uniform(0, 10_000, (50, 2)) + [500_000.0, 5_800_000.0]
    np.testing.assert_allclose(m.spatial_fit_.features(P, 50), (P - C.min(axis=0)).astype("float32"))
    assert list(m.importances_.index[-2:]) == ["coord_x", "coord_y"]
    m = SoilModel(target="y", unit="", n_estimators=20, spatial="distances", reduce="none").fit(X, y, coords=C)
    pts = m.spatial_fit_.points
    assert len(pts) == MAX_DISTANCE_POINTS == len(m.spatial_["names"])
    np.testing.assert_allclose(m.spatial_fit_.features(P, 50), cdist(P, pts).astype("float32"), rtol=1e-6)
    # few samples: the reference points are the sample locations themselves
    m = SoilModel(target="y", unit="", n_estimators=20, spatial="distances", reduce="none").fit(
        X[:25], y[:25], coords=C[:25])
    np.testing.assert_array_equal(np.sort(m.spatial_fit_.points, axis=0), np.sort(C[:25], axis=0))
    # the forest sees them: predictions differ with the location
    a = m.predict_array(X[:5], coords=C[:5])
    b = m.predict_array(X[:5], coords=C[:5] + 5000)
    assert not np.allclose(a, b)


def test_rk_beats_none_in_spatially_blocked_cv(tmp_path):
    X, y, C = _field(120, seed=2)
    res = {}
    for sp in ("none", "rk"):
        m = SoilModel(target="y", unit="", n_estimators=40, spatial=sp, reduce="none")
        res[sp] = cross_validate(m, X, y, coords=C, method="spatial", block_size=1000, k=5).metrics
    assert res["rk"]["r2"] > res["none"]["r2"] + 0.3, res
    assert 0.8 <= res["rk"]["picp"] <= 1.0, res
    m = SoilModel(target="y", unit="", n_estimators=40, spatial="rk", reduce="none").fit(X, y, coords=C)
    v = m.spatial_["variogram"]
    assert m.spatial_["used"] == "rk" and v["range"] > 0 and v["partial_sill"] > 0
    # the kriged residual moves the mean and every quantile by the same amount
    base = SoilModel(target="y", unit="", n_estimators=40, reduce="none").fit(X, y, coords=C)
    out = m.predict_array(X[:20], coords=C[:20])
    r = m.spatial_fit_.kriged(C[:20], 20)
    assert np.abs(r).max() > 0.1
    np.testing.assert_allclose(out[:, 0] - r, base.predict_array(X[:20])[:, 0], rtol=1e-5, atol=1e-5)
    m.save(tmp_path / "rk.joblib")  # the kriging travels with the model file
    np.testing.assert_array_equal(SoilModel.load(tmp_path / "rk.joblib").predict_array(X[:20], coords=C[:20]), out)


def test_spatial_fallbacks_and_messages(tmp_path):
    X, y, C = _field(60)
    n = MIN_KRIGING_SAMPLES - 1
    with pytest.warns(UserWarning, match=rf"spatial='rk' not used \({n} samples, fewer than the 30"):
        m = SoilModel(target="y", unit="", n_estimators=20, spatial="rk", reduce="none").fit(X[:n], y[:n],
                                                                                            coords=C[:n])
    assert m.spatial_["used"] == "none" and "fewer than the 30" in m.spatial_["reason"]
    assert m.metadata()["spatial"]["used"] == "none"
    one = np.tile(C[:1], (60, 1))
    for sp in ("xy", "rk", "distances"):
        with pytest.warns(UserWarning, match="all 60 samples are at one location"):
            m = SoilModel(target="y", unit="", n_estimators=20, spatial=sp, reduce="none").fit(X, y, coords=one)
        assert m.spatial_["used"] == "none"
        assert np.isfinite(m.predict_array(X[:3])).all()  # the plain forest, no coords needed
    with pytest.raises(InputError, match="spatial='xy' needs the sample coordinates"):
        SoilModel(target="y", unit="", n_estimators=10, spatial="xy").fit(X, y)
    bad = C.copy()
    bad[4] = np.nan
    with pytest.raises(InputError, match=r"1 samples without coordinates \(rows \[4\]\)"):
        SoilModel(target="y", unit="", n_estimators=10, spatial="distances").fit(X, y, coords=bad)
    with pytest.raises(ConfigError, match="spatial must be one of none, xy, distances, rk"):
        SoilModel(target="y", spatial="kriging").fit(X, y, coords=C)
    m = SoilModel(target="y", unit="", n_estimators=10, spatial="xy", reduce="none").fit(X, y, coords=C)
    with pytest.raises(InputError, match="uses spatial='xy': give coords="):
        m.predict_array(X[:3])


def test_cli_spatial_option(tmp_path, scene):  # noqa: F811
    from typer.testing import CliRunner

    from soilsuite.cli import app

    args = ["dsm", "train", str(scene.csv), "--property", "soc=SOC", "--x", "x", "--y", "y", "--crs", scene.crs,
            "--products", str(scene.products), "-m", str(tmp_path / "m.joblib"), "--trees", "20"]
    r = CliRunner().invoke(app, [*args, "--spatial", "kriging"])
    assert r.exit_code == 2 and "--spatial must be one of none, xy, distances, rk" in r.output
    r = CliRunner().invoke(app, [*args, "--spatial", "xy"])
    assert r.exit_code == 0, r.output
    assert "spatial: xy" in r.output
    assert dsm.load_model(tmp_path / "m.joblib").spatial_["names"] == ["coord_x", "coord_y"]


def test_predict_map_with_xy(tmp_path, scene):  # noqa: F811
    """The map of an xy model: pixel centres as coordinates, same values as predict_array there."""
    import rasterio
    from rasterio.windows import Window

    s = dsm.read_samples(scene.csv, ["soc=SOC"], x="x", y="y", crs=scene.crs)
    stack = dsm.build_stack(scene.products, ["SRC_MEAN", "BSF"])
    m = dsm.train(s, "soc", stack, n_estimators=20, spatial="xy", reduce="none", n_jobs=1)
    paths = dsm.predict_map(m, tmp_path / "map", block_size=32, aoa=False)
    with rasterio.open(paths["mean"]) as src:
        mean = src.read(1)
        tr = src.transform
    rows, cols = np.array([10, 40, 63]), np.array([20, 33, 50])
    cov = stack.read(Window(0, 0, mean.shape[1], mean.shape[0]))
    Xp = cov[:, rows, cols].T
    xy = np.column_stack([tr.c + tr.a * (cols + 0.5), tr.f + tr.e * (rows + 0.5)])
    want = m.predict_array(Xp, coords=xy)[:, 0]
    np.testing.assert_allclose(mean[rows, cols], want, rtol=1e-6)
