"""APLS's options and their defaults, apart from the metric so that the plugin can show them (parameters, help)
without loading numpy, shapely and scipy at QGIS start."""

from __future__ import annotations

from dataclasses import dataclass, field

CONTROL_SPACING_M = 50.0
MAX_SNAP_M = 4.0


def _option(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class AplsOptions:
    """How to compare two road graphs, lengths in metres; ``fields(AplsOptions)[i].metadata["help"]`` explains
    each option in words a mapper understands."""

    max_snap_m: float = _option(MAX_SNAP_M, "A control point farther than this from the other network is missing "
                                            "there (the reference's max_snap_dist)")
    control_spacing_m: float = _option(CONTROL_SPACING_M, "Largest gap between control points along a road")
    min_path_length_m: float = _option(0.001, "Shorter paths between control points are not compared")
    min_subgraph_length_m: float = _option(5.0, "Pieces of network shorter than this in total are ignored")
    node_tolerance_m: float = _option(0.01, "Line vertices closer than this are one junction")
    drop_loops: bool = _option(True, "Ignore roads that leave a junction and come back to it, as the reference "
                                     "does (its cleaning of duplicate edges loses them)")
    one_point_per_node: bool = _option(True, "Of control points snapped onto the same spot only the last one "
                                             "counts, the others are missing, as in the reference (which renames "
                                             "the node each time); off: they share the spot")

    def __post_init__(self):
        for name in ("max_snap_m", "control_spacing_m", "node_tolerance_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in ("min_path_length_m", "min_subgraph_length_m"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)!r}")
