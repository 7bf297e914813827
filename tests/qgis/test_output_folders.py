"""The check every algorithm runs before any work on its outputs: what a destination value names, and which values
it leaves alone (temporary outputs, memory and provider URIs, optional outputs left out, folders); folders that are
not there or take no file; outputs that would overwrite an input or each other; the probability raster's format."""

import shutil

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProperty, QgsRasterLayer

from spacenet_toolkit.qgis_adapter.destinations import destination_layer, unusable_folder, unwritable_folder


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
    assert destination_layer(value, QgsProcessingContext())[0] == expected


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
        if not hasattr(algorithm, "unusable_output"):
            continue  # the shipped models (.model3) are QGIS's own
        for definition in algorithm.destinationParameterDefinitions():
            parameters = {definition.name(): str(missing / "out.file")}
            message = algorithm.unusable_output(parameters, context)
            if definition.type() == "folderDestination":
                assert message == "", algorithm.id()  # fetchtiles makes its folder
            else:
                assert message == (f"The folder '{missing}' for {definition.name()} ({definition.description()}) "
                                   "does not exist: create it or choose another folder."), algorithm.id()
            assert algorithm.unusable_output({definition.name(): "TEMPORARY_OUTPUT"}, context) == ""
            checked.add(algorithm.name())
    assert checked >= {"fetchtiles", "extractbuildings", "extractroads", "scoref1", "scoreapls", "calibrate"}
    (tmp_path / "file").write_text("")
    algorithm = provider.algorithm("scoref1")
    assert "'" + str(tmp_path / "file") + "', is a file" in algorithm.unusable_output(
        {"OUTPUT_HTML": str(tmp_path / "file" / "r.html")}, context)


def test_a_folder_that_takes_no_file_is_named_with_the_reason(tmp_path):
    assert unwritable_folder(str(tmp_path / "a.tif")) == ""
    assert unwritable_folder("/sys/a.tif")  # a kernel folder: no file can be made there, root or not


@pytest.fixture()
def image(fixtures, tmp_path):
    path = tmp_path / "image.tif"
    shutil.copy(fixtures / "spacenet" / "sn4_atlanta_pan" / "sample_geotiff.tif", path)
    return path


def test_an_output_that_would_overwrite_the_input_image_is_refused(provider, image, tmp_path):
    """The probability raster onto the source image replaced the imagery with probabilities, without a word."""
    context = QgsProcessingContext()
    algorithm = provider.algorithm("extractbuildings")
    for value in (str(image), QgsRasterLayer(str(image), "image")):
        message = algorithm.unusable_output(
            {"INPUT": value, "OUTPUT": str(tmp_path / "b.gpkg"), "OUTPUT_PROBABILITY": str(image)}, context)
        assert message == (f"OUTPUT_PROBABILITY (Building probability) would overwrite the input INPUT ({image}): "
                           "choose another file.")
    assert algorithm.unusable_output(
        {"INPUT": str(image), "OUTPUT": str(tmp_path / "b.gpkg"), "OUTPUT_PROBABILITY": str(tmp_path / "p.tif")},
        context) == ""


def test_outputs_into_one_file_are_refused_unless_they_name_their_layers(provider, tmp_path):
    context = QgsProcessingContext()
    roads = provider.algorithm("extractroads")
    same = str(tmp_path / "roads.gpkg")
    assert roads.unusable_output({"OUTPUT": same, "OUTPUT_NODES": same}, context) == (
        f"OUTPUT_NODES (Road nodes) and OUTPUT are the same file ({same}): give each its own.")
    assert roads.unusable_output({"OUTPUT": same + "|layername=lines", "OUTPUT_NODES": same + "|layername=nodes"},
                                 context) == ""
    truth = tmp_path / "truth.gpkg"
    truth.write_bytes(b"")
    score = provider.algorithm("scoref1")
    message = score.unusable_output({"TRUTH": f"{truth}|layername=truth", "OUTPUT_HTML": str(tmp_path / "r.html"),
                                     "OUTPUT": str(truth)}, context)
    assert message.endswith(f"would overwrite the input TRUTH ({truth}): choose another file."), message


def test_the_probability_raster_is_a_geotiff(provider, tmp_path):
    """It is written as GeoTIFF whatever its name said: a .gpkg shared with the footprints lost the raster."""
    algorithm = provider.algorithm("extractbuildings")
    for name in ("p.img", "p.gpkg", "p.vrt"):
        message = algorithm.unusable_output({"OUTPUT_PROBABILITY": str(tmp_path / name)}, QgsProcessingContext())
        assert message == (f"OUTPUT_PROBABILITY (Building probability) is written as a GeoTIFF: give its file a .tif "
                           f"name, not '{name}'."), name
    assert algorithm.unusable_output({"OUTPUT_PROBABILITY": str(tmp_path / "p.TIF")}, QgsProcessingContext()) == ""
    parameter = algorithm.parameterDefinition("OUTPUT_PROBABILITY")
    assert set(parameter.supportedOutputRasterLayerExtensions()) == {"tif", "tiff"}


def test_a_file_output_that_is_a_folder_and_a_folder_output_that_cannot_be_made_are_refused(provider, tmp_path):
    """status and calibrate wrote '<folder>.part', failed to rename it with a traceback, and left it there;
    fetchtiles into a read-only place failed with a traceback, or downloaded nothing and called it done."""
    context = QgsProcessingContext()
    (tmp_path / "report.html").mkdir()
    message = provider.algorithm("status").unusable_output({"OUTPUT_JSON": str(tmp_path / "report.html")}, context)
    assert message.startswith("OUTPUT_JSON (") and message.endswith(
        f"names a folder, '{tmp_path / 'report.html'}': give the name of a file in it."), message
    fetch = provider.algorithm("fetchtiles")
    (tmp_path / "a file").write_text("")
    assert "names a file" in fetch.unusable_output({"OUTPUT_FOLDER": str(tmp_path / "a file")}, context)
    assert "is a file, so the folder" in fetch.unusable_output({"OUTPUT_FOLDER": str(tmp_path / "a file" / "x")},
                                                               context)
    assert fetch.unusable_output({"OUTPUT_FOLDER": "/sys/tiles"}, context).startswith(
        "No file can be written in '/sys' for OUTPUT_FOLDER")
    assert fetch.unusable_output({"OUTPUT_FOLDER": str(tmp_path / "new" / "tiles")}, context) == ""
