"""Covariate reduction inside the soil model (issue 16): no leakage, sklearn equivalence, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_dsm import scene  # noqa: F401  (module fixture: synthetic products + samples)

from soilsuite import dsm
from soilsuite.dsm.reduce import Reducer, correlation_filter
from soilsuite.errors import ConfigError, InputError


def _spectra(n: int = 60, p: int = 40, seed: int = 0):
    """Collinear 'spectra': 3 latent factors x smooth loadings + small noise; y from factor 1."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 3))
    w = np.linspace(0, 1, p)
    load = np.vstack([np.sin(2 * w) + 1.0, np.cos(3 * w), w ** 2])
    X = f @ load + 0.01 * rng.normal(size=(n, p))
    y = 2 * f[:, 0] + 0.3 * rng.normal(size=n)
    return X, y


def test_pca_equals_sklearn_fitted_on_training_rows():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X, y = _spectra()
    tr = np.arange(len(X)) % 4 != 0
    r = Reducer(method="pca", n_components=5).fit(X[tr], y[tr])
    assert r.method_used_ == "pca" and len(r.block_) == X.shape[1] and len(r.keep_) == 0
    sc = StandardScaler().fit(X[tr])
    ref = PCA(n_components=5, svd_solver="full").fit(sc.transform(X[tr]))
    np.testing.assert_allclose(r.transform(X[~tr]), ref.transform(sc.transform(X[~tr])), rtol=1e-4, atol=1e-4)
    assert r.names_out_ == [f"PC{i}" for i in range(1, 6)]
    # not the PCA of all rows
    allrows = PCA(n_components=5, svd_solver="full").fit(StandardScaler().fit_transform(X))
    assert not np.allclose(np.abs(allrows.components_[1]), np.abs(r.pca_.components_[1]), atol=1e-3)


def test_filter_property_and_isolated_covariates_pass_through():
    X, y = _spectra()
    rng = np.random.default_rng(3)
    iso = rng.normal(size=(len(X), 1))  # uncorrelated with everything: never in the block
    X2 = np.column_stack([X, iso])
    kept = correlation_filter(X2, y, 0.95)
    r = np.abs(np.corrcoef(X2, rowvar=False))
    ry = np.abs([np.corrcoef(X2[:, j], y)[0, 1] for j in range(X2.shape[1])])
    assert X2.shape[1] - 1 in kept
    sub = r[np.ix_(kept, kept)] - np.eye(len(kept))
    assert sub.max() <= 0.95  # no kept pair is a near-duplicate
    for j in set(range(X2.shape[1])) - set(kept):  # every dropped one has a better kept partner
        partners = [k for k in kept if r[j, k] > 0.95]
        assert partners and max(ry[k] for k in partners) >= ry[j]
    # pca keeps the isolated covariate as it is, beside the components of the block
    red = Reducer(method="pca", n_components=3, feature_names=[f"wl_{i}" for i in range(40)] + ["ERa"]).fit(X2, y)
    assert red.names_out_ == ["ERa", "PC1", "PC2", "PC3"]
    np.testing.assert_allclose(red.transform(X2)[:, 0], X2[:, -1].astype("float32"))


def test_auto_rule_and_identity_on_narrow_stacks():
    X, y = _spectra(n=60, p=40)
    wide = Reducer(method="auto", n_estimators=20).fit(X, y)
    assert wide.method_used_ in ("pca", "filter") and len(wide.scores_) >= 2
    assert min(wide.scores_, key=wide.scores_.get) == (
        f"pca:{wide.pca_.n_components_}" if wide.method_used_ == "pca" else "filter")
    narrow = Reducer(method="auto").fit(X[:, :10], y)
    assert narrow.method_used_ == "none" and narrow.is_identity
    # a narrow stack gives exactly the model without reduction
    a = dsm.SoilModel(target="t", n_estimators=20, reduce="auto", n_jobs=1).fit(X[:, :10], y)
    b = dsm.SoilModel(target="t", n_estimators=20, reduce="none", n_jobs=1).fit(X[:, :10], y)
    np.testing.assert_array_equal(a.predict_array(X[:, :10]), b.predict_array(X[:, :10]))
    assert list(a.importances_.index) == a.feature_names_
    with pytest.raises(ConfigError, match="reduce must be one of"):
        dsm.SoilModel(target="t", reduce="lda").fit(X, y)


def test_filter_chosen_after_scoring_pca_transforms(monkeypatch):
    """auto scores pca candidates first; when the filter wins, no leftover PCA is applied."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 40)), rng.normal(size=50)  # wide (p > n/2), no collinear block
    monkeypatch.setattr(Reducer, "_oob_mse", lambda self, Z, y: -Z.shape[1])  # prefer the widest candidate
    r = Reducer(method="auto").fit(X, y)
    assert len(r.scores_) >= 2 and r.method_used_ == "filter" and r.pca_ is None
    Z = r.transform(X)
    assert Z.shape[1] == len(r.names_out_) == 40
    np.testing.assert_array_equal(Z, X[:, r.keep_].astype("float32"))


def test_reduction_never_sees_held_out_rows(monkeypatch):
    """A covariate carrying the target only in the held-out fold (target-only signal): the
    reduction, fitted per fold on the training rows, never sees those rows; the CV score stays
    at the no-signal level."""
    rng = np.random.default_rng(7)
    n, p = 60, 40
    X = rng.normal(size=(n, p))
    y = rng.normal(size=n)
    folds = np.arange(n) % 5
    X[folds == 0, 0] = y[folds == 0]  # covariate 0 is the target, in fold 0 only
    seen: list[np.ndarray] = []
    orig = Reducer.fit

    def spy(self, Xf, yf=None):
        seen.append(np.asarray(Xf, dtype="float64").copy())
        return orig(self, Xf, yf)

    monkeypatch.setattr(Reducer, "fit", spy)
    model = dsm.SoilModel(target="t", n_estimators=20, reduce="filter", n_jobs=1)
    res = dsm.cross_validate(model, pd.DataFrame(X, columns=[f"c{i}" for i in range(p)]), y, folds=folds)
    assert len(seen) == 5
    X32 = X.astype("float32").astype("float64")
    for f, Xs in zip(np.unique(folds), seen, strict=True):
        held = {tuple(r) for r in X32[folds == f]}
        assert len(Xs) == int((folds != f).sum())
        assert not any(tuple(r) in held for r in Xs)
    assert res.metrics["r2"] < 0.15
    assert "filter" in res.info["reduction per fold"]
    # the same data with the leak visible in training rows is learned (the test can fail)
    Xl = X.copy()
    Xl[:, 0] = y + 0.05 * rng.normal(size=n)
    res_l = dsm.cross_validate(model, pd.DataFrame(Xl, columns=[f"c{i}" for i in range(p)]), y, folds=folds)
    assert res_l.metrics["r2"] > 0.6


def test_reduced_model_card_and_predict_map(tmp_path, scene, monkeypatch):  # noqa: F811
    import rasterio

    monkeypatch.setattr("soilsuite.dsm.reduce.SCORE_TREES", 20)  # cheaper scoring of the components
    monkeypatch.setattr("soilsuite.dsm.reduce.PCA_GRID", (2, 4))

    s = dsm.read_samples(scene.csv, "soc=SOC", crs=scene.crs)
    stack = dsm.build_stack(scene.products, ["SRC_MEAN", "BSF"])
    m = dsm.train(s, "soc", stack, n_estimators=20, n_jobs=1, reduce="pca")
    assert m.reducer_.method_used_ == "pca" and m.feature_names_ == stack.names
    assert list(m.importances_.index) == m.reducer_.names_out_
    assert m.metadata()["reduction"]["method_used"] == "pca"
    res = dsm.cross_validate(m, method="kfold", k=3)
    assert res.info["reduction"].startswith("PCA of") and "pca:" in res.info["reduction per fold"]
    assert 0 <= res.metrics["aoa_share"] <= 1 and res.metrics["aoa_share"] > 0.5
    folder = res.write(tmp_path / "report")
    html = (folder / "report.html").read_text()
    for text in ("covariates after reduction", "PCA of", "area of applicability", "cv design", "PICP"):
        assert text in html, text
    # maps block by block through the reduction equal the model's predictions at the samples
    paths = dsm.predict_map(m, tmp_path / "maps", block_size=16, aoa=True)
    with rasterio.open(paths["mean"]) as src:
        mean = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, s.gdf.geometry.x, s.gdf.geometry.y)
    X, _ = dsm.training_table(s, "soc", stack)
    np.testing.assert_allclose(mean[rows, cols], m.predict(X)["mean"].to_numpy(), rtol=1e-5)


def test_bad_covariates_named():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 4)), columns=["a", "b", "gap", "flat"])
    y = rng.normal(size=30)
    X["flat"] = 3.0
    X.loc[:4, "gap"] = np.nan
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = dsm.SoilModel(target="t", n_estimators=10, n_jobs=1).fit(X, y)
    msgs = " | ".join(str(x.message) for x in w)
    assert "gap (5)" in msgs and "fill the gaps" in msgs
    assert "['flat'] are constant" in msgs
    assert m.covariate_check_ == {"nan": {"gap": 5}, "constant": ["flat"]}
    X["gap"] = np.nan
    with pytest.raises(InputError, match=r"covariates \['gap'\] have no value"):
        dsm.SoilModel(target="t", n_estimators=10).fit(X, y)
    # the reducing methods drop constant covariates and record it
    r = Reducer(method="filter", feature_names=["a", "b", "flat"]).fit(X[["a", "b", "flat"]].to_numpy(), y)
    assert r.summary_["dropped_constant"] == ["flat"] and "flat" not in r.names_out_


REALDATA = Path(__file__).resolve().parents[1] / ".realdata" / "limesoda"


@pytest.mark.realdata
@pytest.mark.skipif(not (REALDATA / "BB.30_1.npz").exists(), reason="LimeSoDa not fetched (make realdata)")
def test_limesoda_bench_reproducible_with_seed():
    """bench/dsm_limesoda.py: the same seed gives the same numbers, another seed other ones; the
    groups come from the columns (LimeSoDa 0.1.5, Schmidinger et al. 2025, CC BY-SA 4.0)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dsm_limesoda", REALDATA.parents[1] / "bench" / "dsm_limesoda.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    df, folds = bench.load(REALDATA / "BB.30_1.npz")
    runs = [bench.run_task(df, folds, "SOC_target", n_estimators=15, tune=False, seed=s, n_jobs=1) for s in (0, 0, 1)]
    keys = ("r2", "rmse", "picp", "below", "above")
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    assert runs[0]["r2"] != runs[2]["r2"]
    assert runs[0]["reduction"] == "none x10"  # 5 covariates: auto leaves them as given
    groups = {ds: bench.group(list(bench.load(REALDATA / f"{ds}.npz")[0].columns)) for ds in bench.datasets(REALDATA)}
    assert sum(g == "spectral" for g in groups.values()) == 15
    assert sorted(d for d, g in groups.items() if g == "S2") == sorted(bench.S2_DATASETS)
