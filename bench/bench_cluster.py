#!/usr/bin/env python3
"""Extraction on a local Dask cluster against the same extraction in one process (issue 20).

1. Speed, side by side in one run: the shipped buildings model on a 5200 x 5200 px raster at 0.3 m (the SpaceNet 3
   Vegas RGB tile repeated), in this process and on a local cluster of one single-threaded worker process per core
   (started and warmed before it is timed; its start-up is printed apart). The outputs must be identical, footprint
   for footprint. Target: the cluster at least 1.15x the in-process km2/s.
2. Memory: the 20,000 x 20,000 px raster on a fresh local cluster, run from a child process; the peak resident
   memory of each worker process and of the client. As bench_extract.py's memory part, the model is the engine
   tests' brightness model carrying the shipped model's tile size, overlap and resolution (every buffer at its
   real size, minutes instead of a quarter hour). Target: each worker under 2 GB.

3. On a GPU machine: the shipped model over the 20,000 x 20,000 px raster (36 km² at 0.3 m), device auto, on the
   local cluster's GPU layout (a worker per GPU runs every model batch, one worker per core left vectorises the
   blocks) against the same run in one process. Target: at least 5 km²/s end to end (issue 20). Skipped where no
   GPU answers; ``--gpus N`` lays the cluster out for N GPUs anyway (a dry run: the batches then run on the CPU).
   The workers are processes of their own: where the CUDA and cuDNN libraries come only inside PyTorch's wheels (the
   lent machines), put those folders on LD_LIBRARY_PATH, as importing torch first does for bench/gpu_inference.py.

``--quick`` shrinks the rasters. Repeat: ``make bench`` (all) or ``.venv/bin/python bench/bench_cluster.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paths import PLUGIN_PATH, REPO

import shapely
from bench_extract import MEMORY_LIMIT_MB, MODEL, VEGAS, repeated_raster

from spacenet_toolkit.core import dependencies
from spacenet_toolkit.core.extract import cluster, extract, gpu, runtime  # found through paths

SPEED_TARGET = 1.15
GPU_TARGET_KM2_S = 5.0

CHILD = """
import json, sys, time
sys.path[:0] = {paths!r}
from spacenet_toolkit.core.extract import cluster, extract

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

if __name__ == "__main__":
    started = time.perf_counter()
    result = extract.extract_buildings(extract.ExtractRequest({image!r}, {model!r}, work_dir={work!r}, device="cpu",
                                                              scheduler="local"))
    workers = cluster.local_client().run(peak_mb)
    print(json.dumps({{"client_mb": peak_mb(), "workers_mb": workers, "seconds": time.perf_counter() - started,
                      "buildings": len(result.footprints), "tiles": result.tiles_run}}))
    cluster.close_local()
"""


def identical(a, b) -> bool:
    return len(a.footprints) == len(b.footprints) and all(
        shapely.equals_exact(x.geometry, y.geometry, 0) and x.score == y.score
        for x, y in zip(a.footprints, b.footprints))


def speed(args, work: Path) -> bool:
    size = 2600 if args.quick else 5200
    image = repeated_raster(VEGAS, work / "vegas_0.3m.tif", size, 0.3, rows=slice(0, 1200))  # no caption strip
    request = dict(raster_path=str(image), model_path=str(MODEL), device="cpu", work_dir=str(work))
    warm = dict(request, raster_path=str(VEGAS))
    extract.extract_buildings(extract.ExtractRequest(**warm, scheduler="in-process"))  # the session, cached
    started = time.perf_counter()
    extract.extract_buildings(extract.ExtractRequest(**warm, scheduler="local"))  # workers started and warm
    startup_s = time.perf_counter() - started
    timings = {}
    results = {}
    for name in ("in-process", "local"):
        started = time.perf_counter()
        results[name] = extract.extract_buildings(extract.ExtractRequest(**request, scheduler=name))
        timings[name] = time.perf_counter() - started
    km2 = size * size * 0.09 / 1e6
    workers = len(cluster.local_client().nthreads())
    same = identical(results["in-process"], results["local"])
    ratio = timings["in-process"] / timings["local"]
    print(f"{size} x {size} px at 0.3 m = {km2:.2f} km2, {len(results['local'].footprints)} buildings, "
          f"{os.cpu_count()} cores")
    print(f"  in this process                {timings['in-process']:7.1f} s   {km2 / timings['in-process']:.4f} km2/s")
    print(f"  local cluster, {workers} workers       {timings['local']:7.1f} s   {km2 / timings['local']:.4f} km2/s   "
          f"{ratio:.2f}x (target >= {SPEED_TARGET}); outputs identical: {same}")
    print(f"  (starting and warming the cluster took {startup_s:.1f} s, once per QGIS session)")
    cluster.close_local()
    return same and ratio >= SPEED_TARGET


def memory(args, work: Path) -> bool:
    import onnx_models

    size = 6000 if args.quick else 20000
    image = repeated_raster(VEGAS, work / "vegas_big.tif", size, 0.3, rows=slice(0, 1200))
    shipped = runtime.load(MODEL, "cpu").card
    geometry = {"tile_size": shipped.tile_size, "overlap": shipped.overlap, "gsd_m": shipped.gsd_m}
    model = onnx_models.brightness_model(work / "brightness.onnx", onnx_models.card(input=geometry))
    code = CHILD.format(paths=[str(PLUGIN_PATH), str(REPO / "tests" / "support")], image=str(image),
                        model=str(model), work=str(work))
    script = work / "cluster_memory.py"  # a file, so the workers' spawn finds a main module it can skip
    script.write_text(code)
    child = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
    if child.returncode:
        print(child.stderr[-2000:])
        return False
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    peaks = figures["workers_mb"]
    print(f"{size} x {size} px RGB raster ({size * size * 0.09 / 1e6:.0f} km2 at 0.3 m) on a local cluster of "
          f"{len(peaks)} workers, the brightness test model with the shipped model's tiling: {figures['tiles']} tiles, "
          f"{figures['buildings']} buildings in {figures['seconds']:.0f} s")
    for worker, peak in sorted(peaks.items()):
        print(f"  worker {worker}: peak RSS {peak:.0f} MB (target < {MEMORY_LIMIT_MB} MB)")
    print(f"  client: peak RSS {figures['client_mb']:.0f} MB")
    return all(peak < MEMORY_LIMIT_MB for peak in peaks.values())


def on_gpus(args, work: Path) -> bool:
    gpus = args.gpus if args.gpus is not None else (gpu.nvidia_gpu_count() if runtime.gpu_may_run() else 0)
    if not gpus:
        print("No GPU answers here (onnxruntime's CUDA provider and an NVIDIA driver): the GPU part is skipped.")
        return True
    size = 3000 if args.quick else 20000
    image = repeated_raster(VEGAS, work / "vegas_gpu.tif", size, 0.3, rows=slice(0, 1200))
    request = dict(raster_path=str(image), model_path=str(MODEL), device="auto", work_dir=str(work))
    client = cluster.start_local(cluster.local_workers(os.cpu_count() or 1, gpus))
    address = client.scheduler.address
    try:
        for scheduler in ("in-process", address):  # sessions loaded and workers warm before anything is timed
            extract.extract_buildings(extract.ExtractRequest(**dict(request, raster_path=str(VEGAS)),
                                                             scheduler=scheduler))
        timings, results, log = {}, {}, []
        for name, scheduler in (("in-process", "in-process"), ("cluster", address)):
            started = time.perf_counter()
            results[name] = extract.extract_buildings(
                extract.ExtractRequest(**request, scheduler=scheduler),
                report=lambda fraction, message=None: message and log.append(message))
            timings[name] = time.perf_counter() - started
    finally:
        client.close()
        client.cluster.close()
    km2 = size * size * 0.09 / 1e6
    same = identical(results["in-process"], results["cluster"])
    speed_km2_s = km2 / timings["cluster"]
    print(f"{size} x {size} px at 0.3 m = {km2:.1f} km2, {len(results['cluster'].footprints)} buildings, "
          f"{os.cpu_count()} cores, {gpus} GPU(s); in one process the model ran on {results['in-process'].device}")
    print(f"  in this process                {timings['in-process']:7.1f} s   {km2 / timings['in-process']:.3f} km2/s")
    print(f"  local cluster, GPU layout      {timings['cluster']:7.1f} s   {speed_km2_s:.3f} km2/s "
          f"(target >= {GPU_TARGET_KM2_S}); outputs identical: {same}")
    for line in log:
        if line.startswith(("Model batches run on", "worker ")):
            print(f"    {line}")
    return same and speed_km2_s >= GPU_TARGET_KM2_S


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller rasters")
    parser.add_argument("--part", choices=("speed", "memory", "gpu", "all"), default="all")
    parser.add_argument("--gpus", type=int, help="the GPU part's layout for this many GPUs, even where none answers")
    args = parser.parse_args(argv)
    if not dependencies.is_installed("distributed"):
        print(f"Dask is not installed: {cluster.INSTALL} (make setup installs it)")
        return 1
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        if args.part in ("speed", "all"):
            ok &= speed(args, Path(folder))
        if args.part in ("memory", "all"):
            ok &= memory(args, Path(folder))
        if args.part in ("gpu", "all"):
            ok &= on_gpus(args, Path(folder))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
