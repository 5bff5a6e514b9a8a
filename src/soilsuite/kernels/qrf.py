"""Quantile regression forest prediction in one pass (numba kernel).

Exactly what :meth:`quantile_forest.RandomForestQuantileRegressor.predict` computes with its
defaults (``weighted_quantile=True``, ``weighted_leaves=False``, ``aggregate_leaves_first=True``,
``interpolation="linear"``, ``max_samples_leaf=None``), plus the forest mean (Breiman: the average
of the trees' leaf means, as :meth:`sklearn.ensemble.RandomForestRegressor.predict`), but:

- the trees are walked once per row for the mean and all quantiles (quantile-forest walks them
  in ``apply`` and scikit-learn again for the mean, materialising an int64 ``[n, trees]`` leaf
  table): chunks of 256 rows, their covariates copied feature-major, walk each tree in
  lock-step without branches (unsigned indices, so the loop has no negative-index checks);
- each leaf's in-bag training samples are stored once as (position in ``y_sorted``, bootstrap
  count) pairs, and the quantiles are read from the row's counts per training position:
  *dense* (few training samples, ``n_train <= 4 x`` the pairs gathered per row): counts
  accumulated tree by tree for a block of rows (each tree's leaf table stays in cache) in an
  ``[rows, n_train]`` table, then read in ascending order (``O(m + n_train)`` per row);
  *sparse* (many training samples): the row's pairs sorted and merged (``O(m log m)``);
  quantile-forest scans all ``n_train`` training values per row whatever the leaf sizes;
- chunks run in parallel (``prange``) in the parallel twin.

The weighted quantile is quantile-forest's ``calc_weighted_quantile`` (``C = 1``, linear
interpolation) on the compacted sample list; the test (``tests/test_dsm_spatial.py``) checks
bitwise equality against quantile-forest on data with ties, in-bag and out-of-bag, on both paths.

Inputs are plain arrays (built by :func:`soilsuite.dsm.fastforest.pack_forest`):

- ``X`` float32 ``[n, p]`` (rows with NaN must be removed by the caller);
- the trees renumbered breadth-first so that a node's children are adjacent: ``feat`` uint32,
  ``thr`` float32 (scikit-learn's float64 threshold rounded down to float32, so ``x > thr`` is
  unchanged for float32 ``x``: scikit-learn casts ``X`` to float32 and goes left on
  ``x <= threshold``), ``base`` uint32 (first child; a leaf points at itself with threshold
  +inf), all ``[T, max_nodes]``, and ``depth`` int64 ``[T]`` (the tree's max depth);
- per node ``lmean`` float64 ``[T, max_nodes]`` (the leaf mean, target unit) and ``lstart``
  int64 ``[T, max_nodes + 1]``: node ``j`` of tree ``t`` owns the pairs
  ``lstart[t, j]:lstart[t, j + 1]`` of ``pos`` int32 (ascending positions in ``y_sorted``) and
  ``wt`` int32 (bootstrap counts >= 1);
- ``y_sorted`` float64 ``[n_train]`` ascending (target unit);
- ``qs`` float64 sorted ascending, ``q_order`` int64: output column of each sorted level;
- ``hist_rows``: rows per dense count table (0: the sparse path); ``max_m``: an upper bound of
  the pairs gathered per row (sparse path);
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
_HIST_BYTES = 1 << 18


@njit(cache=True, nogil=True)
def _weighted_quantiles(vals, w, cum, m, qs, q_order, out_row):
    """quantile-forest's calc_weighted_quantile (C = 1, linear) on ``vals[:m]`` (ascending),
    ``w[:m]`` (counts; only the first entry may be 0); ``cum`` is scratch of length >= m."""
    C = 1.0
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


def _predict_qrf(X, feat, thr, base, depth, lmean, lstart, pos, wt, y_sorted, qs, q_order,
                 hist_rows, max_m, oob, inbag, train_pos, out_mean, out_q):
    n, p = X.shape
    n_trees = feat.shape[0]
    n_train = y_sorted.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        r0 = c * _CHUNK
        r1 = min(n, r0 + _CHUNK)
        nr = r1 - r0
        # the chunk's covariates feature-major, so that a row's value of feature f is at f * _CHUNK + i
        xc = np.empty(p * _CHUNK, np.float32)
        for i in range(nr):
            for f in range(p):
                xc[f * _CHUNK + i] = X[r0 + i, f]
        # walk each tree for the rows of the chunk in lock-step, branch-free: children of a node
        # are adjacent (base, base + 1), leaves loop on themselves, max_depth steps per tree;
        # unsigned indices (no negative-index wrap-around in the loop)
        leaves = np.empty((n_trees, _CHUNK), np.uint32)
        for t in range(n_trees):
            ft = feat[t]
            th = thr[t]
            bs = base[t]
            nodes = leaves[t]
            for i in range(nr):
                nodes[i] = 0
            for _ in range(depth[t]):
                for i in range(nr):
                    nd = nodes[i]
                    nodes[i] = bs[nd] + np.uint32(xc[ft[nd] * np.uint32(_CHUNK) + np.uint32(i)] > th[nd])
        vals = np.empty(n_train + 1, np.float64)
        w = np.empty(n_train + 1, np.float64)
        cum = np.empty(n_train + 1, np.float64)
        if hist_rows > 0:
            # dense: per row a count of each training position, filled tree by tree (each tree's
            # leaf table stays in cache), then read in ascending order
            hist = np.zeros((hist_rows, n_train), np.int32)
            acc = np.empty(hist_rows, np.float64)
            used = np.empty(hist_rows, np.int64)
            for h0 in range(0, nr, hist_rows):
                h1 = min(nr, h0 + hist_rows)
                for i in range(h1 - h0):
                    acc[i] = 0.0
                    used[i] = 0
                for t in range(n_trees):
                    lm = lmean[t]
                    ls = lstart[t]
                    lv = leaves[t]
                    for i in range(h0, h1):
                        if oob:
                            pi = train_pos[r0 + i]
                            if pi >= 0 and inbag[t, pi]:
                                continue
                        leaf = lv[i]
                        acc[i - h0] += lm[leaf]
                        used[i - h0] += 1
                        hr = hist[i - h0]
                        for e in range(ls[leaf], ls[leaf + 1]):
                            hr[pos[e]] += wt[e]
                for i in range(h0, h1):
                    if used[i - h0] == 0:
                        continue
                    out_mean[r0 + i] = acc[i - h0] / used[i - h0]
                    hr = hist[i - h0]
                    # position 0 (the smallest training value) leads with weight 0 when not
                    # gathered, as in quantile-forest's full-length scan
                    k = 0
                    if hr[0] == 0:
                        vals[0] = y_sorted[0]
                        w[0] = 0.0
                        k = 1
                    for b in range(n_train):
                        cb = hr[b]
                        if cb != 0:
                            vals[k] = y_sorted[b]
                            w[k] = cb
                            hr[b] = 0
                            k += 1
                    _weighted_quantiles(vals, w, cum, k, qs, q_order, out_q[r0 + i])
        else:
            # sparse: a row's (position, count) pairs gathered, sorted and merged
            keys = np.empty(max_m + 1, np.int64)
            for i in range(nr):
                acc0 = 0.0
                used0 = 0
                m = 0
                pi = train_pos[r0 + i] if oob else -1
                for t in range(n_trees):
                    if oob and pi >= 0 and inbag[t, pi]:
                        continue
                    leaf = leaves[t, i]
                    acc0 += lmean[t, leaf]
                    used0 += 1
                    for e in range(lstart[t, leaf], lstart[t, leaf + 1]):
                        keys[m] = (np.int64(pos[e]) << 32) | np.int64(wt[e])
                        m += 1
                if used0 == 0:
                    continue
                out_mean[r0 + i] = acc0 / used0
                if m == 0:
                    continue
                srt = np.sort(keys[:m])
                k = 0
                if (srt[0] >> 32) != 0:
                    vals[0] = y_sorted[0]
                    w[0] = 0.0
                    k = 1
                prev = -1
                for j in range(m):
                    b = srt[j] >> 32
                    cnt = srt[j] & 0xFFFFFFFF
                    if b == prev:
                        w[k - 1] += cnt
                    else:
                        vals[k] = y_sorted[b]
                        w[k] = cnt
                        k += 1
                        prev = b
                _weighted_quantiles(vals, w, cum, k, qs, q_order, out_q[r0 + i])


_predict_serial, _predict_parallel = twins(_predict_qrf)


def _hist_rows(packed: dict) -> int:
    """Rows per dense count table (at most 256 KB), or 0 for the sparse path: dense when the
    training set is at most 4x the pairs a row gathers on average (one per tree and leaf pair)."""
    n_train = len(packed["y_sorted"])
    if n_train > 4 * packed["mean_m"]:
        return 0
    return int(min(_CHUNK, max(1, _HIST_BYTES // (4 * n_train))))


def predict_qrf(X, packed: dict, quantiles, *, parallel: bool = True, oob: bool = False,
                inbag=None, train_pos=None, path: str = "auto") -> tuple[np.ndarray, np.ndarray]:
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
        Chunks of 256 rows in parallel (numba threads) or serial.
    oob : bool
        Out-of-bag mode (``inbag`` [T, n_train] bool and ``train_pos`` [n] int64 needed).
    path : {"auto", "dense", "sparse"}
        How a row's leaf samples are counted (same results; ``auto`` picks the faster).

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
    P = packed
    if path == "auto":
        hist_rows = _hist_rows(P)
    elif path == "dense":
        hist_rows = int(min(_CHUNK, max(1, _HIST_BYTES // (4 * len(P["y_sorted"])))))
    elif path == "sparse":
        hist_rows = 0
    else:
        raise ValueError(f"path must be auto, dense or sparse, got {path!r}")
    fn = _predict_parallel if parallel else _predict_serial
    fn(X, P["feat"], P["thr"], P["base"], P["depth"], P["lmean"], P["lstart"], P["pos"], P["wt"],
       P["y_sorted"], qs[order], order.astype(np.int64), hist_rows, int(P["max_m"]), bool(oob), inbag,
       train_pos, out_mean, out_q)
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


def inbag_mask(packed: dict) -> np.ndarray:
    """``[T, n_train]`` bool: the training sample at sorted position j was drawn into tree t's
    bootstrap (it is in one of the tree's leaves)."""
    ls = packed["lstart"]
    n_trees = ls.shape[0]
    out = np.zeros((n_trees, len(packed["y_sorted"])), np.bool_)
    tree = np.repeat(np.arange(n_trees), ls[:, -1] - ls[:, 0])
    out[tree, packed["pos"][ls[0, 0]:ls[-1, -1]]] = True
    return out
