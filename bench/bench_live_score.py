#!/usr/bin/env python3
"""Live score speed: one edit re-matched incrementally (core.score.live_score) against a full core.score.f1.score
rescoring.

The data: 50,000 truth footprints (rotated rectangles, 8-30 m sides, one per 50 m cell of a grid in UTM-sized
coordinates, never overlapping) and 50,000 proposals: most truths get one proposal shifted, resized and turned a
little (IoU on both sides of 0.5), some a second one (a duplicate), and false alarms fill up the count.

The edits are what a mapper does in the review dock, in random order: delete a proposal, reshape one (moved and
resized around its truth), digitise a missed building (a copy of a truth polygon, slightly off). Each edit is timed
alone; a full rescoring is what the dock would have to do without the incremental matching (core only: reading the
layer again would come on top). After the edits the incremental counts must equal a full rescoring of the edited
proposals. ``--quick`` runs 5,000 buildings and 200 edits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import paths  # noqa: F401 - puts the plugin on sys.path

import numpy as np
import shapely

from spacenet_toolkit.core.score import f1  # found through paths
from spacenet_toolkit.core.score.live_score import LiveScore  # noqa: E402

SEED = 20240817
CELL_M = 50.0
DETECTED, DUPLICATED = 0.85, 0.05  # shares of truths with a proposal, and with a second one
TARGET_MS = 50.0


def rectangles(cx, cy, width, height, angle) -> np.ndarray:
    unit_x = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    unit_y = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    dx, dy = width[:, None] * unit_x, height[:, None] * unit_y
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return shapely.polygons(np.stack([cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos], -1))


def jittered(rng, cx, cy, width, height, angle):
    n = len(cx)
    return rectangles(cx + rng.normal(0, 2.0, n), cy + rng.normal(0, 2.0, n), width * rng.uniform(0.75, 1.25, n),
                      height * rng.uniform(0.75, 1.25, n), angle + rng.normal(0, 0.15, n))


def make_scene(count: int, rng: np.random.Generator):
    """(truth polygons, truth parameters (cx, cy, width, height, angle), proposal polygons)."""
    side = int(np.ceil(np.sqrt(count)))
    cell = np.arange(count)
    cx = 500_000.0 + (cell % side + 0.5) * CELL_M + rng.uniform(-3, 3, count)
    cy = 4_000_000.0 + (cell // side + 0.5) * CELL_M + rng.uniform(-3, 3, count)
    width, height, angle = rng.uniform(8, 30, count), rng.uniform(8, 30, count), rng.uniform(0, np.pi, count)
    truth = rectangles(cx, cy, width, height, angle)
    found = np.flatnonzero(rng.random(count) < DETECTED)
    twice = found[rng.random(len(found)) < DUPLICATED / DETECTED]
    detected = np.concatenate([found, twice])
    false_count = max(0, count - len(detected))
    false_alarms = rectangles(500_000.0 + rng.uniform(0, side * CELL_M, false_count),
                              4_000_000.0 + rng.uniform(0, side * CELL_M, false_count),
                              rng.uniform(8, 30, false_count), rng.uniform(8, 30, false_count),
                              rng.uniform(0, np.pi, false_count))
    proposals = np.concatenate([jittered(rng, *(a[detected] for a in (cx, cy, width, height, angle))), false_alarms])
    return truth, (cx, cy, width, height, angle), proposals[rng.permutation(len(proposals))][:count]


def full_rescoring(truth, proposals: dict) -> f1.F1Result:
    geometries = np.empty(len(proposals), dtype=object)
    geometries[:] = [proposals[fid] for fid in sorted(proposals)]
    return f1.score(f1.PolygonSet(truth), f1.PolygonSet(geometries), f1.F1Options())


def edit_sequence(rng, count: int, truth_parameters, proposals: dict):
    """(kind, fid, geometry or None) edits, made up front so that only the edits themselves are timed."""
    edits, live_fids, next_fid = [], list(proposals), max(proposals) + 1
    for _ in range(count):
        kind = ("delete", "reshape", "digitise")[rng.integers(3)]
        building = int(rng.integers(len(truth_parameters[0])))
        shape = jittered(rng, *(np.array([a[building]]) for a in truth_parameters))[0]
        if kind == "digitise":
            edits.append((kind, next_fid, shape))
            live_fids.append(next_fid)
            next_fid += 1
        else:
            fid = live_fids.pop(int(rng.integers(len(live_fids))))
            edits.append((kind, fid, None if kind == "delete" else shape))
            if kind == "reshape":
                live_fids.append(fid)
    return edits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 buildings and 200 edits")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    count, edit_count = (5_000, 200) if args.quick else (50_000, 1_000)
    rng = np.random.default_rng(SEED)
    truth, truth_parameters, proposal_array = make_scene(count, rng)
    proposals = dict(enumerate(proposal_array.tolist(), start=1))
    print(f"{count:,} truth vs {len(proposals):,} proposals (rotated rectangles 8-30 m), IoU >= 0.5, greedy, "
          f"one group; {edit_count:,} edits; {os.cpu_count()} CPUs")

    start = time.perf_counter()
    live = LiveScore(truth)
    live.load(proposals, proposals.values())
    load_s = time.perf_counter() - start
    full_s = min(_timed(lambda: full_rescoring(truth, proposals))[0] for _ in range(3))
    assert live.counts() == full_rescoring(truth, proposals).total, "the loaded counts differ from core.score.f1.score"

    times = {"delete": [], "reshape": [], "digitise": []}
    rematched = []
    for kind, fid, geometry in edit_sequence(rng, edit_count, truth_parameters, proposals):
        if kind == "delete":
            seconds, stats = _timed(lambda: live.remove(fid))  # noqa: B023 - called at once
            del proposals[fid]
        else:
            call = live.add if kind == "digitise" else live.change
            seconds, stats = _timed(lambda: call(fid, geometry))  # noqa: B023 - called at once
            proposals[fid] = geometry
        times[kind].append(seconds * 1000)
        rematched.append(stats.proposals + stats.truths)

    expected = full_rescoring(truth, proposals).total
    got = live.counts()
    every = np.concatenate([np.array(v) for v in times.values()])
    median_ms, p99_ms, max_ms = np.median(every), np.percentile(every, 99), every.max()
    print(f"load (LiveScore + {len(proposal_array):,} proposals in bulk): {load_s:.3f} s")
    print(f"full core.score.f1.score rescoring: {full_s * 1000:.1f} ms (best of 3)")
    for kind, values in times.items():
        print(f"  {kind:9s} {len(values):5d} edits: median {np.median(values):.3f} ms, max {max(values):.3f} ms")
    print(f"one edit: median {median_ms:.3f} ms, p99 {p99_ms:.3f} ms, max {max_ms:.3f} ms "
          f"(target well under {TARGET_MS:.0f} ms) vs full rescoring {full_s * 1000:.1f} ms: "
          f"{full_s * 1000 / median_ms:,.0f}x faster")
    print(f"polygons re-matched per edit: mean {np.mean(rematched):.2f}, max {max(rematched)} "
          f"(of {len(truth) + len(proposals):,})")
    print(f"after the edits: TP {got.tp:,} FP {got.fp:,} FN {got.fn:,} F1 {got.f1:.6f}")
    if (got.tp, got.fp, got.fn) != (expected.tp, expected.fp, expected.fn):
        print(f"MISMATCH: full rescoring says TP {expected.tp:,} FP {expected.fp:,} FN {expected.fn:,}")
        return 1
    print("identical TP/FP/FN to a full rescoring")
    if p99_ms >= TARGET_MS:
        print(f"TOO SLOW: p99 {p99_ms:.1f} ms >= {TARGET_MS:.0f} ms")
        return 1
    return 0


def _timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    sys.exit(main())
