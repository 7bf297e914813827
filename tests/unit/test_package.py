"""scripts/package.py: the zip holds the models the registry bundles, no others, and stays under the upload limit."""

import hashlib
import importlib.util
import json
import zipfile

import pytest


@pytest.fixture(scope="module")
def package(repo_root):
    spec = importlib.util.spec_from_file_location("package_script", repo_root / "scripts" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_entries(zip_path) -> dict:
    """models/ entries of the zip: name -> bytes."""
    with zipfile.ZipFile(zip_path) as archive:
        return {name.split("/", 2)[2]: archive.read(name) for name in archive.namelist()
                if name.startswith("spacenet_toolkit/models/")}


def test_the_zip_holds_exactly_the_bundled_models_and_fits_the_plugin_repository(package, tmp_path):
    zip_path = package.build(tmp_path)
    assert zip_path.stat().st_size <= package.MAX_UPLOAD_BYTES == 25_000_000
    registry = package.load_registry(package.REGISTRY_PATH)
    entries = model_entries(zip_path)
    bundled = {f.name: f for entry in registry.models.values() if entry.bundled for f in entry.files}
    assert {name for name in entries if name.endswith(".onnx")} == set(bundled)
    for name, file in bundled.items():
        assert len(entries[name]) == file.size and hashlib.sha256(entries[name]).hexdigest() == file.sha256
    assert json.loads(entries["registry.json"]) == json.loads(package.REGISTRY_PATH.read_text(encoding="utf-8"))


def test_a_model_flipped_to_fetched_leaves_the_zip_and_its_registry_says_so(package, tmp_path):
    data = json.loads(package.REGISTRY_PATH.read_text(encoding="utf-8"))
    data["models"]["buildings_unet_small"]["delivery"] = "fetched"
    data["models"]["roads_effnet_lite0"]["delivery"] = "bundled"
    flipped = tmp_path / "registry.json"
    flipped.write_text(json.dumps(data))
    entries = model_entries(package.build(tmp_path / "dist", registry_path=flipped))
    assert not [name for name in entries if name.startswith("buildings_unet_small")]
    assert "roads_effnet_lite0.onnx" in entries
    assert json.loads(entries["registry.json"])["models"]["buildings_unet_small"]["delivery"] == "fetched"


def test_a_zip_over_the_limit_is_refused_with_what_to_do(package, tmp_path):
    data = json.loads(package.REGISTRY_PATH.read_text(encoding="utf-8"))
    for model in data["models"].values():
        model["delivery"] = "fetched"  # a small zip: the refusal is about the limit, not the models
    data["models"]["roads_effnet_lite0"]["delivery"] = "bundled"
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    with pytest.raises(package.PackageError) as error:
        package.build(tmp_path / "dist", registry_path=registry, max_bytes=1_000_000)
    message = str(error.value)
    assert "over the 1,000,000 that plugins.qgis.org accepts; nothing was written" in message
    assert 'Bundled models: roads_effnet_lite0 (6.6 MB). Set "delivery": "fetched"' in message
    assert list((tmp_path / "dist").iterdir()) == []


def test_a_bundled_model_missing_from_models_is_refused_before_any_zip(package, tmp_path):
    data = json.loads(package.REGISTRY_PATH.read_text(encoding="utf-8"))
    data["models"]["ghost"] = {"task": "buildings", "summary": "Not there.", "delivery": "bundled",
                               "files": {"ghost.onnx": {"size": 1, "sha256": "0" * 64}}}
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    with pytest.raises(package.PackageError, match="models/ghost.onnx is missing \\(registered as bundled\\)"):
        package.build(tmp_path / "dist", registry_path=registry)
    assert not (tmp_path / "dist").exists()
