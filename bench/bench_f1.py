#!/usr/bin/env python3
"""F1 scoring speed: the vectorised engine (core.score.f1.score) against a per-proposal loop, on the same polygons.

The data: 100,000 truth and 100,000 proposal footprints (rotated rectangles, 8-30 m sides, in UTM-sized
coordinates) spread over 100 tiles. Most truths get a proposal that is shifted, resized and turned a little (partial
overlaps, IoU on both sides of 0.5), some truths are missed, and false alarms fill the proposals up to the same count.

The baseline is the SpaceNet utilities approach: per group one STRtree over the truth, then per proposal a tree query
and shapely ``intersection``/``union`` for each candidate, keeping the remaining truth of best IoU. Both must give
identical TP/FP/FN. ``--quick`` runs 10,000 polygons a side.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tracemalloc

import paths  # noqa: F401 - puts the plugin on sys.path

import numpy as np
import shapely
from timing import best_time  # noqa: E402

from spacenet_toolkit.core.score import convex_clip, f1  # found through paths

SEED = 20240601
TILES = 100
TILE_SIZE_M = 1600.0  # a 32 x 32 grid of 50 m cells: room for 1,000 buildings that never overlap
CELL_M = 50.0
DETECTED = 0.85  # share of truths that get a proposal
THRESHOLD = 0.5


# --- synthetic footprints ---------------------------------------------------------------------------------------


def rectangle_rings(cx, cy, width, height, angle) -> np.ndarray:
    """Rotated rectangles as (count, 5, 2) closed rings."""
    unit_x = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    unit_y = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    dx, dy = width[:, None] * unit_x, height[:, None] * unit_y
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return np.stack([cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos], axis=-1)


def make_scene(count: int, rng: np.random.Generator):
    """(truth polygons, truth tile ids, proposal polygons, proposal tile ids).

    Proposals come tile by tile, as a model writes them, in random order inside each tile. Each set of polygons is
    created in its final order, as a reader of a layer or a CSV creates them.
    """
    per_tile = count // TILES
    tile = np.repeat(np.arange(TILES), per_tile)
    cell = np.concatenate([rng.choice(1024, per_tile, replace=False) for _ in range(TILES)])
    origin_x = 500_000.0 + (tile % 10) * (TILE_SIZE_M + 200)  # UTM-like magnitudes, as a real layer has
    origin_y = 4_000_000.0 + (tile // 10) * (TILE_SIZE_M + 200)
    cx = origin_x + (cell % 32 + 0.5) * CELL_M + rng.uniform(-3, 3, len(cell))
    cy = origin_y + (cell // 32 + 0.5) * CELL_M + rng.uniform(-3, 3, len(cell))
    width, height = rng.uniform(8, 30, len(cell)), rng.uniform(8, 30, len(cell))
    angle = rng.uniform(0, np.pi, len(cell))
    truth = shapely.polygons(rectangle_rings(cx, cy, width, height, angle))

    found = rng.random(len(cell)) < DETECTED
    n_found = int(found.sum())
    detections = rectangle_rings(
        cx[found] + rng.normal(0, 2.0, n_found),
        cy[found] + rng.normal(0, 2.0, n_found),
        width[found] * rng.uniform(0.75, 1.25, n_found),
        height[found] * rng.uniform(0.75, 1.25, n_found),
        angle[found] + rng.normal(0, 0.15, n_found),
    )
    n_false = count - n_found
    false_tile = rng.integers(0, TILES, n_false)
    false_alarms = rectangle_rings(
        500_000.0 + (false_tile % 10) * (TILE_SIZE_M + 200) + rng.uniform(0, TILE_SIZE_M, n_false),
        4_000_000.0 + (false_tile // 10) * (TILE_SIZE_M + 200) + rng.uniform(0, TILE_SIZE_M, n_false),
        rng.uniform(8, 30, n_false),
        rng.uniform(8, 30, n_false),
        rng.uniform(0, np.pi, n_false),
    )
    rings = np.concatenate([detections, false_alarms])
    proposal_tile = np.concatenate([tile[found], false_tile])
    order = np.lexsort((rng.random(len(rings)), proposal_tile))
    return truth, tile_names(tile), shapely.polygons(rings[order]), tile_names(proposal_tile[order])


def tile_names(tile: np.ndarray) -> np.ndarray:
    return np.array([f"tile_{number:03d}" for number in tile], dtype=object)


# --- the baseline: one query and two overlay operations per candidate, in Python ------------------------------------


def baseline_counts(truth, truth_tiles, proposals, proposal_tiles, threshold: float) -> f1.Counts:
    total = f1.Counts()
    for tile in sorted(set(truth_tiles) | set(proposal_tiles)):
        tile_truth = truth[truth_tiles == tile]
        tile_proposals = proposals[proposal_tiles == tile]
        total = total + baseline_tile(tile_truth, tile_proposals, threshold)
    return total


def baseline_tile(truth, proposals, threshold: float) -> f1.Counts:
    tree = shapely.STRtree(truth)
    taken = set()
    tp = fp = 0
    for proposal in proposals:
        best_iou, best_truth = 0.0, -1
        for candidate in sorted(tree.query(proposal, predicate="intersects")):
            if candidate in taken:
                continue
            iou = proposal.intersection(truth[candidate]).area / proposal.union(truth[candidate]).area
            if iou > best_iou:
                best_iou, best_truth = iou, candidate
        if best_truth >= 0 and best_iou >= threshold:
            taken.add(best_truth)
            tp += 1
        else:
            fp += 1
    return f1.Counts(tp=tp, fp=fp, fn=len(truth) - len(taken))


# --- measuring --------------------------------------------------------------------------------------------------


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_engine(scene) -> f1.F1Result:
    truth, truth_tiles, proposals, proposal_tiles = scene
    options = f1.F1Options(iou_threshold=THRESHOLD, matching="greedy>=")
    return f1.score(f1.PolygonSet(truth, truth_tiles), f1.PolygonSet(proposals, proposal_tiles), options)


def engine_memory_mib(scene):
    """(tracemalloc peak, growth of the process's max RSS) over one engine run, in MiB."""
    rss_before = max_rss_mib()
    tracemalloc.start()
    run_engine(scene)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return traced_peak / 2**20, max_rss_mib() - rss_before


def geos_only_seconds(scene) -> float:
    """The engine with its numpy clipping of convex pairs switched off: every pair goes through GEOS in bulk."""
    saved = convex_clip.MAX_CONVEX_VERTICES
    convex_clip.MAX_CONVEX_VERTICES = 0
    try:
        return best_time(lambda: run_engine(scene), 1)[0]
    finally:
        convex_clip.MAX_CONVEX_VERTICES = saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 polygons a side instead of 100,000")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    count = 10_000 if args.quick else 100_000

    scene = make_scene(count, np.random.default_rng(SEED))
    print(f"{count:,} truth vs {count:,} proposals (rotated rectangles 8-30 m) in {TILES} tiles, "
          f"IoU >= {THRESHOLD}, greedy, input order; {os.cpu_count()} CPUs")

    # Memory first: the max-RSS high-water mark then grows only by what the engine needs beyond the scene.
    traced_mib, rss_growth_mib = engine_memory_mib(scene)
    engine_s, result = best_time(lambda: run_engine(scene), 3)
    geos_s = geos_only_seconds(scene)
    baseline_s, expected = best_time(lambda: baseline_counts(*scene, THRESHOLD), 1)

    got = result.total
    print(f"engine   TP {got.tp:,} FP {got.fp:,} FN {got.fn:,} F1 {got.f1:.6f}: {engine_s:.3f} s (best of 3)")
    print(f"baseline TP {expected.tp:,} FP {expected.fp:,} FN {expected.fn:,} F1 {expected.f1:.6f}: "
          f"{baseline_s:.3f} s (one run, full set)")
    print(f"speed-up {baseline_s / engine_s:.1f}x (target >= 20x)")
    print(f"  for reference, the engine with every pair in GEOS (no numpy clipping): {geos_s:.3f} s, "
          f"{baseline_s / geos_s:.1f}x")
    print(f"engine peak memory: tracemalloc peak {traced_mib:.1f} MiB (Python and numpy allocations, not GEOS's); "
          f"max RSS grew {rss_growth_mib:.1f} MiB during one run (whole process, GEOS included)")
    if (got.tp, got.fp, got.fn) != (expected.tp, expected.fp, expected.fn):
        print("MISMATCH: the engine and the baseline disagree")
        return 1
    print("identical TP/FP/FN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
