"""Digital soil mapping: samples, covariates, quantile regression forests, validation, maps.

Typical use::

    from soilsuite import dsm

    samples = dsm.read_samples("soil.gpkg", {"soc": "SOC_gkg"})
    stack = dsm.build_stack("products/", ["SRC_MEAN", "BSF"], {"dem": "dem.tif"}, terrain=True)
    model = dsm.train(samples, "soc", stack, n_estimators=500)
    dsm.cross_validate(model, method="spatial", block_size=2000).write("report_soc")
    model.save("soc.joblib")
    dsm.predict_map(model, "maps/", progress=True)
"""

from __future__ import annotations

from .compare import Comparison, compare, compare_models
from .covariates import (
    SPECTRAL_INDICES,
    TERRAIN_LAYERS,
    CovariateStack,
    build_stack,
    make_grid,
    spectral_indices,
    terrain_derivatives,
)
from .model import SoilModel, load_model, qname, train, training_table, uncertainty_ratio
from .predict import predict_map, stock_map
from .properties import PROPERTIES, Property, stock
from .reduce import Reducer
from .samples import (
    SampleReport,
    Samples,
    SampleWarning,
    check_extent,
    check_units,
    find_duplicates,
    read_samples,
    stock_column,
)
from .validation import (
    ValidationResult,
    cross_validate,
    metrics,
    random_folds,
    spatial_blocks,
    spatial_folds,
)

__all__ = [
    "PROPERTIES", "SPECTRAL_INDICES", "TERRAIN_LAYERS",
    "Comparison", "CovariateStack", "Property", "Reducer", "SampleReport", "SampleWarning", "Samples", "SoilModel",
    "ValidationResult",
    "build_stack", "check_extent", "check_units", "compare", "compare_models", "cross_validate", "find_duplicates",
    "load_model", "make_grid", "metrics", "predict_map", "qname", "random_folds",
    "read_samples", "spatial_blocks", "spatial_folds", "spectral_indices", "stock",
    "stock_column", "stock_map", "terrain_derivatives", "train", "training_table",
    "uncertainty_ratio",
]
