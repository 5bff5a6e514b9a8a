"""Quantile regression forest prediction in one pass (numba kernel).

Exactly what :meth:`quantile_forest.RandomForestQuantileRegressor.predict` computes with its
defaults (``weighted_quantile=True``, ``weighted_leaves=False``, ``aggregate_leaves_first=True``,
``interpolation="linear"``, ``max_samples_leaf=None``), plus the forest mean (Breiman: the average
of the trees' leaf means, as :meth:`sklearn.ensemble.RandomForestRegressor.predict`), but:

- the trees are walked once per row for the mean and all quantiles (quantile-forest walks them
  in ``apply`` and scikit-learn again for the mean, materialising an int64 ``[n, trees]`` leaf
  table), in chunks of rows with the trees' arrays in cache;
- the training samples of a row's leaves are gathered, sorted and counted (``O(m log m)`` for
  ``m`` gathered samples) instead of a scan over all ``n_train`` training values per row
  (``O(n_train)``: quadratic for out-of-bag predictions of large training sets);
- rows run in parallel (``prange``) in the parallel twin.

The weighted quantile is quantile-forest's ``calc_weighted_quantile`` (``C = 1``, linear
interpolation) on the compacted sample list; the test (``tests/test_dsm_spatial.py``) checks
bitwise equality against quantile-forest on data with ties, in-bag and out-of-bag.

Inputs are plain arrays (built by :func:`soilsuite.dsm.fastforest.pack_forest`):

- ``X`` float32 ``[n, p]`` (rows with NaN must be removed by the caller);
- the trees renumbered breadth-first so that a node's children are adjacent: ``feat`` int32,
  ``thr`` float32 (scikit-learn's float64 threshold rounded down to float32, so ``x > thr`` is
  unchanged for float32 ``x``), ``base`` int32 (first child; a leaf points at itself with
  threshold +inf), all ``[T, max_nodes]``, and ``depth`` int64 ``[T]`` (the tree's max depth);
- per node ``leafrec`` float64 ``[T, max_nodes, 4]``: the leaf mean, and start and end (exact
  integers) of the leaf's run in ``entries`` int32 (0-based positions in ``y_sorted`` of its
  in-bag training samples, one entry per bootstrap draw): one cache line per leaf visit;
- ``y_sorted`` float64 ``[n_train]`` ascending;
- ``qs`` float64 sorted ascending, ``q_order`` int64: output column of each sorted level;
- ``oob``: if True only trees for which the row's training sample (``train_pos[i]``, its
  position in ``y_sorted``) is out of bag (``inbag[t, pos]`` False) are used; rows without
  such trees get NaN.

Outputs: ``mean`` float64 ``[n]`` (in OOB mode the mean over the row's out-of-bag trees, as
scikit-learn's ``oob_prediction_``), ``q`` float64 ``[n, n_quantiles]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import twins

__all__ = ["inbag_mask", "predict_qrf", "relayout"]

_CHUNK = 256


@njit(cache=True, nogil=True)
def _weighted_quantiles(vals, w, m, qs, q_order, out_row):
    """quantile-forest's calc_weighted_quantile (C = 1, linear) on ``vals[:m]`` (ascending),
    ``w[:m]`` (counts; only the first entry may be 0)."""
    C = 1.0
    cum = np.empty(m, np.float64)
    cum[0] = w[0]
    for i in range(1, m):
        cum[i] = cum[i - 1] + w[i]
    if cum[m - 1] <= 0:
        return
    f = cum[m - 1] + 1.0 - 2.0 * C
    idx_floor = 0
    idx_ceil = 1
    for s in range(qs.shape[0]):
        q = qs[s]
        o = q_order[s]
        p = q * f + C
        for j in range(idx_floor, m):
            if p >= cum[j]:
                if w[j] > 0:
                    idx_floor = j
                    idx_ceil = j + 1
            else:
                break
        if idx_ceil > m - 1:
            idx_ceil = m - 1
        while w[idx_ceil] == 0:
            idx_ceil += 1
            if idx_ceil > m - 1:
                idx_ceil = idx_floor
                break
        if idx_floor >= m - 1:
            out_row[o] = vals[m - 1]
            continue
        if idx_ceil <= 0:
            out_row[o] = vals[0]
            continue
        if idx_floor == idx_ceil:
            out_row[o] = vals[idx_floor]
            continue
        v_floor = vals[idx_floor]
        v_ceil = vals[idx_ceil]
        if v_floor == v_ceil:
            out_row[o] = v_floor
            continue
        p_floor = (cum[idx_floor] - C) / f
        p_ceil = (cum[idx_ceil] - C) / f
        p_floor = min(q, p_floor)
        p_ceil = max(q, p_ceil)
        p_ceil = p_floor + (p_ceil - p_floor) / w[idx_ceil]
        if q >= p_ceil:
            out_row[o] = v_ceil
            continue
        frac = (q - p_floor) / (p_ceil - p_floor)
        if frac <= 0:
            out_row[o] = v_floor
        elif frac >= 1:
            out_row[o] = v_ceil
        else:
            out_row[o] = v_floor + frac * (v_ceil - v_floor)


def _predict_qrf(X, feat, thr, base, depth, leafrec, entries, y_sorted, qs, q_order,
                 oob, inbag, train_pos, out_mean, out_q):
    n = X.shape[0]
    n_trees = feat.shape[0]
    n_train = y_sorted.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    max_m = 0
    for t in range(n_trees):
        mt = 0
        for j in range(leafrec.shape[1]):
            if leafrec[t, j, 2] - leafrec[t, j, 1] > mt:
                mt = int(leafrec[t, j, 2] - leafrec[t, j, 1])
        max_m += mt
    for c in prange(n_chunks):
        r0 = c * _CHUNK
        r1 = min(n, r0 + _CHUNK)
        nr = r1 - r0
        leaves = np.empty((nr, n_trees), np.int32)
        nodes = np.empty(nr, np.int32)
        # walk each tree for the rows of the chunk in lock-step, branch-free: children of a node
        # are adjacent (base, base + 1), leaves loop on themselves, max_depth steps per tree
        for t in range(n_trees):
            for i in range(nr):
                nodes[i] = 0
            for _ in range(depth[t]):
                for i in range(nr):
                    nd = nodes[i]
                    nodes[i] = base[t, nd] + (X[r0 + i, feat[t, nd]] > thr[t, nd])
            for i in range(nr):
                leaves[i, t] = nodes[i]
        buf = np.empty(max_m + 1, np.int32)
        counts = np.zeros(n_train, np.int32)
        vals = np.empty(max_m + 1, np.float64)
        w = np.empty(max_m + 1, np.float64)
        for i in range(r0, r1):
            acc = 0.0
            m = 0
            used = 0
            pos = train_pos[i] if oob else -1
            for t in range(n_trees):
                if oob and pos >= 0 and inbag[t, pos]:
                    continue
                leaf = leaves[i - r0, t]
                acc += leafrec[t, leaf, 0]
                used += 1
                for e in range(int(leafrec[t, leaf, 1]), int(leafrec[t, leaf, 2])):
                    buf[m] = entries[e]
                    m += 1
            if used > 0:
                out_mean[i] = acc / used
            if m == 0:
                continue
            # compact: ascending positions with their counts; position 0 (the smallest training
            # value) leads with weight 0 when not gathered, as in quantile-forest's full-length scan
            k = 0
            if n_train <= 4 * m:
                lo = n_train
                hi = 0
                for j in range(m):
                    b = buf[j]
                    counts[b] += 1
                    if b < lo:
                        lo = b
                    if b > hi:
                        hi = b
                if lo != 0:
                    vals[0] = y_sorted[0]
                    w[0] = 0.0
                    k = 1
                for b in range(lo, hi + 1):
                    if counts[b] != 0:
                        vals[k] = y_sorted[b]
                        w[k] = counts[b]
                        counts[b] = 0
                        k += 1
            else:
                srt = np.sort(buf[:m])
                if srt[0] != 0:
                    vals[0] = y_sorted[0]
                    w[0] = 0.0
                    k = 1
                prev = -1
                for j in range(m):
                    b = srt[j]
                    if b == prev:
                        w[k - 1] += 1.0
                    else:
                        vals[k] = y_sorted[b]
                        w[k] = 1.0
                        k += 1
                        prev = b
            _weighted_quantiles(vals, w, k, qs, q_order, out_q[i])


_predict_serial, _predict_parallel = twins(_predict_qrf)


def predict_qrf(X, packed: dict, quantiles, *, parallel: bool = True, oob: bool = False,
                inbag=None, train_pos=None) -> tuple[np.ndarray, np.ndarray]:
    """Forest mean and quantiles of rows ``X`` (see the module docstring).

    Parameters
    ----------
    X : ndarray [n, p]
        Covariates (cast to float32, as scikit-learn's trees do); no NaN.
    packed : dict
        Trees and leaf samples from :func:`soilsuite.dsm.fastforest.pack_forest`.
    quantiles : sequence of float
        Levels in [0, 1] (any order).
    parallel : bool
        Rows in parallel (numba threads) or serial.
    oob : bool
        Out-of-bag mode (``inbag`` [T, n_train] bool and ``train_pos`` [n] int64 needed).

    Returns
    -------
    mean : ndarray [n] float64 (OOB mode: mean over the out-of-bag trees; NaN without any)
    q : ndarray [n, n_quantiles] float64 (NaN where no tree / sample is available)
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    qs = np.asarray(quantiles, dtype=np.float64)
    order = np.argsort(qs, kind="stable")
    n = len(X)
    out_mean = np.full(n, np.nan)
    out_q = np.full((n, len(qs)), np.nan)
    if n == 0:
        return out_mean, out_q
    if oob:
        inbag = np.ascontiguousarray(inbag, dtype=np.bool_)
        train_pos = np.ascontiguousarray(train_pos, dtype=np.int64)
    else:
        inbag = np.zeros((1, 1), np.bool_)
        train_pos = np.zeros(1, np.int64)
    fn = _predict_parallel if parallel else _predict_serial
    P = packed
    fn(X, P["feat"], P["thr"], P["base"], P["depth"], P["leafrec"], P["entries"], P["y_sorted"], qs[order], order.astype(np.int64), bool(oob), inbag, train_pos, out_mean, out_q)
    return out_mean, out_q


def _relayout(left, right, feature, thr32, node_count, t, feat, thr, base, orig):
    """Renumber tree ``t`` breadth-first so that a node's children are adjacent; leaves loop on
    themselves (feature 0, threshold +inf) and remember their original node id in ``orig``."""
    queue = np.empty(node_count, np.int64)
    newpos = np.empty(node_count, np.int64)
    queue[0] = 0
    newpos[0] = 0
    head = 0
    tail = 1
    nxt = 1
    while head < tail:
        o = queue[head]
        head += 1
        i = newpos[o]
        orig[t, i] = o
        if left[o] == -1:
            feat[t, i] = 0
            thr[t, i] = np.inf
            base[t, i] = i
        else:
            feat[t, i] = feature[o]
            thr[t, i] = thr32[o]
            base[t, i] = nxt
            newpos[left[o]] = nxt
            newpos[right[o]] = nxt + 1
            queue[tail] = left[o]
            queue[tail + 1] = right[o]
            tail += 2
            nxt += 2


relayout = njit(cache=True, nogil=True)(_relayout)


def _inbag_entries(leafrec, entries, inbag):
    for t in range(leafrec.shape[0]):
        for j in range(leafrec.shape[1]):
            for e in range(int(leafrec[t, j, 1]), int(leafrec[t, j, 2])):
                inbag[t, entries[e]] = True


_inbag_entries_jit = njit(cache=True, nogil=True)(_inbag_entries)


def inbag_mask(packed: dict) -> np.ndarray:
    """``[T, n_train]`` bool: the training sample at sorted position j was drawn into tree t's
    bootstrap (it is in one of the tree's leaves)."""
    out = np.zeros((packed["feat"].shape[0], len(packed["y_sorted"])), np.bool_)
    _inbag_entries_jit(packed["leafrec"], packed["entries"], out)
    return out
