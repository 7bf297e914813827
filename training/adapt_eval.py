"""Issue 22's measure of model adaptation: adapt on one half of an area, score the other half, base against adapted.

- Kampala (area 2, never used to train the base model): the z21 chips split at the median longitude of their
  centres; the mosaic (`gdalbuildvrt` of every z21 chip) is adapted on the west chips with their OSM footprints
  (`spacenet:adaptmodel`'s engine, `core.adapt.adapt`), then the east half is scored as issue 17 measures
  Kampala (`engine_eval.kampala_z21_qgis_process` with `scored_chips`: `spacenet:extractbuildings` through
  qgis_process with every default, truth and footprints kept when their centroid is on an east chip).
- The SpaceNet 4 Atlanta tile (sample_data): adapted on its west half, scored on its east half (centroid rule);
  43 buildings: a small area, its figures move by a building or two.

    make eval-adapt [MINUTES=6] [BASE=buildings_effnet_lite0]

Prints one JSON line per area; the figures in the README come from it. Runs in the plugin's venv.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import shapely

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".build" / "plugins"))  # `make setup` links the checkout there as spacenet_toolkit

from spacenet_toolkit.core.adapt import adapt  # noqa: E402
from spacenet_toolkit.core.extract.extract import ExtractRequest, extract_buildings  # noqa: E402
from spacenet_toolkit.core.score import f1  # noqa: E402
from training import engine_eval  # noqa: E402

BASE = "buildings_effnet_lite0"  # spacenet:adaptmodel's default base where it is installed, as it is in models/
MINUTES = 6.0  # and its default time budget (tests/qgis/test_adapt_default_base.py ties both to the algorithm)


def kampala(minutes: float, python: str, work: Path, base: str = BASE) -> dict:
    chips = engine_eval.kampala_z21_chips()
    boxes, _ = engine_eval.chip_footprints(chips)
    centres = np.array([b.centroid.x for b in boxes])
    median = float(np.median(centres))
    west = [b for b, x in zip(boxes, centres) if x < median]
    east = [c for c, x in zip(chips, centres) if x >= median]
    vrt = work / "kampala_z21.vrt"
    subprocess.run(["gdalbuildvrt", "-q", "-overwrite", str(vrt), *chips], check=True)
    labels = Path(engine_eval.DATA_ROOT) / "ramp_hotosm" / "data" / "2" / "labels.geojson"
    features = json.loads(labels.read_text())["features"]
    truth = [shapely.make_valid(shapely.geometry.shape(f["geometry"])) for f in features]
    adapted, seconds = _adapt(vrt, truth, west, "kampala_west", minutes, python, work, base)
    base_east = engine_eval.kampala_z21_qgis_process(base, work / "base", scored_chips=east)
    adapted_east = engine_eval.kampala_z21_qgis_process(str(adapted.path), work / "adapted", scored_chips=east)
    return dict(area="kampala z21, adapted on the west half, scored on the east half", split_longitude=median,
                west_chips=len(west), east_chips=len(east), adapt_seconds=round(seconds, 1),
                held_out_in_west=dict(base=adapted.base_score.f1, adapted=adapted.adapted_score.f1),
                east_base=_counts(base_east), east_adapted=_counts(adapted_east),
                gain=round(adapted_east["f1"] - base_east["f1"], 4), card=adapted.card["adaptation"])


def atlanta(minutes: float, python: str, work: Path, base: str = BASE) -> dict:
    tif = REPO / "sample_data" / "sn4_atlanta_pan.tif"
    features = json.loads((REPO / "sample_data" / "sn4_atlanta_buildings.geojson").read_text())["features"]
    truth = [shapely.make_valid(shapely.geometry.shape(f["geometry"])) for f in features]  # EPSG:32616 as the tif
    with rasterio.open(tif) as src:
        left, bottom, right, top = src.bounds
    middle = (left + right) / 2
    adapted, seconds = _adapt(tif, truth, [shapely.box(left, bottom, middle, top)], "atlanta_west", minutes, python,
                              work, base)
    east = shapely.box(middle, bottom, right, top)
    scores = {}
    for name, model in (("base", str(REPO / "models" / f"{base}.onnx")), ("adapted", str(adapted.path))):
        found = [f.geometry for f in extract_buildings(ExtractRequest(raster_path=str(tif), model_path=model,
                                                                      scheduler="in-process")).footprints]
        kept = [g for g in found if east.contains(g.centroid)]
        labelled = [g for g in truth if east.contains(g.centroid)]
        total = f1.score(f1.PolygonSet(np.array(labelled, dtype=object)), f1.PolygonSet(np.array(kept, dtype=object)))
        scores[name] = _counts(dict(f1=round(total.total.f1, 4), precision=round(total.total.precision, 4),
                                    recall=round(total.total.recall, 4), tp=total.total.tp, fp=total.total.fp,
                                    fn=total.total.fn))
    return dict(area="SpaceNet 4 Atlanta tile, adapted on the west half, scored on the east half",
                adapt_seconds=round(seconds, 1), east_base=scores["base"], east_adapted=scores["adapted"],
                gain=round(scores["adapted"]["f1"] - scores["base"]["f1"], 4), card=adapted.card["adaptation"])


def _adapt(raster, truth, area, name, minutes, python, work, base):
    started = time.perf_counter()
    request = adapt.AdaptRequest(raster_path=str(raster), footprints=truth, area=area,
                                 base_model=str(REPO / "models" / f"{base}.onnx"), name=name,
                                 models_dir=str(work / "models"), minutes=minutes, device="auto", python=python,
                                 raster_label=Path(raster).name, area_label="the west half")
    result = adapt.adapt(request)
    return result, time.perf_counter() - started


def _counts(result: dict) -> dict:
    return {k: result[k] for k in ("f1", "precision", "recall", "tp", "fp", "fn")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=MINUTES, help="the fine-tuning's time budget per area")
    ap.add_argument("--python", default=str(REPO / "training" / ".venv" / "bin" / "python"))
    ap.add_argument("--area", choices=("kampala", "atlanta"), action="append")
    ap.add_argument("--base", default=BASE, help="the shipped model to adapt (a name in models/)")
    args = ap.parse_args(argv)
    for area in args.area or ("kampala", "atlanta"):
        with tempfile.TemporaryDirectory(prefix=f"adapt-eval-{area}-") as folder:
            work = Path(folder)
            for sub in ("base", "adapted"):
                (work / sub).mkdir()
            result = (kampala if area == "kampala" else atlanta)(args.minutes, args.python, work, args.base)
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
