"""Choices by number from the command line (issue 19): `qgis_process help` lists an enum's options as "0: name",
so the number works as the name does (QGIS 3.22 refused it before any check, and a model's step would have taken
the default without a word); a number or a name that is not a choice is refused in one sentence that lists them."""

import json

import pytest

from spacenet_toolkit.core import choices
from spacenet_toolkit.core.fetch import catalog

pytestmark = pytest.mark.e2e


def results_of(completed) -> dict:
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert "Traceback" not in text, text
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def number(options, name) -> str:
    return str(list(options).index(name))


def fetched_files(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_fetchtiles_takes_the_numbers_help_lists_as_it_takes_the_names(qgis_process, bucket, tmp_path):
    keys = bucket.manifest.keys(dataset="SN3_roads")
    rgb = next(key for key in keys if "/PS-RGB/" in key)
    west, south, east, north = bucket.manifest.footprints[rgb]
    common = [f"--ENDPOINT={bucket.endpoint}", f"--EXTENT={west},{east},{south},{north} [EPSG:4326]",
              "--LOAD_OUTPUTS=false"]
    by_name = results_of(qgis_process(
        "--json", "run", "spacenet:fetchtiles", "--DATASET=SN3_roads", "--AOI=AOI_2_Vegas", "--SPLIT=train",
        "--PRODUCTS=PS-RGB", "--PRODUCTS=labels", *common, f"--OUTPUT_FOLDER={tmp_path / 'by_name'}"))
    by_number = results_of(qgis_process(
        "--json", "run", "spacenet:fetchtiles", f"--DATASET={number(catalog.DATASETS, 'SN3_roads')}",
        f"--AOI={number(catalog.ALL_AOIS, 'AOI_2_Vegas')}", f"--SPLIT={number(catalog.SPLITS, 'train')}",
        f"--PRODUCTS={number(catalog.PRODUCTS, 'PS-RGB')}", f"--PRODUCTS={number(catalog.PRODUCTS, 'labels')}",
        *common, f"--OUTPUT_FOLDER={tmp_path / 'by_number'}"))
    # the comma-separated list `help` names as acceptable ("1,3") works too
    by_list = results_of(qgis_process(
        "--json", "run", "spacenet:fetchtiles", "--DATASET=SN3_roads", "--AOI=AOI_2_Vegas", "--SPLIT=train",
        f"--PRODUCTS={number(catalog.PRODUCTS, 'PS-RGB')},{number(catalog.PRODUCTS, 'labels')}", *common,
        f"--OUTPUT_FOLDER={tmp_path / 'by_list'}"))

    assert by_name["TILE_COUNT"] == by_number["TILE_COUNT"] == by_list["TILE_COUNT"] == 1
    named = fetched_files(tmp_path / "by_name")
    assert len(named) == 2  # the tile's PS-RGB and its labels
    assert fetched_files(tmp_path / "by_number") == named
    assert fetched_files(tmp_path / "by_list") == named
    for results in (by_name, by_number, by_list):
        assert "SN3_roads/train/AOI_2_Vegas/PS-RGB/" in results["IMAGERY"]


@pytest.mark.parametrize("device, used", [(number(choices.DEVICES, "auto"), None),
                                          (number(choices.DEVICES, "cpu"), "CPU")])
def test_extractbuildings_takes_the_device_by_number(qgis_process, fixtures, tmp_path, device, used):
    import onnx_models

    model = onnx_models.brightness_model(tmp_path / "brightness.onnx")
    image = fixtures / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    results = results_of(qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={image}",
                                      f"--MODEL={model}", f"--DEVICE={device}", f"--OUTPUT={tmp_path / 'a.gpkg'}"))
    assert results["DEVICE_USED"] in ((used,) if used else ("CPU", "GPU (CUDA)", "GPU (TensorRT)"))
    assert (tmp_path / "a.gpkg").is_file()


@pytest.mark.parametrize("args, message", [
    (["--DATASET=17"], "DATASET (Dataset): 17 is not among the choices: give a name or its number (0: SN1_buildings, "
                       "1: SN2_buildings, 2: SN3_roads, 3: SN4_buildings, 4: SN5_roads, 5: SN6_buildings)."),
    (["--PRODUCTS=0", "--PRODUCTS=9", "--PRODUCTS=RGB"],
     "PRODUCTS (Products): 9, 'RGB' are not among the choices: give a name or its number (0: PS-RGB, 1: PS-MS, "
     "2: PAN, 3: MS, 4: labels)."),
])
def test_a_number_or_name_that_is_not_a_choice_is_refused_with_the_choices(qgis_process, tmp_path, args, message):
    output = tmp_path / "tiles"
    completed = qgis_process("run", "spacenet:fetchtiles", *args, "--ENDPOINT=http://127.0.0.1:9/never-asked",
                             f"--OUTPUT_FOLDER={output}")
    text = completed.stdout + completed.stderr
    assert completed.returncode != 0, text
    assert text.count(message) == 1, text
    assert "Traceback" not in text, text
    assert "Results" not in completed.stdout, text  # refused before the run
    assert not output.exists()


def test_the_extraction_device_out_of_range_is_refused(qgis_process, fixtures, tmp_path):
    image = fixtures / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    completed = qgis_process("run", "spacenet:extractbuildings", f"--INPUT={image}", "--DEVICE=3",
                             f"--OUTPUT={tmp_path / 'a.gpkg'}")
    text = completed.stdout + completed.stderr
    assert completed.returncode != 0, text
    assert text.count("DEVICE (Device): 3 is not among the choices: give a name or its number (0: auto, 1: gpu, "
                      "2: cpu).") == 1, text
    assert "Traceback" not in text, text
    assert not (tmp_path / "a.gpkg").exists()
