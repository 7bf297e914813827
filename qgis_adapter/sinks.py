"""Writing features: the fields of a sink, and one feature of a shapely geometry into it."""

from qgis.core import QgsFeature, QgsFeatureSink, QgsField, QgsFields

from .geometry import from_shapely


def fields_of(*definitions) -> QgsFields:
    """Fields from (name, type) pairs: the types of ``qt_compat.FieldType``."""
    fields = QgsFields()
    for name, kind in definitions:
        fields.append(QgsField(name, kind))
    return fields


def add_feature(sink, fields, shape, attributes, multi=False) -> None:
    """One feature of a shapely geometry (a multi-part geometry when ``multi``) and its attributes."""
    feature = QgsFeature(fields)
    feature.setGeometry(from_shapely(shape, multi))
    feature.setAttributes(attributes)
    sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
