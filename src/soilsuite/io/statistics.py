"""Per-band statistics of a product file, accumulated while its blocks are written.

The STAC Items give each band's ``raster:bands`` statistics (minimum, maximum, mean, stddev,
valid_percent) of the **stored** values, nodata excluded. :func:`soilsuite.io.stac.band_statistics`
computes them by reading a finished COG again (decoding every pixel of it); the mosaic already
holds every block of every product file in memory once while it writes it, so
:class:`RunningBandStats` takes the same figures from those blocks as they pass
(:func:`soilsuite.pipeline.mosaic.write_outputs`), and the STAC writer uses them
(``write_output_catalog(statistics=...)``) instead of reading the files again.

Exactness: integer products of up to 16 bits (counts, reflectance x 10000, MASK) sum in int64
(exact: minimum, maximum and the sums are integers; mean and variance are computed from the
exact sums), wider or float products (BSF) per block in float64 (mean and sum of squared
deviations), merged across blocks with Chan et al.'s pairwise update: equal to numpy's
``mean``/``std`` of all valid pixels to ~1e-15 relative. Pixels of the file that no block
covers are nodata (they count in ``valid_percent``'s denominator: the file's pixel count).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from ..products import ProductSpec

__all__ = ["RunningBandStats"]


class RunningBandStats:
    """Running per-band statistics of the stored values of one product file.

    Parameters
    ----------
    spec : ProductSpec
        The product (its stored dtype and nodata; NaN nodata: non-finite values are nodata).
    count : int
        Bands of the file.
    pixels : int
        Pixels per band of the whole file (rows x columns): the denominator of ``valid_percent``.

    Use :meth:`add` per block (stored values ``[h, w]`` or ``[count, h, w]``, or physical
    values, encoded with ``spec.encode`` as the COG writer does) or :meth:`wrap` around an
    iterator of ``(window, block)``; then :meth:`result`.
    """

    def __init__(self, spec: ProductSpec, count: int, pixels: int):
        self.spec = spec
        self.count = int(count)
        self.pixels = int(pixels)
        self.exact = np.dtype(spec.dtype).kind in "biu" and np.dtype(spec.dtype).itemsize <= 2
        self.n = [0] * self.count
        self.lo = [math.inf] * self.count
        self.hi = [-math.inf] * self.count
        self.s1 = [0] * self.count  # exact path: sum; float path: mean
        self.s2 = [0] * self.count  # exact path: sum of squares; float path: sum of squared deviations

    def _valid(self, band: np.ndarray) -> np.ndarray:
        nodata = self.spec.nodata
        if band.dtype.kind == "f":
            ok = np.isfinite(band)
            return ok if nodata is None or math.isnan(nodata) else ok & (band != nodata)
        return np.ones(band.shape, bool) if nodata is None or math.isnan(nodata) else band != nodata

    def add(self, block: np.ndarray) -> None:
        """Add one block of the file (stored or physical values, as the COG writer takes them)."""
        arr = np.asarray(block)
        if arr.dtype != np.dtype(self.spec.dtype):
            arr = self.spec.encode(arr)
        arr = arr.reshape(self.count, -1) if arr.ndim == 3 or self.count > 1 else arr.reshape(1, -1)
        for b in range(self.count):
            v = arr[b][self._valid(arr[b])]
            if not v.size:
                continue
            self.lo[b] = min(self.lo[b], float(v.min()))
            self.hi[b] = max(self.hi[b], float(v.max()))
            if self.exact:
                w = v.astype(np.int64)
                self.n[b] += int(v.size)
                self.s1[b] += int(w.sum())
                self.s2[b] += int(np.dot(w, w))
            else:  # Chan et al. (1979): merge (n, mean, M2) of the block into the running one
                w = v.astype(np.float64)
                nb, mb = int(w.size), float(w.mean())
                m2b = float(np.square(w - mb).sum())
                na = self.n[b]
                n = na + nb
                delta = mb - self.s1[b]
                self.s1[b] = self.s1[b] + delta * nb / n
                self.s2[b] = self.s2[b] + m2b + delta * delta * na * nb / n
                self.n[b] = n

    def wrap(self, blocks: Iterable[tuple[object, np.ndarray]]) -> Iterator[tuple[object, np.ndarray]]:
        """Pass ``(window, block)`` pairs through, adding each block."""
        for window, block in blocks:
            self.add(block)
            yield window, block

    def result(self) -> list[dict[str, float]]:
        """Per band ``minimum``, ``maximum``, ``mean``, ``stddev`` (population, ddof=0) and
        ``valid_percent``, or only ``valid_percent`` (0) when no pixel is valid: the format of
        :func:`soilsuite.io.stac.band_statistics`."""
        out = []
        for b in range(self.count):
            n = self.n[b]
            stats: dict[str, float] = {"valid_percent": float(100.0 * n / self.pixels) if self.pixels else 0.0}
            if n:
                if self.exact:  # exact integers: variance = (n * s2 - s1^2) / n^2
                    mean = self.s1[b] / n
                    var = (n * self.s2[b] - self.s1[b] * self.s1[b]) / (n * n)
                else:
                    mean, var = self.s1[b], self.s2[b] / n
                stats.update(minimum=self.lo[b], maximum=self.hi[b], mean=float(mean),
                             stddev=float(math.sqrt(max(var, 0.0))))
            out.append(stats)
        return out
