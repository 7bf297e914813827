#!/usr/bin/env python3
"""spacenet:scoref1 end to end through qgis_process against the plain per-proposal loop's matching alone (issue 20).

The data: 40,000 truth and 40,000 proposal footprints (``bench_f1.make_scene``: rotated rectangles in 100 tiles,
UTM-sized coordinates, EPSG:32616) written to two GeoPackages with a ``tile`` field. The run: ``scripts/qgis-process
run spacenet:scoref1`` grouped by ``tile``, writing the scored review layer (GeoPackage), the per-group table (CSV)
and the HTML report. Its time, less qgis_process's start-up (``help spacenet:scoref1`` timed in the same run: QGIS,
its providers and the plugin loaded), is compared with ``bench_f1.baseline_counts`` on the same polygons in memory:
one STRtree per tile and a shapely intersection/union per candidate, no reading and no writing. Target: the whole
run at least 2x faster than that loop. Both must give identical TP/FP/FN.

For reference it also times the feature-by-feature path (``SPACENET_BULK_IO=0``: every feature read through
QgsFeatureSource and written through a QGIS sink), as the plugin ran before issue 20. ``--quick`` runs 4,000 a
side, a smoke run: there qgis_process's start-up outweighs the work, and the target is not checked.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import paths  # noqa: F401 - puts the plugin on sys.path

import numpy as np
import shapely
from bench_f1 import SEED, THRESHOLD, baseline_counts, make_scene
from osgeo import ogr, osr
from timing import best_time

QGIS_PROCESS = paths.REPO / "scripts" / "qgis-process"
TARGET = 2.0
EPSG = 32616


def write_footprints(path: Path, polygons, tiles) -> None:
    """``polygons`` with their ``tile`` to a GeoPackage layer, in one transaction."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer(path.stem, srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("tile", ogr.OFTString))
    definition = layer.GetLayerDefn()
    layer.StartTransaction()
    for wkb, tile in zip(shapely.to_wkb(polygons, output_dimension=2), tiles):
        feature = ogr.Feature(definition)
        feature.SetGeometryDirectly(ogr.CreateGeometryFromWkb(wkb))
        feature.SetFieldString(0, tile)
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    dataset = None


def qgis_process(*args, bulk=True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if not bulk:
        env["SPACENET_BULK_IO"] = "0"
    result = subprocess.run([str(QGIS_PROCESS), *args], capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"qgis_process {' '.join(args[:3])} failed:\n{result.stdout}\n{result.stderr}")
    return result


def score_run(folder: Path, truth: Path, proposals: Path, bulk: bool):
    """One scoref1 run with all three outputs: (its results, the scored layer's feature count)."""
    outputs = {"OUTPUT": folder / "scored.gpkg", "OUTPUT_TABLE": folder / "per_tile.csv",
               "OUTPUT_HTML": folder / "report.html"}
    for path in outputs.values():
        path.unlink(missing_ok=True)
    result = qgis_process("--json", "run", "spacenet:scoref1", f"--TRUTH={truth}", f"--PROPOSALS={proposals}",
                          "--GROUP_FIELD=tile", *(f"--{key}={path}" for key, path in outputs.items()), bulk=bulk)
    results = json.loads(result.stdout[result.stdout.index("{"):])["results"]
    dataset = ogr.Open(str(outputs["OUTPUT"]))
    return results, dataset.GetLayer(0).GetFeatureCount()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4,000 polygons a side instead of 40,000: a smoke run, the target is not checked")
    parser.add_argument("--repeats", type=int, default=5, help="start-ups and bulk runs, in turns (the median of "
                        "their differences counts); the feature-by-feature run, for reference, runs once")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    count = 4_000 if args.quick else 40_000

    scene = make_scene(count, np.random.default_rng(SEED))
    truth, truth_tiles, proposals, proposal_tiles = scene
    print(f"{count:,} truth vs {count:,} proposals in 100 tiles (GeoPackage, EPSG:{EPSG}), grouped by tile, "
          f"IoU >= {THRESHOLD}; outputs: scored layer (GeoPackage), table (CSV), report (HTML); "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench_f1_cli_") as name:
        folder = Path(name)
        truth_path, proposals_path = folder / "truth.gpkg", folder / "proposals.gpkg"
        write_footprints(truth_path, truth, truth_tiles)
        write_footprints(proposals_path, proposals, proposal_tiles)

        qgis_process("help", "spacenet:scoref1")  # the first start (profile, caches) is not the one timed
        # Each run is timed right after a start-up, and its work is the difference of the two: the median of those
        # differences counts. The plain loop runs before and after them (the faster counts). A busy spell on the
        # machine then weighs on both figures of a pair alike, and one quiet moment cannot make the run look free.
        baselines = [best_time(lambda: baseline_counts(*scene, THRESHOLD), 1)]
        startups, works = [], []
        for _ in range(args.repeats):
            startups.append(best_time(lambda: qgis_process("help", "spacenet:scoref1"), 1)[0])
            run_s, (bulk, bulk_count) = best_time(lambda: score_run(folder, truth_path, proposals_path, True), 1)
            works.append(run_s - startups[-1])
        startup_s = statistics.median(startups)
        per_feature_s, (per_feature, per_feature_count) = best_time(
            lambda: score_run(folder, truth_path, proposals_path, False), 1)
        per_feature_work = per_feature_s - best_time(lambda: qgis_process("help", "spacenet:scoref1"), 1)[0]
    baselines.append(best_time(lambda: baseline_counts(*scene, THRESHOLD), 1))
    baseline_s, expected = min(baselines, key=lambda timed: timed[0])
    bulk_work = statistics.median(works)

    def line(label, work, results, features):
        print(f"{label}: {work:.2f} s start-up subtracted; TP {results['TP']:,} FP {results['FP']:,} "
              f"FN {results['FN']:,}, {features:,} scored features; {baseline_s / work:.2f}x the plain loop")
        return baseline_s / work

    print(f"qgis_process start-up (help spacenet:scoref1): {startup_s:.2f} s (median of {args.repeats})")
    print(f"plain loop (per-proposal STRtree query + shapely intersection/union, matching only; best of 2, before "
          f"and after the runs): {baseline_s:.2f} s; TP {expected.tp:,} FP {expected.fp:,} FN {expected.fn:,}")
    ratio = line(f"scoref1, bulk GeoPackage I/O (median of {args.repeats}; each "
                 f"{', '.join(f'{work:.2f}' for work in works)} s)", bulk_work, bulk, bulk_count)
    line("scoref1, feature by feature, SPACENET_BULK_IO=0 (one run)", per_feature_work, per_feature,
         per_feature_count)
    print(f"end-to-end ratio {ratio:.2f}x (target >= {TARGET:g}x)")

    failed = False
    for label, results in (("bulk", bulk), ("feature by feature", per_feature)):
        if (results["TP"], results["FP"], results["FN"]) != (expected.tp, expected.fp, expected.fn):
            print(f"MISMATCH: scoref1 ({label}) and the plain loop disagree")
            failed = True
    if bulk_count != per_feature_count or bulk_count != expected.tp + expected.fp + expected.fn:
        print(f"MISMATCH: scored layers of {bulk_count} and {per_feature_count} features, "
              f"{expected.tp + expected.fp + expected.fn} expected")
        failed = True
    if ratio < TARGET and not args.quick:  # 4,000 a side is a smoke run: start-up noise outweighs the work
        print(f"BELOW TARGET: {ratio:.2f}x < {TARGET:g}x")
        failed = True
    if not failed:
        print("identical TP/FP/FN")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
