"""Fixtures of the in-process QGIS tier."""

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent


@pytest.fixture(scope="module")
def provider(qgis_processing):
    """The plugin's provider, registered as the plugin registers it."""
    from spacenet_toolkit.processing_provider.provider import SpaceNetProvider

    registry = QgsApplication.processingRegistry()
    registered = registry.providerById("spacenet")
    if registered is None:
        registered = SpaceNetProvider()
        registry.addProvider(registered)
    yield registered
    registry.removeProvider(registered)


@pytest.fixture
def plugin(qgis_iface):
    """The plugin as QGIS loads it (classFactory, initGui), unloaded after the test."""
    import spacenet_toolkit

    loaded = spacenet_toolkit.classFactory(qgis_iface)
    loaded.initGui()
    yield loaded
    loaded.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # what unload deleted is gone now
