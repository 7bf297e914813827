"""What spacenet:exporttrainingchips and spacenet:adaptmodel share: the raster, the corrected footprints and the
area where they are complete, read into plain values in the raster's CRS (the core never sees a QGIS object)."""

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingParameterBand,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..core.model_registry import RegistryError
from ..qgis_adapter.geometry import to_shapely, to_wkb
from ..qgis_adapter.layers import NotARasterFileError
from ..qgis_adapter.models import model_store
from ..qgis_adapter.web_sources import raster_source
from .base import features

INPUT, FOOTPRINTS, AREA, EXTENT, BANDS, MODEL = "INPUT", "FOOTPRINTS", "AREA", "EXTENT", "BANDS", "MODEL"
# The base offered by default: the ImageNet-pretrained model where it is installed (it learned more from the same
# corrections than the bundled one, by the held-out fifths of both areas measured: README), else the bundled one
PREFERRED_BASE, BUNDLED_BASE = "buildings_effnet_lite0", "buildings_unet_small"
INPUTS_HELP = (
    "<p><b>Input layer</b>: the imagery the footprints were corrected on (a file, a COG or a web layer).</p>"
    "<p><b>Corrected footprints</b>: the buildings as the mapper left them (deleted false alarms, reshaped, "
    "digitised what was missed), in any CRS.</p>"
    "<p><b>Area</b> (polygon layer) or <b>Extent</b>: where the footprints are complete: only there do the labels "
    "teach anything (a building missing from the layer would teach the model that its roof is ground). Empty: the "
    "footprints' extent.</p>"
    "<p><b>Bands</b>: the raster bands for the model's inputs; empty: chosen as the extraction chooses them. "
    "<b>Base model</b>: a model by name (shipped or adapted) or an .onnx file; default: buildings_effnet_lite0 "
    "where it is installed, else buildings_unet_small.</p>"
)


def default_base() -> str:
    try:
        installed = model_store().is_installed(PREFERRED_BASE)
    except RegistryError:  # called when the provider loads: a broken registry is said by the run, not by a crash
        installed = False
    return PREFERRED_BASE if installed else BUNDLED_BASE


def add_input_parameters(algorithm) -> None:
    tr = algorithm.tr
    algorithm.addParameter(QgsProcessingParameterRasterLayer(INPUT, tr("Input layer")))
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        FOOTPRINTS, tr("Corrected footprints"), [QgsProcessing.SourceType.TypeVectorPolygon]))
    algorithm.addParameter(QgsProcessingParameterFeatureSource(
        AREA, tr("Area where the footprints are complete (polygons)"), [QgsProcessing.SourceType.TypeVectorPolygon],
        optional=True))
    algorithm.addParameter(QgsProcessingParameterExtent(EXTENT, tr("or its extent"), optional=True))
    algorithm.addParameter(QgsProcessingParameterBand(BANDS, tr("Bands (empty: chosen from the layer)"), None, INPUT,
                                                      optional=True, allowMultiple=True))
    algorithm.addParameter(QgsProcessingParameterString(MODEL, tr("Base model (name or .onnx file)"),
                                                        defaultValue=default_base()))


def read_inputs(algorithm, parameters, context, feedback, low=0.0, high=5.0) -> dict:
    """raster_path, raster_label, crs (QGIS), footprints, area (None: the footprints' extent), area_label, bands,
    model_path; QgsProcessingException for anything unusable, said before any work."""
    layer = algorithm.raster_parameter(parameters, INPUT, context)
    try:
        raster_path = raster_source(layer).name
    except NotARasterFileError as error:
        raise QgsProcessingException(str(error)) from error
    if not layer.crs().isValid():
        raise QgsProcessingException(algorithm.tr(
            f"'{layer.name()}' has no coordinate reference system: assign one (Layer Properties > Source)."))
    import shapely  # on first use, not at plugin start

    middle = (low + high) / 2
    footprints = _polygons(algorithm, parameters, FOOTPRINTS, context, feedback, layer, low, middle)
    if not footprints:
        raise QgsProcessingException(algorithm.tr(
            "The corrected footprints layer has no polygons: adaptation learns from the buildings you corrected."))
    area, area_label = None, ""
    if parameters.get(AREA) not in (None, ""):
        area = _polygons(algorithm, parameters, AREA, context, feedback, layer, middle, high)
        if not area:
            raise QgsProcessingException(algorithm.tr("The area layer has no polygons: draw where the footprints "
                                                      "are complete, or leave it empty."))
        area_label = algorithm.parameterAsSource(parameters, AREA, context).sourceName()
    elif (extent := algorithm.given_extent(parameters, EXTENT, context, layer.crs())) is not None:
        area = [shapely.box(*extent)]
        area_label = "an extent"
    if area is None:
        area = [shapely.box(*shapely.total_bounds(footprints))]
        area_label = "the footprints' extent"
    bands = tuple(algorithm.parameterAsInts(parameters, BANDS, context)) or None
    value = algorithm.parameterAsString(parameters, MODEL, context) or default_base()
    from ..core.fetch.model_store import ModelError

    try:
        model_path = algorithm.run_core(feedback, model_store().resolve, value,
                                        canceled=algorithm.tr("Canceled while downloading the base model."))
    except (ModelError, RegistryError) as error:
        raise QgsProcessingException(str(error)) from error
    if model_path is None:
        return {}
    return dict(raster_path=raster_path, raster_label=layer.name(), footprints=footprints, area=area,
                area_label=area_label, bands=bands, model_path=str(model_path))


def _polygons(algorithm, parameters, name, context, feedback, layer, low, high) -> list:
    source = algorithm.parameterAsSource(parameters, name, context)
    if source is None:
        raise QgsProcessingException(algorithm.invalidSourceError(parameters, name))
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
        raise QgsProcessingException(algorithm.tr(
            f"{name} must be a polygon layer, but its geometries are {QgsWkbTypes.displayString(source.wkbType())}."))
    request = QgsFeatureRequest()
    request.setDestinationCrs(layer.crs(), context.transformContext())
    wkbs = [wkb for wkb in (to_wkb(f.geometry()) for f in features(
        source, request, feedback, low, high, QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks))
        if wkb is not None]
    return list(to_shapely(wkbs)) if wkbs else []
