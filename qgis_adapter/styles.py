"""Styles applied to the layers the algorithms load: review colours a mapper reads at a glance."""

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLineSymbol,
    QgsMarkerSymbol,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSimpleLineSymbolLayer,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

# status value -> (label, RGB): green found, red false alarm, blue missed.
SCORE_STATUS_COLOURS = {
    "TP": ("True positive (matched)", "46,158,68"),
    "FP": ("False positive (no truth)", "215,48,31"),
    "FN": ("False negative (missed truth)", "43,108,214"),
}


def score_status_renderer() -> QgsCategorizedSymbolRenderer:
    categories = []
    for value, (label, rgb) in SCORE_STATUS_COLOURS.items():
        symbol = QgsFillSymbol.createSimple(
            {"color": f"{rgb},70", "outline_color": f"{rgb},255", "outline_width": "0.6", "outline_width_unit": "MM"}
        )
        categories.append(QgsRendererCategory(value, symbol, label))
    return QgsCategorizedSymbolRenderer("status", categories)


class _SharedStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies ``renderer()`` to a layer Processing loads."""

    _alive = []  # QGIS keeps only a C++ pointer: each run's styler must outlive the algorithm

    @classmethod
    def shared(cls):
        """A styler for one run. Not one instance for every run: the run's context deletes its post-processors
        once it has loaded its layers, and the next run that set the deleted one failed ("wrapped C/C++ object
        ... has been deleted"). The last few are kept referenced, as ``BuildingStyler.for_run`` keeps its own."""
        styler = cls()
        cls._alive = [*cls.__dict__.get("_alive", [])[-15:], styler]
        return styler

    def renderer(self):
        raise NotImplementedError

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsVectorLayer):
            layer.setRenderer(self.renderer())
            layer.triggerRepaint()


class ScoreStatusStyler(_SharedStyler):
    """Styles a scored layer when Processing loads it into the project."""

    def renderer(self):
        return score_status_renderer()


def building_renderer() -> QgsSingleSymbolRenderer:
    """Footprints a mapper can edit over imagery: a light fill, a bright outline."""
    symbol = QgsFillSymbol.createSimple(
        {"color": "255,170,0,50", "outline_color": "255,170,0,255", "outline_width": "0.5", "outline_width_unit": "MM"}
    )
    return QgsSingleSymbolRenderer(symbol)


def road_renderer() -> QgsSingleSymbolRenderer:
    """Centerlines that stand out on imagery and stay thin enough to edit: a yellow line on a dark casing."""
    symbol = QgsLineSymbol.createSimple({"line_color": "30,30,30,200", "line_width": "1.2", "line_width_unit": "MM"})
    symbol.appendSymbolLayer(QgsSimpleLineSymbolLayer(QColor(255, 221, 0), 0.6))  # the symbol owns it
    return QgsSingleSymbolRenderer(symbol)


def road_node_renderer() -> QgsCategorizedSymbolRenderer:
    categories = []
    for value, rgb, label in (("junction", "43,108,214", "Junction"), ("dead end", "215,48,31", "Dead end"),
                              ("through", "120,120,120", "Through (loop)")):
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "color": rgb, "size": "2", "size_unit": "MM",
                                               "outline_color": "255,255,255"})
        categories.append(QgsRendererCategory(value, symbol, label))
    return QgsCategorizedSymbolRenderer("kind", categories)


class RoadNodeStyler(_SharedStyler):
    """Colours road nodes by kind (junction, dead end)."""

    def renderer(self):
        return road_node_renderer()


def probability_renderer(provider) -> QgsSingleBandPseudoColorRenderer:
    """Band 1 (building or road probability) from 0 to 1 on a perceptual ramp; the other bands stay in the file."""
    ramp = QgsStyle.defaultStyle().colorRamp("Magma")
    shader_function = QgsColorRampShader(0.0, 1.0, ramp)
    shader_function.setColorRampItemList([
        QgsColorRampShader.ColorRampItem(step / 10, ramp.color(step / 10), f"{step / 10:.1f}") for step in range(11)
    ])
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(shader_function)  # the shader owns it
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    return renderer


class ProbabilityStyler(_SharedStyler):
    """Shows a probability raster as probability (not as a two-band colour composite, QGIS' default)."""

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if isinstance(layer, QgsRasterLayer):
            layer.setRenderer(probability_renderer(layer.dataProvider()))
            layer.triggerRepaint()


class BuildingStyler(QgsProcessingLayerPostProcessorInterface):
    """Styles extracted footprints and records the run (model, device, settings) in the layer's metadata."""

    _alive = []  # QGIS keeps only a C++ pointer: each run's styler must outlive the algorithm
    ABSTRACT = "Building footprints extracted by SpaceNet Toolkit (spacenet:extractbuildings)."

    @staticmethod
    def renderer():
        return building_renderer()

    def __init__(self, settings: dict):
        super().__init__()
        self.settings = settings

    @classmethod
    def for_run(cls, settings: dict) -> "BuildingStyler":
        styler = cls(settings)
        cls._alive = [*cls._alive[-15:], styler]
        return styler

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS API
        if not isinstance(layer, QgsVectorLayer):
            return
        layer.setRenderer(self.renderer())
        metadata = layer.metadata()
        metadata.setTitle(layer.name())
        metadata.setAbstract(
            self.ABSTRACT + "\n"
            + "\n".join(f"{key}: {value}" for key, value in self.settings.items())
        )
        metadata.setKeywords({"spacenet": [f"{key}={value}" for key, value in self.settings.items()]})
        layer.setMetadata(metadata)
        layer.triggerRepaint()


class RoadStyler(BuildingStyler):
    """Styles extracted centerlines and records the run in the layer's metadata."""

    ABSTRACT = "Road centerlines extracted by SpaceNet Toolkit (spacenet:extractroads)."

    @staticmethod
    def renderer():
        return road_renderer()
