"""An algorithm whose Python packages are missing is not offered, and the log says what to install."""

import sys

import pytest
from qgis.core import QgsApplication, QgsProcessingOutputNumber

from spacenet_toolkit import qgis_logging
from spacenet_toolkit.processing_provider.base import SpaceNetAlgorithm
from spacenet_toolkit.processing_provider.provider import SpaceNetProvider


class _TestAlgorithm(SpaceNetAlgorithm):
    def name(self):
        return type(self).__name__.lower()

    def displayName(self):  # noqa: N802
        return type(self).__name__

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addOutput(QgsProcessingOutputNumber("ANSWER", "Answer"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        return {"ANSWER": 42}


class NeedsOnlyTheStandardLibrary(_TestAlgorithm):
    REQUIRES = ("json",)


class NeedsOnnxruntime(_TestAlgorithm):
    GROUP = "extraction"
    REQUIRES = ("numpy", "onnxruntime")


@pytest.fixture
def qgis_log():
    messages = []

    def collect(message, tag, level):
        messages.append((tag, message))

    QgsApplication.messageLog().messageReceived.connect(collect)
    handler = qgis_logging.install()
    yield messages
    qgis_logging.remove(handler)
    QgsApplication.messageLog().messageReceived.disconnect(collect)


def test_missing_package_hides_only_the_algorithms_that_need_it(monkeypatch, qgis_log, register):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    provider = register(SpaceNetProvider([NeedsOnlyTheStandardLibrary, NeedsOnnxruntime], models_dir=None))

    assert [a.id() for a in provider.algorithms()] == ["spacenet:needsonlythestandardlibrary"]
    assert list(provider.unavailable) == ["spacenet:needsonnxruntime"]
    warnings = [message for tag, message in qgis_log if tag == "SpaceNet"]
    assert len(warnings) == 1
    assert "NeedsOnnxruntime (spacenet:needsonnxruntime) is not available" in warnings[0]
    assert "python -m pip install onnxruntime" in warnings[0]


def test_installing_the_package_and_refreshing_brings_the_algorithm_back(monkeypatch, register):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    provider = register(SpaceNetProvider([NeedsOnnxruntime], models_dir=None))
    assert provider.algorithms() == []
    monkeypatch.delitem(sys.modules, "onnxruntime")
    provider.refreshAlgorithms()
    assert [a.id() for a in provider.algorithms()] == ["spacenet:needsonnxruntime"]
    assert provider.unavailable == {}


def test_an_offered_algorithm_runs_and_carries_the_shared_base(register, qgis_processing):
    import processing

    register(SpaceNetProvider([NeedsOnnxruntime], models_dir=None))
    algorithm = QgsApplication.processingRegistry().algorithmById("spacenet:needsonnxruntime")
    assert algorithm.group() == "Extraction" and algorithm.groupId() == "extraction"
    assert not algorithm.icon().isNull()
    assert processing.run("spacenet:needsonnxruntime", {})["ANSWER"] == 42
