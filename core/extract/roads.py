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

Geometries are in grid pixel coordinates until placed on the map: x = column, y = row, pixel corners
at whole numbers (as core.extract.buildings), so a skeleton pixel lies at its centre (col + 0.5, row + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import networkx as nx
import numpy as np
import shapely
import shapely.affinity
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order
from scipy.spatial import cKDTree
from shapely.geometry import LineString, Point
from skimage.morphology import skeletonize

from .. import progress
from .raster import to_map
from .road_options import RoadOptions
from .tiling import halo_blocks

BLOCK = 2048  # block core size in grid pixels
# Pixels read around a block: thinning a mask up to about this thick never reaches the core from the
# window's edge (each thinning step looks one pixel further), and a road mask is 13 px at 0.3 m.
HALO = 96
END_DIRECTION_M = 6.0  # a dead end points where its last 6 m of line go
SNAP_PX = 1.5  # a bridge landing this close to a node joins that node instead of cutting the road
MIN_LOOP_PX2 = 8.0  # a loop around less than this is thinning noise, whatever the options say
DUPLICATE_PX = 2.0  # two edges between the same nodes never further apart than this are one road
PRUNE_ROUNDS = 8  # spurs on spurs are pruned a round at a time; a skeleton's are a few deep at most
# The neighbours after a pixel in row-major order: each 8-connected link is found once, from its first pixel.
AHEAD = ((0, 1), (1, -1), (1, 0), (1, 1))


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
        prob, valid = piece.read_window(read)
        r, c = np.nonzero(piece.core_of(skeleton_mask(prob, valid, options, pixel_m)))
        (r0, _), (c0, _), (wr0, _), (wc0, _) = piece.rows, piece.cols, piece.window_rows, piece.window_cols
        rows.append((r + r0).astype(np.int32))
        cols.append((c + c0).astype(np.int32))
        near_nodata.append(_near_nodata(valid, r + r0 - wr0, c + c0 - wc0, options.max_gap_m / pixel_m))
        step(number + 1, len(all_blocks))
    progress.check(is_canceled)
    return network_from_skeleton(np.concatenate(rows), np.concatenate(cols), width, options, pixel_m,
                                 near_nodata=np.concatenate(near_nodata))


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
    graph = _trace(np.asarray(rows, np.int64), np.asarray(cols, np.int64), width, near_nodata)
    min_loop_px2 = options.hole_area_m2 / pixel_m**2
    _drop_small_cycles(graph, min_loop_px2)
    _merge_pass_through(graph)
    _prune_spurs(graph, options.min_spur_length_m / pixel_m)
    _tidy(graph, options.junction_merge_m / pixel_m, min_loop_px2)
    if options.max_gap_m > 0:
        _drop_small_pieces(graph, END_DIRECTION_M / pixel_m)  # specks: too short to say where they point
        _bridge_gaps(graph, options.max_gap_m / pixel_m, options.gap_angle_deg, END_DIRECTION_M / pixel_m)
        _merge_pass_through(graph)
        _prune_spurs(graph, options.min_spur_length_m / pixel_m)  # a bit of noise a bridge tied to a road
        _tidy(graph, options.junction_merge_m / pixel_m, min_loop_px2)
    _drop_small_pieces(graph, options.min_piece_length_m / pixel_m)
    _simplify(graph, options.simplify_m / pixel_m, min_loop_px2)
    return _network(graph, pixel_m)


def _tidy(graph, junction_merge_px: float, min_loop_px2: float) -> None:
    _merge_close_junctions(graph, junction_merge_px)
    _drop_small_cycles(graph, min_loop_px2)
    _merge_pass_through(graph)


# --- skeleton pixels to a graph ---------------------------------------------------------------------------


def _trace(rows: np.ndarray, cols: np.ndarray, width: int, near_nodata=None) -> nx.MultiGraph:
    """Nodes at junctions (clusters of pixels with three or more neighbours) and ends; an edge for each
    chain of pixels between them, its coordinates in order from the node ``start``."""
    index = rows * width + cols
    order = np.argsort(index, kind="stable")
    index, rows, cols = index[order], rows[order], cols[order]
    n = len(index)
    graph = nx.MultiGraph(next_node=0, unbridgeable=set())
    if n == 0:
        return graph
    a, b = _links(rows, cols, index, width)
    degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    junction = degree >= 3
    xy = np.column_stack([cols + 0.5, rows + 0.5])
    cluster, cluster_xy = _junction_clusters(a, b, junction, xy)
    for node, position in enumerate(cluster_xy):
        graph.add_node(node, xy=position)
    first_free = len(cluster_xy)  # a dead end is node first_free + its pixel number
    graph.graph["next_node"] = first_free + n
    if near_nodata is not None:
        graph.graph["unbridgeable"] = set((first_free + np.flatnonzero(np.asarray(near_nodata)[order])).tolist())
    touched = _touched_junctions(a, b, junction, cluster)
    for run, length, closed in _chains(a, b, ~junction & (degree > 0), xy):
        _add_chain(graph, run, length, closed, xy, cluster_xy, touched, first_free)
    return graph


def _junction_clusters(a, b, junction, xy) -> tuple:
    """(cluster number of each pixel, -1 off junctions; cluster positions): junction pixels that touch are
    one junction, placed at their mean."""
    n = len(junction)
    both = junction[a] & junction[b]
    _, label = connected_components(_adjacency(a[both], b[both], n), directed=False)
    _, cluster_of = np.unique(label[junction], return_inverse=True)
    cluster = np.full(n, -1)
    cluster[junction] = cluster_of
    size = np.bincount(cluster_of)
    total = np.column_stack([np.bincount(cluster_of, xy[junction, 0]), np.bincount(cluster_of, xy[junction, 1])])
    return cluster, total.reshape(-1, 2) / np.maximum(size, 1)[:, None]


def _touched_junctions(a, b, junction, cluster) -> tuple:
    """The junction clusters each pixel touches (-1 for none): a chain pixel has two links at most."""
    n = len(junction)
    across = junction[a] != junction[b]
    a, b = a[across], b[across]
    pixel = np.where(junction[a], b, a)
    touched = cluster[np.where(junction[a], a, b)]
    by_pixel = np.argsort(pixel, kind="stable")
    pixel, touched = pixel[by_pixel], touched[by_pixel]
    first = np.ones(len(pixel), bool)
    first[1:] = pixel[1:] != pixel[:-1]
    junction_1, junction_2 = np.full(n, -1), np.full(n, -1)
    junction_1[pixel[first]] = touched[first]
    junction_2[pixel[~first]] = touched[~first]
    return junction_1, junction_2


def _chains(a, b, chain, xy):
    """(pixels in order, length from first to last, whether a ring) of each chain: linked pixels of at most
    two neighbours, each a path, or a ring touching no junction."""
    n = len(chain)
    both = chain[a] & chain[b]
    a, b = a[both], b[both]
    _, component = connected_components(_adjacency(a, b, n), directed=False)
    chain_degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    pixels = np.flatnonzero(chain)
    if not len(pixels):
        return
    # a path starts at its lowest end pixel, a ring (no ends) at its lowest pixel
    start = np.full(component.max() + 1, n)
    ends = pixels[chain_degree[pixels] < 2]
    np.minimum.at(start, component[ends], ends)
    ring = np.zeros(len(start), bool)
    ring[component[pixels]] = True
    ring[component[ends]] = False
    in_ring = pixels[ring[component[pixels]]]
    np.minimum.at(start, component[in_ring], in_ring)
    # a ring is opened by cutting one of its first pixel's links
    opens = np.zeros(n, bool)
    opens[start[ring]] = True
    at_open = np.flatnonzero(opens[a] | opens[b])
    _, first_link = np.unique(np.where(opens[a], a, b)[at_open], return_index=True)
    keep = np.ones(len(a), bool)
    keep[at_open[first_link]] = False
    # One depth-first walk lists each chain whole and in order (a path has one way on), in linear time and
    # in C for any number of chains. It starts on a path of extra nodes, each linked to a chain's first pixel:
    # one hub linked to them all would have its links rescanned after every chain.
    starts = start[np.unique(component[pixels])]
    extra = n + np.arange(len(starts))
    walk_graph = _adjacency(np.concatenate([a[keep], extra, extra[:-1]]),
                            np.concatenate([b[keep], starts, extra[1:]]), n + len(starts))
    walk = depth_first_order(walk_graph, n, directed=False, return_predecessors=False)
    walk = walk[walk < n]
    cuts = np.flatnonzero(np.diff(component[walk])) + 1
    steps = np.append(np.hypot(*np.diff(xy[walk], axis=0).T), 0.0)
    steps[cuts - 1] = 0.0  # no step from one chain's last pixel to the next chain's first
    lengths = np.add.reduceat(steps, np.concatenate([[0], cuts])).tolist()
    for run, length in zip(np.split(walk, cuts), lengths):
        yield run, length, bool(ring[component[run[0]]])


def _links(rows, cols, index, width) -> tuple:
    """Pairs (i, j), i < j, of 8-connected skeleton pixels; a diagonal link is left out where the two pixels
    are also joined through a pixel beside them, so a staircase is a chain and not a string of triangles."""
    n = len(index)

    def present(r, c):
        target = r * width + c
        position = np.minimum(np.searchsorted(index, target), n - 1)
        return (c >= 0) & (c < width) & (index[position] == target), position

    a, b = [], []
    for dr, dc in AHEAD:
        found, position = present(rows + dr, cols + dc)
        if dr and dc:
            found &= ~present(rows, cols + dc)[0] & ~present(rows + dr, cols)[0]
        a.append(np.flatnonzero(found))
        b.append(position[found])
    return np.concatenate(a), np.concatenate(b)


def _adjacency(a, b, n):
    return coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()


def _add_chain(graph, run, length, closed, xy, cluster_xy, touched_junctions, first_free) -> None:
    """The edge of a chain of pixels (``length`` from first to last), from the junction or dead end at its
    head to the one at its tail."""
    junction_1, junction_2 = touched_junctions
    head, tail = run[0], run[-1]
    if closed:  # a ring touching no junction: one node, the chain closed on it
        graph.add_node(first_free + head, xy=xy[head])
        length += math.hypot(*(xy[head] - xy[tail]))
        _add_edge(graph, first_free + head, first_free + head, np.vstack([xy[run], xy[head]]), length)
        return
    at_head = junction_1[head]
    at_tail = junction_2[head] if len(run) == 1 else junction_1[tail]
    parts = [xy[run]]
    if at_head >= 0:
        parts.insert(0, cluster_xy[at_head : at_head + 1])
        length += math.hypot(*(cluster_xy[at_head] - xy[head]))
    else:
        at_head = first_free + head
        graph.add_node(at_head, xy=xy[head])
    if at_tail >= 0:
        parts.append(cluster_xy[at_tail : at_tail + 1])
        length += math.hypot(*(cluster_xy[at_tail] - xy[tail]))
    else:
        at_tail = first_free + tail
        graph.add_node(at_tail, xy=xy[tail])
    _add_edge(graph, at_head, at_tail, np.concatenate(parts) if len(parts) > 1 else parts[0], length)


# --- graph editing ----------------------------------------------------------------------------------------


def _add_edge(graph, u, v, coords, length=None) -> None:
    graph.add_edge(u, v, coords=coords, start=u, length=_length(coords) if length is None else length)


def _length(coords) -> float:
    return float(np.hypot(*np.diff(coords, axis=0).T).sum())


def _from(data, node) -> np.ndarray:
    """An edge's coordinates starting at ``node``."""
    return data["coords"] if data["start"] == node else data["coords"][::-1]


def _merge_pass_through(graph) -> None:
    """Nodes with two edges (no loop) disappear into one edge joining their neighbours."""
    # merging a node changes no other node's degree
    for node in [node for node, degree in graph.degree() if degree == 2]:
        if graph.has_edge(node, node):
            continue
        (_, a, data_a), (_, b, data_b) = graph.edges(node, data=True)
        coords = np.concatenate([_from(data_a, a), _from(data_b, node)[1:]])
        graph.remove_node(node)
        _add_edge(graph, a, b, coords, data_a["length"] + data_b["length"])


def _prune_spurs(graph, max_px: float) -> None:
    """Remove edges shorter than max_px from a dead end to a junction, shortest first, while the junction
    keeps another edge: a fork ending a road goes whole and the road ends at the fork; of a lone star of
    short branches the longest is left for the piece-length test to judge."""
    for _ in range(PRUNE_ROUNDS):
        degree = dict(graph.degree())
        spurs = []
        for u, v, length in graph.edges(data="length"):
            if u != v and length < max_px:
                for end, other in ((u, v), (v, u)):
                    if degree[end] == 1 and degree[other] >= 3:
                        spurs.append((length, end, other))
        if not spurs:
            return
        for _, end, other in sorted(spurs):
            if end in graph and graph.degree[end] == 1 and graph.degree[other] >= 2:
                graph.remove_node(end)
        _merge_pass_through(graph)


def _merge_close_junctions(graph, max_px: float) -> None:
    """Junctions joined by an edge shorter than max_px become one, between them."""
    while True:
        short = sorted(
            (data["length"], u, v, key)
            for u, v, key, data in graph.edges(keys=True, data=True)
            if u != v and data["length"] < max_px and graph.degree(u) >= 3 and graph.degree(v) >= 3
        )
        merged = False
        for _, u, v, key in short:
            if graph.has_edge(u, v, key) and graph.degree(u) >= 3 and graph.degree(v) >= 3:
                _contract(graph, u, v, key)
                merged = True
        if not merged:
            return


def _contract(graph, u, v, key) -> None:
    data = graph.edges[u, v, key]
    coords = _from(data, u)
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
    middle = _point_at(coords, along, along[-1] / 2)
    graph.remove_edge(u, v, key)
    node = _new_node(graph, middle)
    for a, b, data in list(graph.edges([u, v], data=True)):
        path = _from(data, a)
        if a in (u, v):
            path = np.vstack([middle, path])
        if b in (u, v):
            path = np.vstack([path, middle])
        _add_edge(graph, node if a in (u, v) else a, node if b in (u, v) else b, path)
    graph.remove_nodes_from([u, v])


def _new_node(graph, xy) -> int:
    node = graph.graph["next_node"]
    graph.graph["next_node"] += 1
    graph.add_node(node, xy=np.asarray(xy, float))
    return node


def _drop_small_cycles(graph, min_area_px2: float) -> bool:
    """Drop loops enclosing less than a small hole, and of two edges between the same nodes the longer where
    they enclose less than that together or never part by more than DUPLICATE_PX: artefacts (the mask's
    small holes were filled before thinning) and doubles. Returns whether it dropped any."""
    min_area_px2 = max(min_area_px2, MIN_LOOP_PX2)
    dropped = []
    for u, neighbours in graph.adjacency():
        for v, by_key in neighbours.items():
            if u == v:
                dropped += [(u, v, key) for key, data in by_key.items()
                            if _enclosed_area(data["coords"]) < min_area_px2]
            elif u < v and len(by_key) > 1:
                kept: list = []
                for _, key in sorted((data["length"], key) for key, data in by_key.items()):
                    path = _from(by_key[key], u)
                    if any(_doubles(path, other, min_area_px2) for other in kept):
                        dropped.append((u, v, key))
                    else:
                        kept.append(path)
    graph.remove_edges_from(dropped)
    graph.remove_nodes_from([node for node, degree in graph.degree() if degree == 0])
    return bool(dropped)


def _doubles(path, other, min_area_px2) -> bool:
    if _enclosed_area(np.vstack([path, other[::-1]])) < min_area_px2:
        return True
    return shapely.hausdorff_distance(LineString(path), LineString(other)) <= DUPLICATE_PX


def _enclosed_area(ring) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def _drop_small_pieces(graph, min_px: float) -> None:
    for piece in list(nx.connected_components(graph)):
        if graph.subgraph(piece).size(weight="length") < min_px:
            graph.remove_nodes_from(piece)


# --- gaps -------------------------------------------------------------------------------------------------


def _bridge_gaps(graph, max_px: float, angle_deg: float, reach_px: float) -> None:
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
                _add_edge(graph, a, b, np.vstack([xy[i[k]], xy[j[k]]]))
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
        path = _from(data, node)
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
        far = min(reach_px, along[-1])
        outwards = _point_at(path, along, far / 4) - _point_at(path, along, far)
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
                _add_edge(graph, ends[e], node, np.vstack([xy[e], graph.nodes[node]["xy"]]))


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
            stops.append((position, _new_node(graph, _point_at(coords, along, position))))
            landing[end] = stops[-1][1]
    if len(stops) == 1:
        return landing
    stops.append((total, tail))
    graph.remove_edge(u, v, key)
    for (p0, n0), (p1, n1) in zip(stops, stops[1:]):
        inner = coords[(along > p0) & (along < p1)]
        start = graph.nodes[n0]["xy"] if n0 != head else coords[0]
        stop = graph.nodes[n1]["xy"] if n1 != tail else coords[-1]
        _add_edge(graph, n0, n1, np.vstack([start, inner, stop]))
    return landing


def _point_at(coords, along, position) -> np.ndarray:
    return np.array([np.interp(position, along, coords[:, 0]), np.interp(position, along, coords[:, 1])])


# --- result -----------------------------------------------------------------------------------------------


def _simplify(graph, tolerance_px: float, min_loop_px2: float) -> None:
    """Douglas-Peucker on every edge; then what that made degenerate goes: two edges simplified onto one
    line, a loop flattened, an edge of no length (its nodes become one)."""
    if tolerance_px > 0:
        for u, v, data in graph.edges(data=True):
            data["coords"] = _simplified(data["coords"], tolerance_px, closed=u == v)
            data["length"] = _length(data["coords"])
    for _ in range(PRUNE_ROUNDS):
        empty = [(u, v, key) for u, v, key, length in graph.edges(keys=True, data="length") if length == 0 and u != v]
        for u, v, key in empty:
            if graph.has_edge(u, v, key):
                _contract(graph, u, v, key)
        if not _drop_small_cycles(graph, min_loop_px2) and not empty:
            return
        _merge_pass_through(graph)


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
        coords = _from(data, start)
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
