"""Where a Processing destination parameter's value writes: its file, so that an algorithm can refuse before any
work a folder that is not there or takes no file, and an output that would overwrite an input or another output,
instead of failing (or destroying data) when it writes, after the whole run."""

import os
import re
import tempfile
from pathlib import Path

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingUtils,
    QgsProperty,
)

# "memory:", "ogr:dbname=...", "postgres://...": written by a data provider, not a file in a folder we can check.
# One letter before the colon is a Windows drive, a file.
_PROVIDER_URI = re.compile(r"^[A-Za-z][\w+.-]+:")


def destination_layer(value, context) -> tuple:
    """(file, layer name or "") that a destination parameter's ``value`` writes, without layer options; ("", "") for
    no value (an optional output left out), a temporary output or a data provider's URI."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value, _ = value.valueAsString(context.expressionContext())
    if not isinstance(value, str):
        return "", ""
    path = value.split("|")[0].strip()
    if not path or path == QgsProcessing.TEMPORARY_OUTPUT or _PROVIDER_URI.match(path):
        return "", ""
    return path, _layer_name(value)


def source_layer(value, context) -> tuple:
    """(file, layer name or "") that an input parameter's ``value`` reads: a path, a layer id or name of the
    project, a layer, a feature source definition; ("", "") for anything else (a number, a database layer)."""
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source
    if isinstance(value, QgsProperty):
        value, _ = value.valueAsString(context.expressionContext())
    if isinstance(value, str) and value.strip():
        path = value.split("|")[0].strip()
        if _is_file(path):
            return path, _layer_name(value)
        value = QgsProcessingUtils.mapLayerFromString(value, context)
    if isinstance(value, QgsMapLayer):
        path = value.source().split("|")[0]
        return (path, _layer_name(value.source())) if _is_file(path) else ("", "")
    return "", ""


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a memory layer's URI: too long for a file name, or holding a NUL
        return False


def _layer_name(uri: str) -> str:
    found = re.search(r"\|layername=([^|]*)", uri)
    return found.group(1) if found else ""


def overwrites(written: tuple, other: tuple, whole_file: bool) -> bool:
    """Whether writing (file, layer) ``written`` destroys ``other``: the same file, and either the writer replaces
    the whole file (``whole_file``: a raster; a vector output with no layer name) or the same layer."""
    if not written[0] or not other[0] or not _same_file(written[0], other[0]):
        return False
    return whole_file or not written[1] or not other[1] or written[1] == other[1]


def _same_file(a: str, b: str) -> bool:
    if Path(a).exists() and Path(b).exists():
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def unwritable_folder(path: str) -> str:
    """Why no file can be made in the folder of ``path`` (the system's words), "" when one can: found by making
    one, as permission bits say nothing of a read-only mount or an immutable folder."""
    try:
        with tempfile.TemporaryFile(dir=Path(path).parent or "."):
            return ""
    except OSError as error:
        return error.strerror or str(error)


def unusable_folder(path: str) -> Path | None:
    """The folder ``path`` would be written into when that folder is not there (or is a file); None when it is."""
    folder = Path(path).parent
    return None if folder.is_dir() else folder
