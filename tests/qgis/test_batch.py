"""spacenet:extractbuildings in batch mode: Processing's own batch dialog, one row per raster, run for real.

In QGIS 3.22 the batch dialog runs its rows itself, one after the other in the main thread (``algorithm().run``
with a fresh context per row, no task), so the real dialog can be driven offscreen: rows filled through its
widgets, Run clicked, every row's output checked.
"""

import inspect

import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt import sip

ALGORITHM = "spacenet:extractbuildings"
ATLANTA = "spacenet/sn4_atlanta_pan/sample_geotiff.tif"  # 900 x 900 px, 0.5 m


@pytest.fixture
def batch_dialog(provider, qgis_iface, monkeypatch):
    """Processing's dialogs need a browser model; pytest-qgis's iface stub answers a MagicMock."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.gui import QgsBrowserGuiModel

    model = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: model)
    dialog = BatchAlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM))
    yield dialog
    if not sip.isdeleted(dialog):  # QGIS 3.40 deletes it itself once its rows have run
        dialog.close()


def crop(source, target, x, y, size):
    gdal.Translate(str(target), str(source), srcWin=[x, y, size, size])
    return target


def row_parameters(panel, row) -> dict:
    """A row's parameters as the batch panel reads them (QGIS 3.40 asks for a context too)."""
    if "context" in inspect.signature(panel.parametersForRow).parameters:
        return panel.parametersForRow(row, panel.processing_context)[0]
    return panel.parametersForRow(row)[0]


def test_one_batch_run_extracts_every_raster_into_its_own_output(batch_dialog, fixtures, brightness_model, tmp_path,
                                                                 qtbot):
    atlanta = fixtures / ATLANTA
    rasters = [atlanta, crop(atlanta, tmp_path / "north_west.tif", 0, 0, 300),
               crop(atlanta, tmp_path / "south_east.tif", 600, 600, 300)]
    outputs = [tmp_path / f"{raster.stem}_buildings.gpkg" for raster in rasters]

    panel = batch_dialog.mainWidget()
    panel.addRow(len(rasters) - panel.batchRowCount())
    assert panel.batchRowCount() == len(rasters)
    for row, (raster, output) in enumerate(zip(rasters, outputs)):
        cells = panel.wrappers[row]
        cells[panel.parameter_to_column["INPUT"]].setParameterValue(str(raster), panel.processing_context)
        cells[panel.parameter_to_column["MODEL"]].setParameterValue(brightness_model, panel.processing_context)
        # Output cells are the batch panel's own file choosers, one table row below the parameters' row 0.
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column["OUTPUT"]).setValue(str(output))
    assert [row_parameters(panel, row)["INPUT"] for row in range(len(rasters))] == [str(r) for r in rasters]

    batch_dialog.runButton().click()  # synchronous in 3.22: every row has run when click() returns
    # QGIS 3.40 runs the rows as tasks, one after the other: wait for the last one
    qtbot.waitUntil(lambda: QgsApplication.taskManager().countActiveTasks() == 0
                    and all(output.exists() for output in outputs), timeout=120_000)

    counts = []
    for raster, output in zip(rasters, outputs):
        layer = QgsVectorLayer(str(output), output.stem)
        assert layer.isValid(), f"no output for {raster.name}"
        assert layer.crs().authid() == "EPSG:32616"
        assert {f["model"] for f in layer.getFeatures()} == {"brightness_test_model"}
        # each row read its own raster: its footprints lie within it
        extent = QgsRasterLayer(str(raster), raster.stem).extent()
        assert extent.contains(layer.extent()), raster.name
        counts.append(layer.featureCount())
    whole, *crops = counts
    assert all(0 < count < whole for count in crops)
