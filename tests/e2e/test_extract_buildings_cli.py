"""spacenet:extractbuildings from the command line: the shipped model on a real tile, chained into scoref1."""

import json
import re

import pytest
import rasterio
from osgeo import ogr

pytestmark = pytest.mark.e2e


def results_of(completed) -> dict:
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout[completed.stdout.index("{"):])["results"]


def test_the_shipped_model_finds_the_labelled_buildings(qgis_process_factory, plugin_path, repo_root, tmp_path):
    """The demo's job: extract with the shipped model by name, then score against the tile's labels."""
    samples = repo_root / "sample_data"
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    buildings, probability = tmp_path / "buildings.gpkg", tmp_path / "probability.tif"
    extracted = results_of(qgis_process(
        "--json", "run", "spacenet:extractbuildings", f"--INPUT={samples / 'sn4_atlanta_pan.tif'}",
        "--MODEL=buildings_unet_small", "--DEVICE=auto", f"--OUTPUT={buildings}",
        f"--OUTPUT_PROBABILITY={probability}",
    ))
    assert extracted["BUILDING_COUNT"] > 0 and extracted["MODEL_NAME"] == "buildings_unet_small"
    assert extracted["DEVICE_USED"] in ("CPU", "GPU (CUDA)", "GPU (TensorRT)")
    dataset = ogr.Open(str(buildings))
    layer = dataset.GetLayer(0)
    assert layer.GetFeatureCount() == extracted["BUILDING_COUNT"]
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32616"
    with rasterio.open(probability) as src:
        assert src.crs.to_epsg() == 32616 and src.dtypes[0] == "float32"
    scored = results_of(qgis_process(
        "--json", "run", "spacenet:scoref1", f"--TRUTH={samples / 'sn4_atlanta_buildings.geojson'}",
        f"--PROPOSALS={buildings}", f"--OUTPUT={tmp_path / 'scored.gpkg'}",
    ))
    # the chain holds: every extracted footprint was scored, every labelled building counted
    # (how well the model does on this tile is measured for its card, models/README.md)
    assert scored["TP"] + scored["FN"] == 43
    assert scored["TP"] + scored["FP"] == extracted["BUILDING_COUNT"]


def test_a_model_file_and_bad_bands_from_the_command_line(qgis_process_factory, plugin_path, fixtures, tmp_path):
    import onnx_models

    model = onnx_models.brightness_model(tmp_path / "brightness.onnx")
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    image = fixtures / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"
    ok = results_of(qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={image}",
                                 f"--MODEL={model}", "--DEVICE=cpu", f"--OUTPUT={tmp_path / 'a.gpkg'}"))
    assert ok["MODEL_NAME"] == "brightness_test_model" and ok["DEVICE_USED"] == "CPU"
    bad = qgis_process("run", "spacenet:extractbuildings", f"--INPUT={image}", f"--MODEL={model}",
                       "--BANDS=1", "--BANDS=2", f"--OUTPUT={tmp_path / 'b.gpkg'}")
    assert bad.returncode != 0
    assert "2 band(s) were chosen (1, 2) but the model takes 3" in bad.stdout + bad.stderr
    assert not (tmp_path / "b.gpkg").exists()


def test_a_run_prints_each_line_once_and_no_warnings_of_ours(qgis_process_factory, plugin_path, repo_root, tmp_path):
    """No Python warnings from the plugin's modules, no GPU hint where no NVIDIA GPU answers, no line twice."""
    from spacenet_toolkit.core.extract import runtime

    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    completed = qgis_process("run", "spacenet:extractbuildings",
                             f"--INPUT={repo_root / 'sample_data' / 'sn4_atlanta_pan.tif'}",
                             f"--OUTPUT={tmp_path / 'buildings.gpkg'}")
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert "spacenet_toolkit" not in completed.stderr  # a warning names the module that raised it
    if not runtime.nvidia_gpu_present():
        assert "onnxruntime-gpu" not in text
    # messages, not the Inputs and Results blocks (an output path is in both, by design)
    lines = [line.strip() for line in text.splitlines()
             if len(line.strip()) > 20 and not re.match(r"[A-Z_]+:\t", line)]
    assert len(lines) == len(set(lines)), [line for line in lines if lines.count(line) > 1]
