"""Check every shipped ONNX model with onnxruntime alone: names, dynamic shapes, card, fp32/fp16 agreement.

Needs only numpy and onnxruntime, so it runs in the plugin's environment too:

    .venv/bin/python training/verify.py
"""
import glob
import json
import sys

import numpy as np
import onnxruntime as ort

CARD_KEYS = {"schema", "name", "version", "task", "description", "input", "outputs", "defaults", "training",
             "licence", "scores"}
DEEPNESS_KEYS = {"model_type", "class_names", "resolution", "tile_size", "tiles_overlap", "seg_thresh"}


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def check(fp32_path):
    s32, s16 = session(fp32_path), session(fp32_path.replace(".onnx", ".fp16.onnx"))
    for s in (s32, s16):
        (inp,), (out,) = s.get_inputs(), s.get_outputs()
        assert inp.name == "image" and inp.type == "tensor(float)", inp
        assert out.name == "probabilities" and out.type == "tensor(float)", out
        meta = s.get_modelmeta().custom_metadata_map
        assert set(meta) >= DEEPNESS_KEYS, meta.keys()
        card = json.loads(meta["spacenet_model_card"])
        assert set(card) >= CARD_KEYS, set(card) ^ CARD_KEYS
        assert json.loads(meta["seg_thresh"]) == card["defaults"]["threshold"]
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in ((1, 3, 512, 512), (2, 3, 256, 384), (1, 3, 96, 160)):
        x = rng.random(shape, dtype=np.float32)
        a = s32.run(None, {"image": x})[0]
        b = s16.run(None, {"image": x})[0]
        channels = len(card["outputs"]["channels"])
        assert a.shape == (shape[0], channels) + shape[2:] and a.dtype == b.dtype == np.float32, a.shape
        assert a.min() >= 0.0 and a.max() <= 1.0
        worst = max(worst, float(np.abs(a - b).max()))
    print(json.dumps({"model": fp32_path, "ok": worst < 0.05, "max_abs_diff_fp32_fp16": round(worst, 5),
                      "card": card}, indent=1))
    return worst < 0.05


def main():
    models = sorted(p for p in glob.glob("models/*.onnx") if not p.endswith(".fp16.onnx"))
    return 0 if all([check(path) for path in models]) else 1


if __name__ == "__main__":
    sys.exit(main())
