#!/usr/bin/env python3
"""Extraction over a web layer against the same extraction over its source file, side by side (issue 21).

The SpaceNet 3 Vegas RGB tile warped to EPSG:3857 at zoom 19's resolution (the source file) and its XYZ pyramid
(gdal2tiles, zooms 15-19) served by tests/support/tile_server.py on 127.0.0.1, and the same pyramid as a WMTS layer
and the file as a WMS layer (tests/support/ogc_server.py): the shipped buildings model on CPU over the file's
extent, read from the file, from the XYZ layer with an empty tile cache (every tile fetched over HTTP) and again
with the cache filled, from the WMTS and the WMS layer. Prints km2/s of each, the requests answered, the footprint
counts and the F1 of each run's footprints against the file's. No target: loopback HTTP costs little, so the
figure says what the tile path itself (PNG decoding, the WMS driver, the cache) costs; a real service adds its
latency.

Repeat: ``make bench`` (all) or ``.venv/bin/python bench/bench_web_sources.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from paths import REPO

import numpy as np


def measure(web, model, work) -> tuple:
    """(the extent's ground area in km2, a row per source: label, seconds, footprints, requests, F1 vs the file)."""
    import ogc_server
    import rasterio
    import tile_server
    from qgis.core import QgsRasterLayer

    from spacenet_toolkit.core.extract import extract, runtime
    from spacenet_toolkit.core.score import f1
    from spacenet_toolkit.qgis_adapter import web_sources

    with rasterio.open(web["source"]) as src:
        extent = tuple(src.bounds)
        ground = (src.width * src.height * abs(src.transform.a * src.transform.e)
                  * np.cos(np.radians(36.24)) ** 2) / 1e6  # km2: EPSG:3857 metres shrink by cos(lat)
    gsd_m = runtime.load(model, "cpu").card.gsd_m

    def timed(path):
        started = time.perf_counter()
        result = extract.extract_buildings(extract.ExtractRequest(path, model, extent=extent, device="cpu",
                                                                  scheduler="in-process", work_dir=work))
        return result, time.perf_counter() - started

    def geometries(result):
        return np.array([m.geometry for m in result.footprints], dtype=object)

    timed(str(web["source"]))  # warm-up: the model's session is loaded once, outside the figures
    file_result, seconds = timed(str(web["source"]))
    rows = [("file", seconds, len(file_result.footprints), 0, 1.0)]

    def row(label, path, count_requests):
        result, seconds = timed(path)
        score = f1.score(f1.PolygonSet(geometries(file_result)), f1.PolygonSet(geometries(result))).total.f1
        rows.append((label, seconds, len(result.footprints), count_requests(), score))

    with tile_server.serve(web["xyz"]) as server:
        source = web_sources.xyz_source(server.url + "{z}/{x}/{y}.png", 0, 19)
        for label in ("XYZ, empty cache", "XYZ, cache filled"):
            server.reset()
            row(label, source.name, lambda: server.count(200))
    with ogc_server.serve(web["xyz"], web["source"]) as server:
        for label, uri, kind in (("WMTS, empty cache", ogc_server.wmts_uri(server), "tile"),
                                 ("WMS, empty cache", ogc_server.wms_uri(server), "map")):
            layer = QgsRasterLayer(uri, label, "wms")
            source = web_sources.for_run(web_sources.raster_source(layer), extent, gsd_m)
            before = server.count(kind, 200)
            row(label, source.name, lambda before=before, kind=kind: server.count(kind, 200) - before)
    return ground, rows


def main(argv) -> int:
    fixtures = REPO.parent / "shared" / "fixtures"
    if not fixtures.is_dir():
        print(f"skipped: the shared fixtures are not beside the checkout ({fixtures})")
        return 0
    from qgis.core import QgsApplication, QgsSettings

    app = QgsApplication([], False)
    app.initQgis()
    import web_tiles

    model = str(REPO / "models" / "buildings_unet_small.onnx")
    settings = QgsSettings()
    cache_before = settings.value("cache/directory")
    with tempfile.TemporaryDirectory(prefix="bench-web-") as work:
        web = web_tiles.build(fixtures, Path(work) / "web")
        settings.setValue("cache/directory", str(Path(work) / "cache"))  # an empty tile cache, put back after
        try:
            ground, rows = measure(web, model, work)
        finally:
            if cache_before is None:
                settings.remove("cache/directory")
            else:
                settings.setValue("cache/directory", cache_before)
    print(f"Vegas tile in EPSG:3857, {ground:.3f} km2, shipped buildings model on CPU ({os.cpu_count()} cores)")
    for label, seconds, count, fetched, score in rows:
        print(f"  {label:20s} {ground / seconds:7.4f} km2/s  {seconds:6.1f} s  {count:4d} footprints  "
              f"{fetched:3d} requests  F1 vs file {score:.3f}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
