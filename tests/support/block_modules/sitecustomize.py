"""Make the modules named in SPACENET_TEST_BLOCK_MODULES (comma-separated) impossible to import.

Put this folder first on PYTHONPATH of a subprocess (python or qgis_process.bin) to see what a user
without those packages sees. ``sys.modules[name] = None`` is how Python itself marks a blocked module.
"""

import os
import sys

for _name in filter(None, os.environ.get("SPACENET_TEST_BLOCK_MODULES", "").split(",")):
    sys.modules[_name.strip()] = None
