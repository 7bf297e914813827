"""The APLS reference's way of computing a half score, with networkx: every control point inserted into the graph as
a node, one Dijkstra per control point. The baseline of bench/bench_apls.py and a check of core.score.apls in the
tests."""

import networkx as nx
import numpy as np


def networkx_half(half, min_path_length: float) -> tuple:
    """The reference's way: control points inserted as nodes, one Dijkstra per control point in each graph."""
    own, own_node = networkx_graph_with_nodes_at(half.own, half.own_points)
    other, other_node = networkx_graph_with_nodes_at(half.other, half.in_other)
    control_of_node = {node: index for index, node in enumerate(own_node.tolist())}
    total_cost, pairs = 0.0, 0
    for source in range(len(half.own_points)):
        own_lengths = nx.single_source_dijkstra_path_length(own, own_node[source])
        snapped = half.snapped[source]
        other_lengths = nx.single_source_dijkstra_path_length(other, other_node[source]) if snapped else {}
        for node, length in own_lengths.items():
            target = control_of_node[node]  # every node of the own graph is a control point
            if length < min_path_length or length <= 0:
                continue
            other_length = other_lengths.get(other_node[target], -1.0) if half.snapped[target] else -1.0
            total_cost += 1.0 if other_length < 0 else min(1.0, abs(length - other_length) / length)
            pairs += 1
    return (1.0 - total_cost / pairs if pairs else 0.0), pairs


def networkx_graph_with_nodes_at(graph, places):
    """A networkx graph of the roads with a node at each place, and the node of each place."""
    node_of = places.start.copy()
    on_edge = {}
    for index in np.flatnonzero(places.edge >= 0):
        spot = (int(places.edge[index]), float(places.to_start[index]))
        node_of[index] = on_edge.setdefault(spot, graph.node_count + len(on_edge))
    stops = [[(0.0, start)] for start in graph.edge_nodes[:, 0]]
    for (edge, to_start), node in sorted(on_edge.items()):
        stops[edge].append((to_start, node))
    g = nx.Graph()
    g.add_nodes_from(range(graph.node_count + len(on_edge)))
    for edge, (end, length) in enumerate(zip(graph.edge_nodes[:, 1], graph.edge_lengths)):
        chain = stops[edge] + [(length, end)]
        for (at, a), (next_at, b) in zip(chain, chain[1:]):
            if a != b and next_at - at < g.get_edge_data(a, b, {"weight": np.inf})["weight"]:
                g.add_edge(a, b, weight=next_at - at)
    return g, node_of
