"""GDAL's messages on qgis_process's console: the one that reports a blank raster as an error is left out.

qgis_process loads every raster parameter before the algorithm starts, and QGIS computes the band statistics of
the layer's default style; on a raster whose every pixel is nodata GDAL then prints "ERROR 1: ... Failed to compute
statistics, no valid pixels found in sampling." for each band, though nothing failed: the layer loads, and the
extraction itself warns that the raster holds no data and writes empty outputs. Only in qgis_process (the desktop
prints GDAL's messages nowhere a user looks) and only that message: every other one is printed as GDAL prints it.
"""

import contextlib
import sys

from qgis.core import QgsApplication

NO_VALID_PIXELS = "Failed to compute statistics, no valid pixels found in sampling"
CE_DEBUG, CE_WARNING = 1, 2  # GDAL's CPLErr values

_installed = []  # the handler, kept referenced while GDAL may call it


def install() -> bool:
    """In qgis_process, once per process: GDAL's messages go through ``handle``. True when it is installed."""
    if _installed or QgsApplication.platform() != "qgis_process":
        return bool(_installed)
    from osgeo import gdal

    # on the main thread, where qgis_process loads the parameters' layers and runs the algorithm
    gdal.PushErrorHandler(handle)
    _installed.append(handle)
    return True


def handle(error_class: int, number: int, message: str) -> None:
    """GDAL's default handler (its format, on stderr), less the statistics of a raster without data."""
    if NO_VALID_PIXELS in (message or ""):
        return
    if error_class == CE_DEBUG:
        line = message
    elif error_class == CE_WARNING:
        line = f"Warning {number}: {message}"
    else:
        line = f"ERROR {number}: {message}"
    with contextlib.suppress(Exception):  # a message handler must never break the GDAL call that reported
        sys.stderr.write(f"{line}\n")
