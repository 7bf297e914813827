"""qgis_process over an XYZ layer (issue 21): the layer's wms-provider URI given as INPUT, bare or with the
``wms://`` prefix that names its provider, extracts what the in-process run over the same tiles finds."""

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def web(fixtures, tmp_path_factory):
    import web_tiles

    return web_tiles.build(fixtures, tmp_path_factory.mktemp("web"))


def test_qgis_process_extracts_from_an_xyz_uri(qgis_process_factory, plugin_path, web, brightness_model, tmp_path):
    import rasterio
    import tile_server
    import web_tiles

    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    with rasterio.open(web["source"]) as src:
        left, bottom, right, top = src.bounds
    extent = f"{left!r},{right!r},{bottom!r},{top!r} [EPSG:3857]"
    counts = []
    with tile_server.serve(web["xyz"]) as server:
        for prefix in ("", "wms://"):
            completed = qgis_process("--json", "run", "spacenet:extractbuildings",
                                     f"--INPUT={prefix}{web_tiles.xyz_uri(server.url)}", f"--EXTENT={extent}",
                                     f"--MODEL={brightness_model}", "--DEVICE=cpu",
                                     f"--OUTPUT={tmp_path / f'web{len(counts)}.gpkg'}")
            assert completed.returncode == 0, completed.stdout + completed.stderr
            counts.append(json.loads(completed.stdout[completed.stdout.index("{"):])["results"]["BUILDING_COUNT"])
        assert server.count(200) > 0
    assert counts[0] == counts[1] > 10
