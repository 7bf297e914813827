"""What the extraction algorithms share: the layer, extent, bands, model and device parameters, the request's
common part, running the engine with progress and cancel, and the shipped models."""

import json
from pathlib import Path

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from .base import PLUGIN_DIR, SpaceNetAlgorithm
from .styles import ProbabilityStyler

MODELS_DIR = PLUGIN_DIR / "models"
DEVICES = ("auto", "gpu", "cpu")
# the plugin's package is spacenet_toolkit when installed, but whatever its folder is called
BANDS_WIDGET_WRAPPER = f"{__package__.rpartition('.')[0]}.ui.band_wrapper.BandsWidgetWrapper"


def shipped_models() -> list:
    """Names of the models in the plugin's models/ folder (fp16 variants are picked automatically)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.onnx") if not p.stem.endswith(".fp16"))


def resolve_model(value: str, default: str) -> Path:
    """A shipped model's name, or the path of an .onnx file, to a file path."""
    value = (value or default).strip()
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


class ExtractionAlgorithm(SpaceNetAlgorithm):
    """Subclasses set DEFAULT_MODEL and PROBABILITY_NAME, add their own parameters between
    ``add_source_parameters`` and ``add_run_parameters``, and call ``run_engine``."""

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    DEVICE_USED = "DEVICE_USED"
    MODEL_NAME = "MODEL_NAME"

    GROUP = "extraction"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio", "onnxruntime")
    DEFAULT_MODEL = ""
    PROBABILITY_NAME = "Probability"

    SOURCE_HELP = (
        "<p><b>Input layer</b>: any GDAL raster: 8-bit or 11-bit (uint16) or float, panchromatic, RGB, "
        "RGBA, 4- or 8-band (WorldView), in any CRS. Nodata values, alpha and mask bands are respected: "
        "nothing is detected in nodata or on the pixel along it.</p>"
        "<p><b>Extent</b>: the part of the layer to process; empty means the whole layer.</p>"
        "<p><b>Bands</b>: the raster bands that feed the model's inputs, in order (red, green, blue for the "
        "shipped models). Empty chooses them: a single band goes to every input (panchromatic), colour "
        "interpretation or band names otherwise, bands 5, 3, 2 for 8-band WorldView imagery. One band "
        "may be given for all inputs.</p>"
        "<p><b>Model</b>: a shipped model by name ({models}) or the path of an .onnx file. Models carry "
        "their card (bands, resolution, tile size, normalisation, thresholds); models made for the Deepness "
        "plugin run too. Imagery is resampled to the model's resolution and results mapped back.</p>"
    )
    RUN_HELP = (
        "<p><b>Batch size</b>, <b>Device</b> (advanced): tiles sent to the model at once (more is faster "
        "on a GPU, needs more memory); auto uses a GPU when it can, gpu fails when it cannot, cpu never "
        "tries.</p>"
    )

    def source_help(self) -> str:
        return self.SOURCE_HELP.format(models=", ".join(shipped_models()) or self.tr("none installed"))

    def add_source_parameters(self):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Input layer")))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent"), optional=True))
        bands = QgsProcessingParameterBand(
            self.BANDS, self.tr("Bands (empty: chosen from the layer)"), None, self.INPUT,
            optional=True, allowMultiple=True,
        )
        # Named, not imported: Processing's GUI imports the wrapper when a dialog opens; qgis_process never does.
        bands.setMetadata({"widget_wrapper": {"class": BANDS_WIDGET_WRAPPER, "model_parameter": self.MODEL}})
        self.addParameter(bands)
        self.addParameter(QgsProcessingParameterString(self.MODEL, self.tr("Model (name or .onnx file)"),
                                                       defaultValue=self.DEFAULT_MODEL))

    def add_run_parameters(self):
        batch = QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size (tiles per model run)"),
                                             QgsProcessingParameterNumber.Type.Integer, defaultValue=4,
                                             minValue=1, maxValue=256)
        device = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICES),
                                            defaultValue="auto", usesStaticStrings=True)
        for advanced in (batch, device):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)

    def add_probability_output(self):
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_PROBABILITY, self.tr(self.PROBABILITY_NAME), optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString(self.DEVICE_USED, self.tr("Device that ran the model")))
        self.addOutput(QgsProcessingOutputString(self.MODEL_NAME, self.tr("Model")))

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """Refuse, before the run starts, bands the raster or the model cannot take (the dialog shows why)."""
        ok, message = super().checkParameterValues(parameters, context)
        bands = self.parameterAsInts(parameters, self.BANDS, context) if ok else []
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context) if bands else None
        if layer is None or layer.providerType() != "gdal":
            return ok, message
        from ..core import modelcard, raster, runtime

        try:
            model = resolve_model(self.parameterAsString(parameters, self.MODEL, context), self.DEFAULT_MODEL)
            info = raster.describe(layer.source().split("|")[0])
            card = runtime.load(str(model), "cpu").card  # the session the band widget opened, from the cache
            raster.check_bands(tuple(bands), info, card.bands)
        except (QgsProcessingException, raster.RasterError, raster.BandMappingError, modelcard.ModelCardError,
                runtime.RuntimeUnavailableError) as error:
            return False, str(error)
        return True, ""

    def common_request(self, parameters, context) -> dict:
        """The keyword arguments of core.extract.ModelRun from the shared parameters."""
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
        probability_path = None
        if parameters.get(self.OUTPUT_PROBABILITY) is not None:
            probability_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        model = resolve_model(self.parameterAsString(parameters, self.MODEL, context), self.DEFAULT_MODEL)
        return dict(
            raster_path=layer.source().split("|")[0],
            model_path=str(model),
            extent=extent,
            bands=tuple(self.parameterAsInts(parameters, self.BANDS, context)) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=self.parameterAsString(parameters, self.DEVICE, context) or "auto",
            probability_path=probability_path,
            work_dir=QgsProcessingUtils.tempFolder(),
        )

    def optional_number(self, parameters, name, context):
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def run_engine(self, extract_function, request, feedback):
        """The engine's result, or None when canceled; errors a mapper can act on become QgsProcessingException."""
        from ..core import extract, modelcard, raster, runtime

        def report(percent, message=None):
            feedback.setProgress(percent)
            if message:
                feedback.pushInfo(message)

        try:
            result = extract_function(request, report=report, is_canceled=feedback.isCanceled)
        except extract.Canceled:
            feedback.pushWarning(self.tr("Canceled: nothing was written."))
            return None
        except (raster.RasterError, raster.BandMappingError, modelcard.ModelCardError,
                runtime.RuntimeUnavailableError) as error:
            raise QgsProcessingException(str(error)) from error
        if result.note:
            feedback.pushWarning(result.note)
        return result

    def log_run(self, feedback, result, found: str) -> None:
        """What was found, how the run went and every setting, in the log."""
        feedback.pushInfo(self.tr(
            f"{found}; {result.tiles_run} tiles run on {result.device}, {result.tiles_skipped} skipped (no data); "
            f"{result.timings['total_s']:.1f} s."
        ))
        feedback.pushInfo(self.tr(f"Settings: {json.dumps(result.settings)}"))

    def common_outputs(self, request, result, context) -> dict:
        outputs = {self.DEVICE_USED: result.device, self.MODEL_NAME: result.model_name}
        if request.probability_path:
            outputs[self.OUTPUT_PROBABILITY] = request.probability_path
            if context.willLoadLayerOnCompletion(request.probability_path):
                context.layerToLoadOnCompletionDetails(request.probability_path).setPostProcessor(
                    ProbabilityStyler.shared())
        return outputs


def fields_of(*definitions) -> QgsFields:
    fields = QgsFields()
    for name, kind in definitions:
        fields.append(QgsField(name, kind))
    return fields


def add_feature(sink, fields, shape, attributes, multi=False) -> None:
    """One feature of a shapely geometry (a multi-part geometry when ``multi``) and its attributes."""
    import shapely

    feature = QgsFeature(fields)
    # WKB with an explicit dimension: robust to the GEOS mix inside QGIS (ENVIRONMENT.md trap 3)
    geometry = QgsGeometry()
    geometry.fromWkb(shapely.to_wkb(shape, output_dimension=2))
    if multi:
        geometry.convertToMultiType()
    feature.setGeometry(geometry)
    feature.setAttributes(attributes)
    sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
