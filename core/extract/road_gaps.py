"""Bridging the gaps of a road graph: a dead end joined to another that points back at it, or to the road it points
at (cutting that road there). A step of :mod:`core.extract.roads`."""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity
from scipy.spatial import cKDTree

from .road_graph import add_edge, coords_from, new_node, point_at

SNAP_PX = 1.5  # a bridge landing this close to a node joins that node instead of cutting the road


def bridge_gaps(graph, max_px: float, angle_deg: float, reach_px: float) -> None:
    """Join dead ends that point at each other across at most max_px, closest pairs first; then join each
    remaining dead end to the road it points at within max_px, cutting that road there."""
    ends, xy, direction = _dead_ends(graph, reach_px)
    if not ends:
        return
    cos_limit = math.cos(math.radians(angle_deg))
    used = np.zeros(len(ends), bool)
    pairs = cKDTree(xy).query_pairs(max_px, output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        gap = xy[j] - xy[i]
        distance = np.hypot(gap[:, 0], gap[:, 1])
        unit = gap / np.maximum(distance, 1e-9)[:, None]
        facing = ((direction[i] * unit).sum(1) >= cos_limit) & ((direction[j] * -unit).sum(1) >= cos_limit)
        for k in np.flatnonzero(facing)[np.argsort(distance[facing], kind="stable")]:
            a, b = ends[i[k]], ends[j[k]]
            if not used[i[k]] and not used[j[k]] and not graph.has_edge(a, b):
                used[i[k]] = used[j[k]] = True
                add_edge(graph, a, b, np.vstack([xy[i[k]], xy[j[k]]]))
    remaining = np.flatnonzero(~used)
    if len(remaining):
        _bridge_to_roads(graph, [ends[k] for k in remaining], xy[remaining], direction[remaining], max_px, cos_limit)


def _dead_ends(graph, reach_px: float) -> tuple:
    """Degree-1 nodes, their positions and unit directions: outwards along their last reach_px of line,
    less its last quarter, where thinning may bend a blunt road end towards a corner."""
    ends, xy, direction = [], [], []
    unbridgeable = graph.graph["unbridgeable"]
    for node in sorted(graph.nodes):
        if graph.degree[node] != 1 or node in unbridgeable:
            continue
        (_, _, data), = graph.edges(node, data=True)
        path = coords_from(data, node)
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
        far = min(reach_px, along[-1])
        outwards = point_at(path, along, far / 4) - point_at(path, along, far)
        norm = math.hypot(*outwards)
        if norm > 0:
            ends.append(node)
            xy.append(path[0])
            direction.append(outwards / norm)
    return ends, np.array(xy).reshape(-1, 2), np.array(direction).reshape(-1, 2)


def _bridge_to_roads(graph, ends, xy, direction, max_px, cos_limit) -> None:
    edges = list(graph.edges(keys=True, data=True))
    polylines = _Polylines([data["coords"] for *_, data in edges])
    is_end = set(ends)
    own_of = {node: k for k, (u, v, _, _) in enumerate(edges) for node in (u, v) if node in is_end}
    own = np.array([own_of[end] for end in ends])
    found = [_nearest_in_front(polylines, own, xy, direction, max_px, cos_limit),
             _ray_hits(polylines, own, xy, direction, max_px)]
    end, edge, distance, position = (np.concatenate(column) for column in zip(*found))
    usable = (distance > 0.5) & (distance <= max_px)
    end, edge, distance, position = end[usable], edge[usable], distance[usable], position[usable]
    order = np.lexsort((distance, end))
    closest = order[np.unique(end[order], return_index=True)[1]]
    cuts: dict = {}  # edge -> [(position along it, end)]
    for k in closest.tolist():
        cuts.setdefault(int(edge[k]), []).append((float(position[k]), int(end[k])))
    for k, at in cuts.items():
        u, v, key, data = edges[k]
        landing = _cut_edge(graph, u, v, key, data, sorted(at))
        for e, node in landing.items():
            if not graph.has_edge(ends[e], node):
                add_edge(graph, ends[e], node, np.vstack([xy[e], graph.nodes[node]["xy"]]))


class _Polylines:
    """Edges as shapely lines (for the spatial index) and as one flat array of vertices (for arithmetic)."""

    def __init__(self, coords: list):
        sizes = np.array([len(c) for c in coords])
        self.vertices = np.vstack(coords)
        self.first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.segments = sizes - 1
        self.lines = shapely.linestrings(self.vertices, indices=np.repeat(np.arange(len(coords)), sizes))
        self.tree = shapely.STRtree(self.lines)
        step = np.concatenate([[0.0], np.hypot(*np.diff(self.vertices, axis=0).T)])
        step[self.first] = 0.0
        total = np.cumsum(step)
        self.along = total - np.repeat(total[self.first], sizes)  # distance from the edge's first vertex


def _nearest_in_front(polylines, own, xy, direction, max_px, cos_limit) -> tuple:
    """(end, edge, distance, position along the edge) of each edge's nearest point that an end points at."""
    points = shapely.points(xy)
    end, edge = polylines.tree.query(points, predicate="dwithin", distance=max_px)
    other = own[end] != edge
    end, edge = end[other], edge[other]
    position = shapely.line_locate_point(polylines.lines[edge], points[end])
    gap = shapely.get_coordinates(shapely.line_interpolate_point(polylines.lines[edge], position)) - xy[end]
    distance = np.hypot(gap[:, 0], gap[:, 1])
    in_front = (direction[end] * gap).sum(1) >= cos_limit * distance
    return end[in_front], edge[in_front], distance[in_front], position[in_front]


def _ray_hits(polylines, own, xy, direction, max_px) -> tuple:
    """(end, edge, distance, position along the edge) where an end's line carried on for max_px crosses an edge.
    Computed here, segment by segment: a GEOS overlay of two lines can fail on pixel-grid coordinates."""
    reach = direction * max_px
    rays = shapely.linestrings(np.stack([xy, xy + reach], axis=1))
    end, edge = polylines.tree.query(rays, predicate="intersects")
    other = own[end] != edge
    end, edge = end[other], edge[other]
    count = polylines.segments[edge]
    pair = np.repeat(np.arange(len(end)), count)
    within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # segment number in its edge
    segment = np.repeat(polylines.first[edge], count) + within
    p, q = polylines.vertices[segment], polylines.vertices[segment + 1]
    origin, ray, side = xy[end[pair]], reach[end[pair]], q - p
    offset = p - origin
    denominator = _cross(ray, side)
    with np.errstate(divide="ignore", invalid="ignore"):
        t, s = _cross(offset, side) / denominator, _cross(offset, ray) / denominator
    hit = (denominator != 0) & (t >= 0) & (t <= 1) & (s >= 0) & (s <= 1)
    length = np.hypot(side[:, 0], side[:, 1])
    position = polylines.along[segment] + s * length
    return end[pair[hit]], edge[pair[hit]], t[hit] * max_px, position[hit]


def _cross(u, v) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def _cut_edge(graph, u, v, key, data, at) -> dict:
    """Cut an edge at (position, end) marks along it (sorted); returns end -> node it lands on. A mark near
    either node, or near the mark before it, lands on that node."""
    coords = data["coords"]
    head, tail = data["start"], (v if data["start"] == u else u)
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
    total = along[-1]
    landing, stops = {}, [(0.0, head)]
    for position, end in at:
        if position <= SNAP_PX:
            landing[end] = head
        elif position >= total - SNAP_PX:
            landing[end] = tail
        elif stops[-1][1] != head and position - stops[-1][0] <= SNAP_PX:
            landing[end] = stops[-1][1]
        else:
            stops.append((position, new_node(graph, point_at(coords, along, position))))
            landing[end] = stops[-1][1]
    if len(stops) == 1:
        return landing
    stops.append((total, tail))
    graph.remove_edge(u, v, key)
    for (p0, n0), (p1, n1) in zip(stops, stops[1:]):
        inner = coords[(along > p0) & (along < p1)]
        start = graph.nodes[n0]["xy"] if n0 != head else coords[0]
        stop = graph.nodes[n1]["xy"] if n1 != tail else coords[-1]
        add_edge(graph, n0, n1, np.vstack([start, inner, stop]))
    return landing
