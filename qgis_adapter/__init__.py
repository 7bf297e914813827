"""The QGIS adapter: QGIS layers and geometries to shapely and back, layer sources, sinks, styles and the model
store inside QGIS. Serves ``processing_provider/`` and ``ui/`` alike, so that neither imports the other; it imports
``core`` and QGIS, never ``processing_provider`` nor ``ui``."""
