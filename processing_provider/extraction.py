"""What the extraction algorithms share: the layer, extent, bands, model and device parameters, the request's
common part, running the engine with progress and cancel, and the model: by name from the registry (downloaded
on first use when it is not bundled) or an .onnx path."""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path

from qgis.core import (
    QgsApplication,
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

from ..core import choices
from ..core.fetch.model_store import ModelError, NotInstalledError
from ..core.model_registry import RegistryError
from ..qgis_adapter import web_sources
from ..qgis_adapter.layers import NotARasterFileError
from ..qgis_adapter.models import model_store
from ..qgis_adapter.styles import ProbabilityStyler
from .base import SpaceNetAlgorithm
from .writers import WRITERS

# the plugin's package is spacenet_toolkit when installed, but whatever its folder is called
BANDS_WIDGET_WRAPPER = f"{__package__.rpartition('.')[0]}.ui.band_wrapper.BandsWidgetWrapper"
# The default of every extraction's SCHEDULER (Settings > Options > Advanced lists it): e.g. a team's cluster.
SCHEDULER_SETTING = "spacenet/scheduler"


def default_scheduler() -> str:
    """The plugin setting for where extractions run; empty: this process, or a local Dask cluster when large."""
    from qgis.core import QgsSettings

    return str(QgsSettings().value(SCHEDULER_SETTING, "", type=str) or "")


def resolve_model(value: str, default: str) -> Path:
    """A model's name or an .onnx path to a file that is here already (core.fetch.model_store.NotInstalledError for a
    registered model not downloaded yet); other problems as QgsProcessingException."""
    try:
        return model_store().resolve(value or default, download=False)
    except NotInstalledError:
        raise
    except (ModelError, RegistryError) as error:
        raise QgsProcessingException(str(error)) from error


class ExtractionAlgorithm(SpaceNetAlgorithm):
    """Subclasses set TASK, DEFAULT_MODEL and PROBABILITY_NAME, add their own parameters between
    ``add_source_parameters`` and ``add_run_parameters``, and read them in ``task_options``; the task's entry in
    core.extract.extract.OUTPUT_KINDS runs the extraction and its entry in writers.WRITERS writes it."""

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    BANDS = "BANDS"
    MODEL = "MODEL"
    BATCH_SIZE = "BATCH_SIZE"
    DEVICE = "DEVICE"
    SCHEDULER = "SCHEDULER"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    DEVICE_USED = "DEVICE_USED"
    MODEL_NAME = "MODEL_NAME"

    GROUP = "extraction"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio", "onnxruntime")
    TASK = ""  # a task of core.model_registry: the help lists the registered models of this task
    DEFAULT_MODEL = ""
    PROBABILITY_NAME = "Probability"

    SOURCE_HELP = (
        "<p><b>Input layer</b>: any GDAL raster: 8-bit or 11-bit (uint16) or float, panchromatic, RGB, "
        "RGBA, 4- or 8-band (WorldView), in any CRS. Nodata values, alpha and mask bands are respected: "
        "nothing is detected in nodata or on the pixel along it. NaN is nodata in a float raster. A raster of "
        "several bands that declares none of them (a mosaic from gdalbuildvrt, a scene with a black collar) has "
        "its pixels of 0 in every band taken as nodata; a single band's 0 stays data (black is a value in "
        "panchromatic imagery): declare its nodata value if 0 is its blank.</p>"
        "<p><b>Extent</b>: the part of the layer to process; empty means the whole layer.</p>"
        "<p><b>Bands</b>: the raster bands that feed the model's inputs, in order (red, green, blue for the "
        "shipped models). Empty chooses them: a single band goes to every input (panchromatic), colour "
        "interpretation or band names otherwise, bands 5, 3, 2 for 8-band WorldView imagery. One band "
        "may be given for all inputs.</p>"
        "<p><b>Model</b>: a model by name, or the path of an .onnx file. The models for this algorithm:</p>"
        "<ul>{models}</ul>"
        "<p>Downloaded models are verified and kept in {cache} for later runs. Models carry their card (bands, "
        "resolution, tile size, normalisation, thresholds); models made for the Deepness plugin run too. Imagery "
        "is resampled to the model's resolution and results mapped back.</p>"
    )
    RUN_HELP = (
        "<p><b>Batch size</b>, <b>Device</b> (advanced): tiles sent to the model at once (more is faster "
        "on a GPU, needs more memory); auto uses a GPU when it can, gpu fails when it cannot, cpu never "
        "tries.</p>"
        "<p><b>Dask scheduler</b> (advanced): empty runs in this process, or on a local cluster of worker "
        "processes for an extent of 36 million pixels or more (when Dask is installed); <i>local</i> always uses "
        "that cluster, <i>in-process</i> never; an address such as tcp://10.0.0.5:8786 (port 8786 when none is "
        "given) runs the blocks on that "
        "Dask scheduler's workers, which must read the raster and the model themselves. Workers started with "
        "<i>--resources GPU=2</i> run every model batch; the others the blocks. The result is the same "
        "wherever it runs.</p>"
    )

    def source_help(self) -> str:
        try:
            store = model_store()
        except RegistryError as error:
            return self.SOURCE_HELP.format(models=f"<li>{html.escape(str(error))}</li>", cache="")
        items = []
        for name in store.registry.names(self.TASK):
            entry = store.registry.get(name)
            if store.is_installed(name):
                status = self.tr("installed")
            else:
                status = self.tr(f"downloaded on first use, {entry.main.size_label}")
                if entry.half is not None:
                    status += self.tr(f", and {entry.half.size_label} more for a GPU")
            default = self.tr(", the default") if name == self.DEFAULT_MODEL else ""
            items.append(f"<li><b>{name}</b> ({status}{default}): {html.escape(entry.summary)}</li>")
        items += [f"<li><b>{name}</b> ({self.tr('your model, in')} {html.escape(str(store.user_dir))})</li>"
                  for name in store.user_names(self.TASK)]
        items += [f"<li><b>{name}</b> ({self.tr('installed, not in the registry')})</li>"
                  for name in store.unregistered_names()]
        return self.SOURCE_HELP.format(models="".join(items) or f"<li>{self.tr('none')}</li>",
                                       cache=html.escape(str(store.cache_dir)))

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
        device = QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(choices.DEVICES),
                                            defaultValue="auto", usesStaticStrings=True)
        scheduler = QgsProcessingParameterString(
            self.SCHEDULER, self.tr("Dask scheduler (empty: this process, or a local cluster for a large extent; "
                                    "'local'; 'in-process'; or an address such as tcp://10.0.0.5:8786)"),
            defaultValue=default_scheduler(), optional=True)
        for advanced in (batch, device, scheduler):
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
        """Refuse, before the run starts, a model made for another task, and bands the raster or the model cannot
        take (the dialog shows why)."""
        try:
            parameters = self.input_uri(parameters, context)
        except QgsProcessingException as error:
            return False, str(error)
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        from ..core.extract import modelcard, raster, runtime

        name = self.parameterAsString(parameters, self.MODEL, context) or self.DEFAULT_MODEL
        try:
            model = resolve_model(name, self.DEFAULT_MODEL)
        except NotInstalledError:
            # downloaded when the run starts (its bands are checked then); the registry knows its task already
            entry = model_store().registry.get(name.strip())
            try:
                modelcard.check_model_task(entry.name, entry.task, self.TASK, (), *self.task_hints())
            except modelcard.WrongTaskError as error:
                return False, str(error)
            return True, ""
        except QgsProcessingException as error:
            return False, str(error)
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context) if bands else None
        try:
            card = self.model_card(model, self.enum_value(parameters, self.DEVICE, context) or "auto",
                                   self.parameterAsString(parameters, self.SCHEDULER, context).strip())
            if layer is not None:
                raster.check_bands(tuple(bands), raster.describe(web_sources.raster_source(layer).name), card.bands)
        except NotARasterFileError:
            pass  # said when the run starts
        except (raster.RasterError, raster.BandMappingError, modelcard.ModelCardError,
                runtime.RuntimeUnavailableError) as error:
            return False, str(error)
        return True, ""

    def common_request(self, parameters, context, feedback) -> dict | None:
        """The keyword arguments of core.extract.extract.ModelRun from the shared parameters; None when the user
        canceled the model's download."""
        parameters = self.input_uri(parameters, context)
        layer = self.raster_parameter(parameters, self.INPUT, context)
        try:
            self.source = web_sources.raster_source(layer)
        except NotARasterFileError as error:
            raise QgsProcessingException(str(error)) from error
        raster_path = self.source.name
        extent = self.given_extent(parameters, self.EXTENT, context, layer.crs())
        probability_path = None
        if parameters.get(self.OUTPUT_PROBABILITY) is not None:
            probability_path = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context) or None
        device = self.enum_value(parameters, self.DEVICE, context) or "auto"
        model = self.model_for_run(self.parameterAsString(parameters, self.MODEL, context) or self.DEFAULT_MODEL,
                                   device, feedback)
        if model is None:
            return None
        return dict(
            raster_path=raster_path,
            model_path=str(model),
            extent=extent,
            bands=tuple(self.parameterAsInts(parameters, self.BANDS, context)) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            device=device,
            probability_path=probability_path,
            work_dir=QgsProcessingUtils.tempFolder(),
            scheduler=self.parameterAsString(parameters, self.SCHEDULER, context).strip(),
        )

    def input_uri(self, parameters, context) -> dict:
        """``parameters`` with an ``s3://spacenet-dataset/...`` INPUT as the URL QGIS loads, and a remote dataset
        (``/vsicurl/...``, an https URL) as the layer loaded for it (web_sources); QgsProcessingException when GDAL
        cannot open that."""
        value = web_sources.uri_for_layer(parameters.get(self.INPUT))
        try:
            return {**parameters, self.INPUT: web_sources.remote_layer(value, context)}
        except web_sources.RemoteRasterError as error:
            raise QgsProcessingException(f"{self.INPUT}: {error}") from error

    def check_service(self, request_extent, card, scheduler, feedback) -> None:
        """Before a run over a tile service: the source as the run reads it (web_sources.for_run), its tile count
        and a few probe tiles (web_sources.preflight)."""
        if not self.source.is_service:
            return
        from ..core.extract import raster

        try:
            self.source = web_sources.for_run(self.source, request_extent, card.gsd_m, scheduler)
            for warning in web_sources.preflight(self.source, request_extent, card.gsd_m):
                feedback.pushWarning(warning)
        except (web_sources.ServiceError, raster.RasterError) as error:
            raise QgsProcessingException(str(error)) from error
        feedback.pushInfo(self.tr(f"Reading {self.source.kind.upper()} tiles from {self.source.shown_url}"
                                  + (f" ({self.source.attribution})" if self.source.attribution else "")))

    def model_for_run(self, value: str, device: str, feedback) -> Path | None:
        """The model's file, downloaded first when it is registered and not here yet; None when canceled.

        Its fp16 variant is downloaded only where a GPU may run it: the engine uses it on a GPU alone, and most
        QGIS installs run on the CPU, which should not pay for it."""
        from ..core.extract import runtime

        def download(*, report, is_canceled):
            store = model_store()
            path = store.resolve(value, report=report, is_canceled=is_canceled)
            half = store.missing_half(value) if device != "cpu" and runtime.gpu_may_run() else None
            if half is not None:
                try:
                    store.fetch(half, report=report, is_canceled=is_canceled)
                except ModelError as error:  # the fp32 file runs on a GPU too, only slower
                    feedback.pushWarning(self.tr(f"{error} The model runs in fp32 meanwhile."))
            return path

        try:
            return self.run_core(feedback, download,
                                 canceled=self.tr("Canceled while downloading the model: nothing was kept."))
        except (ModelError, RegistryError) as error:
            raise QgsProcessingException(str(error)) from error

    def model_card(self, model_path, device: str, scheduler: str):
        """The card of the model at ``model_path``; modelcard.WrongTaskError when it says the model finds something
        else than this algorithm's TASK (a road model's lines are no footprints), naming what to use instead."""
        from ..core.extract import extract, modelcard

        # the session the run itself uses (cached per file and device): the check costs no second load
        card = extract.load_model(str(model_path), device, 0, scheduler).card
        modelcard.check_task(card, self.TASK, *self.task_hints())
        return card

    def task_hints(self) -> tuple:
        """What a refusal of a model made for another task suggests: the algorithm of each task, and this task's
        models."""
        algorithms = {cls.TASK: f"spacenet:{cls().name()}" for cls in ExtractionAlgorithm.__subclasses__()}
        try:
            models = model_store().names(self.TASK)
        except RegistryError:
            models = []
        return algorithms, models

    def optional_number(self, parameters, name, context):
        if parameters.get(name) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def task_options(self, parameters, context) -> dict:
        """The options of the task's request, by name, from the algorithm's own parameters."""
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.extract import extract, modelcard, runtime

        common = self.common_request(parameters, context, feedback)
        if common is None:
            return {}
        try:  # checked before the run too, unless the model was downloaded for it just now
            card = self.model_card(common["model_path"], common["device"], common["scheduler"])
        except (modelcard.ModelCardError, runtime.RuntimeUnavailableError) as error:
            raise QgsProcessingException(str(error)) from error
        self.check_service(common["extent"], card, common["scheduler"], feedback)
        common.update(raster_path=self.source.name, provenance=self.source.metadata())
        request = extract.OUTPUT_KINDS[self.TASK].request(**common, options=self.task_options(parameters, context))
        result = self.run_engine(functools.partial(extract.extract, self.TASK), request, feedback)
        if result is None:
            return {}
        result.settings.update(self.source.metadata())  # the outputs' metadata names the web source
        writer = WRITERS[self.TASK]
        self.log_run(feedback, result, writer.found(result))
        return {**writer.write(self, parameters, context, result), **self.common_outputs(request, result, context)}

    def run_engine(self, extract_function, request, feedback):
        """The engine's result, or None when canceled; errors a mapper can act on become QgsProcessingException."""
        from ..core.extract import cluster, modelcard, raster, runtime

        try:
            result = self.run_core(feedback, extract_function, request,
                                   canceled=self.tr("Canceled: nothing was written."))
        except (raster.RasterError, raster.BandMappingError, modelcard.ModelCardError,
                runtime.RuntimeUnavailableError, cluster.ClusterError) as error:
            raise QgsProcessingException(str(error)) from error
        finally:
            if QgsApplication.platform() == "qgis_process":  # one run per process: its workers end with it
                cluster.close_local()
        if result is None:
            return None
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

