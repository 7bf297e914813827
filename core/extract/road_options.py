"""How road probabilities become a graph: the options and their defaults, apart from core.extract.roads so that the
plugin can show them (parameters, help) without loading scikit-image, networkx and scipy at QGIS start. Each option says
where it travels (core.options): the model card holds the threshold; the run's settings record what the
extractroads algorithm exposes."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options, option


@dataclass(frozen=True)
class RoadOptions(Options):
    """How probabilities become a road graph; the defaults suit 0.3 m imagery and masks ~4 m wide.

    threshold: a pixel is road where its probability is at least this.
    min_spur_length_m: dead-end branches shorter than this are pruned. Thinning leaves branches about a
        road's width long at a mask's corners, bulges and blunt ends; 10 m (two and a half widths) clears
        them and those of blurred junctions, and a real dead end that short hardly changes any route.
    max_gap_m: dead ends this close are joined when they point at each other, and an end to a road it
        points at. A tree, a shadow or a truck breaks a road mask for a few metres, and a side road often
        fades just before its junction; 12 m bridges those without inventing links between blocks.
    gap_angle_deg: how far an end's direction may turn from the gap it bridges.
    junction_merge_m: junctions this close are one: thinning splits a crossing of two wide masks into
        two forks up to a road's width apart.
    simplify_m: Douglas-Peucker tolerance. A quarter of a road's width removes the pixel staircase and
        keeps the line well inside the road.
    hole_area_m2: holes in the mask smaller than this are filled, so that a car or a blotch of low
        probability on a road leaves no loop; the island of a roundabout is larger.
    min_piece_length_m: pieces of network connected to nothing and shorter than this in all are dropped
        as noise (after gaps are bridged, so that a road broken in pieces is first joined).
    """

    threshold: float = option(0.5, card=True)
    min_spur_length_m: float = option(10.0)
    max_gap_m: float = option(12.0)
    gap_angle_deg: float = option(30.0, setting=False)
    junction_merge_m: float = option(4.0, setting=False)
    simplify_m: float = option(1.0)
    hole_area_m2: float = option(40.0, setting=False)
    min_piece_length_m: float = option(10.0, setting=False)
