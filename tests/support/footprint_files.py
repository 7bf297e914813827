"""Synthetic building footprints written to vector files, for the scoring tests that compare the bulk and the
feature-by-feature paths of spacenet:scoref1 (issue 20).

A scene: truth rectangles on a grid of tiles, proposals that are most of them shifted, resized and turned a little
(IoU on both sides of 0.5), plus false alarms; the tile of each as a group field and a confidence per proposal.
Files are written with GDAL (``osgeo.ogr``), feature by feature, in one transaction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import shapely
from osgeo import ogr, osr

UTM = 32616
DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".shp": "ESRI Shapefile"}


@dataclass
class Layer:
    """Geometries (shapely, None for a null one) and fields: name -> (OGR field type, values, None for null)."""

    shapes: list
    fields: dict = field(default_factory=dict)


def rectangles(cx, cy, width, height, angle):
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    dx, dy = width[:, None] * corners[:, 0], height[:, None] * corners[:, 1]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return shapely.polygons(np.stack([cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos], -1))


def scene(count: int, tiles: int = 10, seed: int = 20):
    """(truth, proposals) as :class:`Layer`s with ``count`` polygons each, grouped by a ``tile`` field; the
    proposals have a ``confidence``."""
    rng = np.random.default_rng(seed)
    tile = rng.integers(0, tiles, count)
    cell = rng.permutation(count * 4)[:count]  # distinct cells: truths never overlap
    cx = 500_000.0 + (cell % 200) * 40 + tile * 10_000 + rng.uniform(-2, 2, count)
    cy = 4_000_000.0 + (cell // 200) * 40 + rng.uniform(-2, 2, count)
    width, height, angle = rng.uniform(8, 25, count), rng.uniform(8, 25, count), rng.uniform(0, np.pi, count)
    truth = rectangles(cx, cy, width, height, angle)
    found = rng.random(count) < 0.8
    n = int(found.sum())
    detections = rectangles(cx[found] + rng.normal(0, 2, n), cy[found] + rng.normal(0, 2, n),
                            width[found] * rng.uniform(0.75, 1.25, n), height[found] * rng.uniform(0.75, 1.25, n),
                            angle[found] + rng.normal(0, 0.15, n))
    false_tile = rng.integers(0, tiles, count - n)
    false_alarms = rectangles(500_000.0 + false_tile * 10_000 + rng.uniform(0, 8000, count - n),
                              4_000_000.0 + rng.uniform(0, 800, count - n), rng.uniform(8, 25, count - n),
                              rng.uniform(8, 25, count - n), rng.uniform(0, np.pi, count - n))
    proposals = np.concatenate([detections, false_alarms])
    proposal_tile = np.concatenate([tile[found], false_tile])
    order = rng.permutation(count)
    names = np.array([f"tile_{t:02d}" for t in range(tiles)], dtype=object)
    return (Layer(list(truth), {"tile": (ogr.OFTString, names[tile].tolist())}),
            Layer(list(proposals[order]), {"tile": (ogr.OFTString, names[proposal_tile[order]].tolist()),
                                           "confidence": (ogr.OFTReal, rng.random(count).round(4).tolist())}))


def write(path, layer: Layer, layer_name: str = "", epsg: int = UTM, geometry_type=ogr.wkbPolygon,
          dimensions: int = 2) -> str:
    """``layer`` to the vector file ``path`` (its driver from the suffix; a layer added when the file exists);
    ``dimensions`` 3 writes every vertex with z = 0, as SpaceNet's GeoJSON labels have it. Returns the path."""
    path = str(path)
    suffix = path[path.rfind("."):].lower()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    # os.path.exists, not ogr.Open: with GDAL's exceptions on (QGIS 3.40's Processing turns them on) it raises
    dataset = ogr.Open(path, 1) if suffix == ".gpkg" and os.path.exists(path) else None
    if dataset is None:
        dataset = ogr.GetDriverByName(DRIVERS[suffix]).CreateDataSource(path)
    if dimensions == 3:
        geometry_type = ogr.GT_SetZ(geometry_type)
    options = ["ENCODING=UTF-8"] if suffix == ".shp" else []  # a .cpg, as QGIS writes shapefiles
    created = dataset.CreateLayer(layer_name or path.rsplit("/", 1)[-1].split(".")[0], srs, geometry_type,
                                  options=options)
    for name, (kind, _) in layer.fields.items():
        created.CreateField(ogr.FieldDefn(name, kind))
    definition = created.GetLayerDefn()
    created.StartTransaction()
    for index, shape in enumerate(layer.shapes):
        feature = ogr.Feature(definition)
        if shape is not None:
            if dimensions == 3:
                shape = shapely.force_3d(shape)
            feature.SetGeometry(ogr.CreateGeometryFromWkb(shapely.to_wkb(shape, output_dimension=dimensions)))
        for name, (_, values) in layer.fields.items():
            if values[index] is not None:
                feature.SetField(name, values[index])
        created.CreateFeature(feature)
    created.CommitTransaction()
    dataset = None
    return path


def features(path, layer=0) -> list:
    """(fid, attributes, ISO WKB) of every feature of a layer of ``path``, read with GDAL."""
    dataset = ogr.Open(str(path))
    found = dataset.GetLayerByName(layer) if isinstance(layer, str) else dataset.GetLayer(layer)
    return [(feature.GetFID(), feature.items(),
             bytes(feature.GetGeometryRef().ExportToIsoWkb()) if feature.GetGeometryRef() else None)
            for feature in found]


def layer_facts(path, layer=0) -> dict:
    """What else a reader sees of a layer: name, geometry type, fields, CRS, count, extent."""
    dataset = ogr.Open(str(path))
    found = dataset.GetLayerByName(layer) if isinstance(layer, str) else dataset.GetLayer(layer)
    definition = found.GetLayerDefn()
    srs = found.GetSpatialRef()
    return {
        "name": found.GetName(), "geometry": found.GetGeomType(), "count": found.GetFeatureCount(),
        "fields": [(definition.GetFieldDefn(i).GetName(), definition.GetFieldDefn(i).GetType(),
                    definition.GetFieldDefn(i).GetWidth()) for i in range(definition.GetFieldCount())],
        "crs": srs.ExportToWkt() if srs is not None else None, "extent": found.GetExtent(),
        "fid_column": found.GetFIDColumn(), "geometry_column": found.GetGeometryColumn(),
    }
