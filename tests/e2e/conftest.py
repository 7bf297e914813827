"""Run the real qgis_process.bin against scratch profiles (never the user's)."""

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import pytest

# /usr/bin/qgis_process is broken on Debian 12 (trap 1): the .bin is the program. QGIS_PROCESS names another one
# (scripts/qgis340.sh sets the QGIS 3.40 chroot's).
QGIS_PROCESS = os.environ.get("QGIS_PROCESS") or "/usr/bin/qgis_process.bin"
SUPPORT = Path(__file__).resolve().parent.parent / "support"


class QgisProcess:
    """qgis_process.bin with one scratch profile and one environment."""

    def __init__(self, config_path: Path, plugin_path=None, block_modules=()):
        env = dict(os.environ)
        env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(config_path))
        env.setdefault("XDG_RUNTIME_DIR", str(config_path))
        # Its embedded Python ignores the venv: hand it the venv's packages.
        python_path = [sysconfig.get_paths()["purelib"]]
        if block_modules:
            python_path.insert(0, str(SUPPORT / "block_modules"))
            env["SPACENET_TEST_BLOCK_MODULES"] = ",".join(block_modules)
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        if plugin_path is None:
            env.pop("QGIS_PLUGINPATH", None)
        else:
            env["QGIS_PLUGINPATH"] = str(plugin_path)
        self.env = env
        self.config_path = config_path

    @property
    def plugins_folder(self) -> Path:
        return self.config_path / "profiles" / "default" / "python" / "plugins"

    def __call__(self, *args, timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [QGIS_PROCESS, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def enable(self, plugin: str) -> None:
        result = self("plugins", "enable", plugin)
        # Exit 1 with this message is qgis_process's answer for a plugin enabled before.
        assert result.returncode == 0 or "already enabled" in result.stdout + result.stderr, result.stderr

    def providers(self) -> dict:
        result = self("--json", "list")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["providers"]


@pytest.fixture
def qgis_process_factory(tmp_path):
    def make(**kwargs) -> QgisProcess:
        config = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
        config.mkdir()
        return QgisProcess(config, **kwargs)

    return make


@pytest.fixture
def qgis_process(qgis_process_factory, plugin_path) -> QgisProcess:
    """qgis_process with a scratch profile in which the plugin (this checkout's) is enabled."""
    process = qgis_process_factory(plugin_path=plugin_path)
    process.enable("spacenet_toolkit")
    return process
