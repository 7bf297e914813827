"""Live preview of building footprints from a probability raster: what Apply writes, fast enough for a slider.

A probability raster (spacenet:extractbuildings' probability output, Float32 0..1, or the engine's Byte 0..255)
is read once per view window. Each threshold of that window is segmented and polygonised once and its raw
footprints cached; the minimum area, the simplification and the regularisation are post-steps on those polygons
(vectorised where GEOS allows), cached too, so only what a slider changed is recomputed.

The footprints are ``core.extract.buildings``' own: the same labels as ``buildings.segment``, the same polygons in the
same grid pixel coordinates, the same ``finish`` rules and the same placement on the map. A preview covering the
whole raster equals :func:`footprints_of_raster` (what Apply writes); on a larger raster so does every building
that reaches into the view (the view is read with a halo), unless Apply's blocks cut it.

Two things make the threshold step fast without changing a label: the seeds (pixels at least ``SEED_DEPTH_M``
inside a building) come from an erosion by the disc of that radius, which is exactly
``distance_transform_edt(mask) >= depth``; and the distance itself, which only buildings with several seeds
need for their watershed, is computed in their own windows, widened until the watershed's cost is exact.

A view larger than ``MAX_VIEW_PX`` pixels across is read decimated (averaged) and the result says so in a note:
its outlines are coarser than Apply's; one larger than ``MAX_DECIMATION`` times that is not previewed at all.
Touching buildings are split as the extraction split them: from the interior band and the interior threshold the
raster was written with (``core.extract.probability``); a raster without one, with distance seeds, as the engine does
for a model without an interior channel.

No QGIS here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import rasterio
import shapely
import shapely.affinity
import shapely.geometry
from rasterio.transform import Affine
from rasterio.windows import Window

from ..progress import Canceled, IsCanceled, Report  # noqa: F401 - Canceled: callers know it from here
from . import buildings, probability, raster
from .building_options import EXTRACTION

MAX_VIEW_PX = 2048  # a view wider or taller than this is read decimated: bounded memory and time per update
# A decimated read still decompresses every block of the view (probability rasters have no overviews): beyond
# this factor, 8192 px across by default, the preview waits for the mapper to zoom in.
MAX_DECIMATION = 4
HALO_PX = buildings.HALO  # read around the view, so buildings cut by the view's edge are whole
DESCRIPTION = probability.BUILDING  # the band description extractbuildings writes
CACHE_THRESHOLDS = 24  # segmented thresholds kept per view (raw polygons only: about 1 MB each at 2048 px)
CACHE_FINISHED = 48  # finished (simplified, regularised, placed) sets kept per view
# What the dialog opens with: the extraction's (a neutral threshold: the raster carries no model card) with a
# minimum area that drops speckle and sheds, as the shipped model's card does.
DEFAULT_OPTIONS = dataclasses.replace(EXTRACTION, min_area_m2=10.0)
# The options applied after segmentation (FINISHING) and after finishing (FILTERS): left out of the keys of the
# segmentations and finished sets cached, so that moving their sliders reuses what came before them. Any other
# option, one added later included, keys the segmentation: never stale, at worst segmented again.
FILTERS = {"min_area_m2": 0.0, "min_score": 0.0}
FINISHING = {"simplify_m": 0.0, "regularize": False}


class PreviewError(ValueError):
    """The raster cannot be previewed as building probabilities; the message says why, for a mapper."""


@dataclass(frozen=True)
class ProbabilityRaster:
    """A probability raster's bands and its grid."""

    bands: probability.ProbabilityBands
    info: raster.RasterInfo
    pixel_m: float  # side of a pixel in metres (the ground area's square root, as core.extract.extract measures it)
    pixel_area_m2: float

    @property
    def path(self) -> str:
        return self.bands.path

    @property
    def band(self) -> int:
        return self.bands.band

    @property
    def dtype(self) -> str:
        return self.bands.dtype

    @property
    def note(self) -> str:
        return self.bands.note

    def options(self, options: buildings.BuildingOptions) -> buildings.BuildingOptions:
        """``options`` with the interior threshold the raster was extracted with, when it has an interior band."""
        if self.bands.interior_threshold is None:
            return options
        return dataclasses.replace(options, interior_threshold=self.bands.interior_threshold)

    @property
    def crs_wkt(self) -> str:
        return self.info.crs_wkt

    @property
    def shape(self) -> tuple:
        return self.info.height, self.info.width


@dataclass
class Footprints:
    """Building footprints in the raster's CRS, as parallel arrays."""

    geometries: np.ndarray  # shapely Polygons
    scores: np.ndarray  # mean probability
    areas_m2: np.ndarray
    crs_wkt: str
    note: str = ""
    timings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.geometries)

    def wkb(self) -> list:
        """Each geometry as 2D WKB: robust to the GEOS mix inside QGIS (ENVIRONMENT.md trap 3)."""
        return list(shapely.to_wkb(self.geometries, output_dimension=2)) if len(self.geometries) else []


@dataclass(frozen=True)
class View:
    """The window of the raster held in memory for a view."""

    read: Window  # full-resolution pixels read: the view and a halo, within the raster
    inner: Window  # full-resolution pixels of the view itself, within the raster
    shape: tuple  # (height, width) of the array in memory
    factor: int  # raster pixels per array pixel: 1 unless decimated
    offset: tuple  # (row, col) of the array in the coordinates its polygons are traced in
    transform: Affine  # from those coordinates to the raster's CRS
    pixel_m: float
    pixel_area_m2: float
    note: str = ""


# --- the probability raster ---------------------------------------------------------------------------------------


def open_probability(path) -> ProbabilityRaster:
    """The probability bands of the raster at ``path``, or PreviewError saying why it has none."""
    try:
        info = raster.describe(path)  # no CRS, rotated, unreadable
        bands = probability.locate(path, info)
    except (raster.RasterError, probability.ProbabilityError) as error:
        raise PreviewError(str(error)) from error
    grid = raster.model_grid(info, None, None)
    return ProbabilityRaster(bands, info, float(np.sqrt(grid.pixel_area_m2)), grid.pixel_area_m2)


def looks_like_probability(path) -> bool:
    """Whether a raster is likely a building probability raster: one float band, or a band described so."""
    try:
        info = raster.describe(path)
    except (raster.RasterError, rasterio.errors.RasterioError):
        return False
    return DESCRIPTION in info.descriptions or (info.count == 1 and info.dtype.startswith("float"))


def _read(src, source: ProbabilityRaster, window: Window, out_shape=None) -> tuple:
    """(building, interior or None) probabilities 0..1 as float32 (as the engine holds them)."""
    try:
        return probability.read(src, source.bands, window, out_shape)
    except probability.ProbabilityError as error:
        raise PreviewError(str(error)) from error


# --- footprints --------------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """One threshold's footprints before finishing: polygons in the view's trace coordinates."""

    polygons: np.ndarray
    scores: np.ndarray


@dataclass
class _Finished:
    """Finished footprints of one threshold, simplification and regularisation, on the map."""

    geometries: np.ndarray
    scores: np.ndarray
    areas_m2: np.ndarray


def _raw_footprints(labels: np.ndarray, prob: np.ndarray, offset: tuple) -> _Raw:
    """Every label's polygon and mean probability, as ``footprints_on_grid`` finds a building it holds whole."""
    polygons = buildings._label_polygons(labels, *offset)
    size = int(labels.max()) + 1
    # over the building pixels only, in the same order: the same sums as over the whole window, in half the time
    inside = np.flatnonzero(labels)
    building_labels = labels.ravel()[inside]
    sums = np.bincount(building_labels, weights=prob.ravel()[inside], minlength=size)
    counts = np.bincount(building_labels, minlength=size)
    kept = sorted(polygons)
    geometries = np.empty(len(kept), dtype=object)
    geometries[:] = [polygons[label] for label in kept]
    scores = np.array([float(sums[label]) / int(counts[label]) for label in kept], dtype=np.float64)
    return _Raw(geometries, scores)


def finish(polygons: np.ndarray, options: buildings.BuildingOptions, pixel_m: float) -> np.ndarray:
    """``buildings.finish``'s simplification and squaring of every polygon (the minimum area is left to the
    caller): vectorised over GEOS where the rule allows, one polygon at a time where it does not."""
    geometries = polygons
    if options.simplify_m > 0 and len(geometries):
        simpler = shapely.simplify(geometries, options.simplify_m / pixel_m, preserve_topology=True)
        usable = shapely.is_valid(simpler) & ~shapely.is_empty(simpler)
        geometries = np.where(usable, simpler, geometries)
    if options.regularize and len(geometries):
        geometries = buildings.regularize_all(geometries)
    return geometries


class _Lru(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make: Callable):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class FootprintPreview:
    """Footprints of a probability raster in a view, recomputed only as far as the options changed.

    ``set_view(bounds)`` reads the view's window and a halo (once: a view inside the window already held reuses
    it); ``footprints(options)`` answers with the footprints that reach into the view. ``counts`` says how often
    each step ran.
    """

    def __init__(self, path, max_view_px: int = MAX_VIEW_PX, halo_px: int = HALO_PX):
        self.source = open_probability(path)
        self.max_view_px = int(max_view_px)
        self.halo_px = int(halo_px)
        self.view: View | None = None
        self._prob: np.ndarray | None = None
        self._interior: np.ndarray | None = None  # the interior band's window, when the raster has one
        self._view_box = None  # the view's bounds as a shapely box; None: the whole raster
        self._no_view = ""  # why there is no view, when there is none
        self._segmented = _Lru(CACHE_THRESHOLDS)
        self._finished = _Lru(CACHE_FINISHED)
        self.counts = {"reads": 0, "segmentations": 0, "finishes": 0}

    # --- the view --------------------------------------------------------------------------------------------
    def set_view(self, bounds=None) -> bool:
        """Hold the window of ``bounds`` (xmin, ymin, xmax, ymax in the raster's CRS; None: the whole raster).
        Returns whether it was read (False: the window held already covers it at the same resolution)."""
        inner = self._inner_window(bounds)
        self._view_box = None if bounds is None else shapely.box(*bounds)
        if self._view_box is not None:
            shapely.prepare(self._view_box)
        factor = 1 if inner is None else max(1, math.ceil(max(inner.height, inner.width) / self.max_view_px))
        if inner is None or factor > MAX_DECIMATION:
            self.view, self._prob, self._interior = None, None, None
            self._forget()
            self._no_view = "The view does not overlap the probability raster." if inner is None else (
                f"The view is {inner.width} x {inner.height} px of the probability raster: too large to preview. "
                f"Zoom in to at most {self.max_view_px * MAX_DECIMATION} px across.")
            return False
        if self.view is not None and self.view.factor == factor and _within(inner, self._trusted(self.view)):
            return False
        self.view, (self._prob, self._interior) = self._load(inner, factor)
        self._forget()
        return True

    def _inner_window(self, bounds) -> Window | None:
        height, width = self.source.shape
        if bounds is None:
            return Window(0, 0, width, height)
        xmin, ymin, xmax, ymax = bounds
        window = rasterio.windows.from_bounds(xmin, ymin, xmax, ymax, transform=self.source.info.transform)
        col0, row0 = math.floor(window.col_off + 1e-6), math.floor(window.row_off + 1e-6)
        col1 = math.ceil(window.col_off + window.width - 1e-6)
        row1 = math.ceil(window.row_off + window.height - 1e-6)
        col0, row0, col1, row1 = max(col0, 0), max(row0, 0), min(col1, width), min(row1, height)
        if col1 <= col0 or row1 <= row0:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)

    def _trusted(self, view: View) -> Window:
        """The part of a held window whose buildings are whole: all but the halo, except at the raster's edge."""
        height, width = self.source.shape
        halo = self.halo_px * view.factor
        r = view.read
        col0 = r.col_off + (halo if r.col_off > 0 else 0)
        row0 = r.row_off + (halo if r.row_off > 0 else 0)
        col1 = r.col_off + r.width - (halo if r.col_off + r.width < width else 0)
        row1 = r.row_off + r.height - (halo if r.row_off + r.height < height else 0)
        return Window(col0, row0, max(0, col1 - col0), max(0, row1 - row0))

    def _load(self, inner: Window, factor: int) -> tuple:
        height, width = self.source.shape
        halo = self.halo_px * factor
        col0, row0 = max(0, inner.col_off - halo), max(0, inner.row_off - halo)
        col1 = min(width, inner.col_off + inner.width + halo)
        row1 = min(height, inner.row_off + inner.height + halo)
        read = Window(col0, row0, col1 - col0, row1 - row0)
        source = self.source
        with rasterio.Env(GDAL_CACHEMAX=raster.GDAL_CACHE_BYTES), rasterio.open(source.path) as src:
            if factor == 1:
                prob, interior = _read(src, source, read)
            else:
                prob, interior = _read(src, source, read, out_shape=(max(1, round(read.height / factor)),
                                                                     max(1, round(read.width / factor))))
        self.counts["reads"] += 1
        if factor == 1:
            # polygons in the raster's own pixel coordinates, as footprints_on_grid traces them: same numbers
            view = View(read, inner, prob.shape, 1, (row0, col0), source.info.transform, source.pixel_m,
                        source.pixel_area_m2)
        else:
            sx, sy = read.width / prob.shape[1], read.height / prob.shape[0]
            transform = source.info.transform @ Affine.translation(col0, row0) @ Affine.scale(sx, sy)
            note = (f"The view is {inner.width} x {inner.height} px: the preview shows it at 1/{factor} resolution "
                    f"({prob.shape[1]} x {prob.shape[0]} px), so its outlines are coarser than what Apply writes. "
                    "Zoom in for the exact footprints.")
            view = View(read, inner, prob.shape, factor, (0, 0), transform, source.pixel_m * math.sqrt(sx * sy),
                        source.pixel_area_m2 * sx * sy, note)
        return view, (prob, interior)

    def _forget(self):
        self._segmented.clear()
        self._finished.clear()

    # --- the footprints --------------------------------------------------------------------------------------
    def footprints(self, options: buildings.BuildingOptions, bounds=None) -> Footprints:
        """The finished footprints at ``options`` that reach into the view, on the map. ``bounds`` moves the view
        first; without them the view stays where it is (at first: the whole raster)."""
        started = time.perf_counter()
        if bounds is not None or self.view is None:
            self.set_view(bounds)
        read_at = time.perf_counter()
        notes = [n for n in (self.source.note, self.view.note if self.view else "") if n]
        if self.view is None:
            notes.append(self._no_view)
            empty = np.empty(0, dtype=object)
            return Footprints(empty, np.zeros(0), np.zeros(0), self.source.crs_wkt, " ".join(notes))
        view = self.view
        finished = dataclasses.replace(options, **FILTERS)
        raw = self._segmented.get_or_make(dataclasses.replace(finished, **FINISHING), lambda: self._segment(options))
        segmented_at = time.perf_counter()
        done = self._finished.get_or_make(finished, lambda: self._finish(raw, options))
        # the engine's rules: dropped when the finished area or the score is under the minimum
        keep = ~(done.areas_m2 < options.min_area_m2) & ~(done.scores < options.min_score)
        if self._view_box is not None and len(keep):
            keep &= shapely.intersects(done.geometries, self._view_box)  # the halo's buildings are off screen
        finished_at = time.perf_counter()
        return Footprints(done.geometries[keep], done.scores[keep], done.areas_m2[keep], self.source.crs_wkt,
                          " ".join(notes), {"view_s": read_at - started, "segment_s": segmented_at - read_at,
                                            "finish_s": finished_at - segmented_at, "total_s": finished_at - started,
                                            "factor": view.factor})

    def _segment(self, options) -> _Raw:
        self.counts["segmentations"] += 1
        labels = buildings.segment(self._prob, self._interior, self.source.options(options), self.view.pixel_m)
        return _raw_footprints(labels, self._prob, self.view.offset)

    def _finish(self, raw: _Raw, options) -> _Finished:
        self.counts["finishes"] += 1
        geometries = finish(raw.polygons, options, self.view.pixel_m)
        areas = shapely.area(geometries) * self.view.pixel_area_m2 if len(geometries) else np.zeros(0)
        return _Finished(raster.to_map(geometries, self.view.transform), raw.scores, areas)


def _within(inner: Window, outer: Window) -> bool:
    return (inner.col_off >= outer.col_off and inner.row_off >= outer.row_off
            and inner.col_off + inner.width <= outer.col_off + outer.width
            and inner.row_off + inner.height <= outer.row_off + outer.height)


# --- Apply: the whole raster ---------------------------------------------------------------------------------------


def footprints_of_raster(source, options: buildings.BuildingOptions, report: Report | None = None,
                         is_canceled: IsCanceled | None = None, block: int = buildings.BLOCK) -> Footprints:
    """The footprints of the whole raster at ``options``, as the extraction engine makes them from its
    probabilities (``core.extract.buildings`` in blocks, bounded memory). ``source`` is a path or a ProbabilityRaster;
    ``report(fraction, None)`` after each block; raises Canceled when ``is_canceled()`` turns true."""
    started = time.perf_counter()
    source = source if isinstance(source, ProbabilityRaster) else open_probability(source)
    options = source.options(options)
    height, width = source.shape
    transform = source.info.transform
    with rasterio.Env(GDAL_CACHEMAX=raster.GDAL_CACHE_BYTES), rasterio.open(source.path) as src:

        def read(row, col, h, w):
            return _read(src, source, Window(col, row, w, h))

        def keep(footprint):
            done = buildings.finish(footprint, options, source.pixel_area_m2, source.pixel_m)
            if done is None:
                return None
            return raster.to_map(done.geometry, transform), done.score, done.geometry.area * source.pixel_area_m2

        found = buildings.footprints_on_grid(read, height, width, options, source.pixel_m, block=block,
                                             report=report, is_canceled=is_canceled, keep=keep)
    geometries = np.empty(len(found), dtype=object)
    geometries[:] = [g for g, _, _ in found]
    return Footprints(geometries, np.array([s for _, s, _ in found], dtype=np.float64),
                      np.array([a for _, _, a in found], dtype=np.float64), source.crs_wkt, source.note,
                      {"total_s": time.perf_counter() - started})
