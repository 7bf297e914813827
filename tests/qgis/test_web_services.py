"""Extraction from WMTS and WMS layers (issue 21), served on loopback by tests/support/ogc_server.py from the same
SpaceNet tile as the source file: the footprints match the file's, the outputs name the source and its
attribution, and the WMS is asked for the model's own pixels.

The shipped buildings model is the referee here: the brightness test model thresholds a local mean of stretched
values, so a stretch one grey level apart (a sample read from a service's level instead of the file's pixels)
merges or splits its blobs and moves its F1 against the file anywhere from 0.3 to 0.93, whatever the pixels."""

import re
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject, QgsRasterLayer
from web_layers import ALGORITHM, Log, cache_folder, extent_of, f1, polygons, run, setting


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


def test_an_xyz_layers_attribution_comes_from_its_uri(provider):
    import web_tiles

    from spacenet_toolkit.qgis_adapter import web_sources

    uri = web_tiles.xyz_uri("http://127.0.0.1:9/") + "&attribution=%C2%A9%20Vendor%20imagery%202024"
    source = web_sources.raster_source(service_layer(uri))
    assert source.attribution == "© Vendor imagery 2024"
    assert source.metadata() == {"source": "http://127.0.0.1:9/{z}/{x}/{y}.png", "source_kind": "xyz",
                                 "attribution": "© Vendor imagery 2024"}


# -- a service that fails: real loopback servers that stall, break down mid-run or answer slowly ---------------------

@pytest.fixture
def short_timeout():
    from spacenet_toolkit.qgis_adapter import web_sources

    with setting(web_sources.TIMEOUT_SETTING, 2):
        yield 2


def xyz_layer(base_url: str) -> QgsRasterLayer:
    import web_tiles

    return service_layer(web_tiles.xyz_uri(base_url))


def test_a_service_that_never_answers_is_named_with_its_timeout_in_bounded_time(provider, web, fresh_cache,
                                                                               short_timeout, brightness_model):
    from silent_server import SilentServer

    with SilentServer() as silent:
        host = silent.base_url.split("//")[1]
        started = time.monotonic()
        with pytest.raises(QgsProcessingException, match=rf"The tile service at {host} did not answer within "
                                                         rf"{short_timeout} s \(setting spacenet/web_timeout_s\)"):
            run({"INPUT": xyz_layer(silent.base_url + "/"), "MODEL": brightness_model,
                 "EXTENT": extent_of(web["source"])})
        took = time.monotonic() - started
        asked = silent.count
    # one probe tile, tried 5 times (2 s each, waits of 0.5 + 1 + 2 + 4 s between): some 18 s, never unbounded
    print(f"a silent service was said after {took:.1f} s and {asked} requests")
    assert 1 <= asked <= 5 * 4 and took < 60


@pytest.mark.parametrize("fail_with", ["500", "close", "stall"])
def test_a_service_that_breaks_down_mid_run_stops_it_and_writes_nothing(provider, web, fresh_cache, short_timeout,
                                                                         brightness_model, tmp_path, fail_with):
    import tile_server
    from fault_proxy import FaultProxy

    out = tmp_path / "out"
    out.mkdir()
    said = {"500": r"failed \(HTTP 500\), 5 times over, on tile",
            "close": r"failed \(.*\), 5 times over, on tile",
            "stall": rf"did not answer within {short_timeout} s, 5 times over, on tile"}[fail_with]
    with tile_server.serve(web["xyz"]) as tiles, FaultProxy(tiles.url, fail_after=20, fail_with=fail_with) as proxy:
        host = proxy.base_url.split("//")[1]
        with pytest.raises(QgsProcessingException, match=rf"The tile service at {host} {said}"):
            run({"INPUT": xyz_layer(proxy.base_url + "/"), "MODEL": brightness_model,
                 "EXTENT": extent_of(web["source"]), "OUTPUT": str(out / "buildings.gpkg"),
                 "OUTPUT_PROBABILITY": str(out / "probability.tif")})
        served = proxy.counts.get("forwarded", 0)
        failed = proxy.counts.get(f"fail-{fail_with}", 0)
    # the probe and the first tiles of the run arrived; the 21st on, the service was broken: nothing was written
    assert served == 20 and failed >= 5
    assert list(out.iterdir()) == []


def test_cancel_while_reading_a_slow_service_stops_soon_and_writes_nothing(provider, web, fresh_cache,
                                                                           brightness_model, tmp_path):
    import tile_server

    out = tmp_path / "out"
    out.mkdir()
    feedback = QgsProcessingFeedback()
    canceled_at = []

    def cancel_once_reading(server):
        while server.count() < 6:  # the probe, then the run's reads have begun
            time.sleep(0.01)
        canceled_at.append(time.monotonic())
        feedback.cancel()

    with tile_server.serve(web["xyz"]) as server:
        server.delay_s = 0.25  # 42 tiles 4 at a time: the run's reads last some 3 s
        canceller = threading.Thread(target=cancel_once_reading, args=(server,), daemon=True)
        canceller.start()
        result = run({"INPUT": xyz_layer(server.url), "MODEL": brightness_model, "EXTENT": extent_of(web["source"]),
                      "OUTPUT": str(out / "buildings.gpkg"), "OUTPUT_PROBABILITY": str(out / "probability.tif")},
                     feedback)
        stopped = time.monotonic()
        canceller.join(timeout=5)
    assert canceled_at, "the run ended before it read the service"
    print(f"stopped {stopped - canceled_at[0]:.1f} s after the cancel, {server.count()} tiles asked")
    # the read under way ends (GDAL cannot be interrupted mid-read), then the run stops at once
    assert result == {} and stopped - canceled_at[0] < 15
    assert list(out.iterdir()) == []


# -- Dask workers read through the same description ------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_cluster_closed_after():
    """The local cluster ends with this module: its worker processes must not outlive the QGIS application."""
    yield
    from spacenet_toolkit.core.extract import cluster

    cluster.close_local()


def test_a_local_clusters_workers_share_the_tile_cache(provider, web, fresh_cache, brightness_model,
                                                       local_cluster_closed_after):
    import tile_server

    from spacenet_toolkit.core import dependencies

    assert dependencies.is_installed("distributed"), "make setup installs Dask"
    extent = extent_of(web["source"])
    with tile_server.serve(web["xyz"]) as server:
        here = run({"INPUT": xyz_layer(server.url), "MODEL": brightness_model, "EXTENT": extent,
                    "SCHEDULER": "in-process"})
        with cache_folder(fresh_cache.parent / "cache-local"):
            server.reset()
            log = Log()
            there = run({"INPUT": xyz_layer(server.url), "MODEL": brightness_model, "EXTENT": extent,
                         "SCHEDULER": "local"}, log)
            asked = [r.path for r in server.requests if r.status == 200]
            # beside them only the workers' check before any work (core.extract.worker_check reads a pixel at
            # the raster's corner: the world's, a tile outside the pyramid's coverage, 404 and so not cached)
            assert {r.path for r in server.requests if r.status != 200} <= {"/19/0/0.png"}
            cached = list((fresh_cache.parent / "cache-local").rglob("*"))
    assert any("Blocks run on a local Dask cluster" in line for line in log.infos)
    assert there["BUILDING_COUNT"] == here["BUILDING_COUNT"] > 10
    assert f1(polygons(here), polygons(there)) == 1.0
    # each tile asked once in all: the worker processes read what this process cached, in the same folder
    assert asked and len(set(asked)) == len(asked) and cached


def test_workers_of_a_named_scheduler_get_no_path_of_this_machine(provider, web, fresh_cache):
    from spacenet_toolkit.qgis_adapter import web_sources

    source = web_sources.xyz_source("http://127.0.0.1:9/{z}/{x}/{y}.png", 0, 19)
    folder = str(web_sources.cache_folder())
    assert folder in source.name and folder in source.strict_name
    for scheduler in ("", "local", "in-process"):  # this machine: its cache folder
        assert web_sources.for_run(source, None, 0.5, scheduler).name == source.name
    for scheduler in ("tcp://10.0.0.5:8786", "10.0.0.5:8786"):  # workers elsewhere: no cache, no local path
        remote = web_sources.for_run(source, None, 0.5, scheduler)
        assert "<Cache>" not in remote.name and folder not in remote.name and folder not in remote.strict_name
        assert "<ServerUrl>" in remote.name and "<Timeout>" in remote.name
