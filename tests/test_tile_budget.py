"""The memory budget's tile side counts the files kept open per worker and ``--provenance``
(pipeline/tiles.py, pipeline/plan.py; issue 14).

The expected sides are computed here from the documented model (bytes per tile pixel, worker
resident memory, 30 % headroom), independently of the package's functions, and compared with
the plan of a run.
"""

from __future__ import annotations

import math

import pytest
from odc.geo.geobox import GeoBox

MiB = 2**20


def _expected_side(budget: float, workers: int, n_obs: int, n_periods: int, *, open_files: bool,
                   provenance: bool, max_tile: int = 8192) -> int:
    share = (budget - 400 * MiB) // workers  # the main process's 400 MiB, then shared
    base = 350 * MiB + (120 * MiB if open_files else 0)  # measured: 107-123 MB per worker
    per_obs = 51 + (1 if provenance else 0)  # + the uint8 rule code
    per_label = 336 + (142 if provenance else 0)  # + counts, sums, PROVENANCE + its two means
    bpp = n_obs * per_obs + (n_periods + 1) * per_label + 600
    side = int(math.sqrt(0.7 * (share - base) / bpp) // 64 * 64)
    return max(64, min(side, max_tile))


@pytest.mark.parametrize(("read_path", "provenance", "side"),
                         [("general", False, 384), ("general", True, 320), ("auto", False, 320), ("auto", True, 256)])
def test_tile_side_shrinks_for_open_files_and_provenance(tmp_path, monkeypatch, read_path, provenance, side):
    from soilsuite.pipeline.composite import build_config
    from soilsuite.pipeline.plan import plan_run

    monkeypatch.delenv("SOILSUITE_READ_OPEN_FILES", raising=False)
    monkeypatch.delenv("SOILSUITE_READ_PATH", raising=False)
    cfg = build_config(source=str(tmp_path / "catalog.json"), start="2021-01-01", end="2021-12-31",
                       out=tmp_path / "out", max_memory="2GB", n_workers=2, read_path=read_path,
                       provenance=provenance, tile_size=8192, local_engine="processes")  # threads: test_engine.py
    geobox = GeoBox.from_bbox((400000, 5800000, 420000, 5820000), "EPSG:32633", resolution=20)  # 1000 px
    plan = plan_run(cfg, geobox, 20, [])
    assert plan.workers == 2
    want = _expected_side(2e9, 2, 20, 0, open_files=read_path != "general", provenance=provenance)
    assert plan.tile_side == want == side
    # what the plan holds fits the budget: main process + each worker's resident memory and tile
    base = 350 * MiB + (120 * MiB if read_path != "general" else 0)
    bpp = 20 * (51 + provenance) + (336 + 142 * provenance) + 600
    assert 400 * MiB + 2 * (base + side**2 * bpp / 0.7) <= 2e9


def test_no_open_files_no_extra(monkeypatch):
    from soilsuite.pipeline.tiles import OPEN_FILES_BYTES, WORKER_BASE_BYTES, worker_base_bytes

    monkeypatch.delenv("SOILSUITE_READ_PATH", raising=False)
    monkeypatch.setenv("SOILSUITE_READ_OPEN_FILES", "0")  # files opened per tile: nothing kept
    assert worker_base_bytes("auto") == WORKER_BASE_BYTES
    monkeypatch.setenv("SOILSUITE_READ_OPEN_FILES", "256")
    assert worker_base_bytes("auto") == worker_base_bytes("mean") == WORKER_BASE_BYTES + OPEN_FILES_BYTES
    assert worker_base_bytes("auto", "cube.zarr") == WORKER_BASE_BYTES  # a cube is read with Zarr


def test_provenance_rule_count_matches_the_kernel():
    """The planner's provenance bytes assume as many rules as the kernel counts (11 with the edge guard)."""
    from soilsuite.kernels.provenance import RULES
    from soilsuite.pipeline.tiles import PROVENANCE_N_RULES
    assert PROVENANCE_N_RULES == len(RULES) == 11
