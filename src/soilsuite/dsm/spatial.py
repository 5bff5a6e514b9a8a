"""Spatial structure in the soil model: coordinates, distance covariates, residual kriging.

``SoilModel(spatial=...)`` (CLI ``soilsuite dsm train|validate --spatial``):

``none`` (default)
    The forest sees only the covariates.
``xy``
    Two more covariates ``coord_x``, ``coord_y``: the sample (pixel-centre) coordinates in the
    model's CRS units (m for a projected CRS), minus the lower-left corner of the training
    extent (``origin``) so that float32 keeps sub-metre resolution.
``distances``
    Buffer distances (Hengl et al. 2018, RFsp): covariates ``dist_00`` ... the Euclidean distance
    (CRS units) to each of ``k`` reference points, ``k = min(n, MAX_DISTANCE_POINTS)`` (32): the
    distinct sample locations when there are at most 32, else the centres of a k-means
    clustering of the sample locations (``random_state`` seeded). RFsp uses one distance per
    sample; the cap keeps the forest's cost bounded (an n-column covariate block would multiply
    the fit time by about ``n / p``) and is recorded in ``spatial_``.
``rk``
    Regression kriging (random forest + residual kriging, Hengl et al. 2007): after the forest
    is fitted, its out-of-bag residuals ``r_i = y_i - mean_oob(x_i)`` (OOB: each from the trees
    that did not draw sample i, so the residuals are honest) are interpolated by ordinary
    kriging (:class:`pykrige.ok.OrdinaryKriging`, exponential variogram fitted by pykrige's
    least squares on 6 lag classes; at most ``MAX_KRIGING_POINTS`` (1000) random samples: pykrige
    solves the full kriging system, inverting an ``n x n`` matrix per call).
    Predictions add the kriged residual ``r*(s)`` to the mean **and to every quantile**: the
    interval is ``[Q'0.05 + r*, Q'0.95 + r*]``, the forest's quantiles moved with the mean. Its
    width comes from the calibration (``SoilModel(calibrate=True)``), which for ``rk`` is done
    as the interval is predicted: the forest levels are chosen so that the out-of-bag quantiles
    plus the *out-of-fold* kriged residual (10 random folds, the fitted variogram) cover the
    requested shares of the training observations. Where the kriging explains residual
    variance the levels move towards the median and the interval narrows; the kriging
    variance itself is not used.

Coordinates are those of the samples in the model's CRS (``SoilModel.crs_``: the covariate
stack's CRS when trained from rasters). Fallbacks (a warning and the reason in
``SoilModel.spatial_``, the model card's record): fewer than ``MIN_KRIGING_SAMPLES`` (30) samples
or fewer than 3 distinct locations for ``rk`` (no kriging: the plain forest); all samples at one
location for ``xy``/``distances`` (constant covariates: the plain forest). A missing coordinate
is an error.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError, check_choice

#: Options of ``SoilModel(spatial=...)`` / ``--spatial``.
SPATIAL_OPTIONS: tuple[str, ...] = ("none", "xy", "distances", "rk")

#: Fewest samples for residual kriging (a variogram from fewer is not estimable).
MIN_KRIGING_SAMPLES = 30

#: Reference points of the distance covariates.
MAX_DISTANCE_POINTS = 32

#: Samples used for the variogram and the kriging system (random subset above this).
MAX_KRIGING_POINTS = 1000

#: Points per kriging chunk x samples (bounds the distance matrix of one chunk: 4e6 * 8 bytes).
_KRIGE_CELLS = 4_000_000


def check_spatial(value: Any, what: str = "spatial") -> str:
    """``value`` if it is one of :data:`SPATIAL_OPTIONS`, else a :class:`ConfigError` naming ``what``."""
    return check_choice(value, SPATIAL_OPTIONS, what)


class SpatialFit:
    """The fitted spatial part of a model: extra covariates and/or the residual kriging.

    Attributes
    ----------
    requested, used : str
        The option asked for and the one in effect (after a fallback).
    names : list of str
        Names of the extra covariates (``coord_x``/``coord_y`` or ``dist_NN``; empty otherwise).
    origin : ndarray [2]
        Lower-left corner of the training extent (CRS units) subtracted from ``xy`` coordinates.
    points : ndarray [k, 2] or None
        Reference points of the distance covariates (CRS units).
    record : dict
        What was done and why (for the model card): ``requested``, ``used``, ``reason``,
        ``names``, ``reference_points``, ``variogram`` ...
    """

    def __init__(self, requested: str, coords: np.ndarray | None, random_state: int = 0):
        self.requested = check_spatial(requested)
        self.used = self.requested
        self.names: list[str] = []
        self.origin = np.zeros(2)
        self.points: np.ndarray | None = None
        self.kriging = None
        self.record: dict[str, Any] = {"requested": self.requested, "used": self.requested}
        if self.requested == "none":
            return
        if coords is None:
            raise InputError(f"spatial={self.requested!r} needs the sample coordinates (fit(..., coords=[n, 2]); "
                             "CLI: samples with x/y); use spatial='none' without them")
        c = np.asarray(coords, dtype="float64")
        if c.ndim != 2 or c.shape[1] != 2:
            raise InputError(f"spatial={self.requested!r}: coords must be [n, 2] (x, y), got shape {c.shape}")
        bad = ~np.isfinite(c).all(axis=1)
        if bad.any():
            raise InputError(f"spatial={self.requested!r}: {int(bad.sum())} samples without coordinates "
                             f"(rows {np.flatnonzero(bad)[:10].tolist()}); give every sample x and y")
        distinct = len(np.unique(c, axis=0))
        self.record["distinct_locations"] = int(distinct)
        if distinct < 2:
            self._fallback(f"all {len(c)} samples are at one location ({c[0, 0]:g}, {c[0, 1]:g}): coordinates "
                           "carry no information; check the x/y columns and the CRS")
            return
        self.origin = c.min(axis=0)
        if self.requested == "xy":
            self.names = ["coord_x", "coord_y"]
            self.record.update(names=self.names, origin=self.origin.tolist())
        elif self.requested == "distances":
            uniq = np.unique(c, axis=0)
            if len(uniq) <= MAX_DISTANCE_POINTS:
                pts, how = uniq, "the distinct sample locations"
            else:
                from sklearn.cluster import KMeans

                km = KMeans(n_clusters=MAX_DISTANCE_POINTS, n_init=3, random_state=random_state).fit(c - self.origin)
                pts, how = km.cluster_centers_ + self.origin, f"k-means centres of the {len(c)} sample locations"
            self.points = np.asarray(pts, dtype="float64")
            self.names = [f"dist_{i:02d}" for i in range(len(self.points))]
            self.record.update(names=self.names, reference_points=len(self.points), reference=how,
                               cap=MAX_DISTANCE_POINTS)
        elif self.requested == "rk":
            if len(c) < MIN_KRIGING_SAMPLES:
                self._fallback(f"{len(c)} samples, fewer than the {MIN_KRIGING_SAMPLES} a variogram needs; "
                               "collect more samples or use spatial='none'")
            elif distinct < 3:
                self._fallback(f"only {distinct} distinct sample locations; kriging needs spread-out samples")

    def _fallback(self, why: str) -> None:
        self.used = "none"
        self.names = []
        self.points = None
        self.record.update(used="none", reason=why)
        warnings.warn(f"spatial={self.requested!r} not used ({why}); the model is the plain forest",
                      UserWarning, stacklevel=4)

    # ------------------------------------------------------------------ covariates
    @property
    def needs_coords(self) -> bool:
        """True if predictions need the coordinates of the rows (pixels)."""
        return self.used != "none"

    def features(self, coords: np.ndarray | None, n: int) -> np.ndarray:
        """Extra covariates ``[n, len(names)]`` float32 of rows at ``coords`` (CRS units)."""
        if not self.names:
            return np.empty((n, 0), np.float32)
        c = self._coords(coords, n)
        if self.used == "xy":
            return (c - self.origin).astype(np.float32)
        return distances(c, self.points).astype(np.float32)

    def _coords(self, coords, n):
        if coords is None:
            raise InputError(f"the model uses spatial={self.used!r}: give the coordinates of the rows "
                             "(coords=[n, 2] in the model's CRS)")
        c = np.asarray(coords, dtype="float64")
        if c.shape != (n, 2):
            raise InputError(f"coords must be [{n}, 2] for {n} rows, got shape {c.shape}")
        return c

    # ------------------------------------------------------------------ residual kriging
    def fit_kriging(self, coords: np.ndarray, residuals: np.ndarray, random_state: int = 0) -> None:
        """Fit the residual variogram and kriging system (``rk``); falls back to none on failure."""
        if self.used != "rk":
            return
        c = np.asarray(coords, dtype="float64")
        r = np.asarray(residuals, dtype="float64")
        ok = np.isfinite(r)
        c, r = c[ok], r[ok]
        if len(r) < MIN_KRIGING_SAMPLES:
            self._fallback(f"only {len(r)} samples with out-of-bag residuals, fewer than {MIN_KRIGING_SAMPLES}; "
                           "use more trees or spatial='none'")
            return
        if len(r) > MAX_KRIGING_POINTS:
            keep = np.random.default_rng(random_state).choice(len(r), MAX_KRIGING_POINTS, replace=False)
            c, r = c[keep], r[keep]
        from pykrige.ok import OrdinaryKriging

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ok_ = OrdinaryKriging(c[:, 0] - self.origin[0], c[:, 1] - self.origin[1], r,
                                      variogram_model="exponential", nlags=6, pseudo_inv=_duplicates(c))
        except Exception as exc:  # pykrige's fit failing on degenerate input
            self._fallback(f"the residual variogram could not be fitted ({type(exc).__name__}: {exc})")
            return
        sill, rng_, nugget = (float(v) for v in ok_.variogram_model_parameters)
        if not (np.isfinite([sill, rng_, nugget]).all() and rng_ > 0):
            self._fallback(f"degenerate residual variogram (psill {sill:g}, range {rng_:g}, nugget {nugget:g})")
            return
        self.kriging = ok_
        self.record.update(variogram={"model": "exponential", "partial_sill": sill, "range": rng_, "nugget": nugget,
                                      "unit": "target unit squared; range in CRS units",
                                      "n_points": int(len(r))},
                           residuals="out-of-bag residuals of the forest mean",
                           interval="mean and every quantile shifted by the kriged residual; levels calibrated on out-of-bag quantiles plus the out-of-fold kriged residual")

    def cv_kriged(self, coords: np.ndarray, residuals: np.ndarray, k: int = 10, random_state: int = 0) -> np.ndarray:
        """Out-of-fold kriged residual ``[n]`` of each sample: kriged (with the fitted variogram)
        from the samples of the other ``k`` random folds (at most ``MAX_KRIGING_POINTS``). Used
        to calibrate the rk interval as it is predicted: forest quantile plus kriged residual."""
        from pykrige.ok import OrdinaryKriging

        c = np.asarray(coords, dtype="float64") - self.origin
        r = np.asarray(residuals, dtype="float64")
        out = np.full(len(r), np.nan)
        if self.kriging is None:
            return np.zeros(len(r))
        rng = np.random.default_rng(random_state)
        folds = rng.permutation(np.arange(len(r)) % k)
        params = list(self.kriging.variogram_model_parameters)
        for f in range(k):
            te = folds == f
            tr = np.flatnonzero(~te & np.isfinite(r))
            if len(tr) > MAX_KRIGING_POINTS:
                tr = rng.choice(tr, MAX_KRIGING_POINTS, replace=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ok_ = OrdinaryKriging(c[tr, 0], c[tr, 1], r[tr], variogram_model="exponential",
                                      variogram_parameters=params, pseudo_inv=_duplicates(c[tr]))
                z, _ = ok_.execute("points", c[te, 0], c[te, 1], backend="vectorized")
            out[te] = np.asarray(z, dtype="float64")
        return out

    def kriged(self, coords: np.ndarray | None, n: int) -> np.ndarray:
        """Kriged residual ``[n]`` (target unit) at ``coords``; zeros without kriging."""
        if self.kriging is None:
            return np.zeros(n)
        c = self._coords(coords, n)
        out = np.empty(n)
        step = max(1, _KRIGE_CELLS // max(1, len(self.kriging.X_ORIG)))
        for i in range(0, n, step):
            z, _ = self.kriging.execute("points", c[i:i + step, 0] - self.origin[0], c[i:i + step, 1] - self.origin[1],
                                        backend="vectorized")
            out[i:i + step] = np.asarray(z, dtype="float64")
        return out


def _duplicates(c: np.ndarray) -> bool:
    """True if two points share a location (singular kriging matrix: pykrige's pseudo-inverse)."""
    return len(np.unique(c, axis=0)) < len(c)


def distances(coords: np.ndarray, points: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Euclidean distances ``[n, k]`` (CRS units) from each row of ``coords`` to each reference point,
    computed in chunks of rows (memory ``chunk * k * 8`` bytes)."""
    c = np.asarray(coords, dtype="float64")
    p = np.asarray(points, dtype="float64")
    out = np.empty((len(c), len(p)))
    for i in range(0, len(c), chunk):
        d = c[i:i + chunk, None, :] - p[None, :, :]
        out[i:i + chunk] = np.sqrt((d ** 2).sum(axis=2))
    return out


def pixel_centres(geobox: Any, window: Any) -> np.ndarray:
    """Coordinates ``[h * w, 2]`` (x, y; CRS units) of the pixel centres of a rasterio ``window`` on
    ``geobox``'s grid, row-major as the block's pixels."""
    t = geobox.affine
    cols = np.arange(window.col_off, window.col_off + window.width) + 0.5
    rows = np.arange(window.row_off, window.row_off + window.height) + 0.5
    cc, rr = np.meshgrid(cols, rows)
    x = t.a * cc + t.b * rr + t.c
    y = t.d * cc + t.e * rr + t.f
    return np.column_stack([x.ravel(), y.ravel()])
