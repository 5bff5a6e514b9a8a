"""Start-up stays light: the CLI and its --help import no heavy library (issue 14).

A regression guard on what is imported, not a timing test (start-up times are measured by
``bench/bench_startup.py``): ``import soilsuite.cli`` and ``soilsuite --help`` /
``soilsuite composite --help`` must not pull in the array, raster, cluster or plotting stacks;
commands import them when they run.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Top-level packages the CLI must not import before a command runs.
HEAVY = ("dask", "distributed", "rasterio", "xarray", "numba", "matplotlib", "odc", "geopandas", "pandas",
         "rio_tiler", "starlette", "scipy", "sklearn", "pystac", "numpy")

_PROBE = """
import json, sys
import soilsuite.cli
{invoke}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


@pytest.mark.parametrize("args", [None, ["--help"], ["composite", "--help"], ["dsm", "--help"]],
                         ids=["import", "help", "composite-help", "dsm-help"])
def test_cli_imports_no_heavy_library(args):
    invoke = "" if args is None else (
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(soilsuite.cli.app, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
    )
    code = _PROBE.format(invoke=invoke, heavy=HEAVY)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []
