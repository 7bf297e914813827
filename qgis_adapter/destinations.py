"""Where a Processing destination parameter's value writes: its file, so that an algorithm can refuse a folder
that is not there before any work instead of failing when it writes, after the whole run."""

import re
from pathlib import Path

from qgis.core import QgsProcessing, QgsProcessingOutputLayerDefinition, QgsProperty

# "memory:", "ogr:dbname=...", "postgres://...": written by a data provider, not a file in a folder we can check.
# One letter before the colon is a Windows drive, a file.
_PROVIDER_URI = re.compile(r"^[A-Za-z][\w+.-]+:")


def destination_file(value, context) -> str:
    """The file that a destination parameter's ``value`` names, without layer options (``|layername=``...); ""
    for no value (an optional output left out), a temporary output or a data provider's URI."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value, _ = value.valueAsString(context.expressionContext())
    if not isinstance(value, str):
        return ""
    path = value.split("|")[0].strip()
    if not path or path == QgsProcessing.TEMPORARY_OUTPUT or _PROVIDER_URI.match(path):
        return ""
    return path


def unusable_folder(path: str) -> Path | None:
    """The folder ``path`` would be written into when that folder is not there (or is a file); None when it is."""
    folder = Path(path).parent
    return None if folder.is_dir() else folder
