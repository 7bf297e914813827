"""The folder of the QGIS profile where the *Install* button puts the plugin's Python packages, and putting it on
``sys.path``: appended after QGIS's own paths, so a package QGIS ships (numpy, the GDAL bindings) always wins over
anything in it (core/installer.py resolves with that order in mind)."""

import importlib
import sys
from pathlib import Path

from qgis.core import QgsApplication

FOLDER_NAME = "spacenet_toolkit_packages"


def packages_folder() -> Path:
    """``<profile>/python/spacenet_toolkit_packages``: the profile is the user's and writable, where QGIS's own
    Python folders may not be."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "python" / FOLDER_NAME


def add_to_path(folder=None) -> bool:
    """Append the plugin's packages folder to ``sys.path`` when it exists (once); True when it is there now."""
    folder = Path(folder) if folder is not None else packages_folder()
    if not folder.is_dir():
        return False
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        importlib.invalidate_caches()  # find_spec must see packages installed since the last look
    return True
