"""Models fetched on first use, inside QGIS: a model that is only in the registry is downloaded from a loopback
release server into the profile's cache, verified and run; the help lists each model with its state."""

import json
import shutil

import file_server  # tests/support, on sys.path through tests/conftest.py
import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from spacenet_toolkit.core import model_registry
from spacenet_toolkit.qgis_adapter.models import models_cache_dir

ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"
VEGAS_RGBA = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
NAME = "fetched_test_buildings"


class Recording(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []
        self.pushInfo = self.pushWarning = self.lines.append


@pytest.fixture
def release(brightness_model, tmp_path, monkeypatch):
    """A release serving the brightness test model as NAME.onnx, and a registry naming it (fetched), set through
    the environment as a mirror or a test would."""
    folder = tmp_path / "release"
    folder.mkdir()
    served = folder / f"{NAME}.onnx"
    shutil.copy(brightness_model, served)
    data = json.loads(model_registry.REGISTRY_PATH.read_text(encoding="utf-8"))
    data["models"][NAME] = {
        "task": "buildings", "summary": "The brightness test model, for tests of downloads.", "delivery": "fetched",
        "files": {served.name: {"size": served.stat().st_size, "sha256": model_registry.sha256_of(served)}},
    }
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    cached = models_cache_dir() / served.name
    cached.unlink(missing_ok=True)
    with file_server.serve_folder(folder) as server:
        monkeypatch.setenv(model_registry.REGISTRY_ENV, str(registry))
        monkeypatch.setenv(model_registry.MODELS_URL_ENV, server.url)
        server.cached = cached
        yield server
    cached.unlink(missing_ok=True)


def run(parameters, feedback):
    import processing

    return processing.run("spacenet:extractbuildings", parameters, feedback=feedback)


def test_a_registered_model_is_downloaded_verified_and_run_on_first_use(provider, fixtures, release):
    parameters = {"INPUT": str(fixtures / ATLANTA), "MODEL": NAME, "DEVICE": "cpu", "OUTPUT": "memory:"}
    feedback = Recording()
    result = run(parameters, feedback)
    assert result["MODEL_NAME"] == "brightness_test_model" and result["BUILDING_COUNT"] > 10
    assert release.requested == [f"/{NAME}.onnx"]
    assert release.cached.is_file()
    assert model_registry.sha256_of(release.cached) == model_registry.load_registry().get(NAME).main.sha256
    assert any(line.startswith(f"Downloading the model file {NAME}.onnx") and str(models_cache_dir()) in line
               for line in feedback.lines)
    assert any("Downloaded and verified" in line for line in feedback.lines)
    again = run(parameters, Recording())
    assert again["BUILDING_COUNT"] == result["BUILDING_COUNT"] and len(release.requested) == 1


def test_the_help_lists_the_models_of_the_task_with_their_state(provider, release):
    registry = QgsApplication.processingRegistry()
    buildings = registry.algorithmById("spacenet:extractbuildings").shortHelpString()
    size = model_registry.load_registry().get(NAME).main.size_label
    assert (f"<li><b>{NAME}</b> (downloaded on first use, {size}): The brightness test model, for tests of "
            "downloads.</li>") in buildings
    assert "<li><b>buildings_unet_small</b> (installed, the default): Building footprints" in buildings
    assert "roads_unet_small" not in buildings
    roads = registry.algorithmById("spacenet:extractroads").shortHelpString()
    assert "<li><b>roads_effnet_lite0</b> (installed, the default): Road centerlines" in roads and NAME not in roads
    assert str(models_cache_dir()) in roads


def test_offline_fails_with_what_to_do_and_keeps_nothing(provider, fixtures, release, monkeypatch):
    offline = file_server.closed_port_url()
    monkeypatch.setenv(model_registry.MODELS_URL_ENV, offline)
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": str(fixtures / ATLANTA), "MODEL": NAME, "OUTPUT": "memory:"}, Recording())
    message = str(error.value)
    assert f"Cannot download the model file {NAME}.onnx" in message and f"from {offline}{NAME}.onnx" in message
    assert f"Download it by hand (e.g. with a web browser) into {models_cache_dir()}" in message
    assert not [p for p in models_cache_dir().glob(f"{NAME}*")]


def test_cancel_during_the_download_keeps_nothing(provider, fixtures, release):
    feedback = Recording()
    feedback.cancel()  # the test model is one chunk: a cancel mid-transfer is core's test (test_model_store)
    assert run({"INPUT": str(fixtures / ATLANTA), "MODEL": NAME, "OUTPUT": "memory:"}, feedback) == {}
    assert "Canceled while downloading the model: nothing was kept." in feedback.lines
    assert not [p for p in models_cache_dir().glob(f"{NAME}*")]


@pytest.fixture
def dialogs(provider, qgis_iface, monkeypatch):
    """Processing's dialogs need a browser model; pytest-qgis's iface stub answers a MagicMock."""
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model)
    return provider


def test_the_dialog_never_downloads_and_assumes_rgb_inputs_meanwhile(dialogs, fixtures, release, qtbot):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    algorithm = QgsApplication.processingRegistry().createAlgorithmById("spacenet:extractbuildings")
    layer = QgsRasterLayer(str(fixtures / VEGAS_RGBA), "vegas")
    QgsProject.instance().addMapLayer(layer)
    try:
        dialog = AlgorithmDialog(algorithm)
        qtbot.addWidget(dialog)
        dialog.setParameters({"INPUT": layer.id(), "MODEL": NAME})
        widget = dialog.mainWidget().wrappers["BANDS"].widget
        assert widget.is_valid() and widget.message() == "Automatic: red ← 1, green ← 2, blue ← 3"
        ok, message = algorithm.checkParameterValues(
            {"INPUT": layer.source(), "MODEL": NAME, "BANDS": [3, 2, 1], "OUTPUT": "memory:"}, QgsProcessingContext())
        assert ok, message
        assert release.requested == []
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_the_default_models_are_registered_for_their_task(provider):
    from spacenet_toolkit.processing_provider.extract_buildings import ExtractBuildings
    from spacenet_toolkit.processing_provider.extract_roads import ExtractRoads

    registry = model_registry.load_registry()
    for algorithm in (ExtractBuildings, ExtractRoads):
        assert algorithm.DEFAULT_MODEL in registry.names(algorithm.TASK)
