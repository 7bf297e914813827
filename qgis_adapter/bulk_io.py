"""Which inputs and outputs GDAL can read and write in bulk (core.vector_bulk) instead of feature by feature through
QGIS: a layer of QGIS's "ogr" provider backed by a file (a GeoPackage, GeoJSON, shapefile...), read whole or through
its subset filter, and a GeoPackage file destination.

Everything else keeps the feature-by-feature path, which gives the same result: a memory or database layer, the
selected features only, a feature limit, a layer with unsaved edits, a subset filter that is a whole SQL query, a
sublayer of one geometry type, a field that QGIS joins or computes. ``SPACENET_BULK_IO=0`` in the environment
turns the bulk path off everywhere (to compare both, as ``bench/bench_f1_cli.py`` and the tests do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFields,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProperty,
    QgsProviderRegistry,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QFileInfo

from .destinations import destination_layer
from .qt_compat import FieldType

BULK_ENV = "SPACENET_BULK_IO"
# Field types read in bulk with the values QGIS gives (Python int, float or str); others (dates, booleans, lists)
# are read feature by feature.
BULK_FIELD_TYPES = {FieldType.String, FieldType.Int, FieldType.LongLong, FieldType.UInt,
                    FieldType.ULongLong, FieldType.Double}


def bulk_enabled() -> bool:
    """False where ``SPACENET_BULK_IO`` says 0, no, false or off."""
    return os.environ.get(BULK_ENV, "").strip().lower() not in {"0", "no", "false", "off"}


@dataclass(frozen=True)
class OgrFile:
    """The file and layer GDAL reads where QGIS reads an OGR layer, and its subset filter ("" for none)."""

    path: str
    layer_name: str
    layer_index: int
    where: str


def ogr_file(layer, value=None) -> tuple[OgrFile | None, str]:
    """(the file behind ``layer``, "") when GDAL reads exactly the features QGIS would give for the parameter
    ``value`` (the source parameter's value: a definition may ask for the selection); else (None, why not)."""
    if not bulk_enabled():
        return None, f"{BULK_ENV} is off"
    if not isinstance(layer, QgsVectorLayer) or not layer.isValid():
        return None, "not a vector layer"
    if layer.providerType() != "ogr":
        return None, f"a layer of the {layer.providerType()} provider, not a file"
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        if value.selectedFeaturesOnly:
            return None, "the selected features only"
        if getattr(value, "featureLimit", -1) not in (-1, None):
            return None, "a feature limit"
        if getattr(value, "filterExpression", ""):  # QGIS 3.32 and later
            return None, "a filter expression"
    if layer.isEditable() and layer.isModified():
        return None, "unsaved edits"
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path = _text(parts.get("path"))
    if not path or not Path(path).is_file():
        return None, "not a file"
    if _text(parts.get("geometryType")):
        return None, "a sublayer of one geometry type"
    if parts.get("openOptions"):  # GDAL would open the file without them
        return None, "open options"
    where = layer.subsetString().strip()
    if where.lower().startswith("select"):  # a whole query: QGIS runs it as SQL
        return None, "a subset filter that is an SQL query"
    layer_id = parts.get("layerId")
    index = int(layer_id) if isinstance(layer_id, int) or _text(layer_id).isdigit() else 0
    return OgrFile(path, _text(parts.get("layerName")), index, where), ""


def bulk_fields(layer, names) -> str:
    """Why the fields ``names`` of ``layer`` cannot be read in bulk: a field QGIS joins or computes, or of a type
    not in BULK_FIELD_TYPES, or text in an encoding other than UTF-8 (GDAL gives UTF-8); "" when they can."""
    fields = layer.fields()
    for name in names:
        index = fields.lookupField(name)
        if index < 0:
            return f"no field {name}"
        if fields.fieldOrigin(index) != QgsFields.FieldOrigin.OriginProvider:
            return f"{name} is not a field of the file"
        kind = fields.at(index).type()
        if kind not in BULK_FIELD_TYPES:
            return f"{name} is a {fields.at(index).typeName()} field"
        encoding = layer.dataProvider().encoding().replace("-", "").lower()
        if kind == FieldType.String and encoding != "utf8":
            return f"{name} is text in {layer.dataProvider().encoding()}"
    return ""


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def geopackage_destination(value, context) -> str:
    """The GeoPackage file a sink parameter's ``value`` writes, when it names one (a path ending in .gpkg, no layer
    options); "" for anything else: another format, a temporary or memory layer, a provider's URI."""
    if not bulk_enabled() or "|" in _destination_text(value, context):  # a layer name or options: QGIS's sink
        return ""
    path = destination_layer(value, context)[0]
    return path if path.lower().endswith(".gpkg") else ""


def _destination_text(value, context) -> str:
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value, _ = value.valueAsString(context.expressionContext())
    return value if isinstance(value, str) else ""


def geopackage_layer_name(path: str) -> str:
    """The layer name QGIS gives a GeoPackage it writes without a layer name: the file's base name."""
    return QFileInfo(path).baseName()


def crs_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """The CRS as QGIS hands it to GDAL when it writes a file; "" for no CRS."""
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED_GDAL) if crs.isValid() else ""


def register_vector_output(algorithm, parameters, name, context) -> str:
    """The destination of the sink parameter ``name``, registered (where the run asks for it) to load into the
    project on completion as its sink would have registered it; the id the algorithm returns."""
    destination = algorithm.parameterAsOutputLayer(parameters, name, context)
    if context.willLoadLayerOnCompletion(destination):
        context.layerToLoadOnCompletionDetails(destination).layerTypeHint = QgsProcessingUtils.LayerHint.Vector
    return destination
