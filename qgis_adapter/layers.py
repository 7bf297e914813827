"""What a layer's source names: the file behind it, and whether it is a raster file the engine can read."""

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingUtils


class NotARasterFileError(ValueError):
    """The layer is not a raster file that GDAL reads (a web service, a memory or virtual raster); the message
    says what to do."""


def source_path(layer) -> str:
    """The file (or URI) behind ``layer``, without the provider's options after ``|`` (``|layername=``...)."""
    return layer.source().split("|")[0]


def raster_file(layer) -> str:
    """The raster file behind ``layer``; NotARasterFileError when it is not one."""
    path = source_path(layer)
    if layer.providerType() != "gdal" or not Path(path).is_file():
        raise NotARasterFileError(QgsApplication.translate(
            "SpaceNet", "'{name}' is not a raster file (provider {provider}): save it as a GeoTIFF first "
            "(right-click > Export > Save As…).").format(name=layer.name(), provider=layer.providerType()))
    return path


def unreadable_raster(value, context) -> str:
    """Why ``value``, a raster parameter's value, is a file GDAL cannot open as a raster (a text file named .tif):
    QGIS would say "not found" of a file that is there. "" when it reads, or when it is not a file (a layer id,
    a URI, nothing: QGIS's own check answers those)."""
    if not isinstance(value, str) or not Path(value).is_file():
        return ""
    # The layer loaded here stays in the context: the run's parameterAsRasterLayer finds it there, loaded once.
    if QgsProcessingUtils.mapLayerFromString(value, context, True, QgsProcessingUtils.LayerHint.Raster) is not None:
        return ""
    return QgsApplication.translate(
        "SpaceNet", "'{path}' is not a raster GDAL can read: give an image file such as a GeoTIFF.").format(path=value)
