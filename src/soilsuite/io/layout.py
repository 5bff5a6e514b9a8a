"""Where a composite run writes: every output path and the processing-tile store, in one place.

Output folder of a run (``<out>``)::

    <out>/<NAME>.tif                       product of the window (layout "single")
    <out>/<NAME>.vrt                       mosaic of the output tiles (layout "tiles")
    <out>/tiles/<cog_tile>/<NAME>.tif      one output tile COG (layout "tiles")
    <out>/<period>/...                     the same for each period (2021, 2021-JJA, 2021-03, 2021-spring...)
    <out>/quicklooks/, items/, collection.json, run.json
    <out>/.work/                           scratch of an unfinished run (removed at the end)
    <out>/.work/tiles/side<N>/<tile>/<label>__<NAME>.npy   processing-tile results
    <out>/.work/tiles/side<N>/<tile>/done                  completion marker (JSON)

A processing tile's folder is written under a temporary name and renamed into place, with
its ``done`` marker inside: a tile folder without ``done`` never exists under its final name,
so a run killed at any moment resumes from the finished tiles (:class:`TileStore`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import products as P
from .products import RUN_RECORD

__all__ = [
    "DONE",
    "OUTPUT_TILES_DIR",
    "RUN_RECORD",
    "WINDOW",
    "WORK_DIR",
    "TileStore",
    "is_composite_output",
    "label_dir",
    "product_path",
    "resume_side",
    "run_record_path",
    "tile_product_path",
    "work_dir",
]

#: Scratch folder of a run inside its output folder (removed when the run finishes).
WORK_DIR = ".work"
#: Folder of the processing-tile store inside ``WORK_DIR``.
TILE_STORE_DIR = "tiles"
#: Folder of the output tile COGs (layout "tiles") inside ``<out>`` or ``<out>/<period>``.
OUTPUT_TILES_DIR = "tiles"
#: Completion marker of a processing tile.
DONE = "done"
#: Label of the whole time window (a period label is a year, season, month or named range: soilsuite.periods).
WINDOW = "window"
#: The STAC collection file of a run.
COLLECTION = "collection.json"


def _name(tile: Any) -> str:
    """A tile's name: a str, or any object with ``.name`` (e.g. :class:`soilsuite.pipeline.tiles.Tile`)."""
    return tile if isinstance(tile, str) else tile.name


# ----------------------------------------------------------------------------- output paths
def label_dir(out: str | os.PathLike, label: str) -> Path:
    """``<out>`` for the window, ``<out>/<period>`` for a period."""
    out = Path(out)
    return out if label == WINDOW else out / label


def product_path(out: str | os.PathLike, label: str, name: str, layout: str = "single") -> Path:
    """``<out>/[<period>/]<name>.tif``; ``.vrt`` (the mosaic of the tile COGs) with ``layout="tiles"``."""
    return label_dir(out, label) / f"{name}.{'vrt' if layout == 'tiles' else 'tif'}"


def output_tiles_dir(out: str | os.PathLike, label: str) -> Path:
    """``<out>/[<period>/]tiles``: the folder of the output tile COGs (layout "tiles")."""
    return label_dir(out, label) / OUTPUT_TILES_DIR


def tile_product_path(out: str | os.PathLike, label: str, name: str, tile: Any) -> Path:
    """``<out>/[<period>/]tiles/<tile>/<name>.tif``: one output tile COG (layout "tiles");
    ``tile`` is a name or an object with ``.name``."""
    return output_tiles_dir(out, label) / _name(tile) / f"{name}.tif"


def run_record_path(out: str | os.PathLike) -> Path:
    """``<out>/run.json``: the run record (its presence marks a finished run)."""
    return Path(out) / RUN_RECORD


def work_dir(out: str | os.PathLike) -> Path:
    """``<out>/.work``: scratch of an unfinished run."""
    return Path(out) / WORK_DIR


#: one-band VRTs of each spectral product (STAC per-band assets), beside the product files
BANDS_DIR = "bands"
#: the root STAC Catalog of a product folder (links collection.json)
STAC_CATALOG = "catalog.json"
#: the QGIS project of a product folder (:mod:`soilsuite.io.qgis`)
QGIS_PROJECT = "soilsuite.qgs"


_PERIOD_LABEL = re.compile(r"\d{4}(-[A-Za-z0-9_]+)?|[A-Za-z][A-Za-z0-9_]*")


def is_composite_output(rel: str) -> bool:
    """True for a path (relative, POSIX) where a composite run writes: product files and their
    sidecars (QGIS styles ``<PRODUCT>[.<style>].qml``), per-period folders, ``items/``,
    ``quicklooks/``, ``bands/``, output ``tiles/``, the run record, the STAC collection and
    the QGIS project. Files there that soilsuite did not write make a run refuse
    (it would replace them); files elsewhere in the folder are left alone."""
    parts = rel.split("/")
    if len(parts) > 1 and _PERIOD_LABEL.fullmatch(parts[0]) and parts[0] not in (WORK_DIR, "items", "quicklooks",
                                                                               OUTPUT_TILES_DIR, BANDS_DIR):
        parts = parts[1:]  # a period folder (soilsuite.periods: 2021, 2021-03, 2021-JJA, 2021-spring, name)
    if len(parts) > 1:
        return parts[0] in (WORK_DIR, "items", "quicklooks", OUTPUT_TILES_DIR, BANDS_DIR)
    name = parts[0]
    return name in (RUN_RECORD, COLLECTION, STAC_CATALOG, QGIS_PROJECT) or name.split(".")[0] in P.PRODUCTS


# ----------------------------------------------------------------------------- tile store
class TileStore:
    """The processing-tile results of a run: ``<out>/.work/tiles/side<side>/<tile>/``.

    Each tile folder holds one ``<label>__<NAME>.npy`` per period label (``window`` or a year)
    and product, stored values (``ProductSpec.encode``), and a ``done`` marker (JSON, e.g. the
    number of observations). Tiles of different sides never mix: each side has its own folder.
    Picklable (a path and a number), so it travels to Dask workers.

    Parameters
    ----------
    out : path
        The run's output folder.
    side : int
        Processing tile side in pixels.
    """

    def __init__(self, out: str | os.PathLike, side: int):
        self.out = Path(out)
        self.side = int(side)

    def __repr__(self) -> str:
        return f"TileStore({str(self.out)!r}, side={self.side})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TileStore) and (self.out, self.side) == (other.out, other.side)

    def __hash__(self) -> int:
        return hash((self.out, self.side))

    @staticmethod
    def sides_dir(out: str | os.PathLike) -> Path:
        """``<out>/.work/tiles``: the folder of every side's store."""
        return work_dir(out) / TILE_STORE_DIR

    @property
    def root(self) -> Path:
        """``<out>/.work/tiles/side<side>``."""
        return self.sides_dir(self.out) / f"side{self.side}"

    def tile_dir(self, tile: Any) -> Path:
        """Folder of one tile (a name or an object with ``.name``)."""
        return self.root / _name(tile)

    def path(self, tile: Any, label: str, name: str) -> Path:
        """The ``.npy`` file of one tile, period label and product."""
        return self.tile_dir(tile) / f"{label}__{name}.npy"

    def is_done(self, tile: Any) -> bool:
        """True if the tile was finished (its folder holds the ``done`` marker)."""
        return (self.tile_dir(tile) / DONE).exists()

    def done_info(self, tile: Any) -> dict:
        """The JSON of a finished tile's ``done`` marker."""
        return json.loads((self.tile_dir(tile) / DONE).read_text())

    def write(self, tile: Any, results: Mapping[str, Mapping[str, np.ndarray]],
              info: Mapping[str, Any] | None = None) -> Path:
        """Save a tile's results atomically and mark it done.

        Parameters
        ----------
        tile : str or object with ``.name``
            The processing tile.
        results : mapping
            ``{label: {product name: stored array}}``.
        info : mapping, optional
            JSON-able facts written into the ``done`` marker.

        Returns
        -------
        Path
            The tile folder. Written under ``<tile>.tmp`` and renamed into place, so a tile
            folder is either complete with its marker or absent.
        """
        final = self.tile_dir(tile)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for label, prods in results.items():
            for name, arr in prods.items():
                np.save(tmp / f"{label}__{name}.npy", arr)
        (tmp / DONE).write_text(json.dumps(dict(info or {})))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def read(self, tile: Any, label: str, name: str,
             window: tuple[slice, slice] | None = None) -> np.ndarray:
        """One stored array of a tile, ``[..., rows, cols]``; with ``window`` (row and column
        slices relative to the tile), only that part (memory-mapped read)."""
        arr = np.load(self.path(tile, label, name), mmap_mode="r")
        if window is not None:
            arr = arr[..., window[0], window[1]]
        return np.asarray(arr)

    @classmethod
    def finished_sides(cls, out: str | os.PathLike) -> list[int]:
        """Sides (px) of the stores in ``<out>`` that hold at least one finished tile, ascending."""
        return _finished_sides(cls.sides_dir(out))

    @classmethod
    def resume(cls, out: str | os.PathLike, side: int) -> TileStore:
        """The store of an interrupted run to reuse: the largest side with finished tiles that
        fits this run's budget (``<= side``), else a store of ``side``."""
        return cls(out, resume_side(cls.sides_dir(out), side))


def _finished_sides(sides_dir: Path) -> list[int]:
    sides = []
    for d in Path(sides_dir).glob("side*"):
        if d.name[4:].isdigit() and any(d.glob(f"*/{DONE}")):
            sides.append(int(d.name[4:]))
    return sorted(sides)


def resume_side(sides_dir: str | os.PathLike, side: int) -> int:
    """The tile side (px) to use given the stores in ``sides_dir`` (folders ``side<N>``): the
    largest side with finished tiles that is ``<= side`` (an interrupted run's tiles fit this
    budget and are reused), else ``side``. Tiles of two sides are never mixed."""
    fits = [p for p in _finished_sides(Path(sides_dir)) if p <= side]
    return max(fits) if fits else side
