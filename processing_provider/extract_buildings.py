"""spacenet:extractbuildings: building footprints from a raster layer with an ONNX segmentation model."""

import json
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from .base import PLUGIN_DIR, SpaceNetAlgorithm
from .styles import BuildingStyler

MODELS_DIR = PLUGIN_DIR / "models"
DEFAULT_MODEL = "buildings_unet_small"
DEVICES = ("auto", "gpu", "cpu")


def shipped_models() -> list:
    """Names of the models in the plugin's models/ folder (fp16 variants are picked automatically)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.onnx") if not p.stem.endswith(".fp16"))


def resolve_model(value: str) -> Path:
    """A shipped model's name, or the path of an .onnx file, to a file path."""
    value = (value or DEFAULT_MODEL).strip()
    shipped = MODELS_DIR / f"{value}.onnx"
    if shipped.is_file():
        return shipped
    path = Path(value).expanduser()
    if path.is_file():
        return path
    names = ", ".join(shipped_models()) or "none"
    raise QgsProcessingException(
        f"No model '{value}': give the name of a shipped model ({names}) or the path of an .onnx file."
    )


class ExtractBuildings(SpaceNetAlgorithm):
    INPUT = "INPUT"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    REGULARIZE = "REGULARIZE"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    BUILDING_COUNT = "BUILDING_COUNT"
    DEVICE_USED = "DEVICE_USED"
    MODEL_NAME = "MODEL_NAME"

    GROUP = "extraction"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio", "onnxruntime")

    def __init__(self):
        super().__init__()
        self._styler = None

    def name(self):
        return "extractbuildings"

    def displayName(self):  # noqa: N802
        return self.tr("Extract building footprints")

    def shortHelpString(self):  # noqa: N802
        models = ", ".join(shipped_models()) or self.tr("none installed")
        return self.tr(
            "<p>Finds buildings in a raster layer with a segmentation model and writes their footprints as "
            "polygons with <i>score</i> (mean probability), <i>area_m2</i>, and the <i>model</i> and "
            "<i>device</i> that found them. Runs on an NVIDIA GPU when onnxruntime-gpu can use one, else on "
            "the CPU; the log says which, and why not the GPU.</p>"
            "<p><b>Input layer</b>: any GDAL raster: 8-bit or 11-bit (uint16) or float, panchromatic, RGB, "
            "RGBA, 4- or 8-band (WorldView), in any CRS. Nodata values, alpha and mask bands are respected: "
            "nothing is detected in nodata or within 1.5 m of it.</p>"
            "<p><b>Extent</b>: the part of the layer to process; empty means the whole layer.</p>"
            "<p><b>Bands</b>: the raster bands that feed the model's inputs, in order (red, green, blue for the "
            "shipped models). Empty chooses them: a single band goes to every input (panchromatic), colour "
            "interpretation or band names otherwise, bands 5, 3, 2 for 8-band WorldView imagery. One band "
            "may be given for all inputs.</p>"
            f"<p><b>Model</b>: a shipped model by name ({models}) or the path of an .onnx file. Models carry "
            "their card (bands, resolution, tile size, normalisation, thresholds); models made for the Deepness "
            "plugin run too. Imagery is resampled to the model's resolution and results mapped back.</p>"
            "<p><b>Threshold</b>: building probability from which a pixel counts as building; empty uses the "
            "model's default. Lower finds more, and more false alarms.</p>"
            "<p><b>Minimum area</b> (m²): smaller footprints are dropped; empty uses the model's default.</p>"
            "<p><b>Simplify</b> (m): outlines are simplified within this distance; 0 keeps the pixel outline.</p>"
            "<p><b>Regularize</b>: squares the corners of rectilinear buildings along their main direction.</p>"
            "<p><b>Batch size</b>, <b>Device</b> (advanced): tiles sent to the model at once (more is faster "
            "on a GPU, needs more memory); auto uses a GPU when it can, gpu fails when it cannot, cpu never "
            "tries.</p>"
            "<p><b>Probability raster</b> (optional): the building probability, 0 to 1, at the model's "
            "resolution.</p>"
            "<p>Touching buildings are separated, small holes filled, and buildings cut by tile borders are "
            "joined. Cancel stops at the next batch of tiles and writes nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input layer")))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent"), optional=True))
        self.addParameter(
            QgsProcessingParameterBand(
                self.BANDS, self.tr("Bands (empty: chosen from the layer)"), None, self.INPUT,
                optional=True, allowMultiple=True,
            )
        )
        self.addParameter(QgsProcessingParameterString(self.MODEL, self.tr("Model (name or .onnx file)"),
                                                       defaultValue=DEFAULT_MODEL))
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
                self.SIMPLIFY, self.tr("Simplify outlines, m"), QgsProcessingParameterNumber.Type.Double,
                defaultValue=0.5, minValue=0.0, maxValue=10.0,
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.REGULARIZE, self.tr("Regularize (square corners)"),
                                                        defaultValue=False))
        batch = QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size (tiles per model run)"),
                                             QgsProcessingParameterNumber.Type.Integer, defaultValue=4,
                                             minValue=1, maxValue=256)
        device = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICES),
                                            defaultValue="auto", usesStaticStrings=True)
        for advanced in (batch, device):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Building footprints"),
                                                            QgsProcessing.SourceType.TypeVectorPolygon))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_PROBABILITY, self.tr("Building probability"), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.BUILDING_COUNT, self.tr("Number of buildings")))
        self.addOutput(QgsProcessingOutputString(self.DEVICE_USED, self.tr("Device that ran the model")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_NAME, self.tr("Model")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import extract, modelcard, raster, runtime

        request = self._request(parameters, context)

        def report(percent, message=None):
            feedback.setProgress(percent)
            if message:
                feedback.pushInfo(message)

        try:
            result = extract.extract_buildings(request, report=report, is_canceled=feedback.isCanceled)
        except extract.Canceled:
            feedback.pushWarning(self.tr("Canceled: nothing was written."))
            return {}
        except (raster.RasterError, raster.BandMappingError, modelcard.ModelCardError,
                runtime.RuntimeUnavailableError) as error:
            raise QgsProcessingException(str(error)) from error
        if result.note:
            feedback.pushWarning(result.note)
        feedback.pushInfo(self.tr(
            f"{len(result.footprints)} buildings; {result.tiles_run} tiles run on {result.device}, "
            f"{result.tiles_skipped} skipped (no data); {result.timings['total_s']:.1f} s."
        ))
        feedback.pushInfo(self.tr(f"Settings: {json.dumps(result.settings)}"))

        dest_id = self._write(parameters, context, result)
        self._styler = BuildingStyler.for_run(result.settings)
        if context.willLoadLayerOnCompletion(dest_id):
            context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(self._styler)
        outputs = {
            self.OUTPUT: dest_id,
            self.BUILDING_COUNT: len(result.footprints),
            self.DEVICE_USED: result.device,
            self.MODEL_NAME: result.model_name,
        }
        if request.probability_path:
            outputs[self.OUTPUT_PROBABILITY] = request.probability_path
        return outputs

    def _request(self, parameters, context):
        from ..core import extract

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        if layer.providerType() != "gdal" or not Path(layer.source().split("|")[0]).is_file():
            raise QgsProcessingException(self.tr(
                f"'{layer.name()}' is not a raster file (provider {layer.providerType()}): save it as a GeoTIFF "
                "first (right-click > Export > Save As…)."
            ))
        extent = None
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            if not rect.isNull() and not rect.isEmpty():
                extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        bands = tuple(self.parameterAsInts(parameters, self.BANDS, context)) or None
        probability_path = None
        if parameters.get(self.OUTPUT_PROBABILITY) is not None:
            probability_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        return extract.ExtractRequest(
            raster_path=layer.source().split("|")[0],
            model_path=str(resolve_model(self.parameterAsString(parameters, self.MODEL, context))),
            extent=extent,
            bands=bands,
            threshold=self._optional_number(parameters, self.THRESHOLD, context),
            min_area_m2=self._optional_number(parameters, self.MIN_AREA, context),
            simplify_m=self.parameterAsDouble(parameters, self.SIMPLIFY, context),
            regularize=self.parameterAsBoolean(parameters, self.REGULARIZE, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=self.parameterAsString(parameters, self.DEVICE, context) or "auto",
            probability_path=probability_path,
            work_dir=QgsProcessingUtils.tempFolder(),
        )

    def _optional_number(self, parameters, name, context):
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def _write(self, parameters, context, result) -> str:
        import shapely

        fields = QgsFields()
        for name, kind in (("id", QVariant.Type.Int), ("score", QVariant.Type.Double),
                           ("area_m2", QVariant.Type.Double), ("model", QVariant.Type.String),
                           ("device", QVariant.Type.String)):
            fields.append(QgsField(name, kind))
        crs = QgsCoordinateReferenceSystem.fromWkt(result.crs_wkt)
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields,
                                             QgsWkbTypes.Type.MultiPolygon, crs)
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT))
        for number, footprint in enumerate(result.footprints, start=1):
            feature = QgsFeature(fields)
            # WKB with an explicit dimension: robust to the GEOS mix inside QGIS (ENVIRONMENT.md trap 3)
            geometry = QgsGeometry()
            geometry.fromWkb(shapely.to_wkb(footprint.geometry, output_dimension=2))
            geometry.convertToMultiType()
            feature.setGeometry(geometry)
            feature.setAttributes([number, round(footprint.score, 4), round(footprint.area_m2, 2),
                                   result.model_name, result.device])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id

