"""Benchmark: the least CPU the product COGs of a finished composite take to write (issue 14).

Reads every product COG of a composite's output folder (the window and each period) into
memory, then writes each again with soilsuite's COG writer (:func:`soilsuite.io.cog.write_cog`:
the settings the pinned checksums fix, DEFLATE level 6 with predictor, overviews, GDAL
statistics) and times the CPU (``time.process_time``: every thread of this process). Every
file written is compared byte for byte with the folder's own file, so the figure is the
cost of exactly the bytes a composite writes, without the tile store, the staging file or the
mosaic around it: the floor of the mosaic stage of ``bench_overhead.py``.

Also measured, each checked byte-identical (or not) against the same files:

- ``NUM_THREADS=2`` passed to GDAL's COG driver (compression of the blocks in threads);
- for comparison only (other bytes, not the default): DEFLATE level 1, ZSTD level 1 and
  ``compress="ZSTD"`` (level 9, what ``write_cog(compress="ZSTD")`` writes).

Repeats are interleaved; medians. Usage::

    .venv/bin/python -P bench/bench_cog_write.py OUT_DIR [--repeat 3]

where ``OUT_DIR`` is the ``--out`` folder of a finished ``soilsuite composite`` (e.g. of
``bench_overhead.py``'s archive: ``soilsuite composite bench_out/composite_600x30/archive/catalog.json
--start 2021-03-01 --end 2031-02-27 --resolution 20 --periods year --out /tmp/c600``).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _files(out: Path) -> list[Path]:
    from soilsuite import products as P

    names = set(P.PRODUCTS)
    return sorted(p for p in [*out.glob("*.tif"), *out.glob("*/*.tif")] if p.stem in names)


def _load(files: list[Path]):
    import rasterio
    from odc.geo.geobox import GeoBox

    from soilsuite import products as P

    data = []
    for f in files:
        with rasterio.open(f) as src:
            arr = src.read()
            tags = {k: v for k, v in src.tags().items()
                    if k not in ("PRODUCT", "DESCRIPTION", "UNIT", "SOILSUITE_VERSION", "TIFFTAG_SOFTWARE")}
            data.append((f, arr, P.get(f.stem), GeoBox((src.height, src.width), src.transform, src.crs),
                         list(src.descriptions), tags))
    return data


def _write_all(data, dst: Path, **kw) -> tuple[float, bool]:
    """CPU seconds to write every file; whether all are byte-identical to the originals."""
    from soilsuite.io import cog

    same = True
    t = time.process_time()
    for i, (f, arr, spec, gb, names, tags) in enumerate(data):
        target = dst / f"{i}_{f.name}"
        cog.write_cog(target, arr if arr.shape[0] > 1 else arr[0], spec, geobox=gb,
                      band_names=names if spec.is_spectral else None, tags=tags, overwrite=True, **kw)
        same &= hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(f.read_bytes()).digest()
    return time.process_time() - t, same


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="output folder of a finished soilsuite composite")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    files = _files(a.out)
    if not files:
        sys.exit(f"{a.out}: no product COGs")
    data = _load(files)
    import rasterio

    from soilsuite.io import cog

    orig = cog._cog_options
    #: name -> (write_cog keywords, GDAL COG creation options replacing soilsuite's)
    variants = {
        "soilsuite's COG writer (default: DEFLATE level 6)": ({}, {}),
        "NUM_THREADS=2": ({}, {"NUM_THREADS": "2"}),
        "DEFLATE level 1 (not the default)": ({}, {"LEVEL": "1"}),
        "ZSTD level 1 (not the default)": ({"compress": "ZSTD"}, {"LEVEL": "1"}),
        "ZSTD level 9 (`compress=\"ZSTD\"`)": ({"compress": "ZSTD"}, {}),
    }
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    same: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench_cog_") as tmp, rasterio.Env():
        tmp = Path(tmp)
        _write_all(data, tmp)  # warm: GDAL drivers, page cache
        for _ in range(a.repeat):
            for v, (kw, options) in variants.items():
                cog._cog_options = lambda *args, _o=options, **k: {**orig(*args, **k), **_o}
                try:
                    c, s = _write_all(data, tmp, **kw)
                finally:
                    cog._cog_options = orig
                cpu[v].append(c)
                same[v] = same.get(v, True) and s
    px = sum(arr.size for _, arr, *_ in data)
    print(f"{len(files)} product COGs of {a.out} ({px / 1e6:.1f} M band-pixels); CPU s, median of {a.repeat}")
    print("| writer | CPU s | runs | byte-identical to the composite's files |")
    print("|---|---|---|---|")
    for v in variants:
        print(f"| {v} | {statistics.median(cpu[v]):.2f} | {', '.join(f'{c:.2f}' for c in cpu[v])} | "
              f"{'yes' if same[v] else 'no'} |")


if __name__ == "__main__":
    main()
