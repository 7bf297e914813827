"""How building probabilities become footprints: the options, their defaults and where each travels (model card,
run settings, probability raster tags), apart from core.extract.buildings so that the plugin can show them without
loading scikit-image and scipy at QGIS start."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options, option

HOLE_AREA_M2 = 4.0  # holes smaller than this are noise, not courtyards


@dataclass(frozen=True)
class BuildingOptions(Options):
    """How probabilities become footprints.

    threshold: a pixel is building where its probability is at least this.
    interior_threshold: a model's interior probability from which a pixel seeds a building (splits touching ones).
    min_area_m2: smaller footprints are dropped.
    min_score: footprints whose mean building probability is under this are dropped.
    simplify_m: outlines are simplified within this distance; 0 keeps the pixel outline.
    regularize: the corners of rectilinear buildings are squared along their main direction.
    hole_area_m2: holes smaller than this are filled.
    """

    threshold: float = option(0.5, card=True, tag="SPACENET_THRESHOLD")
    interior_threshold: float = option(0.5, card=True, setting=False, tag="SPACENET_INTERIOR_THRESHOLD")
    min_area_m2: float = option(0.0, card=True, tag="SPACENET_MIN_AREA_M2")
    min_score: float = option(0.0, card=True, tag="SPACENET_MIN_SCORE")
    simplify_m: float = option(0.0)
    regularize: bool = option(False)
    hole_area_m2: float = option(HOLE_AREA_M2, setting=False)


# What an extraction starts from before the model card's defaults: its outlines simplified by half a metre.
EXTRACTION = BuildingOptions(simplify_m=0.5)
