"""Scene physics of the simulator: endmember spectra, landscape, soils, crop calendars, sky.

Pure numpy/scipy; no I/O. Used by :mod:`soilsuite.sources.simulate`.

Spectra (surface reflectance at the 10 Sentinel-2 bands B02 B03 B04 B05 B06 B07 B08 B8A B11 B12)
are typical values read off published spectra and resampled by eye to the S2 band centres:

- green canopy: PROSAIL (PROSPECT-5 + 4SAIL) canopy at LAI ~3-4, Cab 40 ug/cm2, Cw 0.01 cm
  (Jacquemoud et al. 2009, RSE 113:S56), which gives NDVI ~0.85 and NBR ~0.6;
- dry vegetation / crop residue (fresh straw, weathered residue, leaf litter): Daughtry 2001
  (Agron. J. 93:125), Daughtry et al. 2005 (RSE 97:159) and Nagler et al. 2000 (RSE 71:207):
  cellulose/lignin absorption near 2.1 um so the B12 band (2.19 um, 0.24 um wide) is lower
  relative to B11 than for soil (higher NBR2 = (B11-B12)/(B11+B12));
- soils: four types shaped after mean LUCAS 2009 topsoil spectra by soil group (Orgiazzi et al.
  2018, EJSS 69:140; Castaldi et al. 2019, ISPRS J. 147:267, who resampled them to S2): sandy
  light, loess/silt, clay-rich dark, organic/peaty; modulated by SOC (darkening, Stevens et al.
  2013 PLoS ONE 8:e66409), clay (Al-OH absorption at 2.2 um lowers B12) and iron oxides (steeper
  visible slope);
- moisture darkening: Lobell & Asner 2002 (SSSAJ 66:722): reflectance falls roughly exponentially
  with soil moisture, more in the SWIR than in the visible;
- water, snow, built-up, thick cloud: USGS spectral library v7 (Kokaly et al. 2017) typical
  shapes; haze as additive path radiance with an Angstrom-like wavelength dependence (lambda^-2).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

# --------------------------------------------------------------------------------------------
# endmember spectra (reflectance 0-1), band order B02 B03 B04 B05 B06 B07 B08 B8A B11 B12
# --------------------------------------------------------------------------------------------
GREEN = np.array([0.030, 0.075, 0.035, 0.100, 0.300, 0.400, 0.440, 0.450, 0.220, 0.110])
GREEN_CONIFER = np.array([0.020, 0.045, 0.025, 0.070, 0.180, 0.240, 0.260, 0.270, 0.120, 0.060])
#: fresh straw / senescent canopy (bright, cellulose absorption in B12)
DRY_FRESH = np.array([0.090, 0.130, 0.200, 0.225, 0.245, 0.260, 0.280, 0.290, 0.400, 0.290])
#: weathered grey residue / leaf litter (darker, weaker cellulose feature)
DRY_OLD = np.array([0.065, 0.090, 0.125, 0.140, 0.152, 0.162, 0.172, 0.178, 0.250, 0.185])
#: deciduous forest in leaf-off state (stems, branches, litter, evergreen understorey)
WOOD = np.array([0.040, 0.060, 0.065, 0.095, 0.150, 0.190, 0.220, 0.230, 0.230, 0.140])
WATER = np.array([0.055, 0.060, 0.040, 0.030, 0.018, 0.014, 0.011, 0.010, 0.005, 0.003])
URBAN = np.array([0.095, 0.105, 0.115, 0.125, 0.135, 0.145, 0.155, 0.160, 0.190, 0.170])
SNOW = np.array([0.880, 0.870, 0.850, 0.830, 0.800, 0.780, 0.740, 0.720, 0.110, 0.090])
CLOUD = np.array([0.470, 0.460, 0.460, 0.460, 0.465, 0.470, 0.470, 0.470, 0.400, 0.290])
CIRRUS = np.array([0.120, 0.115, 0.110, 0.110, 0.110, 0.110, 0.110, 0.110, 0.100, 0.080])

SOIL_TYPES: dict[int, str] = {1: "sandy (light)", 2: "loess (silty)", 3: "clay-rich (dark)", 4: "organic (peaty)"}
#: dry-soil spectra of the soil types at their mean properties
SOIL_BASE = {
    1: np.array([0.100, 0.140, 0.190, 0.220, 0.240, 0.260, 0.280, 0.290, 0.365, 0.330]),
    2: np.array([0.080, 0.112, 0.160, 0.190, 0.208, 0.226, 0.245, 0.255, 0.330, 0.282]),
    3: np.array([0.058, 0.078, 0.112, 0.130, 0.143, 0.155, 0.167, 0.173, 0.255, 0.205]),
    4: np.array([0.036, 0.046, 0.064, 0.076, 0.085, 0.093, 0.101, 0.106, 0.160, 0.130]),
}
#: mean (sd) of soil properties per type: SOC g/kg, clay %, pH, free iron g/kg
SOIL_PROPS = {
    1: dict(soc=(9.0, 3.0), clay=(6.0, 2.5), ph=(5.4, 0.4), fe=(8.0, 3.0)),
    2: dict(soc=(14.0, 4.0), clay=(17.0, 4.0), ph=(6.6, 0.4), fe=(15.0, 4.0)),
    3: dict(soc=(24.0, 6.0), clay=(38.0, 7.0), ph=(7.2, 0.4), fe=(25.0, 6.0)),
    4: dict(soc=(90.0, 25.0), clay=(12.0, 5.0), ph=(5.0, 0.5), fe=(10.0, 4.0)),
}
#: fraction of reflectance lost at full moisture per band (more in the SWIR)
MOIST_LOSS = np.array([0.38, 0.38, 0.39, 0.40, 0.41, 0.42, 0.43, 0.44, 0.58, 0.62])
#: shadow darkening per band at full shadow (diffuse sky light keeps the blue brighter)
SHADOW_LOSS = np.array([0.55, 0.62, 0.67, 0.70, 0.72, 0.73, 0.74, 0.74, 0.78, 0.78])
WAVE = np.array([0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 1.610, 2.190])
HAZE_SHAPE = (WAVE / 0.490) ** -2.0

#: Spectral sets of ``simulate(spectra=...)``: ``"v1"`` (the constants above, the default) and
#: ``"field"`` (residue, soil SWIR and moisture re-fitted to the NBR2 / PV+IR2 distributions of
#: 3937 field sites with measured cover; SPEC "Realism targets", docs/simulator.md):
#:
#: - residue: deeper cellulose/lignin absorption in B12 (Daughtry 2001; Nagler et al. 2000 give
#:   cellulose absorption index CAI 2-6 for residue vs ~0 for soil), NBR2 0.22 (fresh straw) and
#:   0.18 (weathered) instead of 0.16 / 0.15: the field sites' dry-vegetation NBR2 median is 0.206;
#: - soils: flatter SWIR for the light soils (NBR2 of dry sandy 0.040, loess 0.060), the
#:   clay-rich type keeps its 2.2 um Al-OH absorption (0.105) and clay lowers B12 a little more
#:   per % clay; field sites' bare-soil NBR2 p5 / p50 / p95 = 0.035 / 0.075 / 0.134;
#: - moisture: liquid water absorbs more at 2.2 um than at 1.6 um (Lobell & Asner 2002), so the
#:   B12 loss at full moisture exceeds the B11 loss (0.66 vs 0.56): moist soil has higher NBR2.
SPECTRA = ("v1", "field")


def endmembers(spectra: str = "v1") -> dict:
    """Endmember spectra of a spectral set (``"v1"`` or ``"field"``, see :data:`SPECTRA`).

    Returns a dict with ``dry_fresh``, ``dry_old`` (reflectance 0-1, 10 bands), ``soil_base``
    {soil type: spectrum}, ``moist_loss`` (fraction lost at full moisture per band) and
    ``clay_b12`` / ``clay_b11`` (relative B12 / B11 loss per % clay above the type's mean).
    """
    if spectra == "v1":
        return {"dry_fresh": DRY_FRESH, "dry_old": DRY_OLD, "soil_base": SOIL_BASE, "moist_loss": MOIST_LOSS,
                "green": GREEN, "clay_b12": 0.0035, "clay_b11": 0.0010}
    if spectra != "field":
        raise ValueError(f"spectra: expected one of {SPECTRA}, got {spectra!r}")
    fresh = DRY_FRESH.copy()
    fresh[9] = fresh[8] * (1 - 0.25) / (1 + 0.25)
    old = DRY_OLD.copy()
    old[9] = old[8] * (1 - 0.20) / (1 + 0.20)
    green = GREEN.copy()
    green[9] = 0.090
    soil = {t: v.copy() for t, v in SOIL_BASE.items()}
    for t, nbr2 in ((1, 0.025), (2, 0.045), (3, 0.095), (4, 0.065)):
        v = soil[t]
        # flatter red -> NIR slope (NDVI of the dry soil 0.12; red-edge bands scaled alike)
        b8 = v[2] * (1 + 0.12) / (1 - 0.12)
        v[3:8] = v[2] + (v[3:8] - v[2]) * (b8 - v[2]) / (v[6] - v[2])
        v[9] = v[8] * (1 - nbr2) / (1 + nbr2)
    moist = MOIST_LOSS.copy()
    moist[8], moist[9] = 0.57, 0.63
    return {"dry_fresh": fresh, "dry_old": old, "soil_base": soil, "moist_loss": moist, "green": green,
            "clay_b12": 0.0045, "clay_b11": 0.0010}


LC_CROP, LC_GRASS, LC_FOREST, LC_BUILT, LC_WATER = 1, 2, 3, 4, 5


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field with correlation length ~scale_px (periodic)."""
    from scipy import fft as sfft

    ny, nx = shape
    noise = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(ny).astype("float32")[:, None]
    fx = np.fft.rfftfreq(nx).astype("float32")[None, :]
    filt = np.exp(np.float32(-2.0 * (math.pi * scale_px) ** 2) * (fx * fx + fy * fy))
    f = sfft.irfft2(sfft.rfft2(noise) * filt, s=shape)
    f -= f.mean()
    sd = f.std()
    return f / sd if sd > 0 else f


# --------------------------------------------------------------------------------------------
# landscape
# --------------------------------------------------------------------------------------------
def landscape(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Land cover, field ids and field types on an n x n 20 m grid.

    Returns a dict with ``landcover`` (uint8 codes 1-5), ``field_id`` (int32, 0 = no field),
    ``conifer`` (bool, forest type), ``edge`` (bool, pixel touches another parcel).
    """
    yy, xx = np.mgrid[0:n, 0:n].astype("float64")
    # fields: Voronoi parcels, anisotropic (strip-like) in blocks of differing orientation
    mean_px = 190.0  # ~7.6 ha mean parcel (20 m pixels = 0.04 ha)
    n_seeds = max(4, int(n * n / mean_px))
    pts = rng.uniform(0, n, size=(n_seeds, 2))
    stretch = rng.uniform(1.0, 3.0, size=n_seeds)
    angle = rng.uniform(0, math.pi, size=n_seeds)
    # orientation field: neighbouring seeds share stretch direction -> strip farmland
    block = smooth_field(rng, (n, n), n / 5)
    yi, xi = pts[:, 0].astype(int), pts[:, 1].astype(int)
    angle = (block[yi, xi] * 0.9 + angle * 0.05) % math.pi
    tree = cKDTree(pts)
    coords = np.column_stack([yy.ravel(), xx.ravel()])
    k = min(8, n_seeds)
    d, idx = tree.query(coords, k=k)
    # anisotropic distance: re-rank the k nearest with the seed's own metric
    dy = coords[:, None, 0] - pts[idx, 0]
    dx = coords[:, None, 1] - pts[idx, 1]
    ca, sa = np.cos(angle[idx]), np.sin(angle[idx])
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    s = stretch[idx]
    dist = (u / s) ** 2 + (v * s) ** 2
    parcel = idx[np.arange(idx.shape[0]), np.argmin(dist, axis=1)].reshape(n, n) + 1

    lc = np.where(rng.uniform(size=n_seeds + 1)[parcel] < 0.74, LC_CROP, LC_GRASS).astype("uint8")
    # grassland along the river valley (wetter ground)
    # forest: large smooth patches
    forest_f = smooth_field(rng, (n, n), n / 10) + 0.35 * smooth_field(rng, (n, n), n / 40)
    forest = forest_f > np.quantile(forest_f, 0.83)
    conifer = smooth_field(rng, (n, n), n / 12) > 0.0
    # water: a meandering river + a lake
    t = np.linspace(0, 1, n)
    phase = rng.uniform(0, 2 * math.pi)
    cx = n * (0.3 + 0.4 * rng.uniform()) + n * 0.08 * np.sin(2 * math.pi * 2.3 * t + phase)
    cx = cx + n * 0.02 * smooth_field(rng, (1, n), 6)[0]
    width = max(1.0, n / 110)
    river = np.abs(xx - cx[:, None]) < width
    lake_f = smooth_field(rng, (n, n), n / 14)
    ly, lx = rng.uniform(0.15, 0.85, 2) * n
    r2 = ((yy - ly) ** 2 + (xx - lx) ** 2) / (n * 0.07) ** 2
    lake = (r2 + 0.35 * lake_f) < 1.0
    water = river | lake
    valley = (np.abs(xx - cx[:, None]) < width * 6) & ~water
    # built-up: villages (noisy discs) and a road
    built = np.zeros((n, n), bool)
    vf = smooth_field(rng, (n, n), 4)
    for _ in range(max(1, n // 110)):
        vy, vx = rng.uniform(0.1, 0.9, 2) * n
        rad = rng.uniform(0.035, 0.06) * n + 2
        built |= ((yy - vy) ** 2 + (xx - vx) ** 2) / rad**2 + 0.3 * vf < 1.0
    ry = rng.uniform(0.2, 0.8) * n
    road_y = ry + (xx - n / 2) * rng.uniform(-0.3, 0.3)
    road = np.abs(yy - road_y) < 0.6
    # parcels in the river valley (seed point near the river) are mostly grassland
    sy = np.clip(pts[:, 0].astype(int), 0, n - 1)
    sx = np.clip(pts[:, 1].astype(int), 0, n - 1)
    in_valley = np.zeros(n_seeds + 1, bool)
    in_valley[1:] = valley[sy, sx] & (rng.uniform(size=n_seeds) < 0.7)
    lc[in_valley[parcel]] = LC_GRASS
    lc[forest] = LC_FOREST
    lc[built | road] = LC_BUILT
    lc[water] = LC_WATER
    # hedges / tracks / margins between parcels: grass strips on part of the boundaries
    b = np.zeros((n, n), bool)
    b[:, 1:] |= parcel[:, 1:] != parcel[:, :-1]
    b[1:, :] |= parcel[1:, :] != parcel[:-1, :]
    margin = b & (smooth_field(rng, (n, n), 3) > 0.6) & (lc == LC_CROP)
    lc[margin] = LC_GRASS
    field_id = np.where((lc == LC_CROP) | (lc == LC_GRASS), parcel, 0).astype("int32")
    field_id[margin] = 0
    # relabel ids densely 1..F
    uniq, inv = np.unique(field_id, return_inverse=True)
    field_id = inv.reshape(n, n).astype("int32")
    if uniq[0] != 0:
        field_id += 1
    # field class = majority class (crop or grass) of its pixels
    # edges: pixel differs from a 4-neighbour in field id or class
    key = field_id.astype("int64") * 8 + lc
    edge = np.zeros((n, n), bool)
    edge[:, 1:] |= key[:, 1:] != key[:, :-1]
    edge[:, :-1] |= key[:, 1:] != key[:, :-1]
    edge[1:, :] |= key[1:, :] != key[:-1, :]
    edge[:-1, :] |= key[1:, :] != key[:-1, :]
    return {"landcover": lc, "field_id": field_id, "conifer": conifer & (lc == LC_FOREST), "edge": edge}


def soils(rng: np.random.Generator, n: int, spectra: str = "v1") -> dict[str, np.ndarray]:
    """Soil types, properties (SOC g/kg, clay %, pH, iron g/kg) and dry-soil spectra per pixel
    (``spectra``: the spectral set, :func:`endmembers`; it draws no random numbers)."""
    em = endmembers(spectra)
    f1 = smooth_field(rng, (n, n), n / 6)
    f2 = smooth_field(rng, (n, n), n / 5)
    st = np.full((n, n), 2, "uint8")
    st[f1 < -0.55] = 1
    st[f1 > 0.75] = 3
    st[(f2 > 1.1) & (f1 > -0.2)] = 4
    props = {}
    for name in ("soc", "clay", "ph", "fe"):
        z = 0.8 * smooth_field(rng, (n, n), n / 12) + 0.6 * smooth_field(rng, (n, n), 3)
        z /= np.hypot(0.8, 0.6)
        mean = np.zeros((n, n))
        sd = np.zeros((n, n))
        for t, p in SOIL_PROPS.items():
            mean[st == t], sd[st == t] = p[name]
        # smooth transitions between soil types
        mean = ndimage.uniform_filter(mean, 5, mode="wrap")
        sd = ndimage.uniform_filter(sd, 5, mode="wrap")
        props[name] = mean + sd * z
    props["soc"] = np.clip(props["soc"], 3.0, 300.0)
    props["clay"] = np.clip(props["clay"], 1.0, 70.0)
    props["ph"] = np.clip(props["ph"], 3.8, 8.2)
    props["fe"] = np.clip(props["fe"], 1.0, 60.0)
    base = np.zeros((10, n, n))
    for t, spec in em["soil_base"].items():
        base[:, st == t] = spec[:, None]
    base = np.stack([ndimage.uniform_filter(b, 3, mode="nearest") for b in base])
    soc_ref = np.zeros((n, n))
    clay_ref = np.zeros((n, n))
    fe_ref = np.zeros((n, n))
    for t, p in SOIL_PROPS.items():
        soc_ref[st == t], clay_ref[st == t], fe_ref[st == t] = p["soc"][0], p["clay"][0], p["fe"][0]
    # SOC darkens (log-linear), clay lowers B12 (Al-OH 2.2 um), iron steepens the visible slope
    dark = np.exp(-0.30 * (np.log(props["soc"]) - np.log(soc_ref)))
    refl = base * dark
    refl[9] *= 1.0 - em["clay_b12"] * (props["clay"] - clay_ref)
    refl[8] *= 1.0 - em["clay_b11"] * (props["clay"] - clay_ref)
    dfe = (props["fe"] - fe_ref) / 10.0
    for i, k in ((0, -0.06), (1, -0.04), (2, 0.03), (3, 0.02)):
        refl[i] *= 1.0 + k * dfe
    refl = np.clip(refl, 0.01, 0.6)
    return {"soil_type": st, "soil_reflectance": refl.astype("float32"), **props}


# --------------------------------------------------------------------------------------------
# crop calendars: green (g) and dry (d) cover fractions per field and date
# --------------------------------------------------------------------------------------------
#: crop: (sow doy rel. to harvest year, peak doy, senescence start doy, harvest doy, g max,
#:        residue left at harvest, winter cover)
CROPS = {
    "winter wheat": (-355 + 290, 150, 175, 210, 0.93, 0.80, 0.35),
    "winter barley": (-365 + 270, 140, 165, 190, 0.90, 0.75, 0.40),
    "rapeseed": (-365 + 237, 120, 170, 200, 0.92, 0.70, 0.55),
    "spring barley": (95, 165, 190, 220, 0.88, 0.70, 0.0),
    "maize": (120, 215, 245, 280, 0.95, 0.45, 0.0),
    "sugar beet": (100, 210, 265, 295, 0.92, 0.08, 0.0),
}
ROTATIONS = [
    ["winter wheat", "winter barley", "rapeseed"],
    ["winter wheat", "maize", "sugar beet"],
    ["maize", "maize", "winter wheat"],
    ["sugar beet", "winter wheat", "spring barley"],
    ["rapeseed", "winter wheat", "spring barley", "maize"],
    ["winter wheat", "spring barley", "maize"],
]


def _doy(year: int, doy: float) -> float:
    return dt.date(year, 1, 1).toordinal() + doy - 1


def field_calendars(rng: np.random.Generator, n_fields: int, field_class: np.ndarray, days: np.ndarray,
                    year0: int, year1: int, events: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Green and dry cover fractions [F+1, T] for fields 0..F at ordinal days ``days``.

    Field 0 (no field) gets zeros; the caller fills non-field pixels separately. ``events``, if
    given, receives ``{field: [(kind, ordinal day), ...]}`` of the crop calendar (sowing,
    harvest, tillage, cover_incorporation); recording them draws no random numbers.
    """
    T = len(days)
    G = np.zeros((n_fields + 1, T))
    D = np.zeros((n_fields + 1, T))
    for f in range(1, n_fields + 1):
        if field_class[f] == LC_GRASS:
            G[f], D[f] = _grass_curve(rng, days, year0, year1)
        else:
            G[f], D[f] = _crop_curve(rng, days, year0, year1, None if events is None else events.setdefault(f, []))
    return G, D


def _crop_curve(rng, days, year0, year1, ev=None):
    ev = [] if ev is None else ev
    rot = ROTATIONS[rng.integers(len(ROTATIONS))]
    k0 = rng.integers(len(rot))
    notill = rng.uniform() < 0.12
    cover_pref = rng.uniform() < 0.5
    kn: list[tuple[float, float, float]] = []  # (day, g, d)
    years = list(range(year0 - 1, year1 + 2))
    seasons = []
    for i, y in enumerate(years):
        crop = rot[(k0 + i) % len(rot)]
        sow, peak, sen, harv, gmax, resid, wint = CROPS[crop]
        j = lambda s: rng.normal(0, s)  # noqa: E731
        t_sow = _doy(y, sow + j(8))
        t_peak = _doy(y, peak + j(7))
        t_sen = _doy(y, sen + j(6))
        t_harv = _doy(y, harv + j(8))
        seasons.append((crop, t_sow, t_peak, t_sen, t_harv, gmax * rng.uniform(0.9, 1.05), resid, wint))
    for i, (_crop, t_sow, t_peak, t_sen, t_harv, gmax, resid, wint) in enumerate(seasons):
        if i > 0 and t_sow <= kn[-1][0] + 2:
            t_sow = kn[-1][0] + 3
        # sowing: (almost) bare seedbed unless direct drilled into residue
        d_sow = kn[-1][2] if (notill and kn) else rng.uniform(0.0, 0.08)
        kn.append((t_sow, 0.0, d_sow))
        ev.append(("sowing", float(t_sow)))
        t_em = t_sow + rng.uniform(12, 22)
        kn.append((t_em, 0.04, d_sow * 0.9))
        if wint > 0:  # winter crop: slow autumn growth, winter plateau
            t_w = max(t_em + 25, _doy(dt.date.fromordinal(int(t_sow)).year, 335))
            kn.append((t_w, wint * rng.uniform(0.7, 1.2), d_sow * 0.5))
            kn.append((t_w + 90, wint * rng.uniform(0.8, 1.3), d_sow * 0.3))
        t_peak = max(t_peak, kn[-1][0] + 20)
        kn.append((t_peak, gmax, 0.02))
        t_sen = max(t_sen, t_peak + 10)
        kn.append((t_sen, gmax * 0.95, 0.04))
        t_harv = max(t_harv, t_sen + 15)
        kn.append((t_harv - 1, 0.08, min(0.9, gmax * 0.9)))  # ripe, dry standing crop
        d_res = resid * rng.uniform(0.8, 1.15)
        kn.append((t_harv, 0.0, d_res))
        ev.append(("harvest", float(t_harv)))
        # stubble, volunteers, tillage, optional cover crop until the next sowing
        nxt = seasons[i + 1][1] if i + 1 < len(seasons) else t_harv + 200
        gap = nxt - t_harv
        if notill:
            kn.append((t_harv + min(gap - 3, 40), rng.uniform(0.05, 0.2), d_res * 0.8))
            continue
        t_till = t_harv + min(max(3.0, rng.exponential(18.0)), max(3.0, gap - 5))
        kn.append((t_till - 1, rng.uniform(0.0, 0.12), d_res * rng.uniform(0.6, 0.9)))
        d_after = rng.uniform(0.0, 0.12)
        kn.append((t_till, 0.0, d_after))
        ev.append(("tillage", float(t_till)))
        if gap > 120 and cover_pref:  # cover crop before a spring crop, frost-killed in winter
            t_cs = t_till + rng.uniform(3, 10)
            kn.append((t_cs, 0.0, d_after))
            kn.append((t_cs + 50, rng.uniform(0.45, 0.8), 0.05))
            t_kill = max(t_cs + 70, _doy(dt.date.fromordinal(int(t_harv)).year, 350 + rng.normal(0, 15)))
            kn.append((t_kill, 0.35, 0.3))
            kn.append((t_kill + 20, 0.05, 0.6))
            t_inc = nxt - rng.uniform(5, 30)
            if t_inc > t_kill + 25:
                kn.append((t_inc - 1, 0.03, 0.45))
                kn.append((t_inc, 0.0, rng.uniform(0.0, 0.1)))
                ev.append(("cover_incorporation", float(t_inc)))
        elif gap > 150 and rng.uniform() < 0.5:  # winter furrow, weeds in early spring
            kn.append((nxt - 25, rng.uniform(0.05, 0.2), 0.03))
            kn.append((nxt - 3, 0.0, 0.02))
    t = np.array([k[0] for k in kn])
    g = np.array([k[1] for k in kn])
    d = np.array([k[2] for k in kn])
    order = np.argsort(t, kind="stable")
    t, g, d = t[order], g[order], d[order]
    t = t + np.arange(len(t)) * 1e-6
    gi = np.interp(days, t, g)
    di = np.interp(days, t, d)
    s = gi + di
    over = s > 1
    gi[over] /= s[over]
    di[over] /= s[over]
    return gi, di


def _grass_curve(rng, days, year0, year1):
    doy = np.array([dt.date.fromordinal(int(x)).timetuple().tm_yday for x in days], float)
    season = 0.5 + 0.5 * np.sin(2 * math.pi * (doy - 105) / 365.0)
    g = 0.55 + 0.35 * season
    d = 0.35 - 0.25 * season
    for y in range(year0, year1 + 1):
        n_cut = rng.integers(2, 5)
        cuts = np.sort(rng.uniform(140, 280, n_cut))
        for c in cuts:
            t0 = _doy(y, c)
            w = (days - t0) / 25.0
            m = (w >= 0) & (w < 1)
            g[m] -= 0.45 * (1 - w[m])
            d[m] += 0.30 * (1 - w[m])
        if rng.uniform() < 0.5:  # dry summer
            t0 = _doy(y, rng.uniform(190, 220))
            w = np.exp(-(((days - t0) / 18.0) ** 2))
            g -= 0.35 * w
            d += 0.40 * w
    g = np.clip(g, 0.2, 0.95)
    d = np.clip(d, 0.02, 0.7)
    s = g + d
    over = s > 0.97
    g[over] *= 0.97 / s[over]
    d[over] *= 0.97 / s[over]
    return g, d


def plough_grassland(rng: np.random.Generator, G: np.ndarray, D: np.ndarray, field_class: np.ndarray,
                     days: np.ndarray, year0: int, year1: int, fraction: float) -> dict[int, float]:
    """Plough a share ``fraction`` of the grassland fields once (in place on ``G``, ``D``).

    A ploughed field is bare (green 0, dry 0.02) for 25-45 days from a day in spring (day of
    year 75-120) or late summer (215-255) of a random year, then the resown grass grows back
    to its own curve over 45 days. Returns ``{field: ordinal day of ploughing}``.
    """
    grass = np.flatnonzero(field_class == LC_GRASS)
    grass = grass[grass > 0]
    k = int(round(fraction * len(grass)))
    out: dict[int, float] = {}
    if k == 0:
        return out
    for f in rng.choice(grass, size=k, replace=False):
        y = int(rng.integers(year0, year1 + 1))
        doy = rng.uniform(75, 120) if rng.uniform() < 0.5 else rng.uniform(215, 255)
        t0 = _doy(y, doy)
        length = rng.uniform(25, 45)
        bare = (days >= t0) & (days < t0 + length)
        w = np.clip((days - (t0 + length)) / 45.0, 0.0, 1.0)
        regrow = (days >= t0 + length) & (w < 1)
        G[f, bare] = 0.0
        D[f, bare] = 0.02
        G[f, regrow] *= w[regrow]
        D[f, regrow] = 0.02 + (D[f, regrow] - 0.02) * w[regrow]
        out[int(f)] = float(t0)
    return out


def moisture(rng: np.random.Generator, day0: int, day1: int) -> np.ndarray:
    """Topsoil moisture index 0-1 per day from day0 to day1 (rain events, exponential drying)."""
    n = day1 - day0 + 40
    m = np.zeros(n)
    cur = 0.3
    for i in range(n):
        doy = dt.date.fromordinal(day0 - 40 + i).timetuple().tm_yday
        p_rain = 0.28 + 0.1 * math.cos(2 * math.pi * (doy - 15) / 365.0)
        if rng.uniform() < p_rain:
            cur = min(1.0, cur + rng.exponential(0.35))
        k = 0.12 + 0.18 * (0.5 - 0.5 * math.cos(2 * math.pi * (doy - 15) / 365.0))  # faster in summer
        cur *= math.exp(-k)
        m[i] = cur
    return m[40:]


# --------------------------------------------------------------------------------------------
# sun
# --------------------------------------------------------------------------------------------
def sun_position(when: dt.datetime, lat: float, lon: float) -> tuple[float, float]:
    """Sun elevation and azimuth (degrees, azimuth clockwise from north) at a UTC time (NOAA)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365.0 * (doy - 1 + (hour - 12) / 24)
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqt + 4 * lon
    ha = math.radians(tst / 4 - 180)
    phi = math.radians(lat)
    cosz = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cosz)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))) + 180
    return 90 - math.degrees(zen), az % 360
