"""The composite of any lazy observation cube: ``xarray.Dataset`` in, ``xarray.Dataset`` out.

:func:`compute` lifts the block functions of :mod:`soilsuite.pipeline.block` (the ones the
tile runner calls) onto the chunks of a dask-backed cube, such as the one
``odc.stac.load(items, bands=[...], groupby="solar_day", chunks={...})`` returns::

    DN bands + per-observation offset  --map_blocks-->   int16 reflectance x 10000
    SCL (halo of dilation_px // 2)     --map_overlap-->  valid observations   (valid_observations)
    reflectance, validity, threshold, WorldCover  --apply_ufunc-->  products  (composite_inputs)

Every chunk holds the whole time axis (the blue outlier filter needs all observations of a
pixel), so memory per chunk is about ``T x 10 bands x chunk_y x chunk_x x 2`` bytes (plus the
float32 products); choose the spatial chunks with that in mind.

The result is lazy: nothing is read before ``.compute()``, ``.load()`` or a write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import products as P
from ..config import COMPOSITE_ALIASES, BareOptions, CompositeConfig, LayerOptions, MaskOptions
from ..errors import ConfigError, InputError
from ..sentinel2 import ASSET_ALIASES, BANDS, DN_NODATA, WORLDCOVER_NEVER_BARE, WORLDCOVER_OTHER
from ..sources import stac as S
from .block import TileInputs, composite_inputs, valid_observations

__all__ = ["compute", "WINDOW"]

#: Label of the whole time window; period products are named ``<PRODUCT>_<period>``.
WINDOW = "window"

PathLike = str | Path


# ----------------------------------------------------------------------------- inputs
def _band_var(cube: xr.Dataset, band: str) -> str:
    """The cube variable holding ``band``: our name (``B04``) or a STAC asset alias (``red``)."""
    for key in (band, *ASSET_ALIASES[band]):
        if key in cube.data_vars:
            return key
    raise InputError(
        f"cube: no variable for band {band} (tried {', '.join(dict.fromkeys((band, *ASSET_ALIASES[band])))}; "
        f"cube has {', '.join(map(str, cube.data_vars)) or 'no variables'})"
    )


def _config(config: CompositeConfig | Mapping[str, Any] | None, options: dict[str, Any], start: dt.date,
            end: dt.date) -> CompositeConfig:
    """A full :class:`CompositeConfig` from ``config`` and flat mask/bare options."""
    if isinstance(config, Mapping):
        options = {**config, **options}
        config = None
    elif config is not None and not isinstance(config, CompositeConfig):
        raise ConfigError(f"config: expected a CompositeConfig, a mapping of options or None, "
                          f"got {type(config).__name__}")
    base = config or CompositeConfig(source="(xarray cube)", start=start, end=end, out=Path("."))
    if options.get("profile"):  # profile="soilsuite": fills the options not given (soilsuite.profiles)
        from ..profiles import apply_profile

        options = apply_profile(options)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {"mask": {}, "bare": {}, "layers": {}}
    for key, value in options.items():
        key = COMPOSITE_ALIASES.get(key, key)  # max_nbr2 = dry_guard
        if key in MaskOptions.model_fields:
            sections["mask"][key] = value
        elif key in BareOptions.model_fields:
            sections["bare"][key] = value
        elif key in LayerOptions.model_fields:
            sections["layers"][key] = value
        elif key in ("worldcover", "periods", "period_blue_filter", "profile"):
            top[key] = value
        else:
            raise ConfigError(
                f"unknown option {key!r} for compute (options of the mask: {', '.join(MaskOptions.model_fields)}; "
                f"of the bare-soil rule: {', '.join(BareOptions.model_fields)}; of the optional layers: "
                f"{', '.join(LayerOptions.model_fields)}; and worldcover, periods, period_blue_filter)"
            )
    try:
        update = {
            "mask": MaskOptions(**{**base.mask.model_dump(), **sections["mask"]}),
            "bare": BareOptions(**{**base.bare.model_dump(), **sections["bare"]}),
            "layers": LayerOptions(**{**base.layers.model_dump(), **sections["layers"]}),
        }
        cfg = CompositeConfig(**{**base.model_dump(exclude={"mask", "bare", "layers"}), **top, **update})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"compute: {exc}") from None
    if cfg.layers.grassland is not None:
        raise ConfigError("compute: grassland polygons are read by soilsuite.composite only; in compute, grassland "
                          "is WorldCover class 30 (give worldcover=)")
    if cfg.layers.erosivity is not None and Path(cfg.layers.erosivity).suffix.lower() not in (".csv", ".txt"):
        raise ConfigError("compute: erosivity must be a CSV table month,share here (a 12-band raster is read by "
                          "soilsuite.composite)")
    if cfg.layers.provenance:
        raise ConfigError("compute: provenance needs the scene list and footprints of a search (scenes removed by "
                          "the scene filter); use soilsuite.composite(..., provenance=True)")
    return cfg


def _per_time(value: Any, n_t: int, name: str, dtype: str) -> np.ndarray:
    """A scalar or ``[T]`` sequence as a ``[T]`` array of ``dtype``."""
    arr = np.asarray(value.values if isinstance(value, xr.DataArray) else value, dtype=dtype)
    if arr.ndim == 0:
        arr = np.full(n_t, arr, dtype=dtype)
    if arr.shape != (n_t,):
        raise ConfigError(f"{name}: expected a scalar or one value per observation ({n_t}), got shape {arr.shape}")
    return arr


def _observations(cube: xr.Dataset, items: Sequence | None, offset_dn: Any, sun_zenith: Any) -> S.ObservationMeta:
    """Per-observation metadata of the cube: from ``items`` or from the explicit arrays."""
    times = np.asarray(cube["time"].values).astype("datetime64[ns]")
    n_t = len(times)
    if items is not None:
        if offset_dn is not None or sun_zenith is not None:
            raise ConfigError("give either items (offset and sun zenith are derived from them) or offset_dn/sun_zenith")
        items = list(items)
        if not items:
            raise InputError("items: empty (give the STAC items the cube was loaded from)")
        meta = S.observation_meta(items, S.resolve_assets(items))
        if len(meta.dates) != n_t or not np.array_equal(meta.times, times):
            raise InputError(
                f"cube has {n_t} observations ({', '.join(str(t)[:10] for t in times[:3])}...), the items group into "
                f"{len(meta.dates)} solar days ({', '.join(map(str, meta.dates[:3]))}...): load the cube from the "
                f"same items with groupby='solar_day'"
            )
        return meta
    if offset_dn is None:
        raise ConfigError(
            "compute needs the BOA_ADD_OFFSET of each observation: give items= (the STAC items the cube was "
            "loaded from) or offset_dn= (DN to add, 0 or -1000, one per time step or a scalar)"
        )
    zen = np.zeros(n_t, np.float32) if sun_zenith is None else _per_time(sun_zenith, n_t, "sun_zenith", "float32")
    dates = [dt.date.fromisoformat(str(t)[:10]) for t in times.astype("datetime64[D]")]
    return S.ObservationMeta(dates=dates, times=times, offset_dn=_per_time(offset_dn, n_t, "offset_dn", "int32"),
                             sun_zenith=zen, item_ids=[[] for _ in range(n_t)])


def _period_labels(periods: str | Sequence[str] | None, cfg: CompositeConfig, dates: list[dt.date]) -> list[str]:
    """Period labels: ``"year"`` -> the calendar years of the observations, as the tile runner."""
    from ..periods import periods_with_data

    if periods is None:
        periods = cfg.periods
    if isinstance(periods, str):
        return [p.label for p in periods_with_data(periods, cfg.start, cfg.end, dates)]
    labels = [str(p) for p in periods]
    bad = [p for p in labels if not (p.isdigit() and len(p) == 4)]
    if bad:
        raise ConfigError(f"periods: a list must hold years such as '2021', got {bad}; for seasons, months or "
                          "named ranges give the periods text, e.g. 'spring:03-01..05-31'")
    return labels


# ----------------------------------------------------------------------------- block functions
def _reflectance_block(dn: np.ndarray, *, offset_dn: np.ndarray) -> np.ndarray:
    """DN ``[T, B, Y, X]`` (float NaN or 0 = nodata) -> int16 reflectance x 10000 (tile runner's rule)."""
    if dn.dtype.kind == "f":
        dn = np.where(np.isnan(dn), DN_NODATA, dn)
    return S.to_reflectance(dn, offset_dn)


def _valid_block(scl: np.ndarray, refl: np.ndarray, *, sun_zenith: np.ndarray, mask: MaskOptions) -> np.ndarray:
    """Validity of one chunk: ``scl`` ``[T, 1, Y + 2h, X + 2h]`` (halo), ``refl`` ``[T, B, Y, X]``."""
    if scl.dtype.kind == "f":
        scl = np.where(np.isnan(scl), 0, scl)
    valid = valid_observations(np.ascontiguousarray(scl[:, 0], dtype=np.uint8), refl, sun_zenith, mask)
    return valid[:, None]


def _products_block(refl, valid, threshold, worldcover, *, meta, cfg, periods, layout):
    """Products of one chunk; apply_ufunc puts the core dims last: ``refl [Y, X, T, B]``,
    ``valid [Y, X, T]``, ``threshold``/``worldcover`` ``[Y, X]``. Returns one array per entry of
    ``layout`` (``[Y, X]`` or ``[Y, X, B]``)."""
    refl = np.ascontiguousarray(np.moveaxis(refl, (-2, -1), (0, 1)))
    valid = np.ascontiguousarray(np.moveaxis(valid, -1, 0))
    thr = np.where(np.isfinite(threshold), threshold, cfg.bare.threshold).astype(np.float32)
    aux = {}
    if cfg.layers.ploughing:
        aux["grassland"] = worldcover == 30  # WorldCover grassland
    if cfg.layers.erosion and cfg.layers.erosivity is not None:
        from ..sources.layer_inputs import erosivity_table

        aux["erosivity"] = erosivity_table(cfg.layers.erosivity)
    inp = TileInputs(meta, refl, valid, thr, np.isin(worldcover, WORLDCOVER_NEVER_BARE),
                     np.isin(worldcover, WORLDCOVER_OTHER), aux)
    res = composite_inputs(inp, cfg, periods)
    return tuple(np.moveaxis(res[label][name], 0, -1) if nd == 3 else res[label][name]
                 for label, name, nd in layout)


def _band_dim(name: str) -> str:
    """The band dimension of a multi-band product: ``band`` (spectral) or ``month`` (BSF_MONTHLY)."""
    return "band" if P.get(name).is_spectral else "month"


def _layout(cfg: CompositeConfig, periods: list[str], n_b: int) -> list[tuple[str, str, int]]:
    """``(label, product, ndim)`` of every output, in order: window first, then the periods.

    Found by running :func:`composite_inputs` on an empty 1 x 1 block, so the list follows
    whatever products the block functions return."""
    meta = S.ObservationMeta([], np.array([], "datetime64[ns]"), np.zeros(0, np.int32), np.zeros(0, np.float32), [])
    probe = composite_inputs(
        TileInputs(meta, np.zeros((0, n_b, 1, 1), np.int16), np.zeros((0, 1, 1), bool), np.zeros((1, 1), np.float32),
                   np.zeros((1, 1), bool), np.zeros((1, 1), bool)), cfg, periods)
    return [(label, name, arr.ndim) for label in (WINDOW, *periods) for name, arr in probe[label].items()]


def _raster_on_chunks(path: PathLike, geobox, chunks, *, resampling: str, dtype: str, fill: float):
    """A raster read onto ``geobox`` lazily, one chunk of ``chunks`` (y, x) at a time."""
    import dask.array as da

    from ..sources.rasters import read_on_grid

    def read(block, block_info=None):
        (y0, y1), (x0, x1) = block_info[0]["array-location"]
        return read_on_grid(path, geobox[y0:y1, x0:x1], resampling=resampling, dtype=dtype, fill=fill)

    template = da.zeros(geobox.shape.yx, dtype=dtype, chunks=chunks)
    return da.map_blocks(read, template, dtype=dtype, meta=np.array((), dtype))


def _spatial(value: xr.DataArray, name: str, dims: tuple[str, str], geobox, chunks, dtype: str) -> xr.DataArray:
    """A user's per-pixel DataArray on the cube's grid, chunked as the cube (``chunks`` (y, x))."""
    shape = tuple(geobox.shape.yx)
    if set(value.dims) != set(dims) or tuple(value.sizes[d] for d in dims) != shape:
        raise InputError(f"{name}: expected a DataArray with dims {dims} of sizes {shape} (the cube's grid), "
                         f"got {dict(value.sizes)}")
    value = value.transpose(*dims).astype(dtype)
    return value.drop_vars([c for c in value.coords if c not in dims]).chunk(dict(zip(dims, chunks, strict=True)))


# ----------------------------------------------------------------------------- the API
def compute(
    cube: xr.Dataset,
    config: CompositeConfig | Mapping[str, Any] | None = None,
    *,
    items: Sequence | None = None,
    offset_dn: Any = None,
    sun_zenith: Any = None,
    periods: str | Sequence[str] | None = None,
    threshold: float | PathLike | xr.DataArray | None = None,
    worldcover: PathLike | xr.DataArray | None = None,
    **options: Any,
) -> xr.Dataset:
    """Bare-soil composites and statistics (SCMaP, SPEC 2-3) of a lazy observation cube.

    The same block functions as the tile runner of :func:`soilsuite.composite`
    (:mod:`soilsuite.pipeline.block`), applied chunk by chunk with dask: on the same
    observations and grid, the products are equal to the CLI's.

    Parameters
    ----------
    cube : xarray.Dataset
        Raw Sentinel-2 L2A DN, one variable per band with dims ``(time, y, x)``: the 10 bands
        B02..B12 (named ``B04`` or by a STAC asset alias such as ``red``) and ``SCL`` (or
        ``scl``), one time step per observation (``groupby="solar_day"``), 0 (or NaN) = nodata,
        with an odc-geo GeoBox (``cube.odc.geobox``), as ``odc.stac.load`` returns. Usually
        dask-backed; every chunk is rechunked to hold the whole time axis.
    config : CompositeConfig or mapping, optional
        Options: a :class:`~soilsuite.config.CompositeConfig` (its ``mask``, ``bare``,
        ``worldcover`` and ``periods`` are used) or a mapping of option names as ``**options``.
    items : sequence of pystac.Item, optional
        The STAC items the cube was loaded from: the BOA_ADD_OFFSET (DN) and the sun zenith
        (degrees) of each observation are derived from them exactly as the tile runner does
        (:func:`soilsuite.sources.stac.observation_meta`); their solar days must match the
        cube's time steps. Give either ``items`` or ``offset_dn``.
    offset_dn : int or array-like of int, optional
        BOA_ADD_OFFSET in DN added to every DN of an observation: a scalar or one value per
        time step (0 before processing baseline 04.00, -1000 from it; 0 where the served DN
        already carry it, e.g. Earth Search v1 ``earthsearch:boa_offset_applied``).
    sun_zenith : float or array-like of float, optional
        Sun zenith angle in degrees per time step (or a scalar), for the ``max_sun_zenith``
        check; default 0 (no observation is rejected for the sun) when ``offset_dn`` is given.
    periods : str or sequence of str, optional
        Also the products of each period: ``"year"``, ``"season"``, ``"month"`` or named date
        ranges (``"spring:03-01..05-31,autumn:09-01..11-30"``; docs/temporal.md), each clipped
        to the cube's first and last observation day; or explicit years such as
        ``["2021", "2022"]``. Default: ``config``'s (``"none"``). ``period_blue_filter="exact"``
        (an option) takes the blue filter's median/MAD per period; the optional layers
        (``temporal=True``, ``ploughing=True`` with grassland = WorldCover 30, ``erosion=True``
        with ``erosivity=`` a CSV table) are options too.
    threshold : float or path or xarray.DataArray, optional
        PV+IR2 threshold: a number, a raster of per-region thresholds (any CRS, bilinear onto
        the grid, read chunk by chunk), or a ``(y, x)`` DataArray on the cube's grid. Where a
        raster or DataArray is NaN, the scalar threshold of the options applies.
    worldcover : path or xarray.DataArray, optional
        ESA WorldCover classes: a raster (any CRS, nearest onto the grid, read chunk by chunk)
        or a ``(y, x)`` DataArray of class codes on the cube's grid. Never bare on built-up
        and water; MASK 3 on 0/50/70/80/90/95. None: no land-cover rule.
    **options
        Mask and bare-soil options by name (:class:`~soilsuite.config.MaskOptions`,
        :class:`~soilsuite.config.BareOptions`): ``dilation_px``, ``max_sun_zenith``,
        ``invalid_scl``, ``blue_k_bare``, ``blue_k_mref``, ``dry_guard`` (alias ``max_nbr2``), ``min_bare_obs``,
        ``ci_method``... Unknown names raise :class:`~soilsuite.errors.ConfigError`.
        ``edge_guard`` needs a cube with one spatial chunk (outside the cube counts as not bare).

    Returns
    -------
    xarray.Dataset
        Lazy (dask) products on the cube's grid, physical float32 values with NaN = nodata:
        one variable per product of the window (``VPC``, ``BSC``, ``BSF``, ``MASK`` with dims
        ``(y, x)``; ``SRC_MEAN``, ``SRC_STD``, ``SRC_CI95``, ``MREF_MEAN``, ``MREF_STD`` with
        dims ``(band, y, x)``, reflectance 0-1) and, per period, ``<PRODUCT>_<period>``
        (e.g. ``SRC_MEAN_2021``), the variables of the COGs in ``<out>/<period>/``. The GeoBox
        is attached (``ds.odc.geobox``, coordinate ``spatial_ref``). Variable attrs:
        ``product``, ``period`` (``"window"`` or the period label), ``long_name``, ``units``,
        ``nodata`` (NaN); and the product's storage (:class:`soilsuite.products.ProductSpec`)
        as ``stored_dtype``, ``stored_nodata``, ``stored_scale``, ``stored_offset``: encode with
        ``soilsuite.products.get(name).encode(values)`` to get the COG's values.

    Raises
    ------
    InputError
        A band is missing, the cube has no GeoBox, or ``items`` do not match the cube.
    ConfigError
        An unknown or out-of-range option, or neither ``items`` nor ``offset_dn``.

    Notes
    -----
    The SCL halo of the cloud dilation (``dilation_px // 2`` pixels) comes from the
    neighbouring chunks (``dask.array.map_overlap``); beyond the edge of the cube it is
    "no data" (SCL 0). The tile runner reads the archive there instead, so a cube cut out of a
    larger archive may differ within ``dilation_px // 2`` pixels of its edge where a cloud
    lies just outside it. Spatial chunks must be at least ``dilation_px // 2`` pixels.
    """
    import dask.array as da
    from odc.geo.xr import xr_coords

    if not isinstance(cube, xr.Dataset):
        raise InputError(f"cube: expected an xarray.Dataset of bands, got {type(cube).__name__}")
    geobox = cube.odc.geobox
    if geobox is None or "time" not in cube.dims:
        raise InputError("cube: expected dims (time, y, x) with a GeoBox (odc.stac.load, or .odc.assign_crs)")
    ydim, xdim = cube.odc.spatial_dims
    band_vars = [_band_var(cube, b) for b in BANDS]
    scl_var = next((k for k in ("SCL", *ASSET_ALIASES["SCL"]) if k in cube.data_vars), None)
    if scl_var is None:
        raise InputError(f"cube: no quality band SCL (tried SCL, {', '.join(ASSET_ALIASES['SCL'])})")
    times = cube["time"].values.astype("datetime64[D]")
    start = dt.date.fromisoformat(str(times.min())) if len(times) else dt.date(1970, 1, 1)
    end = dt.date.fromisoformat(str(times.max())) if len(times) else start
    if threshold is not None and not isinstance(threshold, xr.DataArray):
        key = "threshold_raster" if isinstance(threshold, (str, Path)) else "threshold"
        options[key] = threshold
    if worldcover is not None and not isinstance(worldcover, xr.DataArray):
        options["worldcover"] = Path(worldcover)
    cfg = _config(config, options, start, end)
    meta = _observations(cube, items, offset_dn, sun_zenith)
    labels = _period_labels(periods, cfg, meta.dates)
    if isinstance(periods, str):  # the block functions take the period ranges from the config
        cfg = cfg.model_copy(update={"periods": periods})

    # the DN cube [T, B, Y, X] with every chunk holding the whole time axis and all bands
    cube = cube[[*band_vars, scl_var]].transpose("time", ydim, xdim)
    cube = cube.map(lambda v: v.chunk() if v.chunks is None else v)  # a numpy cube: one chunk
    first = cube[band_vars[0]]
    yx = first.chunks[1:]
    if cfg.bare.edge_guard and (len(yx[0]) > 1 or len(yx[1]) > 1):
        raise ConfigError(f"edge_guard: soilsuite.compute passes no neighbours between spatial chunks; give a cube "
                          f"with one spatial chunk (e.g. cube.chunk({{'{ydim}': -1, '{xdim}': -1}})) or use "
                          "soilsuite.composite, whose tiles share a 1-pixel halo")
    dn = da.stack([cube[v].data for v in band_vars], axis=1).rechunk((-1, -1, *yx))
    refl = dn.map_blocks(_reflectance_block, dtype=np.int16, meta=np.array((), np.int16), offset_dn=meta.offset_dn)

    # validity: SCL with a halo of dilation_px // 2 from the neighbouring chunks
    h = cfg.mask.dilation_px // 2
    scl = cube[scl_var].data[:, None].rechunk((-1, 1, *yx))
    valid = da.map_overlap(
        _valid_block, scl, refl, depth=[{0: 0, 1: 0, 2: h, 3: h}, 0], boundary=[0, "none"], trim=False,
        align_arrays=False, chunks=(refl.chunks[0], (1,), *yx), dtype=bool, meta=np.array((), bool),
        sun_zenith=meta.sun_zenith, mask=cfg.mask,
    )[:, 0]

    # per-pixel context: threshold and WorldCover classes (0 = none)
    dims = (ydim, xdim)
    coords = {ydim: cube[ydim], xdim: cube[xdim]}
    if isinstance(threshold, xr.DataArray):
        thr = _spatial(threshold, "threshold", dims, geobox, yx, "float32")
    elif cfg.bare.threshold_raster is not None:
        thr = xr.DataArray(_raster_on_chunks(cfg.bare.threshold_raster, geobox, yx, resampling="bilinear",
                                             dtype="float32", fill=np.nan), dims=dims, coords=coords)
    else:
        thr = xr.DataArray(da.full(geobox.shape.yx, cfg.bare.threshold, np.float32, chunks=yx), dims=dims, coords=coords)
    if isinstance(worldcover, xr.DataArray):
        wc = _spatial(worldcover, "worldcover", dims, geobox, yx, "uint8")
    elif cfg.worldcover is not None:
        wc = xr.DataArray(_raster_on_chunks(cfg.worldcover, geobox, yx, resampling="nearest", dtype="uint8", fill=0),
                          dims=dims, coords=coords)
    else:  # 255: no WorldCover class, neither "never bare" nor "other"
        wc = xr.DataArray(da.full(geobox.shape.yx, 255, np.uint8, chunks=yx), dims=dims, coords=coords)

    # the products, chunk by chunk
    layout = _layout(cfg, labels, len(BANDS))
    refl_x = xr.DataArray(refl, dims=("time", "band", ydim, xdim), coords=coords)
    valid_x = xr.DataArray(valid, dims=("time", ydim, xdim), coords=coords)
    out = xr.apply_ufunc(
        _products_block, refl_x, valid_x, thr, wc,
        input_core_dims=[["time", "band"], ["time"], [], []],
        output_core_dims=[[_band_dim(name)] if nd == 3 else [] for _, name, nd in layout],
        dask="parallelized", output_dtypes=[np.float32] * len(layout),
        dask_gufunc_kwargs={"output_sizes": {"month": 12}} if any(
            nd == 3 and _band_dim(name) == "month" for _, name, nd in layout) else None,
        kwargs={"meta": meta, "cfg": cfg, "periods": labels, "layout": layout},
    )
    out = out if isinstance(out, tuple) else (out,)

    gcoords = xr_coords(geobox, crs_coord_name="spatial_ref")
    data_vars = {}
    for (label, name, nd), arr in zip(layout, out, strict=True):
        spec = P.get(name)
        var = arr.transpose(_band_dim(name), ydim, xdim) if nd == 3 else arr
        var.attrs = {
            "product": spec.name, "period": label, "long_name": spec.description, "units": spec.unit,
            "nodata": float("nan"), "stored_dtype": spec.dtype, "stored_nodata": spec.nodata,
            "stored_scale": spec.scale, "stored_offset": spec.offset, "grid_mapping": "spatial_ref",
        }
        data_vars[name if label == WINDOW else f"{name}_{label}"] = var
    ds = xr.Dataset(data_vars).assign_coords(gcoords).assign_coords(band=list(BANDS))
    if any(_band_dim(name) == "month" for _, name, nd in layout if nd == 3):
        from ..layers import MONTHS

        ds = ds.assign_coords(month=list(MONTHS))
    ds.attrs = {"periods": labels, "n_observations": len(meta.dates),
                "observation_dates": [str(d) for d in meta.dates]}
    return ds.odc.assign_crs(geobox.crs)
