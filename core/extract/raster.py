"""Rasters as model input: band mapping, the model's pixel grid, one stretch per run, windowed reads.

The model grid covers the requested extent in the raster's own CRS with pixels of the model's ground
sample distance (in metres, also for geographic CRSs), so results map straight back to the layer.
A GDAL warped VRT resamples onto that grid and carries an alpha band for validity: nodata values,
alpha and mask bands and everything outside the raster all read as invalid. A raster that declares none of
them (a gdalbuildvrt or gdal_merge mosaic, a scene with a black collar) has its pixels that are 0 in every band
read as invalid too, when it has several bands (no colour image is black in all of them; a single band may be a
mask or a dark shadow): otherwise the blank between scenes drags the stretch down and the model sees black land.
"""

from __future__ import annotations

import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.sax.saxutils import unescape

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from ..public_url import public_text
from .modelcard import Normalisation

WORLDVIEW_8_BAND_RGB = (5, 3, 2)  # Red, Green, Blue of WorldView-2/3 8-band imagery (1-based)
STRETCH_SAMPLE_SIZE = 1024  # the stretch is measured on a decimated read at most this many pixels across
# GDAL keeps written and read blocks in a cache of 5 % of the RAM by default: on a big raster that cache, not the
# engine, would set the peak memory. Bounded while a run lasts (rasterio.Env), restored after.
GDAL_CACHE_BYTES = 256 * 2**20
# Tile services (GDAL's WMS and WMTS drivers) are read at the zoom nearest the model grid; GDAL 3.6 does not retry
# their failed tiles, so a read that a 429/5xx or a timeout broke is read again (the tiles that arrived come from
# GDAL's disk cache), waiting SERVICE_RETRY_DELAY_S, doubled on each failure of the same tile, up to
# SERVICE_RETRIES failures of one tile.
TILE_SERVICE_DRIVERS = ("WMS", "WMTS")
SERVICE_RETRIES = 4
SERVICE_RETRY_DELAY_S = 0.5
# A tile service is read at the coarsest zoom at least this much finer than the model's pixels (else its finest):
# resampled down by a good margin, as a file is, never blurred by a near-1:1 interpolation. Measured on the Vegas
# tile at 0.5 m (ground): zoom 18 (0.48 m) gave F1 0.51 against the source file, zoom 19 (0.24 m) 0.91.
SERVICE_LEVEL_MARGIN = 1.5
SERVICE_MAX_READ_RETRIES = 500  # a read's failures in all, whichever tiles: past it the service is failing


class BandMappingError(ValueError):
    """The chosen bands do not fit the raster or the model."""


class RasterError(ValueError):
    """The raster or the extent cannot be used; the message says why."""


class NoDataError(RasterError):
    """The extent holds no pixel with data: a run finds nothing there (a fetched tile may be all blank)."""

    @classmethod
    def of(cls, info: RasterInfo) -> NoDataError:
        blank = "nodata or 0 in every band" if info.zero_is_nodata else "nodata"
        return cls(f"The raster holds no data in the extent (every pixel is {blank}): nothing can be found there, "
                   "the outputs are empty.")


def corner_bounds(transform, width: int, height: int) -> tuple:
    """(left, bottom, right, top) of a width x height grid, from its first and last corners (as
    ``transform * (0, 0)`` and ``transform * (width, height)``, which newer affine releases deprecate: a warning
    on the user's console)."""
    a, b, c, d, e, f = transform[:6]
    xs = (c, a * width + b * height + c)
    ys = (f, d * width + e * height + f)
    return min(xs), min(ys), max(xs), max(ys)

@dataclass(frozen=True)
class RasterInfo:
    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str
    is_geographic: bool
    transform: Affine
    colorinterp: tuple  # ColorInterp names, lowercase
    descriptions: tuple  # band descriptions, "" where none
    zero_is_nodata: bool = False  # several bands, no nodata value, alpha or mask: all-zero pixels are the blank
    driver: str = ""  # GDAL's driver short name ("GTiff", "WMS", ...)
    overviews: tuple = ()  # a tile service's overview decimation factors (2, 4, ...): its coarser zoom levels

    @property
    def is_tile_service(self) -> bool:
        return self.driver in TILE_SERVICE_DRIVERS

    @property
    def bounds(self) -> tuple:
        return corner_bounds(self.transform, self.width, self.height)

    @property
    def alpha_band(self) -> int | None:
        return self.colorinterp.index("alpha") + 1 if "alpha" in self.colorinterp else None


def describe(path) -> RasterInfo:
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise RasterError(f"{path} has no coordinate reference system: assign one in QGIS first.")
            if src.transform.b or src.transform.d:
                raise RasterError(f"{path} is rotated; warp it north-up first (Raster > Projections > Warp).")
            return RasterInfo(
                path=str(path),
                width=src.width,
                height=src.height,
                count=src.count,
                dtype=src.dtypes[0],
                crs_wkt=src.crs.to_wkt(),
                is_geographic=bool(src.crs.is_geographic),
                transform=src.transform,
                colorinterp=tuple(c.name.lower() for c in src.colorinterp),
                descriptions=tuple((d or "").strip().lower() for d in src.descriptions),
                zero_is_nodata=src.count > 1 and not _declares_validity(src),
                driver=src.driver,
                overviews=tuple(src.overviews(1)) if src.driver in TILE_SERVICE_DRIVERS else (),
            )
    except rasterio.RasterioIOError as error:
        raise RasterError(f"Cannot read {path}: {error}") from error


def _declares_validity(src) -> bool:
    """Whether the raster says itself which pixels hold data: a nodata value, an alpha band or a mask."""
    if any(v is not None for v in src.nodatavals) or "alpha" in [c.name.lower() for c in src.colorinterp]:
        return True
    return any(flags != [MaskFlags.all_valid] for flags in src.mask_flag_enums)


def default_bands(info: RasterInfo, model_bands) -> tuple:
    """1-based raster bands for the model's input channels, from descriptions, colour interpretation and count."""
    wanted = [name.lower() for name in model_bands]
    data_bands = [b for b in range(1, info.count + 1) if b != info.alpha_band]
    if len(data_bands) == 1:
        return (data_bands[0],) * len(wanted)  # panchromatic: one band to every input
    for labels in (info.descriptions, info.colorinterp):
        found = [labels.index(name) + 1 if name in labels else None for name in wanted]
        if all(found):
            return tuple(found)
    if wanted == ["red", "green", "blue"] and len(data_bands) == 8:
        return WORLDVIEW_8_BAND_RGB
    if len(data_bands) >= len(wanted):
        return tuple(data_bands[: len(wanted)])
    raise BandMappingError(
        f"The raster has {len(data_bands)} data band(s) but the model needs {len(wanted)} "
        f"({', '.join(model_bands)}); choose the bands to use."
    )


def check_bands(bands, info: RasterInfo, model_bands) -> tuple:
    bands = tuple(int(b) for b in bands)
    if len(bands) == 1 and len(model_bands) > 1:
        bands = bands * len(model_bands)  # one band to every input, as for panchromatic imagery
    if len(bands) != len(model_bands):
        raise BandMappingError(
            f"{len(bands)} band(s) were chosen ({', '.join(map(str, bands))}) but the model takes "
            f"{len(model_bands)} ({', '.join(model_bands)}); choose one band or {len(model_bands)}."
        )
    outside = [b for b in bands if not 1 <= b <= info.count]
    if outside:
        raise BandMappingError(
            f"Band(s) {', '.join(map(str, outside))} do not exist: the raster has bands 1 to {info.count}."
        )
    return bands


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid in the raster's CRS."""

    transform: Affine
    width: int
    height: int
    pixel_area_m2: float  # ground area of one pixel

    @property
    def pixel_size(self) -> tuple:
        return abs(self.transform.a), abs(self.transform.e)


def metres_per_degree(latitude: float) -> tuple:
    """Metres per degree of longitude and latitude on the WGS84 ellipsoid at ``latitude``."""
    phi = math.radians(latitude)
    a, e2 = 6378137.0, 0.00669437999014
    w = 1 - e2 * math.sin(phi) ** 2
    per_lat = math.pi * a * (1 - e2) / (180 * w**1.5)
    per_lon = math.pi * a * math.cos(phi) / (180 * math.sqrt(w))
    return per_lon, per_lat


# A projection whose units differ from ground metres by more than this at the extent (Web Mercator: by 1/cos of
# the latitude) is measured there; below it (UTM's 0.9996 and the like) its units are taken as they are.
SCALE_TOLERANCE = 0.01


def _metres_per_unit(info: RasterInfo, bounds) -> tuple:
    """Ground metres per CRS unit along x and y at the centre of ``bounds``."""
    left, bottom, right, top = bounds
    if info.is_geographic:
        return metres_per_degree((bottom + top) / 2)
    crs = rasterio.crs.CRS.from_wkt(info.crs_wkt)
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    ground = _ground_metres_per_unit(crs, bounds)
    if ground and any(abs(g / factor - 1) > SCALE_TOLERANCE for g in ground):
        return ground
    return factor, factor


def _ground_metres_per_unit(crs, bounds) -> tuple | None:
    """Metres on the ground per unit of ``crs`` along x and y at the centre of ``bounds`` (through its
    longitudes and latitudes), or None where the CRS cannot say."""
    from rasterio.warp import transform

    left, bottom, right, top = bounds
    x, y = (left + right) / 2, (bottom + top) / 2
    h = max(right - left, top - bottom, 1e-9) / 1000  # central differences: steps either side of the centre
    try:
        lons, lats = transform(crs, "EPSG:4326", [x - h, x + h, x, x], [y, y, y - h, y + h])
    except Exception:  # noqa: BLE001 - a CRS PROJ cannot take to longitudes and latitudes: its units stand
        return None
    per_lon, per_lat = metres_per_degree(sum(lats) / 4)
    along = [math.hypot((lons[i + 1] - lons[i]) * per_lon, (lats[i + 1] - lats[i]) * per_lat) / (2 * h)
             for i in (0, 2)]
    return tuple(along) if all(math.isfinite(a) and a > 0 for a in along) else None


def model_grid(info: RasterInfo, extent, gsd_m: float | None) -> Grid:
    """The grid the model runs on: ``extent`` (xmin, ymin, xmax, ymax in the raster's CRS, or None for all)
    clipped to the raster, at ``gsd_m`` metres per pixel (None: the raster's resolution)."""
    left, bottom, right, top = info.bounds
    if extent is not None:
        xmin, ymin, xmax, ymax = extent
        left, bottom, right, top = max(left, xmin), max(bottom, ymin), min(right, xmax), min(top, ymax)
        if right <= left or top <= bottom:
            raise RasterError(
                f"The extent ({xmin:g}, {ymin:g}) - ({xmax:g}, {ymax:g}) does not overlap the raster, which covers "
                f"({info.bounds[0]:g}, {info.bounds[1]:g}) - ({info.bounds[2]:g}, {info.bounds[3]:g}) in its CRS."
            )
    per_x, per_y = _metres_per_unit(info, (left, bottom, right, top))
    size_x, size_y = abs(info.transform.a), abs(info.transform.e)
    pixel_area_m2 = size_x * per_x * size_y * per_y
    if gsd_m:
        # The grid is the raster's pixels scaled by a ratio kept to six significant digits: the same pixels
        # georeferenced in another CRS (whose geotransform carries other rounding) resample identically.
        size_x *= _significant(gsd_m / (size_x * per_x))
        size_y *= _significant(gsd_m / (size_y * per_y))
        pixel_area_m2 = gsd_m * gsd_m
    width = max(1, int(math.ceil((right - left) / size_x - 1e-6)))
    height = max(1, int(math.ceil((top - bottom) / size_y - 1e-6)))
    return Grid(Affine(size_x, 0, left, 0, -size_y, top), width, height, pixel_area_m2)


def _significant(ratio: float, digits: int = 6) -> float:
    return float(f"{ratio:.{digits}g}")


@dataclass(frozen=True)
class Stretch:
    """Per input channel: value -> (value - low) / (high - low), clipped to [0, 1], then (x - mean) / std."""

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` [..., channels, H, W] to float32 model input."""
        shape = (-1, 1, 1)
        span = np.maximum(self.high - self.low, 1e-6).reshape(shape)
        scaled = np.clip((values.astype(np.float32) - self.low.reshape(shape)) / span, 0.0, 1.0)
        return ((scaled - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32)


def measure_stretch(info: RasterInfo, bands, grid: Grid, normalisation: Normalisation) -> Stretch:
    """The run's stretch, measured once over the whole grid from a decimated read (overviews when present)."""
    n = len(bands)
    mean = np.array(normalisation.mean or (0.0,) * n, dtype=np.float32)
    std = np.array(normalisation.std or (1.0,) * n, dtype=np.float32)
    if len(mean) != n or len(std) != n:
        raise BandMappingError(f"The model card's mean/std have {len(mean)} values for {n} input bands.")
    if normalisation.stretch == "divide":
        zeros = np.zeros(n, dtype=np.float32)
        return Stretch(zeros, zeros + normalisation.divisor, mean, std)
    bounds = corner_bounds(grid.transform, grid.width, grid.height)
    with _open_source(info, grid) as src:
        window, out_shape = _stretch_sample(src, bounds)
        overview = _sample_overview(src.overviews(1), window, out_shape) if src.overviews(1) else None
    # with overviews, the sample is read from the one the engine chose, GDAL left no other (see _sample_overview)
    with _open_source(info, grid, overview) as src:
        window, out_shape = _stretch_sample(src, bounds)
        if overview == 0 and info.is_tile_service:
            # GDAL 3.10's WMS driver still reads its coarser zooms for a decimated read when opened without them
            # (OVERVIEW_LEVEL=NONE): every pixel is read instead, under 2 / SAMPLE_OVERSAMPLING times the sample's
            # size across (a zoom's overviews are 2x apart: from there on the next zoom is chosen)
            out_shape = (max(1, round(window.height)), max(1, round(window.width)))
        unique = sorted(set(bands))
        data = read_with_retries(info, lambda: src.read(unique, window=window, out_shape=(len(unique), *out_shape),
                                                        masked=True))
        if info.zero_is_nodata:
            blank = np.all(data.data == 0, axis=0)
            data = np.ma.masked_array(data.data, np.ma.getmaskarray(data) | blank[None])
    low, high = [], []
    for band in bands:
        values = data[unique.index(band)].compressed()
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values  # NaN: blank, declared or not
        if values.size == 0:
            raise NoDataError.of(info)
        lo, hi = np.percentile(values, [normalisation.low_percentile, normalisation.high_percentile])
        low.append(lo)
        high.append(hi if hi > lo else lo + 1)
    return Stretch(np.array(low, np.float32), np.array(high, np.float32), mean, std)


def _stretch_sample(src, bounds) -> tuple:
    """(window of ``bounds`` in ``src``, the shape of the decimated read: at most STRETCH_SAMPLE_SIZE across)."""
    window = from_bounds(*bounds, transform=src.transform).intersection(Window(0, 0, src.width, src.height))
    scale = max(window.width, window.height) / STRETCH_SAMPLE_SIZE
    return window, (max(1, int(window.height / max(scale, 1))), max(1, int(window.width / max(scale, 1))))


# Which overview a decimated read comes from is the engine's choice, not GDAL's: GDAL changed its rule (a 2x overview
# is read from a decimation of 1.67 on GDAL 3.6, of 1.59 on 3.10), so a tile service's stretch was sampled from zoom
# 19 on QGIS 3.22 and from zoom 18 on 3.40, one grey level apart, which moves footprints. GDAL 3.6's rule, kept: the
# coarsest overview at most this much coarser than the read asks.
SAMPLE_OVERSAMPLING = 1.2


def _sample_overview(factors, window, out_shape) -> int:
    """0: the full resolution; k: the k-th of the overviews whose decimation ``factors`` (2, 4, ...) are given."""
    decimation = min(window.width / out_shape[1], window.height / out_shape[0])
    return max((k + 1 for k, factor in enumerate(factors) if factor <= decimation * SAMPLE_OVERSAMPLING), default=0)


@contextmanager
def open_on_grid(info: RasterInfo, grid: Grid):
    """The raster resampled onto ``grid`` (bilinear), with an alpha band that marks valid pixels. A tile service
    is read at its zoom level nearest the grid's resolution."""
    with _open_source(info, grid) as src:
        own_alpha = info.alpha_band is not None
        with WarpedVRT(
            src,
            crs=src.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.bilinear,
            add_alpha=not own_alpha,
            # the blank stays out of the resampling too, so no dark rim is blended into the data along it
            **(dict(src_nodata=0, UNIFIED_SRC_NODATA="YES") if info.zero_is_nodata else {}),
            # GDAL's warper works out the resampling scale (how wide the kernel reaches when it downsamples) for
            # each chunk it warps, from that chunk's windows; GDAL 3.10's chunks follow the window read, so a tile
            # and the whole grid got other scales and values up to 6 levels apart in bands of rows (Vegas tile at
            # 0.3 m; 0 on GDAL 3.6). The grid is the raster's pixels scaled by one ratio: given, it holds everywhere.
            XSCALE=repr(_warp_scale(src.transform.a, grid.transform.a)),
            YSCALE=repr(_warp_scale(src.transform.e, grid.transform.e)),
        ) as vrt:
            yield GridReader(vrt, info.alpha_band if own_alpha else vrt.count, info)


def _warp_scale(source_pixel: float, grid_pixel: float) -> float:
    """Grid pixels per source pixel, as GDAL's warper computes it for a chunk: a downsampling within 0.05 of an
    integer factor is taken as that factor (gdalwarpoperation.cpp), so results match the scale GDAL chose itself."""
    scale = abs(source_pixel) / abs(grid_pixel)
    if scale < 1:
        factor = round(1 / scale)
        if abs(1 / scale - factor) < 0.05:
            scale = 1 / factor
    return scale


class GridReader:
    def __init__(self, vrt, alpha_band: int, info: RasterInfo | None = None):
        self._vrt = vrt
        self._alpha_band = alpha_band
        self._info = info

    def read(self, bands, row: int, col: int, height: int, width: int) -> tuple:
        """Raw values [len(bands), H, W] and validity [H, W] of a window inside the grid."""
        unique = sorted(set(bands))
        data = read_with_retries(self._info, lambda: self._vrt.read([*unique, self._alpha_band],
                                                                    window=Window(col, row, width, height)))
        values, valid = data[[unique.index(b) for b in bands]], data[-1] > 0
        if values.dtype.kind == "f":
            # a float raster may mark its blank with NaN without declaring it: NaN is never data
            finite = np.isfinite(values).all(axis=0)
            if not finite.all():
                values, valid = np.where(finite, values, 0), valid & finite
        return values, valid


# -- tile services -------------------------------------------------------------------------------------------------

def service_level(info: RasterInfo, grid: Grid) -> int:
    """The level a tile service is read at for ``grid``: 0 its finest zoom, k its k-th overview (each a zoom
    coarser): the coarsest at least SERVICE_LEVEL_MARGIN finer than the grid's pixels, else the finest. Always 0
    for a raster that is not a tile service: files are read at full resolution, as they always were."""
    if not info.is_tile_service or not info.overviews:
        return 0
    wanted = max(grid.pixel_size) / max(abs(info.transform.a), abs(info.transform.e))
    factors = (1, *info.overviews)
    return max(k for k in range(len(factors)) if k == 0 or factors[k] * SERVICE_LEVEL_MARGIN <= wanted)


@contextmanager
def _open_source(info: RasterInfo, grid: Grid, overview: int | None = None):
    """The raster at the level it is read at for ``grid`` (a tile service's zoom); with ``overview``, that many
    overviews coarser still and with no coarser one for GDAL to choose."""
    level = service_level(info, grid)
    # OVERVIEW_LEVEL makes the zoom the dataset itself: the warper then fetches that zoom's tiles and no other
    if overview is None:
        options = {"OVERVIEW_LEVEL": str(level - 1)} if level else {}
    else:
        chosen = level + overview
        options = {"OVERVIEW_LEVEL": f"{chosen - 1}only" if chosen else "NONE"}
    with rasterio.open(info.path, **options) as src:
        yield src


def service_tiles(info: RasterInfo, grid: Grid) -> tuple:
    """(level, (width, height) of a tile at it in the raster's CRS units, the tile windows the grid needs at it:
    (column, row) block indices), counted without a request."""
    level = service_level(info, grid)
    factor = (1, *info.overviews)[level]
    block = 256
    size_x, size_y = abs(info.transform.a) * factor * block, abs(info.transform.e) * factor * block
    left, bottom, right, top = corner_bounds(grid.transform, grid.width, grid.height)
    x0, y0 = info.transform.c, info.transform.f
    cols = range(int(math.floor((left - x0) / size_x)), int(math.ceil((right - x0) / size_x - 1e-9)))
    rows = range(int(math.floor((y0 - top) / size_y)), int(math.ceil((y0 - bottom) / size_y - 1e-9)))
    return level, (size_x, size_y), [(c, r) for r in rows for c in cols]


_HTTP_STATUS = re.compile(r"HTTP status code: (\d+)")
_FAILED_TILE = re.compile(r"Unable to download block (\d+, \d+)|IReadBlock failed at X offset (\d+), Y offset (\d+)")
# a timeout may pass, and so may a tile whose body came cut (GDAL cannot decode what it got); a refused
# connection will not
_RETRYABLE = re.compile(r"timed? ?out|Timeout was reached|Connection reset|Empty reply|ReadBlockFromFile",
                        re.IGNORECASE)


def gdal_detail(error: Exception) -> str:
    """GDAL's own words behind a rasterio error (rasterio says 'Read failed. See previous exception')."""
    cause = error.__cause__ or error.__context__
    return str(cause.args[-1] if cause is not None and getattr(cause, "args", None) else error)


def service_failure(detail: str) -> tuple:
    """(HTTP status or None, whether a retry may help) of a failed tile service read's GDAL message."""
    found = _HTTP_STATUS.findall(detail)
    status = int(found[-1]) if found else None
    if status:  # 0: no HTTP answer at all (refused connection, timeout): the words say which
        return status, status == 429 or status >= 500
    return None, bool(_RETRYABLE.search(detail))  # a timeout may pass; a refused connection will not


def read_with_retries(info: RasterInfo | None, read, sleep=time.sleep):
    """``read()``; for a tile service, again after a 429/5xx or a timeout (see SERVICE_RETRIES), and a RasterError
    naming the service's answer when it keeps failing or refuses."""
    if info is None or not info.is_tile_service:
        try:
            return read()
        except rasterio.RasterioIOError as error:
            what = public_text(info.path) if info else "the raster"
            raise RasterError(f"Reading {what} failed ({public_text(gdal_detail(error).strip())}): the file may be "
                              "damaged or incomplete; download or export it again.") from error
    failures, last_tile, in_all = 0, None, 0
    while True:
        try:
            return read()
        except rasterio.RasterioIOError as error:
            detail = gdal_detail(error)
            status, retryable = service_failure(detail)
            tile = _failed_tile(detail)
            failures = failures + 1 if tile == last_tile else 1
            last_tile, in_all = tile, in_all + 1
            if not retryable or failures > SERVICE_RETRIES or in_all > SERVICE_MAX_READ_RETRIES:
                raise RasterError(_service_failed(info.path, detail, status, failures if retryable else 0, tile)
                                  ) from error
            sleep(SERVICE_RETRY_DELAY_S * 2 ** (failures - 1))


def _failed_tile(detail: str) -> str | None:
    """The tile a failed read names ("column, row" of its zoom level), None when it names none."""
    found = _FAILED_TILE.findall(detail)
    if not found:
        return None
    downloaded, column, row = found[-1]
    return downloaded or f"{column}, {row}"


def _service_failed(description: str, detail: str, status, tries: int, tile) -> str:
    """What a tile service's failure mid-run is said as: the service's host, its answer (or the timeout it did not
    answer within), the tries and the tile."""
    where = re.search(r"<(?:ServerUrl|GetCapabilitiesUrl)>(.*?)</", description)
    host = urlsplit(unescape(where.group(1))).netloc if where else ""
    service = f"The tile service at {host}" if host else "The tile service"
    times = f", {tries} times over," if tries > 1 else ""
    at = f"on tile {tile or '?'} of its zoom level: the run stopped, nothing was written."
    timeout = re.search(r"<Timeout>(\d+)</Timeout>", description)
    if status is None and re.search(r"timed? ?out|timeout was reached", detail, re.IGNORECASE):
        within = f" within {timeout.group(1)} s" if timeout else ""
        return f"{service} did not answer{within}{times} {at}"
    # GDAL's words without the dataset's name before them: a tile service's XML description (or its tail)
    last = detail.strip().splitlines()[-1] if detail.strip() else ""
    found = re.search(r"band \d+: .*", last)
    words = found.group(0) if found else last
    answer = f"HTTP {status}" if status else public_text(words)[:200] if words else "no answer"
    return f"{service} failed ({answer}){times} {at}"


def to_map(geometries, transform: Affine):
    """Grid pixel geometries (x = column, y = row), one or an array of them, in the raster's CRS."""
    a, b, d, e, xoff, yoff = transform.a, transform.b, transform.d, transform.e, transform.c, transform.f

    def affine(coords):  # shapely.affinity.affine_transform's own 2D formula, for a whole array at once
        x, y = coords.T
        return np.stack([a * x + b * y + xoff, d * x + e * y + yoff]).T

    return shapely.transform(geometries, affine)
