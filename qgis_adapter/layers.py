"""What a layer's source names: the file behind it, and whether it is a raster file the engine can read."""

from pathlib import Path

from qgis.core import QgsApplication


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
