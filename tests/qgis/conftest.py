"""Fixtures of the in-process QGIS tier."""

import pytest
from qgis.core import QgsApplication


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
