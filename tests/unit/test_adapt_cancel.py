"""A canceled adaptation kills the training process and leaves no model and no work folder behind; the
adaptation worker's interpreter trains the ONNX graph it was given (a real training Python, real subprocess)."""

import json
import subprocess

import pytest
import shapely

from spacenet_toolkit.core.adapt import adapt
from spacenet_toolkit.core.progress import Canceled
from tests.support.training_python import training_python

SAMPLE = "sample_data/sn4_atlanta_pan.tif"
BUILDINGS = "sample_data/sn4_atlanta_buildings.geojson"


def request(repo_root, tmp_path, **changes):
    features = json.loads((repo_root / BUILDINGS).read_text())["features"]
    values = dict(raster_path=str(repo_root / SAMPLE), footprints=[shapely.geometry.shape(f["geometry"])
                                                                    for f in features],
                  area=None, base_model=str(repo_root / "models" / "buildings_unet_small.onnx"), name="canceled",
                  models_dir=str(tmp_path / "models"), minutes=10, device="cpu", python=training_python(),
                  work_dir=str(tmp_path / "work"), cpu_threads=1)
    values.update(changes)
    return adapt.AdaptRequest(**values)


def test_cancel_during_training_keeps_nothing(repo_root, tmp_path):
    (tmp_path / "work").mkdir()
    steps = []

    def report(fraction, message=None):
        if message and message.startswith("Fine-tuning"):
            steps.append(fraction)

    with pytest.raises(Canceled):
        adapt.adapt(request(repo_root, tmp_path), report, is_canceled=lambda: bool(steps))
    assert steps, "the training process never started"
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert not any((tmp_path / "work").iterdir()), "a work folder was left behind"
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True, text=True).stdout
    assert not leftovers.strip(), "the training process outlived the cancel"


INTERPRETER_CHECK = """
import sys, numpy as np, onnx, onnxruntime as ort, torch
sys.path.insert(0, sys.argv[1])
from onnx_torch import OnnxModule
model = onnx.load(sys.argv[2])
net = OnnxModule(model)
x = np.random.default_rng(0).random((1, 3, 64, 96), np.float32)
expected = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
with torch.no_grad():
    got = torch.sigmoid(net(torch.from_numpy(x))).numpy()
for p in net.parameters():
    p.data += 0.01
changed = ort.InferenceSession(net.write_back(model).SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
with torch.no_grad():
    moved = torch.sigmoid(net(torch.from_numpy(x))).numpy()
print(float(abs(got - expected).max()), float(abs(changed - moved).max()), float(abs(changed - expected).max()))
"""


@pytest.mark.parametrize("model", ["buildings_unet_small", "buildings_effnet_lite0"])
def test_the_graph_trains_as_onnxruntime_runs_it(repo_root, model):
    path = repo_root / "models" / f"{model}.onnx"
    done = subprocess.run([training_python(), "-c", INTERPRETER_CHECK, str(repo_root / "core" / "adapt" / "worker"),
                           str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    same, written_back, moved = map(float, done.stdout.split())
    assert same < 1e-4, "the interpreter's probabilities differ from onnxruntime's"
    assert written_back < 5e-3, "the weights written back are not the ones trained"  # float16 storage rounds
    assert moved > 1e-3, "changing the weights changed nothing"
