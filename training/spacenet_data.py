"""Build a training cache from a SpaceNet folder as `spacenet:fetchtiles` writes it (imagery + label GeoJSON).

Each imagery tile is paired with the label file of the same tile id (`..._img42.tif` with `..._img42.geojson`),
resampled onto a north-up grid of 0.3 m pixels in the tile's UTM zone (SpaceNet tiles are in EPSG:4326) and
stored in the cache format of `training.data` (one `.npz` per tile and an `index.json`), with labels made by the
same conventions as everywhere in the project:
  buildings  `building` (union of footprints), `interior` (each footprint shrunk by 1 m), `instances`;
  roads      `road`: centerlines buffered by 2 m (4 m wide) in a metric CRS, then rasterised (REFERENCE.md).
Bands: 8-band WorldView as 5,3,2 (true colour), 3/4 bands as 1,2,3, one band replicated to gray RGB; values
scaled to 8 bits per band between the 0.1 and 99.9 percentiles (the training stretch cancels any linear scale).
Every `--val-every`-th tile (in id order) goes to validation.

    training/.venv/bin/python -m training.spacenet_data DATA_FOLDER --task roads --out training/cache_roads

Needs numpy, rasterio and shapely only (no torch), so the plugin's tests run it too.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_geom

# the one labelling convention, shared with model adaptation (training.data imports it from here)
from core.adapt.labels import INTERIOR_SHRINK_M, building_masks  # noqa: F401

TARGET_GSD_M = 0.3
ROAD_HALF_WIDTH_M = 2.0
CONTACT_RADIUS_PX = 3  # 0.9 m at 0.3 m: a wall shared by two buildings becomes a band about 2 m wide
SMALL_BUILDING_PX = 222  # 20 m² at 0.3 m: a one-room house, the size of most roofs missed in dense settlements
TASKS = ("buildings", "roads")
TILE_ID = re.compile(r"(img\d+)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".tif", ".tiff")
LABEL_SUFFIXES = (".geojson", ".json")


class DatasetError(ValueError):
    """The folder holds nothing to train on; the message says what is missing."""


@dataclass(frozen=True)
class TilePair:
    tile_id: str
    image: Path
    labels: Path


def find_pairs(folder) -> list[TilePair]:
    """Imagery tiles and their label files, paired by tile id, in id order (img2 before img10)."""
    folder = Path(folder)
    images, labels = {}, {}
    for path in sorted(folder.rglob("*")):
        match = TILE_ID.search(path.stem)
        if not match or not path.is_file():
            continue
        key = (path.parent.parent, match.group(1).lower())  # same AOI folder, same id
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.setdefault(key, path)
        elif path.suffix.lower() in LABEL_SUFFIXES:
            labels[key] = path
    pairs = [TilePair(key[1], images[key], labels[key]) for key in images if key in labels]
    if not pairs:
        raise DatasetError(f"No imagery tile in {folder} has a label GeoJSON with the same tile id (img…): fetch "
                           "an imagery product together with labels (spacenet:fetchtiles, PRODUCTS PS-RGB,labels).")
    return sorted(pairs, key=lambda p: (int(p.tile_id[3:]), str(p.image)))


def utm_crs(lon: float, lat: float) -> CRS:
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def display_bands(count: int) -> list[int]:
    if count >= 8:
        return [5, 3, 2]
    if count >= 3:
        return [1, 2, 3]
    return [1, 1, 1]


def read_on_metric_grid(path, gsd_m: float = TARGET_GSD_M):
    """(image (h, w, 3) uint8, valid (h, w) bool, crs, transform) on a north-up UTM grid of gsd_m pixels."""
    with rasterio.open(path) as src:
        lon, lat = transform_geom(src.crs, "EPSG:4326", shapely.geometry.mapping(shapely.box(*src.bounds)
                                                                               .centroid))["coordinates"]
        crs = utm_crs(lon, lat) if src.crs.is_geographic else src.crs
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds,
                                                               resolution=gsd_m)
        names = [c.name for c in src.colorinterp]
        own_alpha = names.index("alpha") + 1 if "alpha" in names else None
        bands = display_bands(src.count - (1 if own_alpha else 0))
        with WarpedVRT(src, crs=crs, transform=transform, width=width, height=height,
                       resampling=Resampling.bilinear, add_alpha=own_alpha is None) as vrt:
            data = vrt.read(bands).astype(np.float32)
            valid = vrt.read(own_alpha or vrt.count) > 0  # the warp's alpha also marks nodata and the outside
    return _to_bytes(data, valid), valid, crs, transform


def _to_bytes(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    image = np.zeros(data.shape[1:] + (3,), np.uint8)
    for band in range(3):
        values = data[band][valid]
        low, high = np.percentile(values, [0.1, 99.9]) if values.size else (0.0, 1.0)
        scaled = (data[band] - low) / max(high - low, 1e-6) * 255.0
        image[..., band] = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    image[~valid] = 0
    return image


def read_label_geometries(path, crs: CRS) -> list:
    """Label geometries of a GeoJSON file (SpaceNet: EPSG:4326 / CRS84) in `crs`; empty features skipped."""
    with open(path) as f:
        collection = json.load(f)
    named = collection.get("crs", {}).get("properties", {}).get("name", "EPSG:4326")
    source = CRS.from_epsg(4326) if "CRS84" in named else CRS.from_user_input(named)
    geometries = []
    for feature in collection.get("features", []):
        if feature.get("geometry"):
            geometry = shapely.geometry.shape(transform_geom(source, crs, feature["geometry"]))
            if not geometry.is_empty:
                geometries.append(geometry)
    return geometries


def road_areas(lines: list, half_width_m: float = ROAD_HALF_WIDTH_M) -> list:
    """Centerlines (in a metric CRS) buffered by half_width_m, round ends: the road surface of the labels."""
    return [line.buffer(half_width_m) for line in lines if line.geom_type in ("LineString", "MultiLineString")]


def road_mask(lines: list, shape: tuple, transform, half_width_m: float = ROAD_HALF_WIDTH_M) -> np.ndarray:
    """Centerlines in the grid's metric CRS, buffered and rasterised: uint8 0/1."""
    areas = road_areas(lines, half_width_m)
    if not areas:
        return np.zeros(shape, np.uint8)
    return rasterize(areas, out_shape=shape, transform=transform, fill=0, default_value=1, dtype="uint8")


def contact_zone(instances: np.ndarray, radius_px: int = CONTACT_RADIUS_PX) -> np.ndarray:
    """Pixels within ``radius_px`` (chessboard) of two different buildings of ``instances``: where touching roofs
    must be told apart (training weighs them more with ``--contact-weight``)."""
    from scipy import ndimage

    size = 2 * radius_px + 1
    highest = ndimage.maximum_filter(instances, size=size)
    lowest = ndimage.minimum_filter(np.where(instances > 0, instances, np.iinfo(instances.dtype).max), size=size)
    return (highest > 0) & (lowest < highest)


def small_building_share(instances: np.ndarray, reference_px: int = SMALL_BUILDING_PX) -> np.ndarray:
    """Per pixel, ``reference_px`` over the area of its building, at most 1 (0 off buildings): a roof of the
    reference size or smaller counts fully, one ten times larger a tenth (training weighs them with
    ``--small-weight``, so that a missed shed costs about as much as a missed warehouse's edge)."""
    area = np.bincount(instances.ravel()).astype(np.float32)
    share = np.minimum(1.0, reference_px / np.maximum(area, 1.0))
    share[0] = 0.0
    return share[instances]


def tile_arrays(pair: TilePair, task: str, gsd_m: float = TARGET_GSD_M) -> dict:
    """The cache entry of one tile: images (1, h, w, 3), valid (1, h, w) and the task's label masks."""
    if task not in TASKS:
        raise DatasetError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    image, valid, crs, transform = read_on_metric_grid(pair.image, gsd_m)
    geometries = read_label_geometries(pair.labels, crs)
    shape = valid.shape
    if task == "roads":
        labels = dict(road=road_mask(geometries, shape, transform))
    else:
        labels = building_masks([g for g in geometries if g.geom_type in ("Polygon", "MultiPolygon")], shape,
                                transform)
    return dict(images=image[None], valid=valid[None], zooms=np.array([0]), crs=crs.to_wkt(),
                transform=np.array(transform[:6]), **labels)


def build_cache(folder, task: str, out_dir, val_every: int = 10, gsd_m: float = TARGET_GSD_M, log=print) -> list:
    """Write one .npz per tile and index.json into out_dir; returns the index entries."""
    pairs = find_pairs(folder)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for number, pair in enumerate(pairs):
        arrays = tile_arrays(pair, task, gsd_m)
        split = "val" if val_every and len(pairs) > 1 and number % val_every == val_every - 1 else "train"
        name = f"{pair.image.parent.parent.name}_{pair.image.parent.name}_{pair.tile_id}"
        np.savez_compressed(out_dir / f"{name}.npz", **arrays)
        label = arrays["road" if task == "roads" else "building"]
        h, w = label.shape
        entry = dict(name=name, source=str(pair.image), labels=str(pair.labels), task=task, split=split,
                     zooms=[0], height=h, width=w, label_fraction=round(float(label.mean()), 4))
        index.append(entry)
        log(f"{name:40s} {split:5s} {w}x{h} {task}={entry['label_fraction']:.3f}")
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder written by spacenet:fetchtiles (imagery + labels)")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--out", required=True, help="the cache folder to write")
    parser.add_argument("--val-every", type=int, default=10, help="every n-th tile validates (0: none)")
    parser.add_argument("--gsd", type=float, default=TARGET_GSD_M, help="metres per pixel of the cache")
    args = parser.parse_args(argv)
    build_cache(args.folder, args.task, args.out, args.val_every, args.gsd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
