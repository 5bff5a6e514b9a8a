"""The bare-soil selectors side by side on one simulated archive (issue 11; docs/selectors.md).

For each configuration (by default every selector shipped, the dry guard on SCMaP, the geomedian
without the blue filter, and ``--profile soilsuite`` if the CLI has it), one composite run of the
same archive through the CLI (in-process, ``--scheduler sync``), then against the simulator's
truth:

* precision / recall of the bare observations on cropland (really bare: soil >= 85 % and clear;
  recall over the truly bare observations the run saw as valid), precision against soil >= 50 %;
* SRC_MEAN RMSE and bias per band against the true dry-soil spectrum (cropland pixels with a
  composite) and the share of cropland pixels with one;
* BSF bias on cropland and on grassland against the true bare frequency of clear observations;
* wall time of the run, best of ``--repeat`` interleaved rounds, as a ratio to the first
  configuration (scmap);
* first, each selector's kernel against its numpy reference on a random cube (``--kernels-only``);
* a quicklook per configuration (the run's SRC_MEAN true-colour picture) copied to ``--pictures``.

Usage::

    .venv/bin/python bench/selectors.py [--size 128] [--seed 3] [--start 2021-01-01 --end 2022-12-31]
        [--config NAME=--opt,value,...]... [--only scmap,geos3] [--pictures docs/img/selectors]

``--config soilsuite=--profile,soilsuite`` adds a configuration given as composite CLI arguments
(comma-separated). Prints one line per configuration and figure, then a markdown table.
"""

from __future__ import annotations

import os
import sys

# this script's folder leaves the import path: the file is named like the standard library's `selectors`
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def default_configs() -> dict[str, list[str]]:
    from typer.main import get_command

    from soilsuite.cli import app

    configs = {
        "scmap": [],
        "scmap + dry guard 0.12": ["--dry-guard", "0.12"],
        "geos3": ["--selector", "geos3"],
        "barest (k=5)": ["--selector", "barest", "--barest-k", "5"],
        "geomedian": ["--selector", "geomedian"],
        "geomedian, blue filter off": ["--selector", "geomedian", "--blue-filter", "off"],
    }
    params = {p.name for p in get_command(app).commands["composite"].params}
    if "profile" in params:
        configs["profile soilsuite"] = ["--profile", "soilsuite"]
    return configs


def _truth_scores(arch: Path, inp, cfg) -> dict:
    """Observation scores of one configuration on cropland (the run's own config, same cube)."""
    import pandas as pd

    from soilsuite.evaluate import observation_scores
    from soilsuite.kernels.composite import FLAG_BARE, FLAG_VALID
    from soilsuite.pipeline.block import classify_inputs
    from soilsuite.sources.simulate import (
        TRUTH_BARE,
        TRUTH_CLOUD,
        TRUTH_HAZE,
        TRUTH_SHADOW,
        TRUTH_SNOW,
        load_truth,
    )

    truth = load_truth(arch)
    idx = pd.DatetimeIndex(truth.time.values).normalize().get_indexer(pd.DatetimeIndex(inp.meta.dates))
    obs = truth["obs_flags"].values[idx]
    clear = (obs & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW)) == 0
    bare = (obs & TRUTH_BARE) != 0
    crop = truth["landcover"].values == 1
    if cfg.bare.threshold_raster is not None:
        raise SystemExit("a configuration with --threshold-raster is not supported here (constant thresholds only)")
    # the run's own threshold (a profile or --threshold changes it; the cube was loaded with the default's)
    threshold = np.full(inp.threshold.shape, cfg.bare.threshold, np.float32)
    _, flags = classify_inputs(dataclasses.replace(inp, threshold=threshold), cfg)
    picked, valid = (flags & FLAG_BARE) > 0, (flags & FLAG_VALID) > 0
    s = observation_scores(picked, valid, bare & clear, crop)
    if "soil_fraction" in truth:
        s["precision_soil50"] = observation_scores(picked, valid, (truth["soil_fraction"].values[idx] >= 50) & clear,
                                                   crop)["precision"]
    return s


def _bsf_bias(out: Path, arch: Path, landcover: int) -> float:
    """Mean BSF - true bare frequency (bare among clear observations) over a land cover."""
    from soilsuite.io.products import open_products
    from soilsuite.sources.simulate import (
        TRUTH_BARE,
        TRUTH_CLOUD,
        TRUTH_HAZE,
        TRUTH_SHADOW,
        TRUTH_SNOW,
        load_truth,
    )

    truth = load_truth(arch)
    obs = truth["obs_flags"].values
    clear = (obs & (TRUTH_CLOUD | TRUTH_SHADOW | TRUTH_HAZE | TRUTH_SNOW)) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        true_bsf = ((obs & TRUTH_BARE) != 0).sum(0) / clear.sum(0)
    bsf = open_products(out)["BSF"].values
    sel = (truth["landcover"].values == landcover) & np.isfinite(bsf) & np.isfinite(true_bsf)
    return float(np.mean(bsf[sel] - true_bsf[sel])) if sel.any() else float("nan")


def kernel_ratios(n_t: int = 60, side: int = 192, repeat: int = 3) -> None:
    """Each selector kernel against its numpy reference on one random cube, single-threaded,
    interleaved repeats (best of ``repeat``): one line per selector with the speed-up."""
    from soilsuite.kernels.selectors import SELECTORS

    rng = np.random.default_rng(0)
    refl = rng.integers(0, 6000, (n_t, 10, side, side)).astype(np.int16)
    valid = rng.random((n_t, side, side)) < 0.7
    thr = np.full((side, side), 0.2, np.float32)
    best: dict[tuple[str, str], float] = {}
    for name in SELECTORS:  # compile / warm up
        SELECTORS[name].select(refl[:2, :, :8, :8], valid[:2, :8, :8], threshold=thr[:8, :8])
    for _ in range(repeat):
        for name, sel in SELECTORS.items():
            for what, fn in (("kernel", sel.select), ("reference", sel.reference)):
                t0 = time.perf_counter()
                fn(refl, valid, threshold=thr)
                dt_ = time.perf_counter() - t0
                best[name, what] = min(best.get((name, what), np.inf), dt_)
    for name in SELECTORS:
        k, r = best[name, "kernel"], best[name, "reference"]
        print(f"selector {name}: kernel {k:.3f} s, numpy reference {r:.3f} s, ratio reference/kernel {r / k:.1f} "
              f"({n_t} x 10 x {side} x {side} int16, best of {repeat})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--start", default="2021-01-01")
    ap.add_argument("--end", default="2022-12-31")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_selectors"))
    ap.add_argument("--config", action="append", default=[], metavar="NAME=--opt,value,...",
                    help="another configuration as composite CLI arguments, comma-separated")
    ap.add_argument("--only", default=None, help="comma-separated configuration names to run")
    ap.add_argument("--pictures", type=Path, default=None, help="copy each run's SRC_MEAN quicklook here")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--kernels-only", action="store_true", help="only the kernel vs reference ratios")
    a = ap.parse_args()
    kernel_ratios()
    if a.kernels_only:
        return

    import datetime as dt

    from typer.testing import CliRunner

    from soilsuite.cli import app
    from soilsuite.config import CompositeConfig
    from soilsuite.evaluate import evaluate
    from soilsuite.pipeline.composite import (
        build_config,
        load_tile_inputs,
        select_items,
        target_geobox,
    )
    from soilsuite.sources import stac as S
    from soilsuite.sources.simulate import TRUTH_CLASSES, simulate

    start, end = dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end)
    arch = a.out / f"archive_{a.size}_{a.seed}_{a.start}_{a.end}"
    if not (arch / "catalog.json").exists():
        simulate(arch, size=a.size, start=start, end=end, seed=a.seed, overwrite=True)
    codes = {str(v).lower(): int(k) for k, v in TRUTH_CLASSES.items()}
    configs = default_configs()
    for spec in a.config:
        name, _, args = spec.partition("=")
        configs[name] = [x for x in args.split(",") if x]
    if a.only:
        configs = {k: v for k, v in configs.items() if k in a.only.split(",")}

    base = build_config(source=str(arch / "catalog.json"), start=start, end=end, out=a.out / "x",
                        worldcover=arch / "worldcover.tif")
    _, sel = select_items(base)
    inp = load_tile_inputs(sel.items, S.resolve_assets(sel.items), target_geobox(base, sel.items), base,
                           base.mask.dilation_px // 2)
    print(f"archive {arch}: {a.size} x {a.size} px, {len(inp.meta.dates)} solar days {start}..{end}")

    def out_of(name: str) -> Path:
        import re

        return a.out / "runs" / re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()

    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(a.repeat):  # interleaved repeats: each round runs every configuration once
        for name, args in configs.items():
            argv = ["composite", str(arch / "catalog.json"), "--out", str(out_of(name)), "--start", a.start, "--end",
                    a.end, "--worldcover", str(arch / "worldcover.tif"), "--scheduler", "sync", "--quiet",
                    "--overwrite", *args]
            t0 = time.perf_counter()
            res = CliRunner().invoke(app, argv)
            times[name].append(time.perf_counter() - t0)
            if res.exit_code != 0:
                raise SystemExit(f"{name}: composite failed: {res.output[-2000:]}")

    rows = {}
    for name in configs:
        out = out_of(name)
        cfg = CompositeConfig(**json.loads((out / "run.json").read_text())["config"])
        if cfg.mask != base.mask:
            raise SystemExit(f"{name}: other mask options than the base run; not supported here")
        m = evaluate(out, arch)
        s = _truth_scores(arch, inp, cfg)
        row = {"precision": s["precision"], "recall_valid": s["recall_valid"],
               "precision_soil50": s.get("precision_soil50", float("nan")),
               "composite_share": m["composite_share"], "rmse": m["rmse"], "bias": m["bias"],
               "bsf_bias_cropland": m["bsf_bias"], "bsf_bias_grassland": _bsf_bias(out, arch, codes["grassland"]),
               "seconds": min(times[name])}
        row["time_ratio"] = row["seconds"] / min(times[next(iter(configs))])
        rows[name] = row
        print(f"{name}: precision {row['precision']:.3f}  recall(valid) {row['recall_valid']:.3f}  "
              f"precision(soil>=50%) {row['precision_soil50']:.3f}  composite share {row['composite_share']:.1%}")
        print(f"{name}: SRC_MEAN RMSE " + " ".join(f"{b} {m['rmse'][b]:.4f}" for b in BANDS))
        print(f"{name}: SRC_MEAN bias " + " ".join(f"{b} {m['bias'][b]:+.4f}" for b in BANDS))
        print(f"{name}: BSF bias cropland {row['bsf_bias_cropland']:+.3f} grassland {row['bsf_bias_grassland']:+.3f}  "
              f"time {row['seconds']:.1f} s (best of {a.repeat}; ratio to {next(iter(configs))} "
              f"{row['time_ratio']:.2f})")
        if a.pictures:
            from PIL import Image

            a.pictures.mkdir(parents=True, exist_ok=True)
            with Image.open(out / "quicklooks" / "SRC_MEAN_rgb.png") as im:  # small: 320 px wide, 64 colours
                im = im.convert("RGB")
                im = im.resize((320, round(im.height * 320 / im.width)), Image.LANCZOS)
                im.quantize(64).save(a.pictures / f"{out.name.lower()}.png", optimize=True)

    print()
    print("| configuration | precision | recall (valid) | precision soil>=50% | cropland with SRC | "
          "RMSE B04 / B08 / B11 / B12 | bias B04 / B08 / B11 / B12 | BSF bias crop / grass | time / scmap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['precision']:.3f} | {r['recall_valid']:.3f} | {r['precision_soil50']:.3f} | "
              f"{r['composite_share']:.1%} | " + " / ".join(f"{r['rmse'][b]:.4f}" for b in ("B04", "B08", "B11", "B12"))
              + " | " + " / ".join(f"{r['bias'][b]:+.4f}" for b in ("B04", "B08", "B11", "B12"))
              + f" | {r['bsf_bias_cropland']:+.3f} / {r['bsf_bias_grassland']:+.3f} | {r['time_ratio']:.2f} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
