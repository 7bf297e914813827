"""QGIS loads the plugin at every start and qgis_process for every command: loading it, provider and every
algorithm's parameters and help included, must not import the heavy packages (they come on first use) that QGIS
has not imported itself."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

HEAVY = ("numpy", "shapely", "scipy", "skimage", "networkx", "rasterio", "onnxruntime", "requests")
LOAD = f"""
import sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
before = set(sys.modules)  # QGIS 3.40's qgis.core imports numpy and shapely itself (as_numpy, as_shapely)
import spacenet_toolkit
plugin = spacenet_toolkit.classFactory(None)
plugin.initProcessing()
for algorithm in plugin.provider.algorithms():
    algorithm.shortHelpString()
print(len(plugin.provider.algorithms()), [m for m in {HEAVY!r} if m in sys.modules and m not in before])
"""


def test_loading_the_plugin_imports_none_of_the_heavy_packages(plugin_path):
    env = dict(os.environ, PYTHONPATH=str(plugin_path), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", LOAD], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, imported = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) >= 7 and imported == "[]"
