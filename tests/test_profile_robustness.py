"""Issue 11 (helper E): ``--profile soilsuite`` on the default (``v1``) simulator spectra.

The profile's threshold 0.10 was chosen on the realistic spectra (``spectra="field"``), whose
really bare soil has PV+IR2 median -0.04; the default ``v1`` soils sit at ~0.14 (docs/profiles.md
"Against the targets"). These tests check, on the session's v1 archive (``sim_archive``: 96 px,
2021-2022, seed 3), the two statements docs/profiles.md makes about that: the profile keeps
almost none of the bare observations there, and the documented remedy (the profile with
``--threshold 0.2``) keeps nearly SCMaP's recall at a higher precision. The observation flags of
each configuration come from one load of the archive (``classify_inputs``, the pipeline's own
code path); no composite is written.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

START, END = dt.date(2021, 1, 1), dt.date(2022, 12, 31)


@pytest.fixture(scope="module")
def v1_scores(sim_archive):
    """Precision / recall of the bare observations on cropland for SCMaP, the profile, and the
    profile with SCMaP's threshold, on the session's v1 archive."""
    from soilsuite.evaluate import observation_scores
    from soilsuite.kernels.composite import FLAG_BARE, FLAG_VALID
    from soilsuite.pipeline.block import classify_inputs
    from soilsuite.pipeline.composite import (
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.sources import stac as S
    from soilsuite.sources.simulate import TRUTH_BARE, load_truth

    common = dict(source=str(sim_archive.catalog_path), start=START, end=END, out="x",
                  crs=f"EPSG:{sim_archive.epsg}", worldcover=sim_archive.worldcover_path)
    base = build_config(**common)
    _, sel = select_items(base)
    inp = load_tile_inputs(sel.items, S.resolve_assets(sel.items), target_geobox(base, sel.items), base,
                           base.mask.dilation_px // 2)
    truth = load_truth(sim_archive.out)
    idx = pd.DatetimeIndex(truth["time"].values).normalize().get_indexer(pd.DatetimeIndex(inp.meta.times).normalize())
    bare = (truth["obs_flags"].values[idx] & TRUTH_BARE) != 0
    crop = truth["landcover"].values == 1
    out = {}
    for name, kw in (("scmap", {}), ("soilsuite", {"profile": "soilsuite"}),
                     ("soilsuite thr 0.2", {"profile": "soilsuite", "threshold": 0.2})):
        cfg = build_config(**common, **kw)
        inp.threshold = np.full(inp.valid.shape[1:], cfg.bare.threshold, np.float32)
        flags = classify_inputs(inp, cfg)[1]
        out[name] = observation_scores((flags & FLAG_BARE) > 0, (flags & FLAG_VALID) > 0, bare, crop)
    print({k: (round(v["precision"], 3), round(v["recall"], 3)) for k, v in out.items()})
    return out


def test_profile_threshold_is_fragile_on_v1_spectra(v1_scores):
    """docs/profiles.md: on v1 soils (PV+IR2 ~0.14) the profile's 0.10 keeps almost nothing.

    Measured (bench/profile_sweep.py --spectra v1 --seed 3): SCMaP precision 0.650 / recall
    0.488; the profile 0.987 / 0.047 (seed 7: 0.018). Limit: recall below a fifth of SCMaP's
    (measured a tenth). If the profile's threshold changes, this test and the docs change with it.
    """
    s, p = v1_scores["scmap"], v1_scores["soilsuite"]
    assert 0.60 < s["precision"] < 0.70 and 0.45 < s["recall"] < 0.53, s  # SCMaP's numbers, unchanged
    assert p["recall"] < 0.2 * s["recall"], (p["recall"], s["recall"])


def test_profile_with_scmap_threshold_keeps_recall_on_v1(v1_scores):
    """The remedy docs/profiles.md gives (``--profile soilsuite --threshold 0.2``): the guard
    alone then narrows SCMaP's decision. Measured: precision 0.809 (SCMaP 0.650), recall 0.460
    (SCMaP 0.488, ratio 0.94). Limits: precision at least 0.10 above SCMaP's, recall at least
    0.85 x SCMaP's.
    """
    s, r = v1_scores["scmap"], v1_scores["soilsuite thr 0.2"]
    assert r["precision"] > s["precision"] + 0.10, (r["precision"], s["precision"])
    assert r["recall"] > 0.85 * s["recall"], (r["recall"], s["recall"])
