#!/usr/bin/env python3
"""`make demo`: the plugin's main job, offline, through the real qgis_process and a scratch profile.

Until the extraction algorithms land, the main job that exists is scoring: the shipped sample footprints are
scored with spacenet:scoref1, as a layer pair and as SpaceNet challenge CSVs. The Makefile sets
QGIS_CUSTOM_CONFIG_PATH (the scratch profile), QGIS_PLUGINPATH and PYTHONPATH.
"""

import json
import subprocess
import sys
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


def score(title, name, *parameters) -> None:
    print(f"\n== {title} ==")
    outputs = [f"--OUTPUT={OUTPUT / f'{name}.gpkg'}", f"--OUTPUT_TABLE={OUTPUT / f'{name}_per_group.csv'}",
               f"--OUTPUT_HTML={OUTPUT / f'{name}.html'}"]
    run = qgis_process("--json", "run", "spacenet:scoref1", *parameters, *outputs)
    if run.returncode != 0:
        sys.exit(f"spacenet:scoref1 failed:\n{run.stdout}\n{run.stderr}")
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]
    print(f"TP {results['TP']}  FP {results['FP']}  FN {results['FN']}  precision {results['PRECISION']:.4f}  "
          f"recall {results['RECALL']:.4f}  F1 {results['F1']:.4f}")
    print((OUTPUT / f"{name}_per_group.csv").read_text().strip())
    print(f"scored layer {results['OUTPUT']}\nreport       {results['OUTPUT_HTML']}")


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    qgis_process("plugins", "enable", PLUGIN)  # answers 1 when already enabled in this profile
    print("== The SpaceNet provider, as qgis_process sees it ==")
    show_provider()
    score("Footprint layers (GeoJSON, EPSG:32616), SpaceNet evaluator rules", "layers",
          f"--TRUTH={SAMPLES / 'gt.geojson'}", f"--PROPOSALS={SAMPLES / 'pred.geojson'}")
    score("SpaceNet 2 challenge CSVs, solaris rules (IoU > 0.5, 20 px² minimum area)", "sn2_csv",
          f"--TRUTH={SAMPLES / 'SN2_sample_truth.csv'}", f"--PROPOSALS={SAMPLES / 'SN2_sample_preds.csv'}",
          "--MATCHING=1", "--MIN_AREA_TRUTH=20", "--MIN_AREA_PROPOSALS=20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
