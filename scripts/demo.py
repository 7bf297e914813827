#!/usr/bin/env python3
"""`make demo`: the plugin's main job, offline, through the real qgis_process and a scratch profile.

The main job: building footprints are extracted from a real SpaceNet 4 Atlanta tile with the shipped model
(spacenet:extractbuildings) and scored against the tile's labels (spacenet:scoref1); road centerlines are
extracted from the held-out half of a SpaceNet 3 Vegas tile with the shipped roads model (spacenet:extractroads)
and scored with APLS (spacenet:scoreapls). Then the F1 scorer alone on the sample footprints and challenge CSVs.
The Makefile sets QGIS_CUSTOM_CONFIG_PATH (the scratch profile), QGIS_PLUGINPATH and PYTHONPATH.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # /usr/bin/qgis_process is broken on Debian 12
PLUGIN = "spacenet_toolkit"
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
OUTPUT = ROOT / "output" / "demo"


def qgis_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True)


def show_provider() -> None:
    listing = qgis_process("--json", "list")
    provider = json.loads(listing.stdout)["providers"].get("spacenet") if listing.returncode == 0 else None
    if provider is None:
        sys.exit(f"The spacenet provider did not load:\n{listing.stderr}")
    print(f"{provider['long_name']} {provider['version']}: {len(provider['algorithms'])} algorithm(s)")
    for algorithm_id, algorithm in sorted(provider["algorithms"].items()):
        print(f"  {algorithm_id:28} {algorithm['name']}")


def run_json(algorithm, *parameters) -> dict:
    run = qgis_process("--json", "run", algorithm, *parameters)
    if run.returncode != 0:
        sys.exit(f"{algorithm} failed:\n{run.stdout}\n{run.stderr}")
    return json.loads(run.stdout[run.stdout.index("{"):])["results"]


def extract_and_score() -> None:
    print("\n== Building footprints from a SpaceNet 4 Atlanta tile (panchromatic, 0.5 m), shipped model ==")
    buildings = OUTPUT / "atlanta_buildings.gpkg"
    started = time.perf_counter()
    results = run_json("spacenet:extractbuildings", f"--INPUT={SAMPLES / 'sn4_atlanta_pan.tif'}",
                       "--MODEL=buildings_unet_small", "--REGULARIZE=true", f"--OUTPUT={buildings}",
                       f"--OUTPUT_PROBABILITY={OUTPUT / 'atlanta_probability.tif'}")
    print(f"{results['BUILDING_COUNT']} buildings by {results['MODEL_NAME']} on {results['DEVICE_USED']} "
          f"in {time.perf_counter() - started:.1f} s (qgis_process start-up included)")
    print(f"footprints  {results['OUTPUT']}\nprobability {results['OUTPUT_PROBABILITY']}")
    score("The extracted footprints against the tile's 43 labelled buildings (SpaceNet F1, IoU >= 0.5)",
          "atlanta_scored", f"--TRUTH={SAMPLES / 'sn4_atlanta_buildings.geojson'}", f"--PROPOSALS={buildings}")
    print("(what the shipped model can and cannot do, measured: models/README.md)")


def extract_and_score_roads() -> None:
    print("\n== Road network from the held-out half of a SpaceNet 3 Vegas tile (RGB, 0.3 m), shipped model ==")
    roads = OUTPUT / "vegas_roads.gpkg"
    started = time.perf_counter()
    results = run_json("spacenet:extractroads", f"--INPUT={SAMPLES / 'sn3_vegas_rgb_bottom_half.tif'}",
                       "--MODEL=roads_effnet_lite0", f"--OUTPUT={roads}",
                       f"--OUTPUT_NODES={OUTPUT / 'vegas_nodes.gpkg'}")
    print(f"{results['ROAD_COUNT']} road segments, {results['ROAD_LENGTH_KM']:.2f} km, by {results['MODEL_NAME']} "
          f"on {results['DEVICE_USED']} in {time.perf_counter() - started:.1f} s (qgis_process start-up included)")
    print(f"centerlines {results['OUTPUT']}\nnodes       {results['OUTPUT_NODES']}")
    print("\n== The centerlines against the half tile's labelled roads (APLS, 4 m snapping, 50 m control points) ==")
    scored = run_json("spacenet:scoreapls", f"--TRUTH={SAMPLES / 'sn3_vegas_rgb_bottom_half_roads.geojson'}",
                      f"--PROPOSALS={roads}", f"--OUTPUT_HTML={OUTPUT / 'vegas_apls.html'}")
    print(f"APLS {scored['APLS']:.4f} (truth to proposal {scored['APLS_GT_TO_PROP']:.4f}, proposal to truth "
          f"{scored['APLS_PROP_TO_GT']:.4f})\nreport      {scored['OUTPUT_HTML']}")
    print("(a baseline trained on one and a half tiles: models/README.md)")


def score(title, name, *parameters) -> None:
    print(f"\n== {title} ==")
    outputs = [f"--OUTPUT={OUTPUT / f'{name}.gpkg'}", f"--OUTPUT_TABLE={OUTPUT / f'{name}_per_group.csv'}",
               f"--OUTPUT_HTML={OUTPUT / f'{name}.html'}"]
    results = run_json("spacenet:scoref1", *parameters, *outputs)
    print(f"TP {results['TP']}  FP {results['FP']}  FN {results['FN']}  precision {results['PRECISION']:.4f}  "
          f"recall {results['RECALL']:.4f}  F1 {results['F1']:.4f}")
    print((OUTPUT / f"{name}_per_group.csv").read_text().strip())
    print(f"scored layer {results['OUTPUT']}\nreport       {results['OUTPUT_HTML']}")


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    qgis_process("plugins", "enable", PLUGIN)  # answers 1 when already enabled in this profile
    print("== The SpaceNet provider, as qgis_process sees it ==")
    show_provider()
    extract_and_score()
    extract_and_score_roads()
    score("Footprint layers (GeoJSON, EPSG:32616), SpaceNet evaluator rules", "layers",
          f"--TRUTH={SAMPLES / 'gt.geojson'}", f"--PROPOSALS={SAMPLES / 'pred.geojson'}")
    score("SpaceNet 2 challenge CSVs, solaris rules (IoU > 0.5, 20 px² minimum area)", "sn2_csv",
          f"--TRUTH={SAMPLES / 'SN2_sample_truth.csv'}", f"--PROPOSALS={SAMPLES / 'SN2_sample_preds.csv'}",
          "--MATCHING=1", "--MIN_AREA_TRUTH=20", "--MIN_AREA_PROPOSALS=20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
