#!/usr/bin/env python3
"""Thresholds dialog preview: the time of one slider update, against vectorising the window from scratch.

A realistic building probability raster (2048 x 2048 px at 0.3 m = 0.38 km2: blocks of houses along streets,
rotated with their block, garages and sheds, row houses that touch, blurred and speckled as a model's output,
written as extractbuildings writes its probability output: Float32, deflate, 256 px tiles) is held by a
``core.extract.preview.FootprintPreview`` over a 2048 x 2048 px view. Each kind of slider update is timed (the median
of several) next to the baseline in the same run: ``core.extract.buildings.footprints_on_grid`` + ``finish`` + placing
on the map of the same window, from memory, at the same options (what a preview without caches would cost).
The preview's footprints are checked equal to the baseline's.

Target: a threshold update (a threshold not seen before: segmentation and polygons again) under 0.3 s on the
2-core development machine; minimum area, simplification and regularisation updates, and a threshold seen
before, are post-steps or cache hits. ``--quick`` takes a 1024 x 1024 px view.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paths  # noqa: F401 - puts the plugin on sys.path

import numpy as np
import rasterio
import shapely
from rasterio import features
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import box

from spacenet_toolkit.core.extract import buildings, preview  # found through paths

PIXEL_M = 0.3
TARGET_S = 0.3
BASE = buildings.BuildingOptions(threshold=0.5, min_area_m2=10.0, simplify_m=0.5)


def city(size: int, seed: int = 0) -> np.ndarray:
    """Building probability [size, size] float32 of a suburb: streets, blocks, houses, garages, noise."""
    rng = np.random.default_rng(seed)
    m = 1 / PIXEL_M
    shapes = []
    for _ in range(max(1, size // 700)):  # a few large buildings: shops, schools, warehouses
        cx, cy = rng.uniform(0, size, 2)
        w, h = rng.uniform(25, 60, 2) * m
        shapes.append((shapely.affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                                               rng.uniform(0, 90), origin=(cx, cy)), rng.uniform(0.7, 0.95)))
    y = rng.uniform(0, 20) * m
    while y < size:  # rows of blocks 70 m deep between 12 m streets, each block two rows of lots
        block_h = 70 * m
        x = rng.uniform(-20, 0) * m
        while x < size:
            block_w = rng.uniform(100, 220) * m
            angle = rng.normal(0, 6)
            for row in (0, 1):
                lot_x = x
                while lot_x < x + block_w:
                    lot_w = rng.uniform(14, 26) * m
                    terrace = rng.random() < 0.15  # row houses: touch the next lot's house
                    w = lot_w * (1.02 if terrace else rng.uniform(0.45, 0.75))
                    h = rng.uniform(8, 15) * m
                    cy = y + (block_h * (0.27 if row == 0 else 0.73)) + rng.normal(0, 1.5) * m
                    cx = lot_x + lot_w / 2
                    house = shapely.affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
                                                    angle + rng.normal(0, 2), origin=(cx, cy))
                    if rng.random() < 0.25:  # an L-shaped wing
                        wing = box(cx - w / 2, cy, cx - w / 2 + w * 0.4, cy + h * 0.9)
                        house = house.union(shapely.affinity.rotate(wing, angle, origin=(cx, cy)))
                    shapes.append((house, rng.uniform(0.6, 0.98)))
                    if rng.random() < 0.3:  # garage or shed behind the house
                        gx, gy = cx + rng.uniform(-0.3, 0.3) * lot_w, cy + (1 if row else -1) * rng.uniform(9, 14) * m
                        gw, gh = rng.uniform(2, 6) * m, rng.uniform(2, 6) * m
                        shapes.append((box(gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2), rng.uniform(0.45, 0.8)))
                    lot_x += lot_w
            x += block_w + 12 * m
        y += block_h + 12 * m
    # rasterio draws (x, y) = (col, row): the shapes are in pixel coordinates already
    score = features.rasterize(shapes, out_shape=(size, size), dtype="float32", all_touched=False)
    score = ndimage.gaussian_filter(score, 1.6)  # soft edges, as a model's sigmoid output
    # trees, cars, pools, bare ground: mostly faint, now and then a blob over the threshold
    field = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)).astype(np.float32), 4)
    speckle = np.clip((field / field.std() - 1.0) * 0.25, 0, None)
    return np.clip(score + speckle, 0, 1).astype(np.float32)


def write_probability(path: Path, prob: np.ndarray) -> Path:
    profile = {"driver": "GTiff", "width": prob.shape[1], "height": prob.shape[0], "count": 1, "dtype": "float32",
               "crs": "EPSG:32616", "transform": from_origin(740000, 3740000, PIXEL_M, PIXEL_M), "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 3}
    with rasterio.open(path, "w", **profile) as out:
        out.write(prob, 1)
        out.set_band_description(1, preview.DESCRIPTION)
    return path


def baseline(prob: np.ndarray, options, transform) -> tuple:
    """Seconds and footprints of footprints_on_grid + finish + to_map over the window, from memory."""
    started = time.perf_counter()

    def keep(footprint):
        done = buildings.finish(footprint, options, PIXEL_M**2, PIXEL_M)
        return None if done is None else buildings.to_map(done.geometry, transform)

    found = buildings.footprints_on_grid(lambda r, c, h, w: (prob[r : r + h, c : c + w], None), *prob.shape, options,
                                         PIXEL_M, keep=keep)
    return time.perf_counter() - started, found


def timed(call) -> tuple:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def same(footprints, geometries) -> bool:
    ours = sorted(shapely.to_wkb(footprints.geometries, output_dimension=2)) if len(footprints) else []
    theirs = sorted(shapely.to_wkb(np.array(geometries, dtype=object), output_dimension=2)) if geometries else []
    return ours == theirs


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1024 x 1024 px view")
    parser.add_argument("--repeat", type=int, default=5, help="updates timed per kind (the median is shown)")
    args = parser.parse_args(argv)
    size = 1024 if args.quick else 2048
    prob = city(size)
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as folder:
        path = write_probability(Path(folder) / "probability.tif", prob)
        view = preview.FootprintPreview(path)
        transform = view.source.info.transform
        read_s, _ = timed(lambda: view.set_view(None))
        first_s, first = timed(lambda: view.footprints(BASE))
        base_s, base_found = baseline(prob, BASE, transform)
        ok = same(first, base_found)

        rows = []  # (update, preview seconds, baseline options)
        thresholds = [round(0.4 + 0.02 * i, 2) for i in range(args.repeat)]
        threshold_s = [timed(lambda t=t: view.footprints(_with(BASE, threshold=t)))[0] for t in thresholds]
        rows.append(("threshold, not seen before", threshold_s, _with(BASE, threshold=thresholds[-1])))
        rows.append(("threshold, seen before", [timed(lambda t=t: view.footprints(_with(BASE, threshold=t)))[0]
                                                for t in thresholds], BASE))
        rows.append(("minimum area", [timed(lambda a=a: view.footprints(_with(BASE, min_area_m2=a)))[0]
                                      for a in (2, 5, 15, 20, 30)[: args.repeat]], _with(BASE, min_area_m2=20)))
        rows.append(("simplify", [timed(lambda s=s: view.footprints(_with(BASE, simplify_m=s)))[0]
                                  for s in (0.3, 0.6, 0.8, 1.0, 1.5)[: args.repeat]], _with(BASE, simplify_m=1.0)))
        regularized = [_with(BASE, regularize=True, threshold=t) for t in thresholds[:2]]
        rows.append(("regularize (switched on)", [timed(lambda o=o: view.footprints(o))[0] for o in regularized],
                     regularized[0]))

        print(f"{size} x {size} px view at {PIXEL_M} m ({(size * PIXEL_M) ** 2 / 1e6:.2f} km2), "
              f"{len(first)} footprints at threshold {BASE.threshold}, minimum area {BASE.min_area_m2:g} m2, "
              f"simplify {BASE.simplify_m:g} m; read of the window {read_s:.3f} s, first view {first_s:.3f} s")
        print(f"  {'slider update':28s} {'preview (median)':>17s} {'baseline':>9s} {'speed-up':>9s}")
        for label, seconds, options in rows:
            base_s, found = baseline(prob, options, transform)
            median = statistics.median(seconds)
            ok &= same(view.footprints(options), found)
            speed_up = f"{base_s / median:8.1f}x" if median > base_s / 1000 else "  >1000x"
            print(f"  {label:28s} {median:15.3f} s {base_s:7.3f} s {speed_up}")
        threshold_median = statistics.median(threshold_s)
        print(f"  footprints equal to the baseline's at every setting: {'yes' if ok else 'NO'}")
        print(f"  threshold update {threshold_median:.3f} s (target < {TARGET_S} s): "
              f"{'met' if threshold_median < TARGET_S else 'MISSED'}")
        print(f"  steps run: {view.counts}")
    return 0 if ok and threshold_median < TARGET_S else 1


def _with(options, **changes):
    from dataclasses import replace

    return replace(options, **changes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
