"""The model card's task against the algorithm that runs it: refused in one sentence when they differ, let through
when nothing says they do (models without a task of their own)."""

import json

import pytest

from spacenet_toolkit.core.extract import modelcard

IMAGE = [("image", ["batch", 3, "h", "w"])]
ALGORITHMS = {"buildings": "spacenet:extractbuildings", "roads": "spacenet:extractroads"}


def ours(channels, **card):
    """Our card with these output channels (and ``task`` etc. when given)."""
    value = {"name": "m", "input": {"bands": ["red", "green", "blue"]}, "outputs": {"channels": list(channels)},
             **card}
    outputs = [("probabilities", ["batch", len(channels), "h", "w"])]
    return modelcard.read_card({modelcard.CARD_KEY: json.dumps(value)}, IMAGE, outputs)


def deepness(class_names, channels):
    metadata = {"model_type": json.dumps("Segmentor")}
    if class_names is not None:
        metadata["class_names"] = json.dumps(class_names)
    return modelcard.read_card(metadata, IMAGE, [("out", ["batch", channels, "h", "w"])])


def test_a_road_model_is_refused_for_buildings_with_what_to_use_instead():
    card = ours(["road"], task="roads", name="roads_effnet_lite0")
    with pytest.raises(modelcard.WrongTaskError) as refused:
        modelcard.check_task(card, "buildings", ALGORITHMS, ["buildings_unet_small", "buildings_effnet_lite0"])
    assert str(refused.value) == (
        "The model 'roads_effnet_lite0' is made for roads (its output channels: road), not for buildings: run it "
        "with spacenet:extractroads, or choose a buildings model (buildings_unet_small, buildings_effnet_lite0) "
        "for this algorithm."
    )
    assert isinstance(refused.value, modelcard.ModelCardError)  # callers that catch card errors catch this too


def test_a_building_model_is_refused_for_roads_and_fits_buildings():
    card = ours(["building", "interior"], task="buildings")
    modelcard.check_task(card, "buildings", ALGORITHMS)
    with pytest.raises(modelcard.WrongTaskError, match=r"made for buildings \(its output channels: building, "
                                                        r"interior\), not for roads: run it with "
                                                        r"spacenet:extractbuildings, or choose a roads model for"):
        modelcard.check_task(card, "roads", ALGORITHMS)


def test_a_task_no_algorithm_runs_is_named_as_such():
    with pytest.raises(modelcard.WrongTaskError, match="made for trees .* nothing here extracts trees, or choose"):
        modelcard.check_task(ours(["tree"], task="trees"), "buildings", ALGORITHMS)


@pytest.mark.parametrize("channels, task", [
    (["road"], "roads"), (["Roads"], "roads"), (["building", "interior"], "buildings"), (["Buildings"], "buildings"),
    (["railroad"], ""), (["background", "building", "road"], ""), (["class 0"], ""),
])
def test_a_card_without_a_task_is_placed_by_its_channel_names(channels, task):
    assert modelcard.task_of_channels(channels) == task
    assert ours(channels).task == task


def test_a_stated_task_wins_over_the_channel_names():
    assert ours(["road"], task="buildings").task == "buildings"


def test_deepness_models_are_placed_by_their_class_names_and_generic_ones_fit_every_task():
    roads = deepness({"0": "road"}, 1)
    assert roads.task == "roads"
    with pytest.raises(modelcard.WrongTaskError, match="made for roads"):
        modelcard.check_task(roads, "buildings", ALGORITHMS)
    assert deepness({"0": "Building"}, 2).task == "buildings"  # the foreground class named alone
    for generic in (deepness({"0": "Coffee"}, 1), deepness(None, 3), deepness({"0": "road", "1": "building"}, 2)):
        assert generic.task == ""
        for task in ALGORITHMS:
            modelcard.check_task(generic, task, ALGORITHMS)
        assert "task not stated" in generic.summary()


def test_a_registered_model_not_downloaded_yet_is_refused_by_its_registry_task():
    """Before its download: the registry's task alone (no card yet, so no channels in the sentence)."""
    with pytest.raises(modelcard.WrongTaskError) as refused:
        modelcard.check_model_task("buildings_effnet_lite0", "buildings", "roads", (), ALGORITHMS,
                                   ["roads_effnet_lite0"])
    assert str(refused.value) == (
        "The model 'buildings_effnet_lite0' is made for buildings, not for roads: run it with "
        "spacenet:extractbuildings, or choose a roads model (roads_effnet_lite0) for this algorithm.")
    modelcard.check_model_task("buildings_effnet_lite0", "buildings", "buildings")  # fits: nothing raised
    modelcard.check_model_task("someone_elses", "", "roads")  # no task known: let through
