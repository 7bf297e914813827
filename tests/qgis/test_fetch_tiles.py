"""spacenet:fetchtiles inside QGIS against the seeded loopback bucket: outputs, loading, errors, cancel."""

from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)

from spacenet_toolkit.core.fetch import catalog

ALGORITHM = "spacenet:fetchtiles"
VEGAS = ("SN2_buildings", "train", "AOI_2_Vegas")


def run(parameters, feedback=None, context=None):
    import processing

    return processing.run(ALGORITHM, parameters, feedback=feedback or QgsProcessingFeedback(), context=context)


def base_parameters(bucket, tmp_path, **overrides):
    values = {"DATASET": "SN2_buildings", "AOI": "AOI_2_Vegas", "SPLIT": "train", "PRODUCTS": ["PS-RGB", "labels"],
              "ENDPOINT": bucket.endpoint, "OUTPUT_FOLDER": str(tmp_path / "tiles"),
              "TILE_INDEX": str(tmp_path / "index.gpkg"), "LOAD_OUTPUTS": False}
    values.update(overrides)
    return values


def extent_in_web_mercator(bucket, first=200, count=4):
    """A canvas-like extent in EPSG:3857 over a few filler tiles, and the tile ids it meets."""
    footprints = bucket.manifest.tile_footprints(*VEGAS)
    ids = sorted(footprints, key=catalog.natural_key)[first:first + count]
    rectangle = QgsRectangle(min(footprints[i][0] for i in ids) + 1e-5, min(footprints[i][1] for i in ids) + 1e-5,
                             max(footprints[i][2] for i in ids) - 1e-5, max(footprints[i][3] for i in ids) - 1e-5)
    to_mercator = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"),
                                         QgsCoordinateReferenceSystem("EPSG:3857"), QgsProject.instance())
    mercator = to_mercator.transformBoundingBox(rectangle)
    text = f"{mercator.xMinimum()},{mercator.xMaximum()},{mercator.yMinimum()},{mercator.yMaximum()} [EPSG:3857]"
    return text, ids


def test_an_extent_in_any_crs_fetches_its_tiles_and_writes_the_tile_index(provider, bucket, tmp_path):
    extent, ids = extent_in_web_mercator(bucket)
    results = run(base_parameters(bucket, tmp_path, EXTENT=extent, MAX_TILES=0))
    index = QgsVectorLayer(results["TILE_INDEX"], "index", "ogr")
    rows = [feature.attributes() for feature in index.getFeatures()]
    names = index.fields().names()
    assert set(ids) <= {row[names.index("tile_id")] for row in rows}
    assert results["TILE_COUNT"] == len({row[names.index("tile_id")] for row in rows})
    assert results["OUTPUT_FOLDER"] == str(tmp_path / "tiles")
    for feature in index.getFeatures():
        assert feature["status"] == "downloaded"
        assert Path(feature["local_path"]).read_bytes() == bucket.manifest.objects[feature["key"]]
        assert feature.geometry().boundingBox().width() > 0
    assert index.crs().authid() == "EPSG:4326"
    assert {feature["product"] for feature in index.getFeatures()} == {"PS-RGB", "labels"}


def test_max_tiles_caps_the_first_tiles_of_the_aoi(provider, bucket, tmp_path):
    results = run(base_parameters(bucket, tmp_path, MAX_TILES=2, PRODUCTS=["labels"]))
    assert results["TILE_COUNT"] == 2
    files = sorted((tmp_path / "tiles").rglob("*.geojson"))
    first_two = bucket.manifest.tile_ids(*VEGAS, product="geojson_buildings")[:2]
    assert [f.stem.rsplit("_", 1)[-1] for f in files] == first_two


def test_the_tiles_are_added_to_the_project_in_a_group_with_styled_labels(provider, bucket, tmp_path,
                                                                            qgis_new_project):
    project = QgsProject.instance()
    context = QgsProcessingContext()
    context.setProject(project)
    run(base_parameters(bucket, tmp_path, DATASET="SN3_roads", PRODUCTS=["PS-RGB", "PAN", "labels"],
                        LOAD_OUTPUTS=True), context=context)
    group = project.layerTreeRoot().findGroup("SpaceNet SN3_roads AOI_2_Vegas (train)")
    assert group is not None
    layers = [node.layer() for node in group.findLayers()]
    labels = [layer for layer in layers if isinstance(layer, QgsVectorLayer)]
    rasters = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
    assert len(labels) == 2 and len(rasters) == 2
    assert layers.index(labels[0]) < layers.index(rasters[0])  # labels drawn above the imagery
    symbol = labels[0].renderer().symbol()
    assert symbol.color().name() == "#ff7f00"  # road centerlines in orange
    assert all(layer.isValid() for layer in layers)


def test_errors_name_the_problem(provider, bucket, tmp_path):
    with pytest.raises(QgsProcessingException, match="SN4_buildings has no AOI 'AOI_2_Vegas'"):
        run(base_parameters(bucket, tmp_path, DATASET="SN4_buildings"))
    with pytest.raises(QgsProcessingException, match="cover longitude"):
        run(base_parameters(bucket, tmp_path, EXTENT="2.0,2.1,48.0,48.1 [EPSG:4326]"))
    with pytest.raises(QgsProcessingException, match=r"Cannot reach http://127\.0\.0\.1:9/"):
        run(base_parameters(bucket, tmp_path, ENDPOINT="http://127.0.0.1:9/spacenet-dataset"))
    with pytest.raises(QgsProcessingException, match="404"):
        run(base_parameters(bucket, tmp_path, ENDPOINT=bucket.origin + "/not-the-bucket"))
    assert not (tmp_path / "index.gpkg").exists()


def test_cancel_stops_the_downloads_and_writes_no_index(provider, bucket, tmp_path):
    import fault_proxy

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda percent: percent > 45 and feedback.cancel())
    with fault_proxy.FaultProxy(bucket.origin, bytes_per_second=1_000_000) as slow:
        results = run(base_parameters(bucket, tmp_path, DATASET="SN3_roads", PRODUCTS=["PS-RGB", "PAN"],
                                      ENDPOINT=slow.endpoint_for(bucket.endpoint)), feedback=feedback)
    assert results == {}
    assert not (tmp_path / "index.gpkg").exists()
    assert list((tmp_path / "tiles").rglob("*.part")), "partial downloads stay to be resumed"
    for tif in (tmp_path / "tiles").rglob("*.tif"):
        key = "spacenet/" + tif.relative_to(tmp_path / "tiles").as_posix()
        assert tif.read_bytes() == bucket.manifest.objects[key]


def test_the_menu_action_opens_the_dialog_on_the_canvas_extent(provider, qgis_iface, qgis_canvas):
    from spacenet_toolkit.plugin import SpaceNetToolkitPlugin

    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    qgis_canvas.setExtent(QgsRectangle(-12835000, 4332000, -12833000, 4334000))
    plugin = SpaceNetToolkitPlugin(qgis_iface)
    defaults = plugin.dialog_defaults(ALGORITHM)
    values = defaults["EXTENT"].split(" ")[0].split(",")
    assert defaults["EXTENT"].endswith("[EPSG:3857]")
    extent = qgis_canvas.extent()
    assert [float(v) for v in values] == pytest.approx([extent.xMinimum(), extent.xMaximum(), extent.yMinimum(),
                                                        extent.yMaximum()])
    assert plugin.dialog_defaults("spacenet:scoref1") == {}
