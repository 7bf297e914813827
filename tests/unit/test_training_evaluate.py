"""The training pipeline's tuner: object F1 with the engine's rules (minimum area and minimum score)."""

import numpy as np
import pytest

from spacenet_toolkit.training import evaluate


def scene():
    """Two truth roofs found (scores 0.9 and 0.8), a false alarm (score 0.6) and a missed roof."""
    truth = np.zeros((60, 60), np.int32)
    truth[5:15, 5:15], truth[5:15, 30:40], truth[40:50, 5:15] = 1, 2, 3
    prob = np.zeros((2, 60, 60), np.float32)
    prob[0, 5:15, 5:15], prob[0, 5:15, 30:40], prob[0, 40:50, 40:50] = 0.9, 0.8, 0.6
    prob[1] = prob[0]  # interior seeds as large as the roofs: nothing to split
    return prob, np.ones((60, 60), bool), truth


def test_components_carry_area_score_and_match():
    prob, valid, truth = scene()
    table = evaluate.components(evaluate.instances_from(prob[0], prob[1], 0.5, 0.5), truth, valid, prob[0])
    assert sorted(zip(table["score"].round(3), table["matched"], table["area_px"])) == [
        (0.6, False, 100), (0.8, True, 100), (0.9, True, 100)]
    assert table["n_truth"] == 3


@pytest.mark.parametrize("min_score, f1", [(0.0, 2 * 2 / (3 + 3)), (0.7, 2 * 2 / (2 + 3)), (0.85, 2 * 1 / (1 + 3))])
def test_the_minimum_score_drops_footprints_as_the_engine_does(min_score, f1):
    prob, valid, truth = scene()
    table = evaluate.components(evaluate.instances_from(prob[0], prob[1], 0.5, 0.5), truth, valid, prob[0])
    assert evaluate.object_scores([table], 0.0, min_score)["f1"] == pytest.approx(f1)


def test_the_tuner_finds_the_minimum_score_that_drops_the_false_alarm():
    prob, valid, truth = scene()
    best = evaluate.tune([(prob, valid, truth)], thresholds=(0.5,), interior_thresholds=(0.5,), min_areas_m2=(0,))
    assert best["min_score"] == 0.65 and best["f1"] == pytest.approx(0.8)
    assert evaluate.card_defaults(best) == {"threshold": 0.5, "min_area_m2": 0, "min_score": 0.65,
                                            "interior_threshold": 0.5}
