"""The model grid's pixels have the model's ground size whatever the CRS's units: Web Mercator's metres are
1/cos(latitude) of ground metres (EPSG:3857 XYZ basemaps are in it), UTM's are taken as they are."""

import math

import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from spacenet_toolkit.core.extract import raster

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"


@pytest.fixture
def web_mercator(fixtures, tmp_path):
    """The Atlanta tile warped into EPSG:3857."""
    with rasterio.open(fixtures / ATLANTA) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height,
                                                               *src.bounds)
        profile = src.profile | {"crs": "EPSG:3857", "transform": transform, "width": width, "height": height}
        path = tmp_path / "atlanta_3857.tif"
        with rasterio.open(path, "w", **profile) as out:
            reproject(rasterio.band(src, 1), rasterio.band(out, 1), resampling=Resampling.bilinear)
    return path


def test_web_mercator_pixels_are_measured_on_the_ground(web_mercator):
    info = raster.describe(web_mercator)
    grid = raster.model_grid(info, None, 0.3)
    latitude = 33.64  # the tile's
    # Web Mercator stretches the ground by 1/cos(latitude): a 0.3 m pixel is 0.3 / cos(latitude) of its units
    # (within half a percent: EPSG:3857 is spherical on the WGS84 ellipsoid)
    for size in grid.pixel_size:
        assert size * math.cos(math.radians(latitude)) == pytest.approx(0.3, rel=0.006)
    assert grid.pixel_area_m2 == pytest.approx(0.09)


def test_utm_units_are_taken_as_they_are(fixtures):
    info = raster.describe(fixtures / ATLANTA)
    grid = raster.model_grid(info, None, 0.3)
    assert grid.pixel_size == (0.3, 0.3) and (grid.width, grid.height) == (1500, 1500)
