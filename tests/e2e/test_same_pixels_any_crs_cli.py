"""The same pixels give the same footprints in any CRS: the Atlanta tile as shipped (UTM 16N, metres), relabelled
in US survey feet, and relabelled in EPSG:4326 with pixels of the same ground size. Each extraction runs through
qgis_process; the footprints are compared on the tile's own pixel grid, where the three must coincide.

A raster warped into another CRS (gdalwarp) has other pixels, resampled: the model sees another image and finds
other footprints where it is unsure. That is the model's robustness, measured by bench/bench_crs.py, not the CRS
handling tested here."""

import json
import math

import numpy as np
import pytest
import rasterio
import shapely
from osgeo import ogr
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as transform_points

from spacenet_toolkit.core.score import f1

pytestmark = pytest.mark.e2e

US_FOOT = 1200 / 3937  # metres
UTM_16N_FEET = "+proj=utm +zone=16 +datum=WGS84 +units=us-ft +no_defs"


def relabelled(source, destination, crs, transform):
    """``source``'s pixels, untouched, as a GeoTIFF with another CRS and geotransform."""
    with rasterio.open(source) as src:
        profile = src.profile | {"crs": crs, "transform": transform}
        with rasterio.open(destination, "w", **profile) as out:
            out.write(src.read())
    return destination


def geographic_transform(source):
    """A north-up EPSG:4326 geotransform whose pixels have the source's ground size at its centre, measured on
    by PROJ in an azimuthal equidistant projection centred there (not by the plugin's own formula).

    (rasterio's PROJ only: pyproj beside it in one process crashes.)"""
    with rasterio.open(source) as src:
        size_m = src.res[0]
        centre_x, centre_y = src.xy(src.height / 2, src.width / 2)
        (lon,), (lat,) = transform_points(src.crs, "EPSG:4326", [centre_x], [centre_y])
        local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
        step = 1e-3  # degrees: small enough for a local scale, large enough for float precision
        xs, ys = transform_points("EPSG:4326", local, [lon + step, lon], [lat, lat + step])
        metres_per_lon, metres_per_lat = math.hypot(xs[0], ys[0]) / step, math.hypot(xs[1], ys[1]) / step
        dx, dy = size_m / metres_per_lon, size_m / metres_per_lat
        return Affine(dx, 0, lon - dx * src.width / 2, 0, -dy, lat + dy * src.height / 2)


def footprints_in_pixels(gpkg, raster):
    """The footprints of ``gpkg`` in the pixel coordinates (column, row) of ``raster``."""
    with rasterio.open(raster) as src:
        inverse = ~src.transform
    dataset = ogr.Open(str(gpkg))  # kept referenced while its layer is read: OGR frees the layer with it
    geometries = shapely.from_wkb([bytes(feature.GetGeometryRef().ExportToWkb()) for feature in dataset.GetLayer(0)])

    def to_pixels(coords):
        x, y = coords.T
        return np.stack([inverse.a * x + inverse.b * y + inverse.c, inverse.d * x + inverse.e * y + inverse.f]).T

    return shapely.transform(geometries, to_pixels)


def test_the_same_pixels_give_the_same_footprints_in_any_crs(qgis_process_factory, plugin_path, repo_root,
                                                             tmp_path):
    original = repo_root / "sample_data" / "sn4_atlanta_pan.tif"
    with rasterio.open(original) as src:
        metres = src.transform
    rasters = {
        "UTM 16N, metres": original,
        "UTM 16N, US survey feet": relabelled(original, tmp_path / "feet.tif", CRS.from_proj4(UTM_16N_FEET),
                                              Affine.scale(1 / US_FOOT) @ metres),
        "EPSG:4326": relabelled(original, tmp_path / "lonlat.tif", "EPSG:4326", geographic_transform(original)),
    }
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    found = {}
    for index, (name, raster) in enumerate(rasters.items()):
        output = tmp_path / f"footprints{index}.gpkg"
        completed = qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={raster}",
                                 "--MODEL=buildings_unet_small", "--DEVICE=cpu", f"--OUTPUT={output}")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        results = json.loads(completed.stdout[completed.stdout.index("{"):])["results"]
        assert results["BUILDING_COUNT"] > 10, name
        found[name] = footprints_in_pixels(output, raster)

    reference = found.pop("UTM 16N, metres")
    for name, geometries in found.items():
        assert len(geometries) == len(reference), name
        result = f1.score(f1.PolygonSet(reference), f1.PolygonSet(geometries),
                          f1.F1Options(iou_threshold=0.99))
        assert (result.total.fp, result.total.fn) == (0, 0), f"{name}: {result.total}"
