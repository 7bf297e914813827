"""Extraction from a raster: the engine the extractbuildings and extractroads algorithms drive.

read windows on the model grid -> stretch -> batches through the model -> blended stitching into a
temporary probability GeoTIFF (a tile row in memory at a time) -> footprints or centerlines block by block -> map.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from ..progress import Canceled, check, silent, span  # noqa: F401 - Canceled: callers know it from here
from . import buildings, probability, raster, roads, runtime, tiling
from .block_tasks import footprint_keeper
from .building_options import EXTRACTION, BuildingOptions
from .tile_inference import EDGE_M, edge_px, output_channels, quantised, read_batch, run_batch  # noqa: F401 - EDGE_M: callers know it from here

WRITE_ROWS = 256  # the stitched probabilities are written in whole rows of 256 x 256 blocks
CPU_BATCH_PIXELS = 1024 * 1024
PROGRESS_INFERENCE_END = 0.85  # the share of the run's progress for the model; vectorising takes it to 0.99
# GDAL's block cache is bounded for a run (the stretch's sample alone reads every block of the extent).
GDAL_CACHE_BYTES = raster.GDAL_CACHE_BYTES


@dataclass(frozen=True)
class ModelRun:
    """What every extraction needs: the raster, the model, where and how to run it."""

    raster_path: str
    model_path: str
    extent: tuple | None = None  # xmin, ymin, xmax, ymax in the raster's CRS; None: the whole raster
    bands: tuple | None = None  # 1-based raster bands per model input; None: chosen from the raster and card
    batch_size: int = 4
    tile_size: int | None = None  # None: the model card's; smaller tiles need less (GPU) memory
    device: str = "auto"
    cpu_threads: int = 0  # 0: every core
    probability_path: str | None = None  # write the building probability (Float32, 0..1) here
    work_dir: str | None = None  # where temporary files go; None: the system's temporary folder
    block: int = buildings.BLOCK
    # where the blocks run: "" (in this process, or a local Dask cluster for a large extent when Dask is
    # installed), "in-process", "local" (a local Dask cluster) or a Dask scheduler's address (tcp://host:8786)
    scheduler: str = ""
    # where the raster came from, when its path does not say it (a web layer: source, source_kind, attribution):
    # the probability raster's tags record it as SPACENET_SOURCE, SPACENET_SOURCE_KIND, SPACENET_ATTRIBUTION
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractRequest(ModelRun):
    """A building extraction. ``options``: the BuildingOptions given, by name; one not given, or None, is the
    model card's default where the card holds one, else ``building_options.EXTRACTION``'s."""

    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RoadRequest(ModelRun):
    """A road extraction. ``options``: the RoadOptions given, by name; one not given, or None, is the model card's
    default where the card holds one, else RoadOptions'."""

    options: dict = field(default_factory=dict)
    block: int = roads.BLOCK


@dataclass(frozen=True)
class MapFootprint:
    geometry: object  # shapely Polygon in the raster's CRS
    score: float
    area_m2: float


@dataclass
class Extraction:
    footprints: list  # MapFootprint (buildings); empty for roads
    crs_wkt: str
    model_name: str
    device: str  # what ran it, e.g. "GPU (CUDA)" or "CPU"
    note: str  # what the user is warned of, a line each (why a GPU was not used, an extent without data), or ""
    bands: tuple
    settings: dict
    tiles_run: int
    tiles_skipped: int
    timings: dict = field(default_factory=dict)
    network: roads.RoadNetwork | None = None  # roads: edges and nodes in the raster's CRS
    model_version: str = ""  # the card's version; "" when it states none (Deepness models)


def extract_buildings(request: ExtractRequest, report=silent, is_canceled=None):
    """Footprints of the buildings in the request's raster and extent; ``report(fraction, message)`` as it goes.
    Raises Canceled when ``is_canceled()`` turns True, and writes nothing then."""
    return extract("buildings", request, report, is_canceled)


def extract_roads(request: RoadRequest, report=silent, is_canceled=None):
    """The road centerline graph of the request's raster and extent; ``report(fraction, message)`` as it goes.
    Raises Canceled when ``is_canceled()`` turns True, and writes nothing then."""
    return extract("roads", request, report, is_canceled)


def extract(task: str, request: ModelRun, report=silent, is_canceled=None) -> Extraction:
    """What a model of ``task`` finds in the request's raster and extent, as ``OUTPUT_KINDS[task]`` makes it:
    the model run, then the kind's options, vectoriser and probability bands; in this process or, for a large
    extent or when the request names one, on a Dask cluster (the same result)."""
    kind = OUTPUT_KINDS[task]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        prepared = _prepare(request)
        options = kind.options(prepared.card, request.options)
        executor, where = _executor(request, prepared)
        report(0.0, f"{prepared.summary()}; {where}")
        runner = _in_process if executor is None else executor.run
        with runner(task, prepared, options, request, report, is_canceled) as (run, found):
            if request.probability_path:
                descriptions, tags = kind.probability(run.card, options)
                tags |= {f"SPACENET_{key.upper()}": str(value) for key, value in request.provenance.items()}
                _write_probability(run.stitched, request.probability_path, descriptions, tags, is_canceled)
    report(1.0, None)
    return run.extraction(options.settings(), **found)


def _executor(request: ModelRun, prepared):
    """(the Dask executor the request's blocks run on, or None for this process: the default for small extents,
    and wherever Dask is not installed; where the run happens, in words)."""
    from . import cluster  # the cluster's modules, and Dask, only when a run may use them

    if prepared.stretch is None:  # no data in the extent: nothing to spread
        return None, "in this process"
    return cluster.executor_for(request.scheduler, prepared.grid.width * prepared.grid.height)


@dataclass
class Prepared:
    """What every run measures once, wherever its blocks run: the model, the raster, the grid and stretch."""

    predictor: object
    info: raster.RasterInfo
    bands: tuple
    grid: raster.Grid
    stretch: raster.Stretch | None  # None: no data in the extent
    tile_size: int
    overlap: int
    batch_size: int
    started: float

    @property
    def card(self):
        return self.predictor.card

    def tiles(self) -> list:
        return tiling.tiles(self.grid.height, self.grid.width, self.tile_size, self.overlap,
                            align=self.card.size_multiple)

    def summary(self) -> str:
        return (f"{self.card.summary()} on {self.predictor.device_label}; bands {', '.join(map(str, self.bands))}; "
                f"{self.grid.width} x {self.grid.height} px at {np.sqrt(self.grid.pixel_area_m2):.2f} m")

    def inferred(self, stitched, tiles_run: int, tiles_skipped: int, **devices) -> _Inferred:
        # every tile skipped, whether the stretch's sample or the tiles found no data: said, as the result is empty
        warnings = (str(raster.NoDataError.of(self.info)),) if tiles_run == 0 else ()
        return _Inferred(stitched, self.predictor, self.info, self.bands, self.grid, self.tile_size, self.overlap,
                         tiles_run, tiles_skipped, self.started, time.perf_counter(), warnings, **devices)


def load_model(model_path: str, device: str, cpu_threads: int, scheduler: str):
    """The model as this process loads it for a run on ``device``. A GPU run on another machine's Dask workers needs
    no GPU here (each worker says what it has): where none is, the model is loaded on the CPU, for its card."""
    try:
        return runtime.load(model_path, device, cpu_threads)
    except runtime.RuntimeUnavailableError:
        from .cluster import names_another_machine

        if not names_another_machine(scheduler):
            raise
        return runtime.load(model_path, "cpu", cpu_threads)


def _prepare(request: ModelRun) -> Prepared:
    started = time.perf_counter()
    predictor = load_model(request.model_path, request.device, request.cpu_threads, request.scheduler)
    card = predictor.card
    info = raster.describe(request.raster_path)
    bands = raster.check_bands(request.bands or raster.default_bands(info, card.bands), info, card.bands)
    grid = raster.model_grid(info, request.extent, card.gsd_m)
    try:
        stretch = raster.measure_stretch(info, bands, grid, card.normalisation)
    except raster.NoDataError:
        stretch = None  # an empty result, not a failure: a batch over fetched tiles goes on past a blank one
    size, overlap = _tile_plan(card, grid, request.tile_size)
    return Prepared(predictor, info, bands, grid, stretch, size, overlap,
                    batch_size_for(predictor, size, request.batch_size), started)


@dataclass
class _Inferred:
    """A model run's stitched probabilities (a temporary uint8 GeoTIFF, 0..255) and what it ran with."""

    stitched: Path | None
    predictor: object
    info: raster.RasterInfo
    bands: tuple
    grid: raster.Grid
    tile_size: int
    overlap: int
    tiles_run: int
    tiles_skipped: int
    started: float
    inferred: float
    warnings: tuple = ()  # what the user must know about the result beside the predictor's note
    device: str = ""  # what ran the model, when not this process's predictor (a cluster's workers)
    executor: str = "this process"

    @property
    def card(self):
        return self.predictor.card

    @property
    def pixel_m(self) -> float:
        return float(np.sqrt(self.grid.pixel_area_m2))

    def extraction(self, settings: dict, footprints=(), network=None) -> Extraction:
        """The run's result: what was found, the task's settings after the common ones, counts and timings."""
        version = str(self.card.raw.get("version") or "") if self.card.source == "spacenet" else ""
        device = self.device or self.predictor.device_label
        common = {"model": self.card.name, **({"model_version": version} if version else {}),
                  "model_file": os.path.basename(self.predictor.path), "device": device,
                  "executor": self.executor, "bands": list(self.bands), "gsd_m": round(self.pixel_m, 4),
                  "tile_size": self.tile_size, "overlap": self.overlap}
        return Extraction(
            footprints=list(footprints),
            network=network,
            crs_wkt=self.info.crs_wkt,
            model_name=self.card.name,
            model_version=version,
            device=device,
            note="\n".join(note for note in (runtime.gpu_hint(self.predictor), *self.warnings) if note),
            bands=self.bands,
            settings=common | settings,
            tiles_run=self.tiles_run,
            tiles_skipped=self.tiles_skipped,
            timings={"inference_s": self.inferred - self.started, "total_s": time.perf_counter() - self.started},
        )


@contextmanager
def _in_process(task: str, prepared: Prepared, options, request: ModelRun, report, is_canceled):
    """The run in this process: the model over the extent into a temporary stitched GeoTIFF, then the task's
    vectoriser block by block; yields (the run, what it found), the probabilities living as long as the context."""
    work = Path(tempfile.mkdtemp(prefix="spacenet-extract-", dir=request.work_dir))
    try:
        stitched = work / "probabilities.tif"
        run = prepared.inferred(stitched, *_infer(prepared, stitched, report, is_canceled))
        yield run, OUTPUT_KINDS[task].vectorise(run, options, request.block, report, is_canceled)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tile_plan(card, grid, tile_size=None):
    size = card.tile_size
    if tile_size and tile_size != size:
        if card.fixed_size:
            raise raster.RasterError(f"The model takes {size} px tiles only; a tile size of {tile_size} cannot run.")
        if tile_size % card.size_multiple:
            raise raster.RasterError(f"The tile size must be a multiple of {card.size_multiple} px for this model.")
        size = tile_size
    overlap = min(card.overlap, size // 2)
    whole = max(grid.width, grid.height) + 2 * tiling.border(overlap, card.size_multiple)
    if not card.fixed_size and whole < size:
        # a small extent runs as one tile just big enough (the model takes any multiple of size_multiple)
        m = card.size_multiple
        size = max(m, -(-whole // m) * m)
    return size, overlap


def stitched_profile(prepared: Prepared, channels: int) -> dict:
    """The temporary uint8 GeoTIFF of the stitched probabilities, in 256 px blocks."""
    return {
        "driver": "GTiff", "width": prepared.grid.width, "height": prepared.grid.height, "count": channels,
        "dtype": "uint8", "crs": rasterio.crs.CRS.from_wkt(prepared.info.crs_wkt),
        "transform": prepared.grid.transform, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "deflate", "zlevel": 1, "BIGTIFF": "IF_SAFER",
    }


def _infer(prepared: Prepared, path, report, is_canceled) -> tuple:
    grid, size, overlap = prepared.grid, prepared.tile_size, prepared.overlap
    plan = prepared.tiles()
    channels = output_channels(prepared.card)
    profile = stitched_profile(prepared, len(channels))
    if prepared.stretch is None:  # no data in the extent: no tile is read or run, and the probabilities stay 0
        with rasterio.open(path, "w", **profile):
            pass  # GDAL fills the blocks never written with 0 when it closes the file
        report(PROGRESS_INFERENCE_END, None)
        return 0, len(plan)
    batch_size, margin = prepared.batch_size, edge_px(grid)
    batches = [plan[first : first + batch_size] for first in range(0, len(plan), batch_size)]
    blank = np.zeros((len(channels), size, size), np.float32)
    run = skipped = done = 0
    with raster.open_on_grid(prepared.info, grid) as reader, rasterio.open(path, "w", **profile) as out, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacenet-read") as pool:
        writer = _AlignedRows(out, grid.width, len(channels))
        stitcher = tiling.RowStitcher(grid.height, grid.width, len(channels), size, overlap, writer.add)

        def prepare(group):  # on the reading thread, the only one that touches the raster
            return read_batch(reader, prepared.bands, group, grid, prepared.stretch)

        # the next batch is read while the model runs on this one (onnxruntime and GDAL release the GIL)
        pending = pool.submit(prepare, batches[0])
        for number, group in enumerate(batches):
            inputs, masks = pending.result()
            check(is_canceled)
            if number + 1 < len(batches):
                pending = pool.submit(prepare, batches[number + 1])
            outputs = run_batch(prepared.predictor, inputs, masks, channels, size, margin)
            live = sum(output is not None for output in outputs)
            run += live
            skipped += len(group) - live
            for tile, output in zip(group, outputs):
                stitcher.add(tile, blank if output is None else output)  # a tile without data adds its weight
            done += len(group)
            report(PROGRESS_INFERENCE_END * done / len(plan), None)
        stitcher.finish()
        writer.finish()
    return run, skipped


def gpu_batch_size(card, requested: int) -> int:
    """Tiles per model run on a GPU: as requested, within what the model takes."""
    return max(1, min(requested, card.max_batch or requested))


def batch_size_for(predictor, tile_size: int, requested: int) -> int:
    """Tiles per model run: as requested, within what the model takes and, on a CPU, one megapixel."""
    batch = gpu_batch_size(predictor.card, requested)
    if not predictor.on_gpu:
        # on a CPU a batch is no faster than its tiles one by one, and its activations cost memory
        # (four 1024 px tiles of the shipped U-Net: 3.3 GB)
        batch = max(1, min(batch, CPU_BATCH_PIXELS // (tile_size * tile_size)))
    return batch


class _AlignedRows:
    """Writes emitted rows in bands of whole 256-pixel block rows, so no compressed block is written twice."""

    def __init__(self, dataset, width, channels):
        self._dataset = dataset
        self._pending = np.zeros((channels, 0, width), np.uint8)
        self._top = 0

    def add(self, row0, values):
        self._pending = np.concatenate([self._pending, quantised(values)], axis=1)
        ready = (self._pending.shape[1] // WRITE_ROWS) * WRITE_ROWS
        if ready:
            self._write(self._pending[:, :ready])
            self._pending = self._pending[:, ready:]

    def finish(self):
        if self._pending.shape[1]:
            self._write(self._pending)

    def _write(self, rows):
        window = rasterio.windows.Window(0, self._top, rows.shape[2], rows.shape[1])
        self._dataset.write(rows, window=window)
        self._top += rows.shape[1]


def _footprints(run: _Inferred, options, block, report, is_canceled) -> dict:
    grid, pixel_m = run.grid, run.pixel_m
    with rasterio.open(run.stitched) as src:
        has_interior = src.count > 1

        def read(row, col, h, w):
            data = src.read(window=rasterio.windows.Window(col, row, w, h)).astype(np.float32) / 255
            return data[0], (data[1] if has_interior else None)

        found = buildings.footprints_on_grid(read, grid.height, grid.width, options, pixel_m, block=block,
                                             report=_vectorising(report), is_canceled=is_canceled,
                                             keep=footprint_keeper(options, grid))
    return {"footprints": found}


def _building_probability(card, options) -> tuple:
    interior = card.interior_channel is not None
    descriptions = [probability.BUILDING] + ([probability.INTERIOR] if interior else [])
    return descriptions, options.tags(leave_out=() if interior else ("interior_threshold",))


def _centerlines(run: _Inferred, options, block, report, is_canceled) -> dict:
    with rasterio.open(run.stitched) as src:

        def read(row, col, h, w):
            window = rasterio.windows.Window(col, row, w, h)
            return src.read(1, window=window).astype(np.float32) / 255, None

        network = roads.centerlines_on_grid(read, run.grid.height, run.grid.width, options, run.pixel_m, block=block,
                                            report=_vectorising(report), is_canceled=is_canceled)
    return {"network": roads.network_on_map(network, run.grid.transform)}


def _vectorising(report):
    return span(report, PROGRESS_INFERENCE_END, 0.99)


def _write_probability(stitched, destination, descriptions, tags, is_canceled) -> None:
    """The stitched channels (the first ``len(descriptions)``) as Float32 0..1 bands with those descriptions and
    the metadata ``tags``, written under a temporary name and renamed when complete."""
    destination = Path(destination)
    partial = destination.with_name(f".{destination.name}.partial")
    bands = list(range(1, len(descriptions) + 1))
    with rasterio.open(stitched) as src:
        profile = src.profile | {"count": len(bands), "dtype": "float32", "zlevel": 6, "predictor": 3}
        try:
            with rasterio.open(partial, "w", **profile) as out:
                for band, description in zip(bands, descriptions):
                    out.set_band_description(band, description)
                out.update_tags(**tags)
                for _, window in src.block_windows(1):
                    check(is_canceled)
                    out.write(src.read(bands, window=window).astype(np.float32) / 255, bands, window=window)
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class OutputKind:
    """What the extraction of one task makes of the model's probabilities."""

    request: type  # the task's ModelRun, with its options by name
    options: Callable  # (card, the options given by name) -> the task's options (with .settings())
    vectorise: Callable  # (run, options, block, report, is_canceled) -> the Extraction fields it fills, by name
    probability: Callable  # (card, options) -> the probability raster's band descriptions and metadata tags


# A model card's task chooses its output kind; a new kind is a vectoriser beside buildings and roads, an entry
# here, and its writer in processing_provider/writers.py.
OUTPUT_KINDS = {
    "buildings": OutputKind(request=ExtractRequest,
                            options=lambda card, given: BuildingOptions.of_card(card, EXTRACTION, **given),
                            vectorise=_footprints, probability=_building_probability),
    "roads": OutputKind(request=RoadRequest,
                        options=lambda card, given: roads.RoadOptions.of_card(card, **given),
                        vectorise=_centerlines, probability=lambda card, options: ([probability.ROAD], {})),
}
