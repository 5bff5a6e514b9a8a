"""Covariates tried per split of the forest (``max_features``), with the package default.

``SoilModel(max_features=...)`` accepts what scikit-learn accepts (a share of the features in
(0, 1], a count >= 1, ``"sqrt"``, ``"log2"``) and the rule ``"third"``: a third of the forest's
features, rounded down, but at least two (or all of them when there are fewer than two).

A third is Breiman's (2001) default for regression forests (R ``randomForest``: ``mtry =
floor(p / 3)``): fewer covariates per split than a half decorrelates the trees, which helps when
several covariates carry the same information (the ten Sentinel-2 bands and their indices of a
bare-soil composite). The floor of two keeps a choice at every split: with ``mtry = 1`` a split's
covariate is drawn at random and an uninformative one cannot be passed over, which on small
LimeSoDa tasks with four or five covariates lowered the cross-validated R2 (BB.30_1 clay 0.39 ->
0.28, docs/dsm.md). "Features" are the forest's inputs: the covariates after any reduction
(:mod:`soilsuite.dsm.reduce`) plus any spatial covariates (:mod:`soilsuite.dsm.spatial`).
"""

from __future__ import annotations

import numbers
from typing import Any

from ..errors import ConfigError

#: Named rules of ``max_features`` besides scikit-learn's.
MAX_FEATURES_RULES = ("third",)

#: Fewest features tried per split under ``"third"`` (when the forest has that many).
MIN_SPLIT_FEATURES = 2


def check_max_features(value: Any, option: str = "max_features") -> Any:
    """``value`` if it is a valid ``max_features``, else a :class:`~soilsuite.errors.ConfigError`."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, str):
        if value in (*MAX_FEATURES_RULES, "sqrt", "log2"):
            return value
    elif isinstance(value, numbers.Integral):
        if value >= 1:
            return value
    elif isinstance(value, numbers.Real) and 0.0 < float(value) <= 1.0:
        return value
    raise ConfigError(f"{option} must be 'third', 'sqrt', 'log2', a share in (0, 1] or a count >= 1, got {value!r}")


def resolve_max_features(value: Any, n_features: int) -> Any:
    """The ``max_features`` handed to scikit-learn for a forest with ``n_features`` inputs.

    ``"third"`` becomes the count ``min(n_features, max(2, n_features // 3))``; any other valid
    value is returned unchanged (scikit-learn resolves it).
    """
    check_max_features(value)
    if value == "third":
        return int(min(n_features, max(MIN_SPLIT_FEATURES, n_features // 3)))
    return value


def parse_max_features(text: str, option: str = "--max-features") -> Any:
    """A command-line ``max_features``: a rule name, a share (``0.5``) or a count (``5``)."""
    t = str(text).strip()
    if t in (*MAX_FEATURES_RULES, "sqrt", "log2"):
        return t
    try:
        v = float(t)
    except ValueError:
        v = float("nan")
    if v > 1 and v == int(v):
        return check_max_features(int(v), option)
    return check_max_features(v if v == v else t, option)
