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
