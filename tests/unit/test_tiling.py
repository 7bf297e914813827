"""Tiles cover the grid, and stitching returns exactly what the tiles agree on, a tile row at a time."""

import numpy as np
import pytest

from spacenet_toolkit.core.extract import tiling


@pytest.mark.parametrize("length, size, overlap", [(1000, 256, 32), (256, 256, 32), (100, 256, 32), (513, 256, 0)])
def test_positions_cover_the_axis_and_its_borders_on_the_alignment(length, size, overlap):
    pad = tiling.border(overlap, 32)
    starts = tiling.positions(length, size, overlap, align=32)
    covered = np.zeros(length + 2 * pad + size, bool)
    for s in starts:
        covered[s + pad : s + pad + size] = True
    assert covered[: length + 2 * pad].all()
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))
    assert starts[0] == -pad and all((s + pad) % 32 == 0 for s in starts)


def test_blend_window_tapers_to_a_small_positive_edge():
    w = tiling.blend_window(64, 16)
    assert w[32, 32] == 1 and 0 < w[0, 0] < 1e-3 + 1e-9
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])


@pytest.mark.parametrize("height, width, size, overlap", [(700, 530, 128, 32), (90, 70, 128, 16), (256, 256, 128, 64)])
def test_stitching_tiles_cut_from_a_field_gives_the_field_back(height, width, size, overlap):
    rng = np.random.default_rng(1)
    field = rng.random((2, height, width)).astype(np.float32)
    pad = size + tiling.border(overlap)  # tiles start up to a border before the grid and may end past it
    padded = np.zeros((2, height + 2 * pad, width + 2 * pad), np.float32)
    padded[:, pad : pad + height, pad : pad + width] = field
    out = np.full((2, height, width), -1, np.float32)
    emitted = []

    def emit(row0, values):
        emitted.append((row0, values.shape[1]))
        out[:, row0 : row0 + values.shape[1]] = values

    stitcher = tiling.RowStitcher(height, width, 2, size, overlap, emit)
    plan = tiling.tiles(height, width, size, overlap)
    for tile in plan:
        r, c = tile.row + pad, tile.col + pad
        stitcher.add(tile, padded[:, r : r + size, c : c + size])
    stitcher.finish()
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-6)
    # rows are emitted in order, each once, never more than a tile at a time
    assert [r for r, _ in emitted] == list(np.cumsum([0] + [n for _, n in emitted])[:-1])
    assert max(n for _, n in emitted) <= size


def test_blending_averages_disagreeing_tiles_smoothly():
    """Two tiles saying 0 and 1 meet in a ramp, not a step."""
    size, overlap = 64, 32
    out = np.zeros((1, 64, 96), np.float32)

    def emit(row0, values):
        out[:, row0 : row0 + values.shape[1]] = values

    stitcher = tiling.RowStitcher(64, 96, 1, size, overlap, emit)
    plan = tiling.tiles(64, 96, size, overlap)
    first = min(tile.col for tile in plan)
    for tile in plan:
        stitcher.add(tile, np.full((1, size, size), 0.0 if tile.col == first else 1.0, np.float32))
    stitcher.finish()
    row = out[0, 32]
    assert row[0] == 0 and row[-1] == 1
    steps = np.diff(row)
    assert (steps >= -1e-6).all() and steps.max() < 0.3
    assert ((row > 0.01) & (row < 0.99)).sum() >= 4  # a cross-fade over several pixels
