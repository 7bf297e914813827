"""Overlapping tiles over a grid and their seamless, memory-bounded stitching.

Tiles are visited row by row. Each tile's output is weighted by a window that ignores its outer
margin and tapers across the rest of the overlap, so neighbouring tiles fade into each other
instead of meeting at a seam. Once a tile row is
done, the grid rows above the next tile row can receive nothing more: they are normalised and
handed on, so memory holds one tile row of the grid, never the whole grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE_WEIGHT = 1e-3  # weight at a tile's outer edge: small, never zero (a grid border has no neighbour)


@dataclass(frozen=True)
class Tile:
    row: int  # top-left pixel on the grid
    col: int
    size: int


def positions(length: int, size: int, overlap: int) -> list:
    """Start offsets of tiles of ``size`` along ``length`` with at least ``overlap`` shared pixels."""
    if length <= size:
        return [0]
    stride = max(1, size - overlap)
    starts = list(range(0, length - size, stride))
    starts.append(length - size)  # the last tile ends at the grid edge
    return starts


def tiles(height: int, width: int, size: int, overlap: int) -> list:
    """Tiles covering the grid in row order. Tiles of a grid smaller than ``size`` reach past it (padded)."""
    return [Tile(r, c, size) for r in positions(height, size, overlap) for c in positions(width, size, overlap)]


def blend_window(size: int, overlap: int) -> np.ndarray:
    """[size, size] weights that hand over from one tile to the next across their overlap.

    The outer quarter of the overlap weighs (almost) nothing: there a model sees the tile's edge,
    not the ground beyond. The middle half falls along a raised cosine, so neighbours cross-fade.
    """
    ramp = np.ones(size, dtype=np.float32)
    n = min(overlap, size // 2)
    if n > 0:
        margin = n // 4
        fall = np.full(n, EDGE_WEIGHT, dtype=np.float32)
        width = n - 2 * margin
        t = (np.arange(width, dtype=np.float32) + 0.5) / width
        fall[margin : n - margin] = EDGE_WEIGHT + (1 - EDGE_WEIGHT) * 0.5 * (1 - np.cos(np.pi * t))
        fall[n - margin :] = 1.0
        ramp[:n] = fall
        ramp[size - n :] = np.minimum(ramp[size - n :], fall[::-1])
    return np.outer(ramp, ramp)


class RowStitcher:
    """Accumulates weighted tile outputs; emits finished grid rows to ``emit(row0, values[C, h, W])``."""

    def __init__(self, height: int, width: int, channels: int, tile_size: int, overlap: int, emit):
        self.height, self.width = height, width
        self._weights = blend_window(tile_size, overlap)
        self._emit = emit
        self._top = 0  # grid row of the buffer's first row
        self._sum = np.zeros((channels, tile_size, width), dtype=np.float32)
        self._weight = np.zeros((tile_size, width), dtype=np.float32)

    def add(self, tile: Tile, values: np.ndarray) -> None:
        """Add a tile's output [C, size, size]; tiles must come in row order."""
        if tile.row > self._top:
            self._flush_until(tile.row)
        r0 = tile.row - self._top
        h = min(tile.size, self.height - tile.row)
        w = min(tile.size, self.width - tile.col)
        weights = self._weights[:h, :w]
        self._sum[:, r0 : r0 + h, tile.col : tile.col + w] += values[:, :h, :w] * weights
        self._weight[r0 : r0 + h, tile.col : tile.col + w] += weights

    def finish(self) -> None:
        self._flush_until(self.height)

    def _flush_until(self, row: int) -> None:
        n = min(row, self.height) - self._top
        if n <= 0:
            return
        weight = self._weight[:n]
        done = np.divide(self._sum[:, :n], weight, out=np.zeros_like(self._sum[:, :n]), where=weight > 0)
        self._emit(self._top, done)
        # shift the unfinished rows up and clear the freed rows
        self._sum = np.roll(self._sum, -n, axis=1)
        self._weight = np.roll(self._weight, -n, axis=0)
        self._sum[:, -n:] = 0
        self._weight[-n:] = 0
        self._top += n
