"""The half-precision variant of an ONNX model (``NAME.fp16.onnx``), and a model card written into a file.

Runs where the onnx package is (the training environment, the adaptation worker); the engine only reads.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CARD_KEY = "spacenet_model_card"


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float16 weights and computation; float32 `image` in and `probabilities` out (a Cast after the input and
    before the output), so the engine feeds it as it feeds the float32 file.

    Resize's roi and scales must stay float32 (opset 17 allows no other type), so the tensors feeding them are
    left alone.
    """
    half = onnx.ModelProto()
    half.CopyFrom(model)
    graph = half.graph
    keep_fp32 = {n.input[i] for n in graph.node if n.op_type == "Resize" for i in (1, 2) if i < len(n.input)}
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] not in keep_fp32:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
        for attr in node.attribute:  # e.g. Cast nodes emitted by the exporter, or float16 storage cast up
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    inp, out = graph.input[0].name, graph.output[0].name
    for node in graph.node:
        node.input[:] = [f"{inp}_fp16" if name == inp else name for name in node.input]
        node.output[:] = [f"{out}_fp16" if name == out else name for name in node.output]
    graph.node.insert(0, helper.make_node("Cast", [inp], [f"{inp}_fp16"], to=TensorProto.FLOAT16, name="cast_in"))
    graph.node.append(helper.make_node("Cast", [f"{out}_fp16"], [out], to=TensorProto.FLOAT, name="cast_out"))
    del graph.value_info[:]
    half = onnx.shape_inference.infer_shapes(half)
    onnx.checker.check_model(half)
    return half


def with_card(model: onnx.ModelProto, card: dict) -> onnx.ModelProto:
    """``model`` with ``card`` as its model card; the Deepness plugin's threshold follows the card's default, the
    other metadata stay."""
    entries = {prop.key: prop.value for prop in model.metadata_props}
    entries[CARD_KEY] = json.dumps(card)
    if "seg_thresh" in entries and "threshold" in card.get("defaults", {}):
        entries["seg_thresh"] = json.dumps(card["defaults"]["threshold"])
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    if card.get("description"):
        model.doc_string = card["description"]
    return model


def card_of(model: onnx.ModelProto) -> dict:
    """The model card stored in ``model`` ({} when it has none, e.g. a Deepness model)."""
    for prop in model.metadata_props:
        if prop.key == CARD_KEY:
            return json.loads(prop.value)
    return {}


def save_atomic(model: onnx.ModelProto, path: str) -> None:
    """Write ``model`` so that a reader never sees half a file."""
    onnx.save(model, path + ".part")
    os.replace(path + ".part", path)
