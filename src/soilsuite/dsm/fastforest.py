"""Fast exact predictions of a fitted quantile regression forest (mean and all quantiles in one pass).

:func:`pack_forest` copies the trees of a fitted
:class:`quantile_forest.RandomForestQuantileRegressor` into compact arrays once (about
``T * (28 * nodes) + 8 * pairs`` bytes, one (position, count) pair per distinct in-bag sample of a
leaf); :func:`forest_predict` and :func:`oob_quantiles` run the numba kernel
:func:`soilsuite.kernels.qrf.predict_qrf` on them. Results equal quantile-forest's
``predict(X, quantiles=...)`` and ``predict(X_train, quantiles=..., oob_score=True)`` (its defaults:
weighted quantile, no leaf weighting, leaves aggregated first, linear interpolation) bit for bit,
and scikit-learn's forest mean to float64 rounding of the sum over trees; every output is in the
target's unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..kernels.qrf import inbag_mask, predict_qrf, relayout


def pack_forest(forest: Any) -> dict:
    """Compact arrays of a fitted forest for :func:`soilsuite.kernels.qrf.predict_qrf`."""
    trees = [e.tree_ for e in forest.estimators_]
    n_trees = len(trees)
    ytl = np.asarray(forest.forest_.y_train_leaves)
    if ytl.shape[2] != 1:
        raise ValueError("only single-output forests are supported")
    max_nodes = ytl.shape[1]
    y_sorted = np.ascontiguousarray(np.asarray(forest.forest_.y_train)[0], dtype=np.float64)
    n_train = len(y_sorted)
    feat = np.zeros((n_trees, max_nodes), np.int32)
    thr = np.full((n_trees, max_nodes), np.inf, np.float32)
    base = np.zeros((n_trees, max_nodes), np.int32)
    orig = np.zeros((n_trees, max_nodes), np.int64)
    depth = np.zeros(n_trees, np.int64)
    lmean = np.zeros((n_trees, max_nodes), np.float64)
    used = np.zeros((n_trees, max_nodes), np.bool_)
    for t, tr in enumerate(trees):
        th = tr.threshold
        t32 = th.astype(np.float32)
        up = t32.astype(np.float64) > th
        t32[up] = np.nextafter(t32[up], np.float32(-np.inf))  # largest float32 <= threshold
        relayout(tr.children_left.astype(np.int64), tr.children_right.astype(np.int64),
                 tr.feature.astype(np.int64), t32, tr.node_count, t, feat, thr, base, orig)
        depth[t] = tr.max_depth
        k = tr.node_count
        lmean[t, :k] = tr.value[:, 0, 0][orig[t, :k]]
        used[t, :k] = True
    # each leaf's in-bag samples (1 + sorted position, one per bootstrap draw, 0 = padding;
    # indexed by the original node id) -> distinct (position, count) pairs in (tree, new node,
    # position) order; no copy of the [T, nodes, max leaf size] table
    newid = np.zeros((n_trees, max_nodes), np.int64)
    for t, tr in enumerate(trees):
        newid[t, orig[t, :tr.node_count]] = np.arange(tr.node_count)
    ytl = ytl[:, :, 0, :]
    row, col, kk = np.nonzero(ytl)
    keys = (row * max_nodes + newid[row, col]) * np.int64(n_train + 1) + ytl[row, col, kk]
    del row, col, kk
    keys, counts = np.unique(keys, return_counts=True)
    cell = keys // (n_train + 1)
    starts = np.searchsorted(cell, np.arange(n_trees * max_nodes + 1))
    lstart = np.empty((n_trees, max_nodes + 1), np.int64)
    for t in range(n_trees):
        lstart[t] = starts[t * max_nodes:(t + 1) * max_nodes + 1]
    npairs = np.diff(starts)[:n_trees * max_nodes].reshape(n_trees, max_nodes)
    leaf = used & (base == np.arange(max_nodes)[None, :])
    nleaf = np.maximum(leaf.sum(axis=1), 1)
    return {"feat": feat.astype(np.uint32), "thr": thr, "base": base.astype(np.uint32), "depth": depth,
            "lmean": lmean, "lstart": lstart, "pos": (keys % (n_train + 1) - 1).astype(np.int32),
            "wt": counts.astype(np.int32), "y_sorted": y_sorted,
            # pairs a row gathers: upper bound (sparse buffer) and average over leaves (path choice)
            "max_m": int(npairs.max(axis=1).sum()), "mean_m": float((npairs.sum(axis=1) / nleaf).sum())}


def forest_predict(packed: dict, X: np.ndarray, levels: Sequence[float], *,
                   parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Forest mean ``[n]`` and quantiles ``[n, len(levels)]`` (float64) of rows without NaN."""
    return predict_qrf(X, packed, list(levels), parallel=parallel)


def oob_quantiles(forest: Any, packed: dict, X_train: np.ndarray, levels: Sequence[float], *,
                  parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-bag mean ``[n_train]`` (average of the out-of-bag trees' leaf means) and quantiles
    ``[n_train, len(levels)]`` of the training rows (in training order), each from the trees whose
    bootstrap did not draw the row; NaN where every tree drew it."""
    n = len(X_train)
    sorter = np.asarray(forest.sorter_)[:, 0]
    pos = np.empty(n, np.int64)
    pos[sorter] = np.arange(n)
    return predict_qrf(X_train, packed, list(levels), parallel=parallel, oob=True, inbag=inbag_mask(packed),
                       train_pos=pos)
