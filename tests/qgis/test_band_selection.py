"""The band-selection widget and its Processing wrapper: alone, in the algorithm dialog, in batch and the modeler."""

import re

import pytest
from qgis.core import QgsProcessingModelAlgorithm, QgsProject, QgsRasterLayer

ALGORITHM = "spacenet:extractbuildings"
ATLANTA_PAN = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"  # 1 band uint16
VEGAS_RGBA = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"  # red, green, blue, alpha
ROTTERDAM_MS = "spacenet/sn6_rotterdam_ms_pan/ms1.tif"  # 4 bands float64


@pytest.fixture
def layer(fixtures):
    """Real raster layers, in the project while a test runs."""
    added = []

    def make(relative):
        raster = QgsRasterLayer(str(fixtures / relative), relative.split("/")[-1])
        assert raster.isValid()
        QgsProject.instance().addMapLayer(raster)
        added.append(raster.id())
        return raster

    yield make
    QgsProject.instance().removeMapLayers(added)


@pytest.fixture
def shipped_model(repo_root):
    return str(repo_root / "models" / "buildings_unet_small.onnx")


@pytest.fixture
def widget(qgis_app, qtbot):
    from spacenet_toolkit.ui.band_selection import BandSelectionWidget

    created = BandSelectionWidget()
    qtbot.addWidget(created)
    return created


def combo_bands(widget):
    return [combo.currentData() for combo in widget._combos]


def test_opens_with_the_engines_choice_for_a_real_layer_and_the_shipped_model(widget, layer, shipped_model):
    widget.set_model(shipped_model)
    widget.set_raster(layer(VEGAS_RGBA).source())
    assert widget.bands() is None and widget.is_valid()
    assert widget.presetCombo.currentData() == "automatic"
    assert [widget.inputsForm.itemAt(i, widget.inputsForm.LabelRole).widget().text() for i in range(3)] == [
        "red ←", "green ←", "blue ←"]
    assert combo_bands(widget) == [1, 2, 3]
    assert widget.message() == "Automatic: red ← 1, green ← 2, blue ← 3"
    assert "buildings_unet_small" in widget.modelLabel.text() and "red, green, blue" in widget.modelLabel.text()
    table = widget.bandTable
    assert table.rowCount() == 4
    assert [table.item(3, c).text() for c in range(4)] == ["4", "", "alpha", "uint8"]
    assert not table.item(0, 6).data(0x1).isNull()  # Qt.DecorationRole: the histogram sparkline
    assert not widget.thumbnailLabel.pixmap().isNull()


def test_defaults_for_panchromatic_and_float_multispectral(widget, layer, shipped_model):
    widget.set_model(shipped_model)
    widget.set_raster(layer(ATLANTA_PAN).source())
    assert widget.is_valid() and combo_bands(widget) == [1, 1, 1]
    widget.set_raster(layer(ROTTERDAM_MS).source())
    assert widget.is_valid() and combo_bands(widget) == [1, 2, 3]
    assert [widget.bandTable.item(r, 3).text() for r in range(4)] == ["float64"] * 4


def test_presets_and_bands_chosen_are_the_value(widget, layer, shipped_model, qtbot):
    widget.set_model(shipped_model)
    widget.set_raster(layer(VEGAS_RGBA).source())
    with qtbot.waitSignal(widget.bandsChanged) as signal:
        widget.presetCombo.setCurrentIndex(widget.presetCombo.findData("panchromatic"))
    assert signal.args == [[1, 1, 1]] and widget.bands() == [1, 1, 1] and combo_bands(widget) == [1, 1, 1]
    widget.presetCombo.setCurrentIndex(widget.presetCombo.findData("rgb"))
    assert widget.bands() == [1, 2, 3]

    red = widget._combos[0]
    with qtbot.waitSignal(widget.bandsChanged):
        red.setCurrentIndex(red.findData(3))
    assert widget.bands() == [3, 2, 3] and widget.presetCombo.currentData() == "custom" and widget.is_valid()
    assert widget.message() == "red ← 3, green ← 2, blue ← 3"

    widget.set_bands([1, 2, 3])
    assert widget.presetCombo.currentData() == "rgb"
    widget.set_bands([])
    assert widget.bands() is None and widget.presetCombo.currentData() == "automatic"


def test_a_mapping_the_model_cannot_take_is_refused_with_the_reason(widget, layer, shipped_model):
    widget.set_model(shipped_model)
    widget.set_raster(layer(ATLANTA_PAN).source())
    widget.set_bands([4])
    assert not widget.is_valid() and widget.bands() == [4, 4, 4]
    assert widget.message() == "Band(s) 4, 4, 4 do not exist: the raster has bands 1 to 1."
    assert "color" in widget.messageLabel.styleSheet() and widget.thumbnailLabel.text() == "No preview"

    widget.set_raster(layer(VEGAS_RGBA).source())
    combo = widget.presetCombo
    worldview = combo.findData("worldview")
    assert not combo.model().item(worldview).isEnabled()
    assert "3 data band(s)" in combo.itemData(worldview, 3)  # Qt.ToolTipRole
    widget.choose_preset("worldview")
    assert not widget.is_valid() and widget.bands() == [5, 3, 2]
    assert widget.message() == "Band(s) 5 do not exist: the raster has bands 1 to 4."
    widget.choose_preset("rgb")
    assert widget.is_valid()


def test_no_raster_or_a_bad_model_is_said(widget, repo_root):
    assert not widget.is_valid() and "Choose a raster layer" in widget.message()
    widget.set_model(str(repo_root / "models" / "README.md"))
    assert "cannot be loaded by onnxruntime" in widget.modelLabel.text()
    widget.set_model(None, "No model 'x': give the name of a shipped model")
    assert widget.modelLabel.text().startswith("No model 'x'")


@pytest.fixture
def dialogs(provider, qgis_iface, monkeypatch):
    """Processing's dialogs need a browser model; pytest-qgis's iface stub answers a MagicMock."""
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model)
    return provider


def algorithm():
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)


def test_the_wrapper_serves_the_algorithm_dialog(dialogs, layer, qtbot):
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    from spacenet_toolkit.ui.band_selection import BandSelectionWidget
    from spacenet_toolkit.ui.band_wrapper import BandsWidgetWrapper

    dialog = AlgorithmDialog(algorithm())
    qtbot.addWidget(dialog)
    wrapper = dialog.mainWidget().wrappers["BANDS"]
    assert isinstance(wrapper, BandsWidgetWrapper) and isinstance(wrapper.widget, BandSelectionWidget)
    widget = wrapper.widget
    assert "buildings_unet_small" in widget.modelLabel.text()  # the MODEL parameter's default

    dialog.setParameters({"INPUT": layer(VEGAS_RGBA).id()})
    assert widget.bandTable.rowCount() == 4 and widget.is_valid()
    assert dialog.createProcessingParameters()["BANDS"] == []  # automatic

    widget.presetCombo.setCurrentIndex(widget.presetCombo.findData("panchromatic"))
    assert wrapper.value() == [1, 1, 1] and dialog.createProcessingParameters()["BANDS"] == [1, 1, 1]
    widget._combos[0].setCurrentIndex(widget._combos[0].findData(3))
    assert dialog.createProcessingParameters()["BANDS"] == [3, 1, 1]

    dialog.setParameters({"INPUT": layer(ATLANTA_PAN).id(), "BANDS": [2]})
    assert wrapper.value() == [2, 2, 2] and not widget.is_valid()
    assert widget.message() == "Band(s) 2, 2, 2 do not exist: the raster has bands 1 to 1."

    dialog.setParameters({"MODEL": "no_such_model"})
    assert not widget.is_valid() and widget.message().startswith("No model 'no_such_model'")


def test_batch_rows_take_band_lists_checked_against_their_layer(dialogs, layer, qtbot, fixtures):
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.PyQt.QtWidgets import QLineEdit

    dialog = BatchAlgorithmDialog(algorithm())
    qtbot.addWidget(dialog)
    panel = dialog.mainWidget()
    row = panel.wrappers[0]
    wrapper = row[panel.parameter_to_column["BANDS"]]
    assert isinstance(wrapper.widget, QLineEdit)
    assert wrapper.value() == []

    qtbot.keyClicks(wrapper.widget, "5,3,2x")  # the x is not let in
    assert wrapper.widget.text() == "5,3,2" and wrapper.value() == [5, 3, 2]
    row[panel.parameter_to_column["INPUT"]].setParameterValue(str(fixtures / VEGAS_RGBA), panel.processing_context)
    assert wrapper.widget.toolTip() == "Band(s) 5 do not exist: the raster has bands 1 to 4."
    wrapper.setValue([3, 2, 1])
    assert wrapper.widget.text() == "3,2,1" and wrapper.widget.toolTip() == "red ← 3, green ← 2, blue ← 1"
    assert panel.valueForParameter(0, "BANDS") == [3, 2, 1]


def test_the_modeler_offers_presets_and_band_lists(dialogs, qtbot):
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog
    from qgis.PyQt.QtWidgets import QComboBox

    model = QgsProcessingModelAlgorithm("m", "g")
    dialog = ModelerParametersDialog(algorithm(), model)
    qtbot.addWidget(dialog)
    wrapper = dialog.widget.widget.wrappers["BANDS"]
    combo = wrapper.widget
    assert isinstance(combo, QComboBox) and combo.isEditable()
    assert wrapper.value() == []
    combo.setCurrentIndex(combo.findText("True colour (WorldView 8-band 5,3,2)"))
    assert wrapper.value() == [5, 3, 2]
    combo.setEditText("")
    qtbot.keyClicks(combo, "4 3 2")
    assert wrapper.value() == [4, 3, 2]
    child = dialog.widget.widget.createAlgorithm()
    assert [s.staticValue() for s in child.parameterSources()["BANDS"]] == [[4, 3, 2]]
    wrapper.setValue([1])
    assert combo.currentText() == "Panchromatic to gray (band 1 to every input)" and wrapper.value() == [1]


def test_screenshot_of_the_widget(widget, layer, shipped_model, save_screenshot):
    """artifacts/screenshots/band_selection.png, for a person to look at (docs/screenshots/ holds a copy)."""
    widget.set_model(shipped_model)
    widget.set_raster(layer(VEGAS_RGBA).source())
    widget.resize(760, 560)
    widget.show()
    save_screenshot(widget, "band_selection")
    assert re.match(r"Automatic: red ← 1", widget.message())
