"""The numbers behind ``--profile soilsuite`` (issue 11): guard limits and SRC estimators on truth.

On a simulated archive with the realistic spectra (``spectra="field"``; ``--spectra v1`` for the
old ones), every configuration is composited (window, WorldCover, in-process) and scored with
:func:`soilsuite.evaluate.evaluate` against the truth (cropland; bare = soil fraction >= 85 %):
bare-observation precision and recall, SRC_MEAN bias per band, and the recall on the clay-rich
soil type (the guard's cost: clay absorbs near 2.2 um, raising NBR2).

Usage::

    .venv/bin/python -P bench/profile_sweep.py [--size 96] [--seed 3] [--spectra field] [--out /tmp/profile_sweep]
    .venv/bin/python -P bench/profile_sweep.py --kernel     # dry-selection kernel vs numpy reference
    .venv/bin/python -P bench/profile_sweep.py --floor      # the SRC bias floor of any observation choice
    .venv/bin/python -P bench/profile_sweep.py --rules      # rules and SRC rankings that are not options
    .venv/bin/python -P bench/profile_sweep.py --edge       # the edge guard (--edge-guard N) with the profile

Prints one line per configuration. ``--floor`` prints, per band, the bias of the single brightest
(in B11 + B12) truly bare, valid observation of each cropland pixel against the dry-soil truth:
no estimator that averages observations can be less biased than this on the archive (all pixels,
and pixels not at a parcel edge, where the simulator mixes neighbouring parcels).

``--edge`` loads the archive once (one tile, with the edge guard's 1-pixel ring) and runs the
block functions of the pipeline in memory for the profile with ``--edge-guard N`` (N = 5..8) and
thresholds 0.10 / 0.12 / 0.15 (the same products as ``soilsuite composite``; the profile's own
row is the check against the full runs above). Besides the columns above it prints the recall on
truly bare observations of pixels at a parcel edge (``edge rec.``: the guard's cost on narrow
parcels and field margins) and the precision away from edges. ``--kernel`` also times the edge
guard kernel against its numpy reference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np

START, END = dt.date(2021, 1, 1), dt.date(2022, 12, 31)
#: (label, options): the SCMaP reference, guard limits, SRC estimators, the profile.
CONFIGS = [
    ("scmap (default)", {}),
    ("src dry", {"src_estimator": "dry"}),
    ("guard 0.10", {"dry_guard": 0.10}),
    ("guard 0.12", {"dry_guard": 0.12}),
    ("guard 0.14", {"dry_guard": 0.14}),
    ("guard 0.12 + dry", {"dry_guard": 0.12, "src_estimator": "dry"}),
    ("guard 0.12 + dry 0.5", {"dry_guard": 0.12, "src_estimator": "dry", "src_dry_share": 0.5}),
    ("thr 0.15 guard 0.12", {"threshold": 0.15, "dry_guard": 0.12}),
    ("thr 0.10 guard 0.12", {"threshold": 0.10, "dry_guard": 0.12}),
    ("thr 0.10 guard 0.11 dry", {"threshold": 0.10, "dry_guard": 0.11, "src_estimator": "dry"}),
    ("thr 0.10 guard 0.14 dry", {"threshold": 0.10, "dry_guard": 0.14, "src_estimator": "dry"}),
    ("thr 0.08 guard 0.12 dry", {"threshold": 0.08, "dry_guard": 0.12, "src_estimator": "dry"}),
    ("profile + thr 0.2", {"profile": "soilsuite", "threshold": 0.2}),
    ("profile soilsuite", {"profile": "soilsuite"}),
    ("profile + edge 6", {"profile": "soilsuite", "edge_guard": 6}),
    ("profile + edge 7", {"profile": "soilsuite", "edge_guard": 7}),
]
#: ``--edge``: (label, options) run in memory on one load of the archive.
EDGE_CONFIGS = [("scmap (default)", {}), ("profile soilsuite", {"profile": "soilsuite"})] + [
    (f"profile{'' if t == 0.10 else f' thr {t:.2f}'} edge {n}",
     {"profile": "soilsuite", "edge_guard": n, **({} if t == 0.10 else {"threshold": t})})
    for t in (0.10, 0.12, 0.15, 0.20) for n in (3, 4, 5, 6, 7, 8)
] + [("profile thr 0.12", {"profile": "soilsuite", "threshold": 0.12}),
     ("profile thr 0.15", {"profile": "soilsuite", "threshold": 0.15}),
     ("profile thr 0.08", {"profile": "soilsuite", "threshold": 0.08}),
     ("profile thr 0.06", {"profile": "soilsuite", "threshold": 0.06})]


def score(sim, out: Path, opts: dict, flags_cache: dict) -> dict:
    from soilsuite.evaluate import evaluate, observation_scores
    from soilsuite.kernels.composite import FLAG_BARE
    from soilsuite.pipeline.composite import build_config, observation_flags, run
    from soilsuite.sources.simulate import TRUTH_BARE, load_truth

    common = dict(start=START, end=END, crs=f"EPSG:{sim.epsg}", worldcover=sim.worldcover_path)
    shutil.rmtree(out, ignore_errors=True)
    cfg = build_config(source=str(sim.catalog_path), out=out, scheduler="sync", **common, **opts)
    t0 = time.perf_counter()
    run(cfg)
    secs = time.perf_counter() - t0
    key = (cfg.bare.dry_guard, cfg.bare.threshold, cfg.bare.edge_guard)
    if key not in flags_cache:
        flags_cache[key] = observation_flags(sim.catalog_path, **common, dry_guard=key[0], threshold=key[1],
                                             edge_guard=key[2])
    flags = flags_cache[key]
    m = evaluate(out, sim.out, flags=flags)
    truth = load_truth(sim.out)
    t_idx = truth.indexes["time"].normalize().get_indexer(flags.indexes["time"].normalize())
    bare = (truth["obs_flags"].values[t_idx] & TRUTH_BARE) != 0
    picked = (flags["flags"].values & FLAG_BARE) != 0
    clay = (truth["landcover"].values == 1) & (truth["soil_type"].values == 3)
    m["clay_recall"] = observation_scores(picked, picked, bare, clay)["recall"] if clay.any() else float("nan")
    m["seconds"] = secs
    return m


def kernel_ratio(repeats: int = 3) -> None:
    """The dry-selection and edge-guard kernels against their numpy references on the same random
    cubes (interleaved repeats, best of each): prints both times and the ratio."""
    from soilsuite.kernels.moisture import dry_selection, dry_selection_reference

    rng = np.random.default_rng(0)
    refl = rng.integers(0, 5000, size=(60, 10, 48, 48)).astype(np.int16)
    flags = np.where(rng.uniform(size=(60, 48, 48)) < 0.3, 9, 1).astype(np.uint8)
    dry_selection(refl, flags, None, 1, 0.25, 2)  # compile
    tk, tr = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = dry_selection(refl, flags, None, 1, 0.25, 2)
        tk.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = dry_selection_reference(refl, flags, None, 1, 0.25, 2)
        tr.append(time.perf_counter() - t0)
        assert (k == r).all()
    print(f"dry_selection 60 x 48 x 48: kernel {min(tk) * 1e3:.1f} ms, numpy reference {min(tr) * 1e3:.1f} ms, "
          f"ratio {min(tr) / min(tk):.0f}x")

    from soilsuite.kernels.edges import edge_guard, edge_guard_reference

    cand = rng.uniform(size=(90, 256, 256)) < 0.6
    neigh = np.pad(cand, ((0, 0), (1, 1), (1, 1)))
    edge_guard(cand, neigh, 5)  # compile
    tk, tr = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = edge_guard(cand, neigh, 5)
        tk.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = edge_guard_reference(cand, neigh, 5)
        tr.append(time.perf_counter() - t0)
        assert (k == r).all()
    print(f"edge_guard 90 x 256 x 256: kernel {min(tk) * 1e3:.1f} ms, numpy reference {min(tr) * 1e3:.1f} ms, "
          f"ratio {min(tr) / min(tk):.1f}x")


def _cube(sim):
    """The run's observation cube (tile inputs of the whole archive, SCMaP's options) and the
    truth on its dates: (inputs, truth Dataset, truly bare [T, Y, X], cropland [Y, X], edge [Y, X])."""
    import pandas as pd
    from scipy import ndimage

    from soilsuite.pipeline.composite import (
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.sources import stac as S
    from soilsuite.sources.simulate import TRUTH_BARE, load_truth

    cfg = build_config(source=str(sim.catalog_path), start=START, end=END, out=Path("."), crs=f"EPSG:{sim.epsg}",
                       worldcover=sim.worldcover_path)
    _, sel = select_items(cfg)
    inp = load_tile_inputs(sel.items, S.resolve_assets(sel.items), target_geobox(cfg, sel.items), cfg,
                           cfg.mask.dilation_px // 2)
    truth = load_truth(sim.out)
    t_idx = truth.indexes["time"].normalize().get_indexer(pd.DatetimeIndex(inp.meta.times).normalize())
    bare = (truth["obs_flags"].values[t_idx] & TRUTH_BARE) != 0
    fid = truth["field_id"].values
    edge = ndimage.maximum_filter(fid, 3) != ndimage.minimum_filter(fid, 3)  # touches another parcel
    return inp, truth, bare, truth["landcover"].values == 1, edge


_POS = {"B02": 0, "B04": 2, "B08": 6, "B8A": 7, "B11": 8, "B12": 9}


def bias_floor(sim) -> None:
    """The SRC_MEAN bias of an oracle: per cropland pixel with >= 3 truly bare valid observations,
    the brightest of them in B11 + B12, against the dry-soil truth (all pixels; not at an edge)."""
    inp, truth, bare, crop, edge = _cube(sim)
    bare = bare & inp.valid
    refl = inp.refl.astype(np.float64) / 1e4
    bright = np.where(bare, refl[:, 8] + refl[:, 9], -np.inf)
    best = np.take_along_axis(refl, np.argmax(bright, axis=0)[None, None], axis=0)[0]  # [B, Y, X]
    ok = crop & (bare.sum(0) >= 3)
    d = best - truth["soil_reflectance"].values
    for label, where in (("all", ok), ("not at an edge", ok & ~edge)):
        print(f"bias floor ({label}, {int(where.sum())} px): "
              + " ".join(f"{b} {d[i][where].mean():+.4f}" for b, i in _POS.items()))


def rules(sim) -> None:
    """Candidate rules and SRC rankings that are not options (numpy, same classify kernel as the
    pipeline): precision / recall / clay recall on cropland, and SRC_MEAN bias of the brightest
    quarter (min 2) under other rankings. What was tried before keeping the profile's options."""
    from soilsuite.kernels import composite as K
    from soilsuite.kernels import indices

    inp, truth, tbare, crop, edge = _cube(sim)
    refl, valid = inp.refl, inp.valid & (inp.refl != -32768).all(axis=1)
    pv = indices.pvir2(refl)
    nd = indices.ndvi(refl)
    n2 = indices.nbr2(refl)
    clay = crop & (truth["soil_type"].values == 3)
    soil = truth["soil_reflectance"].values

    def flags(thr, guard, extra=None):
        cand = valid & (pv <= thr) & (n2 <= guard)
        if extra is not None:
            cand &= extra
        return K.classify(refl, valid, cand, inp.never_bare, 3.0, 4.0, 80.0, blue=0)

    def scores(fl):
        picked = (fl & K.FLAG_BARE) > 0
        out = []
        for where in (crop, clay):
            p, t = picked[:, where], tbare[:, where]
            out.append(((p & t).sum() / max(p.sum(), 1), (p & t).sum() / max(t.sum(), 1)))
        return out[0][0], out[0][1], out[1][1]

    def lowest(x, k):  # the k-th lowest value of x over each pixel's valid observations
        return np.sort(np.where(valid, x, np.inf), axis=0)[k]

    tried = [(f"thr {t:.2f} guard {g:.2f}", flags(t, g)) for t in (0.05, 0.08, 0.10, 0.15, 0.20, 0.25)
             for g in (0.10, 0.11, 0.12)]
    for k, delta in ((0, 0.05), (1, 0.08)):
        tried.append((f"thr 0.20 guard 0.12, PV+IR2 <= {k + 1}. lowest + {delta}",
                      flags(0.2, 0.12, pv <= (lowest(pv, k) + delta)[None])))
        tried.append((f"thr 0.20 guard 0.12, NDVI <= {k + 1}. lowest + {delta}",
                      flags(0.2, 0.12, nd <= (lowest(nd, k) + delta)[None])))
        tried.append((f"thr clip(PV+IR2 {k + 1}. lowest + {delta}, 0.10, 0.20) guard 0.12",
                      flags(0.2, 0.12, pv <= np.clip(lowest(pv, k) + delta, 0.10, 0.20)[None])))
    for label, fl in tried:
        p, r, c = scores(fl)
        print(f"{label:55s} precision {p:.3f} recall {r:.3f} clay recall {c:.3f}", flush=True)

    fl = flags(0.10, 0.12)  # the profile's bare observations; where its false positives are; SRC rankings
    bare = (fl & K.FLAG_BARE) > 0
    for label, where in (("at a parcel edge", crop & edge), ("not at an edge", crop & ~edge)):
        p, t = bare[:, where], tbare[:, where]
        print(f"profile's rule, {label}: {where.sum() / crop.sum():.2f} of the cropland pixels, "
              f"precision {(p & t).sum() / max(p.sum(), 1):.3f}, share of the false positives "
              f"{(p & ~t).sum() / max((bare[:, crop] & ~tbare[:, crop]).sum(), 1):.2f}", flush=True)
    n = bare.sum(0)
    r = refl.astype(np.float64) / 1e4
    ranking = {"B11 + B12": r[:, 8] + r[:, 9], "B12": r[:, 9], "-NBR2": -n2, "-NDVI": -nd}
    for label, score in ranking.items():
        for share in (0.10, 0.25, 0.5):
            order = np.argsort(-np.where(bare, score, -np.inf), axis=0, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.broadcast_to(np.arange(len(r))[:, None, None], order.shape), axis=0)
            k = np.minimum(n, np.maximum(2, np.ceil(share * n - 1e-9)))
            keep = bare & (rank < k[None])
            mean = np.where(keep[:, None], r, 0).sum(0) / np.maximum(keep.sum(0), 1)
            ok = crop & (n >= 3)
            print(f"SRC of the profile's bare obs, by {label:9s} share {share:.2f}: B12 bias "
                  f"{(mean[9] - soil[9])[ok].mean():+.4f} (not at an edge {(mean[9] - soil[9])[ok & ~edge].mean():+.4f}),"
                  f" B11 {(mean[8] - soil[8])[ok].mean():+.4f}, B08 {(mean[6] - soil[6])[ok].mean():+.4f}", flush=True)


def edge_sweep(sim) -> None:
    """The edge guard with the profile, in memory (see the module docstring, ``--edge``)."""
    import dataclasses

    import pandas as pd
    from scipy import ndimage

    from soilsuite.kernels.composite import FLAG_BARE
    from soilsuite.pipeline.block import classify_inputs, composite_inputs
    from soilsuite.pipeline.composite import (
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.pipeline.edges import EDGE_AUX
    from soilsuite.sources import stac as S
    from soilsuite.sources.simulate import TRUTH_BARE, load_truth

    common = dict(source=str(sim.catalog_path), start=START, end=END, out=Path("."), crs=f"EPSG:{sim.epsg}",
                  worldcover=sim.worldcover_path)
    cfg0 = build_config(**common, edge_guard=8)  # loads the 1-pixel ring; threshold set per configuration
    _, sel = select_items(cfg0)
    t0 = time.perf_counter()
    inp = load_tile_inputs(sel.items, S.resolve_assets(sel.items), target_geobox(cfg0, sel.items), cfg0,
                           cfg0.mask.dilation_px // 2)
    print(f"loaded {inp.refl.shape} in {time.perf_counter() - t0:.0f} s")
    truth = load_truth(sim.out)
    t_idx = truth.indexes["time"].normalize().get_indexer(pd.DatetimeIndex(inp.meta.times).normalize())
    tbare = (truth["obs_flags"].values[t_idx] & TRUTH_BARE) != 0
    crop = truth["landcover"].values == 1
    fid = truth["field_id"].values
    edge = ndimage.maximum_filter(fid, 3) != ndimage.minimum_filter(fid, 3)  # touches another parcel
    clay = crop & (truth["soil_type"].values == 3)
    soil = truth["soil_reflectance"].values.astype(np.float64)

    def pr(picked, where):
        p, t = picked[:, where], tbare[:, where]
        tp = (p & t).sum()
        return tp / max(p.sum(), 1), tp / max(t.sum(), 1)

    bands = {"B02": 0, "B04": 2, "B08": 6, "B8A": 7, "B11": 8, "B12": 9}
    print(f"{'configuration':28s} prec  recall clayrec edgerec prec(not edge) | SRC_MEAN bias "
          f"{' '.join(f'{b:>7s}' for b in bands)}  max|bias| cover  secs")
    for label, opts in EDGE_CONFIGS:
        cfg = build_config(**common, **opts)
        t0 = time.perf_counter()
        ring = inp.aux[EDGE_AUX]
        thr = np.full(inp.threshold.shape, cfg.bare.threshold, np.float32)
        aux = {**inp.aux, EDGE_AUX: dataclasses.replace(ring, threshold=np.full(ring.threshold.shape,
                                                                                 cfg.bare.threshold, np.float32))}
        run_inp = dataclasses.replace(inp, threshold=thr, aux=aux)
        _, flags = classify_inputs(run_inp, cfg)
        prods = composite_inputs(run_inp, cfg)["window"]
        secs = time.perf_counter() - t0
        picked = (flags & FLAG_BARE) > 0
        prec, rec = pr(picked, crop)
        clay_rec = pr(picked, clay)[1]
        edge_rec = pr(picked, crop & edge)[1]
        prec_inner = pr(picked, crop & ~edge)[0]
        src = prods["SRC_MEAN"]
        ok = crop & np.isfinite(src).all(axis=0)
        bias = {b: float((src[i][ok] - soil[i][ok]).mean()) for b, i in bands.items()}
        worst = max(abs(v) for v in bias.values())
        print(f"{label:28s} {prec:.3f} {rec:.3f}  {clay_rec:.3f}   {edge_rec:.3f}   {prec_inner:.3f}          | "
              f"             {' '.join(f'{v:+.4f}' for v in bias.values())}  {worst:.4f}   "
              f"{ok.sum() / max(crop.sum(), 1):.3f}  {secs:.1f}", flush=True)


def main() -> None:
    from soilsuite.sources.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--spectra", default="field")
    ap.add_argument("--only", nargs="*", help="labels of CONFIGS to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile_sweep"))
    ap.add_argument("--kernel", action="store_true", help="only the kernel vs numpy reference timing")
    ap.add_argument("--floor", action="store_true", help="only the SRC bias floor of the archive (see above)")
    ap.add_argument("--rules", action="store_true", help="only rules and SRC rankings that are not options")
    ap.add_argument("--edge", action="store_true", help="only the edge guard with the profile, in memory")
    a = ap.parse_args()
    if a.kernel:
        return kernel_ratio()
    arch = a.out / f"archive_{a.spectra}_{a.size}_{a.seed}"
    if (arch / "catalog.json").exists():
        from types import SimpleNamespace

        from soilsuite.sources.simulate import load_truth

        t = load_truth(arch)
        sim = SimpleNamespace(out=arch, catalog_path=arch / "catalog.json", worldcover_path=arch / "worldcover.tif",
                              epsg=int(t.attrs["epsg"]))
    else:
        sim = simulate(arch, size=a.size, start=START, end=END, seed=a.seed, spectra=a.spectra, overwrite=True)
    print(f"archive: size {a.size}, seed {a.seed}, spectra {a.spectra}, {START}..{END}")
    if a.floor:
        return bias_floor(sim)
    if a.rules:
        return rules(sim)
    if a.edge:
        return edge_sweep(sim)
    bands = ("B02", "B04", "B08", "B8A", "B11", "B12")
    print(f"{'configuration':24s} prec  recall clayrec | SRC_MEAN bias {' '.join(f'{b:>7s}' for b in bands)}  max|bias| cover")
    cache: dict = {}
    for label, opts in CONFIGS:
        if a.only and label not in a.only:
            continue
        m = score(sim, a.out / "run", opts, cache)
        worst = max(abs(v) for v in m["bias"].values())
        bias = " ".join(f"{m['bias'][b]:+.4f}" for b in bands)
        print(f"{label:24s} {m['precision']:.3f} {m['recall']:.3f}  {m['clay_recall']:.3f}  |               "
              f"{bias}  {worst:.4f}   {m['composite_share']:.3f}", flush=True)



if __name__ == "__main__":
    main()
