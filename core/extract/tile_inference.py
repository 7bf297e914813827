"""One batch of tiles through the model: read on the model grid, stretch, fill nodata, run, fit and mask.

Shared by the in-process run (extract.py, which stitches as it goes) and the block tasks of a Dask cluster
(block_tasks.py), so both give the model the same inputs and get the same outputs, tile for tile.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .modelcard import ModelCardError

# Nothing is detected this close to nodata, where resampling can blend data with the blank: 0.3 m, at least one
# pixel, at most 16. The model itself never sees the blank (`filled` gives it the nearest pixels with data), so
# a wider margin only loses buildings cut by the edge: on the validation areas cut into scattered chips, model 0.3.0's
# object F1 was 0.598 / 0.643 / 0.517 with 1.5 m and 0.613 / 0.656 / 0.561 with one pixel (128 / 255 / 64 px chips).
EDGE_M, EDGE_MAX_PX = 0.3, 16


def edge_px(grid) -> int:
    """The margin along nodata, in grid pixels."""
    return min(EDGE_MAX_PX, max(1, int(round(EDGE_M / np.sqrt(grid.pixel_area_m2)))))


def output_channels(card) -> list:
    """The model output channels the engine keeps: the foreground, then the interior when the model has one."""
    return [card.foreground_channel] + ([card.interior_channel] if card.interior_channel is not None else [])


def read_batch(reader, bands, tiles, grid, stretch) -> tuple:
    """(model inputs, validity masks) of ``tiles``: read from ``reader`` (raster.open_on_grid), stretched, and
    nodata filled from the nearest pixels with data."""
    read = [read_tile(reader, bands, tile, grid) for tile in tiles]
    return [filled(stretch.apply(values), valid) for values, valid in read], [valid for _, valid in read]


def run_batch(predictor, inputs, masks, channels, size: int, margin_px: int) -> list:
    """The kept channels of the model's output per tile, [C, size, size] float32, zero along nodata; None for a
    tile without data (not run: it adds nothing but its weight to the stitching)."""
    live = [i for i, mask in enumerate(masks) if mask.any()]
    outputs = [None] * len(inputs)
    if live:
        probabilities = predictor.run(np.stack([inputs[i] for i in live]))
        if np.isnan(probabilities.max()):  # NaN anywhere makes the maximum NaN: a cheap look at the whole batch
            raise ModelCardError("The model gave NaN probabilities: it cannot run on this input as it is (check its "
                                 "normalisation, or run it in float32 on the CPU).")
        for k, i in enumerate(live):
            outputs[i] = fit(probabilities[k, channels], size)
            if not masks[i].all():
                outputs[i] *= ndimage.binary_erosion(masks[i], iterations=margin_px, border_value=1)
    return outputs


def read_tile(reader, bands, tile, grid):
    """Raw values [bands, size, size] and validity of a tile; where it reaches past the grid, the grid's
    pixels mirrored across its edge (the same values whichever tile asks)."""
    top, left = max(tile.row, 0), max(tile.col, 0)
    bottom, right = min(tile.row + tile.size, grid.height), min(tile.col + tile.size, grid.width)
    values, valid = reader.read(bands, top, left, bottom - top, right - left)
    if (bottom - top, right - left) == (tile.size, tile.size):
        return values, valid
    widths = ((top - tile.row, tile.row + tile.size - bottom), (left - tile.col, tile.col + tile.size - right))
    return np.pad(values, ((0, 0), *widths), mode="symmetric"), np.pad(valid, widths, mode="symmetric")


def filled(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel without data takes the value of the nearest pixel with data, so the model sees no false
    black edge along a nodata collar or between scattered scenes."""
    if valid.all() or not valid.any():
        return values * valid
    nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[:, nearest[0], nearest[1]]


def fit(output: np.ndarray, size: int) -> np.ndarray:
    """An output of another size than its input, centred on the input tile (valid-convolution models)."""
    h, w = output.shape[-2:]
    if (h, w) == (size, size):
        return output
    if 2 * h <= size or 2 * w <= size:
        raise ModelCardError(f"The model's output is {w} x {h} px for {size} px tiles: outputs at a coarser "
                             "resolution than the input are not supported.")
    fitted = np.zeros((output.shape[0], size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    src = output[:, max(0, -top) : max(0, -top) + min(h, size), max(0, -left) : max(0, -left) + min(w, size)]
    fitted[:, max(0, top) : max(0, top) + src.shape[1], max(0, left) : max(0, left) + src.shape[2]] = src
    return fitted


def quantised(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities 0..1 as the stitched uint8 0..255 the vectorisers read (``/ 255``)."""
    return np.clip(np.rint(probabilities * 255), 0, 255).astype(np.uint8)
