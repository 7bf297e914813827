"""spacenet:status: the plugin's models, Python packages, inference devices and unavailable algorithms, as the
dependency dialog shows them, for the command line and the modeler. It needs no package beyond the standard
library, so it is offered (and answers) where the others are missing."""

import platform

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFileDestination,
)

from ..core.extract import status
from ..qgis_adapter.models import model_store
from .base import SpaceNetAlgorithm

PROVIDER_ID = "spacenet"


class Status(SpaceNetAlgorithm):
    CHECK_GPU = "CHECK_GPU"
    OUTPUT_JSON = "OUTPUT_JSON"
    VERSION = "VERSION"
    MISSING = "MISSING"
    UNAVAILABLE = "UNAVAILABLE"
    MODELS_MISSING = "MODELS_MISSING"
    DEVICE = "DEVICE"

    GROUP = "data"
    REQUIRES = ()  # the standard library only: it must answer where every other package is missing

    def name(self):
        return "status"

    def displayName(self):  # noqa: N802
        return self.tr("Status: models, dependencies and GPU")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Reports what this installation of SpaceNet Toolkit can do, in the log: the plugin's version; every "
            "model the plugin knows (the shipped ones and those downloaded on first use) with its task, its "
            "version, whether it is here and its card (input bands, tile size, resolution, outputs); every Python "
            "package the algorithms need, installed with its version or <b>MISSING</b> with the pip command that "
            "installs it; what onnxruntime runs models on (its execution providers, whether an NVIDIA GPU answers "
            "and, when one does, whether a session really starts on it); and which algorithms are not offered and "
            "why. It needs no package beyond Python's own, so it runs where the others are missing: the first "
            "thing to run when an algorithm is not in the list.</p>"
            "<p><b>Test the GPU</b> (advanced): where onnxruntime offers CUDA and an NVIDIA driver answers, start "
            "a session of a model on the GPU (a few seconds): onnxruntime falls back to the CPU without a word when "
            "CUDA cannot start, so only a session tells.</p>"
            "<p><b>Status as JSON</b>: the same facts in a file for scripts (optional).</p>"
            "<p><b>Outputs</b> for the next step of a model or a script: the plugin's version, the number of "
            "missing packages, of algorithms not offered and of models not here yet (they are downloaded on first "
            "use), and the device extraction runs on (GPU (CUDA), CPU, or none without onnxruntime).</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        check_gpu = QgsProcessingParameterBoolean(self.CHECK_GPU, self.tr("Test the GPU with a model session"),
                                                  defaultValue=True)
        check_gpu.setFlags(check_gpu.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(check_gpu)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON, self.tr("Status as JSON"), self.tr("JSON files (*.json)"), optional=True,
            createByDefault=False,
        ))
        self.addOutput(QgsProcessingOutputString(self.VERSION, self.tr("Plugin version")))
        self.addOutput(QgsProcessingOutputNumber(self.MISSING, self.tr("Missing Python packages")))
        self.addOutput(QgsProcessingOutputNumber(self.UNAVAILABLE, self.tr("Algorithms not offered")))
        self.addOutput(QgsProcessingOutputNumber(self.MODELS_MISSING, self.tr("Models not here yet")))
        self.addOutput(QgsProcessingOutputString(self.DEVICE, self.tr("Device extraction runs on")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        provider = self._spacenet_provider()
        algorithms, requirements = _algorithms_of(provider)
        found = status.gather(
            plugin_version=provider.versionInfo() if provider is not None else "",
            host=f"QGIS {Qgis.version()}, Python {platform.python_version()}",
            algorithms=algorithms,
            requirements=requirements,
            make_store=model_store,
            check_gpu=self.parameterAsBoolean(parameters, self.CHECK_GPU, context),
        )
        for line in status.report_lines(found):
            feedback.pushInfo(line)
        outputs = {
            self.VERSION: found.plugin_version,
            self.MISSING: len(found.missing_packages),
            self.UNAVAILABLE: len(found.unavailable),
            self.MODELS_MISSING: len(found.models_missing),
            self.DEVICE: found.runtime.device,
        }
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context)
        if json_path:
            status.write_json(found, json_path)
            outputs[self.OUTPUT_JSON] = json_path
        return outputs

    def _spacenet_provider(self):
        """The provider that offers this algorithm (the plugin's, with what it could not offer), else the
        registered one."""
        provider = self.provider()
        if provider is None or not hasattr(provider, "unavailable"):
            provider = QgsApplication.processingRegistry().providerById(PROVIDER_ID)
        return provider


def _algorithms_of(provider) -> tuple[dict, dict]:
    """(algorithm id -> "" when offered or why not, algorithm id -> the modules it needs) of ``provider``."""
    if provider is None:
        return {}, {}
    algorithms = {algorithm.id(): "" for algorithm in provider.algorithms()}
    algorithms.update(getattr(provider, "unavailable", {}))
    requirements = dict(getattr(provider, "requirements", {}))
    return dict(sorted(algorithms.items())), requirements
