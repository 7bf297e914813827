"""The ``spacenet`` Processing provider: lists its algorithms explicitly and offers those that can run."""

import configparser
import logging

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON_PATH, PLUGIN_DIR, tr
from .extract_buildings import ExtractBuildings
from .extract_roads import ExtractRoads
from .fetch_tiles import FetchTiles
from .score_apls import ScoreApls
from .score_f1 import ScoreF1

log = logging.getLogger(__name__)

# Every algorithm of the plugin, in toolbox order. Algorithms arrive with their own issues.
ALGORITHMS = (FetchTiles, ExtractBuildings, ExtractRoads, ScoreF1, ScoreApls)


class SpaceNetProvider(QgsProcessingProvider):
    def __init__(self, algorithm_classes=ALGORITHMS):
        super().__init__()
        self._algorithm_classes = tuple(algorithm_classes)
        # "provider:name" -> why it cannot run; the plugin shows this to the user.
        self.unavailable = {}

    def id(self) -> str:
        return "spacenet"

    def name(self) -> str:
        return tr("SpaceNet")

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return tr("SpaceNet Toolkit")

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def versionInfo(self) -> str:  # noqa: N802 - QGIS API
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
        return metadata.get("general", "version", fallback="")

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        self.unavailable = {}
        for algorithm_class in self._algorithm_classes:
            algorithm = algorithm_class()
            reason = algorithm_class.missing_dependencies()
            if reason:
                algorithm_id = f"{self.id()}:{algorithm.name()}"
                self.unavailable[algorithm_id] = reason
                log.warning("%s (%s) is not available. %s", algorithm.displayName(), algorithm_id, reason)
            else:
                self.addAlgorithm(algorithm)
