"""Building labels as the models learn them: the project's one labelling convention, for training and adaptation.

  building   the union of the footprints (0/1);
  interior   each footprint shrunk by 1 m (half that for a building too small to keep a core), so touching
             buildings stay apart: the seeds the engine's watershed grows back into footprints;
  instances  each footprint's number (1, 2, ...), 0 off buildings.
"""

from __future__ import annotations

import numpy as np
import shapely
from rasterio.features import rasterize

INTERIOR_SHRINK_M = 1.0


def building_masks(polygons: list, shape: tuple, transform, shrink_m: float = INTERIOR_SHRINK_M) -> dict:
    """building, interior and instances (see the module) on the grid of ``shape`` (rows, cols) and ``transform``;
    ``shrink_m`` is in the units of the polygons' coordinates."""
    footprints, cores = [], []
    for polygon in polygons:
        polygon = shapely.make_valid(polygon)
        if polygon.area <= 0:
            continue
        footprints.append(polygon)
        for distance in (shrink_m, shrink_m / 2):  # a small building still gets a seed
            core = polygon.buffer(-distance)
            if not core.is_empty:
                cores.append(core)
                break
    instances = np.zeros(shape, np.int32)
    interior = np.zeros(shape, np.uint8)
    if footprints:
        instances = rasterize([(g, i + 1) for i, g in enumerate(footprints)], out_shape=shape, transform=transform,
                              dtype="int32")
    if cores:
        interior = rasterize(cores, out_shape=shape, transform=transform, default_value=1, dtype="uint8")
    return dict(building=(instances > 0).astype(np.uint8), interior=interior, instances=instances)
