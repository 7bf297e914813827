"""The plugin as qgis_process sees it: from the checkout, from the release zip, and without optional packages."""

import configparser
import subprocess
import sys
import zipfile
from xml.etree import ElementTree

import pytest

from spacenet_toolkit.core import dependencies
from spacenet_toolkit.processing_provider.provider import ALGORITHMS, MODELS_DIR

PLUGIN = "spacenet_toolkit"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def version(repo_root):
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read(repo_root / "metadata.txt")
    return metadata["general"]["version"]


def expected_algorithm_ids(blocked=()):
    offered = []
    for cls in ALGORITHMS:
        if not set(cls.REQUIRES) & set(blocked) and not dependencies.missing(cls.REQUIRES):
            offered.append(f"spacenet:{cls().name()}")
    # A shipped model is offered when every step it runs is.
    for path in MODELS_DIR.glob("*.model3"):
        steps = {o.get("value") for o in ElementTree.parse(path).iter("Option") if o.get("name") == "alg_id"}
        if steps <= set(offered):
            offered.append(f"spacenet:{path.stem}")
    return sorted(offered)


def test_list_shows_the_spacenet_provider_from_the_checkout(qgis_process_factory, plugin_path, version):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable(PLUGIN)
    provider = qgis_process.providers()["spacenet"]
    assert provider["long_name"] == "SpaceNet Toolkit"
    assert provider["version"] == version
    assert sorted(provider["algorithms"]) == expected_algorithm_ids()


def test_plugin_loads_where_the_optional_packages_are_missing(qgis_process_factory, plugin_path):
    blocked = ("onnxruntime", "rasterio", "shapely", "numpy", "scipy", "requests")
    qgis_process = qgis_process_factory(plugin_path=plugin_path, block_modules=blocked)
    # The block is real: the same environment cannot import them.
    probe = subprocess.run(
        [sys.executable, "-c", "import shapely"], env=qgis_process.env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr

    qgis_process.enable(PLUGIN)
    providers = qgis_process.providers()
    assert "spacenet" in providers
    assert sorted(providers["spacenet"]["algorithms"]) == expected_algorithm_ids(blocked)


def test_release_zip_installs_into_a_fresh_profile_and_loads(qgis_process_factory, repo_root, tmp_path, version):
    built = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "package.py"), "--output", str(tmp_path / "dist")],
        capture_output=True, text=True, check=True,
    )
    zip_path = tmp_path / "dist" / f"{PLUGIN}-{version}.zip"
    assert str(zip_path) in built.stdout

    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert all(name.startswith(f"{PLUGIN}/") for name in names)
        top_level = {name.split("/")[1] for name in names}
        assert {"metadata.txt", "__init__.py", "plugin.py", "LICENSE", "icon.png", "core"} <= top_level
        assert not top_level & {"tests", "training", "bench", ".ci", ".venv", ".build", "scripts", "Makefile"}
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
        qgis_process = qgis_process_factory(plugin_path=None)  # only the profile's own plugins folder
        qgis_process.plugins_folder.mkdir(parents=True)
        archive.extractall(qgis_process.plugins_folder)

    qgis_process.enable(PLUGIN)
    listing = qgis_process("plugins")
    assert f"* {PLUGIN}" in listing.stdout
    provider = qgis_process.providers()["spacenet"]
    assert provider["version"] == version
    assert sorted(provider["algorithms"]) == expected_algorithm_ids()
