#!/usr/bin/env python3
"""`make demo`: the plugin's main job, offline, through the real qgis_process and a scratch profile.

The Makefile sets QGIS_CUSTOM_CONFIG_PATH (the scratch profile), QGIS_PLUGINPATH and PYTHONPATH.
"""

import json
import subprocess
import sys

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # /usr/bin/qgis_process is broken on Debian 12
PLUGIN = "spacenet_toolkit"


def qgis_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], capture_output=True, text=True)


def show_provider() -> None:
    listing = qgis_process("--json", "list")
    provider = json.loads(listing.stdout)["providers"].get("spacenet") if listing.returncode == 0 else None
    if provider is None:
        sys.exit(f"The spacenet provider did not load:\n{listing.stderr}")
    print(f"{provider['long_name']} {provider['version']}: {len(provider['algorithms'])} algorithm(s)")
    for algorithm_id, algorithm in sorted(provider["algorithms"].items()):
        print(f"  {algorithm_id:28} {algorithm['name']}")


def main() -> int:
    qgis_process("plugins", "enable", PLUGIN)  # answers 1 when already enabled in this profile
    print("== The SpaceNet provider, as qgis_process sees it ==")
    show_provider()
    return 0


if __name__ == "__main__":
    sys.exit(main())
