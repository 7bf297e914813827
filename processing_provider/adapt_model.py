"""spacenet:adaptmodel: fine-tune a building model on corrected footprints, measured on a held-out fifth."""

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsSettings,
)

from ..core import choices
from ..qgis_adapter.models import user_models_dir
from . import adapt_inputs
from .base import SpaceNetAlgorithm

TRAINING_PYTHON_SETTING = "spacenet/training_python"


def training_python_setting() -> str:
    """The plugin setting naming a Python with PyTorch and onnx; empty: QGIS's own Python."""
    return str(QgsSettings().value(TRAINING_PYTHON_SETTING, "", type=str) or "")


class AdaptModel(SpaceNetAlgorithm):
    NAME = "NAME"
    MINUTES = "MINUTES"
    DEVICE = "DEVICE"
    MAX_STEPS = "MAX_STEPS"
    TRAINING_PYTHON = "TRAINING_PYTHON"
    MODEL_NAME = "MODEL_NAME"
    MODEL_PATH = "MODEL_PATH"
    BASE_F1 = "BASE_F1"
    ADAPTED_F1 = "ADAPTED_F1"

    GROUP = "models"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio", "onnxruntime")

    def name(self):
        return "adaptmodel"

    def displayName(self):  # noqa: N802
        return self.tr("Adapt model to this area")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Turns your corrections into a better model for the rest of the city: fine-tunes a building model on "
            "the footprints you corrected, measures it against the model it started from on a fifth of the area "
            "it never trained on, and saves it as a new model that every model list offers.</p>"
            + adapt_inputs.INPUTS_HELP +
            "<p>How: the area is cut into training chips at the model's resolution (as <i>Export training "
            "chips</i> writes them); square blocks of chips holding about a fifth of it are held out to measure, "
            "another fifth (when the area is large enough) chooses the new model's threshold and minimum score, the "
            "rest trains. Where the imagery is sharper than the model's resolution, the base model is first tried on "
            "finer pixels too (up to two thirds of its distance) and the new model runs at the one that scores best "
            "off the held-out blocks. The fine-tuning keeps the weights with the lowest loss on the tuning fifth "
            "(the base's own when no step improves on them). Both models are then extracted over the held-out "
            "blocks and scored (object F1, IoU ≥ 0.5). "
            "The area needs at least 15 corrected buildings, 3 of them in the held-out fifth. The default base "
            "model is buildings_effnet_lite0 (an ImageNet-pretrained encoder) where it is installed: it learned "
            "more from the same few roofs than buildings_unet_small in both areas measured (README).</p>"
            "<p><b>Name</b>: the new model's name (lower-case letters, digits, _). <b>Minutes</b>: the time "
            "budget of the fine-tuning itself (cutting chips and scoring come on top, usually under a minute "
            "each); the default 6 is the budget the README's figures were measured with, on 2 CPU cores. "
            "<b>Device</b>: auto trains on a GPU when PyTorch sees one.</p>"
            "<p><b>Where training runs</b>: PyTorch and onnx are needed, in QGIS's Python (SpaceNet > Python "
            "dependencies…, optional extras) or in another environment whose python is named in "
            "<b>Training Python</b> (advanced; default: the setting spacenet/training_python). It runs as a "
            "separate process: QGIS never loads PyTorch.</p>"
            "<p><b>Outputs</b>: the model (NAME.onnx, and NAME.fp16.onnx, its half-precision variant that a GPU "
            "runs, unless float16 would change its probabilities) in your user models folder, with a card "
            "recording the base model, the area, the buildings, steps, minutes, "
            "device and both held-out scores; delete it with <i>Delete a model of yours</i>. Cancel stops the "
            "training and keeps nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        adapt_inputs.add_input_parameters(self)
        self.addParameter(QgsProcessingParameterString(self.NAME, self.tr("New model's name"),
                                                       defaultValue="buildings_adapted"))
        self.addParameter(QgsProcessingParameterNumber(self.MINUTES, self.tr("Training time budget, minutes"),
                                                       QgsProcessingParameterNumber.Type.Double, defaultValue=6.0,
                                                       minValue=0.1, maxValue=24 * 60))
        device = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(choices.DEVICES),
                                            defaultValue="auto", usesStaticStrings=True)
        steps = QgsProcessingParameterNumber(self.MAX_STEPS, self.tr("Stop after this many steps (0: the budget "
                                                                     "decides)"),
                                             QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0)
        python = QgsProcessingParameterString(self.TRAINING_PYTHON, self.tr("Training Python (empty: QGIS's own, or "
                                                                            "the plugin setting)"),
                                              defaultValue=training_python_setting(), optional=True)
        for advanced in (device, steps, python):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)
        for key, label in ((self.MODEL_NAME, "Adapted model"), (self.MODEL_PATH, "Adapted model file")):
            self.addOutput(QgsProcessingOutputString(key, self.tr(label)))
        for key, label in ((self.BASE_F1, "Base model's held-out F1"), (self.ADAPTED_F1, "Adapted model's "
                                                                                           "held-out F1")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.adapt import adapt, training_python
        from ..core.adapt.chips import AdaptInputError
        from ..core.extract import raster
        from ..qgis_adapter.models import model_store

        folder = user_models_dir()
        try:
            name = adapt.check_name(self.parameterAsString(parameters, self.NAME, context), str(folder),
                                    taken=model_store().registry.names())
        except AdaptInputError as error:
            raise QgsProcessingException(str(error)) from error
        inputs = adapt_inputs.read_inputs(self, parameters, context, feedback)
        if not inputs or feedback.isCanceled():
            return {}
        request = adapt.AdaptRequest(
            raster_path=inputs["raster_path"], footprints=inputs["footprints"], area=inputs["area"],
            base_model=inputs["model_path"], name=name, models_dir=str(folder),
            minutes=self.parameterAsDouble(parameters, self.MINUTES, context),
            device=self.enum_value(parameters, self.DEVICE, context) or "auto", bands=inputs["bands"],
            python=self.parameterAsString(parameters, self.TRAINING_PYTHON, context) or training_python_setting(),
            max_steps=self.parameterAsInt(parameters, self.MAX_STEPS, context) or None,
            raster_label=inputs["raster_label"], area_label=inputs["area_label"])
        feedback.pushInfo(self.tr(f"Adapting {inputs['model_path']} to {inputs['area_label']} of "
                                  f"'{inputs['raster_label']}' from {len(inputs['footprints'])} footprints."))
        try:
            adapted = self.run_core(feedback, adapt.adapt, request, low=5.0,
                                    canceled=self.tr("Canceled: no model was written."))
        except (AdaptInputError, ValueError, raster.RasterError, training_python.TrainingPythonError,
                RuntimeError) as error:
            raise QgsProcessingException(str(error)) from error
        if adapted is None:
            return {}
        feedback.pushInfo(adapted.summary())
        if adapted.warning():
            feedback.pushWarning(adapted.warning())
        feedback.pushInfo(self.tr(f"Saved as {adapted.path}: choose '{name}' as the model of Extract building "
                                  "footprints."))
        feedback.setProgress(100)
        return {self.MODEL_NAME: name, self.MODEL_PATH: str(adapted.path), self.BASE_F1: adapted.base_score.f1,
                self.ADAPTED_F1: adapted.adapted_score.f1}
