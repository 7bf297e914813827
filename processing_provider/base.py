"""The small base every SpaceNet algorithm shares: translation, instances, groups, dependencies, the checks every
run passes before any work (raster inputs GDAL reads, output folders that are there), and the one bridge from
core's progress contract (``report(fraction, message)``, ``is_canceled``, ``Canceled``) to the feedback.
"""

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import dependencies, progress
from ..qgis_adapter.destinations import destination_file, unusable_folder
from ..qgis_adapter.layers import unreadable_raster

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

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """Refuse, before any work, a raster input GDAL cannot read (QGIS would call it "not found") and an output
        into a folder that is not there (found only when writing, after the whole run, with a traceback)."""
        message = self.unreadable_raster_input(parameters, context) or self.missing_output_folder(parameters, context)
        if message:
            return False, message
        return super().checkParameterValues(parameters, context)

    def unreadable_raster_input(self, parameters, context) -> str:
        """The first raster parameter whose file GDAL cannot read, said in one sentence; "" when none."""
        for definition in self.parameterDefinitions():
            if definition.type() == QgsProcessingParameterRasterLayer.typeName():
                why = unreadable_raster(parameters.get(definition.name()), context)
                if why:
                    return f"{definition.name()}: {why}"
        return ""

    def missing_output_folder(self, parameters, context) -> str:
        """The first file output whose folder is not there, said in one sentence; "" when none. A folder output
        is left alone: the algorithm creates it."""
        for definition in self.destinationParameterDefinitions():
            if definition.type() == QgsProcessingParameterFolderDestination.typeName():
                continue
            path = destination_file(parameters.get(definition.name()), context)
            folder = unusable_folder(path) if path else None
            if folder is None:
                continue
            what = f"{definition.name()} ({definition.description()})"
            if folder.exists():
                return self.tr(f"The folder of {what}, '{folder}', is a file: choose another place for {path}.")
            return self.tr(f"The folder '{folder}' for {what} does not exist: create it or choose another folder.")
        return ""

    def raster_parameter(self, parameters, name, context):
        """The raster layer of parameter ``name``; QgsProcessingException with the clearest reason when none."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            why = unreadable_raster(parameters.get(name), context)
            raise QgsProcessingException(f"{name}: {why}" if why else self.invalidRasterError(parameters, name))
        return layer

    def run_core(self, feedback, function, *args, canceled: str | None = None, low: float = 0.0, high: float = 100.0,
                 **kwargs):
        """``function(*args, **kwargs, report=, is_canceled=)`` with core's progress contract on ``feedback``: its
        fractions fill ``low`` to ``high`` percent of the bar, its messages go to the log and the user's cancel
        stops it. Returns its result, or None when canceled (after the warning ``canceled``, when given)."""
        try:
            return function(*args, **kwargs, report=reporting(feedback, low, high), is_canceled=feedback.isCanceled)
        except progress.Canceled:
            if canceled:
                feedback.pushWarning(canceled)
            return None

    @classmethod
    def missing_dependencies(cls) -> str:
        """Why this algorithm cannot run here, or "" when it can."""
        return dependencies.describe_missing(cls.REQUIRES)


def reporting(feedback, low: float = 0.0, high: float = 100.0) -> progress.Report:
    """core's ``report(fraction, message)`` onto ``feedback``: the fraction as ``low``..``high`` percent of the
    bar, the message (when there is one) as a line of the log."""

    def report(fraction: float, message: str | None = None) -> None:
        feedback.setProgress(low + (high - low) * fraction)
        if message:
            feedback.pushInfo(message)

    return report


def features(source, request, feedback, low: float = 0.0, high: float = 100.0, flags=None):
    """``source``'s features for ``request``, moving the bar from ``low`` to ``high`` percent as they are read
    (every thousandth) and stopping early when the user cancels: the caller checks ``feedback.isCanceled()``."""
    total = max(source.featureCount(), 1)
    found = source.getFeatures(request) if flags is None else source.getFeatures(request, flags)
    for count, feature in enumerate(found):
        if feedback.isCanceled():
            return
        yield feature
        if count % 1000 == 0:
            feedback.setProgress(low + (high - low) * count / total)
