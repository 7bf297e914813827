"""Sequences of shapely geometries as 1-D numpy object arrays, the form shapely's vectorised functions take."""

from __future__ import annotations

import numpy as np


def object_array(values) -> np.ndarray:
    """``values`` (any sequence of geometries or None) as a 1-D object array; one already is returned as it is."""
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values
    values = list(values)
    array = np.empty(len(values), dtype=object)
    array[:] = values  # never let numpy look inside geometries (it would unpack multi-part ones)
    return array
