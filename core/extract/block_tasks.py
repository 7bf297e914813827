"""An extraction as tasks that can run anywhere: model batches and vectorising blocks, pure functions of a plan.

The plan is what the client measured once (grid, stretch, tiles, batches, blocks, options). A batch task runs one
of the in-process run's batches of tiles through the model; a block task stitches the tiles that reach its window
(core plus halo), in the in-process run's order and arithmetic, so its probabilities are those of the in-process
run bit for bit, then vectorises its window as footprints_on_grid or centerlines_on_grid does one block. The
client joins what block borders cut. Workers import this module (the plugin's ``core``, no QGIS).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import numpy as np
import rasterio

from . import buildings, raster, roads, runtime, tiling
from .gpu import gpu_absence_reason
from .tile_inference import quantised, read_batch, run_batch

PROTOCOL = 2  # a worker whose plugin speaks another protocol is refused before any work


@dataclass(frozen=True)
class BlockPlan:
    task: str  # "buildings" or "roads"
    info: raster.RasterInfo
    model_path: str
    device: str
    cpu_threads: int
    bands: tuple
    grid: raster.Grid
    stretch: raster.Stretch | None  # None: no data in the extent, nothing runs
    tiles: tuple  # tiling.Tile, the run's tiles in row order
    batches: tuple  # tile indices per model run, as the in-process run batches them
    tile_size: int
    overlap: int
    channels: tuple  # model output channels kept
    margin_px: int  # nothing detected this close to nodata
    blocks: tuple  # tiling.HaloBlock, in row order
    options: object  # BuildingOptions or RoadOptions
    keep_probability: bool  # block results carry their core's probabilities

    def tiles_of(self, block: tiling.HaloBlock) -> list:
        """Indices of the tiles that reach the block's window, in run order."""
        (r0, r1), (c0, c1) = block.window_rows, block.window_cols
        return [i for i, t in enumerate(self.tiles)
                if t.row < r1 and t.row + t.size > r0 and t.col < c1 and t.col + t.size > c0]

    def batches_of(self, block: tiling.HaloBlock) -> list:
        """Numbers of the batches holding the block's tiles, ascending."""
        wanted = set(self.tiles_of(block))
        return [n for n, members in enumerate(self.batches) if wanted.intersection(members)]


@dataclass
class BatchOutput:
    outputs: list  # per tile of the batch: [C, size, size] float32, or None for a tile without data
    device: str  # what ran it, e.g. "CPU"
    worker: str
    seconds: float

    @property
    def tiles_run(self) -> int:
        return sum(output is not None for output in self.outputs)


@dataclass
class BlockOutput:
    footprints: list  # buildings owned whole, finished (MapFootprint)
    pieces: list  # buildings cut by the window edge (buildings.Footprint in grid pixels), joined by the client
    skeleton: tuple | None  # roads: (rows, cols, near_nodata) of the core's centerline pixels
    probability: np.ndarray | None  # the core's stitched uint8 probabilities, when the plan keeps them
    batches: list  # (device, worker, tiles run, tiles skipped, seconds) of the batches this block reports
    worker: str  # where the block ran


def infer_batch(plan: BlockPlan, number: int) -> BatchOutput:
    """Batch ``number`` of the plan through the model, on this worker."""
    started = time.perf_counter()
    predictor = runtime.load(plan.model_path, plan.device, plan.cpu_threads)
    tiles = [plan.tiles[i] for i in plan.batches[number]]
    with rasterio.Env(GDAL_CACHEMAX=raster.GDAL_CACHE_BYTES), raster.open_on_grid(plan.info, plan.grid) as reader:
        inputs, masks = read_batch(reader, plan.bands, tiles, plan.grid, plan.stretch)
    outputs = run_batch(predictor, inputs, masks, list(plan.channels), plan.tile_size, plan.margin_px)
    return BatchOutput(outputs, predictor.device_label, _worker_name(), time.perf_counter() - started)


def model_device(model_path: str, device: str, cpu_threads: int) -> tuple:
    """(what runs the model on this worker, e.g. "GPU (CUDA)" or "CPU"; why not a GPU, or ""), loading the session
    its batches will use; (None, why) when ``device`` is "gpu" and no GPU can run it here."""
    try:
        predictor = runtime.load(model_path, device, cpu_threads)
    except runtime.RuntimeUnavailableError as error:
        return None, str(error)
    if predictor.on_gpu:
        return predictor.device_label, ""
    import onnxruntime as ort

    return predictor.device_label, gpu_absence_reason(ort.get_available_providers())


def vectorise_block(plan: BlockPlan, number: int, batch_numbers: tuple, reported: tuple, *batches) -> BlockOutput:
    """Block ``number``: its window's probabilities from ``batches`` (the outputs of batches ``batch_numbers``),
    then what the task makes of them. ``reported``: the batch numbers whose statistics this block reports."""
    block = plan.blocks[number]
    by_tile = {}
    for batch_number, batch in zip(batch_numbers, batches):
        by_tile.update(zip(plan.batches[batch_number], batch.outputs))
    probability = window_probability(plan, block, by_tile)
    pixel_m = float(np.sqrt(plan.grid.pixel_area_m2))
    shape = (plan.grid.height, plan.grid.width)
    footprints, pieces, skeleton = [], [], None
    if plan.task == "buildings":
        interior = probability[1] if len(probability) > 1 else None
        whole, pieces = buildings.block_footprints(block, probability[0], interior, plan.options, pixel_m, shape)
        keep = footprint_keeper(plan.options, plan.grid)
        footprints = [kept for kept in map(keep, whole) if kept is not None]
    else:
        skeleton = roads.block_skeleton(block, probability[0], None, plan.options, pixel_m)
    kept = quantised(np.stack([block.core_of(channel) for channel in probability])) if plan.keep_probability else None
    stats = [(batch.device, batch.worker, batch.tiles_run, len(batch.outputs) - batch.tiles_run, batch.seconds)
             for batch_number, batch in zip(batch_numbers, batches) if batch_number in reported]
    return BlockOutput(footprints, pieces, skeleton, kept, stats, _worker_name())


def window_probability(plan: BlockPlan, block: tiling.HaloBlock, by_tile: dict) -> np.ndarray:
    """The stitched probabilities [C, h, w] over the block's window, as the in-process run's RowStitcher and its
    uint8 file give them: each tile's output times its blend weights added in run order, divided by the weights,
    rounded to 1/255."""
    (r0, r1), (c0, c1) = block.window_rows, block.window_cols
    weights = tiling.blend_window(plan.tile_size, plan.overlap)
    total = np.zeros((len(plan.channels), r1 - r0, c1 - c0), np.float32)
    weight = np.zeros((r1 - r0, c1 - c0), np.float32)
    blank = np.zeros((len(plan.channels), plan.tile_size, plan.tile_size), np.float32)
    for index in plan.tiles_of(block):
        tile = plan.tiles[index]
        top, left = max(tile.row, r0), max(tile.col, c0)
        bottom, right = min(tile.row + tile.size, r1), min(tile.col + tile.size, c1)
        inside = (slice(top - tile.row, bottom - tile.row), slice(left - tile.col, right - tile.col))
        values = by_tile[index] if by_tile[index] is not None else blank
        rows, cols = slice(top - r0, bottom - r0), slice(left - c0, right - c0)
        total[:, rows, cols] += values[(slice(None), *inside)] * weights[inside]
        weight[rows, cols] += weights[inside]
    done = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return quantised(done).astype(np.float32) / 255


def footprint_keeper(options, grid: raster.Grid):
    """footprint (grid pixels) -> MapFootprint on the map, or None when under the minimum area or score."""
    from .extract import MapFootprint  # here: extract imports this module's users

    pixel_m = float(np.sqrt(grid.pixel_area_m2))

    def keep(footprint):
        done = buildings.finish(footprint, options, grid.pixel_area_m2, pixel_m)
        if done is None:
            return None
        area_m2 = done.geometry.area * grid.pixel_area_m2
        return MapFootprint(raster.to_map(done.geometry, grid.transform), done.score, area_m2)

    return keep


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a Dask worker
        return f"{socket.gethostname()}:{os.getpid()}"
