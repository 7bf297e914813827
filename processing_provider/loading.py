"""Put fetched SpaceNet tiles into a project: one group per run, labels on top and styled, imagery in true colour."""

from qgis.core import (
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsLineSymbol,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsWkbTypes,
)

MAX_LAYERS = 200  # beyond this a project becomes sluggish; the files are all on disk anyway
TRUE_COLOUR_8_BAND = (5, 3, 2)  # WorldView-3 red, green, blue (REFERENCE.md)


def add_fetched_layers(project, request, result, feedback) -> None:
    from ..core.fetch import catalog

    files = result.complete[:MAX_LAYERS]
    if len(result.complete) > MAX_LAYERS:
        feedback.pushWarning(f"Added the first {MAX_LAYERS} files to the project; all are in {request.output_folder}.")
    if not files:
        return
    root = project.layerTreeRoot()
    group = root.insertGroup(0, f"SpaceNet {request.dataset} {request.aoi} ({request.split})")
    labels = [f for f in files if catalog.is_label(f.product)]
    imagery = [f for f in files if not catalog.is_label(f.product)]
    for file in labels:
        layer = QgsVectorLayer(str(file.local_path), f"{file.tile_id} labels", "ogr")
        if layer.isValid():
            _style_labels(layer)
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    for file in imagery:
        layer = QgsRasterLayer(str(file.local_path), f"{file.tile_id} {file.product}")
        if layer.isValid():
            _style_imagery(layer)
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    feedback.pushInfo(f"Added {len(group.findLayers())} layers to the group '{group.name()}'.")


def _style_labels(layer: QgsVectorLayer) -> None:
    """Outlines that stay readable over imagery: yellow footprints, orange road centerlines."""
    if layer.geometryType() == QgsWkbTypes.GeometryType.LineGeometry:
        symbol = QgsLineSymbol.createSimple({"color": "255,127,0,255", "width": "0.8", "width_unit": "MM"})
    else:
        symbol = QgsFillSymbol.createSimple({"color": "255,255,0,0", "outline_color": "255,230,0,255",
                                             "outline_width": "0.5", "outline_width_unit": "MM"})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))


def _style_imagery(layer: QgsRasterLayer) -> None:
    """11-bit data looks black without a stretch; 8-band data needs bands 5,3,2 for true colour."""
    renderer = layer.renderer()
    if layer.bandCount() >= 8 and hasattr(renderer, "setRedBand"):
        red, green, blue = TRUE_COLOUR_8_BAND
        renderer.setRedBand(red)
        renderer.setGreenBand(green)
        renderer.setBlueBand(blue)
    layer.setContrastEnhancement(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.Limits.CumulativeCut)
