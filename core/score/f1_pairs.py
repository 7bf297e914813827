"""The proposal-truth pairs that overlap, and their IoU: the candidate search and the areas behind F1 matching.

One job: find the pairs whose bounding boxes meet (one STRtree per group, queried once with all of the group's
proposals), compute their intersection areas in bulk (convex pairs clipped in numpy by :mod:`core.score.convex_clip`,
the others through ``shapely.intersection`` in chunks, with a pair-by-pair retry when GEOS fails), and keep those
with a positive overlap, with IoU = inter / (area_a + area_b - inter).

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .convex_clip import ConvexRings, convex_intersection_areas, padded
from .polygon_cleaning import Cleaned

_PAIRS_PER_CHUNK = 8192  # bounds the memory of the clipping arrays; big enough to amortise numpy's call overhead


@dataclass
class Pairs:
    """Proposal-truth pairs with a positive overlap (indices into the inputs), and their IoU."""

    proposal: np.ndarray
    truth: np.ndarray
    iou: np.ndarray


def candidate_pairs(truth: Cleaned, proposals: Cleaned, truth_by_group, proposals_by_group, tick):
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


def overlapping_pairs(truth: Cleaned, proposals: Cleaned, p: np.ndarray, t: np.ndarray, tick) -> Pairs:
    """The candidate pairs (``p``, ``t``) that overlap, with their IoU; ``tick(chunk, chunks)`` before each chunk."""
    intersection = np.zeros(len(p))
    convex = (proposals.rings.count[p] > 0) & (truth.rings.count[t] > 0)
    chunks = _convex_chunks(p, t, convex, proposals.rings, truth.rings) + _geos_chunks(np.flatnonzero(~convex))
    for number, (pairs, width_p, width_t) in enumerate(chunks):
        tick(number, len(chunks))
        if width_p:
            areas, unsure = convex_intersection_areas(
                padded(proposals.rings, p[pairs], width_p), padded(truth.rings, t[pairs], width_t)
            )
            intersection[pairs] = areas
            pairs = pairs[unsure]  # rounding made a clip ambiguous: GEOS decides those few
        intersection[pairs] = intersection_areas(proposals.geometries[p[pairs]], truth.geometries[t[pairs]])
    area_p, area_t = proposals.shape_areas[p], truth.shape_areas[t]
    smaller = np.minimum(area_p, area_t)
    # Rounding, at 1e-12 of the smaller area: polygons that only touch leave a trace of overlap (that is none), and
    # one inside the other (or the same polygon twice) overlaps by its whole area, so that IoU 1 is exactly 1.
    overlapping = intersection > 1e-12 * smaller
    intersection = np.where(intersection > (1 - 1e-12) * smaller, smaller, intersection)
    union = area_p + area_t - intersection
    iou = intersection[overlapping] / union[overlapping]
    return Pairs(p[overlapping], t[overlapping], iou)


def _convex_chunks(p, t, convex, proposal_rings: ConvexRings, truth_rings: ConvexRings):
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


def intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The area of ``a[i] & b[i]`` for each i, through GEOS."""
    try:
        return shapely.area(shapely.intersection(a, b))
    except shapely.errors.GEOSException:
        # Rare robustness failures of GEOS on valid input: retry the pairs one by one so one bad pair costs only
        # itself.
        return np.array([_one_intersection_area(x, y) for x, y in zip(a, b)], dtype=float)


def _one_intersection_area(a, b) -> float:
    try:
        return shapely.area(shapely.intersection(a, b))
    except shapely.errors.GEOSException:
        extent = np.ptp(shapely.bounds(np.array([a, b], dtype=object)).reshape(-1, 2), axis=0).max()
        return shapely.area(shapely.intersection(a, b, grid_size=1e-9 * max(1.0, float(extent))))
