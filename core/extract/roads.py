"""Road probabilities to a clean centerline graph.

Threshold (nothing where the raster holds no data), fill small holes, thin to a one-pixel skeleton,
trace the skeleton into a graph with nodes at junctions and ends, prune short spurs, join junctions a
road's width apart, bridge small gaps between dead ends that point at each other or at a road, merge
away the nodes left with two edges, simplify and measure.

Large grids are thinned in blocks with a halo, keeping the skeleton pixels of each block's core only:
thinning is local, so these are the pixels a whole-grid run finds (wherever the mask near a block's
border is thinner than the halo: any road is). The graph is then built once from the skeleton of the
whole grid (about a hundredth of its pixels), so roads cut by block borders join naturally and the
result does not depend on the block size.

This module holds the API and runs the steps; the graph's steps have their own modules: the skeleton traced into a
graph (``road_trace``), the graph's editing and cleaning (``road_graph``) and the gaps bridged (``road_gaps``).

Geometries are in grid pixel coordinates until placed on the map: x = column, y = row, pixel corners
at whole numbers (as core.extract.buildings), so a skeleton pixel lies at its centre (col + 0.5, row + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import shapely
import shapely.affinity
from scipy import ndimage
from shapely.geometry import LineString, Point
from skimage.morphology import skeletonize

from .. import progress
from .raster import to_map
from .road_gaps import bridge_gaps
from .road_graph import (
    PRUNE_ROUNDS,
    contract,
    coords_from,
    drop_small_cycles,
    drop_small_pieces,
    merge_close_junctions,
    merge_pass_through,
    polyline_length,
    prune_spurs,
)
from .road_options import RoadOptions
from .road_trace import trace_skeleton
from .tiling import halo_blocks

BLOCK = 2048  # block core size in grid pixels
# Pixels read around a block: thinning a mask up to about this thick never reaches the core from the
# window's edge (each thinning step looks one pixel further), and a road mask is 13 px at 0.3 m.
HALO = 96
END_DIRECTION_M = 6.0  # a dead end points where its last 6 m of line go


@dataclass(frozen=True)
class RoadEdge:
    geometry: LineString  # from the start node to the end node; grid pixel coordinates until placed on the map
    length_m: float
    start: int  # index into RoadNetwork.nodes
    end: int  # equal to start for a closed loop


@dataclass(frozen=True)
class RoadNode:
    geometry: Point
    degree: int  # edge ends meeting here (a closed loop counts twice): 1 a dead end, 3 or more a junction


@dataclass
class RoadNetwork:
    edges: list = field(default_factory=list)  # RoadEdge
    nodes: list = field(default_factory=list)  # RoadNode


def centerlines(prob: np.ndarray, options: RoadOptions, pixel_m: float, valid=None) -> RoadNetwork:
    """The road graph of an in-memory probability array (one block)."""
    height, width = prob.shape

    def read(row, col, h, w):
        return prob[row : row + h, col : col + w], None if valid is None else valid[row : row + h, col : col + w]

    return centerlines_on_grid(read, height, width, options, pixel_m, block=max(height, width, 1))


def centerlines_on_grid(read, height, width, options, pixel_m, block=BLOCK, halo=HALO, report=None,
                        is_canceled=None):
    """The road graph of a whole grid read in blocks: ``read(row, col, h, w) -> (prob, valid or None)``.

    Memory: one block's window at a time, then the skeleton pixels of the whole grid. The result is the
    same for any block size wherever the mask near block borders is thinner than about the halo. Returns
    a RoadNetwork in grid pixel coordinates. ``report(fraction, None)`` after each block; raises
    progress.Canceled when ``is_canceled()`` turns True.
    """
    rows, cols, near_nodata = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)], [np.zeros(0, bool)]
    all_blocks = halo_blocks(height, width, block, halo)
    step = progress.counted(report)
    for number, piece in enumerate(all_blocks):
        progress.check(is_canceled)
        r, c, near = block_skeleton(piece, *piece.read_window(read), options, pixel_m)
        rows.append(r)
        cols.append(c)
        near_nodata.append(near)
        step(number + 1, len(all_blocks))
    progress.check(is_canceled)
    return network_from_skeleton(np.concatenate(rows), np.concatenate(cols), width, options, pixel_m,
                                 near_nodata=np.concatenate(near_nodata))


def block_skeleton(piece, prob, valid, options: RoadOptions, pixel_m: float) -> tuple:
    """One block of ``centerlines_on_grid``: the grid rows and columns of the centerline pixels in its core, and
    which of them lie near nodata, from the probabilities read over its window. A pure function of its inputs."""
    r, c = np.nonzero(piece.core_of(skeleton_mask(prob, valid, options, pixel_m)))
    (r0, _), (c0, _), (wr0, _), (wc0, _) = piece.rows, piece.cols, piece.window_rows, piece.window_cols
    near = _near_nodata(valid, r + r0 - wr0, c + c0 - wc0, options.max_gap_m / pixel_m)
    return (r + r0).astype(np.int32), (c + c0).astype(np.int32), near


def _near_nodata(valid, rows, cols, distance_px: float) -> np.ndarray:
    """Which of these pixels lie within distance_px of a pixel without data: a dead end there is not
    bridged, as the gap may be the missing data and not the road."""
    if valid is None or distance_px <= 0 or not len(rows):
        return np.zeros(len(rows), bool)
    valid = np.asarray(valid, bool)
    if valid.all():
        return np.zeros(len(rows), bool)
    return ndimage.distance_transform_edt(valid)[rows, cols] <= distance_px


def skeleton_mask(prob: np.ndarray, valid, options: RoadOptions, pixel_m: float) -> np.ndarray:
    """One-pixel-wide 8-connected centerlines [H, W] of the thresholded probabilities."""
    mask = prob >= options.threshold
    if valid is not None:
        mask &= np.asarray(valid, bool)
    if not mask.any():
        return mask
    if options.hole_area_m2 > 0:
        mask = _fill_small_holes(mask, int(options.hole_area_m2 / pixel_m**2), valid)
    return skeletonize(mask)


def _fill_small_holes(mask: np.ndarray, max_pixels: int, valid=None) -> np.ndarray:
    """The mask with its holes of at most max_pixels filled, where they also span at most twice the side of
    a square of that area: an unbounded hole could snake from a block's core past its halo, and be judged
    whole in one run and cut (so open) in another."""
    holes, n = ndimage.label(~mask)
    if n == 0:
        return mask
    small = np.bincount(holes.ravel()) <= max_pixels
    small[0] = False
    # a "hole" that reaches the array's edge may be open beyond it
    small[np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))] = False
    if valid is not None:
        small[np.unique(holes[~np.asarray(valid, bool)])] = False  # no road is made up where data is missing
    rows, cols = np.nonzero(small[holes])
    if not len(rows):
        return mask
    label = holes[rows, cols]
    span = np.zeros(n + 1, np.int64)
    for along in (rows, cols):
        low, high = np.full(n + 1, np.iinfo(np.int64).max), np.zeros(n + 1, np.int64)
        np.minimum.at(low, label, along)
        np.maximum.at(high, label, along)
        span = np.maximum(span, high - low + 1)
    small &= span <= 2 * math.sqrt(max_pixels)
    return mask | small[holes]


def network_from_skeleton(rows, cols, width: int, options: RoadOptions, pixel_m: float,
                          near_nodata=None) -> RoadNetwork:
    """The cleaned road graph of skeleton pixels given by their grid rows and columns; a dead end on a pixel
    flagged in ``near_nodata`` is never bridged."""
    graph = trace_skeleton(np.asarray(rows, np.int64), np.asarray(cols, np.int64), width, near_nodata)
    min_loop_px2 = options.hole_area_m2 / pixel_m**2
    drop_small_cycles(graph, min_loop_px2)
    merge_pass_through(graph)
    prune_spurs(graph, options.min_spur_length_m / pixel_m)
    _tidy(graph, options.junction_merge_m / pixel_m, min_loop_px2)
    if options.max_gap_m > 0:
        drop_small_pieces(graph, END_DIRECTION_M / pixel_m)  # specks: too short to say where they point
        bridge_gaps(graph, options.max_gap_m / pixel_m, options.gap_angle_deg, END_DIRECTION_M / pixel_m)
        merge_pass_through(graph)
        prune_spurs(graph, options.min_spur_length_m / pixel_m)  # a bit of noise a bridge tied to a road
        _tidy(graph, options.junction_merge_m / pixel_m, min_loop_px2)
    drop_small_pieces(graph, options.min_piece_length_m / pixel_m)
    _simplify(graph, options.simplify_m / pixel_m, min_loop_px2)
    return _network(graph, pixel_m)


def _tidy(graph, junction_merge_px: float, min_loop_px2: float) -> None:
    merge_close_junctions(graph, junction_merge_px)
    drop_small_cycles(graph, min_loop_px2)
    merge_pass_through(graph)


# --- result -----------------------------------------------------------------------------------------------


def _simplify(graph, tolerance_px: float, min_loop_px2: float) -> None:
    """Douglas-Peucker on every edge; then what that made degenerate goes: two edges simplified onto one
    line, a loop flattened, an edge of no length (its nodes become one)."""
    if tolerance_px > 0:
        for u, v, data in graph.edges(data=True):
            data["coords"] = _simplified(data["coords"], tolerance_px, closed=u == v)
            data["length"] = polyline_length(data["coords"])
    for _ in range(PRUNE_ROUNDS):
        empty = [(u, v, key) for u, v, key, length in graph.edges(keys=True, data="length") if length == 0 and u != v]
        for u, v, key in empty:
            if graph.has_edge(u, v, key):
                contract(graph, u, v, key)
        if not drop_small_cycles(graph, min_loop_px2) and not empty:
            return
        merge_pass_through(graph)


def _simplified(coords, tolerance: float, closed: bool) -> np.ndarray:
    if closed:  # simplified as a ring, which keeps it a ring with an inside
        return np.array(shapely.LinearRing(coords).simplify(tolerance, preserve_topology=True).coords)
    return np.array(LineString(coords).simplify(tolerance, preserve_topology=False).coords)


def _network(graph, pixel_m: float) -> RoadNetwork:
    """Nodes numbered by position (row, then column), edges in a stable order."""
    positions = {node: graph.nodes[node]["xy"] for node in graph.nodes}
    ordered = sorted(graph.nodes, key=lambda node: (positions[node][1], positions[node][0]))
    number = {node: i for i, node in enumerate(ordered)}
    nodes = [RoadNode(Point(positions[node]), int(graph.degree(node))) for node in ordered]
    edges = []
    for u, v, data in graph.edges(data=True):
        start, stop = sorted((u, v), key=number.get)
        coords = coords_from(data, start)
        if start == stop and tuple(coords[1]) > tuple(coords[-2]):
            coords = coords[::-1]  # a loop runs the same way whatever its traced direction
        line = LineString(coords)
        edges.append(RoadEdge(line, float(line.length * pixel_m), number[start], number[stop]))
    edges.sort(key=lambda edge: (edge.start, edge.end, edge.geometry.coords[1]))
    return RoadNetwork(edges, nodes)


# --- on the map -------------------------------------------------------------------------------------------


def network_on_map(network: RoadNetwork, transform) -> RoadNetwork:
    """The network in the raster's CRS; lengths stay in metres as measured on the grid."""
    return RoadNetwork(
        [replace(edge, geometry=to_map(edge.geometry, transform)) for edge in network.edges],
        [replace(node, geometry=to_map(node.geometry, transform)) for node in network.nodes],
    )
