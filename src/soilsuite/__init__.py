"""soilsuite: the Soil Composite Mapping Processor (SCMaP) and the SoilSuite products.

Public API (imported lazily so that ``import soilsuite`` stays fast):

- :func:`simulate` / :func:`load_truth` - synthetic Sentinel-2 L2A archive with known truth
- :func:`composite` - bare-soil composites and statistics from a STAC source
- :func:`ingest` - the archive once as an analysis-ready Zarr cube that ``composite`` reads
- :func:`compute` - the same products of your own lazy cube (``odc.stac.load(chunks=...)``)
- :func:`open_products` - open a product folder as an xarray Dataset
- :func:`calibrate_threshold` / :func:`threshold_sweep` - regional PV+IR2 thresholds, threshold sensitivity
- :mod:`soilsuite.dsm` - digital soil mapping (quantile regression forests)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "simulate": "soilsuite.sources.simulate",
    "load_truth": "soilsuite.sources.simulate",
    "SimulationResult": "soilsuite.sources.simulate",
    "composite": "soilsuite.pipeline.composite",
    "compute": "soilsuite.pipeline.compute",
    "open_products": "soilsuite.io.products",
    "export_force": "soilsuite.io.force",
    "ingest": "soilsuite.ingest",
    "index_safe": "soilsuite.sources.safe",
    "read_safe": "soilsuite.sources.safe",
    "parcel_stats": "soilsuite.parcels",
    "parcel_summary": "soilsuite.parcels",
    "export_products": "soilsuite.export",
    "plot_pixel": "soilsuite.plots",
    "plot_parcel": "soilsuite.plots",
    "plot_years": "soilsuite.plots",
    "calibrate_threshold": "soilsuite.calibrate",
    "threshold_sweep": "soilsuite.sweep",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'soilsuite' has no attribute {name!r}")
