"""Final stage of a run: tile results -> product COGs, quicklooks, STAC catalog, run record.

Tiles are streamed block by block into each COG, so memory stays bounded by one tile whatever
the area. Layout ``single``: one COG per product; ``tiles`` (large areas): one COG per product
and output tile plus a VRT mosaic per product (:mod:`soilsuite.io.vrt`). The run record
(``run.json``) is written last: its presence marks a finished run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from .. import products as P
from ..config import CompositeConfig
from ..io.layout import TileStore, output_tiles_dir, product_path, tile_product_path
from ..io.layout import label_dir as _label_dir  # noqa: F401 - the paths live in io/layout.py
from .plan import AUTO_TILES_PIXELS, RunPlan, resolve_layout  # noqa: F401 - decided by the plan
from .tiles import Tile


def _blocks(tiles: list[Tile], store: TileStore, label: str, name: str, stats: dict | None = None,
            within: Tile | None = None):
    """Yield (window, stored array) per processing tile; with ``within`` (an output tile),
    only the parts inside it, with windows relative to it. With ``stats``, keep running
    totals (bounded memory whatever the area): ``counts`` of MASK classes, or ``sum``/``n``
    of finite BSF."""
    for t in tiles:
        if within is None:
            r0, c0, h, w = t.row_off, t.col_off, t.shape[0], t.shape[1]
        else:
            r0 = max(t.row_off, within.row_off)
            c0 = max(t.col_off, within.col_off)
            h = min(t.row_off + t.shape[0], within.row_off + within.shape[0]) - r0
            w = min(t.col_off + t.shape[1], within.col_off + within.shape[1]) - c0
            if h <= 0 or w <= 0:
                continue
        arr = store.read(t, label, name, (slice(r0 - t.row_off, r0 - t.row_off + h),
                                          slice(c0 - t.col_off, c0 - t.col_off + w)))
        if stats is not None:
            if name == "MASK":
                stats["counts"] = stats.get("counts", 0) + np.bincount(arr.ravel(), minlength=len(P.MASK_CLASSES))
            elif name == "PROVENANCE":  # observations per rule (stored counts; nodata: no observation)
                a = arr.reshape(arr.shape[0], -1)
                ok = (a != P.get(name).nodata).all(0)
                stats["rules"] = stats.get("rules", 0) + a[:, ok].sum(1, dtype=np.int64)
            else:
                ok = np.isfinite(arr)
                stats["sum"] = stats.get("sum", 0.0) + float(arr[ok].sum(dtype="float64"))
                stats["n"] = stats.get("n", 0) + int(ok.sum())
        if within is not None:
            r0, c0 = r0 - within.row_off, c0 - within.col_off
        yield Window(c0, r0, w, h), arr


def _remove_other_layout(out: Path, labels: list[str], layout: str) -> None:
    """Delete product files of an earlier attempt with another layout (a run interrupted while
    writing its products can be resumed with another ``--layout`` or ``--out-tile-px``), so
    that the folder holds one layout only; and stale output tiles."""
    other = "single" if layout == "tiles" else "tiles"
    for label in labels:
        for name in P.composite_products(P.OPTIONAL_GROUPS):
            product_path(out, label, name, other).unlink(missing_ok=True)
        shutil.rmtree(output_tiles_dir(out, label), ignore_errors=True)


def _period_ranges(cfg: CompositeConfig, labels: list[str]) -> dict | None:
    """``{label: (first day, last day)}`` of the run's periods, for the STAC Items."""
    if not labels:
        return None
    from .block import _periods

    return {p.label: (p.first, p.last) for p in _periods(cfg, labels)}


def _merge_stats(parts: list[dict]) -> dict:
    merged: dict = {}
    for d in parts:
        for k, v in d.items():
            merged[k] = merged.get(k, 0) + v
    return merged


def write_outputs(plan: RunPlan, summary, record: dict, cfg: CompositeConfig, step=None) -> None:
    """Mosaic every product of the window (and of each period), then pictures, STAC, record.

    ``step(stage, done, total)``, if given, is called as the work advances (one unit per product
    file, then the pictures, then the STAC catalog), e.g. to move a progress bar.

    ``single`` layout: one COG per product. ``tiles`` layout: one COG per product and output
    tile of ``plan.cog_tile_px`` (under ``tiles/<tile>/``), a ``<NAME>.vrt`` mosaic of them,
    and one STAC Item per output tile and period. Grid, tiles, tile store, layout and threads
    come from ``plan`` (:class:`~soilsuite.pipeline.plan.RunPlan`); ``cfg`` gives the window.
    """
    from ..io.cog import overview_resampling, write_cog_from_blocks
    from ..io.products import write_run_record
    from ..io.quicklook import quicklooks_for
    from ..io.stac import write_output_catalog
    from ..io.vrt import write_mosaic_vrt

    t0 = time.perf_counter()
    out, geobox, layout = plan.out, plan.geobox, plan.layout
    _remove_other_layout(out, plan.labels, layout)
    out_tiles = plan.cog_tiles if layout == "tiles" else [None]
    written: dict[str, dict[str, Path]] = {}
    tile_files: dict[str, dict[str, tuple]] = {}
    jobs = []
    for label in plan.labels:
        written[label] = {}
        for name in P.composite_products(cfg.product_groups):
            keep = label == "window" and name in ("MASK", "BSF", "PROVENANCE")
            path = product_path(out, label, name, layout)
            path.parent.mkdir(parents=True, exist_ok=True)
            written[label][name] = path
            for ot in out_tiles:
                target = path if ot is None else tile_product_path(out, label, name, ot)
                target.parent.mkdir(parents=True, exist_ok=True)
                jobs.append((label, name, target, ot, {} if keep else None))
                if ot is not None:
                    tile_files.setdefault(label, {}).setdefault(ot.name, (ot.geobox, {}))[1][name] = target

    import threading

    from ..io.statistics import RunningBandStats

    n_steps, done_steps, lock = len(jobs) + 2, [0], threading.Lock()
    file_stats: dict[Path, list] = {}  # raster statistics of each file, from its blocks (for STAC)

    def advance(stage: str) -> None:
        if step is not None:
            with lock:
                done_steps[0] += 1
                step(stage, done_steps[0], n_steps)

    def write(job) -> None:
        label, name, path, ot, stats = job
        spec = P.get(name)
        gb = geobox if ot is None else ot.geobox
        acc = RunningBandStats(spec, len(spec.bands), int(gb.shape.y) * int(gb.shape.x))
        write_cog_from_blocks(
            path, spec, geobox=gb, blocks=acc.wrap(_blocks(plan.tiles, plan.store, label, name, stats, within=ot)),
            band_names=list(spec.bands) if spec.is_spectral else None, overwrite=True,
        )
        file_stats[path] = acc.result()
        advance("product files")

    # one product file per thread: GDAL compresses and writes without holding the GIL; each
    # thread holds one tile of one product at a time
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=plan.io_threads) as pool:
        list(pool.map(write, jobs))
    if layout == "tiles":
        for label, names in written.items():
            for name, path in names.items():
                write_mosaic_vrt(path, [(tile_product_path(out, label, name, ot), ot.row_off, ot.col_off)
                                        for ot in out_tiles],
                                 geobox=geobox, overwrite=True,
                                 resampling=overview_resampling(P.get(name)))

    # summary figures from the running totals of the window's MASK and BSF
    mask_stats = _merge_stats([j[4] for j in jobs if j[4] is not None and j[1] == "MASK"])
    bsf_stats = _merge_stats([j[4] for j in jobs if j[4] is not None and j[1] == "BSF"])
    counts = mask_stats.get("counts")
    if counts is not None and counts.sum():
        summary.mask_share = {P.MASK_CLASSES[k].split(" (")[0]: float(counts[k] / counts.sum())
                              for k in sorted(P.MASK_CLASSES)}
    if bsf_stats.get("n"):
        summary.mean_bsf = bsf_stats["sum"] / bsf_stats["n"]
    prov_stats = _merge_stats([j[4] for j in jobs if j[4] is not None and j[1] == "PROVENANCE"])
    if "rules" in prov_stats:
        from ..provenance import area_shares

        summary.provenance_share = area_shares(prov_stats["rules"])

    summary.products = {name: str(p.relative_to(out)) for name, p in written["window"].items()}
    t1 = time.perf_counter()
    if step is not None:
        step("quicklooks", done_steps[0], n_steps)
    qls = quicklooks_for(out)
    # every period's own pictures too: each STAC Item carries its period's quicklooks
    period_qls = {label: quicklooks_for(_label_dir(out, label)) for label in plan.labels if label != "window"}
    t2 = time.perf_counter()
    summary.timings.update({"mosaic_cogs_s": t1 - t0, "quicklooks_s": t2 - t1})
    summary.quicklooks = [str(Path(q).relative_to(out)) for q in qls]
    record["summary"] = {
        k: v for k, v in summary.__dict__.items() if k not in ("out", "products", "quicklooks")
        and not (k == "provenance_share" and not v)  # only with --provenance
    }
    record["products"] = {label: {n: str(p.relative_to(out)) for n, p in d.items()} for label, d in written.items()}
    record["quicklooks"] = summary.quicklooks
    record["layout"] = {"layout": layout, "cog_tile_px": plan.cog_tile_px,
                        "tiles": [ot.name for ot in out_tiles] if layout == "tiles" else None}
    advance("STAC catalog")
    write_output_catalog(
        out, written, geobox=geobox, start=cfg.start, end=cfg.end, run_record=record,
        quicklooks={"window": qls, **period_qls}, overwrite=True, tiles=tile_files or None,
        threads=plan.io_threads, hrefs=cfg.stac_hrefs,
        periods=_period_ranges(cfg, plan.periods), statistics=file_stats,
    )
    summary.timings["stac_s"] = time.perf_counter() - t2
    # QGIS: a style beside every product file and one project of the folder (io/qgis.py)
    from ..io.qgis import write_file_styles, write_project

    t3 = time.perf_counter()
    write_file_styles([p for names in written.values() for p in names.values()])  # this run's files only
    write_project(out, periods=[label for label in plan.labels if label != "window"])
    summary.timings["qgis_s"] = time.perf_counter() - t3
    record["summary"]["timings"] = summary.timings
    record["summary"]["seconds"] = sum(summary.timings.values())
    advance("run record")
    write_run_record(out, record)
