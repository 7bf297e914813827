"""Score a road-network proposal against truth with APLS (Average Path Length Similarity).

One job: given truth and proposal centerlines (shapely LineStrings or MultiLineStrings in metres), build a road
graph of each, compare the lengths of the shortest paths between control points, and return the APLS score
(Van Etten et al., arXiv 1807.01232; ``shared/REFERENCE.md``), optionally per group (tile) and averaged over the
groups as the SpaceNet road challenge does. The steps follow CosmiQ's reference implementation:

1. Graph. Lines meet where they share a vertex (within ``node_tolerance_m``); lines that merely cross do not,
   because bridges and tunnels cross without a junction. Nodes are the junctions and the dead ends; vertices that
   only bend a road are folded into its edge (osmnx's "simplify"). Connected pieces shorter in total than
   ``min_subgraph_length_m`` are dropped (label fragments at tile borders).
2. Control points: every node, plus points spread evenly along each edge at most ``control_spacing_m`` apart (one
   in the middle of an edge of 0.75 to 1 spacing; none on shorter edges).
3. Snapping: each control point of one graph is inserted into the other graph at the nearest point of its nearest
   edge when that edge is within ``max_snap_m``; a point farther away is missing there.
4. Paths: for every ordered pair (a, b) of control points joined by a path of length L >= ``min_path_length_m`` in
   their own graph, the length L' of the path between their places in the other graph costs
   ``min(1, |L - L'| / L)``; a missing point or path costs 1. A half score is 1 minus the mean cost:
   ``gt_to_prop`` takes the truth's control points onto the proposal, ``prop_to_gt`` the other way round. APLS is
   their harmonic mean (0 when either half is 0).

Conventions: an empty proposal scores 0, and so does an empty truth, with or without a proposal (as with F1: there
is nothing to find). Paths are weighted by length. ``topo_hole_size`` belongs to the TOPO metric and plays no part
here. Two quirks of the reference are kept by default because its scores depend on them (see ``drop_loops`` and
``one_point_per_node``). Differences that remain: the reference measures edges on a sphere (haversine) while this
module measures them in the plane of a metric CRS, so an edge within 0.2 % of a multiple of the spacing can get one
control point more or less; and every control point is compared even on large graphs (the reference samples 500
nodes, without control points along the edges, once the truth has 500 nodes or more).

Speed: no node is added for a control point. Scipy's compiled Dijkstra runs on the graph of junctions only, from
the ends of the edges that hold the control points, and the length between two points on edges is the shortest of
the four ways through their edges' ends (or along their common edge), computed for blocks of pairs at once with
numpy; the blocks bound the memory. The pairs still grow with the square of the control points, so large areas are
best scored per tile, as the challenge does. Building graphs and snapping are whole-array numpy and shapely
operations. No QGIS and no networkx here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ..geometry_arrays import object_array
from ..progress import Canceled, IsCanceled, Report, check, counted  # noqa: F401 - Canceled: part of this API
from .apls_options import CONTROL_SPACING_M, MAX_SNAP_M, AplsOptions  # noqa: F401 - part of this API

_LINESTRING, _LINEARRING, _MULTILINESTRING = 1, 2, 5  # shapely type ids
_PAIRS_PER_BLOCK = 1 << 20  # pairs of places (or place and node) handled at once: arrays of 8 MiB


class AplsInputError(ValueError):
    """The input cannot be scored as road centerlines; the message says which feature and why."""


@dataclass
class AplsResult:
    """The score, its two halves, and what went into them."""

    apls: float = 0.0
    gt_to_prop: float = 0.0  # the truth's control points snapped onto the proposal
    prop_to_gt: float = 0.0  # the proposal's control points snapped onto the truth
    control_points_truth: int = 0
    control_points_proposal: int = 0
    snapped_truth: int = 0  # truth control points that found the proposal within max_snap_m
    snapped_proposal: int = 0  # proposal control points that found the truth within max_snap_m
    paths_truth: int = 0  # ordered pairs of truth control points compared (gt_to_prop)
    paths_proposal: int = 0  # ordered pairs of proposal control points compared (prop_to_gt)
    length_truth_m: float = 0.0  # road length of the truth graph
    length_proposal_m: float = 0.0


@dataclass
class AplsGroups:
    """One result per group (tile), sorted by group name, and the means over the groups."""

    groups: dict[str, AplsResult] = field(default_factory=dict)

    @property
    def mean_apls(self) -> float:
        return self._mean("apls")

    @property
    def mean_gt_to_prop(self) -> float:
        return self._mean("gt_to_prop")

    @property
    def mean_prop_to_gt(self) -> float:
        return self._mean("prop_to_gt")

    def _mean(self, name: str) -> float:
        values = [getattr(result, name) for result in self.groups.values()]
        return float(np.mean(values)) if values else 0.0


# --- the metric -------------------------------------------------------------------------------------------------


def score(truth: Iterable, proposals: Iterable, options: AplsOptions = AplsOptions(),  # noqa: B008 - frozen
          crs: str | None = None) -> AplsResult:
    """APLS of ``proposals`` against ``truth``, both sequences of (Multi)LineStrings; None and empty skipped.

    ``crs`` (WKT or "EPSG:n") is the CRS of both inputs: they are then measured in the UTM zone of the truth's centre
    (the proposal's when there is no truth). ``None``: the coordinates are metres already.
    """
    truth_lines, proposal_lines = _line_parts(truth, "truth"), _line_parts(proposals, "proposals")
    if crs is not None:
        either = truth_lines if len(truth_lines) else proposal_lines
        if len(either):
            utm = utm_crs_for(either, crs)
            truth_lines = reproject_lines(truth_lines, crs, utm)
            proposal_lines = reproject_lines(proposal_lines, crs, utm)
    truth_graph, proposal_graph = build_graph(truth_lines, options), build_graph(proposal_lines, options)

    result = AplsResult(length_truth_m=truth_graph.length_m, length_proposal_m=proposal_graph.length_m)
    if truth_graph.node_count == 0 or proposal_graph.node_count == 0:
        return result  # nothing to find, or nothing found: 0 either way
    gt_to_prop, prop_to_gt = compare_halves(truth_graph, proposal_graph, options)
    result.control_points_truth = len(gt_to_prop.own_points)
    result.control_points_proposal = len(prop_to_gt.own_points)
    result.snapped_truth, result.snapped_proposal = gt_to_prop.snapped_count, prop_to_gt.snapped_count
    result.gt_to_prop, result.paths_truth = half_score(gt_to_prop, options.min_path_length_m)
    result.prop_to_gt, result.paths_proposal = half_score(prop_to_gt, options.min_path_length_m)
    if result.gt_to_prop > 0 and result.prop_to_gt > 0:
        result.apls = 2.0 / (1.0 / result.gt_to_prop + 1.0 / result.prop_to_gt)
    return result


def score_by_group(
    truth: Iterable,
    truth_groups: Iterable | None,
    proposals: Iterable,
    proposal_groups: Iterable | None,
    options: AplsOptions = AplsOptions(),  # noqa: B008 - frozen, so a shared default is safe
    crs: str | None = None,
    report: Report | None = None,
    is_canceled: IsCanceled | None = None,
) -> AplsGroups:
    """APLS per group (tile or image id, one key per line; None: a single group ""), as the road challenge scores
    each tile on its own; ``crs`` as in :func:`score`, with a UTM zone per group.

    Every group found on either side gets a result, so a group with lines on one side only scores 0, and the means
    of :class:`AplsGroups` run over all of them. ``report(fraction, None)`` after each group; ``is_canceled`` is
    checked before each group and :class:`Canceled` raised when it says True.
    """
    truth, proposals = object_array(truth), object_array(proposals)
    truth_keys, proposal_keys = _group_keys(truth_groups, len(truth)), _group_keys(proposal_groups, len(proposals))
    names, code = np.unique(np.concatenate([truth_keys, proposal_keys]), return_inverse=True)
    truth_of, proposals_of = _members(code[: len(truth)], len(names)), _members(code[len(truth):], len(names))
    results = AplsGroups()
    step = counted(report)
    for index, name in enumerate(names.tolist()):
        check(is_canceled, f"APLS canceled at group {index + 1} of {len(names)}")
        results.groups[name] = score(truth[truth_of[index]], proposals[proposals_of[index]], options, crs)
        step(index + 1, len(names))
    return results


@dataclass
class Half:
    """One direction of the comparison: the control points of ``own`` and where each lies in ``other``."""

    own: RoadGraph
    own_points: Places  # every node of ``own`` and the points spread along its edges
    other: RoadGraph
    in_other: Places  # per control point: its place in ``other``, meaningful where ``snapped``
    snapped: np.ndarray  # per control point: True where ``other`` was within max_snap_m (and the spot was kept)

    @property
    def snapped_count(self) -> int:
        return int(np.count_nonzero(self.snapped))


def compare_halves(truth: RoadGraph, proposal: RoadGraph, options: AplsOptions) -> tuple[Half, Half]:
    """(truth onto proposal, proposal onto truth), ready for :func:`half_score`."""
    halves = []
    for own, other in ((truth, proposal), (proposal, truth)):
        points, xy = control_points(own, options.control_spacing_m)
        in_other, snapped = snap_points(xy, other, options.max_snap_m, options.one_point_per_node)
        halves.append(Half(own, points, other, in_other, snapped))
    return halves[0], halves[1]


def half_score(half: Half, min_path_length: float) -> tuple[float, int]:
    """1 - the mean path cost over the ordered pairs of ``half``'s control points, and the number of pairs."""
    count = len(half.own_points)
    snapped = np.flatnonzero(half.snapped)
    total_cost, pairs = 0.0, 0
    block = max(1, _PAIRS_PER_BLOCK // max(count, half.own.node_count, half.other.node_count, 1))
    for start in range(0, count, block):
        rows = np.arange(start, min(start + block, count))
        own_lengths = path_lengths(half.own, half.own_points.take(rows), half.own_points)
        other_lengths = np.full(own_lengths.shape, np.inf)
        found = rows[half.snapped[rows]]
        if len(found):
            other_lengths[np.ix_(found - start, snapped)] = path_lengths(
                half.other, half.in_other.take(found), half.in_other.take(snapped))
        compared = np.isfinite(own_lengths) & (own_lengths >= min_path_length) & (own_lengths > 0)
        length, other_length = own_lengths[compared], other_lengths[compared]
        # A missing point or path has other_length inf: cost 1, as for any path off by its whole length or more.
        total_cost += float(np.minimum(1.0, np.abs(length - other_length) / length).sum())
        pairs += len(length)
    return (1.0 - total_cost / pairs if pairs else 0.0), pairs


def path_lengths(graph: RoadGraph, sources: Places, targets: Places) -> np.ndarray:
    """(sources, targets) shortest path lengths along ``graph``'s roads; inf where no path joins them.

    Dijkstra runs on the graph of junctions only, from the ends of the sources' edges; a path from a place on an
    edge leaves by one of the edge's two ends and reaches a target by one of its edge's ends, or stays on the edge.
    """
    ends, end_row = np.unique(np.concatenate([sources.start, sources.end]), return_inverse=True)
    from_ends = graph.junctions.lengths_from(ends)
    lengths = np.full((len(sources), len(targets)), np.inf)
    for source_end, source_way in ((end_row[: len(sources)], sources.to_start),
                                   (end_row[len(sources):], sources.to_end)):
        for target_end, target_way in ((targets.start, targets.to_start), (targets.end, targets.to_end)):
            via = from_ends[np.ix_(source_end, target_end)]
            via += source_way[:, None]
            via += target_way
            np.minimum(lengths, via, out=lengths)
    row, column = np.nonzero((sources.edge[:, None] == targets.edge) & (sources.edge[:, None] >= 0))
    along = np.abs(sources.to_start[row] - targets.to_start[column])
    lengths[row, column] = np.minimum(lengths[row, column], along)
    return lengths


# --- graphs -----------------------------------------------------------------------------------------------------


@dataclass
class RoadGraph:
    """Roads as a graph: nodes at junctions and dead ends, one edge per piece of road between them."""

    node_xy: np.ndarray  # (nodes, 2)
    edge_nodes: np.ndarray  # (edges, 2): the node at the start and at the end of each edge's line
    edge_lines: np.ndarray  # object array of LineStrings
    edge_lengths: np.ndarray

    @property
    def node_count(self) -> int:
        return len(self.node_xy)

    @property
    def length_m(self) -> float:
        return float(self.edge_lengths.sum())

    @cached_property
    def junctions(self) -> Junctions:
        return Junctions.of(self)


@dataclass
class Junctions:
    """What Dijkstra needs: the undirected sparse adjacency matrix of a road graph's edge lengths."""

    adjacency: object  # scipy CSR matrix, upper triangle, one entry per pair of neighbours
    node_count: int

    @classmethod
    def of(cls, graph: RoadGraph) -> Junctions:
        low, high = np.sort(graph.edge_nodes, axis=1).T
        not_loop = low != high  # a loop is never part of a shortest path between its ends
        low, high, length = low[not_loop], high[not_loop], graph.edge_lengths[not_loop]
        order = np.lexsort((length, high, low))
        low, high, length = low[order], high[order], length[order]
        shortest = np.ones(len(low), dtype=bool)  # of parallel edges, the shortest (first after the sort)
        shortest[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
        shape = (graph.node_count, graph.node_count)
        return cls(coo_matrix((length[shortest], (low[shortest], high[shortest])), shape=shape).tocsr(),
                   graph.node_count)

    def lengths_from(self, sources: np.ndarray) -> np.ndarray:
        """(sources, nodes) shortest path lengths; inf where there is no path."""
        if self.adjacency.nnz == 0:  # scipy's dijkstra refuses a graph without edges
            lengths = np.full((len(sources), self.node_count), np.inf)
            lengths[np.arange(len(sources)), sources] = 0.0
            return lengths
        return dijkstra(self.adjacency, directed=False, indices=sources)


def build_graph(lines: np.ndarray, options: AplsOptions = AplsOptions()) -> RoadGraph:  # noqa: B008 - frozen
    """The road graph of an array of 2D LineStrings in metres (see :func:`score` for the rules)."""
    coordinates, line = shapely.get_coordinates(lines, return_index=True)
    if len(coordinates) == 0:
        return _empty_graph()
    vertex, vertex_xy = _merge_close_points(coordinates, options.node_tolerance_m)
    same_line = line[1:] == line[:-1]
    start, end = vertex[:-1][same_line], vertex[1:][same_line]
    # Each straight piece once: a road drawn twice (overlapping labels or OSM ways) must not count twice.
    pieces = np.unique(np.sort(np.stack([start, end], axis=1)[start != end], axis=1), axis=0)
    if len(pieces) == 0:
        return _empty_graph()
    # GEOS' line merger joins pieces through every vertex where exactly two of them meet: osmnx's simplify.
    edges = shapely.get_parts(shapely.line_merge(shapely.multilinestrings(shapely.linestrings(vertex_xy[pieces]))))
    ends = shapely.get_coordinates(shapely.get_point(edges, [[0], [-1]]).T.ravel())
    end_vertex = cKDTree(vertex_xy).query(ends)[1].reshape(-1, 2)
    if options.drop_loops:
        edges, end_vertex = _without_loops_on_junctions(edges, end_vertex)
    used, edge_nodes = np.unique(end_vertex, return_inverse=True)
    graph = RoadGraph(vertex_xy[used], edge_nodes.reshape(-1, 2), edges, shapely.length(edges))
    return _without_small_pieces(graph, options.min_subgraph_length_m)


def _empty_graph() -> RoadGraph:
    return RoadGraph(np.empty((0, 2)), np.empty((0, 2), dtype=np.intp), np.empty(0, dtype=object), np.empty(0))


def _merge_close_points(xy: np.ndarray, tolerance: float):
    """A point id per row of ``xy`` (points within ``tolerance`` share one, transitively) and each id's
    coordinates (those of its first point)."""
    close = cKDTree(xy).query_pairs(tolerance, output_type="ndarray")
    label = _components(len(xy), close)
    _, first, point = np.unique(label, return_index=True, return_inverse=True)
    return point, xy[first]


def _without_loops_on_junctions(edges: np.ndarray, end_vertex: np.ndarray):
    """The edges without those that leave a junction and come back to it (a loop road hanging on the network).

    The reference loses them while it removes duplicate edges. A ring on its own stays: the reference does not
    simplify it into a loop.
    """
    loop = end_vertex[:, 0] == end_vertex[:, 1]
    ends_at_vertex = np.bincount(end_vertex.ravel())
    hanging = loop & (ends_at_vertex[end_vertex[:, 0]] > 2)
    return edges[~hanging], end_vertex[~hanging]


def _without_small_pieces(graph: RoadGraph, min_length: float) -> RoadGraph:
    """``graph`` without its connected pieces shorter in total than ``min_length``."""
    if min_length <= 0 or graph.node_count == 0:
        return graph
    piece = _components(graph.node_count, graph.edge_nodes)
    piece_length = np.bincount(piece[graph.edge_nodes[:, 0]], weights=graph.edge_lengths, minlength=piece.max() + 1)
    keep_node = piece_length[piece] >= min_length
    if keep_node.all():
        return graph
    keep_edge = keep_node[graph.edge_nodes[:, 0]]
    new_id = np.cumsum(keep_node) - 1
    return RoadGraph(graph.node_xy[keep_node], new_id[graph.edge_nodes[keep_edge]], graph.edge_lines[keep_edge],
                     graph.edge_lengths[keep_edge])


def _components(node_count: int, node_pairs: np.ndarray) -> np.ndarray:
    """The connected component of each node, numbered from 0."""
    links = coo_matrix((np.ones(len(node_pairs)), (node_pairs[:, 0], node_pairs[:, 1])), shape=(node_count,) * 2)
    return connected_components(links, directed=False)[1]


# --- control points and snapping --------------------------------------------------------------------------------


@dataclass
class Places:
    """Points on a road graph, each on an edge or at a node, by the distances to the ends of its edge."""

    start: np.ndarray  # the node at the start of the edge; for a place at a node, that node
    end: np.ndarray  # the node at the end of the edge; for a place at a node, that node again
    to_start: np.ndarray  # distance along the edge to ``start`` (0 at a node)
    to_end: np.ndarray
    edge: np.ndarray  # -1 for a place at a node

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index) -> Places:
        return Places(*(getattr(self, name)[index] for name in _PLACE_FIELDS))

    def put(self, index, places: Places) -> None:
        for name in _PLACE_FIELDS:
            getattr(self, name)[index] = getattr(places, name)

    @classmethod
    def at_nodes(cls, nodes: np.ndarray) -> Places:
        return cls(nodes.copy(), nodes.copy(), np.zeros(len(nodes)), np.zeros(len(nodes)),
                   np.full(len(nodes), -1, dtype=np.intp))

    @classmethod
    def along(cls, graph: RoadGraph, edge: np.ndarray, position: np.ndarray) -> Places:
        """The places ``position`` metres along ``edge``; those at an edge's end are places at its node."""
        length = graph.edge_lengths[edge]
        to_start = np.clip(position, 0.0, length)
        places = cls(graph.edge_nodes[edge, 0], graph.edge_nodes[edge, 1], to_start, length - to_start, edge.copy())
        at_start, at_end = to_start <= 0, to_start >= length
        places.end[at_start] = places.start[at_start]
        places.start[at_end] = places.end[at_end]
        for at_node in (at_start, at_end):
            places.to_start[at_node] = places.to_end[at_node] = 0.0
            places.edge[at_node] = -1
        return places

    @classmethod
    def concatenate(cls, first: Places, second: Places) -> Places:
        return cls(*(np.concatenate([getattr(first, name), getattr(second, name)]) for name in _PLACE_FIELDS))


_PLACE_FIELDS = ("start", "end", "to_start", "to_end", "edge")


def control_points(graph: RoadGraph, spacing: float) -> tuple[Places, np.ndarray]:
    """The control points of a graph, every node then the points spread along the edges, and their coordinates."""
    edge, position = _evenly_spaced(graph.edge_lengths, spacing)
    along = shapely.get_coordinates(shapely.line_interpolate_point(graph.edge_lines[edge], position))
    places = Places.concatenate(Places.at_nodes(np.arange(graph.node_count)), Places.along(graph, edge, position))
    return places, np.concatenate([graph.node_xy, along.reshape(-1, 2)])


def _evenly_spaced(lengths: np.ndarray, spacing: float):
    """Edge index and distance along the edge of the control points: edges of at least 0.75 spacing are cut into
    max(2, ceil(length / spacing)) equal parts (the reference's rule)."""
    parts = np.where(lengths < 0.75 * spacing, 1, np.maximum(2, np.ceil(lengths / spacing))).astype(np.intp)
    per_edge = parts - 1
    edge = np.repeat(np.arange(len(lengths)), per_edge)
    step = np.arange(len(edge)) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge) + 1  # 1, 2, ... per edge
    return edge, lengths[edge] * step / parts[edge]


def snap_points(xy: np.ndarray, graph: RoadGraph, max_distance: float,
                one_point_per_node: bool = True) -> tuple[Places, np.ndarray]:
    """The nearest place of ``graph`` to each point, and whether it is within ``max_distance`` (False: the point is
    missing in ``graph``). ``one_point_per_node``: see :class:`AplsOptions`."""
    points = shapely.points(xy)
    found, edge = np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    if len(xy) and len(graph.edge_lines):
        found, edge = shapely.STRtree(graph.edge_lines).query_nearest(points, max_distance=max_distance,
                                                                      all_matches=False)
    places = Places.at_nodes(np.zeros(len(xy), dtype=np.intp))  # placeholders where nothing was found
    places.put(found, Places.along(graph, edge, shapely.line_locate_point(graph.edge_lines[edge], points[found])))
    snapped = np.zeros(len(xy), dtype=bool)
    snapped[found] = True
    if one_point_per_node and len(found):
        # The reference inserts the points one by one and a point landing where a node already is takes over that
        # node's name: of the points on one spot, only the last one keeps it.
        spot = np.stack([places.edge[found], np.where(places.edge[found] < 0, places.start[found], -1),
                         places.to_start[found]], axis=1)
        spot_of = np.unique(spot, axis=0, return_inverse=True)[1].ravel()
        last = np.full(spot_of.max() + 1, -1)
        np.maximum.at(last, spot_of, found)
        snapped[found] = False
        snapped[last] = True
    return places, snapped


# --- input ------------------------------------------------------------------------------------------------------


def _line_parts(lines: Iterable, side: str) -> np.ndarray:
    """The 2D LineStrings of the input's (Multi)LineStrings; None and empty geometries are skipped."""
    geometries = object_array(lines)
    for index, geometry in enumerate(geometries):
        if geometry is not None and not isinstance(geometry, shapely.Geometry):
            raise AplsInputError(f"{side}: item {index} is a {type(geometry).__name__}, not a shapely geometry")
    type_id = shapely.get_type_id(geometries)
    present = (type_id >= 0) & ~shapely.is_empty(geometries)
    not_line = present & ~np.isin(type_id, (_LINESTRING, _LINEARRING, _MULTILINESTRING))
    if not_line.any():
        index = int(np.flatnonzero(not_line)[0])
        raise AplsInputError(
            f"{side}: feature {index} is a {geometries[index].geom_type}; APLS scores road centerlines "
            f"(LineString or MultiLineString) and {np.count_nonzero(not_line)} feature(s) are not lines")
    parts = shapely.force_2d(shapely.get_parts(geometries[present]))
    parts = parts[~shapely.is_empty(parts)]
    if not np.isfinite(shapely.get_coordinates(parts)).all():
        raise AplsInputError(f"{side}: some coordinates are not finite numbers")
    return parts


def _group_keys(groups: Iterable | None, count: int) -> np.ndarray:
    if groups is None:
        return np.full(count, "", dtype=object)
    keys = np.array(["" if key is None else str(key) for key in groups], dtype=object)
    if len(keys) != count:
        raise AplsInputError(f"{len(keys)} group keys for {count} lines: give one key per line")
    return keys


def _members(codes: np.ndarray, group_count: int) -> list:
    """For each group, the indices of its members, in input order."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(group_count + 1))
    return [order[bounds[i]: bounds[i + 1]] for i in range(group_count)]


# --- coordinates ------------------------------------------------------------------------------------------------


def utm_crs_for(lines: Iterable, crs: str) -> str:
    """The UTM zone ("EPSG:326zz" north, "EPSG:327zz" south) of the centre of the bounding box of ``lines``,
    which are in ``crs`` (WKT or "EPSG:n")."""
    from rasterio.warp import transform  # GDAL/PROJ through rasterio: pyproj's data may be missing in QGIS

    x_min, y_min, x_max, y_max = shapely.total_bounds(object_array(lines))
    if not np.isfinite(x_min):
        raise AplsInputError("there are no coordinates to choose a UTM zone from")
    (lon,), (lat,) = transform(crs, "EPSG:4326", [(x_min + x_max) / 2], [(y_min + y_max) / 2])
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def reproject_lines(lines: Iterable, src_crs: str, dst_crs: str) -> np.ndarray:
    """``lines`` (None and empty ones kept as they are) transformed vertex by vertex from ``src_crs`` to
    ``dst_crs``."""
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_geom

    try:
        from rasterio._err import CPLE_BaseError  # GDAL's own errors: rasterio gives them no public name
    except ImportError:
        CPLE_BaseError = RasterioError  # noqa: N806

    geometries = object_array(lines)
    present = np.flatnonzero(~shapely.is_missing(geometries) & ~shapely.is_empty(geometries))
    out = geometries.copy()
    if len(present):
        mappings = [shapely.geometry.mapping(geometry) for geometry in geometries[present]]
        try:
            transformed = transform_geom(src_crs, dst_crs, mappings)
        except (CPLE_BaseError, RasterioError, ValueError) as error:  # coordinates outside the CRS's area
            raise AplsInputError(f"The lines cannot be transformed to metres ({error}): check that the layers' CRS "
                                 "is the one their coordinates are in.") from error
        out[present] = [shapely.geometry.shape(mapping) for mapping in transformed]
    return out


def to_utm(lines: Iterable, crs: str) -> tuple[np.ndarray, str]:
    """``lines`` in metres: the lines in the UTM zone of their centre, and that zone as "EPSG:n"."""
    utm = utm_crs_for(lines, crs)
    return reproject_lines(lines, crs, utm), utm
