"""How accumulator fields merge (the aggregator seam): across tiles' time splits and periods.

A field is a per-period partial result with a leading period axis ``P`` (``[P, Y, X]`` or
``[P, B, Y, X]``). Its merge rule says how two partials of the same pixels combine:

``"sum"``  counts and sums (exact for integers and float64 sums of integer DN);
``"min"``  e.g. the first date of an event (NaN = no value: ``fmin`` ignores it);
``"max"``  e.g. the last date of an event (``fmax``);
``"all"``  needs all observations at once (a median, a geometric median): it cannot be merged
           from partials, so a field with this rule is only valid for one period computed from
           the whole series; :func:`merge` and :func:`collapse` refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

MERGE_RULES = ("sum", "min", "max", "all")
_UFUNC = {"sum": np.add, "min": np.fmin, "max": np.fmax}


def _ufunc(name: str, rule: str):
    try:
        return _UFUNC[rule]
    except KeyError:
        if rule == "all":
            raise ValueError(f"field {name!r} needs all observations at once (rule 'all'): it cannot be merged "
                             "from partial results") from None
        raise ValueError(f"field {name!r}: unknown merge rule {rule!r}; known: {', '.join(MERGE_RULES)}") from None


def merge(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], rules: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Fields of two partials of the same pixels and periods, merged by each field's rule."""
    out = {}
    for name, x in a.items():
        y = b[name]
        if x.shape != y.shape:
            raise ValueError(f"cannot merge field {name!r}: shapes {x.shape} and {y.shape} differ")
        out[name] = _ufunc(name, rules[name])(x, y)
    return out


def collapse(fields: Mapping[str, np.ndarray], rules: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Fields merged over the period axis: one period (``P = 1``), the whole window."""
    return {name: _ufunc(name, rules[name]).reduce(x, axis=0, keepdims=True, dtype=x.dtype)
            for name, x in fields.items()}
