"""Model cards: our JSON card, Deepness metadata, and models with none."""

import json

import pytest

from spacenet_toolkit.core.extract import modelcard, runtime

IMAGE = [("image", ["batch", 3, "h", "w"])]
OUTPUT = [("probabilities", ["batch", 2, "h", "w"])]


def our_card(**changes):
    card = {
        "name": "m", "task": "buildings",
        "input": {"bands": ["red", "green", "blue"], "tile_size": 384, "overlap": 48, "gsd_m": 0.3,
                  "normalisation": {"stretch": "percentile", "low_percentile": 1, "high_percentile": 99}},
        "outputs": {"channels": ["building", "interior"], "activation": "none"},
        "defaults": {"threshold": 0.4, "min_area_m2": 6, "interior_threshold": 0.55},
    }
    card.update(changes)
    return {modelcard.CARD_KEY: json.dumps(card)}


def test_our_card_is_read_in_full():
    card = modelcard.read_card(our_card(), IMAGE, OUTPUT)
    assert (card.tile_size, card.overlap, card.gsd_m) == (384, 48, 0.3)
    assert card.normalisation.low_percentile == 1 and card.normalisation.high_percentile == 99
    assert (card.threshold, card.min_area_m2, card.interior_threshold) == (0.4, 6, 0.55)
    assert card.min_score == 0.0  # not in the card: every footprint is kept
    surer = modelcard.read_card(our_card(defaults={"threshold": 0.4, "min_score": 0.7}), IMAGE, OUTPUT)
    assert surer.min_score == 0.7
    assert card.foreground_channel == 0 and card.interior_channel == 1
    assert not card.fixed_size and card.source == "spacenet"


def test_a_card_that_disagrees_with_the_tensor_is_refused():
    with pytest.raises(modelcard.ModelCardError, match="lists 3 input bands but the model takes 4"):
        modelcard.read_card(our_card(), [("image", [1, 4, 512, 512])], OUTPUT)
    with pytest.raises(modelcard.ModelCardError, match="not valid"):
        modelcard.read_card({modelcard.CARD_KEY: "{not json"}, IMAGE, OUTPUT)
    with pytest.raises(modelcard.ModelCardError, match="4 dimensions"):
        modelcard.read_card({}, [("x", [1, 3, 512])], OUTPUT)


@pytest.mark.parametrize(
    "name, channels, foreground, fixed",
    [
        ("one_output_sigmoid_bsx1x512x512.onnx", ("Coffee",), 0, True),
        ("one_output_sigmoid_bsx512x512.onnx", ("Coffee",), 0, True),
        ("one_output_softmax_bsx2x512x512.onnx", ("class 0", "class 1"), 1, True),
        ("two_outputs_softmax_bsx2x512x512.onnx", ("Coffee", "Tea"), 1, True),
        ("dummy_model.onnx", ("class 0", "class 1", "class 2"), 1, True),
    ],
)
def test_deepness_models_are_read_with_deepness_conventions(fixtures, name, channels, foreground, fixed):
    predictor = runtime.load(fixtures / "onnx_plumbing" / name, device="cpu")
    card = predictor.card
    assert card.channels == channels
    assert card.foreground_channel == foreground
    assert card.tile_size == 512 and card.fixed_size is fixed
    assert card.normalisation.stretch == "divide" and card.normalisation.divisor == 255
    assert card.gsd_m is None  # no resolution key: the raster's own resolution


def deepness(**values):
    return {key: json.dumps(value) for key, value in values.items()}


@pytest.mark.parametrize(("metadata", "inputs", "outputs", "said"), [
    # values of the wrong kind: a traceback, and for a model in the user's folder every algorithm's listing
    (our_card(defaults={"threshold": "high"}), IMAGE, OUTPUT, "a value of the wrong kind (could not convert"),
    (deepness(resolution="thirty"), IMAGE, OUTPUT, "a value of the wrong kind"),
    (deepness(standardization_parameters=[0.5, 0.5]), IMAGE, OUTPUT, "standardization_parameters is [0.5, 0.5]"),
    # values out of range: a WindowError, a ZeroDivisionError, "negative dimensions"
    (our_card(input={"bands": ["red", "green", "blue"], "gsd_m": -0.5}), IMAGE, OUTPUT, "resolution is -0.5 m"),
    (our_card(input={"bands": ["red", "green", "blue"], "tile_size": -64}), IMAGE, OUTPUT, "tile size is -64 px"),
    (our_card(input={"bands": ["red", "green", "blue"], "size_multiple": 0}), IMAGE, OUTPUT, "size multiple is 0"),
    (deepness(tile_size=0), IMAGE, OUTPUT, "tile size is 0 px"),
    # tensors the engine would misread or fail on mid-run
    (our_card(), IMAGE, [("probabilities", ["batch", 1, "h", "w"])], "names 2 output channels (building, "
                                                                      "interior) but its output has 1"),
    ({}, [("image", [1, 3, 256, 256])], [("out", [1, 256, 256, 2])], "channels last (N, H, W, C)"),
    ({}, [("image", [1, 3, 256, 256])], [("out", [1, 1, 128, 128])], "128 px across for 256 px tiles"),
    ({}, [("image", [5, 3, 128, 128])], [("out", [5, 1, 128, 128])], "fixes its batch at 5 tiles"),
    ({}, [*IMAGE, ("aux", ["batch", 1])], OUTPUT, "takes 2 inputs (image, aux)"),
    (deepness(model_type="Detector"), IMAGE, [("boxes", [1, 100, 6])], "a Deepness 'Detector' model"),
])
def test_cards_and_tensors_the_engine_cannot_run_are_refused_by_name(metadata, inputs, outputs, said):
    with pytest.raises(modelcard.ModelCardError) as raised:
        modelcard.read_card(metadata, inputs, outputs)
    assert said in str(raised.value)


def test_deepness_class_names_of_the_foreground_numbered_by_channel():
    """{"1": "road"} for a background + road output lost its name: the model read as neither task."""
    card = modelcard.read_card(deepness(class_names={"1": "road"}), IMAGE, OUTPUT)
    assert card.channels == ("background", "road") and card.task == "roads"
    card = modelcard.read_card(deepness(class_names={"0": "road"}), IMAGE, OUTPUT)
    assert card.channels == ("background", "road")
