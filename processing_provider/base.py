"""The small base every SpaceNet algorithm shares: translation, instances, groups, dependencies."""

from pathlib import Path

from qgis.core import QgsProcessingAlgorithm
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import dependencies

PLUGIN_DIR = Path(__file__).resolve().parent.parent
ICON_PATH = PLUGIN_DIR / "icon.png"
HELP_URL = "https://github.com/spacenet-toolkit/spacenet_toolkit#algorithms"

# Group ids are stable API (models refer to them); the names are translated.
GROUPS = {
    "data": "Data",
    "extraction": "Extraction",
    "evaluation": "Evaluation",
}


def tr(text: str, context: str = "SpaceNet") -> str:
    return QCoreApplication.translate(context, text)


class SpaceNetAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``GROUP`` (a key of ``GROUPS``) and ``REQUIRES`` (importable module names)."""

    GROUP = "data"
    REQUIRES: tuple = ()

    def tr(self, text: str) -> str:
        return tr(text, type(self).__name__)

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return self.GROUP

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return HELP_URL

    @classmethod
    def missing_dependencies(cls) -> str:
        """Why this algorithm cannot run here, or "" when it can."""
        return dependencies.describe_missing(cls.REQUIRES)
