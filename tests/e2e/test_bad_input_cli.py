"""Bad inputs from the command line (issue 19): a model made for the other task, an output into a folder that is
not there, a text file named .tif. Each is refused by the real qgis_process before any work, in one sentence, with
a non-zero exit, no traceback and nothing written."""

import pytest

pytestmark = pytest.mark.e2e

ATLANTA = "sn4_atlanta_pan.tif"
ATLANTA_TRUTH = "sn4_atlanta_buildings.geojson"
VEGAS = "sn3_vegas_rgb_bottom_half.tif"
VEGAS_ROADS = "sn3_vegas_rgb_bottom_half_roads.geojson"


@pytest.fixture
def samples(repo_root):
    return repo_root / "sample_data"


@pytest.fixture
def out(tmp_path):
    """The output folder: it must stay empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def refused(completed, message: str) -> str:
    """The run's whole output, once it is checked to be a refusal with ``message`` before any work."""
    text = completed.stdout + completed.stderr
    assert completed.returncode != 0, text
    assert message in text, text
    assert "Traceback" not in text, text
    # qgis_process prints the bar as 0...10...20 and then "Results" once an algorithm runs: it never ran
    assert "0..." not in completed.stdout and "Results" not in completed.stdout, text
    return text


@pytest.mark.parametrize("algorithm, model, image, message", [
    ("spacenet:extractbuildings", "roads_effnet_lite0", ATLANTA,
     "The model 'roads_effnet_lite0' is made for roads (its output channels: road), not for buildings: run it "
     "with spacenet:extractroads, or choose a buildings model (buildings_unet_small"),
    ("spacenet:extractroads", "models/buildings_unet_small.onnx", VEGAS,
     "The model 'buildings_unet_small' is made for buildings (its output channels: building, interior), not for "
     "roads: run it with spacenet:extractbuildings, or choose a roads model (roads_effnet_lite0) for this "
     "algorithm."),
])
def test_a_model_made_for_the_other_task_is_refused_before_inference(qgis_process, samples, repo_root, out,
                                                                      algorithm, model, image, message):
    model_value = str(repo_root / model) if model.endswith(".onnx") else model
    completed = qgis_process("run", algorithm, f"--INPUT={samples / image}", f"--MODEL={model_value}",
                             "--DEVICE=cpu", f"--OUTPUT={out / 'found.gpkg'}",
                             f"--OUTPUT_PROBABILITY={out / 'probability.tif'}")
    text = refused(completed, message)
    assert " on CPU; bands " not in text  # the engine's first line, written once the model runs
    assert not list(out.iterdir())


def missing_folder_cases():
    """(algorithm, its arguments with {samples} {out} {missing} to fill in, the parameter whose folder is
    missing)."""
    atlanta = ["--INPUT={samples}/" + ATLANTA, "--DEVICE=cpu"]
    score_f1 = ["--TRUTH={samples}/" + ATLANTA_TRUTH, "--PROPOSALS={samples}/" + ATLANTA_TRUTH]
    score_apls = ["--TRUTH={samples}/" + VEGAS_ROADS, "--PROPOSALS={samples}/" + VEGAS_ROADS]
    calibrate = ["--PROBABILITY={samples}/" + ATLANTA, "--TRUTH={samples}/" + ATLANTA_TRUTH]
    return [
        ("spacenet:extractbuildings", atlanta + ["--OUTPUT={missing}/buildings.gpkg"], "OUTPUT"),
        ("spacenet:extractbuildings",
         atlanta + ["--OUTPUT={out}/buildings.gpkg", "--OUTPUT_PROBABILITY={missing}/probability.tif"],
         "OUTPUT_PROBABILITY"),
        ("spacenet:extractroads",
         ["--INPUT={samples}/" + VEGAS, "--DEVICE=cpu", "--OUTPUT={out}/roads.gpkg",
          "--OUTPUT_NODES={missing}/nodes.gpkg"], "OUTPUT_NODES"),
        ("spacenet:scoref1", score_f1 + ["--OUTPUT={out}/scored.gpkg", "--OUTPUT_HTML={missing}/report.html"],
         "OUTPUT_HTML"),
        ("spacenet:scoref1", score_f1 + ["--OUTPUT={out}/scored.gpkg", "--OUTPUT_TABLE={missing}/table.csv"],
         "OUTPUT_TABLE"),
        ("spacenet:scoreapls", score_apls + ["--OUTPUT_TABLE={missing}/table.csv", "--OUTPUT_HTML={out}/r.html"],
         "OUTPUT_TABLE"),
        ("spacenet:calibrate", calibrate + ["--OUTPUT_TABLE={out}/table.csv", "--OUTPUT_HTML={missing}/r.html"],
         "OUTPUT_HTML"),
        # no server answers there: the folder is checked before anything is asked of it
        ("spacenet:fetchtiles",
         ["--DATASET=SN3_roads", "--AOI=AOI_2_Vegas", "--SPLIT=train", "--PRODUCTS=labels",
          "--ENDPOINT=http://127.0.0.1:9", "--LOAD_OUTPUTS=false", "--OUTPUT_FOLDER={out}/tiles",
          "--TILE_INDEX={missing}/index.gpkg"], "TILE_INDEX"),
    ]


@pytest.mark.parametrize("algorithm, arguments, parameter", missing_folder_cases())
def test_an_output_into_a_missing_folder_is_refused_before_any_work(qgis_process, samples, out, tmp_path,
                                                                     algorithm, arguments, parameter):
    missing = tmp_path / "not" / "there"
    values = dict(samples=samples, out=out, missing=missing)
    completed = qgis_process("run", algorithm, *(argument.format(**values) for argument in arguments))
    text = refused(completed, f"The folder '{missing}' for {parameter} (")
    assert "does not exist: create it or choose another folder." in text
    assert not list(out.iterdir())  # not the other outputs either (scoref1 left its scored layer once)
    assert not missing.parent.exists()


@pytest.mark.parametrize("algorithm, parameter, others", [
    ("spacenet:extractbuildings", "INPUT", ["--DEVICE=cpu", "--OUTPUT={out}/buildings.gpkg"]),
    ("spacenet:calibrate", "PROBABILITY", ["--TRUTH={samples}/" + ATLANTA_TRUTH, "--OUTPUT_HTML={out}/r.html"]),
])
def test_a_text_file_named_tif_is_not_a_raster_gdal_can_read(qgis_process, samples, out, tmp_path, algorithm,
                                                             parameter, others):
    fake = tmp_path / "image.tif"
    fake.write_text("not an image\n")
    completed = qgis_process("run", algorithm, f"--{parameter}={fake}",
                             *(other.format(samples=samples, out=out) for other in others))
    text = refused(completed, f"{parameter}: '{fake}' is not a raster GDAL can read")
    assert "not found" not in text
    assert not list(out.iterdir())
