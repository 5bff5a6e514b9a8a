"""The numbers behind ``--profile soilsuite`` (issue 11): guard limits and SRC estimators on truth.

On a simulated archive with the realistic spectra (``spectra="field"``; ``--spectra v1`` for the
old ones), every configuration is composited (window, WorldCover, in-process) and scored with
:func:`soilsuite.evaluate.evaluate` against the truth (cropland; bare = soil fraction >= 85 %):
bare-observation precision and recall, SRC_MEAN bias per band, and the recall on the clay-rich
soil type (the guard's cost: clay absorbs near 2.2 um, raising NBR2).

Usage::

    .venv/bin/python -P bench/profile_sweep.py [--size 96] [--seed 3] [--spectra field] [--out /tmp/profile_sweep]
    .venv/bin/python -P bench/profile_sweep.py --kernel     # dry-selection kernel vs numpy reference

Prints one line per configuration.
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
    ("profile soilsuite", {"profile": "soilsuite"}),
]


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
    key = (cfg.bare.dry_guard, cfg.bare.threshold)
    if key not in flags_cache:
        flags_cache[key] = observation_flags(sim.catalog_path, **common, dry_guard=key[0], threshold=key[1])
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
    """The dry-selection kernel against its numpy reference on the same random cube (interleaved
    repeats, best of each): prints both times and the ratio."""
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


def main() -> None:
    from soilsuite.sources.simulate import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--spectra", default="field")
    ap.add_argument("--only", nargs="*", help="labels of CONFIGS to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/profile_sweep"))
    ap.add_argument("--kernel", action="store_true", help="only the kernel vs numpy reference timing")
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
