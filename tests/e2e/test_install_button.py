"""The Install button end to end (issue 23's done-means): a fresh Python standing in for QGIS's, without the
plugin's packages; the installer fills the profile's packages folder from PyPI; then QGIS lists every algorithm,
extracts the Atlanta sample, and, in the same process after the packages are imported, still loads layers and runs
its own GDAL algorithm (the wheels of rasterio and shapely bundle their own GDAL and GEOS: ENVIRONMENT.md trap 3).

Slow where pip's cache is cold (downloads, and rasterio and shapely built from source against the system's GDAL
and GEOS: about 5 minutes on 2 cores); a few tens of seconds when it is warm."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from spacenet_toolkit.core import dependencies, installer

pytestmark = pytest.mark.e2e

QGIS_PYTHON = "/usr/bin/python3"  # Debian's QGIS runs this Python (ENVIRONMENT.md)
QGIS_PROCESS = os.environ.get("QGIS_PROCESS") or "/usr/bin/qgis_process.bin"
ALGORITHMS = {"spacenet:fetchtiles", "spacenet:extractbuildings", "spacenet:extractroads", "spacenet:scoref1",
              "spacenet:scoreapls", "spacenet:calibrate", "spacenet:status"}

MISSING = """
import json, sys
from spacenet_toolkit.core import dependencies, installer
print(json.dumps(dependencies.missing(dependencies.PACKAGES)))
"""

PROFILE_FOLDER = """
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
from spacenet_toolkit.qgis_adapter import plugin_packages
print(plugin_packages.packages_folder())
"""

INSTALL = """
import json, sys
from spacenet_toolkit.core import installer
# what this Python misses, decided as the button decides it; "wheels": as where nothing can be built (Windows, macOS)
wheels = sys.argv[2] == "wheels"
plan = installer.plan_required(source_builds={"rasterio": False, "shapely": False} if wheels else None)
result = installer.install(plan, sys.argv[1], report=lambda fraction, line: print(f"{fraction:.2f} {line}",
                                                                                  flush=True))
print(json.dumps({"status": result.status, "message": result.message, "plan": plan.requirements,
                  "no_binary": plan.no_binary, "installed": result.installed}))
"""

# In QGIS's process: the plugin as QGIS loads it, an extraction, then QGIS's own layers and GDAL algorithm.
IN_QGIS = """
import json, os, sys
from pathlib import Path
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
import spacenet_toolkit
plugin = spacenet_toolkit.classFactory(None)
plugin.initProcessing()
folder = sys.argv[1]
answer = {"listed": sorted(a.id() for a in plugin.provider.algorithms()), "unavailable": plugin.provider.unavailable,
          "folder_last": sys.path.index(folder) > sys.path.index(os.path.dirname(os.__file__))}
samples, out = Path(sys.argv[2]), Path(sys.argv[3])
result = processing.run("spacenet:extractbuildings", {"INPUT": str(samples / "sn4_atlanta_pan.tif"),
                        "MODEL": "buildings_unet_small", "DEVICE": "cpu", "OUTPUT": str(out / "buildings.gpkg")})
import importlib
answer["from_folder"] = {m: importlib.import_module(m).__file__.startswith(folder) for m in sys.argv[4:]}
answer["buildings"] = result["BUILDING_COUNT"]
footprints = QgsVectorLayer(str(out / "buildings.gpkg"), "buildings", "ogr")
answer["layer"] = [footprints.isValid(), footprints.featureCount()]
translated = processing.run("gdal:translate", {"INPUT": str(samples / "sn4_atlanta_pan.tif"), "TARGET_CRS": None,
                            "OUTPUT": str(out / "translated.tif")})
raster = QgsRasterLayer(translated["OUTPUT"], "translated")
answer["gdal_translate"] = [raster.isValid(), raster.width(), raster.height(), raster.bandCount()]
original = QgsRasterLayer(str(samples / "sn4_atlanta_pan.tif"), "original")
answer["original"] = [original.width(), original.height(), original.bandCount()]
print("ANSWER " + json.dumps(answer))
"""


def stand_in_for_qgis_python(folder):
    """A fresh virtual environment of QGIS's Python that sees the distribution's own packages (QGIS's bindings,
    numpy, GDAL's, Debian's pip) and nothing installed with pip beside them (the QGIS 3.40 root file system has
    onnxruntime there): what a user's QGIS has before the Install button. The interpreter, not a link to it, as
    an installed QGIS's python3 is."""
    subprocess.run([QGIS_PYTHON, "-m", "venv", "--without-pip", "--copies", str(folder)], check=True)
    distribution = subprocess.run([QGIS_PYTHON, "-c", "import numpy, os; print(os.path.dirname(os.path.dirname("
                                   "numpy.__file__)))"], capture_output=True, text=True, check=True).stdout.strip()
    site = subprocess.run([str(folder / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "qgis_distribution.pth").write_text(distribution + "\n")
    return folder / "bin" / "python"


def run(command, env, timeout=900):
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return completed.stdout


@pytest.mark.parametrize("builds", ["as-decided", "wheels"])
def test_installed_from_the_dependencies_dialog_qgis_extracts_and_keeps_its_gdal(builds, tmp_path, plugin_path,
                                                                                 repo_root):
    """as-decided: here (Linux, gdal-config, a compiler) rasterio and shapely are built from source; wheels: their
    binary wheels, bundling their own GDAL and GEOS, as on Windows and macOS."""
    qgis_python = tmp_path / "qgis-python"
    python = str(stand_in_for_qgis_python(qgis_python))
    profile = tmp_path / "profile"
    libqgis = subprocess.run("ldconfig -p | awk '/libqgis_core\\.so\\./ {print $NF; exit}'", shell=True,
                             capture_output=True, text=True).stdout.strip()
    # The project's venv stays out (no PYTHONPATH): this Python sees what Debian's QGIS sees, nothing more.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LD_PRELOAD")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile), XDG_RUNTIME_DIR=str(tmp_path))
    plugin_env = dict(env, PYTHONPATH=str(plugin_path))

    missing = json.loads(run([python, "-c", MISSING], plugin_env).strip().splitlines()[-1])
    assert "onnxruntime" in missing  # no distribution packages it: the stand-in lacks what the plugin needs
    folder = run([python, "-c", PROFILE_FOLDER], plugin_env).strip().splitlines()[-1]
    assert folder.startswith(str(profile)) and folder.endswith("/python/spacenet_toolkit_packages")

    log = run([python, "-c", INSTALL, folder, builds], plugin_env, timeout=1800)
    outcome = json.loads(log.strip().splitlines()[-1])
    assert outcome["status"] == "installed", log[-6000:]
    built = [m for m in missing if m in ("shapely", "rasterio") and installer.source_build_possible(m)]
    assert outcome["no_binary"] == ([] if builds == "wheels" else built)
    assert outcome["plan"] == [dependencies.PACKAGES[m].pip_name if m != "onnxruntime" else "onnxruntime"
                               for m in missing]  # no NVIDIA GPU on the test machines
    installed = {entry.split()[0].lower() for entry in outcome["installed"]}
    assert not installed & {"numpy", "gdal", "scipy", "pyqt5", "attrs"}  # what QGIS has stays QGIS's
    # pip of the interpreter beside this Python's standard library, not of the Python running the tests
    pip_line = rf"^0\.01 pip \d+\.\d+ of {re.escape(str(qgis_python / 'bin'))}/python3"
    assert re.search(pip_line, log, re.MULTILINE), log[:2000]
    assert not [p.name for p in (profile / "profiles" / "default" / "python").iterdir() if p.name.startswith(".")]
    assert json.loads(run([python, "-c", "import sys; sys.path.append(sys.argv[1])\n" + MISSING, folder],
                          plugin_env).strip().splitlines()[-1]) == []

    # qgis_process: the plugin puts the folder on the path and offers every algorithm
    run([QGIS_PROCESS, "plugins", "enable", "spacenet_toolkit"], dict(env, QGIS_PLUGINPATH=str(plugin_path)))
    listed = json.loads(run([QGIS_PROCESS, "--json", "list"], dict(env, QGIS_PLUGINPATH=str(plugin_path))))
    spacenet = listed["providers"]["spacenet"]
    assert set(spacenet["algorithms"]) >= ALGORITHMS and "missing" not in spacenet["name"]

    # one QGIS process, its libraries loaded first as in QGIS (trap 3): extraction, then QGIS's own layers and GDAL
    answer_line = run([python, "-c", IN_QGIS, folder, str(repo_root / "sample_data"), str(tmp_path), *missing],
                      dict(plugin_env, LD_PRELOAD=libqgis), timeout=900)
    answer = json.loads(answer_line[answer_line.index("ANSWER ") + len("ANSWER "):].splitlines()[0])
    assert set(answer["listed"]) >= ALGORITHMS and answer["unavailable"] == {}
    assert answer["folder_last"] and answer["from_folder"] == {m: True for m in missing}, answer
    assert answer["buildings"] > 20, answer  # 35 on QGIS 3.22 and 3.40 with the shipped model
    assert answer["layer"] == [True, answer["buildings"]]
    assert answer["gdal_translate"] == [True, *answer["original"]] and answer["original"][0] > 0
