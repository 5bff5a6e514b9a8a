"""``soilsuite dsm compare`` / ``dsm.compare`` (issue 16): same folds, OLS floor, best refitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_dsm import scene  # noqa: F401  (module fixture: synthetic products + samples)
from typer.testing import CliRunner

from soilsuite import dsm
from soilsuite.dsm.compare import TIE_R2, OLSModel, available_candidates
from soilsuite.errors import ConfigError


def test_ols_floor_equals_least_squares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)) * [1, 10, 100, 0.1, 3]
    y = X @ [1.0, 0.1, 0.01, 5.0, 0.0] + rng.normal(size=40)
    m = OLSModel(target="t").fit(pd.DataFrame(X), y)
    A = np.column_stack([np.ones(40), X])
    beta, *_ = np.linalg.lstsq(A, y, rcond=None)
    Xn = rng.normal(size=(7, 5))
    pred = m.predict_array(Xn, [0.05, 0.5, 0.95])
    np.testing.assert_allclose(pred[:, 0], np.column_stack([np.ones(7), Xn]) @ beta, rtol=1e-4, atol=1e-4)
    s = np.sqrt(np.sum((y - A @ beta) ** 2) / (40 - 5 - 1)) * np.sqrt(1 + 1 / 40)
    from scipy.stats import t

    np.testing.assert_allclose(pred[:, 3] - pred[:, 0], s * t.ppf(0.95, 34), rtol=1e-4)
    np.testing.assert_allclose(pred[:, 2], pred[:, 0], rtol=1e-5)


def test_compare_same_folds_table_best_and_cli(tmp_path, scene):  # noqa: F811
    from soilsuite.cli import app

    s = dsm.read_samples(scene.csv, "soc=SOC", crs=scene.crs)
    stack = dsm.build_stack(scene.products, ["SRC_MEAN", "BSF"])
    comp = dsm.compare(s, "soc", stack, method="kfold", k=3, candidates=["ols", "qrf", "qrf_reduced"],
                       n_estimators=20, n_jobs=1)
    t = comp.table.set_index("candidate")
    assert list(t.index) == ["ols", "qrf", "qrf_reduced"] and (t["error"] == "").all()
    folds = [comp.results[c].predictions["fold"].to_numpy() for c in t.index]
    assert all((f == folds[0]).all() for f in folds)  # the same folds for every candidate
    for c in t.index:  # the table is the pooled metrics of each candidate's held-out predictions
        p = comp.results[c].predictions
        assert t.loc[c, "r2"] == pytest.approx(1 - np.sum((p["obs"] - p["mean"]) ** 2)
                                               / np.sum((p["obs"] - p["obs"].mean()) ** 2))
    # OLS held-out predictions equal least squares fitted on each training fold
    p = comp.results["ols"].predictions
    X, y = dsm.training_table(s, "soc", stack)
    Xa = X.to_numpy("float64")
    ref = np.empty(len(y))
    for f in np.unique(folds[0]):
        te = folds[0] == f
        A = np.column_stack([np.ones((~te).sum()), Xa[~te]])
        beta, *_ = np.linalg.lstsq(A, y[~te], rcond=None)
        ref[te] = np.column_stack([np.ones(te.sum()), Xa[te]]) @ beta
    np.testing.assert_allclose(p["mean"].to_numpy(), ref, rtol=1e-3, atol=1e-3 * np.abs(y).max())
    top = t["r2"].max()
    simp = {"ols": 0, "qrf": 1, "qrf_reduced": 2}
    assert comp.best == min(t.index[t["r2"] >= top - TIE_R2], key=simp.get)
    assert t.loc["qrf", "r2"] > 0.5  # the synthetic soc is a function of the reflectances
    assert comp.model is not None and comp.model.stack_ is not None and comp.saved != "ols"
    folder = comp.write(tmp_path / "cmp")
    for f in ("comparison.md", "comparison.csv", "comparison.png", "comparison.json"):
        assert (folder / f).exists()
    with pytest.raises(ConfigError, match="unknown candidates"):
        available_candidates(["qrf", "svm"])
    # the CLI: same samples, report and best model written
    r = CliRunner().invoke(app, ["dsm", "compare", str(scene.csv), "--property", "soc=SOC", "--crs", str(scene.crs),
                                 "--products", str(scene.products), "--out", str(tmp_path / "cli"), "--model-out",
                                 str(tmp_path / "best.joblib"), "--method", "kfold", "--k", "3", "--trees", "10",
                                 "--candidates", "ols,qrf"])
    assert r.exit_code == 0, r.output
    assert "<- best" in r.output and (tmp_path / "cli" / "comparison.png").exists()
    m = dsm.load_model(tmp_path / "best.joblib")
    assert m.stack_ is not None and m.comparison_["saved"] == "qrf"
