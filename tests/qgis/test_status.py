"""spacenet:status inside QGIS, and the provider's name that says when algorithms are left out (issue 19)."""

import json
import sys

import pytest
from qgis.core import QgsApplication

from spacenet_toolkit.processing_provider.provider import ALGORITHMS, SpaceNetProvider
from spacenet_toolkit.processing_provider.status import Status


def test_the_names_say_how_many_algorithms_need_missing_packages(monkeypatch, register):
    provider = register(SpaceNetProvider(models_dir=None))
    if provider.unavailable:
        pytest.skip(f"packages are missing here: {', '.join(provider.unavailable)}")
    assert (provider.name(), provider.longName()) == ("SpaceNet", "SpaceNet Toolkit")

    monkeypatch.setitem(sys.modules, "requests", None)  # fetchtiles only
    provider.refreshAlgorithms()
    assert list(provider.unavailable) == ["spacenet:fetchtiles"]
    assert provider.name() == "SpaceNet (1 algorithm needs missing packages: run spacenet:status)"

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    provider.refreshAlgorithms()
    assert provider.longName() == "SpaceNet Toolkit (4 algorithms need missing packages: run spacenet:status)"
    assert "spacenet:status" in {a.id() for a in provider.algorithms()}


def test_status_is_offered_where_every_package_is_missing(monkeypatch, register):
    for module in ("numpy", "shapely", "rasterio", "onnxruntime", "requests", "scipy", "skimage", "networkx"):
        monkeypatch.setitem(sys.modules, module, None)
    provider = register(SpaceNetProvider(models_dir=None))
    # deleting one of your models needs no package either
    assert [a.id() for a in provider.algorithms()] == ["spacenet:deletemodel", "spacenet:status"]
    assert len(provider.unavailable) == len(ALGORITHMS) - 2
    assert provider.requirements["spacenet:status"] == ()
    assert Status.REQUIRES == () and not Status.missing_dependencies()


def test_status_reports_the_missing_package_and_writes_its_outputs(monkeypatch, register, qgis_processing, tmp_path):
    import processing

    monkeypatch.setitem(sys.modules, "rasterio", None)
    register(SpaceNetProvider())
    path = tmp_path / "status.json"
    results = processing.run("spacenet:status", {"CHECK_GPU": False, "OUTPUT_JSON": str(path)})

    data = json.loads(path.read_text(encoding="utf-8"))
    assert results["OUTPUT_JSON"] == str(path)
    assert results["MISSING"] == len(data["missing_packages"]) >= 1 and "rasterio" in data["missing_packages"]
    assert results["UNAVAILABLE"] == len(data["unavailable"])
    assert "spacenet:fetchtiles" in data["unavailable"] and "spacenet:fetchextractscore" in data["unavailable"]
    assert data["algorithms"]["spacenet:scoref1"] == ""
    assert "spacenet:fetchtiles" in next(p for p in data["packages"] if p["module"] == "rasterio")["needed_by"]
    assert results["VERSION"] == data["plugin_version"] and results["VERSION"]
    assert results["DEVICE"] == data["runtime"]["device"]
    assert results["MODELS_MISSING"] == sum(not m["present"] for m in data["models"])
    assert data["host"].startswith("QGIS 3.")


def test_status_without_a_json_file_logs_the_report(register, qgis_processing):
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    class Collect(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 - QGIS API
            self.lines.append(info)

    provider = register(SpaceNetProvider(models_dir=None))
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("spacenet:status")
    feedback = Collect()
    results, ok = algorithm.run({"CHECK_GPU": False}, QgsProcessingContext(), feedback)
    assert ok and not results.get("OUTPUT_JSON")
    assert feedback.lines[0].startswith(f"SpaceNet Toolkit {provider.versionInfo()} (QGIS 3.")
    assert any(line.startswith("  model buildings_unet_small") for line in feedback.lines)
    assert any(line.startswith("  installed: numpy") or line.startswith("  MISSING: numpy") for line in feedback.lines)
    assert "  offered: spacenet:status" in feedback.lines
