"""Where a benchmark finds what it measures: the plugin through the build's link to this checkout, and the tests'
support modules (loopback servers, fixtures). Importing this module puts both on sys.path."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_PATH = REPO / ".build" / "plugins"
SUPPORT_PATH = REPO / "tests" / "support"

for _path in (PLUGIN_PATH, SUPPORT_PATH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
