"""Building probability rasters: what the extraction engine writes, and how the preview and calibration read it.

``spacenet:extractbuildings`` writes one band per model output, each described: ``building probability`` and, for
a model with an interior channel, ``interior probability`` (the seeds that split touching buildings). The
settings of the run travel in the raster's metadata (under the tags ``BuildingOptions`` names), so that whoever
reads it again splits buildings as the extraction did. A raster from elsewhere with one band of 0 to 1 (Float32)
or 0 to 255 (Byte) is read as building probability alone, and touching buildings are then split with distance
seeds.

No QGIS here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from . import raster
from .building_options import BuildingOptions

BUILDING = "building probability"
INTERIOR = "interior probability"
ROAD = "road probability"
DTYPES = ("float32", "float64", "uint8")


class ProbabilityError(ValueError):
    """The raster is not a building probability raster; the message says why, for a mapper."""


@dataclass(frozen=True)
class ProbabilityBands:
    """Where a raster keeps its building (and interior) probabilities, and the settings it was made with."""

    path: str
    band: int
    dtype: str
    interior_band: int | None = None
    # the BuildingOptions the extraction recorded in the raster's metadata, by name (BuildingOptions.from_tags)
    settings: dict = field(default_factory=dict)
    note: str = ""

    @property
    def interior_threshold(self) -> float | None:
        """The interior threshold to split with: the extraction's; None when there is no interior band."""
        if self.interior_band is None:
            return None
        return self.settings.get("interior_threshold", 0.5)


def locate(path, info: raster.RasterInfo | None = None, first_of_many: bool = False) -> ProbabilityBands:
    """The probability bands of the raster at ``path``, or ProbabilityError saying why it has none. A raster of
    several bands none of which is described as building probability is refused, unless ``first_of_many``: then
    its band 1 is read."""
    info = info or raster.describe(path)
    name = Path(str(path)).name
    described = {d: i + 1 for i, d in reversed(list(enumerate(info.descriptions))) if d}
    note = ""
    if BUILDING in described:
        band = described[BUILDING]
        if info.count > 1 and INTERIOR not in described:
            note = f"Band {band} ('{BUILDING}') of {info.count} is read."
    elif info.count == 1 or first_of_many:
        band = 1
        if info.count > 1:
            note = f"Band 1 of {info.count} is read as the building probability."
    else:
        kinds = ", ".join(c for c in info.colorinterp if c not in ("undefined", "gray")) or "data"
        raise ProbabilityError(
            f"{name} has {info.count} bands ({kinds}): it is not a building probability raster, which has one "
            "band of 0 to 1 (the probability raster written by Extract building footprints)."
        )
    with rasterio.open(path) as src:
        dtypes = src.dtypes
        tags = src.tags()
    interior = described.get(INTERIOR) if described.get(INTERIOR) != band else None
    for number in (band, interior):
        if number is not None and dtypes[number - 1] not in DTYPES:
            raise ProbabilityError(
                f"Band {number} of {name} holds {dtypes[number - 1]} values: a building probability raster holds "
                "0 to 1 (Float32) or 0 to 255 (Byte), as Extract building footprints writes it."
            )
    return ProbabilityBands(str(path), band, dtypes[band - 1], interior, BuildingOptions.from_tags(tags), note)


def read(src, bands: ProbabilityBands, window, out_shape=None) -> tuple:
    """(building, interior or None) of a window as float32 0..1, as the engine holds them; nodata and NaN read as
    0. ``out_shape`` reads decimated (averaged)."""
    building = _band(src, bands.path, bands.band, window, out_shape)
    interior = None if bands.interior_band is None else _band(src, bands.path, bands.interior_band, window, out_shape)
    return building, interior


def _band(src, path, band, window, out_shape):
    data = src.read(band, window=window, out_shape=out_shape, resampling=Resampling.average, masked=True)
    values = data.filled(0)
    values = values.astype(np.float32) / 255 if src.dtypes[band - 1] == "uint8" else values.astype(np.float32)
    values = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf, copy=False)
    if values.size and (values.max() > 1 + 1e-6 or values.min() < -1e-6):
        raise ProbabilityError(
            f"Band {band} of {Path(str(path)).name} holds values from {values.min():g} to {values.max():g}: a "
            "probability raster holds 0 to 1 (the building probability written by Extract building footprints)."
        )
    return values

