"""The ``spacenet`` Processing provider: lists its algorithms explicitly and offers those that can run, and the
graphical models shipped in ``models/`` (built by scripts/build_models.py)."""

import configparser
import contextlib
import logging
from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingParameterEnum, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .adapt_model import AdaptModel
from .base import ICON_PATH, PLUGIN_DIR, enum_name, tr
from .calibrate import Calibrate
from .delete_model import DeleteModel
from .export_training_chips import ExportTrainingChips
from .extract_buildings import ExtractBuildings
from .extract_roads import ExtractRoads
from .fetch_tiles import FetchTiles
from .score_apls import ScoreApls
from .score_f1 import ScoreF1
from .status import Status

log = logging.getLogger(__name__)

# Every algorithm of the plugin, in toolbox order. Algorithms arrive with their own issues.
ALGORITHMS = (FetchTiles, ExtractBuildings, ExtractRoads, ScoreF1, ScoreApls, Calibrate, ExportTrainingChips,
              AdaptModel, DeleteModel, Status)
MODELS_DIR = Path(__file__).resolve().parent / "models"


class ShippedModel(QgsProcessingModelAlgorithm):
    """A model offered as ``spacenet:<file stem>``: in QGIS 3.22 a model's own name is its display name."""

    def __init__(self, name: str, definition):
        super().__init__()
        self._name = name
        self.loadVariant(definition)

    @classmethod
    def from_file(cls, path: Path) -> "ShippedModel":
        model = QgsProcessingModelAlgorithm()
        if not model.fromFile(str(path)):
            raise ValueError(f"{path} is not a QGIS model")
        return cls(path.stem, model.toVariant())

    def name(self) -> str:
        return self._name

    def createInstance(self):  # noqa: N802 - QGIS API
        return ShippedModel(self._name, self.toVariant())

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """A choice is taken by number as by name, as in the plugin's algorithms (QGIS 3.22 refuses the number
        of a static-string choice)."""
        return super().checkParameterValues(self._named_choices(parameters), context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        # the steps get the option's name: a number means the model's own list, not the step's
        return super().processAlgorithm(self._named_choices(parameters), context, feedback)

    def _named_choices(self, parameters) -> dict:
        named = dict(parameters)
        for definition in self.parameterDefinitions():
            if definition.name() in named and definition.type() == QgsProcessingParameterEnum.typeName() \
                    and definition.usesStaticStrings():
                named[definition.name()] = enum_name(definition, named[definition.name()])
        return named


class SpaceNetProvider(QgsProcessingProvider):
    def __init__(self, algorithm_classes=ALGORITHMS, models_dir=MODELS_DIR):
        super().__init__()
        self._algorithm_classes = tuple(algorithm_classes)
        self._models_dir = models_dir
        # "provider:name" -> why it cannot run; the plugin and spacenet:status show this to the user.
        self.unavailable = {}
        # "provider:name" -> the modules it needs, offered or not; spacenet:status says which package serves what.
        self.requirements = {}

    def id(self) -> str:
        return "spacenet"

    def name(self) -> str:
        # qgis_process list prints name() above the algorithms (--json: name and long_name), the toolbox shows it
        # as the group: where algorithms are left out, both say so.
        return self._with_missing_note(tr("SpaceNet"))

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return self._with_missing_note(tr("SpaceNet Toolkit"))

    def _with_missing_note(self, name: str) -> str:
        count = len(self.unavailable)
        if not count:
            return name
        if count == 1:
            return tr("{name} (1 algorithm needs missing packages: run spacenet:status)").format(name=name)
        return tr("{name} ({count} algorithms need missing packages: run spacenet:status)").format(
            name=name, count=count)

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def versionInfo(self) -> str:  # noqa: N802 - QGIS API
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read(PLUGIN_DIR / "metadata.txt", encoding="utf-8")
        return metadata.get("general", "version", fallback="")

    # Rasters are written as GeoTIFF only (the probability output): the dialogs offer that, and a run asked for
    # another format is refused (QGIS 3.22 asks the first method, 3.32 and later the second).
    def supportedOutputRasterLayerExtensions(self) -> list:  # noqa: N802 - QGIS API
        return ["tif", "tiff"]

    def supportedOutputRasterLayerFormatAndExtensions(self) -> list:  # noqa: N802 - QGIS API
        return [("GTiff", "tif"), ("GTiff", "tiff")]

    def load(self) -> bool:
        # A model finds its steps through the registry, which lists this provider only after load():
        # the models are completed when the registry announces it.
        QgsApplication.processingRegistry().providerAdded.connect(self._complete_models)
        return super().load()

    def unload(self) -> None:
        with contextlib.suppress(TypeError):  # never connected
            QgsApplication.processingRegistry().providerAdded.disconnect(self._complete_models)
        super().unload()

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        self.unavailable = {}
        self.requirements = {}
        for algorithm_class in self._algorithm_classes:
            algorithm = algorithm_class()
            algorithm_id = f"{self.id()}:{algorithm.name()}"
            self.requirements[algorithm_id] = tuple(algorithm_class.REQUIRES)
            reason = algorithm_class.missing_dependencies()
            if reason:
                self.unavailable[algorithm_id] = reason
                log.warning("%s (%s) is not available. %s", algorithm.displayName(), algorithm_id, reason)
            else:
                self.addAlgorithm(algorithm)
        if self._models_dir is not None:
            self._load_models()

    def _load_models(self) -> None:
        offered = {algorithm.id() for algorithm in self.algorithms()}
        for path in sorted(self._models_dir.glob("*.model3")):
            try:
                model = ShippedModel.from_file(path)
            except ValueError as error:
                log.warning("%s", error)
                continue
            model_id = f"{self.id()}:{model.name()}"
            missing = sorted({child.algorithmId() for child in model.childAlgorithms().values()
                              if child.algorithmId().startswith(f"{self.id()}:")} - offered)
            if missing:
                self.unavailable[model_id] = tr(f"It needs {', '.join(missing)}, which cannot run here.")
                log.warning("%s (%s) is not available. %s", model.displayName(), model_id,
                            self.unavailable[model_id])
            else:
                self.addAlgorithm(model)

    def _complete_models(self, provider_id: str) -> None:
        """Load the models again now that their steps resolve: their output parameters come from the steps."""
        if provider_id == self.id():
            for algorithm in self.algorithms():
                if isinstance(algorithm, ShippedModel):
                    algorithm.loadVariant(algorithm.toVariant())
