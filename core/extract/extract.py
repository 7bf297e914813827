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
from scipy import ndimage

from ..progress import Canceled, check, silent, span  # noqa: F401 - Canceled: callers know it from here
from . import buildings, probability, raster, roads, runtime, tiling
from .building_options import EXTRACTION, BuildingOptions

# Nothing is detected this close to nodata, where resampling can blend data with the blank: 0.3 m, at least one
# pixel, at most 16. The model itself never sees the blank (`_filled` gives it the nearest pixels with data), so
# a wider margin only loses buildings cut by the edge: on the validation areas cut into scattered chips, model 0.3.0's
# object F1 was 0.598 / 0.643 / 0.517 with 1.5 m and 0.613 / 0.656 / 0.561 with one pixel (128 / 255 / 64 px chips).
EDGE_M, EDGE_MAX_PX = 0.3, 16
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
    the model run, then the kind's options, vectoriser and probability bands."""
    kind = OUTPUT_KINDS[task]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), _inferred(request, report, is_canceled) as run:
        options = kind.options(run.card, request.options)
        found = kind.vectorise(run, options, request.block, report, is_canceled)
        if request.probability_path:
            descriptions, tags = kind.probability(run.card, options)
            _write_probability(run.stitched, request.probability_path, descriptions, tags, is_canceled)
    report(1.0, None)
    return run.extraction(options.settings(), **found)


@dataclass
class _Inferred:
    """A model run's stitched probabilities (a temporary uint8 GeoTIFF, 0..255) and what it ran with."""

    stitched: Path
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

    @property
    def card(self):
        return self.predictor.card

    @property
    def pixel_m(self) -> float:
        return float(np.sqrt(self.grid.pixel_area_m2))

    def extraction(self, settings: dict, footprints=(), network=None) -> Extraction:
        """The run's result: what was found, the task's settings after the common ones, counts and timings."""
        version = str(self.card.raw.get("version") or "") if self.card.source == "spacenet" else ""
        common = {"model": self.card.name, **({"model_version": version} if version else {}),
                  "model_file": os.path.basename(self.predictor.path),
                  "device": self.predictor.device_label, "bands": list(self.bands), "gsd_m": round(self.pixel_m, 4),
                  "tile_size": self.tile_size, "overlap": self.overlap}
        return Extraction(
            footprints=list(footprints),
            network=network,
            crs_wkt=self.info.crs_wkt,
            model_name=self.card.name,
            model_version=version,
            device=self.predictor.device_label,
            note="\n".join(note for note in (runtime.gpu_hint(self.predictor), *self.warnings) if note),
            bands=self.bands,
            settings=common | settings,
            tiles_run=self.tiles_run,
            tiles_skipped=self.tiles_skipped,
            timings={"inference_s": self.inferred - self.started, "total_s": time.perf_counter() - self.started},
        )


@contextmanager
def _inferred(request: ModelRun, report, is_canceled):
    """Run the model over the request's extent; the probabilities live as long as the context."""
    started = time.perf_counter()
    predictor = runtime.load(request.model_path, request.device, request.cpu_threads)
    card = predictor.card
    info = raster.describe(request.raster_path)
    bands = raster.check_bands(request.bands or raster.default_bands(info, card.bands), info, card.bands)
    grid = raster.model_grid(info, request.extent, card.gsd_m)
    try:
        stretch = raster.measure_stretch(info, bands, grid, card.normalisation)
    except raster.NoDataError:
        stretch = None  # an empty result, not a failure: a batch over fetched tiles goes on past a blank one
    size, overlap = _tile_plan(card, grid, request.tile_size)
    report(0.0, f"{card.summary()} on {predictor.device_label}; bands {', '.join(map(str, bands))}; "
           f"{grid.width} x {grid.height} px at {np.sqrt(grid.pixel_area_m2):.2f} m")
    work = Path(tempfile.mkdtemp(prefix="spacenet-extract-", dir=request.work_dir))
    try:
        stitched = work / "probabilities.tif"
        run, skipped = _infer(predictor, info, bands, grid, stretch, stitched, (size, overlap), request.batch_size,
                              report, is_canceled)
        # every tile skipped, whether the stretch's sample or the tiles found no data: said, as the result is empty
        warnings = (str(raster.NoDataError.of(info)),) if run == 0 else ()
        yield _Inferred(stitched, predictor, info, bands, grid, size, overlap, run, skipped, started,
                        time.perf_counter(), warnings)
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


def _infer(predictor, info, bands, grid, stretch, path, tile_plan, batch_size, report, is_canceled) -> tuple:
    card = predictor.card
    size, overlap = tile_plan
    plan = tiling.tiles(grid.height, grid.width, size, overlap, align=card.size_multiple)
    batch_size = batch_size_for(predictor, size, batch_size)
    channels = [card.foreground_channel] + ([card.interior_channel] if card.interior_channel is not None else [])
    edge_px = min(EDGE_MAX_PX, max(1, int(round(EDGE_M / np.sqrt(grid.pixel_area_m2)))))
    profile = {
        "driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(channels), "dtype": "uint8",
        "crs": rasterio.crs.CRS.from_wkt(info.crs_wkt), "transform": grid.transform, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": 1, "BIGTIFF": "IF_SAFER",
    }
    if stretch is None:  # no data in the extent: no tile is read or run, and the probabilities stay 0
        with rasterio.open(path, "w", **profile):
            pass  # GDAL fills the blocks never written with 0 when it closes the file
        report(PROGRESS_INFERENCE_END, None)
        return 0, len(plan)
    batches = [plan[first : first + batch_size] for first in range(0, len(plan), batch_size)]
    blank = np.zeros((len(channels), size, size), np.float32)
    run = skipped = done = 0
    with raster.open_on_grid(info, grid) as reader, rasterio.open(path, "w", **profile) as out, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacenet-read") as pool:
        writer = _AlignedRows(out, grid.width, len(channels))
        stitcher = tiling.RowStitcher(grid.height, grid.width, len(channels), size, overlap, writer.add)

        def prepare(group):  # on the reading thread, the only one that touches the raster
            tiles = [_read_tile(reader, bands, tile, grid) for tile in group]
            return [_filled(stretch.apply(values), valid) for values, valid in tiles], [valid for _, valid in tiles]

        # the next batch is read while the model runs on this one (onnxruntime and GDAL release the GIL)
        pending = pool.submit(prepare, batches[0])
        for number, group in enumerate(batches):
            inputs, masks = pending.result()
            check(is_canceled)
            if number + 1 < len(batches):
                pending = pool.submit(prepare, batches[number + 1])
            live = [i for i, m in enumerate(masks) if m.any()]
            outputs = [blank] * len(group)  # tiles without data add nothing but their weight
            if live:
                probabilities = predictor.run(np.stack([inputs[i] for i in live]))
                for k, i in enumerate(live):
                    outputs[i] = _fit(probabilities[k, channels], size)
                    if not masks[i].all():
                        outputs[i] *= ndimage.binary_erosion(masks[i], iterations=edge_px, border_value=1)
            run += len(live)
            skipped += len(group) - len(live)
            for tile, output in zip(group, outputs):
                stitcher.add(tile, output)
            done += len(group)
            report(PROGRESS_INFERENCE_END * done / len(plan), None)
        stitcher.finish()
        writer.finish()
    return run, skipped


def batch_size_for(predictor, tile_size: int, requested: int) -> int:
    """Tiles per model run: as requested, within what the model takes and, on a CPU, one megapixel."""
    batch = max(1, min(requested, predictor.card.max_batch or requested))
    if not predictor.on_gpu:
        # on a CPU a batch is no faster than its tiles one by one, and its activations cost memory
        # (four 1024 px tiles of the shipped U-Net: 3.3 GB)
        batch = max(1, min(batch, CPU_BATCH_PIXELS // (tile_size * tile_size)))
    return batch


def _read_tile(reader, bands, tile, grid):
    """Raw values [bands, size, size] and validity of a tile; where it reaches past the grid, the grid's
    pixels mirrored across its edge (the same values whichever tile asks)."""
    top, left = max(tile.row, 0), max(tile.col, 0)
    bottom, right = min(tile.row + tile.size, grid.height), min(tile.col + tile.size, grid.width)
    values, valid = reader.read(bands, top, left, bottom - top, right - left)
    if (bottom - top, right - left) == (tile.size, tile.size):
        return values, valid
    widths = ((top - tile.row, tile.row + tile.size - bottom), (left - tile.col, tile.col + tile.size - right))
    return np.pad(values, ((0, 0), *widths), mode="symmetric"), np.pad(valid, widths, mode="symmetric")


def _filled(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel without data takes the value of the nearest pixel with data, so the model sees no false
    black edge along a nodata collar or between scattered scenes."""
    if valid.all() or not valid.any():
        return values * valid
    nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[:, nearest[0], nearest[1]]


def _fit(output: np.ndarray, size: int) -> np.ndarray:
    """An output of another size than its input, centred on the input tile (valid-convolution models)."""
    h, w = output.shape[-2:]
    if (h, w) == (size, size):
        return output
    fitted = np.zeros((output.shape[0], size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    src = output[:, max(0, -top) : max(0, -top) + min(h, size), max(0, -left) : max(0, -left) + min(w, size)]
    fitted[:, max(0, top) : max(0, top) + src.shape[1], max(0, left) : max(0, left) + src.shape[2]] = src
    return fitted


class _AlignedRows:
    """Writes emitted rows in bands of whole 256-pixel block rows, so no compressed block is written twice."""

    def __init__(self, dataset, width, channels):
        self._dataset = dataset
        self._pending = np.zeros((channels, 0, width), np.uint8)
        self._top = 0

    def add(self, row0, values):
        scaled = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
        self._pending = np.concatenate([self._pending, scaled], axis=1)
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

        def keep(footprint):
            done = buildings.finish(footprint, options, grid.pixel_area_m2, pixel_m)
            if done is None:
                return None
            area_m2 = done.geometry.area * grid.pixel_area_m2
            return MapFootprint(raster.to_map(done.geometry, grid.transform), done.score, area_m2)

        found = buildings.footprints_on_grid(read, grid.height, grid.width, options, pixel_m, block=block,
                                             report=_vectorising(report), is_canceled=is_canceled, keep=keep)
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
