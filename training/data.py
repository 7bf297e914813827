"""Build the training cache: per-area mosaics of XYZ tiles resampled to 0.3 m, with rasterised building labels.

Every source is a set of XYZ tiles. Contiguous zoom-19 tiles are grouped into rectangular blocks; each block is
stored once on a common 0.3 m grid with one image per zoom level available (z19 native, z20/z21 downsampled: the
same ground seen at different sharpness) and two label masks rasterised from the OSM polygons:
  building  the union of the footprints,
  interior  each footprint shrunk by 1 m (3 px), so touching buildings stay apart (watershed seeds).

Run from the repository root:  training/.venv/bin/python -m training.data
"""
import argparse
import glob
import json
import math
import os
import re
from collections import defaultdict

import numpy as np
import rasterio
import shapely
from affine import Affine
from PIL import Image
from shapely.geometry import box, shape

from training.paths import CACHE_DIR, DATA_ROOT  # noqa: F401 (DATA_ROOT: read from here by the evaluators)
from training.spacenet_data import building_masks

TARGET_GSD_M = 0.3
INTERIOR_SHRINK_PX = 3.0
EARTH_CIRCUMFERENCE_M = 2 * math.pi * 6378137.0

# Area 2 (Kampala) is the held-out test area: it never enters the cache.
TRAIN_SOURCES = {"ramp1": "train", "ramp3": "train", "ramp5": "train", "banepa": "train", "ramp4": "val"}
# Area 1 also lends a block 2.4 km away from its training block to validation.
VALIDATION_BLOCKS = {("ramp1", 270995)}  # (source, first z19 tile row of the block)

CHIP_NAME = re.compile(r"OAM-(\d+)-(\d+)-(\d+)\.(png|tif)$")


def parse_chip(path):
    m = CHIP_NAME.search(os.path.basename(path))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def lonlat_to_tile_xy(lon, lat, zoom):
    """Web Mercator lon/lat (degrees) to fractional XYZ tile coordinates at `zoom` (vectorised)."""
    n = 2.0**zoom
    lat_r = np.radians(lat)
    x = (np.asarray(lon) + 180.0) / 360.0 * n
    y = (1.0 - np.log(np.tan(lat_r) + 1.0 / np.cos(lat_r)) / math.pi) / 2.0 * n
    return x, y


def tile_latitude(y, zoom):
    n = 2.0**zoom
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))


def z19_gsd_m(tile_y19):
    lat = tile_latitude(tile_y19 + 0.5, 19)
    return EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat)) / (256 * 2**19)


def rectangular_blocks(tiles):
    """Group z19 tiles (x, y) into 4-connected components and return each one's bounding rectangle."""
    tiles, blocks = set(tiles), []
    while tiles:
        stack, comp = [tiles.pop()], []
        while stack:
            x, y = stack.pop()
            comp.append((x, y))
            for nb in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if nb in tiles:
                    tiles.remove(nb)
                    stack.append(nb)
        xs, ys = [t[0] for t in comp], [t[1] for t in comp]
        blocks.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
    return sorted(blocks)


def read_rgb(path):
    if path.endswith(".tif"):
        with rasterio.open(path) as src:
            return np.transpose(src.read([1, 2, 3]), (1, 2, 0))
    return np.asarray(Image.open(path).convert("RGB"))


def mosaic(chips, block, zoom, px_per_tile, out_size, reader=read_rgb):
    """Paste the chips of one zoom level covering `block` and resample to out_size (w, h).

    Returns the image (h, w, C) and a validity mask (h, w) of where chips existed. Single-band chips are masks
    and come back as 0/1.
    """
    x0, y0, x1, y1 = block
    k = 2 ** (zoom - 19)
    chip_px = px_per_tile // k
    canvas, valid, channels = None, np.zeros(((y1 - y0) * px_per_tile, (x1 - x0) * px_per_tile), np.uint8), 3
    for (x, y), path in chips.items():
        col, row = x - x0 * k, y - y0 * k
        if not (0 <= col < (x1 - x0) * k and 0 <= row < (y1 - y0) * k):
            continue
        arr = reader(path)
        if arr.ndim == 2:
            arr, channels = arr[:, :, None], 1
        if canvas is None:
            canvas = np.zeros(valid.shape + (arr.shape[2],), np.uint8)
        if arr.shape[0] != chip_px:
            arr = Image.fromarray(arr.squeeze()).resize((chip_px, chip_px), Image.LANCZOS)
            arr = np.asarray(arr).reshape(chip_px, chip_px, -1)
        canvas[row * chip_px:(row + 1) * chip_px, col * chip_px:(col + 1) * chip_px] = arr
        valid[row * chip_px:(row + 1) * chip_px, col * chip_px:(col + 1) * chip_px] = 1
    if canvas is None:
        return None, None
    if channels == 1:  # a mask (0/1 or 0/255): average it while downsampling, keep pixels mostly inside
        canvas = (canvas > 0).astype(np.uint8) * 255
        img = (np.asarray(Image.fromarray(canvas.squeeze()).resize(out_size, Image.BILINEAR)) >= 128).astype(np.uint8)
    else:
        img = np.asarray(Image.fromarray(canvas).resize(out_size, Image.LANCZOS))
    valid = np.asarray(Image.fromarray(valid * 255).resize(out_size, Image.BILINEAR)) > 254
    return img.reshape(out_size[1], out_size[0], -1), valid


def block_grid(block):
    """Output size and a lon/lat -> pixel transform for a block on the 0.3 m grid."""
    x0, y0, x1, y1 = block
    px_per_tile = 256 * z19_gsd_m((y0 + y1) / 2) / TARGET_GSD_M
    size = (int(round((x1 - x0) * px_per_tile)), int(round((y1 - y0) * px_per_tile)))

    def to_pixels(lonlat):
        tx, ty = lonlat_to_tile_xy(lonlat[:, 0], lonlat[:, 1], 19)
        return np.stack([(tx - x0) * px_per_tile, (ty - y0) * px_per_tile], axis=1)

    return size, to_pixels


def rasterise_labels(polygons_lonlat, size, to_pixels):
    """Building and interior masks (h, w) uint8 and building instance ids (h, w) int32 from lon/lat polygons:
    the project's one convention (training.spacenet_data.building_masks), here in pixel units."""
    w, h = size
    frame = box(0, 0, w, h)
    in_pixels = [shapely.transform(geom, to_pixels) for geom in polygons_lonlat]
    masks = building_masks([g for g in in_pixels if not g.is_empty and g.intersects(frame)], (h, w),
                           Affine.identity(), shrink_m=INTERIOR_SHRINK_PX)
    return masks["building"], masks["interior"], masks["instances"]


def load_polygons(paths):
    polys = []
    for p in paths:
        with open(p) as f:
            for feat in json.load(f)["features"]:
                if feat.get("geometry") and feat["geometry"]["type"] in ("Polygon", "MultiPolygon"):
                    polys.append(shape(feat["geometry"]))
    return polys


def ramp_source(area):
    """Chips by zoom {z: {(x, y): path}} and label polygons of a ramp_hotosm area."""
    chips = defaultdict(dict)
    for p in glob.glob(f"{DATA_ROOT}/ramp_hotosm/data/{area}/*.png"):
        x, y, z = parse_chip(p)
        chips[z][(x, y)] = p
    return chips, load_polygons([f"{DATA_ROOT}/ramp_hotosm/data/{area}/labels.geojson"])


def banepa_source():
    """fAIr Banepa chips: z19 tiles stored as 512 px (2x upsampled), labels as OSM polygons."""
    chips = {19: {}}
    for p in glob.glob(f"{DATA_ROOT}/banepa/train/oam/*.tif"):
        x, y, _ = parse_chip(p)
        chips[19][(x, y)] = p
    return chips, load_polygons(glob.glob(f"{DATA_ROOT}/banepa/train/osm/*.geojson"))


def build_blocks(chips, polygons, native_px=None):
    """Yield dicts with images (V, h, w, 3), valid (V, h, w), building, interior for each block."""
    for block in rectangular_blocks(chips[19].keys()):
        size, to_pixels = block_grid(block)
        images, valids, zooms = [], [], []
        for z in sorted(chips):
            px = native_px or 256 * 2 ** (z - 19)
            img, valid = mosaic(chips[z], block, z, px, size)
            if img is not None:
                images.append(img)
                valids.append(valid)
                zooms.append(z)
        building, interior, instances = rasterise_labels(polygons, size, to_pixels)
        yield dict(block=np.array(block), zooms=np.array(zooms), images=np.stack(images), valid=np.stack(valids),
                   building=building, interior=interior, instances=instances)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=CACHE_DIR)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    index = []
    for source, split in TRAIN_SOURCES.items():
        if source == "banepa":
            chips, polys = banepa_source()
            blocks = build_blocks(chips, polys, native_px=512)
        else:
            chips, polys = ramp_source(int(source[4:]))
            blocks = build_blocks(chips, polys)
        for b in blocks:
            block_split = "val" if (source, int(b["block"][1])) in VALIDATION_BLOCKS else split
            name = f"{source}_{b['block'][0]}_{b['block'][1]}"
            np.savez_compressed(os.path.join(args.out, name + ".npz"), **b)
            h, w = b["building"].shape
            index.append(dict(name=name, source=source, split=block_split, zooms=b["zooms"].tolist(), height=h, width=w,
                              building_fraction=round(float(b["building"].mean()), 4)))
            print(f"{name:28s} {block_split:5s} zooms={b['zooms'].tolist()} {w}x{h} "
                  f"buildings={b['building'].mean():.3f}")
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
