#!/usr/bin/env python3
"""Extraction over a web layer against the same extraction over its source file, side by side (issue 21).

The SpaceNet 3 Vegas RGB tile warped to EPSG:3857 at zoom 19's resolution (the source file) and its XYZ pyramid
(gdal2tiles, zooms 15-19) served by tests/support/tile_server.py on 127.0.0.1: the shipped buildings model on CPU
over the file's extent, read from the file, from the XYZ layer with an empty tile cache (every tile fetched over
HTTP) and again with the cache filled. Prints km2/s of each, the tiles fetched and the footprint counts; the
F1 of the XYZ run's footprints against the file's. No target: loopback HTTP costs little, so the figure says what
the tile path itself (PNG decoding, the WMS driver, the cache) costs; a real service adds its latency.

Repeat: ``make bench`` (all) or ``.venv/bin/python bench/bench_web_sources.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from paths import REPO

import numpy as np


def main(argv) -> int:
    fixtures = REPO.parent / "shared" / "fixtures"
    if not fixtures.is_dir():
        print(f"skipped: the shared fixtures are not beside the checkout ({fixtures})")
        return 0
    from qgis.core import QgsApplication, QgsSettings

    app = QgsApplication([], False)
    app.initQgis()
    import rasterio
    import tile_server
    import web_tiles

    from spacenet_toolkit.core.extract import extract
    from spacenet_toolkit.core.score import f1
    from spacenet_toolkit.qgis_adapter import web_sources

    model = str(REPO / "models" / "buildings_unet_small.onnx")
    with tempfile.TemporaryDirectory(prefix="bench-web-") as work:
        web = web_tiles.build(fixtures, Path(work) / "web")
        QgsSettings().setValue("cache/directory", str(Path(work) / "cache"))
        with rasterio.open(web["source"]) as src:
            extent = tuple(src.bounds)
            ground = (src.width * src.height * abs(src.transform.a * src.transform.e)
                      * np.cos(np.radians(36.24)) ** 2) / 1e6  # km2: EPSG:3857 metres shrink by cos(lat)

        def timed(path):
            started = time.perf_counter()
            result = extract.extract_buildings(extract.ExtractRequest(path, model, extent=extent, device="cpu",
                                                                      scheduler="in-process", work_dir=work))
            return result, time.perf_counter() - started

        rows = []
        timed(str(web["source"]))  # warm-up: the model's session is loaded once, outside the figures
        file_result, seconds = timed(str(web["source"]))
        rows.append(("file", seconds, len(file_result.footprints), 0))
        with tile_server.serve(web["xyz"]) as server:
            source = web_sources.xyz_source(server.url + "{z}/{x}/{y}.png", 0, 19)
            for label in ("XYZ, empty cache", "XYZ, cache filled"):
                server.reset()
                result, seconds = timed(source.name)
                rows.append((label, seconds, len(result.footprints), server.count(200)))
        print(f"Vegas tile in EPSG:3857, {ground:.3f} km2, shipped buildings model on CPU")
        for label, seconds, count, fetched in rows:
            print(f"  {label:18s} {ground / seconds:7.4f} km2/s  {seconds:6.1f} s  {count:4d} footprints  "
                  f"{fetched:3d} tiles fetched")
        geometries = [np.array([m.geometry for m in r.footprints], dtype=object)
                      for r in (file_result, result)]
        score = f1.score(f1.PolygonSet(geometries[0]), f1.PolygonSet(geometries[1])).total.f1
        print(f"  F1 of the XYZ footprints against the file's: {score:.3f}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
