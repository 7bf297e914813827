"""Qt names that work on every QGIS the plugin supports: QGIS 3.22 (Qt 5) up to QGIS 4 (Qt 6).

Field types are the one place the two disagree for this plugin. QGIS before 3.38 makes a ``QgsField`` from a
``QVariant.Type`` only; QGIS 3.38 takes ``QMetaType.Type`` (and deprecates the other); Qt 6 has no ``QVariant.Type``
at all. :class:`FieldType` holds whichever kind the running QGIS's ``QgsField`` takes, found by asking it once, so
``QgsField(name, FieldType.Double)`` and ``field.type() == FieldType.String`` read the same everywhere.
``scripts/check_qt6.py`` (``make lint``) sends every other use of ``QVariant`` types here.
"""

from qgis.core import QgsField
from qgis.PyQt.QtCore import QMetaType, QVariant


def _fields_take_metatype() -> bool:
    try:
        QgsField("probe", QMetaType.Type.Int)
    except TypeError:  # QGIS < 3.38: QVariant.Type only
        return False
    return True


FIELDS_TAKE_METATYPE = _fields_take_metatype()

# FieldType name -> QMetaType.Type name (QMetaType prefixes Qt classes with Q).
_METATYPE_NAMES = {
    "Bool": "Bool", "Int": "Int", "UInt": "UInt", "LongLong": "LongLong", "ULongLong": "ULongLong",
    "Double": "Double", "String": "QString", "Date": "QDate", "Time": "QTime", "DateTime": "QDateTime",
    "ByteArray": "QByteArray",
}


def _field_type(name: str):
    if FIELDS_TAKE_METATYPE:
        return getattr(QMetaType.Type, _METATYPE_NAMES[name])
    return getattr(QVariant.Type, name)  # qt6-check: allow (QGIS < 3.38 runs on Qt 5 only)


class FieldType:
    """Attribute types for ``QgsField``, named as ``QVariant`` named them."""

    Bool = _field_type("Bool")
    Int = _field_type("Int")
    UInt = _field_type("UInt")
    LongLong = _field_type("LongLong")
    ULongLong = _field_type("ULongLong")
    Double = _field_type("Double")
    String = _field_type("String")
    Date = _field_type("Date")
    Time = _field_type("Time")
    DateTime = _field_type("DateTime")
    ByteArray = _field_type("ByteArray")
