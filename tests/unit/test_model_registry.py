"""core.model_registry: the shipped registry matches models/, malformed entries are refused by name, overrides."""

import copy
import json

import pytest

from spacenet_toolkit.core import model_registry
from spacenet_toolkit.core.model_registry import RegistryError, load_registry, parse_registry

SHIPPED = model_registry.REGISTRY_PATH


@pytest.fixture
def data():
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def test_the_shipped_registry_names_every_model_file_with_its_size_and_hash(monkeypatch):
    monkeypatch.delenv(model_registry.MODELS_URL_ENV, raising=False)
    monkeypatch.delenv(model_registry.REGISTRY_ENV, raising=False)
    registry = load_registry()
    folder = SHIPPED.parent
    assert model_registry.stale_files(registry, folder) == [], "run scripts/model_registry.py"
    assert model_registry.unregistered_files(registry, folder) == [], "register it: scripts/model_registry.py --add"
    assert {"buildings_unet_small", "roads_effnet_lite0"} <= set(registry.names())
    assert "buildings_unet_small" in registry.names("buildings") and "roads_effnet_lite0" in registry.names("roads")
    entry = registry.get("buildings_unet_small")
    assert entry.main.name == "buildings_unet_small.onnx" and entry.half.name == "buildings_unet_small.fp16.onnx"
    assert entry.summary and entry.task == "buildings"
    # one base, named once, gives every file's URL (the repository of metadata.txt)
    assert registry.url(entry.main) == ("https://github.com/spacenet-toolkit/spacenet_toolkit/releases/download/"
                                        "models-v1/buildings_unet_small.onnx")


def test_the_models_url_and_registry_can_be_replaced_through_the_environment(monkeypatch, tmp_path, data):
    monkeypatch.setenv(model_registry.MODELS_URL_ENV, "http://127.0.0.1:8000/mirror")
    registry = load_registry()
    assert registry.url(registry.get("buildings_unet_small").main) == "http://127.0.0.1:8000/mirror/buildings_unet_small.onnx"
    other = copy.deepcopy(data)
    other["models"] = {"buildings_unet_small": data["models"]["buildings_unet_small"]}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(other))
    monkeypatch.setenv(model_registry.REGISTRY_ENV, str(path))
    assert load_registry().names() == ["buildings_unet_small"]
    assert load_registry().source == str(path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(task="trees"), "task must be one of buildings, roads"),
    (lambda m: m.pop("summary"), "summary must be one line"),
    (lambda m: m.update(summary="two\nlines"), "summary must be one line"),
    (lambda m: m.update(delivery="maybe"), "delivery must be 'bundled'"),
    (lambda m: m["files"].pop("buildings_unet_small.onnx"), "files must list buildings_unet_small.onnx"),
    (lambda m: m["files"].update({"other.onnx": {"size": 1, "sha256": "0" * 64}}), "unexpected file 'other.onnx'"),
    (lambda m: m["files"]["buildings_unet_small.onnx"].update(size=0), "needs its size in bytes"),
    (lambda m: m["files"]["buildings_unet_small.onnx"].update(sha256="ABC"), "needs its SHA-256"),
])
def test_a_malformed_entry_is_refused_naming_the_model(data, change, message):
    change(data["models"]["buildings_unet_small"])
    with pytest.raises(RegistryError, match=message) as error:
        parse_registry(data, "registry.json")
    assert "model 'buildings_unet_small'" in str(error.value)


def test_malformed_files_and_urls_are_refused(data, tmp_path):
    with pytest.raises(RegistryError, match="release_url must be an http"):
        parse_registry(dict(data, release_url="ftp://example.org/"))
    with pytest.raises(RegistryError, match="a name is lowercase"):
        parse_registry(dict(data, models={"Bad Name": data["models"]["buildings_unet_small"]}))
    broken = tmp_path / "registry.json"
    broken.write_text("{")
    with pytest.raises(RegistryError, match=f"{broken} is not valid JSON"):
        load_registry(broken)
    with pytest.raises(RegistryError, match="cannot be read"):
        load_registry(tmp_path / "missing.json")


def test_a_model_without_an_fp16_variant_is_valid(data):
    del data["models"]["buildings_unet_small"]["files"]["buildings_unet_small.fp16.onnx"]
    assert parse_registry(data).get("buildings_unet_small").half is None
