"""Extraction from WMTS and WMS layers (issue 21), served on loopback by tests/support/ogc_server.py from the same
SpaceNet tile as the source file: the footprints match the file's, the outputs name the source and its
attribution, and the WMS is asked for the model's own pixels.

The shipped buildings model is the referee here: the brightness test model thresholds a local mean of stretched
values, so a stretch one grey level apart (a sample read from a service's level instead of the file's pixels)
merges or splits its blobs and moves its F1 against the file anywhere from 0.3 to 0.93, whatever the pixels."""

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import rasterio
from qgis.core import QgsProject, QgsRasterLayer
from web_layers import ALGORITHM, Log, cache_folder, extent_of, f1, polygons, run


@pytest.fixture(scope="module")
def web(fixtures, tmp_path_factory):
    import web_tiles

    return web_tiles.build(fixtures, tmp_path_factory.mktemp("web"))


@pytest.fixture
def fresh_cache(tmp_path):
    """Each test starts with an empty tile cache, so the server sees every tile the run needs."""
    with cache_folder(tmp_path / "cache") as folder:
        yield folder


@pytest.fixture(scope="module")
def model(repo_root):
    return str(repo_root / "models" / "buildings_unet_small.onnx")


@pytest.fixture(scope="module")
def from_file(provider, web, model):
    return run({"INPUT": str(web["source"]), "MODEL": model, "EXTENT": extent_of(web["source"])})


def service_layer(uri: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(uri, "web service", "wms")
    assert layer.isValid(), layer.error().summary()
    return layer


@pytest.mark.parametrize("rest", [False, True], ids=["kvp", "rest"])
def test_a_wmts_layer_finds_the_footprints_of_its_source_file(provider, web, from_file, fresh_cache,
                                                             model, tmp_path, rest):
    import ogc_server

    probability = tmp_path / "probability.tif"
    log = Log()
    with ogc_server.serve(web["xyz"], web["source"], rest=rest) as server:
        layer = service_layer(ogc_server.wmts_uri(server))
        found = run({"INPUT": layer, "MODEL": model, "EXTENT": extent_of(web["source"]),
                     "OUTPUT_PROBABILITY": str(probability)}, log)
        tiles = [r for r in server.requests if r.kind == "tile"]
    score = f1(polygons(from_file), polygons(found))
    print(f"F1 WMTS ({'REST' if rest else 'KVP'}) vs file: {score:.4f} "
          f"({found['BUILDING_COUNT']} vs {from_file['BUILDING_COUNT']})")
    assert from_file["BUILDING_COUNT"] > 10 and score >= 0.9
    # read at the zoom the model's 0.3 m needs (19), the stretch's sample from a coarser one: never the whole world
    zooms = {int(re.search(r"(?:TILEMATRIX=|/GoogleMapsCompatible/)(\d+)", r.path, re.IGNORECASE).group(1))
             for r in tiles}
    assert tiles and all(r.status == 200 for r in tiles) and 19 in zooms and min(zooms) >= 15
    assert all(("/wmts/1.0.0/spacenet/" in r.path) == rest for r in tiles)
    # the source and the attribution its capabilities state are recorded: in the log, and in the probability
    # raster's metadata
    settings = log.settings()
    assert '"source_kind": "wmts"' in settings and f'"attribution": "{ogc_server.ATTRIBUTION}"' in settings
    with rasterio.open(probability) as src:
        tags = src.tags()
    assert tags["SPACENET_SOURCE"] == server.wmts_capabilities_url() and tags["SPACENET_SOURCE_KIND"] == "wmts"
    assert tags["SPACENET_ATTRIBUTION"] == ogc_server.ATTRIBUTION


def test_a_wms_layer_is_asked_for_the_models_pixels_and_finds_the_files_footprints(provider, web, from_file,
                                                                                  fresh_cache, model):
    import ogc_server

    log = Log()
    with ogc_server.serve(geotiff=web["source"]) as server:
        found = run({"INPUT": service_layer(ogc_server.wms_uri(server)), "MODEL": model,
                     "EXTENT": extent_of(web["source"])}, log)
        maps = [{key.upper(): value for key, value in parse_qsl(urlsplit(r.path).query)}
                for r in server.requests if r.kind == "map"]
    score = f1(polygons(from_file), polygons(found))
    print(f"F1 WMS vs file: {score:.4f} ({found['BUILDING_COUNT']} vs {from_file['BUILDING_COUNT']})")
    assert score >= 0.9
    # the model's 0.3 m on the ground is 0.37 m of Web Mercator at Vegas (36.2° N): the model's reads ask for
    # pixels of that size; the stretch's sample, when it is decimated, for 2, 4... times that
    sizes = sorted({round((float(m["BBOX"].split(",")[2]) - float(m["BBOX"].split(",")[0])) / int(m["WIDTH"]), 4)
                    for m in maps})
    assert maps and all(m["CRS"] == "EPSG:3857" and m["LAYERS"] == "spacenet" for m in maps)
    assert sizes[0] == pytest.approx(0.3 / 0.807, rel=0.01)
    assert all(size / sizes[0] == pytest.approx(round(size / sizes[0]), rel=1e-3) for size in sizes)
    settings = log.settings()
    assert '"source_kind": "wms"' in settings and f'"attribution": "{ogc_server.ATTRIBUTION}"' in settings
    assert f'"source": "{server.url}wms"' in settings


def test_the_loaded_footprints_name_the_web_source_in_their_metadata(provider, web, fresh_cache, brightness_model,
                                                                    qgis_new_project):
    import ogc_server
    import processing

    with ogc_server.serve(geotiff=web["source"]) as server:
        processing.runAndLoadResults(ALGORITHM, {
            "INPUT": service_layer(ogc_server.wms_uri(server)), "MODEL": brightness_model, "DEVICE": "cpu",
            "EXTENT": extent_of(web["source"]), "OUTPUT": "memory:"})
    (layer,) = [layer for layer in QgsProject.instance().mapLayers().values() if layer.type() == 0]
    metadata = layer.metadata()
    assert f"source: {server.url}wms" in metadata.abstract() and "source_kind: wms" in metadata.abstract()
    assert f"attribution: {ogc_server.ATTRIBUTION}" in metadata.abstract()
    assert f"attribution={ogc_server.ATTRIBUTION}" in metadata.keywords()["spacenet"]
