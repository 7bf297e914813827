"""Predictor.run keeps its IO bindings and buffers (issue 20): the same outputs as a plain session.run, results that
stay the caller's, memory reused once the caller lets go.

Both ways a predictor binds its input are run here on the CPU: the caller's array bound as it is (the CPU path), and
"staged", copied into a buffer kept on the device, which is the GPU's code with "cpu" buffers.
"""

import json
import threading

import numpy as np
import onnx
import onnx_models
import pytest
from onnx import TensorProto, helper

from spacenet_toolkit.core.extract import runtime

BINDINGS = [pytest.param(False, id="host-input"), pytest.param(True, id="staged-input")]
SIZES = (1, 3, 4, 4, 4, 2)  # a final smaller batch after larger ones changes the shape


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def plain(predictor, batch: np.ndarray) -> np.ndarray:
    card = predictor.card
    return runtime.to_probabilities(predictor.session.run([card.output_name], {card.input_name: batch})[0],
                                    card.activation)


def batches(predictor, sizes=SIZES, tile: int = 64, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [rng.random((n, len(predictor.card.bands), tile, tile), dtype=np.float32) for n in sizes]


def run_all(predictor, inputs, staged: bool) -> list:
    return [runtime._activated(predictor._run_io_bound(batch, staged), predictor.card.activation) for batch in inputs]


def fresh(path, device="cpu"):
    runtime.clear_cache()
    return runtime.load(path, device, cpu_threads=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """The tiny test models: the brightness model as the engine tests use it, the same with activations to apply
    (sigmoid on logits, softmax over its two channels), and one whose input and output are float16."""
    folder = tmp_path_factory.mktemp("buffer_models")
    made = {"brightness": onnx_models.brightness_model(folder / "brightness.onnx")}
    for activation in ("sigmoid", "softmax"):
        made[activation] = onnx_models.brightness_model(
            folder / f"{activation}.onnx", onnx_models.card(outputs={"activation": activation}))
    made["float16"] = float16_model(folder / "float16.onnx")
    return made


def float16_model(path):
    """Float16 in and out: the first two bands' sigmoid, through float32 inside."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT16, ["batch", 3, "height", "width"])
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT16, ["batch", 2, "height", "width"])
    nodes = [
        helper.make_node("Cast", ["image"], ["wide"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["wide", "starts", "ends", "axes"], ["two"]),
        helper.make_node("Sigmoid", ["two"], ["probs"]),
        helper.make_node("Cast", ["probs"], ["probabilities"], to=TensorProto.FLOAT16),
    ]
    constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                 for name, value in (("starts", 0), ("ends", 2), ("axes", 1))]
    model = helper.make_model(helper.make_graph(nodes, "float16", [image], [output], constants),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "spacenet_model_card", json.dumps(onnx_models.card(name="float16"))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("staged", BINDINGS)
@pytest.mark.parametrize("name", ["buildings_unet_small", "buildings_unet_small.fp16", "buildings_effnet_lite0",
                                  "roads_effnet_lite0"])
def test_the_shipped_models_give_what_session_run_gives(repo_root, name, staged):
    predictor = fresh(repo_root / "models" / f"{name}.onnx")
    inputs = batches(predictor)
    results = run_all(predictor, inputs, staged)  # every result held until all are compared
    for batch, result in zip(inputs, results):
        assert result.dtype == np.float32 and result.shape[0] == len(batch)
        np.testing.assert_array_equal(result, plain(predictor, batch))


@pytest.mark.parametrize("staged", BINDINGS)
@pytest.mark.parametrize("name", ["brightness", "sigmoid", "softmax", "float16"])
def test_the_tiny_models_give_what_session_run_gives(models, name, staged):
    predictor = fresh(models[name])
    inputs = batches(predictor, tile=96, seed=1)
    if name == "float16":
        inputs = [batch.astype(np.float16) for batch in inputs]
    results = run_all(predictor, inputs, staged)
    for batch, result in zip(inputs, results):
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, plain(predictor, batch))
    if name == "float16":  # a float32 batch is cast to the model's input type, as session.run would refuse it
        batch = inputs[0].astype(np.float32)
        np.testing.assert_array_equal(predictor.run(batch), plain(predictor, inputs[0]))


def test_run_uses_the_host_input_binding_on_the_cpu(models):
    predictor = fresh(models["brightness"])
    batch = batches(predictor, (2,))[0]
    np.testing.assert_array_equal(predictor.run(batch), plain(predictor, batch))
    assert not predictor.on_gpu and list(predictor._threads.bound) == [(False, batch.shape)]


@pytest.mark.parametrize("staged", BINDINGS)
def test_results_stay_the_callers_and_memory_comes_back_when_let_go(models, staged):
    predictor = fresh(models["brightness"])
    first, second, third = batches(predictor, (4, 4, 4), seed=2)
    expected = [plain(predictor, batch) for batch in (first, second, third)]
    predictor._run_io_bound(first, staged)  # the shape's first call sizes the output
    held = predictor._run_io_bound(first, staged)
    kept = address(held)
    later = predictor._run_io_bound(second, staged)  # while `held` is held, another buffer
    assert address(later) != kept
    np.testing.assert_array_equal(held, expected[0])
    np.testing.assert_array_equal(later, expected[1])
    del held
    again = predictor._run_io_bound(third, staged)  # let go of: its memory serves again
    assert address(again) == kept
    np.testing.assert_array_equal(again, expected[2])
    np.testing.assert_array_equal(later, expected[1])
    # a view keeps its array's memory the caller's, even after the array itself is gone
    view = again[1:, 0]
    del again
    fourth = predictor._run_io_bound(first, staged)
    assert not np.shares_memory(fourth, view)
    np.testing.assert_array_equal(view, expected[2][1:, 0])
    np.testing.assert_array_equal(fourth, expected[0])


def test_probabilities_are_written_in_place_of_the_raw_output(models):
    """With an activation to apply, run computes it in its own buffer: no second array per call."""
    predictor = fresh(models["sigmoid"])
    batch = batches(predictor, (2,))[0]
    predictor.run(batch)
    result = predictor.run(batch)
    kept = address(result)
    del result
    result = predictor.run(batch)
    assert address(result) == kept
    np.testing.assert_array_equal(result, plain(predictor, batch))


def test_threads_have_their_own_bindings(models):
    predictor = fresh(models["brightness"])
    inputs = batches(predictor, (3, 3, 3, 3, 1, 3), seed=3)
    expected = [plain(predictor, batch) for batch in inputs]
    failures = []

    def work(offset):
        for round_ in range(4):
            for k in range(offset, len(inputs), 2):
                for staged in (False, True):
                    if not np.array_equal(predictor._run_io_bound(inputs[k], staged), expected[k]):
                        failures.append((offset, round_, k, staged))

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_many_shapes_keep_a_few_bindings_and_stay_right(models):
    predictor = fresh(models["brightness"])
    inputs = [batch for size in (32, 64, 96, 128, 64, 32) for batch in batches(predictor, (2,), tile=size)]
    for batch in inputs:
        np.testing.assert_array_equal(predictor.run(batch), plain(predictor, batch))
    assert len(predictor._threads.bound) == runtime._SHAPES_KEPT


@pytest.mark.parametrize("staged", BINDINGS)
def test_a_failed_run_leaves_the_predictor_working(models, staged):
    predictor = fresh(models["brightness"])
    good = batches(predictor, (2,))[0]
    predictor._run_io_bound(good, staged)
    with pytest.raises(Exception):  # noqa: B017  (onnxruntime raises its own exception types)
        predictor._run_io_bound(np.zeros((2, 5, 64, 64), np.float32), staged)  # 5 bands for a 3-band model
    np.testing.assert_array_equal(predictor.run(good), plain(predictor, good))
