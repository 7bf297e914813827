"""Skeleton pixels to a road graph: junction pixels clustered into nodes, the chains between them traced into edges
(in numpy, each 8-connected link found once). The first step of :mod:`core.extract.roads` after thinning."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

from .road_graph import add_edge

# The neighbours after a pixel in row-major order: each 8-connected link is found once, from its first pixel.
AHEAD = ((0, 1), (1, -1), (1, 0), (1, 1))


def trace_skeleton(rows: np.ndarray, cols: np.ndarray, width: int, near_nodata=None) -> nx.MultiGraph:
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
        add_edge(graph, first_free + head, first_free + head, np.vstack([xy[run], xy[head]]), length)
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
    add_edge(graph, at_head, at_tail, np.concatenate(parts) if len(parts) > 1 else parts[0], length)
