"""Overlapping tiles over a grid and their seamless, memory-bounded stitching.

Tiles are visited row by row. Each tile's output is weighted by a window that ignores the outer
part of the overlap and tapers across its middle, so neighbouring tiles fade into each other
instead of meeting at a seam. Once a tile row is
done, the grid rows above the next tile row can receive nothing more: they are normalised and
handed on, so memory holds one tile row of the grid, never the whole grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMIT_ROWS = 256
EDGE_WEIGHT = 1e-3  # weight at a tile's outer edge: small, never zero (a grid border has no neighbour)


@dataclass(frozen=True)
class Tile:
    row: int  # top-left pixel on the grid
    col: int
    size: int


def border(overlap: int, align: int = 1) -> int:
    """Pixels the tiles reach beyond each grid edge: half the overlap, on the alignment.

    Then a grid edge lies as deep inside its tiles as any seam between two tiles, instead of at a tile's
    border where the model knows least; the reach is filled by mirroring the grid's own pixels.
    """
    half = overlap // 2
    return -(-half // align) * align if half else 0


def positions(length: int, size: int, overlap: int, align: int = 1) -> list:
    """Start offsets of tiles of ``size`` covering ``length`` plus a border on each side, sharing at
    least ``overlap`` pixels.

    Starts are on multiples of ``align``: a network that pools by 2**k sees the ground at the same phase
    in every tile only when tiles start on multiples of 2**k, else neighbours disagree. The last tile
    may reach past the far border rather than start off the alignment.
    """
    pad = border(overlap, align)
    span = length + 2 * pad
    stride = max(align, (size - overlap) // align * align)
    count = 1 if span <= size else -(-(span - size) // stride) + 1
    return [i * stride - pad for i in range(count)]


def tiles(height: int, width: int, size: int, overlap: int, align: int = 1) -> list:
    """Tiles covering the grid and its borders in row order (see ``positions``)."""
    rows, cols = positions(height, size, overlap, align), positions(width, size, overlap, align)
    return [Tile(r, c, size) for r in rows for c in cols]


def blend_window(size: int, overlap: int) -> np.ndarray:
    """[size, size] weights that hand over from one tile to the next across their overlap.

    The outer 3/8 of the overlap weighs (almost) nothing: there the model sees the tile's edge, not the
    ground beyond. The middle quarter falls along a raised cosine, so neighbours cross-fade.
    """
    ramp = np.ones(size, dtype=np.float32)
    n = min(overlap, size // 2)
    if n > 0:
        margin = 3 * n // 8
        width = max(1, n - 2 * margin)
        fall = np.full(n, EDGE_WEIGHT, dtype=np.float32)
        t = (np.arange(width, dtype=np.float32) + 0.5) / width
        fall[margin : margin + width] = EDGE_WEIGHT + (1 - EDGE_WEIGHT) * 0.5 * (1 - np.cos(np.pi * t))
        fall[margin + width :] = 1.0
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
        """Add a tile's output [C, size, size]; tiles must come in row order. What lies off the grid is dropped."""
        if tile.row > self._top:
            self._flush_until(tile.row)
        top, left = max(tile.row, 0), max(tile.col, 0)
        bottom, right = min(tile.row + tile.size, self.height), min(tile.col + tile.size, self.width)
        if bottom <= top or right <= left:
            return
        inside = (slice(top - tile.row, bottom - tile.row), slice(left - tile.col, right - tile.col))
        weights = self._weights[inside]
        rows = slice(top - self._top, bottom - self._top)
        self._sum[:, rows, left:right] += values[(slice(None), *inside)] * weights
        self._weight[rows, left:right] += weights

    def finish(self) -> None:
        self._flush_until(self.height)

    def _flush_until(self, row: int) -> None:
        n = min(row, self.height) - self._top
        if n <= 0:
            return
        # emitted in slices of at most EMIT_ROWS rows: the normalised copy stays small on wide grids
        for first in range(0, n, EMIT_ROWS):
            rows = slice(first, min(n, first + EMIT_ROWS))
            weight = self._weight[rows]
            done = np.divide(self._sum[:, rows], weight, out=np.zeros_like(self._sum[:, rows]), where=weight > 0)
            self._emit(self._top + first, done)
        # shift the unfinished rows up in place (no copy of the buffer) and clear the freed rows
        keep = self._weight.shape[0] - n
        self._sum[:, :keep] = self._sum[:, n:]
        self._weight[:keep] = self._weight[n:]
        self._sum[:, keep:] = 0
        self._weight[keep:] = 0
        self._top += n


@dataclass(frozen=True)
class HaloBlock:
    """A block of a grid (its core, which owns the results) and the window read around it (core plus halo,
    clipped to the grid); rows and columns as (start, stop)."""

    rows: tuple
    cols: tuple
    window_rows: tuple
    window_cols: tuple

    def read_window(self, read):
        """``read(row, col, height, width)`` over the window."""
        (r0, r1), (c0, c1) = self.window_rows, self.window_cols
        return read(r0, c0, r1 - r0, c1 - c0)

    def core_of(self, array):
        """The core's part of an array read over the window."""
        return array[self.rows[0] - self.window_rows[0] : self.rows[1] - self.window_rows[0],
                     self.cols[0] - self.window_cols[0] : self.cols[1] - self.window_cols[0]]


def halo_blocks(height: int, width: int, block: int, halo: int) -> list:
    """Blocks of ``block`` pixels covering the grid row by row, each with a window ``halo`` pixels wider."""
    return [
        HaloBlock((r, min(r + block, height)), (c, min(c + block, width)),
                  (max(0, r - halo), min(height, r + block + halo)), (max(0, c - halo), min(width, c + block + halo)))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]
