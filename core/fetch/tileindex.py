"""Tile footprints of one dataset/split/AOI/product, cached on disk as a GeoPackage.

The cache holds the product's listing (key, size, ETag) with each tile's footprint in EPSG:4326,
so a second run can select tiles by extent without a single request. The file is an ordinary
GeoPackage layer (``tiles``) that QGIS opens directly. It is rewritten whole, through a temporary
name, so a crash never leaves a half-written index.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .s3 import S3Object

LAYER = "tiles"


@dataclass(frozen=True)
class Tile:
    tile_id: str
    obj: S3Object
    footprint: object = None  # shapely Polygon in EPSG:4326, None until the header is read
    crs_wkt: str = ""  # the tile's own CRS

    def with_footprint(self, footprint, crs_wkt: str) -> Tile:
        return replace(self, footprint=footprint, crs_wkt=crs_wkt)


def footprint_from_header(header, densify: int = 8):
    """The outline of a raster in EPSG:4326 (edges densified: a UTM tile's edges curve a little in degrees)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform as transform_points
    from shapely.geometry import Polygon

    x0, dx, rx, y0, ry, dy = header.transform
    steps = [i / densify for i in range(densify)]
    # walk the image border clockwise in pixel coordinates
    width, height = header.width, header.height
    border = ([(s * width, 0) for s in steps] + [(width, s * height) for s in steps]
              + [((1 - s) * width, height) for s in steps] + [(0, (1 - s) * height) for s in steps])
    xs = [x0 + col * dx + row * rx for col, row in border]
    ys = [y0 + col * ry + row * dy for col, row in border]
    crs = CRS.from_wkt(header.crs_wkt)
    if crs != CRS.from_epsg(4326):
        xs, ys = transform_points(crs, CRS.from_epsg(4326), xs, ys)
    return Polygon(zip(xs, ys))


def cache_path(cache_dir: Path, endpoint: str, dataset: str, split: str, aoi: str, folder: str) -> Path:
    """One file per endpoint and product: a mirror or a test server never mixes with the real bucket."""
    endpoint_slug = re.sub(r"[^0-9A-Za-z.-]+", "_", endpoint.split("://", 1)[-1]).strip("_")
    return Path(cache_dir) / endpoint_slug / f"{dataset}_{split}_{aoi}_{folder}.gpkg"


class TileIndex:
    """The cached listing and footprints of one product."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def age_seconds(self) -> float | None:
        listed_at = self._metadata().get("listed_at")
        return time.time() - float(listed_at) if listed_at else None

    def read(self) -> list[Tile]:
        """Every cached tile; an unreadable cache reads as empty (it is rebuilt, never trusted)."""
        if not self.exists():
            return []
        ogr, _ = _gdal()
        try:
            source = ogr.Open(str(self.path))
            layer = source.GetLayerByName(LAYER)
            tiles = [_tile_from_feature(feature) for feature in layer]
            source = None
            return tiles
        except (RuntimeError, AttributeError):
            return []

    def query(self, bbox: tuple[float, float, float, float]) -> list[str]:
        """Ids of tiles whose footprint meets ``bbox`` (west, south, east, north in EPSG:4326).

        OGR's spatial filter uses the GeoPackage's R-tree, then the exact footprint is tested.
        """
        from shapely.geometry import box

        ogr, _ = _gdal()
        area = box(*bbox)
        source = ogr.Open(str(self.path))
        layer = source.GetLayerByName(LAYER)
        layer.SetSpatialFilterRect(*bbox)
        hits = []
        for feature in layer:
            footprint = _shape(feature.GetGeometryRef())
            if footprint is not None and footprint.intersects(area):
                hits.append(feature.GetField("tile_id"))
        source = None
        return hits

    def write(self, tiles: Iterable[Tile], listed_at: float | None = None) -> None:
        ogr, osr = _gdal()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.gpkg")
        driver = ogr.GetDriverByName("GPKG")
        source = driver.CreateDataSource(str(temporary))
        wgs84 = osr.SpatialReference()
        wgs84.ImportFromEPSG(4326)
        wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = source.CreateLayer(LAYER, wgs84, ogr.wkbPolygon, options=["SPATIAL_INDEX=YES"])
        for name, kind in (("tile_id", ogr.OFTString), ("key", ogr.OFTString), ("size", ogr.OFTInteger64),
                           ("etag", ogr.OFTString), ("last_modified", ogr.OFTString), ("crs", ogr.OFTString)):
            layer.CreateField(ogr.FieldDefn(name, kind))
        layer.StartTransaction()
        for tile in tiles:
            feature = ogr.Feature(layer.GetLayerDefn())
            for name, value in (("tile_id", tile.tile_id), ("key", tile.obj.key), ("size", tile.obj.size),
                                ("etag", tile.obj.etag), ("last_modified", tile.obj.last_modified),
                                ("crs", tile.crs_wkt)):
                feature.SetField(name, value)
            if tile.footprint is not None:
                feature.SetGeometry(ogr.CreateGeometryFromWkb(tile.footprint.wkb))
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        layer.SetMetadataItem("listed_at", repr(listed_at if listed_at is not None else time.time()))
        source = None  # closes and flushes the file
        os.replace(temporary, self.path)

    def _metadata(self) -> dict:
        if not self.exists():
            return {}
        ogr, _ = _gdal()
        try:
            source = ogr.Open(str(self.path))
            metadata = source.GetLayerByName(LAYER).GetMetadata() or {}
            source = None
            return metadata
        except (RuntimeError, AttributeError):
            return {}


def _gdal():
    from osgeo import ogr, osr  # GDAL's bindings ship with every QGIS

    ogr.UseExceptions()
    osr.UseExceptions()
    return ogr, osr


def _shape(geometry):
    if geometry is None:
        return None
    import shapely

    return shapely.from_wkb(bytes(geometry.ExportToWkb()))


def _tile_from_feature(feature) -> Tile:
    obj = S3Object(key=feature.GetField("key"), size=int(feature.GetField("size") or 0),
                   etag=feature.GetField("etag") or "", last_modified=feature.GetField("last_modified") or "")
    return Tile(feature.GetField("tile_id"), obj, _shape(feature.GetGeometryRef()), feature.GetField("crs") or "")
