"""Calibration: the building threshold and minimum area that score best against truth (its report:
``core.extract.calibrate_report``).

Given a building probability raster (0..1) and the truth polygons of a labelled area, every threshold of a grid is
vectorised once, exactly as the extraction engine does it (``core.extract.buildings``, read in blocks), and every
minimum area is then only a filter on the finished footprints' areas before the SpaceNet F1 (IoU >= 0.5, greedy in
footprint order, as ``spacenet:scoref1`` scores ``spacenet:extractbuildings``' output) is taken with
``core.score.f1.score``. One vectorisation per threshold, not one per pair: the threshold decides the shapes, the
minimum area only which of them are kept (the engine drops a footprint under the minimum area after simplifying
it, and so does this filter).

Scoring happens on the raster's pixel grid: truth polygons are mapped onto it with the inverse of the raster's
geotransform. IoU is a ratio of areas, which an affine map leaves unchanged, so the score is the one measured in
metres, for projected and geographic rasters alike; areas in m² are pixel areas times the ground area of a pixel,
the engine's own measure. Truth is clipped to the labelled area, as the footprints are. Touching buildings are split
as the extraction split them: with the raster's interior band when it has one, else with distance seeds.

Ties: among pairs with the same F1, the higher threshold wins (fewer uncertain pixels become building), then the
smaller minimum area (fewer buildings thrown away).

No QGIS here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

from ..geometry_arrays import object_array
from ..progress import Canceled, IsCanceled, Report, silent, span  # noqa: F401 - Canceled: callers know it from here
from ..score import f1
from . import buildings, probability, raster

# 0.20, 0.25, ... 0.80: below 0.2 and above 0.8 a sigmoid output rarely holds a building's outline, and a finer
# step than 0.05 moves the outline by a fraction of a pixel on a sharp model (the engine's stitched probabilities
# are quantised to 1/255 anyway).
DEFAULT_THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))
# m²: 0 keeps everything; 2-5 drop speckle (a few pixels at 0.3-0.5 m); 10-20 the sheds and noise blobs that the
# SpaceNet labels leave out (solaris' SN2 scoring used 20 px², 1.8 m² at 0.3 m); 30-50 m² already drops real
# small houses, so the grid stops there.
DEFAULT_MIN_AREAS_M2 = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0)
SCORING = f1.F1Options(iou_threshold=0.5, matching="greedy>=")
SWEPT = ("threshold", "min_area_m2")  # the BuildingOptions a calibration tries values of
DEFAULT_OPTIONS = buildings.BuildingOptions()
TIE_DIGITS = 12  # F1 values equal to this many digits are a tie (the same counts can round differently)
PROGRESS_VECTORISE = 0.75  # share of a threshold's progress for vectorising; the rest is scoring


class CalibrationError(ValueError):
    """The inputs cannot be calibrated; the message says why, in words a mapper can act on."""


@dataclass(frozen=True)
class Trial:
    """The score of one threshold and minimum area."""

    threshold: float
    min_area_m2: float
    proposals: int  # footprints kept at this minimum area
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


@dataclass
class CalibrationResult:
    """Every trial (thresholds ascending, then minimum areas ascending) and the best one."""

    trials: list
    best: Trial
    thresholds: tuple
    min_areas_m2: tuple
    truth_count: int  # truth polygons scored (inside the labelled area)
    truth_outside: int  # truth polygons left out: outside the labelled area, empty, or without area
    grid_shape: tuple  # (height, width) in pixels
    pixel_m: float
    settings: dict = field(default_factory=dict)

    def trial(self, threshold: float, min_area_m2: float) -> Trial:
        for trial in self.trials:
            if trial.threshold == threshold and trial.min_area_m2 == min_area_m2:
                return trial
        raise KeyError((threshold, min_area_m2))

    def f1_grid(self) -> np.ndarray:
        """F1 as [threshold, minimum area]."""
        return np.array([t.f1 for t in self.trials]).reshape(len(self.thresholds), len(self.min_areas_m2))

    def by_threshold(self, min_area_m2: float) -> list:
        """The trials of one minimum area, thresholds ascending."""
        return [t for t in self.trials if t.min_area_m2 == min_area_m2]

    def by_min_area(self, threshold: float) -> list:
        """The trials of one threshold, minimum areas ascending."""
        return [t for t in self.trials if t.threshold == threshold]


def best_of(trials: Iterable[Trial]) -> Trial:
    """The trial of highest F1; ties go to the higher threshold, then to the smaller minimum area."""
    return max(trials, key=lambda t: (round(t.f1, TIE_DIGITS), t.threshold, -t.min_area_m2))


def parse_values(text, name: str, low: float, high: float, default: tuple, low_inclusive: bool = True) -> tuple:
    """Sorted distinct numbers from ``"0.3, 0.4 0.5"`` or a range ``"0.2:0.8:0.05"`` (start:stop:step, stop
    included); empty text gives ``default``. Raises CalibrationError naming ``name`` when a value is not a
    number or lies outside ``low``..``high``."""
    text = (text or "").strip()
    if not text:
        return tuple(default)
    values = []
    for item in (part for part in re.split(r"[,;\s]+", text) if part):
        values.extend(_range(item, name) if ":" in item else [_number(item, name)])
    below = (lambda v: v < low) if low_inclusive else (lambda v: v <= low)
    outside = [v for v in values if below(v) or v > high or not math.isfinite(v)]
    if outside:
        bound = "from" if low_inclusive else "above"
        raise CalibrationError(f"{name}: {', '.join(f'{v:g}' for v in outside)} outside the allowed range "
                               f"({bound} {low:g} to {high:g}).")
    return tuple(sorted(set(values)))


def _number(item: str, name: str) -> float:
    try:
        return float(item)
    except ValueError:
        raise CalibrationError(f"{name}: '{item}' is not a number (give numbers separated by commas, or a range "
                               "start:stop:step such as 0.2:0.8:0.05).") from None


def _range(item: str, name: str) -> list:
    parts = item.split(":")
    if len(parts) != 3:
        raise CalibrationError(f"{name}: '{item}' is not a range: write start:stop:step, e.g. 0.2:0.8:0.05.")
    start, stop, step = (_number(part, name) for part in parts)
    if step <= 0 or stop < start:
        raise CalibrationError(f"{name}: the range '{item}' needs a positive step and a stop not below its start.")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(count)]


def calibrate(
    read_probability: Callable,
    grid_shape: tuple,
    transform,
    pixel_m: float,
    truth_polygons: Iterable,
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    min_areas_m2: Iterable[float] = DEFAULT_MIN_AREAS_M2,
    options: buildings.BuildingOptions = DEFAULT_OPTIONS,
    block: int = buildings.BLOCK,
    report: Report | None = None,
    is_canceled: IsCanceled | None = None,
) -> CalibrationResult:
    """Score every (threshold, minimum area) pair of a probability grid against truth.

    ``read_probability(row, col, height, width)`` returns that window of the grid as floats in 0..1, or a
    (building, interior) pair of them; an interior window splits touching buildings at the interior threshold;
    ``grid_shape`` is (height, width) and ``transform`` the grid's affine geotransform; ``pixel_m`` the side of a
    pixel in metres (its ground area is ``pixel_m ** 2``, as in ``core.extract.extract``). ``truth_polygons`` are
    shapely geometries in the grid's CRS; the grid is the labelled area. ``options`` are the extraction's the result is
    for, but the threshold and the minimum area, which are swept. ``report(fraction, None)`` after each block and
    scoring step; ``is_canceled`` is polled at the same points (raises :class:`Canceled`).
    """
    thresholds = tuple(sorted({float(t) for t in thresholds}))
    min_areas = tuple(sorted({float(a) for a in min_areas_m2}))
    if not thresholds or not min_areas:
        raise CalibrationError("Give at least one threshold and one minimum area.")
    height, width = int(grid_shape[0]), int(grid_shape[1])
    truth, outside = _truth_on_grid(truth_polygons, transform, height, width)
    truth_set = f1.PolygonSet(geometries=truth)
    pixel_area_m2 = pixel_m**2
    read = _last_window_cached(read_probability)
    report = report or silent

    trials = []
    for number, threshold in enumerate(thresholds):
        at_threshold = dataclasses.replace(options, threshold=threshold, min_area_m2=0.0)

        this = span(report, number / len(thresholds), (number + 1) / len(thresholds))
        geometries, areas = _vectorise(read, height, width, at_threshold, pixel_m, pixel_area_m2, block, is_canceled,
                                       span(this, 0.0, PROGRESS_VECTORISE))
        counts, scored = None, -1
        for index, min_area in enumerate(min_areas):
            kept = geometries[areas >= min_area]  # the engine's own rule: dropped when area < minimum
            # a larger minimum area keeps a subset: the same count is the same set, and the same score
            if len(kept) != scored:
                counts = f1.score(truth_set, f1.PolygonSet(geometries=kept), SCORING, is_canceled=is_canceled).total
                scored = len(kept)
            trials.append(Trial(threshold, min_area, len(kept), counts.tp, counts.fp, counts.fn, counts.precision,
                                counts.recall, counts.f1))
            this(PROGRESS_VECTORISE + (1 - PROGRESS_VECTORISE) * (index + 1) / len(min_areas), None)
    report(1.0, None)
    return CalibrationResult(
        trials=trials, best=best_of(trials), thresholds=thresholds, min_areas_m2=min_areas, truth_count=len(truth),
        truth_outside=outside, grid_shape=(height, width), pixel_m=pixel_m,
        settings={"iou_threshold": SCORING.iou_threshold, "matching": SCORING.matching,
                  **{name: value for name, value in dataclasses.asdict(options).items() if name not in SWEPT},
                  # how touching buildings were split: None when no interior band came (distance seeds)
                  "interior_threshold": options.interior_threshold if read.saw_interior else None},
    )


def _vectorise(read, height, width, options, pixel_m, pixel_area_m2, block, is_canceled, report) -> tuple:
    """The finished footprints of one threshold (grid pixel coordinates) and their areas in m²."""

    def keep(footprint):
        done = buildings.finish(footprint, options, pixel_area_m2, pixel_m)
        return None if done is None else done.geometry

    found = buildings.footprints_on_grid(read, height, width, options, pixel_m, block=block, report=report,
                                         is_canceled=is_canceled, keep=keep)
    geometries = np.empty(len(found), dtype=object)
    geometries[:] = found
    return geometries, (shapely.area(geometries) * pixel_area_m2 if len(found) else np.zeros(0))


class _last_window_cached:  # noqa: N801 - used as the function it replaces
    """``read`` as ``footprints_on_grid`` reads, (building, interior or None), that returns the previous window
    again without reading it: a grid of one block (a labelled tile) is then read once for all thresholds, and
    memory holds one block at most. ``saw_interior``: whether a window came with interior probabilities."""

    def __init__(self, read: Callable):
        self._read = read
        self._last: dict = {}
        self.saw_interior = False

    def __call__(self, row, col, h, w):
        key = (row, col, h, w)
        if key not in self._last:
            self._last.clear()
            window = self._read(row, col, h, w)
            building, interior = window if isinstance(window, tuple) else (window, None)
            self.saw_interior |= interior is not None
            self._last[key] = (np.asarray(building, dtype=np.float32), interior)
        return self._last[key]


def _truth_on_grid(polygons: Iterable, transform, height: int, width: int) -> tuple:
    """Truth in grid pixel coordinates, clipped to the grid; and how many were left out."""
    geometries = object_array(polygons if polygons is not None else ())
    total = len(geometries)
    if total == 0:
        raise CalibrationError("There are no truth polygons: calibration needs the buildings of a labelled area.")
    present = geometries[~shapely.is_missing(geometries)]
    present = present[~shapely.is_empty(present)]
    invalid = ~shapely.is_valid(present)
    present[invalid] = shapely.make_valid(present[invalid])
    on_grid = raster.to_map(present, ~transform)  # map to grid pixels: the inverse affine
    if len(on_grid):
        grid_box = shapely.box(0, 0, width, height)
        on_grid = on_grid[shapely.intersects(on_grid, grid_box)]
        cut = ~shapely.covered_by(on_grid, grid_box)
        on_grid[cut] = shapely.intersection(on_grid[cut], grid_box)
        on_grid = on_grid[shapely.area(on_grid) > 0]
    if len(on_grid) == 0:
        raise CalibrationError(f"None of the {total} truth polygons overlaps the probability raster's labelled "
                               "area: check that the truth and the raster cover the same place.")
    return on_grid, total - len(on_grid)


# --- a probability raster on disk -------------------------------------------------------------------------------


def calibrate_raster(path, truth_polygons: Iterable, extent: tuple | None = None, **keywords) -> CalibrationResult:
    """:func:`calibrate` on a probability raster (spacenet:extractbuildings' probability output, read with
    ``core.extract.probability``: its interior band, when it has one, splits touching buildings at the interior
    threshold the extraction used, and footprints under the extraction's minimum score are dropped). ``extent`` (xmin,
    ymin, xmax, ymax in the raster's CRS) is the labelled area, widened to whole pixels; None: the whole raster.
    Nodata and NaN read as probability 0. ``keywords`` are :func:`calibrate`'s; the options the raster records
    (``core.extract.probability``), but the swept ones, replace those of its ``options``."""
    info = raster.describe(path)  # RasterError: no CRS, rotated, unreadable
    try:
        bands = probability.locate(path, info, first_of_many=True)
    except probability.ProbabilityError as error:
        raise CalibrationError(str(error)) from error
    window = _labelled_window(info, extent)
    bounds = rasterio.windows.bounds(window, info.transform)
    grid = raster.model_grid(info, bounds, None)  # the window's pixels; their ground area in m²
    transform = rasterio.windows.transform(window, info.transform)
    with rasterio.Env(GDAL_CACHEMAX=raster.GDAL_CACHE_BYTES), rasterio.open(path) as src:

        def read(row, col, h, w):
            try:
                return probability.read(src, bands, Window(window.col_off + col, window.row_off + row, w, h))
            except probability.ProbabilityError as error:
                raise CalibrationError(str(error)) from error

        given = keywords.pop("options", DEFAULT_OPTIONS)
        recorded = {name: value for name, value in bands.settings.items() if name not in SWEPT}
        return calibrate(read, (int(window.height), int(window.width)), transform,
                         float(np.sqrt(grid.pixel_area_m2)), truth_polygons,
                         options=dataclasses.replace(given, **recorded), **keywords)


def _labelled_window(info: raster.RasterInfo, extent) -> Window:
    whole = Window(0, 0, info.width, info.height)
    if extent is None:
        return whole
    xmin, ymin, xmax, ymax = extent
    left, bottom, right, top = info.bounds
    if min(xmax, right) <= max(xmin, left) or min(ymax, top) <= max(ymin, bottom):
        raise CalibrationError(
            f"The labelled area ({xmin:g}, {ymin:g}) - ({xmax:g}, {ymax:g}) does not overlap the probability "
            f"raster, which covers ({left:g}, {bottom:g}) - ({right:g}, {top:g}) in its CRS."
        )
    window = rasterio.windows.from_bounds(xmin, ymin, xmax, ymax, transform=info.transform)
    col0, row0 = math.floor(window.col_off + 1e-6), math.floor(window.row_off + 1e-6)
    col1 = math.ceil(window.col_off + window.width - 1e-6)
    row1 = math.ceil(window.row_off + window.height - 1e-6)
    col0, row0, col1, row1 = max(col0, 0), max(row0, 0), min(col1, info.width), min(row1, info.height)
    return Window(col0, row0, max(col1 - col0, 1), max(row1 - row0, 1))
