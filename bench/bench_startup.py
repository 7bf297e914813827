#!/usr/bin/env python3
"""Plugin start-up cost in a fresh QGIS process, against a baseline that imports its dependencies eagerly.

QGIS loads every enabled plugin at start, and qgis_process loads it for every command: the plugin must
defer onnxruntime, rasterio and shapely to first use. Each sample is a new process, so imports are cold
for Python (the OS file cache is warm for both sides alike).
"""

import os
import statistics
import subprocess
import sys

from paths import PLUGIN_PATH

SAMPLES = 7

TIMED_START = """
import time
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
start = time.perf_counter()
{eager_imports}
import spacenet_toolkit
plugin = spacenet_toolkit.classFactory(None)
plugin.initProcessing()
print(time.perf_counter() - start)
plugin.unload()
"""
PLUGIN_AS_SHIPPED = TIMED_START.format(eager_imports="")
EAGER_BASELINE = TIMED_START.format(eager_imports="import onnxruntime, rasterio, shapely, numpy, requests")


def time_once(code: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(PLUGIN_PATH), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def main(argv=()) -> int:
    shipped, eager = [], []
    for _ in range(SAMPLES):  # interleaved so that drift affects both sides alike
        shipped.append(time_once(PLUGIN_AS_SHIPPED))
        eager.append(time_once(EAGER_BASELINE))
    shipped_ms, eager_ms = statistics.median(shipped) * 1000, statistics.median(eager) * 1000
    print(f"plugin start (classFactory + initProcessing), median of {SAMPLES} fresh processes:")
    print(f"  as shipped (lazy imports)      {shipped_ms:8.1f} ms")
    print(f"  baseline (eager dependencies)  {eager_ms:8.1f} ms")
    print(f"  ratio baseline / shipped       {eager_ms / shipped_ms:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
