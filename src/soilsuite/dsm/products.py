"""Product facts of the soil maps written by :func:`soilsuite.dsm.predict_map`.

The DSM layers are not composite products (they are not in :data:`soilsuite.products.PRODUCTS`
and the composite mosaic never writes them); they use the same :class:`ProductSpec` record, so
that the one COG writer (:mod:`soilsuite.io.cog`) takes dtype, nodata, unit and overview
resampling from them.

=================  =========  =======  ====================================================
layer              dtype      nodata   unit
=================  =========  =======  ====================================================
``mean``           float32    NaN      the target's unit (e.g. g/kg)
``q<NN>``          float32    NaN      the target's unit (one layer per model quantile)
``uncertainty``    float32    NaN      1: ``(Q0.95 - Q0.05) / Q0.50``
``di``             float32    NaN      1: dissimilarity index (Meyer & Pebesma 2021)
``aoa``            uint8      255      1: 1 inside the area of applicability, 0 outside
``outside_range``  uint8      255      1: number of covariates outside the training range
=================  =========  =======  ====================================================
"""

from __future__ import annotations

import dataclasses

from ..products import ProductSpec

__all__ = ["DSM_LAYERS", "layer_spec", "stock_spec"]

#: Product group of the soil maps (not ``"composite"``: a composite run never writes them).
GROUP = "dsm"
_FLOAT = dict(dtype="float32", nodata=float("nan"), scale=1.0, offset=0.0, group=GROUP)
_UINT8 = dict(dtype="uint8", nodata=255, scale=1.0, offset=0.0, group=GROUP)

#: The layers of a soil map with the target's unit as ``"{unit}"`` and its name as ``"{target}"``;
#: a quantile layer (``q05``, ``q50``, ...) takes the ``"quantile"`` record.
DSM_LAYERS: dict[str, ProductSpec] = {
    "mean": ProductSpec("mean", unit="{unit}", description="{target} forest mean [{unit}]", **_FLOAT),
    "quantile": ProductSpec("quantile", unit="{unit}", description="{target} quantile {q:g} [{unit}]", **_FLOAT),
    "uncertainty": ProductSpec("uncertainty", unit="1", description="(Q0.95-Q0.05)/Q0.50 [1]", **_FLOAT),
    "di": ProductSpec("di", unit="1", description="dissimilarity index (Meyer & Pebesma 2021) [1]", **_FLOAT),
    "aoa": ProductSpec("aoa", unit="1", description="area of applicability: 1 inside, 0 outside", **_UINT8),
    "outside_range": ProductSpec("outside_range", unit="1",
                                 description="number of covariates outside the training range", **_UINT8),
}


def layer_spec(layer: str, target: str, unit: str, quantile: float | None = None) -> ProductSpec:
    """The :class:`ProductSpec` of one map layer of a model.

    Parameters
    ----------
    layer : str
        ``mean``, ``q<NN>`` (with ``quantile``), ``uncertainty``, ``di``, ``aoa`` or
        ``outside_range``.
    target : str
        The model's target (e.g. ``soc``): the name prefix and part of the description.
    unit : str
        The target's unit (e.g. ``g/kg``), for ``mean`` and the quantiles.
    quantile : float, optional
        The quantile (0-1) of a ``q<NN>`` layer.

    Returns
    -------
    ProductSpec
        Named ``<target>_<layer>``.
    """
    base = DSM_LAYERS["quantile" if quantile is not None else layer]
    return dataclasses.replace(
        base, name=f"{target}_{layer}", unit=base.unit.format(unit=unit),
        description=base.description.format(target=target, unit=unit, q=quantile or 0.0),
    )


def stock_spec(depth_m: float) -> ProductSpec:
    """The :class:`ProductSpec` of a stock map (kg/m2) over ``depth_m`` metres."""
    return ProductSpec("stock", unit="kg/m2", description=f"stock over {depth_m:g} m [kg/m2]", **_FLOAT)
