"""Pictures people read: quicklook legends, the DSM validation report's maps and settings, and
the modes of what soilsuite creates (the user's umask)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from soilsuite import dsm


@pytest.fixture
def figures(monkeypatch):
    """Every matplotlib figure saved during the test (drawn, so tick offsets are computed)."""
    from matplotlib.figure import Figure

    saved = []
    orig = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _report(tmp_path):
    rng = np.random.default_rng(5)
    n = 120
    X = rng.normal(size=(n, 3))
    y = 20 + 5 * X[:, 0] + rng.normal(scale=1.0, size=n)
    xy = np.column_stack([rng.uniform(442_000, 447_000, n), rng.uniform(5_818_000, 5_823_000, n)])  # UTM: 1e6 offsets
    m = dsm.SoilModel(target="soc", n_estimators=40, n_jobs=1).fit(X, y, coords=xy, crs="EPSG:32633")
    r = dsm.cross_validate(m, method="spatial", k=4, block_size=1000.0)
    return r, r.write(tmp_path / "validation")


def test_dsm_report_maps_and_settings(tmp_path, figures, umask_027):
    r, folder = _report(tmp_path)
    res_map = next(f for f in figures if "residuals" in f.axes[0].get_title())
    ax = res_map.axes[0]
    assert "EPSG:32633" in ax.get_xlabel() and "km" in ax.get_xlabel()
    assert "EPSG:32633" in ax.get_ylabel() and "northing" in ax.get_ylabel()
    res_map.canvas.draw()
    for axis in (ax.xaxis, ax.yaxis, res_map.axes[1].yaxis):  # no "1e6" / "+5.82e3" offset text
        assert axis.get_offset_text().get_text() == ""
    assert "residual" in res_map.axes[1].get_ylabel() and "[g/kg]" not in ax.get_xlabel()
    ovp = next(f for f in figures if f.axes[0].get_xlabel().startswith("predicted"))
    labels = ovp.axes[0].get_legend_handles_labels()[1]
    assert any("90 % prediction interval (Q0.05 to Q0.95)" in lab for lab in labels)

    md = (folder / "report.md").read_text()
    assert "| setting | value | unit |" in md
    assert "| model: n_estimators | 40 | trees |" in md
    assert "| block_size | 1000 | CRS units (m for a projected CRS) |" in md
    assert "{'" not in md and "'n_estimators'" not in md  # no raw Python dict
    assert "<table>" in (folder / "report.html").read_text()


def test_created_with_the_users_umask(tmp_path, umask_027):
    """Folders 0o750 and files 0o640 under umask 027: nothing is made private (0o700/0o600)."""
    _, folder = _report(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    for p in folder.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o750 if p.is_dir() else 0o640), p


def test_quicklooks_say_what_grey_means(tmp_path, figures):
    from soilsuite.io import quicklook as Q

    refl = np.full((10, 20, 20), np.nan)
    refl[:, 5:15, 5:15] = 0.1
    Q.quicklook_rgb(refl, tmp_path / "rgb.png", band_names=None)
    texts = [t.get_text() for f in figures for leg in f.legends for t in leg.get_texts()]
    assert any("nodata" in t for t in texts)
    bsf = np.full((20, 20), np.nan)
    bsf[5:15, 5:15] = 0.4
    Q.quicklook_bsf(bsf, tmp_path / "bsf.png")
    assert any("nodata" in a.get_ylabel() for f in figures[1:] for a in f.axes)
