"""The adapted model's half-precision variant: written for every base whose probabilities float16 keeps (the
default base stores float16 weights but computes in float32, and its adapted model gets a variant too), and left
out, with the reason, where float16 overflows. The adaptation worker runs in a real training Python."""

import json
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import rasterio
from onnx import TensorProto, helper, numpy_helper

from spacenet_toolkit.core.adapt import training_python as worker_location
from tests.support.training_python import training_python

SAMPLE = "sample_data/sn4_atlanta_pan.tif"
SIDE = 64


def write_chips(repo_root, path):
    """Two chips of the Atlanta tile (its one band in all three), half of each labelled a building."""
    with rasterio.open(repo_root / SAMPLE) as src:
        band = src.read(1, window=((0, SIDE), (0, 2 * SIDE))).astype(np.float32)
    low, high = np.percentile(band, [2, 98])
    scaled = (np.clip((band - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    images = np.stack([np.stack([scaled[:, i * SIDE:(i + 1) * SIDE]] * 3) for i in range(2)])
    labels = np.zeros((2, 2, SIDE, SIDE), np.uint8)
    labels[:, :, : SIDE // 2] = 1
    np.savez(path, images=images, labels=labels, known=np.ones((2, SIDE, SIDE), np.uint8))


def run_worker(base_model, tmp_path, repo_root) -> dict:
    write_chips(repo_root, tmp_path / "chips.npz")
    job = dict(base_model=str(base_model), chips=str(tmp_path / "chips.npz"), output=str(tmp_path / "adapted.onnx"),
               card={"name": "adapted"}, minutes=2, max_steps=2, device="cpu", threads=1, batch=2, crop=SIDE,
               learning_rate=1e-4, seed=0, fp16=True)
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run([training_python(), str(worker_location.WORKER), "train", str(tmp_path / "job.json")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def probabilities(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_the_default_base_s_adapted_model_gets_a_half_precision_variant(repo_root, tmp_path):
    done = run_worker(repo_root / "models" / "buildings_effnet_lite0.onnx", tmp_path, repo_root)
    assert done["event"] == "done" and done["fp16_written"] is True
    assert 0 < done["fp16_difference"] <= 0.05
    half = onnx.load(tmp_path / "adapted.fp16.onnx")
    assert half.graph.node[0].name == "cast_in"
    assert all(init.data_type == TensorProto.FLOAT16 for init in half.graph.initializer
               if init.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16) and init.dims)
    x = np.random.default_rng(0).random((1, 3, SIDE, SIDE), np.float32)
    assert np.abs(probabilities(tmp_path / "adapted.fp16.onnx", x) - probabilities(tmp_path / "adapted.onnx", x)
                  ).max() < 0.02


def overflowing_model(path):
    """A sigmoid model whose first convolution reaches some 10^5 (finite in float32, inf in float16): a subtraction
    of that value from itself is 0 in float32 and NaN in float16."""
    big = numpy_helper.from_array(np.full((1, 3, 1, 1), 4e4, np.float32), "big")
    small = numpy_helper.from_array(np.full((2, 3, 1, 1), 0.5, np.float32), "small")
    nodes = [helper.make_node("Conv", ["image", "big"], ["large"]),
             helper.make_node("Sub", ["large", "large"], ["zero"]),
             helper.make_node("Conv", ["image", "small"], ["logits_part"]),
             helper.make_node("Add", ["logits_part", "zero"], ["logits"]),
             helper.make_node("Sigmoid", ["logits"], ["probabilities"])]
    graph = helper.make_graph(
        nodes, "overflow", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2, None, None])], [big, small])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_a_model_that_overflows_in_float16_gets_no_variant(repo_root, tmp_path):
    overflowing_model(tmp_path / "overflow.onnx")
    done = run_worker(tmp_path / "overflow.onnx", tmp_path, repo_root)
    assert done["fp16_written"] is False and done["fp16_difference"] is None
    assert (tmp_path / "adapted.onnx").is_file() and not (tmp_path / "adapted.fp16.onnx").exists()
