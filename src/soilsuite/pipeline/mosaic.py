"""Final stage of a run: tile results -> product COGs, quicklooks, STAC catalog, run record.

Tiles are streamed block by block into each COG, so memory stays bounded by one tile whatever
the area. The run record (``run.json``) is written last: its presence marks a finished run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from .. import products as P
from ..config import CompositeConfig
from .tiles import Tile


def product_path(out: Path, label: str, name: str) -> Path:
    """``<out>/<name>.tif`` for the window, ``<out>/<period>/<name>.tif`` for a period."""
    return out / f"{name}.tif" if label == "window" else out / label / f"{name}.tif"


def _blocks(tiles: list[Tile], tile_root: Path, label: str, name: str, stats: dict | None = None):
    """Yield (window, stored array) per tile; with ``stats``, keep running totals (bounded
    memory whatever the area): ``counts`` of MASK classes, or ``sum``/``n`` of finite BSF."""
    for t in tiles:
        arr = np.asarray(np.load(tile_root / t.name / f"{label}__{name}.npy", mmap_mode="r"))
        if stats is not None:
            if name == "MASK":
                stats["counts"] = stats.get("counts", 0) + np.bincount(arr.ravel(), minlength=len(P.MASK_CLASSES))
            else:
                ok = np.isfinite(arr)
                stats["sum"] = stats.get("sum", 0.0) + float(arr[ok].sum(dtype="float64"))
                stats["n"] = stats.get("n", 0) + int(ok.sum())
        yield Window(t.col_off, t.row_off, t.shape[1], t.shape[0]), arr


def write_outputs(out: Path, geobox, tiles, tile_root: Path, periods: list[str], summary, record: dict,
                  cfg: CompositeConfig) -> None:
    """Mosaic every product of the window (and of each period), then pictures, STAC, record."""
    from ..io.cog import write_cog_from_blocks
    from ..io.products import write_run_record
    from ..io.quicklook import quicklooks_for
    from ..io.stac import write_output_catalog

    t0 = time.perf_counter()
    crs = geobox.crs.to_wkt()
    transform = geobox.affine
    shape = (geobox.shape.y, geobox.shape.x)
    written: dict[str, dict[str, Path]] = {}
    mask_stats: dict = {}
    bsf_stats: dict = {}
    jobs = []
    for label in ["window", *periods]:
        written[label] = {}
        for name in P.COMPOSITE_PRODUCTS:
            path = product_path(out, label, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            stats = mask_stats if (label == "window" and name == "MASK") else (
                bsf_stats if (label == "window" and name == "BSF") else None)
            jobs.append((label, name, path, stats))
            written[label][name] = path

    def write(job) -> None:
        label, name, path, stats = job
        spec = P.get(name)
        write_cog_from_blocks(
            path, spec, crs=crs, transform=transform, shape=shape,
            blocks=_blocks(tiles, tile_root, label, name, stats),
            band_names=list(spec.bands) if spec.is_spectral else None, overwrite=True,
        )

    # one product file per thread: GDAL compresses and writes without holding the GIL; each
    # thread holds one tile of one product at a time
    from concurrent.futures import ThreadPoolExecutor

    from .cluster import n_local_workers

    with ThreadPoolExecutor(max_workers=n_local_workers(cfg.engine)) as pool:
        list(pool.map(write, jobs))

    # summary figures from the running totals
    counts = mask_stats.get("counts")
    if counts is not None and counts.sum():
        summary.mask_share = {P.MASK_CLASSES[k].split(" (")[0]: float(counts[k] / counts.sum())
                              for k in sorted(P.MASK_CLASSES)}
    if bsf_stats.get("n"):
        summary.mean_bsf = bsf_stats["sum"] / bsf_stats["n"]

    summary.products = {name: str(p.relative_to(out)) for name, p in written["window"].items()}
    t1 = time.perf_counter()
    qls = quicklooks_for(out)
    t2 = time.perf_counter()
    summary.timings.update({"mosaic_cogs_s": t1 - t0, "quicklooks_s": t2 - t1})
    summary.quicklooks = [str(Path(q).relative_to(out)) for q in qls]
    record["summary"] = {
        k: v for k, v in summary.__dict__.items() if k not in ("out", "products", "quicklooks")
    }
    record["products"] = {label: {n: str(p.relative_to(out)) for n, p in d.items()} for label, d in written.items()}
    record["quicklooks"] = summary.quicklooks
    write_output_catalog(
        out, written, geobox=geobox, start=cfg.start, end=cfg.end, run_record=record,
        quicklooks=qls, overwrite=True,
    )
    summary.timings["stac_s"] = time.perf_counter() - t2
    record["summary"]["timings"] = summary.timings
    record["summary"]["seconds"] = sum(summary.timings.values())
    write_run_record(out, record)
    shutil.rmtree(out / ".work", ignore_errors=True)
