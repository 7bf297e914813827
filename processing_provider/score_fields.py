"""The scoring algorithms' fields on the QGIS side: the group field found in a layer under either of its names, and
the layer options that make a CSV table write its numbers as numbers.

Imported when a scoring algorithm runs (no numpy, no shapely needed).
"""

from ..core.score import scored_fields

# GDAL's CSV writer quotes every integer under its default STRING_QUOTING=IF_AMBIGUOUS (GDAL 3.6: "28","2","6"),
# so a spreadsheet or pandas reads the counts as text; IF_NEEDED quotes only text that holds a separator, a quote or
# a line break. Real numbers are written with GDAL's 15 significant digits either way.
CSV_TABLE_OPTIONS = ["STRING_QUOTING=IF_NEEDED"]


def group_field(source, name: str) -> str:
    """The field of ``source`` (a layer or feature source) that holds the group field ``name``: ``name``, or its
    other spelling where the layer has only that (``group`` in older scored layers, ``group_name`` in newer ones:
    ``core.score.scored_fields``); "" when it has neither."""
    if source.fields().lookupField(name) >= 0:
        return name
    return scored_fields.group_field_in(name, source.fields().names())


def group_label(value) -> str:
    """A group field's value as a group's name: "" for null, a whole number as an integer whatever the field's type
    (a tile 7 in an integer field and 7.0 in a real one is one group), anything else as text."""
    if value is None or (hasattr(value, "isNull") and value.isNull()):  # QVariant NULL
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def table_layer_options(destination: str) -> list:
    """The GDAL layer options for a table written to ``destination`` (a path or URI): CSV_TABLE_OPTIONS for a CSV
    file, none for anything else (other drivers would warn of an option they do not know)."""
    path = str(destination or "").split("|")[0]
    return list(CSV_TABLE_OPTIONS) if path.lower().endswith(".csv") else []
