"""What the web-layer tests of the QGIS tier share: a feedback that keeps what the run said, a run of the building
extraction, its footprints and their F1 against another run's, a raster's extent as an EXTENT value, and a tile
cache of the test's own.

Import it with ``tests/support`` on ``sys.path`` (``import web_layers``), inside a QGIS process.
"""

from __future__ import annotations

import contextlib

import numpy as np
import shapely
from qgis.core import QgsProcessingFeedback, QgsRasterLayer, QgsSettings

ALGORITHM = "spacenet:extractbuildings"


class Log(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.warnings, self.infos = [], []

    def pushWarning(self, text):  # noqa: N802 - QGIS API
        self.warnings.append(text)
        super().pushWarning(text)

    def pushInfo(self, text):  # noqa: N802 - QGIS API
        self.infos.append(text)
        super().pushInfo(text)

    def settings(self) -> str:
        """The run's 'Settings: {...}' line."""
        return next(line for line in self.infos if line.startswith("Settings:"))


def extent_of(path) -> str:
    layer = QgsRasterLayer(str(path), "source")
    e = layer.extent()
    return f"{e.xMinimum()!r},{e.xMaximum()!r},{e.yMinimum()!r},{e.yMaximum()!r} [EPSG:3857]"


def run(parameters, feedback=None):
    import processing

    return processing.run(ALGORITHM, {"OUTPUT": "memory:", "DEVICE": "cpu", **parameters},
                          feedback=feedback or QgsProcessingFeedback())


def polygons(result) -> np.ndarray:
    return np.array([shapely.from_wkb(bytes(f.geometry().asWkb())) for f in result["OUTPUT"].getFeatures()],
                    dtype=object)


def f1(truth, proposals) -> float:
    from spacenet_toolkit.core.score import f1 as scoring

    return scoring.score(scoring.PolygonSet(truth), scoring.PolygonSet(proposals)).total.f1


@contextlib.contextmanager
def cache_folder(folder):
    """QGIS's cache folder (and so the tile cache in it) set to ``folder`` while the block runs."""
    settings = QgsSettings()
    before = settings.value("cache/directory")
    settings.setValue("cache/directory", str(folder))
    try:
        yield folder
    finally:
        if before is None:
            settings.remove("cache/directory")
        else:
            settings.setValue("cache/directory", before)


@contextlib.contextmanager
def setting(key: str, value):
    """A QGIS setting set to ``value`` while the block runs, removed after."""
    QgsSettings().setValue(key, value)
    try:
        yield
    finally:
        QgsSettings().remove(key)
