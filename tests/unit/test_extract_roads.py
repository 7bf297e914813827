"""The road extraction engine end to end: a raster with known roads gives the exact graph, tiles or not."""

from collections import Counter

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from spacenet_toolkit.core.extract import extract

PIXEL_M = 0.3
SIZE = 900  # 270 m square
ROAD_PX = 13  # 4 m wide


@pytest.fixture(scope="module")
def road_model(tmp_path_factory):
    """Bright means road: the brightness test model with a roads card (channel 0 road, 1 unused)."""
    import onnx_models

    card = onnx_models.card(name="bright_roads", task="roads",
                            input={"tile_size": 256, "overlap": 96, "gsd_m": PIXEL_M},
                            outputs={"channels": ["road", "context"]}, defaults={"threshold": 0.5})
    return str(onnx_models.brightness_model(tmp_path_factory.mktemp("models") / "roads.onnx", card, context=3))


def paint(path, segments, crs="EPSG:32611"):
    """A uint8 RGB GeoTIFF at 0.3 m: dark ground with bright 4 m roads along the given (row, col) segments."""
    image = np.full((SIZE, SIZE), 40, np.uint8)
    half = ROAD_PX // 2
    for (r0, c0), (r1, c1) in segments:
        rows, cols = sorted((r0, r1)), sorted((c0, c1))
        image[rows[0] - half : rows[1] + half + 1, cols[0] - half : cols[1] + half + 1] = 220
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=3, dtype="uint8", crs=crs,
                   transform=from_origin(500_000, 4_000_000, PIXEL_M, PIXEL_M))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([image] * 3))
    return path


def degrees(network):
    return Counter(node.degree for node in network.nodes)


def assert_clean(network):
    """No zero-length edges and no two edges along the same road."""
    assert all(edge.length_m > 0 for edge in network.edges)
    pairs = [tuple(sorted((e.start, e.end))) for e in network.edges]
    assert len(pairs) == len(set(pairs))


# a "#" street grid inside the tile: two avenues crossing two streets, every arm ending before the edge
GRID = [((150, 100), (150, 800)), ((600, 100), (600, 800)), ((100, 250), (800, 250)), ((100, 650), (800, 650))]


def test_a_street_grid_becomes_its_exact_graph(tmp_path, road_model):
    result = extract.extract_roads(extract.RoadRequest(str(paint(tmp_path / "grid.tif", GRID)), road_model))
    network = result.network
    assert degrees(network) == {4: 4, 1: 8}  # four crossings, eight dead ends
    assert len(network.edges) == 12  # 4 between crossings, 8 arms
    assert_clean(network)
    total = sum(edge.length_m for edge in network.edges)
    assert total == pytest.approx(4 * 700 * PIXEL_M, rel=0.03)  # four 210 m roads
    # on the map: the crossing at row 150, column 250 lies at its coordinates in the raster's CRS
    junctions = [node.geometry for node in network.nodes if node.degree == 4]
    x, y = 500_000 + 250.5 * PIXEL_M, 4_000_000 - 150.5 * PIXEL_M
    assert min(j.distance(type(j)(x, y)) for j in junctions) < 1.0
    assert result.settings["threshold"] == 0.5 and result.model_name == "bright_roads"


def test_tiles_and_blocks_do_not_change_the_graph(tmp_path, road_model):
    raster = str(paint(tmp_path / "grid.tif", GRID))
    whole = extract.extract_roads(extract.RoadRequest(raster, road_model, tile_size=1024)).network
    pieces = extract.extract_roads(extract.RoadRequest(raster, road_model, tile_size=128, block=200)).network
    assert degrees(pieces) == degrees(whole) and len(pieces.edges) == len(whole.edges)
    for a, b in zip(sorted(whole.edges, key=lambda e: e.geometry.centroid.coords[0]),
                    sorted(pieces.edges, key=lambda e: e.geometry.centroid.coords[0])):
        assert a.geometry.hausdorff_distance(b.geometry) < 1.0  # metres


def test_a_short_break_is_bridged_and_a_long_one_is_not(tmp_path, road_model):
    # one east-west road broken by 5 m (bridged), another broken by 40 m (two roads)
    roads = [((200, 100), (200, 430)), ((200, 447), (200, 800)),
             ((600, 100), (600, 380)), ((600, 513), (600, 800))]
    network = extract.extract_roads(extract.RoadRequest(str(paint(tmp_path / "gaps.tif", roads)), road_model)).network
    rows = Counter(round(-(e.geometry.centroid.y - 4_000_000) / PIXEL_M / 100) for e in network.edges)
    assert rows == {2: 1, 6: 2}
    assert_clean(network)


def test_probability_raster_and_options_are_recorded(tmp_path, road_model):
    probability = tmp_path / "p.tif"
    result = extract.extract_roads(extract.RoadRequest(str(paint(tmp_path / "grid.tif", GRID)), road_model,
                                                       probability_path=str(probability), options={
                                                           "min_spur_length_m": 5, "max_gap_m": 0, "simplify_m": 0.5}))
    with rasterio.open(probability) as src:
        assert src.descriptions == ("road probability",) and src.dtypes == ("float32",)
        values = src.read(1)
    assert values.max() > 0.9 and values.min() < 0.1
    assert {k: result.settings[k] for k in ("min_spur_length_m", "max_gap_m", "simplify_m")} == {
        "min_spur_length_m": 5, "max_gap_m": 0, "simplify_m": 0.5}


def test_cancel_raises_and_leaves_no_probability(tmp_path, road_model):
    probability = tmp_path / "p.tif"
    with pytest.raises(extract.Canceled):
        extract.extract_roads(extract.RoadRequest(str(paint(tmp_path / "grid.tif", GRID)), road_model,
                                                  probability_path=str(probability), tile_size=128, batch_size=1),
                              is_canceled=lambda: True)
    assert not probability.exists() and not list(tmp_path.glob(".*partial"))
