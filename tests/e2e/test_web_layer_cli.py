"""qgis_process over web layers (issue 21): an XYZ layer's wms-provider URI given as INPUT, bare or with the
``wms://`` prefix that names its provider, extracts what the in-process run over the same tiles finds; WMTS and
WMS layers' URIs (tests/support/ogc_server.py on loopback) extract the source file's footprints."""

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def web(fixtures, tmp_path_factory):
    import web_tiles

    return web_tiles.build(fixtures, tmp_path_factory.mktemp("web"))


@pytest.fixture
def extent(web):
    import rasterio

    with rasterio.open(web["source"]) as src:
        left, bottom, right, top = src.bounds
    return f"{left!r},{right!r},{bottom!r},{top!r} [EPSG:3857]"


def results_of(completed) -> dict:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def footprints(path):
    import numpy as np
    import shapely
    from osgeo import ogr

    source = ogr.Open(str(path))
    layer = source.GetLayer(0)
    return np.array([shapely.from_wkb(bytes(feature.GetGeometryRef().ExportToIsoWkb())) for feature in layer],
                    dtype=object)


def test_qgis_process_extracts_from_an_xyz_uri(qgis_process_factory, plugin_path, web, extent, brightness_model,
                                               tmp_path):
    import tile_server
    import web_tiles

    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    counts = []
    with tile_server.serve(web["xyz"]) as server:
        for prefix in ("", "wms://"):
            completed = qgis_process("--json", "run", "spacenet:extractbuildings",
                                     f"--INPUT={prefix}{web_tiles.xyz_uri(server.url)}", f"--EXTENT={extent}",
                                     f"--MODEL={brightness_model}", "--DEVICE=cpu",
                                     f"--OUTPUT={tmp_path / f'web{len(counts)}.gpkg'}")
            counts.append(results_of(completed)["BUILDING_COUNT"])
        assert server.count(200) > 0
    assert counts[0] == counts[1] > 10


def test_qgis_process_extracts_the_files_footprints_from_wmts_and_wms_uris(qgis_process_factory, plugin_path, web,
                                                                          extent, repo_root, tmp_path):
    import ogc_server

    from spacenet_toolkit.core.score import f1

    model = repo_root / "models" / "buildings_unet_small.onnx"
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")

    def extract(source: str, name: str):
        output = tmp_path / f"{name}.gpkg"
        results = results_of(qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={source}",
                                          f"--EXTENT={extent}", f"--MODEL={model}", "--DEVICE=cpu",
                                          f"--OUTPUT={output}"))
        return footprints(output), results

    from_file, _ = extract(str(web["source"]), "file")
    scores = {}
    with ogc_server.serve(web["xyz"], web["source"]) as server:
        for kind, uri in (("wmts", ogc_server.wmts_uri(server)), ("wms", ogc_server.wms_uri(server))):
            found, _ = extract(uri, kind)
            scores[kind] = f1.score(f1.PolygonSet(from_file), f1.PolygonSet(found)).total.f1
        assert server.count("tile", 200) > 0 and server.count("map", 200) > 0
    print(f"F1 against the file through qgis_process: {scores} ({len(from_file)} footprints in the file)")
    assert len(from_file) > 10 and min(scores.values()) >= 0.9
