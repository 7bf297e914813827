"""Score a shipped building model the way a user gets it: the plugin's engine on held-out rasters, its own F1.

For each evaluation raster the extraction engine (`core.extract.extract`, the code behind `spacenet:extractbuildings`)
runs with the model card's defaults; its footprints are scored with `core.score.f1` (SpaceNet rules: one-to-one matches
at IoU >= 0.5) against the truth, both in a metric CRS; pixel IoU compares the engine's probability raster,
thresholded, with the truth rasterised on the same grid.

- Kampala (ramp_hotosm area 2, never used in training or tuning): its GeoTIFF chips (`chips/` + `val-chips/`)
  mosaicked per zoom level (z19, z20, z21: the same ground at three sharpnesses), scored against
  `data/2/labels.geojson` clipped to the mosaic. Counts are summed over the three mosaics.
- Kampala z21 as a user measures it (issue 17, `kampala_z21_qgis_process`): the z21 chips in a `gdalbuildvrt`
  VRT, `spacenet:extractbuildings` with its defaults through the real `qgis_process`, truth and footprints kept
  when their centroid lies on a chip (see `kampala_z21_qgis_process` for how it differs from the mosaics).
- SpaceNet 4 Atlanta panchromatic fixture (0.5 m, 43 buildings): the tile as it is.
- Validation areas (`training.evaluate`, the scores the defaults were tuned on): object F1 and pixel IoU.
- Roads: the held-out bottom half of the SN3 Vegas RGB tile (`training.roads_baseline`), the engine's centerlines
  scored with the plugin's APLS (`core.score.apls`, 4 m snapping, 50 m control points) against the clipped labels.
- CPU milliseconds per 512 x 512 tile through the engine's onnxruntime session, 1 and 2 threads.

Runs in the plugin's venv (no torch), after `make setup`:
  .venv/bin/python -m training.engine_eval [--buildings-model M] [--only buildings|roads]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.merge import merge
from rasterio.warp import transform_geom

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".build" / "plugins"))  # `make setup` links the checkout there as spacenet_toolkit

from spacenet_toolkit.core.extract import runtime  # noqa: E402
from spacenet_toolkit.core.extract.extract import ExtractRequest, RoadRequest, extract_buildings, extract_roads  # noqa: E402
from spacenet_toolkit.core.score import apls, f1  # noqa: E402
from training.data import DATA_ROOT, parse_chip  # noqa: E402

FIXTURES = Path(os.environ.get("SPACENET_FIXTURES", REPO.parent / "shared" / "fixtures"))
KAMPALA_UTM = "EPSG:32636"
QGIS_PROCESS = os.environ.get("QGIS_PROCESS") or "/usr/bin/qgis_process.bin"  # the .bin: Debian 12's wrapper is broken
PLUGIN_PATH = REPO / ".build" / "plugins"


def kampala_rasters(out_dir: Path) -> list[tuple[str, Path, list]]:
    """(name, mosaic path, truth polygons in EPSG:4326 clipped to it) per zoom level of Kampala's chips."""
    root = Path(DATA_ROOT) / "ramp_hotosm"
    by_zoom = defaultdict(list)
    for path in sorted(glob.glob(f"{root}/chips/*.tif") + glob.glob(f"{root}/val-chips/*.tif")):
        by_zoom[parse_chip(path)[2]].append(path)
    with open(root / "data" / "2" / "labels.geojson") as f:
        # OSM outlines can self-intersect; repaired as core.score.f1 would repair them
        features = json.load(f)["features"]
        labels = [shapely.make_valid(shapely.geometry.shape(feature["geometry"])) for feature in features]
    rasters = []
    for zoom, paths in sorted(by_zoom.items()):
        target = out_dir / f"kampala_z{zoom}.tif"
        footprint = _mosaic(paths, target)
        clipped = [g.intersection(footprint) for g in labels if g.intersects(footprint)]
        rasters.append((f"kampala_z{zoom}", target, [g for g in clipped if g.area > 0]))
    return rasters


def _mosaic(paths: list, target: Path):
    """Write the chips as one RGBA GeoTIFF (alpha = where a chip was); return the union of the chip footprints."""
    sources = [rasterio.open(p) for p in paths]
    try:
        image, transform = merge(sources, nodata=0)
        boxes = [shapely.box(*s.bounds) for s in sources]
        profile = dict(driver="GTiff", width=image.shape[2], height=image.shape[1], count=4, dtype="uint8",
                       crs=sources[0].crs, transform=transform, tiled=True, compress="deflate")
    finally:
        for s in sources:
            s.close()
    alpha = rasterize(boxes, out_shape=image.shape[1:], transform=transform, fill=0, default_value=255,
                      dtype="uint8")
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(image[:3], [1, 2, 3])
        dst.write(alpha, 4)
        dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                           rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    return shapely.union_all(boxes)


def kampala_z21_chips() -> list[str]:
    """Kampala's z21 GeoTIFF chips, training and validation folders together (issue 17's mosaic)."""
    root = Path(DATA_ROOT) / "ramp_hotosm"
    return sorted(glob.glob(f"{root}/chips/*-21.tif") + glob.glob(f"{root}/val-chips/*-21.tif"))


def chip_footprints(paths: list) -> tuple[list, CRS]:
    """Each chip's footprint (its bounds as a box) and their CRS, which must be shared."""
    boxes, crs = [], None
    for path in paths:
        with rasterio.open(path) as src:
            if crs is not None and src.crs != crs:
                raise ValueError(f"{path} is in {src.crs}, the chips before it in {crs}")
            crs = src.crs
            boxes.append(shapely.box(*src.bounds))
    return boxes, crs


def on_chips(geometries, chips) -> np.ndarray:
    """Per geometry: whether its centroid lies on one of the chips (boundary included), not merely inside their
    bounding box. Missing or empty geometries are never on a chip. Both in the same CRS."""
    geometries = np.asarray(list(geometries), dtype=object)
    keep = np.zeros(len(geometries), dtype=bool)
    present = np.array([g is not None and not g.is_empty for g in geometries], dtype=bool)
    if present.any() and len(chips):
        tree = shapely.STRtree(list(chips))
        centroids = shapely.centroid(geometries[present])
        hit = np.unique(tree.query(centroids, predicate="intersects")[0])
        keep[np.flatnonzero(present)[hit]] = True
    return keep


def qgis_process_env(profile: Path) -> dict:
    """The Makefile's PROCESS_ENV for `profile`: offscreen Qt, this checkout as a plugin, the venv's packages
    (qgis_process's embedded Python ignores the venv) and libqgis_core preloaded (ENVIRONMENT.md traps 3, 5, 9)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(PLUGIN_PATH),
               QGIS_CUSTOM_CONFIG_PATH=str(profile), XDG_RUNTIME_DIR=str(profile),
               PYTHONPATH=sysconfig.get_paths()["purelib"], GDAL_PAM_ENABLED="NO")
    ldconfig = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    libqgis_core = next((line.split("=>")[-1].strip() for line in ldconfig.splitlines()
                         if "libqgis_core.so." in line), None)
    if libqgis_core:
        env["LD_PRELOAD"] = libqgis_core
    return env


def run_extractbuildings(raster: Path, model: str, output: Path, work_dir: Path) -> dict:
    """`qgis_process run spacenet:extractbuildings` with its defaults (INPUT, MODEL and OUTPUT only) in a
    scratch profile where the plugin is enabled; its JSON results."""
    profile = work_dir / "qgis-profile"
    profile.mkdir(mode=0o700, exist_ok=True)
    env = qgis_process_env(profile)
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "spacenet_toolkit"], env=env,
                             capture_output=True, text=True)
    if enabled.returncode != 0 and "already enabled" not in enabled.stdout + enabled.stderr:
        raise RuntimeError(f"qgis_process could not enable the plugin:\n{enabled.stdout}\n{enabled.stderr}")
    model = str(Path(model).resolve()) if os.path.exists(model) else model  # a file, or a model's name
    run = subprocess.run([QGIS_PROCESS, "--json", "run", "spacenet:extractbuildings", f"--INPUT={raster}",
                          f"--MODEL={model}", f"--OUTPUT={output}"], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"spacenet:extractbuildings failed:\n{run.stdout}\n{run.stderr}")
    return json.loads(run.stdout[run.stdout.index("{"):])["results"]


def read_polygons(path: Path) -> tuple[list, CRS]:
    """The geometries of a vector file's first layer and its CRS (GDAL/OGR, as QGIS wrote it)."""
    from osgeo import ogr

    dataset = ogr.Open(str(path))
    layer = dataset.GetLayer(0)
    crs = CRS.from_wkt(layer.GetSpatialRef().ExportToWkt())
    geometries = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        geometries.append(None if geometry is None else shapely.from_wkb(bytes(geometry.ExportToIsoWkb())))
    return geometries, crs


def _reprojected(geometries, source: CRS, target: CRS) -> list:
    if source == target:
        return list(geometries)
    return [None if g is None else shapely.geometry.shape(transform_geom(source, target, shapely.geometry.mapping(g)))
            for g in geometries]


def kampala_z21_qgis_process(model: str, work_dir: Path, chips: list | None = None,
                             labels: Path | None = None, scored_chips: list | None = None) -> dict:
    """Kampala measured as a user would (issue 17): F1 of `spacenet:extractbuildings` through `qgis_process`.

    `gdalbuildvrt` of the z21 chips (`chips/*-21.tif` + `val-chips/*-21.tif`); `qgis_process run
    spacenet:extractbuildings` on that VRT with every parameter at its default but MODEL; truth
    (`data/2/labels.geojson`) and footprints each kept when their centroid lies on one of the chips; `core.score.f1`
    (one to one, IoU >= 0.5, no minimum area) in EPSG:32636.

    It differs from `kampala_z21` of the per-zoom mosaics (`kampala_rasters` + `score_raster`) in:
    - the raster: there the chips are merged into an RGBA GeoTIFF whose alpha marks the chips, so the engine reads
      the blank between chips as nodata (left out of the percentile stretch, filled from the nearest chip pixel
      before the model sees it, nothing detected within 0.3 m of it: `core.extract.extract.EDGE_M`); here the VRT
      built with gdalbuildvrt's defaults has no nodata value and no mask (GDAL reports every pixel valid), so
      that blank (85 % of the VRT's rectangle for the z21 chips) is black pixels the engine takes as image: they
      drag the percentile stretch down (with the 2-98 % of buildings_unet_small 0.4.1, red 21-254 on the chips
      becomes 0-229 over the VRT, so the chips reach the model brighter and clipped), the model sees black beside
      every chip edge that does not touch another chip, and no edge margin applies;
    - the truth: there every label intersecting a chip is clipped to the chips (pieces of any area > 0 counted,
      buildings cut by a chip edge count as their on-chip part); here whole labels are kept when their centroid is
      on a chip, and so are footprints (there every footprint counted, wherever it lay);
    - the run: there `core.extract.extract` in this process with 2 threads; here the plugin inside `qgis_process`, as a
      user runs it (defaults: DEVICE auto, every CPU core), and one zoom level only, not summed
      with z19 and z20. Neither applies a minimum area when scoring (the engine's own minimum area and minimum
      score, from the model card, apply to the footprints in both).
    """
    chips = kampala_z21_chips() if chips is None else [str(c) for c in chips]
    labels = Path(DATA_ROOT) / "ramp_hotosm" / "data" / "2" / "labels.geojson" if labels is None else labels
    if not chips:
        raise FileNotFoundError(f"no z21 chips under {Path(DATA_ROOT) / 'ramp_hotosm'}")
    started = time.perf_counter()
    vrt, output = work_dir / "kampala_z21.vrt", work_dir / "kampala_z21_qgis_process.gpkg"
    built = subprocess.run([shutil.which("gdalbuildvrt") or "gdalbuildvrt", "-q", "-overwrite", str(vrt), *chips],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(f"gdalbuildvrt failed:\n{built.stderr}")
    results = run_extractbuildings(vrt, model, output, work_dir)
    boxes, chip_crs = chip_footprints([str(c) for c in scored_chips] if scored_chips else chips)
    footprints, footprint_crs = read_polygons(output)
    with open(labels) as f:
        # OSM outlines can self-intersect; repaired as core.score.f1 would repair them
        features = json.load(f)["features"]
    truth = [shapely.make_valid(shapely.geometry.shape(feature["geometry"])) for feature in features]
    truth_crs = CRS.from_epsg(4326)  # GeoJSON
    truth = [g for g, keep in zip(truth, on_chips(_reprojected(truth, truth_crs, chip_crs), boxes)) if keep]
    footprints = [g for g, keep in zip(footprints, on_chips(_reprojected(footprints, footprint_crs, chip_crs), boxes))
                  if keep]
    metric = CRS.from_string(KAMPALA_UTM)
    result = f1.score(f1.PolygonSet(np.array(_reprojected(truth, truth_crs, metric), dtype=object)),
                      f1.PolygonSet(np.array(_reprojected(footprints, footprint_crs, metric), dtype=object)))
    total = result.total
    return dict(name="kampala_z21_qgis_process", f1=round(total.f1, 4), precision=round(total.precision, 4),
                recall=round(total.recall, 4), tp=total.tp, fp=total.fp, fn=total.fn,
                building_count=results["BUILDING_COUNT"], truth_on_chips=len(truth),
                footprints_on_chips=len(footprints), seconds=round(time.perf_counter() - started, 1))


def atlanta_raster() -> tuple[str, Path, list]:
    folder = FIXTURES / "spacenet" / "sn4_atlanta_pan"
    with open(folder / "geotiff_labels.geojson") as f:
        labels = [shapely.geometry.shape(feature["geometry"]) for feature in json.load(f)["features"]]
    return "atlanta_sn4_pan", folder / "sample_geotiff.tif", labels


def score_raster(model: str, raster: Path, truth: list, metric_crs: str | None, work_dir: Path) -> dict:
    """Run the engine with the card's defaults on the whole raster; object counts and pixel counts."""
    probability = work_dir / f"{raster.stem}_probability.tif"
    extraction = extract_buildings(ExtractRequest(raster_path=str(raster), model_path=model, cpu_threads=2,
                                                  probability_path=str(probability)))
    crs = CRS.from_wkt(extraction.crs_wkt)
    metric = CRS.from_string(metric_crs) if metric_crs else crs

    def to_metric(geometries):
        if metric == crs:
            return np.array(geometries, dtype=object)
        return np.array([shapely.geometry.shape(transform_geom(crs, metric, shapely.geometry.mapping(g)))
                         for g in geometries], dtype=object)

    proposals = [fp.geometry for fp in extraction.footprints]
    result = f1.score(f1.PolygonSet(to_metric(truth)), f1.PolygonSet(to_metric(proposals)))
    inter, union = _pixel_counts(probability, truth, extraction.settings["threshold"])
    return dict(tp=result.total.tp, fp=result.total.fp, fn=result.total.fn, pixel_intersection=inter,
                pixel_union=union, settings=extraction.settings, seconds=round(extraction.timings["total_s"], 1))


def _pixel_counts(probability: Path, truth: list, threshold: float) -> tuple[int, int]:
    """Intersection and union of (probability >= threshold) and the rasterised truth over valid pixels."""
    with rasterio.open(probability) as src:
        prob = src.read(1, masked=True)
        labels = rasterize(truth, out_shape=prob.shape, transform=src.transform, fill=0, dtype="uint8") > 0
    valid = ~np.ma.getmaskarray(prob)
    predicted = prob.filled(0) >= threshold
    return int((predicted & labels & valid).sum()), int(((predicted | labels) & valid).sum())


def summary(name: str, counts: list[dict]) -> dict:
    total = f1.Counts(*(sum(c[k] for c in counts) for k in ("tp", "fp", "fn")))
    inter, union = (sum(c[k] for c in counts) for k in ("pixel_intersection", "pixel_union"))
    return dict(name=name, f1=round(total.f1, 4), precision=round(total.precision, 4),
                recall=round(total.recall, 4), tp=total.tp, fp=total.fp, fn=total.fn,
                pixel_iou=round(inter / max(union, 1), 4))


def score_roads(model: str, work_dir: Path) -> dict:
    """The engine's road graph on the held-out half of the Vegas RGB tile, scored with APLS."""
    from training import roads_baseline

    image, labels = roads_baseline.split_rgb_tile(work_dir)["bottom"]
    extraction = extract_roads(RoadRequest(raster_path=str(image), model_path=model, cpu_threads=2))
    with open(labels) as f:
        truth = [shapely.geometry.shape(feature["geometry"]) for feature in json.load(f)["features"]]
    proposals = [edge.geometry for edge in extraction.network.edges]
    result = apls.score(truth, proposals, crs=extraction.crs_wkt)
    return dict(name="vegas_rgb_img0_bottom_half", apls=round(result.apls, 4), gt_to_prop=round(result.gt_to_prop, 4),
                prop_to_gt=round(result.prop_to_gt, 4), truth_km=round(result.length_truth_m / 1000, 3),
                proposal_km=round(result.length_proposal_m / 1000, 3), edges=len(proposals),
                settings=extraction.settings)


def validation_scores(model: str) -> dict:
    """Object F1 and pixel IoU on the validation areas at the card's defaults, as training.evaluate tunes them."""
    from training import data, evaluate

    if not os.path.exists(os.path.join(data.CACHE_DIR, "index.json")):
        data.main([])
    card = runtime.load(model, "cpu", 2).card
    run = evaluate.onnx_runner(model, threads=2)
    blocks = list(evaluate.validation_blocks())
    _, predictions = evaluate.score(run, blocks, card.threshold)
    tables = [evaluate.components(evaluate.instances_from(p[0], p[1], card.threshold, card.interior_threshold), inst,
                                  valid, p[0]) for p, valid, inst in predictions]
    object_f1 = evaluate.object_scores(tables, card.min_area_m2, card.min_score)["f1"]
    inter = union = 0
    for (prob, valid, _), block in zip(predictions, blocks):
        i, u = evaluate.pixel_counts(prob[0], block[3], valid, card.threshold)
        inter, union = inter + i, union + u
    return dict(validation_object_f1=round(object_f1, 4),
                validation_pixel_iou=round(inter / max(union, 1), 4))


def cpu_ms_per_tile(model: str, threads: int, size: int = 512, repeats: int = 10) -> float:
    """Median milliseconds of one 512 x 512 tile through the engine's own onnxruntime session on the CPU."""
    predictor = runtime.load(model, "cpu", threads)
    tile = np.random.default_rng(0).random((1, len(predictor.card.bands), size, size), dtype=np.float32)
    for _ in range(3):
        predictor.run(tile)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.run(tile)
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 1)


def buildings_report(model: str, work: Path) -> dict:
    rows, kampala = [], []
    for name, path, truth in kampala_rasters(work):
        counts = score_raster(model, path, truth, KAMPALA_UTM, work)
        kampala.append(counts)
        rows.append(summary(name, [counts]))
    rows.append(summary("kampala (three zooms summed)", kampala))
    user_run = kampala_z21_qgis_process(model, work)
    name, path, truth = atlanta_raster()
    rows.append(summary(name, [score_raster(model, path, truth, None, work)]))
    settings = kampala[0]["settings"]
    print(f"\n{model}: threshold {settings['threshold']}, min area {settings['min_area_m2']} m², "
          f"min score {settings['min_score']}, "
          f"tile {settings['tile_size']}, overlap {settings['overlap']}")
    print(f"{'raster':32s} {'F1':>6s} {'prec':>6s} {'recall':>6s} {'TP':>5s} {'FP':>5s} {'FN':>5s} {'pixIoU':>7s}")
    for r in rows:
        print(f"{r['name']:32s} {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['tp']:5d} {r['fp']:5d} "
              f"{r['fn']:5d} {r['pixel_iou']:7.3f}")
        if r["name"] == "kampala (three zooms summed)":
            u = user_run
            print(f"{u['name']:32s} {u['f1']:6.3f} {u['precision']:6.3f} {u['recall']:6.3f} {u['tp']:5d} "
                  f"{u['fp']:5d} {u['fn']:5d} {'-':>7s}  (VRT, qgis_process, centroid on a chip; {u['seconds']} s)")
    validation = validation_scores(model)
    print(f"validation areas (tuning): object F1 {validation['validation_object_f1']:.3f}, "
          f"pixel IoU {validation['validation_pixel_iou']:.3f}")
    return dict(rasters=rows, kampala_z21_qgis_process=user_run, **validation)


def roads_report(model: str, work: Path) -> dict:
    result = score_roads(model, work)
    print(f"\n{model}: threshold {result['settings']['threshold']}, tile {result['settings']['tile_size']}")
    print(f"{result['name']}: APLS {result['apls']:.3f} (truth -> proposal {result['gt_to_prop']:.3f}, "
          f"proposal -> truth {result['prop_to_gt']:.3f}); {result['proposal_km']} km proposed, "
          f"{result['truth_km']} km labelled, {result['edges']} edges")
    return result


def shipped(task: str) -> list[str]:
    """Every model of `task` in models/ (fp16 variants aside): make eval scores them side by side."""
    return sorted(p for p in glob.glob(str(REPO / "models" / f"{task}_*.onnx")) if not p.endswith(".fp16.onnx"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings-model", action="append", help="score this model (repeatable); default: every "
                                                                   "buildings_*.onnx in models/")
    parser.add_argument("--roads-model", action="append", help="likewise, default every roads_*.onnx in models/")
    parser.add_argument("--only", choices=("buildings", "roads"), help="score one task only")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--write-cards", action="store_true",
                        help="store the scores in the models' cards (ONNX metadata, fp32 and fp16 files)")
    args = parser.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory(prefix="spacenet-eval-") as tmp:
        for task, models, run in (("buildings", args.buildings_model or shipped("buildings"), buildings_report),
                                  ("roads", args.roads_model or shipped("roads"), roads_report)):
            if args.only not in (None, task):
                continue
            for model in models:
                result = report.setdefault(task, {})[Path(model).stem] = run(model, Path(tmp))
                result["cpu_ms_per_512_tile"] = {n: cpu_ms_per_tile(model, n) for n in (1, 2)}
                print("CPU ms per 512 x 512 tile: " + ", ".join(
                    f"{ms} ms with {n} thread{'s' * (n > 1)}" for n, ms in result["cpu_ms_per_512_tile"].items()))
                if args.write_cards:
                    write_card_scores(model, card_scores(task, result))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def card_scores(task: str, result: dict) -> dict:
    """The card's `scores`: what make eval measured, with the engine's defaults."""
    timing = {f"cpu_ms_per_512_tile_{n}_thread{'s' * (n > 1)}": ms for n, ms in result["cpu_ms_per_512_tile"].items()}
    if task == "roads":
        return {"heldout_vegas_rgb_bottom_half_apls": result["apls"], "heldout_apls_gt_to_prop": result["gt_to_prop"],
                "heldout_apls_prop_to_gt": result["prop_to_gt"], **timing}
    rows = {row["name"]: row for row in result["rasters"]}
    kampala, atlanta = rows["kampala (three zooms summed)"], rows["atlanta_sn4_pan"]
    return {"kampala_object_f1": kampala["f1"], "kampala_precision": kampala["precision"],
            "kampala_recall": kampala["recall"], "kampala_pixel_iou": kampala["pixel_iou"],
            "atlanta_sn4_pan_object_f1": atlanta["f1"], "atlanta_sn4_pan_pixel_iou": atlanta["pixel_iou"],
            "kampala_z21_qgis_process_object_f1": result["kampala_z21_qgis_process"]["f1"],
            "kampala_z21_qgis_process_precision": result["kampala_z21_qgis_process"]["precision"],
            "kampala_z21_qgis_process_recall": result["kampala_z21_qgis_process"]["recall"],
            "validation_object_f1": result["validation_object_f1"],
            "validation_pixel_iou": result["validation_pixel_iou"], **timing}


def write_card_scores(model: str, scores: dict) -> None:
    """Replace the scores in the card of the model and of its fp16 variant, each file written atomically."""
    import onnx

    for path in (model, model.replace(".onnx", ".fp16.onnx")):
        if not os.path.exists(path):
            continue
        proto = onnx.load(path)
        entry = next(p for p in proto.metadata_props if p.key == "spacenet_model_card")
        card = json.loads(entry.value)
        card["scores"] = scores
        entry.value = json.dumps(card)
        onnx.save(proto, path + ".part")
        os.replace(path + ".part", path)
        print(f"scores written into {path}")


if __name__ == "__main__":
    sys.exit(main())
