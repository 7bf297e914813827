"""Probabilities to a road graph: topology of known roads, spurs, gaps, loops, blocks, nodata, metres, map."""

import math
from collections import Counter

import numpy as np
import pytest
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from shapely.geometry import LineString, Point, Polygon

from spacenet_toolkit.core import progress
from spacenet_toolkit.core.extract import roads

PIXEL_M = 0.3
OPTIONS = roads.RoadOptions()


def px(metres: float) -> float:
    return metres / PIXEL_M


def draw(lines, shape, width_m=4.0, pixel_m=PIXEL_M):
    """A road probability raster: 0.9 within width_m / 2 of the centerlines (pixel coordinates, x = column,
    y = row), 0.05 elsewhere: SpaceNet's 2 m buffer around each road."""
    mask = features.rasterize([(line.buffer(width_m / 2 / pixel_m), 1) for line in lines], out_shape=shape)
    return np.where(mask > 0, 0.9, 0.05).astype(np.float32)


def extract(prob, options=OPTIONS, pixel_m=PIXEL_M, valid=None):
    network = roads.centerlines(prob, options, pixel_m, valid=valid)
    assert_clean(network, pixel_m)
    return network


def assert_clean(network: roads.RoadNetwork, pixel_m: float = PIXEL_M) -> None:
    """Every output holds: no zero-length, duplicate or flat-loop edges, nodes where edges meet, no
    pass-through nodes, degrees that count the edges."""
    degree = Counter()
    seen = {}
    for edge in network.edges:
        coords = np.array(edge.geometry.coords)
        assert edge.length_m > 0 and edge.geometry.length > 0
        assert edge.length_m == pytest.approx(edge.geometry.length * pixel_m, rel=1e-9)
        assert np.allclose(coords[0], network.nodes[edge.start].geometry.coords[0])
        assert np.allclose(coords[-1], network.nodes[edge.end].geometry.coords[0])
        if edge.start == edge.end:
            assert Polygon(coords).area > 0
        key = tuple(sorted((edge.start, edge.end)))
        for other in seen.get(key, []):
            assert other.hausdorff_distance(edge.geometry) > 1.0, "duplicate edge"
        seen.setdefault(key, []).append(edge.geometry)
        degree[edge.start] += 1
        degree[edge.end] += 1
    loops = {edge.start for edge in network.edges if edge.start == edge.end}
    for number, node in enumerate(network.nodes):
        assert node.degree == degree[number] > 0
        assert node.degree != 2 or number in loops, "a pass-through node was left"


def degrees(network) -> Counter:
    return Counter(node.degree for node in network.nodes)


def test_a_straight_road_is_one_edge_of_its_length():
    network = extract(draw([LineString([(20, 50), (180, 50)])], (100, 200)))
    assert len(network.edges) == 1 and degrees(network) == {1: 2}
    edge = network.edges[0]
    assert edge.length_m == pytest.approx(160 * PIXEL_M, abs=0.7)  # within two pixels
    assert edge.geometry.hausdorff_distance(LineString([(20, 50), (180, 50)])) < 2
    assert len(edge.geometry.coords) == 2  # simplified


def test_a_cross_is_one_junction_of_degree_four():
    network = extract(draw([LineString([(20, 100), (180, 100)]), LineString([(100, 20), (100, 180)])], (200, 200)))
    assert len(network.edges) == 4 and degrees(network) == {4: 1, 1: 4}
    junction = next(node for node in network.nodes if node.degree == 4)
    assert junction.geometry.distance(Point(100, 100)) < 2
    # thinning stops a pixel or three short of a road's rounded end
    assert all(edge.length_m == pytest.approx(80 * PIXEL_M, abs=1.0) for edge in network.edges)


def test_a_diagonal_cross_and_a_t():
    diagonal = extract(draw([LineString([(20, 20), (180, 180)]), LineString([(20, 180), (180, 20)])], (200, 200)))
    assert len(diagonal.edges) == 4 and degrees(diagonal) == {4: 1, 1: 4}
    t = extract(draw([LineString([(20, 100), (180, 100)]), LineString([(100, 100), (100, 180)])], (200, 200)))
    assert len(t.edges) == 3 and degrees(t) == {3: 1, 1: 3}
    junction = next(node for node in t.nodes if node.degree == 3)
    assert junction.geometry.distance(Point(100, 100)) < 2


def test_a_grid_of_three_by_three_streets():
    streets = [LineString([(10, at), (310, at)]) for at in (60, 160, 260)]
    streets += [LineString([(at, 10), (at, 310)]) for at in (60, 160, 260)]
    network = extract(draw(streets, (320, 320)))
    # six streets each cut in four by three crossings: two blocks between crossings and two stubs (15 m)
    assert degrees(network) == {4: 9, 1: 12}
    assert len(network.edges) == 24
    inner = [edge for edge in network.edges if network.nodes[edge.start].degree == network.nodes[edge.end].degree == 4]
    assert len(inner) == 12
    assert all(edge.length_m == pytest.approx(100 * PIXEL_M, abs=2 * PIXEL_M) for edge in inner)


def test_a_short_spur_is_pruned_and_a_long_one_kept():
    main = LineString([(20, 100), (280, 100)])
    short = LineString([(80, 100), (80, 100 + px(6))])  # 6 m from the road's centre: under min_spur_length_m
    long = LineString([(200, 100), (200, 100 + px(20))])
    network = extract(draw([main, short, long], (200, 300)))
    assert len(network.edges) == 3 and degrees(network) == {3: 1, 1: 3}
    junction = next(node for node in network.nodes if node.degree == 3)
    assert junction.geometry.distance(Point(200, 100)) < 2
    spur = min(network.edges, key=lambda edge: edge.length_m)
    assert spur.length_m == pytest.approx(20, abs=2 * PIXEL_M)
    kept_all = extract(draw([main, short, long], (200, 300)), roads.RoadOptions(min_spur_length_m=2))
    assert len(kept_all.edges) == 5 and degrees(kept_all) == {3: 2, 1: 4}


@pytest.mark.parametrize("gap_m, bridged", [(8, True), (20, False)])
def test_a_gap_between_collinear_ends_is_bridged_when_short(gap_m, bridged):
    near = LineString([(20, 100), (120, 100)])
    far = LineString([(120 + px(gap_m), 100), (300 + px(gap_m), 100)])
    network = extract(draw([near, far], (200, 340)))
    if bridged:
        assert len(network.edges) == 1 and degrees(network) == {1: 2}
        assert network.edges[0].length_m == pytest.approx(far.bounds[2] * PIXEL_M - 20 * PIXEL_M, abs=1.0)
    else:
        assert len(network.edges) == 2 and degrees(network) == {1: 4}


def test_ends_that_do_not_point_at_each_other_are_not_bridged():
    east = LineString([(20, 100), (150, 100)])  # ends at (150, 100), heading east
    south = LineString([(170, 0), (170, 80)])  # ends at (170, 80), heading south: 8.5 m away, 45 degrees off
    network = extract(draw([east, south], (200, 300)))
    assert len(network.edges) == 2 and degrees(network) == {1: 4}
    assert extract(draw([east, south], (200, 300)), roads.RoadOptions(gap_angle_deg=50)).edges[0].length_m > 0


@pytest.mark.parametrize("gap_m, bridged", [(9, True), (16, False)])
def test_an_end_pointing_at_a_road_joins_it(gap_m, bridged):
    main = LineString([(20, 100), (280, 100)])
    side = LineString([(150, 100 + px(gap_m)), (150, 300)])  # fades gap_m before the main road's centre
    network = extract(draw([main, side], (320, 300)))
    if bridged:
        assert len(network.edges) == 3 and degrees(network) == {3: 1, 1: 3}
        junction = next(node for node in network.nodes if node.degree == 3)
        assert junction.geometry.distance(Point(150, 100)) < 2
    else:
        assert len(network.edges) == 2 and degrees(network) == {1: 4}


def test_an_oblique_side_road_joins_where_its_line_carried_on_meets_the_road():
    main = LineString([(20, 100), (380, 100)])
    heading = np.radians(50)  # from the main road; its nearest point is 40 degrees off the side road's heading
    tip = np.array([200.0, 100.0]) + px(9) * np.array([np.cos(heading), np.sin(heading)])
    side = LineString([tip, tip + 120 * np.array([np.cos(heading), np.sin(heading)])])
    network = extract(draw([main, side], (300, 400)))
    assert len(network.edges) == 3 and degrees(network) == {3: 1, 1: 3}
    junction = next(node for node in network.nodes if node.degree == 3)
    assert junction.geometry.distance(Point(200, 100)) < 3


def test_an_end_pointing_just_past_a_road_joins_its_nearest_point():
    main = LineString([(20, 100), (200, 100)])
    side = LineString([(205, 100 + px(8)), (205, 290)])  # its line carried on misses the main road's end
    network = extract(draw([main, side], (300, 300)))
    assert len(network.edges) == 1 and degrees(network) == {1: 2}  # one road turning the corner


def test_a_closed_loop_a_lollipop_and_a_roundabout():
    ring = Point(100, 100).buffer(px(18), quad_segs=64).exterior
    loop = extract(draw([ring], (200, 200)))
    assert len(loop.edges) == 1 and degrees(loop) == {2: 1}
    edge = loop.edges[0]
    assert edge.start == edge.end
    assert edge.length_m == pytest.approx(2 * math.pi * 18, rel=0.02)

    lollipop = extract(draw([ring, LineString([(100 + px(18), 100), (290, 100)])], (200, 300)))
    assert len(lollipop.edges) == 2 and degrees(lollipop) == {3: 1, 1: 1}

    # a roundabout 24 m across (its island 314 m2) with four arms: four junctions on a ring of four edges
    circle = Point(150, 150).buffer(px(12), quad_segs=64).exterior
    arms = [LineString([(150 + dx * px(12), 150 + dy * px(12)), (150 + dx * 140, 150 + dy * 140)])
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    roundabout = extract(draw([circle, *arms], (300, 300)))
    assert degrees(roundabout) == {3: 4, 1: 4} and len(roundabout.edges) == 8


def test_a_small_hole_leaves_no_loop():
    prob = draw([LineString([(20, 100), (280, 100)])], (200, 300))
    prob[97:103, 140:150] = 0.1  # 5.4 m2: a car
    network = extract(prob)
    assert len(network.edges) == 1 and degrees(network) == {1: 2}


def city(shape, seed):
    """A blurred, noisy street grid with an avenue, side streets and breaks."""
    rng = np.random.default_rng(seed)
    lines = [LineString([(-10, y), (shape[1] + 10, y + rng.normal(0, 20))]) for y in range(40, shape[0], 130)]
    lines += [LineString([(x, -10), (x + rng.normal(0, 20), shape[0] + 10)]) for x in range(60, shape[1], 150)]
    lines.append(LineString([(0, 0), (shape[1], shape[0] * 0.8)]))
    for _ in range(8):
        x, y = rng.uniform(0, shape[1]), rng.uniform(0, shape[0])
        lines.append(LineString([(x, y), (x + rng.normal(0, 60), y + rng.normal(0, 60))]))
    prob = draw(lines, shape)
    for _ in range(6):  # breaks
        y, x = rng.integers(0, shape[0] - 20), rng.integers(0, shape[1] - 20)
        prob[y : y + 20, x : x + 20] = 0.05
    prob = ndimage.gaussian_filter(prob, 2) + rng.normal(0, 0.08, shape).astype(np.float32)
    return prob


def test_results_do_not_depend_on_the_block_size():
    prob = city((620, 700), seed=3)
    valid = np.ones(prob.shape, bool)
    valid[240:300, 250:500] = False  # a strip without data across a block border
    read = lambda r, c, h, w: (prob[r : r + h, c : c + w], valid[r : r + h, c : c + w])  # noqa: E731
    whole = roads.centerlines_on_grid(read, 620, 700, OPTIONS, PIXEL_M, block=10_000)
    reports = []
    blocked = roads.centerlines_on_grid(read, 620, 700, OPTIONS, PIXEL_M, block=256,
                                        report=lambda fraction, message: reports.append(fraction))
    assert len(reports) == 9 and reports[-1] == 1.0
    assert_clean(whole)
    assert_clean(blocked)
    assert len(whole.edges) > 30 and degrees(whole)[3] + degrees(whole)[4] > 10
    assert [n.degree for n in blocked.nodes] == [n.degree for n in whole.nodes]
    assert all(a.geometry.distance(b.geometry) < 1e-9 for a, b in zip(blocked.nodes, whole.nodes))
    assert [(e.start, e.end) for e in blocked.edges] == [(e.start, e.end) for e in whole.edges]
    for a, b in zip(blocked.edges, whole.edges):
        assert a.geometry.hausdorff_distance(b.geometry) < 1e-6
        assert a.length_m == pytest.approx(b.length_m)


def test_nothing_is_inferred_where_the_raster_holds_no_data():
    prob = draw([LineString([(20, 100), (280, 100)])], (200, 300))
    valid = np.ones(prob.shape, bool)
    valid[:, 150:] = False
    network = extract(prob, valid=valid)
    assert len(network.edges) == 1
    assert network.edges[0].geometry.bounds[2] <= 150
    assert extract(prob, valid=np.zeros(prob.shape, bool)).edges == []
    assert extract(np.zeros((50, 50), np.float32)) == roads.RoadNetwork([], [])


def test_a_road_is_bridged_across_a_break_but_not_across_missing_data():
    prob = draw([LineString([(20, 100), (280, 100)])], (200, 300))
    strip = (slice(None), slice(145, 155))  # 3 m across the road
    broken = prob.copy()
    broken[strip] = 0.05
    assert len(extract(broken).edges) == 1
    valid = np.ones(prob.shape, bool)
    valid[strip] = False
    network = extract(prob, valid=valid)
    assert len(network.edges) == 2 and degrees(network) == {1: 4}
    assert all(not edge.geometry.crosses(LineString([(145, 0), (145, 200)])) for edge in network.edges)
    pothole = np.ones(prob.shape, bool)
    pothole[98:102, 148:152] = False  # not filled like a small hole: the road goes round it
    assert all(edge.geometry.distance(Point(150, 100)) >= 2 for edge in extract(prob, valid=pothole).edges)


def test_lengths_in_metres_scale_with_the_pixel_size():
    prob = draw([LineString([(20, 100), (280, 100)]), LineString([(150, 20), (150, 180)])], (200, 300))
    fine = extract(prob, pixel_m=0.3)
    coarse = extract(prob, pixel_m=0.6)
    assert degrees(fine) == degrees(coarse) == {4: 1, 1: 4}
    assert [2 * e.length_m for e in fine.edges] == pytest.approx([e.length_m for e in coarse.edges])


def test_network_on_the_map():
    network = extract(draw([LineString([(20, 50), (180, 50)])], (100, 200)))
    transform = Affine(0.3, 0, 500_000, 0, -0.3, 4_000_000)
    placed = roads.network_on_map(network, transform)
    start = network.nodes[network.edges[0].start].geometry
    assert placed.nodes[0].geometry.coords[0] == pytest.approx((500_000 + 0.3 * start.x, 4_000_000 - 0.3 * start.y))
    assert placed.edges[0].geometry.length == pytest.approx(placed.edges[0].length_m)
    assert placed.edges[0].start == network.edges[0].start and placed.nodes[0].degree == 1


def test_canceled_block_loop_raises_canceled():
    prob = city((300, 300), seed=1)
    calls = []
    with pytest.raises(progress.Canceled):
        roads.centerlines_on_grid(
            lambda r, c, h, w: (prob[r : r + h, c : c + w], None), 300, 300, OPTIONS, PIXEL_M, block=100,
            is_canceled=lambda: calls.append(1) or len(calls) > 2,
        )
    assert len(calls) == 3
