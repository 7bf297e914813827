"""spacenet:adaptmodel's default base model: the ImageNet-pretrained one where it is installed, else the bundled one."""

import json

from qgis.core import QgsApplication

from spacenet_toolkit.core import model_registry


def default_of(parameter: str):
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("spacenet:adaptmodel")
    return algorithm.parameterDefinition(parameter).defaultValue()


def default_base() -> str:
    return default_of("MODEL")


def test_the_dialog_s_defaults_are_what_make_eval_adapt_measured(provider):
    from training import adapt_eval  # the README's figures come from it; QGIS is not needed to run it

    assert default_base() == adapt_eval.BASE
    assert default_of("MINUTES") == adapt_eval.MINUTES


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
