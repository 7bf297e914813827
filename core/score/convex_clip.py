"""Intersection areas of convex polygon pairs, clipped in numpy many pairs at a time.

One job: read the convex polygons without holes of a geometry array into vertex arrays (:func:`convex_rings`), and
intersect pairs of such rings with Sutherland-Hodgman clipping on whole arrays (:func:`convex_intersection_areas`),
flagging the pairs where rounding makes a clip ambiguous so that the caller can ask GEOS instead. Many footprints
are convex (rectangles, and most model outputs simplified to a few vertices), and GEOS costs far more per pair.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

_POLYGON = 3  # shapely type id

MAX_CONVEX_VERTICES = 32  # bigger convex rings go through GEOS: padding them would cost more than it saves


@dataclass
class ConvexRings:
    """The vertices of the geometries that are convex polygons without holes: counter-clockwise, no repeats.

    They let the scorer intersect convex pairs in numpy instead of in GEOS: many footprints are convex (rectangles,
    and most model outputs simplified to a few vertices).
    """

    x: np.ndarray  # flat; the rings of one vertex count form a vertex-major block
    y: np.ndarray
    start: np.ndarray  # per geometry: where its first vertex is in ``x`` and ``y``
    stride: np.ndarray  # per geometry: the distance from one of its vertices to the next
    count: np.ndarray  # per geometry: its number of vertices; 0 when it is not a convex polygon


_RINGS_PER_BLOCK = 8192  # small blocks: numpy's temporaries then reuse memory instead of faulting in fresh pages


def convex_rings(geometries: np.ndarray, present: np.ndarray, type_ids: np.ndarray):
    """The convex rings of ``geometries``, and their areas (NaN for the other geometries)."""
    count, start, stride = (np.zeros(len(geometries), dtype=np.intp) for _ in range(3))
    areas = np.full(len(geometries), np.nan)
    coordinates = shapely.get_num_coordinates(geometries)
    # Polygons with holes need no test of their own: their coordinates, read as one ring, do not close on the
    # first point or revisit a point, and fail the convexity test.
    simple = present & (type_ids == _POLYGON) & (coordinates >= 4) & (coordinates <= MAX_CONVEX_VERTICES + 1)
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
    return ConvexRings(x, y, start, stride, count), areas


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



def padded(rings: ConvexRings, geometries: np.ndarray, width: int):
    """x and y (width, pairs) of ring vertices; a short ring repeats its last vertex (zero-length edges only).

    Vertex-major: the few vertices are the rows, so sums over a ring add whole rows (fast in numpy).
    """
    count = rings.count[geometries][None, :]
    step = np.minimum(np.arange(width)[:, None], count - 1)
    vertex = rings.start[geometries][None, :] + step * rings.stride[geometries][None, :]
    return rings.x[vertex], rings.y[vertex]


def convex_intersection_areas(subject, clip):
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
        x, y, ambiguous = clip_by_edge(x, y, start, end)
        unsure |= ambiguous
    twice_area = (x * _next_vertex(y) - _next_vertex(x) * y).sum(axis=0)
    return np.maximum(0.5 * twice_area, 0.0), unsure


def _next_vertex(values: np.ndarray) -> np.ndarray:
    return np.concatenate([values[1:], values[:1]])


def clip_by_edge(x: np.ndarray, y: np.ndarray, start, end):
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
