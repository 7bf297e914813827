"""spacenet:extractroads: a road centerline graph from a raster layer with an ONNX segmentation model."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
)

from .extraction import ExtractionAlgorithm


class ExtractRoads(ExtractionAlgorithm):
    THRESHOLD = "THRESHOLD"
    MIN_SPUR_LENGTH = "MIN_SPUR_LENGTH"
    MAX_GAP = "MAX_GAP"
    SIMPLIFY = "SIMPLIFY"
    OUTPUT = "OUTPUT"
    OUTPUT_NODES = "OUTPUT_NODES"
    ROAD_COUNT = "ROAD_COUNT"
    ROAD_LENGTH_KM = "ROAD_LENGTH_KM"

    REQUIRES = (*ExtractionAlgorithm.REQUIRES, "skimage", "networkx")
    TASK = "roads"
    DEFAULT_MODEL = "roads_effnet_lite0"
    PROBABILITY_NAME = "Road probability"

    def name(self):
        return "extractroads"

    def displayName(self):  # noqa: N802
        return self.tr("Extract road network")

    def shortHelpString(self):  # noqa: N802
        from ..core.extract.road_options import RoadOptions

        defaults = RoadOptions()
        return self.tr(
            "<p>Finds roads in a raster layer with a segmentation model and writes their centerlines as a "
            "graph a router can use: one line per road between junctions or dead ends, with <i>length_m</i> "
            "and the ids of its <i>start_node</i> and <i>end_node</i>. Runs on an NVIDIA GPU when "
            "onnxruntime-gpu can use one, else on the CPU.</p>"
            + self.source_help()
            + "<p><b>Threshold</b>: road probability from which a pixel counts as road; empty uses the model's "
            "default.</p>"
            f"<p><b>Minimum spur length</b> (m, default {defaults.min_spur_length_m:g}): dead-end branches "
            "shorter than this are removed (thinning leaves such stubs at the corners of wide roads).</p>"
            f"<p><b>Maximum gap</b> (m, default {defaults.max_gap_m:g}): dead ends this close that point at "
            "each other, or at a road, are joined: trees, shadows and vehicles break roads for a few metres. "
            "0 joins nothing.</p>"
            f"<p><b>Simplify</b> (m, default {defaults.simplify_m:g}): centerlines are simplified within this "
            "distance.</p>"
            + self.RUN_HELP
            + "<p><b>Road nodes</b> (optional): the junctions and dead ends, with their <i>degree</i>.</p>"
            "<p><b>Probability raster</b> (optional): the road probability, 0 to 1, at the model's "
            "resolution.</p>"
            "<p>Roads cut by tile borders are joined; the graph has no duplicate or zero-length edges. Score it "
            "against truth with <i>Score road network (APLS)</i>. Cancel writes nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..core.extract.road_options import RoadOptions

        defaults = RoadOptions()
        self.add_source_parameters()
        self.addParameter(
            QgsProcessingParameterNumber(
                self.THRESHOLD, self.tr("Threshold (empty: the model's)"),
                QgsProcessingParameterNumber.Type.Double, optional=True, minValue=0.0, maxValue=1.0,
            )
        )
        for key, label, default, maximum in (
            (self.MIN_SPUR_LENGTH, "Minimum spur length, m", defaults.min_spur_length_m, 500.0),
            (self.MAX_GAP, "Maximum gap to bridge, m", defaults.max_gap_m, 100.0),
            (self.SIMPLIFY, "Simplify centerlines, m", defaults.simplify_m, 20.0),
        ):
            self.addParameter(QgsProcessingParameterNumber(
                key, self.tr(label), QgsProcessingParameterNumber.Type.Double, defaultValue=default, minValue=0.0,
                maxValue=maximum))
        self.add_run_parameters()
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Road centerlines"),
                                                            QgsProcessing.SourceType.TypeVectorLine))
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT_NODES, self.tr("Road nodes"),
                                                            QgsProcessing.SourceType.TypeVectorPoint,
                                                            optional=True, createByDefault=False))
        self.add_probability_output()
        self.addOutput(QgsProcessingOutputNumber(self.ROAD_COUNT, self.tr("Number of road segments")))
        self.addOutput(QgsProcessingOutputNumber(self.ROAD_LENGTH_KM, self.tr("Road length, km")))

    def task_options(self, parameters, context) -> dict:
        return {
            "threshold": self.optional_number(parameters, self.THRESHOLD, context),
            "min_spur_length_m": self.parameterAsDouble(parameters, self.MIN_SPUR_LENGTH, context),
            "max_gap_m": self.parameterAsDouble(parameters, self.MAX_GAP, context),
            "simplify_m": self.parameterAsDouble(parameters, self.SIMPLIFY, context),
        }
