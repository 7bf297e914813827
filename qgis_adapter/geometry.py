"""QGIS geometries to shapely and back, through WKB. numpy and shapely are imported on first use, so that the
modules that import this one load with the plugin even where they are missing."""

from qgis.core import QgsCsException, QgsGeometry, QgsWkbTypes


def linear(geometry: QgsGeometry) -> QgsGeometry:
    """``geometry`` with its curves segmentized (shapely reads no curves); the same object when it has none."""
    if QgsWkbTypes.isCurvedType(geometry.wkbType()):
        return QgsGeometry(geometry.constGet().segmentize())
    return geometry


def to_wkb(geometry: QgsGeometry, transform=None) -> bytes | None:
    """The WKB shapely reads of ``geometry`` (curves segmentized), transformed with ``transform`` when given; None
    for a null or empty geometry, or one that cannot be transformed."""
    if geometry is None or geometry.isNull() or geometry.isEmpty():
        return None
    geometry = linear(geometry)
    if transform is not None:
        geometry = QgsGeometry(geometry)  # the caller's geometry stays as it was
        try:
            geometry.transform(transform)
        except QgsCsException:
            return None
    return bytes(geometry.asWkb())


def to_shapely(wkbs):
    """An object array of shapely geometries from ``to_wkb``'s results (None stays None)."""
    import numpy as np
    import shapely

    geometries = np.empty(len(wkbs), dtype=object)
    if len(wkbs):
        geometries[:] = shapely.from_wkb(np.array(wkbs, dtype=object))
    return geometries


def from_wkb(wkb: bytes, multi: bool = False) -> QgsGeometry:
    """A QGIS geometry of ``wkb``; multi-part when ``multi``."""
    geometry = QgsGeometry()
    geometry.fromWkb(wkb)
    if multi:
        geometry.convertToMultiType()
    return geometry


def from_shapely(shape, multi: bool = False) -> QgsGeometry:
    """A QGIS geometry of a shapely one (a null geometry for None); multi-part when ``multi``."""
    if shape is None:
        return QgsGeometry()
    import shapely

    # WKB with an explicit dimension: robust to the GEOS mix inside QGIS (ENVIRONMENT.md trap 3)
    return from_wkb(shapely.to_wkb(shape, output_dimension=2), multi)
