"""spacenet:exporttrainingchips: training chips (image; building, interior, known masks) from corrected footprints."""

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from . import adapt_inputs
from .base import SpaceNetAlgorithm


class ExportTrainingChips(SpaceNetAlgorithm):
    CHIP_SIZE = "CHIP_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    CHIP_COUNT = "CHIP_COUNT"
    BUILDING_COUNT = "BUILDING_COUNT"

    GROUP = "models"
    REQUIRES = ("numpy", "shapely", "rasterio")

    def name(self):
        return "exporttrainingchips"

    def displayName(self):  # noqa: N802
        return self.tr("Export training chips")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Writes training chips from imagery and the footprints corrected on it, exactly as the model sees "
            "the imagery: at the model's ground sample distance, with its band mapping and the stretch an "
            "extraction over the area would use. <i>Adapt model to this area</i> trains on the same chips; other "
            "training tools can read them too.</p>"
            + adapt_inputs.INPUTS_HELP +
            "<p><b>Output folder</b> (new or empty): <code>images/chip_NNNNN.tif</code> (the model's input bands "
            "after the stretch, 0-255), <code>masks/chip_NNNNN.tif</code> (bands building, interior: each footprint "
            "shrunk by 1 m, the seeds that part touching roofs, and known: inside the area and on raster data) and "
            "<code>manifest.json</code> (model, resolution, bands, stretch, each chip's bounds and hold-out block). "
            "The chips keep the licences of the imagery and the footprints.</p>"
            "<p><b>Chip size</b> (advanced): pixels per side, a multiple of 32. Cancel keeps nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        adapt_inputs.add_input_parameters(self)
        size = QgsProcessingParameterNumber(self.CHIP_SIZE, self.tr("Chip size, px"),
                                            QgsProcessingParameterNumber.Type.Integer, defaultValue=256,
                                            minValue=32, maxValue=4096)
        size.setFlags(size.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(size)
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputNumber(self.CHIP_COUNT, self.tr("Chips")))
        self.addOutput(QgsProcessingOutputNumber(self.BUILDING_COUNT, self.tr("Buildings in the area")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.adapt import chips, holdout
        from ..core.extract import modelcard, onnx_file, raster

        folder = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        inputs = adapt_inputs.read_inputs(self, parameters, context, feedback)
        if not inputs or feedback.isCanceled():
            return {}
        try:
            card = modelcard.read_card(*onnx_file.read(inputs["model_path"]))
            made = self.run_core(feedback, chips.make_chips, inputs["raster_path"], inputs["footprints"],
                                 inputs["area"], card, inputs["bands"],
                                 self.parameterAsInt(parameters, self.CHIP_SIZE, context), low=5.0, high=70.0,
                                 canceled=self.tr("Canceled: nothing was written."))
            if made is None:
                return {}
            known = made.known.reshape(len(made.origins), -1).sum(1)
            blocks = holdout.split(made.origins, known, made.size).blocks if (known > 0).sum() >= 2 else None
            written = self.run_core(feedback, _write, made, folder, card, blocks, low=70.0, high=100.0,
                                    canceled=self.tr("Canceled: nothing was written."))
        except (chips.AdaptInputError, raster.RasterError, modelcard.ModelCardError, onnx_file.OnnxFileError,
                ValueError) as error:
            raise QgsProcessingException(str(error)) from error
        if written is None:
            return {}
        feedback.pushInfo(self.tr(f"{len(made.origins)} chips of {made.size} px at {made.gsd_m:.2f} m, "
                                  f"{len(made.footprint_centroids)} buildings in the area, written to {folder}."))
        return {self.OUTPUT_FOLDER: str(folder), self.CHIP_COUNT: len(made.origins),
                self.BUILDING_COUNT: len(made.footprint_centroids)}


def _write(made, folder, card, blocks, report, is_canceled):
    from ..core.adapt import chips

    return chips.write_chips(made, folder, card, blocks, is_canceled=is_canceled)
