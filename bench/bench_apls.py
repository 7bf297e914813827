#!/usr/bin/env python3
"""APLS scoring speed: the engine (core.score.apls, scipy Dijkstra from the control points) against networkx, same
graphs.

Part 1 scores the 7 SpaceNet Vegas tiles of the reference oracle (shared/fixtures/apls_oracle) and prints each
tile and half beside the reference's; it fails when a tile or the mean is off by more than 0.02.

Part 2 is a city: a grid of 100 m blocks with bent streets (18 x 18 junctions, 61 km of road; ``--quick``:
8 x 8, 11 km) as the truth, and as the proposal the same streets with every vertex moved about 1 m, some blocks
missing, some streets cut short of their junction and some dead-end spurs added. The engine scores it from the
lines. The baseline builds the same graphs and snaps the same control points with the engine's own functions, then
does what the reference does with networkx: a node inserted at every control point, one single-source Dijkstra per
control point in each graph and a Python loop over the pairs. Both must give the same score.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import paths  # noqa: F401 - puts the plugin on sys.path

import numpy as np
import shapely
from networkx_apls import networkx_half  # found through paths
from timing import best_time  # noqa: E402

from spacenet_toolkit.core.score import apls  # noqa: E402

ORACLE = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "apls_oracle"
ORACLE_TOLERANCE = 0.02
SEED = 20240607
BLOCK_M = 100.0
MISSING_BLOCKS, CUT_SHORT, SPURS = 0.08, 0.03, 0.05  # shares of blocks, blocks, junctions


# --- part 1: the oracle -----------------------------------------------------------------------------------------


def oracle_part() -> bool:
    if not ORACLE.is_dir():
        print(f"oracle: skipped, {ORACLE} is missing")
        return True
    with open(ORACLE / "reference_scores.csv", newline="") as stream:
        rows = {row["outroot"]: row for row in csv.DictReader(stream) if row["outroot"].startswith("AOI_")}
    truth, truth_tiles, proposals, proposal_tiles = [], [], [], []
    for tile in rows:
        for folder, lines, tiles in (("spacenet", truth, truth_tiles), ("osm", proposals, proposal_tiles)):
            features = json.loads((ORACLE / folder / f"{tile}.geojson").read_text())["features"]
            lines += [shapely.geometry.shape(feature["geometry"]) for feature in features]
            tiles += [tile] * len(features)

    seconds, result = best_time(lambda: apls.score_by_group(truth, truth_tiles, proposals, proposal_tiles,
                                                            crs="EPSG:4326"), 3)
    print(f"oracle: 7 SpaceNet Vegas tiles (EPSG:4326) scored in {seconds * 1000:.0f} ms (best of 3)")
    print(f"  {'tile':20} {'APLS':>7} {'ref':>7} {'diff':>8}   {'gt>prop':>7} {'ref':>7}   {'prop>gt':>7} {'ref':>7}")
    worst = 0.0
    for tile, row in rows.items():
        got = result.groups[tile]
        reference = float(row["APLS"]), float(row["APLS_gt_onto_prop"]), float(row["APLS_prop_onto_gt"])
        worst = max(worst, *(abs(a - b) for a, b in zip((got.apls, got.gt_to_prop, got.prop_to_gt), reference)))
        print(f"  {tile:20} {got.apls:7.4f} {reference[0]:7.4f} {got.apls - reference[0]:+8.4f}   "
              f"{got.gt_to_prop:7.4f} {reference[1]:7.4f}   {got.prop_to_gt:7.4f} {reference[2]:7.4f}")
    print(f"  {'mean':20} {result.mean_apls:7.4f} {0.6489601662738805:7.4f} "
          f"{result.mean_apls - 0.6489601662738805:+8.4f}   (largest difference of a tile or half: {worst:.4f})")
    passed = worst <= ORACLE_TOLERANCE and abs(result.mean_apls - 0.6489601662738805) <= ORACLE_TOLERANCE
    if not passed:
        print(f"MISMATCH: a tile or the mean is more than {ORACLE_TOLERANCE} from the reference")
    return passed


# --- part 2: a city ---------------------------------------------------------------------------------------------


def city(junctions_per_side: int, rng: np.random.Generator):
    """(truth lines, proposal lines): one bent line per block side, in UTM-sized metres."""
    n = junctions_per_side
    junction = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1) * BLOCK_M
    junction = junction + rng.uniform(-10, 10, junction.shape) + (500_000.0, 4_000_000.0)
    starts, ends = [], []
    for di, dj in ((1, 0), (0, 1)):  # east-west, then north-south blocks
        starts.append(junction[: n - di, : n - dj].reshape(-1, 2))
        ends.append(junction[di:, dj:].reshape(-1, 2))
    start, end = np.concatenate(starts), np.concatenate(ends)
    truth_xy = bent(start, end, rng)

    kept = rng.random(len(start)) >= MISSING_BLOCKS
    moved_junction = junction + rng.normal(0, 1.0, junction.shape)  # shared ends stay shared
    moved_start = np.concatenate([moved_junction[: n - di, : n - dj].reshape(-1, 2)
                                  for di, dj in ((1, 0), (0, 1))])
    moved_end = np.concatenate([moved_junction[di:, dj:].reshape(-1, 2) for di, dj in ((1, 0), (0, 1))])
    proposal_xy = truth_xy + rng.normal(0, 1.0, truth_xy.shape)
    proposal_xy[:, 0], proposal_xy[:, -1] = moved_start, moved_end
    cut = rng.random(len(start)) < CUT_SHORT  # stops 6 m short of its end junction: a break in the network
    direction = proposal_xy[cut, -1] - proposal_xy[cut, -2]
    proposal_xy[cut, -1] -= 6.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)

    spur_at = moved_junction.reshape(-1, 2)[rng.random(n * n) < SPURS]
    angle, length = rng.uniform(0, 2 * np.pi, len(spur_at)), rng.uniform(20, 60, len(spur_at))
    spur_end = spur_at + np.stack([np.cos(angle), np.sin(angle)], -1) * length[:, None]
    proposals = np.concatenate([shapely.linestrings(proposal_xy[kept]),
                                shapely.linestrings(np.stack([spur_at, spur_end], 1))])
    return shapely.linestrings(truth_xy), proposals


def bent(start: np.ndarray, end: np.ndarray, rng: np.random.Generator, inner: int = 3) -> np.ndarray:
    """(lines, inner + 2, 2) vertices from start to end with the inner ones a few metres off the straight line."""
    t = np.linspace(0, 1, inner + 2)[None, :, None]
    xy = start[:, None] + (end - start)[:, None] * t
    normal = (end - start)[:, ::-1] * (1, -1) / np.linalg.norm(end - start, axis=1, keepdims=True)
    offset = rng.uniform(-4, 4, (len(start), inner + 2)) * np.sin(np.pi * t[..., 0])  # ends stay put
    return xy + normal[:, None] * offset[..., None]


def baseline_score(truth_lines, proposal_lines, options: apls.AplsOptions):
    """APLS with the engine's graphs and snapped points, shortest paths and pairs done with networkx and Python."""
    truth, proposal = apls.build_graph(truth_lines, options), apls.build_graph(proposal_lines, options)
    gt_to_prop, prop_to_gt = apls.compare_halves(truth, proposal, options)
    halves = [networkx_half(half, options.min_path_length_m)[0] for half in (gt_to_prop, prop_to_gt)]
    return 2.0 / (1.0 / halves[0] + 1.0 / halves[1]) if min(halves) > 0 else 0.0, halves





def city_part(quick: bool) -> bool:
    side = 8 if quick else 18
    truth_lines, proposal_lines = city(side, np.random.default_rng(SEED))
    options = apls.AplsOptions()
    engine_s, result = best_time(lambda: apls.score(truth_lines, proposal_lines, options), 3)
    prepare_s, _ = best_time(lambda: apls.compare_halves(apls.build_graph(truth_lines, options),
                                                          apls.build_graph(proposal_lines, options), options), 3)
    baseline_s, (expected, halves) = best_time(lambda: baseline_score(truth_lines, proposal_lines, options), 1)

    print(f"\ncity: {side} x {side} junctions, blocks of {BLOCK_M:.0f} m; truth {result.length_truth_m / 1000:.1f} km, "
          f"proposal {result.length_proposal_m / 1000:.1f} km; control points {result.control_points_truth:,} "
          f"truth, {result.control_points_proposal:,} proposal; {result.paths_truth + result.paths_proposal:,} "
          f"paths compared")
    print(f"engine   APLS {result.apls:.9f} (gt>prop {result.gt_to_prop:.6f}, prop>gt {result.prop_to_gt:.6f}): "
          f"{engine_s:.3f} s (best of 3)")
    print(f"baseline APLS {expected:.9f} (gt>prop {halves[0]:.6f}, prop>gt {halves[1]:.6f}): {baseline_s:.3f} s "
          f"(one run; networkx single-source Dijkstra per control point)")
    print(f"speed-up {baseline_s / engine_s:.1f}x (target >= 10x); shortest paths and pairs alone: engine "
          f"{engine_s - prepare_s:.3f} s, networkx {baseline_s - prepare_s:.3f} s "
          f"({(baseline_s - prepare_s) / max(engine_s - prepare_s, 1e-9):.0f}x); graphs and snapping, shared by "
          f"both: {prepare_s:.3f} s")
    if abs(result.apls - expected) > 1e-9:
        print("MISMATCH: the engine and the baseline disagree")
        return False
    print("identical scores")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8 x 8 city (11 km) instead of 18 x 18 (61 km)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    oracle_ok = oracle_part()
    city_ok = city_part(args.quick)
    return 0 if oracle_ok and city_ok else 1


if __name__ == "__main__":
    sys.exit(main())
