"""Score building-footprint proposals against truth with the SpaceNet F1 metric.

One job: given truth and proposal polygons (optionally split into groups such as images or tiles), match them
one-to-one by IoU inside each group and count true positives, false positives and false negatives, summed over
groups before precision, recall and F1 are taken. The rules follow ``shared/REFERENCE.md``:

- ``"greedy>="``: proposals one at a time (input order, or confidence descending), each matched to the remaining
  truth of highest IoU; a true positive when IoU >= threshold (the SpaceNet evaluator).
- ``"greedy>"``: the same with IoU > threshold (solaris).
- ``"optimal"``: a maximum-weight bipartite matching over the pairs with IoU >= threshold. The weight ranks a
  matching by its number of matches first and its total IoU second, so it never counts fewer true positives than
  greedy. It differs from greedy only below 0.5.

A match always needs a positive overlap: polygons that merely touch never match, whatever the threshold.

Bad geometry never crashes the scorer and never changes the score silently: invalid polygons are repaired with
``make_valid`` (the polygonal part is kept), null, empty and zero-area ones are skipped, and every repair or skip is
counted in a :class:`CleaningReport`.

Speed comes from working on whole arrays, never on one proposal at a time:

- candidate pairs: one STRtree per group, queried once with all of the group's proposals (bounding boxes only: the
  exact areas computed next decide, and the ``intersects`` predicate would cost more than it saves);
- intersection areas in bulk: pairs of convex polygons (most footprints) are clipped in numpy, many pairs per array
  operation; the other pairs go to ``shapely.intersection`` in chunks; the union area is area_a + area_b - inter;
- matching in numpy, with a Python pass only over the proposals that compete for the same truth.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import shapely

from .geometry_arrays import object_array

MATCHING = ("greedy>=", "greedy>", "optimal")

TP, FP, FN, SKIPPED = "TP", "FP", "FN", ""
_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7  # shapely type ids


class Canceled(Exception):  # noqa: N818 - the name is part of the API
    """Raised by :func:`score` when the caller's ``is_canceled`` turns True."""


@dataclass(frozen=True)
class F1Options:
    """How to match: the IoU threshold, the rule (see ``MATCHING``) and the minimum areas (in the units of
    ``PolygonSet.areas`` when given, else of the coordinates)."""

    iou_threshold: float = 0.5
    matching: str = "greedy>="
    min_area_truth: float = 0.0  # truth kept when area >= this (solaris SN2 convention)
    min_area_proposals: float = 0.0  # proposals kept when area > this (solaris SN2 convention); 0 = keep all non-empty

    def __post_init__(self):
        if self.matching not in MATCHING:
            raise ValueError(f"matching must be one of {', '.join(MATCHING)}, not {self.matching!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must lie between 0 and 1, not {self.iou_threshold!r}")


@dataclass
class PolygonSet:
    """One side of the comparison (truth or proposals), one entry per input feature."""

    geometries: np.ndarray  # object array of shapely geometries; None, empty, invalid, non-polygonal allowed
    groups: np.ndarray | None = None  # group key (str) per geometry (image/tile id); None = one group ""
    order: np.ndarray | None = None  # confidence per proposal: taken in descending order (stable), else input order
    areas: np.ndarray | None = None  # area per geometry for the min-area filters; None = area of the repaired shape
    ids: np.ndarray | None = None  # an identifier per geometry (e.g. the challenge CSV's BuildingId); not scored


@dataclass
class Counts:
    """True positives, false positives and false negatives, and the ratios made from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        # 2PR / (P + R) as the reference computes it (same rounding); 0, not 1, when there was nothing to find.
        precision, recall = self.precision, self.recall
        return _ratio(2 * precision * recall, precision + recall)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


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
class F1Result:
    """Counts per group and in total, and per input feature its status, IoU and match (indices into the other
    input, -1 for none). Skipped features have status "", IoU NaN and no match.

    ``proposal_iou``: the matched truth's IoU for a TP, else the best IoU with any truth of its group (0 if none);
    ``truth_iou``: the same from the truth's side.
    """

    groups: dict[str, Counts]
    total: Counts
    proposal_status: np.ndarray
    proposal_iou: np.ndarray
    proposal_match: np.ndarray
    truth_status: np.ndarray
    truth_iou: np.ndarray
    truth_match: np.ndarray
    truth_cleaning: CleaningReport = field(default_factory=CleaningReport)
    proposal_cleaning: CleaningReport = field(default_factory=CleaningReport)
    # Greedy only (None for "optimal"): per truth, the highest IoU of the proposals whose turn picked it as the best
    # remaining truth, passing or not; 0 if none picked it, nan when skipped. This is solaris' per-building
    # iou_score: it differs from truth_iou for a missed truth whose best-overlapping proposal went elsewhere.
    truth_iou_offered: np.ndarray | None = None

    def by_aoi(self) -> dict[str, Counts]:
        """Group counts summed per AOI (the first three ``_`` tokens of the group key)."""
        summed: dict[str, Counts] = {}
        for key, counts in self.groups.items():
            aoi = aoi_of(key)
            summed[aoi] = summed.get(aoi, Counts()) + counts
        return dict(sorted(summed.items()))

    def aoi_sums(self) -> dict[str, Counts]:
        """``by_aoi`` when group ids carry SpaceNet AOI names (some AOI holds several groups), else empty."""
        summed = self.by_aoi()
        return summed if len(summed) < len(self.groups) else {}


def aoi_of(image_id: str) -> str:
    """``"AOI_2_Vegas_img3457"`` -> ``"AOI_2_Vegas"``; an id with fewer than four tokens maps to itself."""
    tokens = str(image_id).split("_")
    return "_".join(tokens[:3]) if len(tokens) > 3 else str(image_id)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# --- cleaning ---------------------------------------------------------------------------------------------------

_MAX_CONVEX_VERTICES = 32  # bigger convex rings go through GEOS: padding them would cost more than it saves


@dataclass
class _ConvexRings:
    """The vertices of the geometries that are convex polygons without holes: counter-clockwise, no repeats.

    They let the scorer intersect convex pairs in numpy instead of in GEOS: many footprints are convex (rectangles,
    and most model outputs simplified to a few vertices).
    """

    x: np.ndarray  # flat; the rings of one vertex count form a vertex-major block
    y: np.ndarray
    start: np.ndarray  # per geometry: where its first vertex is in ``x`` and ``y``
    stride: np.ndarray  # per geometry: the distance from one of its vertices to the next
    count: np.ndarray  # per geometry: its number of vertices; 0 when it is not a convex polygon


@dataclass
class _Cleaned:
    """The usable geometries of one input set and what was done to get them."""

    geometries: np.ndarray  # repaired, polygonal; only meaningful where ``kept``
    shape_areas: np.ndarray  # shapely area of the repaired geometry (for IoU)
    kept: np.ndarray  # bool per input geometry
    rings: _ConvexRings
    report: CleaningReport


def _clean(polygons: PolygonSet, min_area: float, inclusive: bool) -> _Cleaned:
    geometries = object_array(polygons.geometries)
    report = CleaningReport()
    type_ids = shapely.get_type_id(geometries)  # -1 for None
    present = (type_ids >= 0) & ~shapely.is_empty(geometries)
    report.skipped_null_or_empty = int(np.count_nonzero(~present))

    rings, ring_areas = _convex_rings(geometries, present, type_ids)
    cleaned = _repaired(geometries, present & (rings.count == 0), type_ids, report)

    shape_areas = np.where(present, ring_areas, 0.0)
    others = np.flatnonzero(present & np.isnan(ring_areas))
    shape_areas[others] = shapely.area(cleaned[others])
    has_area = present & (shape_areas > 0)
    report.skipped_zero_area = int(np.count_nonzero(present & ~has_area))

    big_enough = _big_enough(_filter_areas(polygons.areas, shape_areas), min_area, inclusive)
    kept = has_area & big_enough
    report.skipped_small = int(np.count_nonzero(has_area & ~big_enough))
    return _Cleaned(cleaned, shape_areas, kept, rings, report)


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


_RINGS_PER_BLOCK = 8192  # small blocks: numpy's temporaries then reuse memory instead of faulting in fresh pages


def _convex_rings(geometries: np.ndarray, present: np.ndarray, type_ids: np.ndarray):
    """The convex rings of ``geometries``, and their areas (NaN for the other geometries)."""
    count, start, stride = (np.zeros(len(geometries), dtype=np.intp) for _ in range(3))
    areas = np.full(len(geometries), np.nan)
    coordinates = shapely.get_num_coordinates(geometries)
    # Polygons with holes need no test of their own: their coordinates, read as one ring, do not close on the
    # first point or revisit a point, and fail the convexity test.
    simple = present & (type_ids == _POLYGON) & (coordinates >= 4) & (coordinates <= _MAX_CONVEX_VERTICES + 1)
    x_blocks, y_blocks, offset = [], [], 0
    # Rings of one length form dense blocks, vertex-major (vertices, rings): every test below is then a handful
    # of whole-row array operations.
    for length in np.flatnonzero(np.bincount(coordinates[simple])).tolist():
        same_length = np.flatnonzero(simple & (coordinates == length))
        for first in range(0, len(same_length), _RINGS_PER_BLOCK):
            members = same_length[first : first + _RINGS_PER_BLOCK]
            x, y, convex, areas[members] = _ring_block(geometries[members], length)
            x_blocks.append(x.ravel())
            y_blocks.append(y.ravel())
            start[members] = offset + np.arange(len(members))
            stride[members] = len(members)
            count[members] = np.where(convex, length - 1, 0)
            offset += x.size
    x, y = (np.concatenate(blocks) if blocks else np.empty(0) for blocks in (x_blocks, y_blocks))
    return _ConvexRings(x, y, start, stride, count), areas


def _ring_block(polygons: np.ndarray, length: int):
    """Counter-clockwise open rings (vertices, rings) of polygons with ``length`` coordinates, whether each is
    convex, and the areas of the convex ones (NaN for the others)."""
    xy = shapely.get_coordinates(polygons)
    x, y = (np.ascontiguousarray(xy[:, axis].reshape(len(polygons), length).T) for axis in (0, 1))
    convex, counter_clockwise = _convexity(x[:-1], y[:-1])
    convex &= (x[-1] == x[0]) & (y[-1] == y[0])
    areas = np.where(convex, _ring_areas(x, y), np.nan)
    # Clockwise rings are read backwards: the clipping needs counter-clockwise ones.
    x = np.where(counter_clockwise, x[:-1], x[-2::-1])
    y = np.where(counter_clockwise, y[:-1], y[-2::-1])
    return x, y, convex, areas


def _convexity(x: np.ndarray, y: np.ndarray):
    """Per ring of a (vertices, rings) block: convex (so simple and valid), and counter-clockwise."""
    x, y = x - x[0], y - y[0]  # small numbers: exact signs for small turns even at UTM magnitudes
    out_x, out_y = _next_vertex(x) - x, _next_vertex(y) - y
    in_x, in_y = _previous_vertex(out_x), _previous_vertex(out_y)
    cross = in_x * out_y - in_y * out_x
    dot = in_x * out_x + in_y * out_y
    left, right = (cross > 0).any(axis=0), (cross < 0).any(axis=0)
    repeated = ((out_x == 0) & (out_y == 0)).any(axis=0)  # a repeated vertex would hide the turn it sits on
    spike = ((cross == 0) & (dot < 0)).any(axis=0)  # the ring doubles back on itself
    # Turning one way, the edge direction goes round once (a simple ring) or more (a star): count how often it
    # leaves the upper half of directions.
    upper = (out_y > 0) | ((out_y == 0) & (out_x > 0))
    once_round = (upper & ~_next_vertex(upper)).sum(axis=0) == 1
    convex = (left != right) & ~repeated & ~spike & once_round
    return convex, left


def _ring_areas(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Areas of closed rings (coordinates, rings), with GEOS' shoelace formula and summation order.

    The same operations in the same order give the same rounding as ``shapely.area``, for a fraction of its cost.
    """
    total = np.zeros(x.shape[1])
    for i in range(1, len(x) - 1):
        total += (x[i] - x[0]) * (y[i - 1] - y[i + 1])
    return np.abs(total / 2.0)


def _previous_vertex(values: np.ndarray) -> np.ndarray:
    return np.concatenate([values[-1:], values[:-1]])


# --- grouping ---------------------------------------------------------------------------------------------------


def _group_codes(truth_groups, proposal_groups, truth_count: int, proposal_count: int):
    """Sorted group names, and the position of each truth's and each proposal's group among them."""
    truth_keys, proposal_keys = _raw_keys(truth_groups, truth_count), _raw_keys(proposal_groups, proposal_count)
    # Names are made from the distinct keys only: a few hundred str() calls instead of one per feature.
    name_of = {key: _group_name(key) for key in set(truth_keys) | set(proposal_keys)}
    names = sorted(set(name_of.values()))
    code_of_name = {name: code for code, name in enumerate(names)}
    code_of = {key: code_of_name[name] for key, name in name_of.items()}
    return names, _codes(truth_keys, code_of), _codes(proposal_keys, code_of)


def _raw_keys(groups, count: int) -> list:
    if groups is None:
        return [""] * count
    return groups.tolist() if isinstance(groups, np.ndarray) else list(groups)


def _group_name(key) -> str:
    return "" if key is None else str(key)


def _codes(keys: list, code_of: dict) -> np.ndarray:
    return np.fromiter(map(code_of.__getitem__, keys), dtype=np.intp, count=len(keys))


def _indices_per_group(codes: np.ndarray, selected: np.ndarray, group_total: int):
    """For each group, the selected input indices that belong to it, in input order."""
    indices = np.flatnonzero(selected)
    order = np.argsort(codes[indices], kind="stable")
    indices = indices[order]
    bounds = np.searchsorted(codes[indices], np.arange(group_total + 1))
    return [indices[bounds[i] : bounds[i + 1]] for i in range(group_total)]


# --- candidate pairs and their IoU ------------------------------------------------------------------------------

_PAIRS_PER_CHUNK = 8192  # bounds the memory of the clipping arrays; big enough to amortise numpy's call overhead


@dataclass
class _Pairs:
    """Proposal-truth pairs with a positive overlap (indices into the inputs), and their IoU."""

    proposal: np.ndarray
    truth: np.ndarray
    iou: np.ndarray


def _candidate_pairs(truth: _Cleaned, proposals: _Cleaned, truth_by_group, proposals_by_group, tick):
    """Pairs whose bounding boxes meet, group by group: one STRtree per group, all its proposals in one query.

    No "intersects" predicate: the exact intersection areas computed next decide, and the bounding-box query is
    several times cheaper than the predicate.
    """
    proposal_parts, truth_parts = [], []
    for group, (truth_indices, proposal_indices) in enumerate(zip(truth_by_group, proposals_by_group)):
        tick(group)
        if len(truth_indices) and len(proposal_indices):
            tree = shapely.STRtree(truth.geometries[truth_indices])
            from_proposal, from_truth = tree.query(proposals.geometries[proposal_indices])
            proposal_parts.append(proposal_indices[from_proposal])
            truth_parts.append(truth_indices[from_truth])
    if not proposal_parts:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(proposal_parts), np.concatenate(truth_parts)


def _overlapping_pairs(truth: _Cleaned, proposals: _Cleaned, p: np.ndarray, t: np.ndarray, tick) -> _Pairs:
    intersection = np.zeros(len(p))
    convex = (proposals.rings.count[p] > 0) & (truth.rings.count[t] > 0)
    chunks = _convex_chunks(p, t, convex, proposals.rings, truth.rings) + _geos_chunks(np.flatnonzero(~convex))
    for number, (pairs, width_p, width_t) in enumerate(chunks):
        tick(number, len(chunks))
        if width_p:
            areas, unsure = _convex_intersection_areas(
                _padded(proposals.rings, p[pairs], width_p), _padded(truth.rings, t[pairs], width_t)
            )
            intersection[pairs] = areas
            pairs = pairs[unsure]  # rounding made a clip ambiguous: GEOS decides those few
        intersection[pairs] = _intersection_areas(proposals.geometries[p[pairs]], truth.geometries[t[pairs]])
    area_p, area_t = proposals.shape_areas[p], truth.shape_areas[t]
    smaller = np.minimum(area_p, area_t)
    # Rounding, at 1e-12 of the smaller area: polygons that only touch leave a trace of overlap (that is none), and
    # one inside the other (or the same polygon twice) overlaps by its whole area, so that IoU 1 is exactly 1.
    overlapping = intersection > 1e-12 * smaller
    intersection = np.where(intersection > (1 - 1e-12) * smaller, smaller, intersection)
    union = area_p + area_t - intersection
    iou = intersection[overlapping] / union[overlapping]
    return _Pairs(p[overlapping], t[overlapping], iou)


def _convex_chunks(p, t, convex, proposal_rings: _ConvexRings, truth_rings: _ConvexRings):
    """Chunks of convex pairs that share padded widths (powers of two), so little work is spent on padding."""
    pairs = np.flatnonzero(convex)
    width_p = _power_of_two_at_least(proposal_rings.count[p[pairs]])
    width_t = _power_of_two_at_least(truth_rings.count[t[pairs]])
    chunks = []
    for wp, wt in sorted(set(zip(width_p.tolist(), width_t.tolist()))):
        same = pairs[(width_p == wp) & (width_t == wt)]
        chunks += [(same[i : i + _PAIRS_PER_CHUNK], wp, wt) for i in range(0, len(same), _PAIRS_PER_CHUNK)]
    return chunks


def _geos_chunks(pairs: np.ndarray):
    return [(pairs[i : i + _PAIRS_PER_CHUNK], 0, 0) for i in range(0, len(pairs), _PAIRS_PER_CHUNK)]


def _power_of_two_at_least(values: np.ndarray) -> np.ndarray:
    return np.left_shift(1, np.ceil(np.log2(np.maximum(values, 4))).astype(np.int64))


def _padded(rings: _ConvexRings, geometries: np.ndarray, width: int):
    """x and y (width, pairs) of ring vertices; a short ring repeats its last vertex (zero-length edges only).

    Vertex-major: the few vertices are the rows, so sums over a ring add whole rows (fast in numpy).
    """
    count = rings.count[geometries][None, :]
    step = np.minimum(np.arange(width)[:, None], count - 1)
    vertex = rings.start[geometries][None, :] + step * rings.stride[geometries][None, :]
    return rings.x[vertex], rings.y[vertex]


def _convex_intersection_areas(subject, clip):
    """Areas of subject ∩ clip for pairs of convex counter-clockwise rings (Sutherland-Hodgman clipping).

    Each ring is an (x, y) tuple of (width, pairs) arrays. Returns the areas and a mask of the pairs where rounding
    made a clip ambiguous: their areas are not to be used.
    """
    # Near the polygons: keeps the products small and precise with UTM-sized coordinates.
    origin_x, origin_y = clip[0][0], clip[1][0]
    x, y = subject[0] - origin_x, subject[1] - origin_y
    clip_x, clip_y = clip[0] - origin_x, clip[1] - origin_y
    unsure = np.zeros(x.shape[1], dtype=bool)
    edges = len(clip_x)
    for edge in range(edges):
        following = (edge + 1) % edges
        start, end = (clip_x[edge], clip_y[edge]), (clip_x[following], clip_y[following])
        x, y, ambiguous = _clip_by_edge(x, y, start, end)
        unsure |= ambiguous
    twice_area = (x * _next_vertex(y) - _next_vertex(x) * y).sum(axis=0)
    return np.maximum(0.5 * twice_area, 0.0), unsure


def _next_vertex(values: np.ndarray) -> np.ndarray:
    return np.concatenate([values[1:], values[:1]])


def _clip_by_edge(x: np.ndarray, y: np.ndarray, start, end):
    """Convex rings (width, pairs) cut to the left of their directed edge start -> end: (width + 1, pairs).

    A convex ring crosses a line at most twice, so the result is the run of inside vertices followed by the exit
    and entry points, padded with copies of the entry point (zero-length edges). Rotating each ring to start at its
    first inside vertex takes one gather and no compaction. A zero-length edge keeps everything.
    """
    width, pairs = x.shape
    side = (end[0] - start[0]) * (y - start[1]) - (end[1] - start[1]) * (x - start[0])
    inside = side >= 0
    inside_next = _next_vertex(inside)
    exits, entries = inside > inside_next, inside < inside_next
    inside_count = np.add.reduce(inside, axis=0, dtype=np.intp)
    # With one exit and one entry (the convex case), a weighted sum finds them without an argmax.
    vertex = np.arange(width)[:, None]
    exit_edge, entry_edge = np.add.reduce(vertex * exits, axis=0), np.add.reduce(vertex * entries, axis=0)

    all_inside, all_outside = inside_count == width, inside_count == 0
    first_inside = np.where(all_inside, 0, _wrap(entry_edge + 1, width))
    kept = np.where(all_inside, width + 1, inside_count)  # all inside: the ring as it was, plus a repeat
    slot = np.arange(width + 1)[:, None]
    source = _wrap(first_inside + slot, width) * pairs + np.arange(pairs)  # flat indices into (width, pairs)
    exit_x, exit_y = _crossing(x, y, side, exit_edge)
    entry_x, entry_y = _crossing(x, y, side, entry_edge)
    for point in (exit_x, exit_y, entry_x, entry_y):
        point[all_outside] = 0.0  # nothing left: one repeated point
    in_run, at_exit = slot < kept, slot == kept
    clipped_x = np.where(in_run, x.take(source), np.where(at_exit, exit_x, entry_x))
    clipped_y = np.where(in_run, y.take(source), np.where(at_exit, exit_y, entry_y))
    exit_count = np.add.reduce(exits, axis=0, dtype=np.intp)
    return clipped_x, clipped_y, exit_count > 1  # a convex ring leaves a half-plane at most once


def _wrap(index: np.ndarray, width: int) -> np.ndarray:
    """``index % width`` for 0 <= index < 2 * width, without the cost of a division."""
    return index - width * (index >= width)


def _crossing(x: np.ndarray, y: np.ndarray, side: np.ndarray, edge: np.ndarray):
    """Where each ring's edge ``edge`` -> ``edge + 1`` meets the clipping line."""
    width, pairs = x.shape
    column = np.arange(pairs)
    here_at, there_at = edge * pairs + column, _wrap(edge + 1, width) * pairs + column
    here, there = side.take(here_at), side.take(there_at)
    denominator = here - there
    fraction = np.divide(here, denominator, out=np.zeros_like(here), where=denominator != 0)
    x0, y0 = x.take(here_at), y.take(here_at)
    return x0 + fraction * (x.take(there_at) - x0), y0 + fraction * (y.take(there_at) - y0)


def _intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return shapely.area(shapely.intersection(a, b))
    except shapely.errors.GEOSException:
        # Rare robustness failures of GEOS on valid input: retry the pairs one by one so one bad pair costs only
        # itself.
        return np.array([_one_intersection_area(x, y) for x, y in zip(a, b)])


def _one_intersection_area(a, b) -> float:
    try:
        return shapely.area(shapely.intersection(a, b))
    except shapely.errors.GEOSException:
        extent = np.ptp(shapely.bounds(np.array([a, b], dtype=object)).reshape(-1, 2), axis=0).max()
        return shapely.area(shapely.intersection(a, b, grid_size=1e-9 * max(1.0, float(extent))))


# --- matching ---------------------------------------------------------------------------------------------------


def _passes(iou: np.ndarray, options: F1Options) -> np.ndarray:
    if options.matching == "greedy>":
        return iou > options.iou_threshold
    return iou >= options.iou_threshold


@dataclass
class _Matching:
    pairs: np.ndarray  # indices into _Pairs of the matched pairs
    offered: np.ndarray | None  # per truth input: see F1Result.truth_iou_offered (greedy only)


def _greedy_match(pairs: _Pairs, passing: np.ndarray, proposal_rank: np.ndarray, truth_total: int) -> _Matching:
    """Proposals by ascending rank, each picking the remaining truth of highest IoU (ties: truth input order); the
    pick matches when it passes the threshold. A truth's "offer" is the best IoU of the proposals that picked it.

    A proposal whose candidate truths overlap no other proposal picks its best candidate whatever the order: those
    are settled in numpy, and only the proposals that compete for a truth go through the sequential pass.
    """
    p, t, iou = pairs.proposal, pairs.truth, pairs.iou
    offered = np.zeros(truth_total)
    competing = np.zeros(len(proposal_rank), dtype=bool)
    competing[p[np.bincount(t, minlength=truth_total)[t] > 1]] = True

    picks = _best_pair_per_proposal(np.flatnonzero(~competing[p]), pairs)
    offered[t[picks]] = iou[picks]
    matched = [picks[passing[picks]]]

    contest = np.flatnonzero(competing[p])
    contest = contest[np.lexsort((t[contest], -iou[contest], proposal_rank[p[contest]]))]
    matched.append(_sequential_picks(contest, pairs, passing, offered))
    return _Matching(np.concatenate(matched), offered)


def _best_pair_per_proposal(selected: np.ndarray, pairs: _Pairs) -> np.ndarray:
    """For each proposal among the ``selected`` pairs, its pair of highest IoU (ties: lowest truth index)."""
    if len(selected) == 0:
        return selected
    # Stable sort on the proposal alone: the pairs come in runs per proposal already, which this sort finds fast.
    selected = selected[np.argsort(pairs.proposal[selected], kind="stable")]
    proposal, truth, iou = pairs.proposal[selected], pairs.truth[selected], pairs.iou[selected]
    starts = np.flatnonzero(np.r_[True, proposal[1:] != proposal[:-1]])
    run = np.cumsum(np.r_[True, proposal[1:] != proposal[:-1]]) - 1
    best = iou == np.maximum.reduceat(iou, starts)[run]
    lowest_truth = np.minimum.reduceat(np.where(best, truth, np.iinfo(truth.dtype).max), starts)[run]
    return selected[best & (truth == lowest_truth)]


def _sequential_picks(ordered: np.ndarray, pairs: _Pairs, passing: np.ndarray, offered: np.ndarray) -> np.ndarray:
    """The greedy pass over pairs sorted by proposal rank, then IoU descending; fills ``offered``; returns matches."""
    matched, best_offer = [], {}
    proposal_done, truth_taken = set(), set()
    columns = (ordered, pairs.proposal[ordered], pairs.truth[ordered], pairs.iou[ordered], passing[ordered])
    for pair, proposal, truth, iou, passes in zip(*(column.tolist() for column in columns)):
        if proposal in proposal_done or truth in truth_taken:
            continue
        proposal_done.add(proposal)  # this is its best remaining truth: its other candidates no longer count
        if iou > best_offer.get(truth, 0.0):
            best_offer[truth] = iou
        if passes:
            truth_taken.add(truth)
            matched.append(pair)
    if best_offer:
        offered[np.fromiter(best_offer, dtype=np.intp)] = np.fromiter(best_offer.values(), dtype=float)
    return np.array(matched, dtype=np.intp)


def _optimal_match(pairs: _Pairs, passing: np.ndarray, proposal_total: int, truth_total: int) -> _Matching:
    """A maximum-weight matching over the passing pairs, solved per connected component of the candidate graph."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    candidates = np.flatnonzero(passing)
    if len(candidates) == 0:
        return _Matching(candidates, None)
    p, t = pairs.proposal[candidates], pairs.truth[candidates]
    nodes = proposal_total + truth_total
    graph = coo_matrix((np.ones(len(p)), (p, t + proposal_total)), shape=(nodes, nodes))
    _, component = connected_components(graph, directed=False)
    edge_component = component[p]

    lone = np.bincount(edge_component)[edge_component] == 1  # a lone candidate pair matches without solving
    matched = [candidates[lone]]
    shared = np.flatnonzero(~lone)
    shared = shared[np.argsort(edge_component[shared], kind="stable")]
    blocks = np.split(shared, np.flatnonzero(np.diff(edge_component[shared])) + 1) if len(shared) else []
    for block in blocks:
        chosen = _solve_block(p[block], t[block], pairs.iou[candidates[block]], linear_sum_assignment)
        matched.append(candidates[block[chosen]])
    return _Matching(np.concatenate(matched), None)


def _solve_block(p, t, iou, linear_sum_assignment) -> np.ndarray:
    """Which of one component's edges the assignment keeps."""
    rows, row_of = np.unique(p, return_inverse=True)
    columns, column_of = np.unique(t, return_inverse=True)
    # Weight = C + IoU with C above the largest possible match count: more matches always win, then more IoU.
    bonus = min(len(rows), len(columns)) + 1.0
    weights = np.zeros((len(rows), len(columns)))
    weights[row_of, column_of] = bonus + iou
    edge_at = np.full((len(rows), len(columns)), -1)
    edge_at[row_of, column_of] = np.arange(len(p))
    chosen_rows, chosen_columns = linear_sum_assignment(weights, maximize=True)
    chosen = edge_at[chosen_rows, chosen_columns]
    return chosen[chosen >= 0]  # the solver also pairs nodes that share no candidate edge


# --- scoring ----------------------------------------------------------------------------------------------------

# Share of the progress bar per stage: candidate pairs (per group), intersections (per chunk), matching.
_PAIRS_DONE, _AREAS_DONE = 30.0, 90.0


def score(
    truth: PolygonSet,
    proposals: PolygonSet,
    options: F1Options = F1Options(),  # noqa: B008 - frozen, so a shared default is safe
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> F1Result:
    """Match ``proposals`` to ``truth`` group by group and count TP, FP and FN.

    ``progress`` gets a percentage after each group (candidate search) and after each block of intersections, and
    100 at the end; ``is_canceled`` is checked at the same points and :class:`Canceled` raised when it says True.
    """
    _check_lengths(truth, "truth")
    _check_lengths(proposals, "proposals")
    clean_truth = _clean(truth, options.min_area_truth, inclusive=True)
    clean_proposals = _clean(proposals, options.min_area_proposals, inclusive=False)
    truth_total, proposal_total = len(clean_truth.kept), len(clean_proposals.kept)
    names, truth_code, proposal_code = _group_codes(truth.groups, proposals.groups, truth_total, proposal_total)
    report = _Reporter(progress, is_canceled)

    p, t = _candidate_pairs(
        clean_truth, clean_proposals,
        _indices_per_group(truth_code, clean_truth.kept, len(names)),
        _indices_per_group(proposal_code, clean_proposals.kept, len(names)),
        tick=lambda done: report.step(done, len(names), 0.0, _PAIRS_DONE, f"group {done + 1} of {len(names)}"),
    )
    pairs = _overlapping_pairs(
        clean_truth, clean_proposals, p, t,
        tick=lambda done, total: report.step(done, total, _PAIRS_DONE, _AREAS_DONE, "intersections"),
    )
    report.step(0, 1, _AREAS_DONE, 100.0, "matching")
    passing = _passes(pairs.iou, options)
    if options.matching == "optimal":
        matching = _optimal_match(pairs, passing, proposal_total, truth_total)
    else:
        matching = _greedy_match(pairs, passing, _processing_rank(proposals.order, proposal_total), truth_total)

    result = _assemble(pairs, matching, clean_truth, clean_proposals, names, truth_code, proposal_code)
    report.done()
    return result


class _Reporter:
    """Progress and cancellation for :func:`score`."""

    def __init__(self, progress, is_canceled):
        self.progress, self.is_canceled = progress, is_canceled

    def step(self, done: int, total: int, low: float, high: float, where: str) -> None:
        """Called before step ``done`` of ``total``: reports the previous steps and checks for cancellation."""
        if self.progress is not None:
            self.progress(low + (high - low) * done / max(total, 1))
        if self.is_canceled is not None and self.is_canceled():
            raise Canceled(f"scoring canceled at {where}")

    def done(self) -> None:
        if self.progress is not None:
            self.progress(100.0)


def _check_lengths(polygons: PolygonSet, name: str) -> None:
    count = len(polygons.geometries)
    for attribute in ("groups", "order", "areas", "ids"):
        values = getattr(polygons, attribute)
        if values is not None and len(values) != count:
            raise ValueError(f"{name}.{attribute} has {len(values)} values for {count} geometries")


def _processing_rank(order, count: int) -> np.ndarray:
    """The position of each proposal in the greedy pass: input order, or confidence descending (stable)."""
    if order is None:
        return np.arange(count)
    confidence = np.asarray(order, dtype=float)
    sequence = np.argsort(-confidence, kind="stable")  # NaN confidence sorts last
    rank = np.empty(count, dtype=np.intp)
    rank[sequence] = np.arange(count)
    return rank


def _assemble(pairs: _Pairs, matching: _Matching, truth: _Cleaned, proposals: _Cleaned, names, truth_code,
              proposal_code) -> F1Result:
    matched_p, matched_t = pairs.proposal[matching.pairs], pairs.truth[matching.pairs]
    matched_iou = pairs.iou[matching.pairs]

    proposal_status = _statuses(proposals.kept, FP, matched_p)
    proposal_iou = _best_iou(pairs.proposal, pairs.iou, proposals.kept, matched_p, matched_iou)
    proposal_match = np.full(len(proposals.kept), -1, dtype=np.int64)
    proposal_match[matched_p] = matched_t

    truth_status = _statuses(truth.kept, FN, matched_t)
    truth_iou = _best_iou(pairs.truth, pairs.iou, truth.kept, matched_t, matched_iou)
    truth_match = np.full(len(truth.kept), -1, dtype=np.int64)
    truth_match[matched_t] = matched_p

    offered = None
    if matching.offered is not None:
        offered = np.where(truth.kept, matching.offered, np.nan)

    groups = _group_counts(names, truth_code[truth.kept], proposal_code[proposals.kept], proposal_code[matched_p])
    return F1Result(
        groups=groups,
        total=sum(groups.values(), Counts()),
        proposal_status=proposal_status,
        proposal_iou=proposal_iou,
        proposal_match=proposal_match,
        truth_status=truth_status,
        truth_iou=truth_iou,
        truth_match=truth_match,
        truth_cleaning=truth.report,
        proposal_cleaning=proposals.report,
        truth_iou_offered=offered,
    )


def _statuses(kept: np.ndarray, unmatched: str, matched: np.ndarray) -> np.ndarray:
    status = np.where(kept, unmatched, SKIPPED).astype("<U2")
    status[matched] = TP
    return status


def _best_iou(side: np.ndarray, iou: np.ndarray, kept: np.ndarray, matched: np.ndarray, matched_iou) -> np.ndarray:
    """The matched pair's IoU, else the best IoU of any pair (0 without one); NaN where skipped."""
    best = np.zeros(len(kept))
    np.maximum.at(best, side, iou)
    best[matched] = matched_iou
    return np.where(kept, best, np.nan)


def _group_counts(names, truth_codes, proposal_codes, matched_codes) -> dict[str, Counts]:
    truth_per_group = np.bincount(truth_codes, minlength=len(names))
    proposals_per_group = np.bincount(proposal_codes, minlength=len(names))
    matches_per_group = np.bincount(matched_codes, minlength=len(names))
    return {
        name: Counts(tp=int(tp), fp=int(kept_p - tp), fn=int(kept_t - tp))
        for name, tp, kept_p, kept_t in zip(names, matches_per_group, proposals_per_group, truth_per_group)
    }
