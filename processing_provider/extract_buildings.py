"""spacenet:extractbuildings: building footprints from a raster layer with an ONNX segmentation model."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
)

from .extraction import ExtractionAlgorithm


class ExtractBuildings(ExtractionAlgorithm):
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    MIN_SCORE = "MIN_SCORE"
    SIMPLIFY = "SIMPLIFY"
    REGULARIZE = "REGULARIZE"
    OUTPUT = "OUTPUT"
    BUILDING_COUNT = "BUILDING_COUNT"

    TASK = "buildings"
    DEFAULT_MODEL = "buildings_unet_small"
    PROBABILITY_NAME = "Building probability"

    def name(self):
        return "extractbuildings"

    def displayName(self):  # noqa: N802
        return self.tr("Extract building footprints")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Finds buildings in a raster layer with a segmentation model and writes their footprints as "
            "polygons with <i>score</i> (mean probability), <i>area_m2</i>, and the <i>model</i> and "
            "<i>device</i> that found them. Runs on an NVIDIA GPU when onnxruntime-gpu can use one, else on "
            "the CPU; the log says which, and why not the GPU.</p>"
            + self.source_help()
            + "<p><b>Threshold</b>: building probability from which a pixel counts as building; empty uses the "
            "model's default. Lower finds more, and more false alarms.</p>"
            "<p><b>Minimum area</b> (m²): smaller footprints are dropped; empty uses the model's default.</p>"
            "<p><b>Minimum score</b>: footprints whose mean building probability (their <i>score</i>) is lower are "
            "dropped; empty uses the model's default. Higher keeps only the surer buildings; 0 keeps all.</p>"
            "<p><b>Simplify</b> (m): outlines are simplified within this distance; 0 keeps the pixel outline.</p>"
            "<p><b>Regularize</b>: squares the corners of rectilinear buildings along their main direction.</p>"
            + self.RUN_HELP
            + "<p><b>Probability raster</b> (optional): the building probability, 0 to 1, at the model's "
            "resolution; for a model with an interior channel, its interior probability as band 2. The settings "
            "of the run are stored in it, so that <i>Adjust thresholds</i> and <i>Calibrate</i> split touching "
            "buildings as this run did.</p>"
            "<p>Touching buildings are separated, small holes filled, and buildings cut by tile borders are "
            "joined. Cancel stops at the next batch of tiles and writes nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..core.extract.building_options import EXTRACTION

        self.add_source_parameters()
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, self.tr("Threshold (empty: the model's)"),
                QgsProcessingParameterNumber.Type.Double, optional=True, minValue=0.0, maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_AREA, self.tr("Minimum area, m² (empty: the model's)"),
                QgsProcessingParameterNumber.Type.Double, optional=True, minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MIN_SCORE, self.tr("Minimum score (empty: the model's)"),
                QgsProcessingParameterNumber.Type.Double, optional=True, minValue=0.0, maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SIMPLIFY, self.tr("Simplify outlines, m"), QgsProcessingParameterNumber.Type.Double,
                defaultValue=EXTRACTION.simplify_m, minValue=0.0, maxValue=10.0,
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.REGULARIZE, self.tr("Regularize (square corners)"),
                                                        defaultValue=EXTRACTION.regularize))
        self.add_run_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Building footprints"),
                                                            QgsProcessing.SourceType.TypeVectorPolygon))
        self.add_probability_output()
        self.addOutput(QgsProcessingOutputNumber(self.BUILDING_COUNT, self.tr("Number of buildings")))

    def task_options(self, parameters, context) -> dict:
        return {
            "threshold": self.optional_number(parameters, self.THRESHOLD, context),
            "min_area_m2": self.optional_number(parameters, self.MIN_AREA, context),
            "min_score": self.optional_number(parameters, self.MIN_SCORE, context),
            "simplify_m": self.parameterAsDouble(parameters, self.SIMPLIFY, context),
            "regularize": self.parameterAsBoolean(parameters, self.REGULARIZE, context),
        }
