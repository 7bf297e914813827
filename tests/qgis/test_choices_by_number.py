"""Choices by number inside QGIS (issue 19): processing.run and a model's step take an enum option's number as
they take its name (QGIS 3.22 would refuse the number, or in a model's step take the default without a word), and
a number that is not a choice is refused with the choices."""

import pytest
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
)

from spacenet_toolkit.core.fetch import catalog


def numbered(bucket, tmp_path, folder, **overrides):
    """SN2_buildings train AOI_2_Vegas, PS-RGB and labels, all by number (as int, as text), one tile."""
    values = {"DATASET": list(catalog.DATASETS).index("SN2_buildings"),
              "AOI": str(catalog.ALL_AOIS.index("AOI_2_Vegas")), "SPLIT": catalog.SPLITS.index("train"),
              "PRODUCTS": [catalog.PRODUCTS.index("PS-RGB"), str(catalog.PRODUCTS.index(catalog.LABELS))],
              "ENDPOINT": bucket.endpoint, "LOAD_OUTPUTS": False, "MAX_TILES": 1,
              "OUTPUT_FOLDER": str(tmp_path / folder)}
    values.update(overrides)
    return values


def test_processing_run_takes_numbers(provider, bucket, tmp_path):
    import processing

    results = processing.run("spacenet:fetchtiles", numbered(bucket, tmp_path, "tiles"),
                             feedback=QgsProcessingFeedback())
    assert results["TILE_COUNT"] == 1
    assert "/SN2_buildings/train/AOI_2_Vegas/PS-RGB/" in results["IMAGERY"]
    assert "/SN2_buildings/train/AOI_2_Vegas/geojson_buildings/" in results["LABELS"]


def test_processing_run_refuses_a_number_out_of_range(provider, bucket, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match=r"DATASET \(Dataset\): 9 is not among the choices: give a "
                                                     r"name or its number \(0: SN1_buildings, 1: SN2_buildings"):
        processing.run("spacenet:fetchtiles", numbered(bucket, tmp_path, "tiles", DATASET=9))
    assert not (tmp_path / "tiles").exists()


def model_with_step(values: dict) -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("numbers", "test")
    step = QgsProcessingModelChildAlgorithm("spacenet:fetchtiles")
    step.setChildId("fetch")
    for key, value in values.items():
        step.addParameterSources(key, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    model.addChildAlgorithm(step)
    return model


def test_a_model_step_takes_numbers(provider, bucket, tmp_path):
    results, ok = model_with_step(numbered(bucket, tmp_path, "tiles")).run({}, QgsProcessingContext(),
                                                                             QgsProcessingFeedback())
    assert ok
    assert "/SN2_buildings/train/AOI_2_Vegas/PS-RGB/" in results["CHILD_RESULTS"]["fetch"]["IMAGERY"]


def test_a_model_step_refuses_a_number_out_of_range_instead_of_taking_the_default(provider, bucket, tmp_path):
    feedback = QgsProcessingFeedback()
    model = model_with_step(numbered(bucket, tmp_path, "tiles", SPLIT=5))
    with pytest.raises(QgsProcessingException) as raised:
        model.run({}, QgsProcessingContext(), feedback, catchExceptions=False)
    # QGIS 3.22 logs the step's refusal to the feedback; 3.40 puts it in the exception the model raises
    assert "SPLIT (Split): 5 is not among the choices: give a name or its number (0: train, 1: test)." in \
        feedback.textLog() + str(raised.value)
