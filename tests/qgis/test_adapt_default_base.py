"""spacenet:adaptmodel's default base model: the ImageNet-pretrained one where it is installed, else the bundled one."""

import json

from qgis.core import QgsApplication

from spacenet_toolkit.core import model_registry


def default_base() -> str:
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("spacenet:adaptmodel")
    return algorithm.parameterDefinition("MODEL").defaultValue()


def test_the_pretrained_base_is_offered_where_installed_else_the_bundled_one(provider, tmp_path, monkeypatch):
    assert default_base() == "buildings_effnet_lite0"  # in models/ of this checkout
    data = json.loads(model_registry.REGISTRY_PATH.read_text(encoding="utf-8"))
    del data["models"]["buildings_effnet_lite0"]  # a registry (a mirror's, an older one) that does not name it
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    monkeypatch.setenv(model_registry.REGISTRY_ENV, str(registry))
    assert default_base() == "buildings_unet_small"


def test_a_broken_registry_leaves_the_bundled_base_and_a_loadable_algorithm(provider, tmp_path, monkeypatch):
    registry = tmp_path / "registry.json"
    registry.write_text("{not json")
    monkeypatch.setenv(model_registry.REGISTRY_ENV, str(registry))
    assert default_base() == "buildings_unet_small"
