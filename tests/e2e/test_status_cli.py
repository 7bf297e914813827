"""spacenet:status and `list` through qgis_process (issue 19): the command-line user's view of the models, the Python
packages and the GPU, and why the SpaceNet group is short when packages are missing."""

import json

import pytest

from spacenet_toolkit.core import dependencies

pytestmark = pytest.mark.e2e
PLUGIN = "spacenet_toolkit"


def _lines(completed):
    return (completed.stdout + completed.stderr).splitlines()


def test_status_lists_models_packages_devices_and_algorithms(qgis_process_factory, plugin_path, tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable(PLUGIN)
    report = tmp_path / "status.json"
    completed = qgis_process("run", "spacenet:status", f"--OUTPUT_JSON={report}", timeout=120)
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert "Traceback" not in text and "Error" not in text, text
    lines = _lines(completed)
    assert any(line.startswith("SpaceNet Toolkit 0.") and "(QGIS 3." in line for line in lines), text
    # every registered model, with its task and whether it is here
    for name, task in (("buildings_unet_small", "buildings"), ("roads_effnet_lite0", "roads")):
        assert any(line.startswith(f"  model {name} ") and f" - {task} - here: " in line for line in lines), text
    assert any(line.startswith("      card: buildings_unet_small (buildings; 3 input bands") for line in lines), text
    # every package, installed with its version or missing with its pip command
    for module in dependencies.PACKAGES:
        version = dependencies.installed_version(module)
        expected = f"  installed: {module} {version}" if version else f"  MISSING: {module}"
        assert any(line.startswith(expected) for line in lines), (module, text)
    assert any(line.startswith("  NVIDIA GPU: ") for line in lines), text
    assert any(line.startswith("  models run on: ") for line in lines), text
    assert "  offered: spacenet:status" in lines
    data = json.loads(report.read_text(encoding="utf-8"))
    assert f"MISSING:\t{len(data['missing_packages'])}" in lines
    assert f"DEVICE:\t{data['runtime']['device']}" in lines


def test_list_and_status_say_why_algorithms_are_missing(qgis_process_factory, plugin_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path, block_modules=("rasterio",))
    qgis_process.enable(PLUGIN)

    listing = qgis_process("list")
    assert listing.returncode == 0, listing.stderr
    header = [line for line in listing.stdout.splitlines() if line.startswith("SpaceNet")]
    # fetchtiles, extractbuildings, extractroads, scoreapls, calibrate and the shipped model need rasterio
    assert header == ["SpaceNet (8 algorithms need missing packages: run spacenet:status)"], listing.stdout
    assert "\tspacenet:status\t" in listing.stdout
    provider = qgis_process.providers()["spacenet"]
    assert provider["long_name"] == "SpaceNet Toolkit (8 algorithms need missing packages: run spacenet:status)"
    assert "spacenet:status" in provider["algorithms"] and "spacenet:fetchtiles" not in provider["algorithms"]

    completed = qgis_process("run", "spacenet:status", "--CHECK_GPU=false", timeout=120)
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert "Traceback" not in text, text
    lines = _lines(completed)
    assert any(line.startswith("  MISSING: rasterio - windowed raster reads and writes; needed by spacenet:fetchtiles")
               and line.endswith("; install: python -m pip install rasterio") for line in lines), text
    assert any(line.startswith("  To install everything missing") and line.endswith("python -m pip install rasterio")
               for line in lines), text
    assert any(line.startswith("  NOT AVAILABLE: spacenet:fetchtiles - Missing Python package(s): rasterio")
               for line in lines), text
    assert "MISSING:\t1" in lines and "UNAVAILABLE:\t8" in lines, text


def test_status_answers_where_every_package_and_onnxruntime_are_missing(qgis_process_factory, plugin_path):
    # all but numpy, without which QGIS's own Processing plugin does not start (core.extract.status needs none:
    # tests/unit/test_status.py)
    blocked = ("onnxruntime", "rasterio", "shapely", "scipy", "requests", "skimage", "networkx")
    qgis_process = qgis_process_factory(plugin_path=plugin_path, block_modules=blocked)
    qgis_process.enable(PLUGIN)
    completed = qgis_process("run", "spacenet:status", timeout=120)
    text = completed.stdout + completed.stderr
    assert completed.returncode == 0, text
    assert "Traceback" not in text, text
    lines = _lines(completed)
    for module in blocked:
        assert any(line.startswith(f"  MISSING: {module}") for line in lines), (module, text)
    assert any(line.startswith("  models run on: none - onnxruntime is missing, so no model can run: python -m pip "
                               "install onnxruntime") for line in lines), text
    assert any(line.startswith("  model buildings_unet_small ") for line in lines), text
    assert "DEVICE:\tnone" in lines and f"MISSING:\t{len(blocked)}" in lines, text
