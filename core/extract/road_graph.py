"""Editing a road graph (networkx MultiGraph in grid pixels): edges and nodes added, merged and contracted, spurs
pruned, close junctions joined, small cycles and pieces dropped. The cleaning steps of :mod:`core.extract.roads`."""

from __future__ import annotations

import networkx as nx
import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import LineString

MIN_LOOP_PX2 = 8.0  # a loop around less than this is thinning noise, whatever the options say
DUPLICATE_PX = 2.0  # two edges between the same nodes never further apart than this are one road
PRUNE_ROUNDS = 8  # spurs on spurs are pruned a round at a time; a skeleton's are a few deep at most


def add_edge(graph, u, v, coords, length=None) -> None:
    graph.add_edge(u, v, coords=coords, start=u, length=polyline_length(coords) if length is None else length)


def polyline_length(coords) -> float:
    return float(np.hypot(*np.diff(coords, axis=0).T).sum())


def coords_from(data, node) -> np.ndarray:
    """An edge's coordinates starting at ``node``."""
    return data["coords"] if data["start"] == node else data["coords"][::-1]


def merge_pass_through(graph) -> None:
    """Nodes with two edges (no loop) disappear into one edge joining their neighbours."""
    # merging a node changes no other node's degree
    for node in [node for node, degree in graph.degree() if degree == 2]:
        if graph.has_edge(node, node):
            continue
        (_, a, data_a), (_, b, data_b) = graph.edges(node, data=True)
        coords = np.concatenate([coords_from(data_a, a), coords_from(data_b, node)[1:]])
        graph.remove_node(node)
        add_edge(graph, a, b, coords, data_a["length"] + data_b["length"])


def prune_spurs(graph, max_px: float) -> None:
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
        merge_pass_through(graph)


def merge_close_junctions(graph, max_px: float) -> None:
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
                contract(graph, u, v, key)
                merged = True
        if not merged:
            return


def contract(graph, u, v, key) -> None:
    data = graph.edges[u, v, key]
    coords = coords_from(data, u)
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
    middle = point_at(coords, along, along[-1] / 2)
    graph.remove_edge(u, v, key)
    node = new_node(graph, middle)
    for a, b, data in list(graph.edges([u, v], data=True)):
        path = coords_from(data, a)
        if a in (u, v):
            path = np.vstack([middle, path])
        if b in (u, v):
            path = np.vstack([path, middle])
        add_edge(graph, node if a in (u, v) else a, node if b in (u, v) else b, path)
    graph.remove_nodes_from([u, v])


def new_node(graph, xy) -> int:
    node = graph.graph["next_node"]
    graph.graph["next_node"] += 1
    graph.add_node(node, xy=np.asarray(xy, float))
    return node


def drop_small_cycles(graph, min_area_px2: float) -> bool:
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
                    path = coords_from(by_key[key], u)
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


def drop_small_pieces(graph, min_px: float) -> None:
    for piece in list(nx.connected_components(graph)):
        if graph.subgraph(piece).size(weight="length") < min_px:
            graph.remove_nodes_from(piece)


def point_at(coords, along, position) -> np.ndarray:
    return np.array([np.interp(position, along, coords[:, 0]), np.interp(position, along, coords[:, 1])])
