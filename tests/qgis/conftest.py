"""Fixtures of the in-process QGIS tier."""

import pytest
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QCoreApplication, QEvent


@pytest.fixture(autouse=True)
def project_layers_left_as_found(qgis_app):
    """Each test leaves the project's layers as it found them: a layer one test loads (a model's output, say)
    must not change what the next test sees, whatever order the tests run in."""
    project = QgsProject.instance()
    before = set(project.mapLayers())
    yield
    added = [layer_id for layer_id in project.mapLayers() if layer_id not in before]
    if added:
        project.removeMapLayers(added)


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
def register():
    """register(provider): adds a provider to the registry for the test (removed after it) and returns it."""
    registry = QgsApplication.processingRegistry()
    added = []

    def _register(provider):
        assert registry.addProvider(provider)
        added.append(provider)
        return provider

    yield _register
    for provider in added:
        registry.removeProvider(provider)


@pytest.fixture
def plugin(qgis_iface):
    """The plugin as QGIS loads it (classFactory, initGui), unloaded after the test."""
    import spacenet_toolkit

    loaded = spacenet_toolkit.classFactory(qgis_iface)
    loaded.initGui()
    yield loaded
    loaded.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # what unload deleted is gone now


@pytest.fixture
def save_screenshot(repo_root):
    """save(widget, name): the widget's picture as artifacts/screenshots/NAME.png, for a person to look at
    (docs/screenshots/ holds copies); asserts it is not blank-small and returns its path."""

    def save(widget, name, min_bytes=10_000):
        path = repo_root / "artifacts" / "screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert widget.grab().save(str(path)) and path.stat().st_size > min_bytes
        return path

    return save
