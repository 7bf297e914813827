"""Probabilities to footprints: splitting, holes, area, simplification, squaring, blocks."""

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from spacenet_toolkit.core import progress
from spacenet_toolkit.core.extract import buildings

OPTIONS = buildings.BuildingOptions(threshold=0.5)


def two_touching_squares():
    prob = np.zeros((60, 100), np.float32)
    prob[10:50, 10:48] = 0.9
    prob[10:50, 48:90] = 0.8
    prob[28:32, 46:50] = 0.9  # joined, by a neck
    prob[10:27, 46:50] = 0.0
    prob[33:50, 46:50] = 0.0
    return prob


def test_touching_buildings_are_split_by_distance_seeds():
    labels = buildings.segment(two_touching_squares(), None, OPTIONS, pixel_m=0.3)
    assert len(np.unique(labels)) - 1 == 2
    assert labels[30, 20] != labels[30, 80]


def test_interior_channel_seeds_split_buildings_the_mask_joins():
    prob = np.zeros((40, 80), np.float32)
    prob[5:35, 5:75] = 0.9  # one blob...
    interior = np.zeros_like(prob)
    interior[10:30, 10:35] = 0.9  # ...holding two interiors
    interior[10:30, 45:70] = 0.9
    labels = buildings.segment(prob, interior, OPTIONS, pixel_m=0.3)
    assert len(np.unique(labels)) - 1 == 2
    assert (labels[5:35, 5:75] > 0).all()  # the watershed keeps every building pixel


def test_touching_roofs_part_along_their_shared_wall():
    """A row of touching roofs of different widths and brightness, each with its interior (the roof shrunk by
    3 px, as the model learns it): every roof comes back exactly, the walls where they were drawn, whatever the
    building probability does across the roofs (here a weaker strip just inside each roof's left edge, which a
    flood along the probability took for the wall)."""
    walls = [4, 20, 31, 55, 66, 90]
    prob = np.zeros((36, 96), np.float32)
    interior = np.zeros_like(prob)
    truth = np.zeros(prob.shape, np.int32)
    for number, (left, right) in enumerate(zip(walls, walls[1:]), start=1):
        prob[6:30, left:right] = 0.8 + 0.1 * (number % 2)
        prob[6:30, left + 1] = 0.55
        interior[9:27, left + 3 : right - 3] = 0.9
        truth[6:30, left:right] = number
    labels = buildings.segment(prob, interior, OPTIONS, pixel_m=0.3)
    pairs = {(int(a), int(b)) for a, b in zip(labels[truth > 0], truth[truth > 0])}
    assert len(pairs) == len(walls) - 1 and (labels > 0).sum() == (truth > 0).sum()  # one label per roof, exactly


def test_small_holes_are_filled_and_courtyards_kept():
    prob = np.zeros((120, 120), np.float32)
    prob[10:110, 10:110] = 0.9
    prob[20:22, 20:22] = 0  # 0.36 m2 at 0.3 m: noise
    prob[40:80, 40:80] = 0  # 144 m2: a courtyard
    labels = buildings.segment(prob, None, OPTIONS, pixel_m=0.3)
    assert labels[21, 21] > 0 and labels[60, 60] == 0


def test_minimum_area_simplify_and_score():
    prob = np.zeros((80, 80), np.float32)
    prob[10:40, 10:40] = 0.8  # 900 px = 81 m2 at 0.3 m
    prob[60:64, 60:64] = 0.9  # 16 px = 1.44 m2
    found = buildings.footprints_on_grid(
        lambda r, c, h, w: (prob[r : r + h, c : c + w], None), 80, 80, OPTIONS, 0.3
    )
    options = buildings.BuildingOptions(min_area_m2=2.0, simplify_m=0.3)
    kept = [f for f in (buildings.finish(f, options, 0.09, 0.3) for f in found) if f is not None]
    assert len(found) == 2 and len(kept) == 1
    assert kept[0].score == pytest.approx(0.8)
    assert kept[0].geometry.equals(box(10, 10, 40, 40))
    surer = buildings.BuildingOptions(min_score=0.85)  # the mean probability: 0.8 and 0.9
    assert [f.score for f in found if buildings.finish(f, surer, 0.09, 0.3) is not None] == [pytest.approx(0.9)]


def test_regularize_squares_a_ragged_rectangle_and_an_l_shape():
    ragged = Polygon([(0, 0), (10, 0.4), (10.2, 5), (9.9, 6), (0.3, 6.2), (-0.2, 3)])
    square = buildings.regularize(ragged)
    assert len(square.exterior.coords) == 5
    ell = Polygon([(0, 0), (20, 0.3), (20.2, 8), (8.1, 8.2), (7.9, 20), (0.2, 20.1)])
    squared = buildings.regularize(ell)
    coords = np.array(squared.exterior.coords)
    edges = np.diff(coords, axis=0)
    angles = np.degrees(np.arctan2(edges[:, 1], edges[:, 0]))
    turns = np.abs((np.diff(np.append(angles, angles[0])) + 180) % 180)
    assert len(coords) == 7  # six corners
    assert np.allclose(np.minimum(turns, 180 - turns), 90, atol=1e-6) or np.allclose(turns % 90, 0, atol=1e-6)
    assert squared.intersection(ell).area / squared.union(ell).area > 0.9


def random_buildings(shape, seed):
    """Separate buildings of random size, placement and score on a 50 px lattice, and one long one."""
    rng = np.random.default_rng(seed)
    prob = np.zeros(shape, np.float32)
    for r0 in range(0, shape[0] - 50, 50):
        for c0 in range(0, shape[1] - 50, 50):
            if rng.random() < 0.3:
                continue
            h, w = rng.integers(6, 44, 2)
            r, c = r0 + rng.integers(0, 48 - h), c0 + rng.integers(0, 48 - w)
            prob[r : r + h, c : c + w] = rng.uniform(0.55, 1.0)
    prob[100:400, 250:270] = 0.95  # a long building across blocks, longer than the halo
    return prob


def test_blocks_find_what_one_window_finds():
    prob = random_buildings((500, 600), seed=3)
    read = lambda r, c, h, w: (prob[r : r + h, c : c + w], None)  # noqa: E731
    whole = buildings.footprints_on_grid(read, 500, 600, OPTIONS, 0.3, block=10_000)
    blocked = buildings.footprints_on_grid(read, 500, 600, OPTIONS, 0.3, block=128, halo=48)
    assert len(blocked) == len(whole) > 60
    key = lambda f: (round(f.geometry.centroid.x, 3), round(f.geometry.centroid.y, 3))  # noqa: E731
    for a, b in zip(sorted(whole, key=key), sorted(blocked, key=key)):
        assert a.geometry.symmetric_difference(b.geometry).area < 1e-6
        assert a.pixels == b.pixels and a.score == pytest.approx(b.score)


def test_canceled_block_loop_raises_canceled():
    prob = random_buildings((300, 300), seed=1)
    calls = []
    with pytest.raises(progress.Canceled):
        buildings.footprints_on_grid(
            lambda r, c, h, w: (prob[r : r + h, c : c + w], None), 300, 300, OPTIONS, 0.3, block=100,
            is_canceled=lambda: calls.append(1) or len(calls) > 2,
        )
    assert len(calls) == 3
