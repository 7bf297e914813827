"""Export a trained checkpoint to ONNX (fp32 and fp16 weights) with the model card in the file's metadata.

The card (`spacenet_model_card`, JSON) is what the engine reads; the Deepness-style keys are added beside it so
the file also runs in the Deepness plugin. The fp16 file computes in float16 but keeps float32 input and output:
a Cast after the input and before the output.

    training/.venv/bin/python -m training.export --checkpoint training/runs/latest/best.pt
"""
import argparse
import copy
import json
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from core.adapt.worker.onnx_precision import to_fp16  # the fp16 variant, shared with model adaptation
from training import model as networks
from training.model import ExportWrapper

OPSET = 17
# The engine's tiles: 1024 px with 256 px overlap cost as much per km2 as 512/128 and, measured on the SN3
# Vegas tile, give exactly the buildings of one whole-tile run (the blend ignores 3/8 of the overlap).
TILE_SIZE, OVERLAP = 1024, 256


# What differs between the shipped models, by (task, architecture); everything else in the card is shared.
OSM_DATA = ["OpenAerialMap imagery CC BY 4.0 (HOT OSM)", "OpenStreetMap contributors, ODbL 1.0"]
SPACENET_DATA = ["The SpaceNet Dataset by SpaceNet Partners, CC BY-SA 4.0"]
MODELS = {
    ("buildings", "unet_small"): dict(
        name="buildings_unet_small", version="0.4.1", channels=["building", "interior"],
        description=("Small U-Net (1.6 M parameters) for building footprints in RGB or panchromatic aerial and "
                     "satellite imagery at about 0.3 m. Trained on CPU from OpenAerialMap chips with OSM labels "
                     "(fAIr / RAMP); a baseline, expect missed and merged buildings outside similar scenes. "
                     "Channel 0: building probability; channel 1: building interior (footprint shrunk by 1 m), "
                     "seeds for splitting touching buildings."),
        data_licence=OSM_DATA),
    ("buildings", "effnet_lite0"): dict(
        name="buildings_effnet_lite0", version="1.0.0", channels=["building", "interior"],
        description=("U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder (3.3 M parameters) for building "
                     "footprints in RGB or panchromatic aerial and satellite imagery at about 0.3 m. Trained on a "
                     "GPU from OpenAerialMap chips with OSM labels (fAIr / RAMP), augmented towards satellite "
                     "looks (coarser resolution, blur, panchromatic, off-nadir shear). Channel 0: building "
                     "probability; channel 1: building interior (footprint shrunk by 1 m), seeds for splitting "
                     "touching buildings."),
        data_licence=OSM_DATA, encoder="EfficientNet-Lite0", compact=True),
    ("roads", "unet_small"): dict(
        name="roads_unet_small", version="0.1.0", channels=["road"],
        description=("Baseline road segmentation U-Net (1.6 M parameters) for RGB or panchromatic WorldView-3 "
                     "imagery at 0.3 m, trained on CPU on two SpaceNet 3 Las Vegas tiles only (one and a half "
                     "1300 px tiles). A demonstration of the pipeline, not a production model: train one on "
                     "SN3/SN5 with `make train-roads DATA=...`. Channel 0: road probability (4 m wide masks)."),
        data_licence=SPACENET_DATA),
    ("roads", "effnet_lite0"): dict(
        name="roads_effnet_lite0", version="0.1.0", channels=["road"],
        description=("Road segmentation U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder for RGB or "
                     "panchromatic imagery at 0.3 m, trained on two SpaceNet 3 Las Vegas tiles only. "
                     "Channel 0: road probability (4 m wide masks)."),
        data_licence=SPACENET_DATA, encoder="EfficientNet-Lite0", compact=True),
}


def model_paths(task, arch="unet_small"):
    name = MODELS[task, arch]["name"]
    return f"models/{name}.onnx", f"models/{name}.fp16.onnx"


def model_card(defaults, scores, training, task="buildings", arch="unet_small"):
    spec = MODELS[task, arch]
    licence = {"model": "Apache-2.0", "data": spec["data_licence"]}
    if "encoder" in spec:
        from training.encoder import WEIGHTS_CREDIT
        licence["pretrained_weights"] = WEIGHTS_CREDIT
    return {
        "schema": 1, "name": spec["name"], "version": spec["version"], "task": task,
        "description": spec["description"],
        "input": {"name": "image", "bands": ["red", "green", "blue"], "tile_size": TILE_SIZE, "overlap": OVERLAP,
                  "size_multiple": 32, "gsd_m": 0.3,
                  "normalisation": {"stretch": "percentile", "low_percentile": 2.0, "high_percentile": 98.0,
                                    "mean": [0, 0, 0], "std": [1, 1, 1]}},
        "outputs": {"name": "probabilities", "activation": "none", "channels": spec["channels"]},
        "defaults": defaults,
        "training": training,
        "architecture": arch,
        "licence": licence,
        "scores": scores,
    }


def deepness_keys(threshold, class_name):
    """Deepness plugin metadata: each value JSON-encoded, resolution in cm/px, overlap in percent."""
    return {"model_type": json.dumps("Segmentor"), "class_names": json.dumps({"0": class_name}),
            "resolution": json.dumps(30), "tile_size": json.dumps(TILE_SIZE),
            "tiles_overlap": json.dumps(100 * OVERLAP // TILE_SIZE), "seg_thresh": json.dumps(threshold)}


def set_metadata(model, card):
    del model.metadata_props[:]
    entries = {"spacenet_model_card": json.dumps(card), **deepness_keys(card["defaults"]["threshold"],
                                                                  card["outputs"]["channels"][0])}
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "spacenet_toolkit/training"
    model.doc_string = card["description"]


def to_fp16_storage(model):
    """Weights stored in float16 and cast to float32 as the graph starts, so computation stays float32: half the
    file for a difference of probabilities in the fourth decimal (onnxruntime folds the casts away on load)."""
    graph = model.graph
    keep_fp32 = {n.input[i] for n in graph.node if n.op_type == "Resize" for i in (1, 2) if i < len(n.input)}
    casts = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            name = init.name
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}_fp16"))
            casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT,
                                          name=f"{name}_to_float"))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    return model


def export(net, card, fp32_path=None, fp16_path=None):
    """Write the model's files (by default in models/), each atomically: fp32 and fp16 variants, or, for a model
    whose spec says `compact`, one file with float16 weights computing in float32 (the engine runs it everywhere;
    the repository stays small enough to travel to a GPU machine)."""
    arch = card.get("architecture", "unet_small")
    default_fp32, default_fp16 = model_paths(card["task"], arch)
    fp32_path, fp16_path = fp32_path or default_fp32, fp16_path or default_fp16
    compact = MODELS[card["task"], arch].get("compact", False)
    net = copy.deepcopy(net).cpu().eval()  # traced on the CPU whatever the training ran on
    tmp = fp32_path + ".tmp"
    torch.onnx.export(ExportWrapper(net), torch.zeros(1, 3, 256, 256), tmp, dynamo=False, opset_version=OPSET,
                      input_names=["image"], output_names=["probabilities"], do_constant_folding=True,
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "probabilities": {0: "batch", 2: "height", 3: "width"}})
    model = onnx.load(tmp)
    set_metadata(model, card)
    onnx.checker.check_model(model)
    half = to_fp16(onnx.load(tmp))
    set_metadata(half, card)
    if compact:
        model = to_fp16_storage(model)
    check_against_torch(net, model, half)
    _atomic_save(model, fp32_path)
    if not compact:
        _atomic_save(half, fp16_path)
    os.remove(tmp)


# Probabilities may differ by this much from PyTorch's (the largest difference over a 256 px image): float
# rounding in fp32; float16 weights or computation, where a pixel on a steep edge of the road model moved by 0.025.
FP32_TOLERANCE, FP16_TOLERANCE = 1e-4, 5e-2


def check_against_torch(net, model, half, size=256):
    """Refuse to write files whose onnxruntime output strays from PyTorch's on the same image."""
    import onnxruntime as ort
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    net.eval()  # torch.onnx.export leaves modules in the training mode of the (new) wrapper
    with torch.no_grad():
        expected = torch.sigmoid(net.logits(x)).numpy()
    stored_half = any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    for onnx_model, tolerance in ((model, FP16_TOLERANCE if stored_half else FP32_TOLERANCE),
                                  (half, FP16_TOLERANCE)):
        session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(["probabilities"], {"image": x.numpy()})[0]
        error = float(np.abs(got - expected).max())
        if error > tolerance:
            raise SystemExit(f"The exported model differs from PyTorch's by {error:.2g} (> {tolerance:g}).")


def _atomic_save(model, path):
    onnx.save(model, path + ".part")
    os.replace(path + ".part", path)  # a reader never sees half a file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a .pt saved by training.train (weights + card)")
    # a checkpoint of a run started from another run's knows only its own run: the card tells the whole lineage
    ap.add_argument("--hardware", help="the card's training hardware, for all the stages")
    ap.add_argument("--minutes", type=float, help="the card's training minutes, all the stages together")
    ap.add_argument("--steps", help="the card's account of the stages and their steps")
    ap.add_argument("--tune", action="store_true",
                    help="tune the defaults again on the validation areas (buildings), e.g. after the tuner learnt a "
                         "new setting, and store the validation scores at them")
    args = ap.parse_args()
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    saved = ckpt["card"]
    for key, value in (("hardware", args.hardware), ("duration_minutes", args.minutes),
                       ("epochs_or_steps", args.steps)):
        if value is not None:
            saved["training"][key] = value
    arch = ckpt.get("arch", "unet_small")
    net = networks.build(arch, len(saved["outputs"]["channels"]))
    net.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    if args.tune:
        from training import evaluate

        tuned = evaluate.evaluate(evaluate.torch_runner(net))
        saved["defaults"] = evaluate.card_defaults(tuned)
        saved["scores"].update(validation_object_f1=round(tuned["f1"], 4),
                               validation_pixel_iou=round(tuned["validation_pixel_iou"], 4),
                               kampala_pixel_iou=round(tuned["kampala_pixel_iou"], 4))
    # the card is rebuilt, so changes to its fixed parts (tiling, licence) reach a re-export
    card = model_card(saved["defaults"], saved["scores"], saved["training"], saved.get("task", "buildings"), arch)
    export(net, card)
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
