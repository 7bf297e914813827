"""The name of the group field in the scoring outputs, and the old name still read.

Earlier builds named it ``group``: an SQL keyword, so every filter or SQL on it needs quotes ("group") and some
tools refuse it. Outputs name it ``group_name`` now; layers that still have ``group`` (old scored layers, or truth
and proposal layers copied from them) are read as before.
"""

from __future__ import annotations

GROUP_NAME = "group_name"
LEGACY_GROUP_NAME = "group"
_SPELLINGS = (GROUP_NAME, LEGACY_GROUP_NAME)


def group_field_in(requested: str, names) -> str:
    """The field of a layer with the field ``names`` that holds the group ``requested`` by name: ``requested``
    itself when the layer has it; else, when one spelling of the group field is asked for (``group_name`` or
    ``group``), the other where the layer has that one (an older or a newer scored layer); else ""."""
    names = list(names)
    if requested in names:
        return requested
    if requested in _SPELLINGS:
        other = next(name for name in _SPELLINGS if name != requested)
        if other in names:
            return other
    return ""
