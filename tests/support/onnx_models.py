"""Tiny ONNX models with known behaviour, built with the onnx package for engine tests.

``brightness_model``: building probability = sigmoid(gain * (local mean brightness - 0.5)) over a
window of ``context`` pixels, so a pixel's output depends on its neighbours (what makes tile seams
visible), plus an "interior" channel from a wider window. It carries our model card.
"""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper


def card(**overrides) -> dict:
    value = {
        "schema": 1,
        "name": "brightness_test_model",
        "version": "0.0.1",
        "task": "buildings",
        "input": {
            "name": "image",
            "bands": ["red", "green", "blue"],
            "tile_size": 256,
            "overlap": 32,
            "size_multiple": 32,
            "gsd_m": 0.5,
            "normalisation": {"stretch": "percentile", "low_percentile": 2.0, "high_percentile": 98.0},
        },
        "outputs": {"name": "probabilities", "activation": "none", "channels": ["building", "interior"]},
        "defaults": {"threshold": 0.5, "min_area_m2": 0.0, "interior_threshold": 0.5},
    }
    for key, val in overrides.items():
        if isinstance(val, dict) and isinstance(value.get(key), dict):
            value[key] = {**value[key], **val}
        else:
            value[key] = val
    return value


def brightness_model(path, model_card: dict | None = None, bands: int = 3, context: int = 9, gain: float = 12.0,
                     fixed_size: int | None = None, metadata: dict | None = None):
    """Write the model to ``path``; ``model_card`` None writes our default card, {} writes none."""
    size = fixed_size or "height"
    width = fixed_size or "width"
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", bands, size, width])
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2, size, width])
    half, wide = context // 2, (3 * context) // 2
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["gray"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["local"], kernel_shape=[context, context],
                         pads=[half] * 4, count_include_pad=1),
        helper.make_node("AveragePool", ["gray"], ["wide"], kernel_shape=[2 * wide + 1, 2 * wide + 1],
                         pads=[wide] * 4, count_include_pad=1),
        helper.make_node("Sub", ["local", "half"], ["local_c"]),
        helper.make_node("Sub", ["wide", "interior_level"], ["wide_c"]),
        helper.make_node("Mul", ["local_c", "gain"], ["local_g"]),
        helper.make_node("Mul", ["wide_c", "gain"], ["wide_g"]),
        helper.make_node("Concat", ["local_g", "wide_g"], ["logits"], axis=1),
        helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
    ]
    initializers = [
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("interior_level", TensorProto.FLOAT, [], [0.6]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
    ]
    graph = helper.make_graph(nodes, "brightness", [image], [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if model_card is None:
        model_card = card()
    props = dict(metadata or {})
    if model_card:
        props["spacenet_model_card"] = json.dumps(model_card)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
