"""The check every algorithm runs before any work on its outputs' folders: what a destination value names, and
which values it leaves alone (temporary outputs, memory and provider URIs, optional outputs left out, folders)."""

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProperty

from spacenet_toolkit.qgis_adapter.destinations import destination_file, unusable_folder


@pytest.mark.parametrize("value, expected", [
    (None, ""), ("", ""), ("TEMPORARY_OUTPUT", ""), ("memory:", ""), ("memory:footprints", ""),
    ("ogr:dbname='/nowhere/a.gpkg' table=\"t\" (geom)", ""), ("postgres://host/db", ""),
    ("/data/out.gpkg", "/data/out.gpkg"), ("/data/out.gpkg|layername=roads", "/data/out.gpkg"),
    ("C:/data/out.gpkg", "C:/data/out.gpkg"),
    (QgsProcessingOutputLayerDefinition("/data/out.gpkg"), "/data/out.gpkg"),
    (QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT"), ""),
    (QgsProperty.fromValue("/data/out.tif"), "/data/out.tif"),
])
def test_the_file_a_destination_names(value, expected):
    assert destination_file(value, QgsProcessingContext()) == expected


def test_the_folder_is_there_or_named(tmp_path):
    assert unusable_folder(str(tmp_path / "a.gpkg")) is None
    assert unusable_folder("relative.gpkg") is None  # the working folder
    assert unusable_folder(str(tmp_path / "no" / "a.gpkg")) == tmp_path / "no"
    (tmp_path / "file").write_text("")
    assert unusable_folder(str(tmp_path / "file" / "a.gpkg")) == tmp_path / "file"


def test_every_algorithm_refuses_a_missing_folder_and_keeps_its_own_folder_output(provider, tmp_path):
    context = QgsProcessingContext()
    missing = tmp_path / "missing"
    checked = set()
    for algorithm in provider.algorithms():
        if not hasattr(algorithm, "missing_output_folder"):
            continue  # the shipped models (.model3) are QGIS's own
        for definition in algorithm.destinationParameterDefinitions():
            parameters = {definition.name(): str(missing / "out.file")}
            message = algorithm.missing_output_folder(parameters, context)
            if definition.type() == "folderDestination":
                assert message == "", algorithm.id()  # fetchtiles makes its folder
            else:
                assert message == (f"The folder '{missing}' for {definition.name()} ({definition.description()}) "
                                   "does not exist: create it or choose another folder."), algorithm.id()
            assert algorithm.missing_output_folder({definition.name(): "TEMPORARY_OUTPUT"}, context) == ""
            checked.add(algorithm.name())
    assert checked >= {"fetchtiles", "extractbuildings", "extractroads", "scoref1", "scoreapls", "calibrate"}
    (tmp_path / "file").write_text("")
    algorithm = provider.algorithm("scoref1")
    assert "'" + str(tmp_path / "file") + "', is a file" in algorithm.missing_output_folder(
        {"OUTPUT_HTML": str(tmp_path / "file" / "r.html")}, context)
