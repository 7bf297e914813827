#!/usr/bin/env python3
"""Building extraction: throughput, the engine's overhead over the model alone, and peak memory.

1. Throughput and overhead, with the shipped buildings model on real imagery at 0.3 m (the SpaceNet 3
   Vegas RGB tile repeated into a UTM GeoTIFF): the whole run (read, stretch, model, stitch, footprints)
   against the bare ``session.run`` calls on the very same tile batches, timed in this process.
   Target: the engine adds at most 30 % to the model's own time.
2. Peak memory of a whole run over a 20,000 x 20,000 px raster at 0.3 m (the Vegas RGB tile repeated),
   in a child process, against the memory one float32 band of that raster would take. By default the
   model is the engine tests' brightness model carrying the shipped model's tile size, overlap and
   resolution (every engine buffer at its real size, minutes instead of a quarter hour);
   ``--shipped-model`` runs the shipped model itself. Target: peak RSS < 2 GB.

3. The building models side by side: the whole extraction with each shipped building model on the same raster,
   in the same run, as km2/s and as a ratio to `buildings_unet_small` (the default the pretrained model is held
   against). Target: at least 0.8x.

``--quick`` shrinks the rasters. Where onnxruntime reaches a GPU, part 1 runs there too and reports
the share of the time the GPU is busy (model time / whole run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paths import PLUGIN_PATH, REPO

import numpy as np
import rasterio
from rasterio.transform import from_origin

from spacenet_toolkit.core.extract import extract, raster, runtime, tile_inference, tiling  # found through paths

FIXTURES = REPO.parent / "shared" / "fixtures" / "spacenet"
VEGAS = FIXTURES / "sn3_vegas_rgb_roads" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
MODEL = REPO / "models" / "buildings_unet_small.onnx"
MEMORY_LIMIT_MB = 2048
BASELINE_MODEL = "buildings_unet_small"
MODEL_SPEED_LIMIT = 0.8
OVERHEAD_LIMIT = 0.30


def repeated_raster(source: Path, destination: Path, size: int, pixel_m: float, rows: slice = slice(None)):
    """A tiled GeoTIFF of ``size`` x ``size`` px made by repeating a real tile, written in strips."""
    with rasterio.open(source) as src:
        data = src.read(indexes=[1, 2, 3] if src.count >= 3 else [1])[:, rows]
    bands, h, w = data.shape
    profile = {"driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": data.dtype.name,
               "crs": "EPSG:32611", "transform": from_origin(600000, 4000000, pixel_m, pixel_m), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    reps = -(-size // w)
    with rasterio.open(destination, "w", **profile) as out:
        for top in range(0, size, h):
            strip = np.tile(data, (1, 1, reps))[:, : min(h, size - top), :size]
            out.write(strip, window=rasterio.windows.Window(0, top, size, strip.shape[1]))
    return destination


def model_only_seconds(request) -> tuple:
    """Time of the bare session.run calls over the run's own tile batches (inputs prepared beforehand)."""
    predictor = runtime.load(request.model_path, request.device)
    card = predictor.card
    info = raster.describe(request.raster_path)
    bands = raster.check_bands(raster.default_bands(info, card.bands), info, card.bands)
    grid = raster.model_grid(info, None, card.gsd_m)
    stretch = raster.measure_stretch(info, bands, grid, card.normalisation)
    size, overlap = extract._tile_plan(card, grid, request.tile_size)
    plan = tiling.tiles(grid.height, grid.width, size, overlap, align=card.size_multiple)
    batch_size = extract.batch_size_for(predictor, size, request.batch_size)
    batches = []
    with raster.open_on_grid(info, grid) as reader:
        for first in range(0, len(plan), batch_size):
            inputs = []
            for tile in plan[first : first + batch_size]:
                values, valid = tile_inference.read_tile(reader, bands, tile, grid)
                inputs.append(stretch.apply(values) * valid)
            batches.append(np.stack(inputs))
    session, feeds = predictor.session, card.input_name
    session.run(None, {feeds: batches[0]})  # warm-up, as the engine's first batch is not timed apart
    started = time.perf_counter()
    for batch in batches:
        session.run([card.output_name], {feeds: batch})
    return time.perf_counter() - started, len(plan), grid


def throughput(args, work: Path, device: str) -> bool:
    size = 2600 if args.quick else 5200
    image = repeated_raster(VEGAS, work / "vegas_0.3m.tif", size, 0.3, rows=slice(0, 1200))  # no caption strip
    request = extract.ExtractRequest(str(image), str(MODEL), device=device, batch_size=4, work_dir=str(work))
    predictor = runtime.load(request.model_path, device)
    extract.extract_buildings(extract.ExtractRequest(str(VEGAS), str(MODEL), device=device))  # warm the cache
    model_s, tiles, grid = model_only_seconds(request)
    started = time.perf_counter()
    result = extract.extract_buildings(request)
    whole_s = time.perf_counter() - started
    km2 = grid.width * grid.height * grid.pixel_area_m2 / 1e6
    overhead = whole_s / model_s - 1
    print(f"[{predictor.device_label}] {size} x {size} px at 0.3 m = {km2:.2f} km2, {tiles} tiles of "
          f"{predictor.card.tile_size} px, {len(result.footprints)} buildings")
    print(f"  model alone (session.run)  {model_s:8.2f} s   {km2 / model_s:.4f} km2/s   "
          f"{1000 * model_s / tiles:.0f} ms/tile")
    print(f"  whole extraction           {whole_s:8.2f} s   {km2 / whole_s:.4f} km2/s   "
          f"ratio {whole_s / model_s:.2f}x (engine adds {100 * overhead:.0f} %, target <= "
          f"{100 * OVERHEAD_LIMIT:.0f} %)")
    if predictor.on_gpu:
        print(f"  GPU busy {100 * model_s / whole_s:.0f} % of the run")
    return overhead <= OVERHEAD_LIMIT


# The peak is VmHWM, this process image's own high-water mark: ru_maxrss would carry over the parent's
# peak through the spawn (Linux keeps it across exec), and the parent may have run part 1 first.
CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
from spacenet_toolkit.core.extract import extract
started = time.perf_counter()
result = extract.extract_buildings(extract.ExtractRequest({image!r}, {model!r}, work_dir={work!r}, device="cpu"))
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"peak_mb": hwm_kb / 1024,
                  "seconds": time.perf_counter() - started, "buildings": len(result.footprints),
                  "tiles": result.tiles_run}}))
"""


def memory(args, work: Path) -> bool:
    import onnx_models

    size = 6000 if args.quick else 20000
    image = repeated_raster(VEGAS, work / "vegas_big.tif", size, 0.3, rows=slice(0, 1200))
    if args.shipped_model:
        model, label = MODEL, "the shipped model"
    else:
        # the shipped model's tiles, overlap and resolution, so every engine buffer has its real size
        shipped = runtime.load(MODEL, "cpu").card
        geometry = {"tile_size": shipped.tile_size, "overlap": shipped.overlap, "gsd_m": shipped.gsd_m}
        model = onnx_models.brightness_model(work / "brightness.onnx", onnx_models.card(input=geometry))
        label = "the brightness test model with the shipped model's tiling"
    code = CHILD.format(paths=[str(PLUGIN_PATH)], image=str(image), model=str(model), work=str(work))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if child.returncode:
        print(child.stderr[-2000:])
        return False
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    naive_mb = size * size * 4 / 2**20
    print(f"{size} x {size} px RGB raster ({size * size * 0.09 / 1e6:.0f} km2 at 0.3 m), {label}: peak RSS "
          f"{figures['peak_mb']:.0f} MB (target < {MEMORY_LIMIT_MB} MB); one float32 band of the raster alone "
          f"would be {naive_mb:.0f} MB (ratio {figures['peak_mb'] / naive_mb:.2f}x); {figures['tiles']} tiles, "
          f"{figures['buildings']} buildings in {figures['seconds']:.0f} s")
    return figures["peak_mb"] < MEMORY_LIMIT_MB


def models_side_by_side(args, work: Path) -> bool:
    size = 2048 if args.quick else 4096
    image = repeated_raster(VEGAS, work / "vegas_models.tif", size, 0.3, rows=slice(0, 1200))
    km2 = size * size * 0.09 / 1e6
    speeds = {}
    for model in sorted(REPO.glob("models/buildings_*.onnx")):
        if model.name.endswith(".fp16.onnx"):
            continue
        request = extract.ExtractRequest(str(image), str(model), device="cpu", batch_size=4, work_dir=str(work))
        extract.extract_buildings(extract.ExtractRequest(str(VEGAS), str(model), device="cpu"))  # warm up
        started = time.perf_counter()
        result = extract.extract_buildings(request)
        speeds[model.stem] = km2 / (time.perf_counter() - started)
        print(f"  {model.stem:28s} {speeds[model.stem]:.4f} km2/s   {len(result.footprints)} buildings")
    base = speeds.get(BASELINE_MODEL)
    ok = True
    for name, speed in speeds.items():
        if base and name != BASELINE_MODEL:
            print(f"  {name}: {speed / base:.2f}x {BASELINE_MODEL}'s km2/s (target >= {MODEL_SPEED_LIMIT})")
            ok &= speed / base >= MODEL_SPEED_LIMIT
    return ok


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller rasters")
    parser.add_argument("--part", choices=("throughput", "memory", "models", "all"), default="all")
    parser.add_argument("--shipped-model", action="store_true",
                        help="measure memory with the shipped model itself (about 12 minutes on 2 CPU cores)")
    args = parser.parse_args(argv)
    if not MODEL.is_file():
        print(f"{MODEL} is missing: the buildings model ships with the plugin.")
        return 1
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        work = Path(folder)
        if args.part in ("throughput", "all"):
            ok &= throughput(args, work, "cpu")
            if any(p in runtime.GPU_PROVIDERS for p in _gpu_providers()):
                ok &= throughput(args, work, "gpu")
        if args.part in ("memory", "all"):
            ok &= memory(args, work)
        if args.part in ("models", "all"):
            print(f"building models side by side, {'2048' if args.quick else '4096'} px at 0.3 m, 2 CPU threads:")
            ok &= models_side_by_side(args, work)
    return 0 if ok else 1


def _gpu_providers():
    try:
        return runtime.load(MODEL, "auto").session.get_providers()
    except runtime.RuntimeUnavailableError:
        return []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
