"""Make scoring input usable: repair invalid polygons, keep their polygonal part, skip what cannot be scored.

One job: from an array of geometries (None, empty, invalid and non-polygonal allowed), the repaired polygonal
geometries, their areas, which are kept for scoring (non-empty, positive area, at or above the minimum area), and a
:class:`CleaningReport` that counts every repair and skip, so bad geometry never crashes a scorer and never changes
a score silently. Shared by :mod:`core.score.f1` (whole sets) and :mod:`core.score.live_score` (one edit at a time), so
that both score the same shapes.

Convex polygons without holes are read into vertex arrays on the way (:mod:`core.score.convex_clip`): they are valid by
construction, so GEOS' slower validity check is skipped for them, and their areas come from the same arrays.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from ..geometry_arrays import object_array
from .convex_clip import ConvexRings, convex_rings

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7  # shapely type ids


@dataclass
class CleaningReport:
    """What was done to one input set's geometries before scoring; each skipped feature is counted once."""

    repaired: int = 0  # invalid geometries made valid
    non_polygonal_parts_dropped: int = 0  # points and lines dropped from repaired or mixed geometries
    skipped_null_or_empty: int = 0
    skipped_zero_area: int = 0  # includes geometries with no polygonal part (lines, points)
    skipped_small: int = 0  # below the minimum area

    @property
    def skipped(self) -> int:
        return self.skipped_null_or_empty + self.skipped_zero_area + self.skipped_small


@dataclass
class Cleaned:
    """The usable geometries of one input set and what was done to get them."""

    geometries: np.ndarray  # repaired, polygonal; only meaningful where ``kept``
    shape_areas: np.ndarray  # shapely area of the repaired geometry (for IoU)
    kept: np.ndarray  # bool per input geometry
    rings: ConvexRings  # the convex ones, for core.score.convex_clip
    report: CleaningReport


def clean(geometries, min_area: float, inclusive: bool, given_areas=None) -> Cleaned:
    """Cleans ``geometries``; the minimum area applies to ``given_areas`` where given (NaN: the shape's own area), else
    to the repaired shape's area, kept when area >= ``min_area`` if ``inclusive``, else when area > ``min_area``
    (0: keep every non-empty one)."""
    geometries = object_array(geometries)
    report = CleaningReport()
    type_ids = shapely.get_type_id(geometries)  # -1 for None
    present = (type_ids >= 0) & ~shapely.is_empty(geometries)
    report.skipped_null_or_empty = int(np.count_nonzero(~present))

    rings, ring_areas = convex_rings(geometries, present, type_ids)
    cleaned = _repaired(geometries, present & (rings.count == 0), type_ids, report)

    shape_areas = np.where(present, ring_areas, 0.0)
    others = np.flatnonzero(present & np.isnan(ring_areas))
    shape_areas[others] = shapely.area(cleaned[others])
    has_area = present & (shape_areas > 0)
    report.skipped_zero_area = int(np.count_nonzero(present & ~has_area))

    big_enough = _big_enough(_filter_areas(given_areas, shape_areas), min_area, inclusive)
    kept = has_area & big_enough
    report.skipped_small = int(np.count_nonzero(has_area & ~big_enough))
    return Cleaned(cleaned, shape_areas, kept, rings, report)


def _repaired(geometries: np.ndarray, unchecked: np.ndarray, type_ids: np.ndarray, report: CleaningReport):
    """A copy with invalid geometries made valid and every geometry reduced to its polygonal part.

    Only ``unchecked`` geometries are tested: a convex ring is known to be valid, and GEOS' check is the slower one.
    """
    cleaned = geometries.copy()
    unchecked = np.flatnonzero(unchecked)
    invalid = unchecked[~shapely.is_valid(geometries[unchecked])]
    report.repaired = len(invalid)
    if len(invalid):
        cleaned[invalid] = shapely.make_valid(geometries[invalid])
        type_ids = type_ids.copy()
        type_ids[invalid] = shapely.get_type_id(cleaned[invalid])
    not_polygonal = (type_ids >= 0) & ~np.isin(type_ids, (_POLYGON, _MULTIPOLYGON))
    for index in np.flatnonzero(not_polygonal):  # rare: lines, points, collections
        cleaned[index], dropped = _polygonal_part(cleaned[index])
        report.non_polygonal_parts_dropped += dropped
    return cleaned


def _polygonal_part(geometry):
    """The polygons of a repaired or mixed geometry, and how many non-polygonal parts were dropped."""
    polygons, dropped = [], 0
    pending = [geometry]
    while pending:
        part = pending.pop()
        type_id = shapely.get_type_id(part)
        if type_id == _POLYGON:
            polygons.append(part)
        elif type_id in (_MULTIPOLYGON, _COLLECTION):
            pending.extend(shapely.get_parts(part))
        elif not part.is_empty:
            dropped += 1
    if not polygons:
        return shapely.Polygon(), dropped
    # A union, not a plain MultiPolygon: the parts of a collection may touch or overlap.
    return shapely.union_all(polygons), dropped


def _filter_areas(given, shape_areas: np.ndarray) -> np.ndarray:
    if given is None:
        return shape_areas
    given = np.asarray(given, dtype=float)
    # A missing area (NaN) falls back to the geometry's own area rather than silently dropping the feature.
    return np.where(np.isnan(given), shape_areas, given)


def _big_enough(areas: np.ndarray, min_area: float, inclusive: bool) -> np.ndarray:
    if inclusive:
        return areas >= min_area
    if min_area <= 0:
        return np.ones(len(areas), dtype=bool)  # 0 means keep every non-empty proposal
    return areas > min_area
