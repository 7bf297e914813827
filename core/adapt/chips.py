"""Training chips from a raster, the mapper's corrected footprints and the area where those are complete.

A chip is a square window of the model's grid (its ground sample distance, its bands, the run's stretch, as an
extraction reads it) with three masks made by the project's labelling convention (core.adapt.labels): building,
interior, and known (inside the area and on raster data: only there may the labels teach anything). Images are
stored as the model's input after the card's stretch, times 255, in 8 bits.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from shapely.affinity import affine_transform

from ..extract import raster
from ..progress import check, silent
from .labels import INTERIOR_SHRINK_M, building_masks

CHIP_PX = 256  # 77 m at 0.3 m: room for a few roofs and their surroundings, a multiple of every model's 32
LABELLED_CHANNELS = ("building", "interior")
MASK_BANDS = ("building", "interior", "known")
LICENCE_NOTE = ("The chips are cut from the input raster and the footprint layer: they keep those sources' "
                "licences and attributions.")


class AdaptInputError(ValueError):
    """Input that cannot make training chips; the message names the problem and what to do."""


@dataclass
class ChipSet:
    images: np.ndarray  # N, bands, S, S uint8: the model's input after the stretch, x 255
    labels: np.ndarray  # N, channels, S, S uint8 (0/1), in the model's output order
    known: np.ndarray  # N, S, S uint8: 1 where the labels are complete and the raster has data
    origins: list  # per chip: (row, col) of its top-left pixel on the grid
    grid: raster.Grid
    crs_wkt: str
    bands: tuple
    channels: tuple
    stretch: raster.Stretch
    footprint_centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # in grid pixels, in the area

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    @property
    def gsd_m(self) -> float:
        return math.sqrt(self.grid.pixel_area_m2)

    def transform(self, index: int) -> Affine:
        row, col = self.origins[index]
        return self.grid.transform @ Affine.translation(col, row)

    def bounds(self, index: int) -> tuple:
        return raster.corner_bounds(self.transform(index), self.size, self.size)

    def buildings_in(self, indices) -> int:
        """How many footprints of the area have their centroid on the known pixels of these chips."""
        count = 0
        for row, col in self.footprint_centroids:
            for i in indices:
                r, c = int(row) - self.origins[i][0], int(col) - self.origins[i][1]
                if 0 <= r < self.size and 0 <= c < self.size and self.known[i, r, c]:
                    count += 1
                    break
        return count

    def subset(self, indices) -> ChipSet:
        indices = list(indices)
        return ChipSet(self.images[indices], self.labels[indices], self.known[indices],
                       [self.origins[i] for i in indices], self.grid, self.crs_wkt, self.bands, self.channels,
                       self.stretch, self.footprint_centroids)


def make_chips(raster_path: str, footprints: list, area: list | None, card, bands=None, chip_px: int = CHIP_PX,
               report=silent, is_canceled=None, stretch: raster.Stretch | None = None) -> ChipSet:
    """The chips of ``raster_path`` over ``area`` (polygons in the raster's CRS; None: the whole raster) labelled
    with ``footprints`` (polygons in the raster's CRS), for the model of ``card``, stretched by ``stretch`` (None:
    the one measured over the area, as an extraction of it would). Raises AdaptInputError."""
    channels = tuple(card.channels)
    if not set(LABELLED_CHANNELS[:1]) <= set(channels) or not set(channels) <= set(LABELLED_CHANNELS):
        raise AdaptInputError(f"Adaptation trains building models whose outputs are {' and '.join(LABELLED_CHANNELS)}"
                              f"; '{card.name}' has outputs {', '.join(channels)}.")
    if chip_px % card.size_multiple:
        raise AdaptInputError(f"The chip size must be a multiple of {card.size_multiple} px for this model.")
    info = raster.describe(raster_path)
    bands = raster.check_bands(bands or raster.default_bands(info, card.bands), info, card.bands)
    raster_box = shapely.box(*info.bounds)
    area_shape = raster_box if area is None else shapely.make_valid(shapely.union_all(list(area)))
    area_shape = area_shape.intersection(raster_box)
    if area_shape.is_empty or area_shape.area <= 0:
        raise AdaptInputError("The area does not overlap the raster: draw it (or choose the polygon layer) over the "
                              "imagery the footprints were corrected on.")
    footprints = [shapely.make_valid(g) for g in footprints if g is not None and not g.is_empty]
    if footprints and not any(raster_box.intersects(g) for g in footprints):
        raise AdaptInputError(f"None of the {len(footprints)} footprints lie on the raster: give the buildings "
                              "corrected on this raster (a layer in another CRS is reprojected; check its CRS).")
    grid = raster.model_grid(info, area_shape.bounds, card.gsd_m)
    try:
        stretch = stretch if stretch is not None else raster.measure_stretch(info, bands, grid, card.normalisation)
    except raster.NoDataError as error:
        raise AdaptInputError(f"The area has no raster data: {error}") from error
    to_pixels = (~grid.transform).to_shapely()
    area_px = affine_transform(area_shape, to_pixels)
    footprints_px = [affine_transform(g, to_pixels) for g in footprints]
    shapely.prepare(area_px)
    origins = [(row, col) for row in range(0, grid.height, chip_px) for col in range(0, grid.width, chip_px)
               if area_px.intersects(shapely.box(col, row, col + chip_px, row + chip_px))]
    images, labels, known, kept = [], [], [], []
    tree = shapely.STRtree(footprints_px) if footprints_px else None
    shrink_px = INTERIOR_SHRINK_M / math.sqrt(grid.pixel_area_m2)
    with raster.open_on_grid(info, grid) as reader:
        for number, (row, col) in enumerate(origins):
            check(is_canceled)
            image, valid = _read(reader, bands, grid, row, col, chip_px)
            shift = Affine.translation(-col, -row)
            area_mask = rasterize([affine_transform(area_px, shift.to_shapely())],
                                  out_shape=(chip_px, chip_px), default_value=1, dtype="uint8")
            chip_known = area_mask & valid
            if chip_known.any():
                near = [] if tree is None else [footprints_px[i] for i in tree.query(
                    shapely.box(col - 1, row - 1, col + chip_px + 1, row + chip_px + 1))]
                masks = building_masks([affine_transform(g, shift.to_shapely()) for g in near],
                                       (chip_px, chip_px), Affine.identity(), shrink_m=shrink_px)
                scaled = _scaled(image, stretch)
                images.append(np.where(valid[None], scaled, 0))
                labels.append(np.stack([masks[name] for name in channels]))
                known.append(chip_known)
                kept.append((row, col))
            report((number + 1) / len(origins), None)
    if not kept:
        raise AdaptInputError("The area has no raster data: every pixel of the raster under it is nodata.")
    centroids = np.array([[c.y, c.x] for c in (g.centroid for g in footprints_px)
                          if not c.is_empty and area_px.contains(c)]).reshape(-1, 2)
    # a building counts where its centroid is on data: one on nodata teaches nothing (and let a half-blank
    # raster pass the minimum number of buildings)
    chip_of = {origin: i for i, origin in enumerate(kept)}
    on_data = [chip_of.get((int(row) // chip_px * chip_px, int(col) // chip_px * chip_px)) for row, col in centroids]
    centroids = centroids[[i is not None and bool(known[i][int(row) % chip_px, int(col) % chip_px])
                           for i, (row, col) in zip(on_data, centroids)]].reshape(-1, 2)
    return ChipSet(np.stack(images), np.stack(labels), np.stack(known), kept, grid, info.crs_wkt, tuple(bands),
                   channels, stretch, centroids)


def _read(reader, bands, grid, row, col, size) -> tuple:
    """A chip's raw values and validity; the part beyond the grid is invalid."""
    height, width = min(size, grid.height - row), min(size, grid.width - col)
    values, valid = reader.read(bands, row, col, height, width)
    image = np.zeros((len(bands), size, size), values.dtype)
    mask = np.zeros((size, size), np.uint8)
    image[:, :height, :width] = values
    mask[:height, :width] = valid
    return image, mask


def _scaled(values: np.ndarray, stretch: raster.Stretch) -> np.ndarray:
    """The stretch's [0, 1] step in 8 bits (its mean/std step is the worker's, from the card)."""
    span = np.maximum(stretch.high - stretch.low, 1e-6)[:, None, None]
    scaled = np.clip((values.astype(np.float32) - stretch.low[:, None, None]) / span, 0.0, 1.0)
    return np.round(scaled * 255).astype(np.uint8)


def write_chips(chips: ChipSet, folder: Path, card, blocks=None, is_canceled=None) -> Path:
    """GeoTIFF chips (images/, masks/ with bands building, interior, known) and manifest.json in ``folder``,
    written beside it first and moved in when complete. ``blocks``: each chip's hold-out block, when known."""
    import rasterio

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AdaptInputError(f"{folder} is a file: choose a new folder for the chips.")
    if folder.exists() and any(folder.iterdir()):
        raise AdaptInputError(f"{folder} exists and is not empty: choose a new folder for the chips.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own beside the folder: never one a user's folder could already have
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    staging.mkdir()
    try:
        (staging / "images").mkdir()
        (staging / "masks").mkdir()
        entries = []
        crs = rasterio.crs.CRS.from_wkt(chips.crs_wkt)
        for i in range(len(chips.origins)):
            check(is_canceled)
            name = f"chip_{i:05d}.tif"
            profile = dict(driver="GTiff", width=chips.size, height=chips.size, dtype="uint8", crs=crs,
                           transform=chips.transform(i), compress="deflate", tiled=True)
            with rasterio.open(staging / "images" / name, "w", count=chips.images.shape[1], **profile) as dst:
                dst.write(chips.images[i])
                dst.descriptions = tuple(f"model input {k + 1} (band {b})" for k, b in enumerate(chips.bands))
            with rasterio.open(staging / "masks" / name, "w", count=len(MASK_BANDS), **profile) as dst:
                building = chips.labels[i][list(chips.channels).index("building")]
                interior = (chips.labels[i][list(chips.channels).index("interior")] if "interior" in chips.channels
                            else np.zeros_like(building))
                dst.write(np.stack([building, interior, chips.known[i]]))
                dst.descriptions = MASK_BANDS
            entries.append(dict(image=f"images/{name}", mask=f"masks/{name}", bounds=list(chips.bounds(i)),
                                known_fraction=round(float(chips.known[i].mean()), 4),
                                building_fraction=round(float(building.mean()), 4),
                                **({"block": int(blocks[i])} if blocks is not None else {})))
        manifest = dict(model=card.name, gsd_m=round(chips.gsd_m, 4), chip_px=chips.size, bands=list(chips.bands),
                        stretch=dict(low=chips.stretch.low.tolist(), high=chips.stretch.high.tolist()),
                        image_scale="model input after the stretch, x 255", mask_bands=list(MASK_BANDS),
                        crs_wkt=chips.crs_wkt, footprints_in_area=int(len(chips.footprint_centroids)),
                        licence=LICENCE_NOTE, chips=entries)
        with open(staging / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=1)
        if folder.exists():
            folder.rmdir()
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
