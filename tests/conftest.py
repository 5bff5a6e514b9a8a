"""Shared fixtures: one simulated archive per test session (reused by every test file)."""

from __future__ import annotations

import datetime as dt

import pytest


@pytest.fixture(scope="session")
def sim_archive(tmp_path_factory):
    """A small simulated Sentinel-2 L2A archive (96 x 96 px at 20 m, 2021-2022, seed 3)."""
    from soilsuite.sources.simulate import simulate

    return simulate(tmp_path_factory.mktemp("sim") / "archive", size=96, start=dt.date(2021, 1, 1),
                    end=dt.date(2022, 12, 31), seed=3)


@pytest.fixture(scope="session")
def sim_products(sim_archive, tmp_path_factory):
    """A finished composite run of ``sim_archive`` (window + per-year products, WorldCover,
    in-process scheduler), for tests that read a product folder (viewer, docs, ...). Reuse it
    rather than running another composite. Run as a user would, by the CLI with ``--log-json``:
    its stderr (JSON lines) is kept beside the folder as ``composite.log.jsonl``."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("sim_products") / "out"
    cmd = [str(Path(sys.executable).with_name("soilsuite")), "composite", str(sim_archive.catalog_path),
           "--out", str(out), "--start", "2021-01-01", "--end", "2022-12-31", "--crs", f"EPSG:{sim_archive.epsg}",
           "--worldcover", str(sim_archive.worldcover_path), "--periods", "year", "--tile-size", "64",
           "--scheduler", "sync", "--log-json"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    (out.parent / "composite.log.jsonl").write_text(res.stderr)
    (out.parent / "composite.stdout").write_text(res.stdout)
    assert res.returncode == 0, res.stderr[-3000:]
    return out
