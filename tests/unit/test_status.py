"""core.extract.status and onnx_file: the facts spacenet:status reports, with the standard library only."""

import hashlib
import importlib.machinery
import json
import os
import subprocess
import sys
import types

import pytest

from spacenet_toolkit.core import dependencies
from spacenet_toolkit.core.extract import gpu, onnx_file, status
from spacenet_toolkit.core.fetch.model_store import ModelStore
from spacenet_toolkit.core.model_registry import parse_registry

onnx = pytest.importorskip("onnx")
import onnx_models  # noqa: E402 - tests/support, needs onnx

# -- reading ONNX files without onnx or onnxruntime -------------------------------------------------------------------

def test_metadata_and_tensor_shapes_are_read_as_onnx_reads_them(tmp_path):
    path = onnx_models.brightness_model(tmp_path / "m.onnx", metadata={"model_type": '"Segmentor"'})
    metadata, inputs, outputs = onnx_file.read(path)
    model = onnx.load(str(path))
    assert metadata == {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["spacenet_model_card"])["version"] == "0.0.1"
    # the initializers (gain, half, ...) are weights, not inputs
    assert inputs == [("image", ["batch", 3, "height", "width"])]
    assert outputs == [("probabilities", ["batch", 2, "height", "width"])]
    assert onnx_file.read_metadata(path) == metadata


def test_fixed_sizes_and_weights_listed_as_inputs(tmp_path):
    path = onnx_models.brightness_model(tmp_path / "m.onnx", fixed_size=256, model_card={})
    model = onnx.load(str(path))
    # old exporters list the weights among the graph's inputs too
    model.graph.input.extend([onnx.helper.make_tensor_value_info("gain", onnx.TensorProto.FLOAT, [])])
    onnx.save(model, str(path))
    metadata, inputs, _ = onnx_file.read(path)
    assert metadata == {}
    assert inputs == [("image", ["batch", 3, 256, 256])]


def test_the_shipped_models_are_read_like_onnxruntime_reads_them(repo_root):
    ort = pytest.importorskip("onnxruntime")
    path = repo_root / "models" / "roads_effnet_lite0.onnx"
    metadata, inputs, outputs = onnx_file.read(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert metadata == session.get_modelmeta().custom_metadata_map
    assert inputs == [(i.name, i.shape) for i in session.get_inputs()]
    assert outputs == [(o.name, o.shape) for o in session.get_outputs()]


@pytest.mark.parametrize("content", [b"", b"not a model at all, just text\n", b"\x0a\xff\xff\xff\xff\x0f"])
def test_a_file_that_is_not_onnx_is_refused_in_one_sentence(tmp_path, content):
    path = tmp_path / "fake.onnx"
    path.write_bytes(content)
    with pytest.raises(onnx_file.OnnxFileError, match="is not an ONNX model"):
        onnx_file.read(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(onnx_file.OnnxFileError, match="cannot be read"):
        onnx_file.read(tmp_path / "none.onnx")


# -- models ----------------------------------------------------------------------------------------------------------

def _registry_for(files: dict, bundled: set):
    """A registry listing ``files`` (name -> path of NAME.onnx, or size for a file that is not here)."""
    models = {}
    for name, value in files.items():
        if isinstance(value, int):
            info = {"size": value, "sha256": "0" * 64}
        else:
            data = value.read_bytes()
            info = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        models[name] = {"task": "buildings", "summary": f"When to use {name}.",
                        "delivery": "bundled" if name in bundled else "fetched", "files": {f"{name}.onnx": info}}
    return parse_registry({"release_url": "http://127.0.0.1:9/models/", "models": models}, "test registry")


def test_models_here_missing_and_dropped_in_with_their_cards(tmp_path):
    bundled_dir, cache = tmp_path / "models", tmp_path / "cache"
    bundled_dir.mkdir()
    here = onnx_models.brightness_model(bundled_dir / "small.onnx")
    onnx_models.brightness_model(bundled_dir / "dropped.onnx", model_card=onnx_models.card(name="dropped",
                                                                                           version="2.1.0"))
    (bundled_dir / "broken.onnx").write_text("not a model")
    registry = _registry_for({"small": here, "big": 16_200_000}, bundled={"small"})
    store = ModelStore(registry=registry, bundled_dir=bundled_dir, cache_dir=cache)

    models = {m.name: m for m in status.gather_models(store)}
    assert list(models) == ["small", "big", "broken", "dropped"]
    small = models["small"]
    assert small.present and small.path == str(here) and small.version == "0.0.1" and small.task == "buildings"
    assert small.summary == "When to use small."
    assert small.card == ("brightness_test_model (buildings; 3 input bands red, green, blue; 256 px tiles at 0.5 m; "
                          "outputs building, interior)")
    big = models["big"]
    assert not big.present and big.delivery == "fetched" and big.size == "16.2 MB" and big.card == ""
    assert models["dropped"].delivery == "unregistered" and models["dropped"].version == "2.1.0"
    assert models["broken"].present and models["broken"].card.startswith("its model card cannot be read: ")

    lines = status._model_lines(status.Status("1.0", "", tuple(models.values()), (), None, {}, "test registry",
                                              "", str(cache)))
    assert lines[0] == f"Models (4 known, 3 here; registry test registry; downloads kept in {cache}):"
    assert f"  model small 0.0.1 - buildings - here: {here}" in lines
    assert "  model big - buildings - not here yet: downloaded on first use (16.2 MB)" in lines
    assert "      When to use small." in lines
    assert "  model dropped 2.1.0 - buildings - here: " + str(bundled_dir / "dropped.onnx") in lines


def test_a_registry_that_cannot_be_read_is_said_and_the_rest_still_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("SPACENET_MODELS_REGISTRY", str(tmp_path / "none.json"))
    found = status.gather("1.0", make_store=ModelStore, check_gpu=False)
    assert found.models == () and "The model registry" in found.registry_problem
    lines = status.report_lines(found)
    assert lines[2].startswith("Models: The model registry ") and "cannot be read" in lines[2]
    assert any(line.startswith("Python packages") for line in lines)


# -- packages --------------------------------------------------------------------------------------------------------

def test_packages_found_with_versions_and_missing_with_their_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)  # as if it were not installed
    requirements = {"spacenet:fetchtiles": ("requests", "rasterio"), "spacenet:other": ("json", "no_such_module")}
    packages = {p.module: p for p in status.gather_packages(requirements)}
    assert list(packages)[:len(dependencies.PACKAGES)] == list(dependencies.PACKAGES)
    assert not packages["rasterio"].installed and packages["rasterio"].version == ""
    assert packages["rasterio"].install == "python -m pip install rasterio"
    assert packages["rasterio"].needed_by == ("spacenet:fetchtiles",)
    assert packages["json"].installed and packages["json"].needed_by == ("spacenet:other",)
    assert not packages["no_such_module"].installed
    assert packages["shapely"].install == 'python -m pip install "shapely>=2"'
    if dependencies.is_installed("shapely"):
        import importlib.metadata

        assert packages["shapely"].version == importlib.metadata.version("shapely")

    found = status.Status("1.0", "", (), tuple(packages.values()), None, {})
    lines = status._package_lines(found)
    assert ("  MISSING: rasterio - windowed raster reads and writes; needed by spacenet:fetchtiles; install: "
            "python -m pip install rasterio") in lines
    assert lines[-1].endswith(": python -m pip install rasterio no_such_module")
    assert [p.module for p in found.missing_packages] == ["rasterio", "no_such_module"]


def test_installed_version_reads_metadata_without_importing(monkeypatch):
    import importlib.metadata

    if not dependencies.is_installed("flask"):  # requirements-dev.txt; any distribution not imported here would do
        pytest.skip("flask is not installed")
    monkeypatch.delitem(sys.modules, "flask", raising=False)
    assert dependencies.installed_version("flask") == importlib.metadata.version("flask")
    assert "flask" not in sys.modules
    monkeypatch.setitem(sys.modules, "flask", None)
    assert dependencies.installed_version("flask") == ""
    assert dependencies.installed_version("spacenet_no_such_package") == ""


# -- onnxruntime and the GPU ------------------------------------------------------------------------------------------

def _fake_onnxruntime(monkeypatch, providers, runs_on="CPUExecutionProvider", fails=None):
    module = types.ModuleType("onnxruntime")
    module.__spec__ = importlib.machinery.ModuleSpec("onnxruntime", None)
    module.get_available_providers = lambda: list(providers)
    module.SessionOptions = types.SimpleNamespace

    class Session:
        def __init__(self, path, sess_options=None, providers=None):
            if fails:
                raise RuntimeError(fails)

        def get_providers(self):
            return [runs_on, "CPUExecutionProvider"]

    module.InferenceSession = Session
    monkeypatch.setitem(sys.modules, "onnxruntime", module)
    monkeypatch.setattr(dependencies, "installed_version", lambda m: "1.99" if m == "onnxruntime" else "")


def test_without_onnxruntime_nothing_runs_and_the_command_fits_the_machine(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(gpu, "nvidia_gpu_present", lambda: False)
    runtime = status.gather_runtime()
    assert runtime.device == "none" and runtime.providers == ()
    assert runtime.advice.endswith("python -m pip install onnxruntime")
    monkeypatch.setattr(gpu, "nvidia_gpu_present", lambda: True)
    assert status.gather_runtime().advice.endswith("python -m pip install onnxruntime-gpu")
    lines = status._runtime_lines(status.gather_runtime())
    assert lines == ["Inference (onnxruntime):", "  NVIDIA GPU: an NVIDIA driver answers",
                     "  models run on: none - onnxruntime is missing, so no model can run: "
                     "python -m pip install onnxruntime-gpu"]


def test_the_cpu_build_where_a_gpu_answers_says_to_install_onnxruntime_gpu(monkeypatch):
    _fake_onnxruntime(monkeypatch, ["CPUExecutionProvider"])
    monkeypatch.setattr(gpu, "nvidia_gpu_present", lambda: True)
    runtime = status.gather_runtime()
    assert runtime.onnxruntime == "1.99" and runtime.providers == ("CPUExecutionProvider",)
    assert runtime.device == "CPU" and "install onnxruntime-gpu" in runtime.advice
    monkeypatch.setattr(gpu, "nvidia_gpu_present", lambda: False)
    runtime = status.gather_runtime()
    assert runtime.device == "CPU" and runtime.advice.startswith("no NVIDIA GPU answers")


def test_cuda_is_believed_only_when_a_session_starts_on_it(monkeypatch, tmp_path):
    model = tmp_path / "m.onnx"
    monkeypatch.setattr(gpu, "nvidia_gpu_present", lambda: True)
    _fake_onnxruntime(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"], runs_on="CUDAExecutionProvider")
    assert status.gather_runtime(model).device == "GPU (CUDA)"
    _fake_onnxruntime(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"])  # falls back without a word
    runtime = status.gather_runtime(model)
    assert runtime.device == "CPU" and "a test session of m.onnx ran on CPUExecutionProvider" in runtime.advice
    _fake_onnxruntime(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"], fails="no cuDNN")
    assert "a test session of m.onnx failed: no cuDNN" in status.gather_runtime(model).advice


def test_an_onnxruntime_that_fails_to_import_is_reported_not_raised(monkeypatch):
    module = types.ModuleType("onnxruntime")
    module.__spec__ = importlib.machinery.ModuleSpec("onnxruntime", None)

    def broken():
        raise ImportError("libonnxruntime.so: cannot open shared object file")

    module.get_available_providers = broken
    monkeypatch.setitem(sys.modules, "onnxruntime", module)
    runtime = status.gather_runtime()
    assert runtime.device == "none" and "cannot be imported" in runtime.problem
    assert "--force-reinstall" in runtime.advice


# -- the whole report -------------------------------------------------------------------------------------------------

def test_the_report_and_its_json_say_the_same(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    algorithms = {"spacenet:scoref1": "", "spacenet:extractbuildings": "Missing Python package(s): onnxruntime."}
    requirements = {"spacenet:scoref1": ("numpy",), "spacenet:extractbuildings": ("numpy", "onnxruntime")}
    found = status.gather("0.1.0", "QGIS 3.22", algorithms, requirements, make_store=ModelStore, check_gpu=False)
    lines = status.report_lines(found)
    assert lines[0] == "SpaceNet Toolkit 0.1.0 (QGIS 3.22)"
    assert "Algorithms (1 of 2 offered):" in lines
    assert "  offered: spacenet:scoref1" in lines
    assert "  NOT AVAILABLE: spacenet:extractbuildings - Missing Python package(s): onnxruntime." in lines
    assert any(line.startswith("  MISSING: onnxruntime") for line in lines)
    assert any(line.startswith("  model buildings_unet_small") for line in lines)

    path = tmp_path / "status.json"
    status.write_json(found, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert not list(tmp_path.glob("*.part"))
    assert data["plugin_version"] == "0.1.0" and data["unavailable"] == {
        "spacenet:extractbuildings": "Missing Python package(s): onnxruntime."}
    assert "onnxruntime" in data["missing_packages"] and data["install_missing"].startswith("python -m pip install")
    onnx_entry = next(p for p in data["packages"] if p["module"] == "onnxruntime")
    assert onnx_entry == {**onnx_entry, "installed": False, "install": "python -m pip install onnxruntime",
                          "needed_by": ["spacenet:extractbuildings"]}
    assert {m["name"] for m in data["models"]} >= {"buildings_unet_small", "roads_effnet_lite0"}
    assert data["runtime"]["device"] == "none"


GATHER_WITHOUT_PACKAGES = """
import sys
from spacenet_toolkit.core.extract import status
from spacenet_toolkit.core.fetch.model_store import ModelStore
found = status.gather("0.1.0", make_store=ModelStore)
print("\\n".join(status.report_lines(found)))
heavy = sorted(m for m in ("numpy", "onnxruntime", "rasterio", "shapely", "qgis") if sys.modules.get(m))
print("imported:", heavy)
"""


def test_the_status_answers_where_numpy_onnxruntime_and_rasterio_are_missing(repo_root, plugin_path):
    blocked = "numpy,onnxruntime,rasterio,shapely,scipy,requests"
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(PYTHONPATH=os.pathsep.join([str(repo_root / "tests" / "support" / "block_modules"),
                                           str(plugin_path)]),
               SPACENET_TEST_BLOCK_MODULES=blocked)
    completed = subprocess.run([sys.executable, "-c", GATHER_WITHOUT_PACKAGES], env=env, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for module in blocked.split(","):
        assert f"  MISSING: {module}" in out, out
    assert "  model buildings_unet_small 0.4.1 - buildings - here: " in out
    assert "models run on: none - onnxruntime is missing" in out
    assert "imported: []" in out
