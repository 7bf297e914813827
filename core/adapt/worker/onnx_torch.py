"""An ONNX segmentation graph as a trainable PyTorch module, and its trained weights written back into the graph.

Adapting a model changes its weights only: the graph the engine runs, its inputs, outputs, metadata and
variants stay those of the base model. So the graph is interpreted node by node with ``torch.nn.functional``,
every floating-point initializer becoming a ``torch.nn.Parameter`` under its own name, and after training each
parameter goes back into the initializer it came from (in that initializer's precision: weights stored in float16
stay float16). A converter such as onnx2torch rebuilds the graph as new modules and loses that one-to-one map.

The operators are those of convolutional segmentation networks exported by PyTorch (the shipped models use
Conv, Relu, Clip, MaxPool, Resize, Concat, Add, Mul, Sub, Cast, Constant, Sigmoid); any other is refused by name
before training starts. Runs in the training environment: torch, numpy and onnx, nothing of the plugin.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F  # noqa: N812 - the PyTorch convention
from onnx import helper, numpy_helper

_FLOAT_TYPES = {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.FLOAT16: torch.float16,
                onnx.TensorProto.DOUBLE: torch.float64}
_CAST_TYPES = {**_FLOAT_TYPES, onnx.TensorProto.INT64: torch.int64, onnx.TensorProto.INT32: torch.int32}
SUPPORTED = ("Add", "Cast", "Clip", "Concat", "Constant", "Conv", "Identity", "MaxPool", "Mul", "Relu", "Resize",
             "Sigmoid", "Sub")


class UnsupportedModelError(ValueError):
    """The graph holds something this interpreter cannot train; the message names it."""


class OnnxModule(torch.nn.Module):
    """``forward(image)`` -> the graph's output before its final Sigmoid (logits) when it ends in one, else the
    output itself (``ends_in_sigmoid`` says which)."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        graph = model.graph
        unsupported = sorted({node.op_type for node in graph.node} - set(SUPPORTED))
        if unsupported:
            raise UnsupportedModelError(
                f"The model uses ONNX operator(s) {', '.join(unsupported)}, which adaptation cannot train (it "
                f"takes {', '.join(SUPPORTED)}): adapt a model exported from PyTorch as the shipped ones are.")
        inputs = [i.name for i in graph.input if i.name not in {init.name for init in graph.initializer}]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise UnsupportedModelError("The model must have one image input and one output to be adapted.")
        self.input_name, output = inputs[0], graph.output[0].name
        self.nodes = list(graph.node)
        self.params = torch.nn.ParameterDict()
        self.names = {}  # ParameterDict key -> initializer name (keys may not contain '.')
        self.constants = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init)
            if init.data_type in _FLOAT_TYPES:
                key = f"p{len(self.names)}"
                self.names[key] = init.name
                # trained in float32 whatever the storage; the graph's Cast nodes turn float16 storage into float32
                self.params[key] = torch.nn.Parameter(torch.from_numpy(array.astype(np.float32)))
            else:
                self.constants[init.name] = torch.from_numpy(array.copy())
        self._by_name = {name: key for key, name in self.names.items()}
        last = next(node for node in reversed(self.nodes) if output in node.output)
        self.ends_in_sigmoid = last.op_type == "Sigmoid"
        self.output = last.input[0] if self.ends_in_sigmoid else output
        # Shape-independent constants of Constant nodes, evaluated once
        for node in self.nodes:
            if node.op_type == "Constant":
                value = helper.get_attribute_value(node.attribute[0])
                self.constants[node.output[0]] = torch.from_numpy(numpy_helper.to_array(value).copy())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: image, "": None}
        for node in self.nodes:
            if node.op_type == "Constant":
                continue
            args = [self._value(name, values) for name in node.input]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            values[node.output[0]] = _run(node.op_type, args, attrs, image.dtype)
            if node.output[0] == self.output:
                break
        return values[self.output]

    def _value(self, name, values):
        if name in values:
            return values[name]
        key = self._by_name.get(name)
        if key is not None:
            return self.params[key]
        return self.constants[name]

    def write_back(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """A copy of ``model`` whose initializers hold this module's weights, each in its stored precision."""
        adapted = onnx.ModelProto()
        adapted.CopyFrom(model)
        for init in adapted.graph.initializer:
            key = self._by_name.get(init.name)
            if key is None:
                continue
            stored = numpy_helper.to_array(init).dtype
            weights = self.params[key].detach().cpu().numpy().astype(stored)
            init.CopyFrom(numpy_helper.from_array(weights, init.name))
        return adapted


def _run(op, args, attrs, dtype):
    if op == "Conv":
        x, weight = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        pads = list(attrs.get("pads", [0] * 4))
        half = len(pads) // 2
        symmetric = pads[:half] == pads[half:]
        if not symmetric:  # ONNX pads: begins then ends; F.pad: last axis first
            x = F.pad(x, [p for axis in reversed(range(half)) for p in (pads[axis], pads[axis + half])])
        return F.conv2d(x, weight, bias, stride=tuple(attrs.get("strides", (1, 1))),
                        padding=tuple(pads[:half]) if symmetric else 0,
                        dilation=tuple(attrs.get("dilations", (1, 1))), groups=attrs.get("group", 1))
    if op == "Relu":
        return F.relu(args[0])
    if op == "Sigmoid":
        return torch.sigmoid(args[0])
    if op == "Clip":
        low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
        high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
        return torch.clamp(args[0], min=_scalar(low), max=_scalar(high))
    if op == "MaxPool":
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise UnsupportedModelError("MaxPool with asymmetric padding cannot be adapted.")
        return F.max_pool2d(args[0], tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", attrs["kernel_shape"])),
                            padding=tuple(pads[:2]), ceil_mode=bool(attrs.get("ceil_mode", 0)))
    if op == "Resize":
        return _resize(args, attrs)
    if op == "Concat":
        return torch.cat(args, dim=attrs["axis"])
    if op == "Add":
        return args[0] + args[1]
    if op == "Sub":
        return args[0] - args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "Identity":
        return args[0]
    if op == "Cast":
        target = _CAST_TYPES.get(attrs["to"])
        if target is None:
            raise UnsupportedModelError(f"Cast to ONNX type {attrs['to']} cannot be adapted.")
        # float casts follow the run's precision: a float16-stored weight is trained in float32
        return args[0].to(dtype if target in _FLOAT_TYPES.values() else target)
    raise UnsupportedModelError(f"ONNX operator {op} cannot be adapted.")


def _scalar(value):
    if value is None:
        return None
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _resize(args, attrs):
    x = args[0]
    scales = args[2] if len(args) > 2 and args[2] is not None and args[2].numel() else None
    sizes = args[3] if len(args) > 3 and args[3] is not None else None
    mode = _text(attrs.get("mode", b"nearest"))
    transform = _text(attrs.get("coordinate_transformation_mode", b"half_pixel"))
    if sizes is not None:
        size = tuple(int(s) for s in sizes.tolist()[2:])
    elif scales is not None:
        size = tuple(int(np.floor(d * s)) for d, s in zip(x.shape[2:], scales.tolist()[2:]))
    else:
        raise UnsupportedModelError("A Resize without scales or sizes cannot be adapted.")
    if mode == "linear":
        if transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            raise UnsupportedModelError(f"Resize with coordinate_transformation_mode {transform} cannot be adapted.")
        return F.interpolate(x, size=size, mode="bilinear", align_corners=transform == "align_corners")
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    raise UnsupportedModelError(f"Resize mode {mode} cannot be adapted.")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
