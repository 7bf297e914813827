"""spacenet:extractroads inside QGIS: outputs, fields, nodes, styling, errors, cancel."""

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer, QgsWkbTypes
from rasterio.transform import from_origin

ALGORITHM = "spacenet:extractroads"
ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback())


@pytest.fixture(scope="module")
def road_model(tmp_path_factory):
    import onnx_models

    card = onnx_models.card(name="bright_roads", task="roads", input={"tile_size": 256, "overlap": 96, "gsd_m": 0.3},
                            outputs={"channels": ["road", "context"]}, defaults={"threshold": 0.5})
    return str(onnx_models.brightness_model(tmp_path_factory.mktemp("models") / "roads.onnx", card, context=3))


@pytest.fixture(scope="module")
def plus_sign(tmp_path_factory):
    """270 m square, UTM 11N: two bright 4 m roads crossing in the middle, each ending 30 m from the edge."""
    image = np.full((900, 900), 40, np.uint8)
    image[444:457, 100:800] = 220
    image[100:800, 444:457] = 220
    path = tmp_path_factory.mktemp("rasters") / "plus.tif"
    with rasterio.open(path, "w", driver="GTiff", width=900, height=900, count=3, dtype="uint8", crs="EPSG:32611",
                       transform=from_origin(500_000, 4_000_000, 0.3, 0.3)) as dst:
        dst.write(np.stack([image] * 3))
    return str(path)


def test_centerlines_and_nodes_with_their_fields(provider, plus_sign, road_model, tmp_path):
    result = run({"INPUT": plus_sign, "MODEL": road_model, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "roads.gpkg"),
                  "OUTPUT_NODES": str(tmp_path / "nodes.gpkg"), "OUTPUT_PROBABILITY": str(tmp_path / "p.tif")})
    lines = QgsVectorLayer(result["OUTPUT"], "roads")
    nodes = QgsVectorLayer(result["OUTPUT_NODES"], "nodes")
    assert lines.isValid() and nodes.isValid() and lines.crs().authid() == "EPSG:32611"
    assert QgsWkbTypes.geometryType(lines.wkbType()) == QgsWkbTypes.GeometryType.LineGeometry
    assert [f.name() for f in lines.fields()][-7:] == ["id", "length_m", "start_node", "end_node", "model",
                                                       "model_version", "device"]
    assert lines.featureCount() == result["ROAD_COUNT"] == 4
    edges = list(lines.getFeatures())
    assert all(f["length_m"] == pytest.approx(f.geometry().length(), rel=0.01) for f in edges)
    assert result["ROAD_LENGTH_KM"] == pytest.approx(0.42, rel=0.03)  # two 210 m roads
    kinds = sorted(f["kind"] for f in nodes.getFeatures())
    assert kinds == ["dead end"] * 4 + ["junction"]
    junction = next(f for f in nodes.getFeatures() if f["kind"] == "junction")
    assert junction["degree"] == 4 and {f["start_node"] for f in edges} | {f["end_node"] for f in edges} >= {
        junction["id"]}
    assert result["DEVICE_USED"] == "CPU" and result["MODEL_NAME"] == "bright_roads"
    assert (tmp_path / "p.tif").exists()


def test_nodes_are_optional(provider, plus_sign, road_model):
    result = run({"INPUT": plus_sign, "MODEL": road_model, "OUTPUT": "memory:"})
    assert "OUTPUT_NODES" not in result and result["OUTPUT"].featureCount() == 4


def test_the_loaded_layer_is_styled_and_records_the_run(provider):
    from qgis.core import QgsLineSymbol

    from spacenet_toolkit.qgis_adapter.styles import RoadStyler

    layer = QgsVectorLayer("LineString?crs=EPSG:32611", "roads", "memory")
    RoadStyler.for_run({"model": "m", "device": "CPU", "threshold": 0.5}).postProcessLayer(layer, None, None)
    assert isinstance(layer.renderer().symbol(), QgsLineSymbol)
    assert "spacenet:extractroads" in layer.metadata().abstract() and "threshold: 0.5" in layer.metadata().abstract()


def test_errors_name_the_problem(provider, fixtures, road_model, plus_sign):
    with pytest.raises(QgsProcessingException, match="No model 'nowhere': give the name of a shipped model"):
        run({"INPUT": plus_sign, "MODEL": "nowhere", "OUTPUT": "memory:"})
    with pytest.raises(QgsProcessingException, match="does not overlap the raster"):
        run({"INPUT": plus_sign, "MODEL": road_model, "EXTENT": "0,1,0,1 [EPSG:4326]", "OUTPUT": "memory:"})


class CancelAfter(QgsProcessingFeedback):
    def __init__(self, progress):
        super().__init__()
        self.progressChanged.connect(lambda value: value >= progress and self.cancel())


def test_cancel_writes_nothing(provider, plus_sign, road_model, tmp_path):
    result = run({"INPUT": plus_sign, "MODEL": road_model, "OUTPUT": str(tmp_path / "roads.gpkg"), "BATCH_SIZE": 1,
                  "OUTPUT_PROBABILITY": str(tmp_path / "p.tif")}, feedback=CancelAfter(1))
    assert result == {}
    assert not list(tmp_path.iterdir())
