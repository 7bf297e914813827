"""Recover a trainable checkpoint from an exported model, to train a shipped model further when its PyTorch
checkpoint is gone.

The export folds each BatchNorm into the convolution before it. Here every Conv node, in graph order, goes back
into the Conv2d that runs in the same position, and each BatchNorm is set so that the network computes exactly
what the file computes: in eval mode (x - mean) / std * std + mean + bias = x + bias, with mean and std measured
on training crops, so that train mode also normalises as it would have on such data.

    training/.venv/bin/python -m training.from_onnx models/buildings_effnet_lite0.onnx --out init.pt
    training/.venv/bin/python -m training.train --init init.pt --lr 3e-4 ...
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from training import augment, model, train
from training.paths import CACHE_DIR

CALIBRATION_BATCHES = 8  # of 8 crops: the mean and spread of each BatchNorm's input
TOLERANCE = 1e-3  # largest difference in probability from the file, weights rounded to float16 (2e-4 to 5e-4 measured)


def onnx_convolutions(graph) -> list:
    """(weight, bias or None) of every Conv node in graph order, as float32 arrays (float16 storage cast)."""
    stored = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def initializer(name):
        while name not in stored:  # float16 storage: a Cast (or Identity) between the initializer and the Conv
            node = producer[name]
            if node.op_type not in ("Cast", "Identity"):
                raise ValueError(f"Conv input {name} comes from a {node.op_type} node, not from stored weights.")
            name = node.input[0]
        return stored[name]

    return [(initializer(node.input[1]), initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None)
            for node in graph.node if node.op_type == "Conv"]


def convolutions_in_run_order(net) -> list:
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m))
             for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net.logits(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    return order


def batchnorm_after(net) -> dict:
    """Conv2d -> the BatchNorm2d that follows it in the same container."""
    following = {}
    for parent in net.modules():
        children = list(parent.children())
        for first, second in zip(children, children[1:]):
            if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                following[first] = second
    return following


def load_folded(net, stored) -> dict:
    """Put the file's folded weights (`onnx_convolutions`) into `net` (BatchNorms the identity plus the folded
    bias); returns the conv -> BatchNorm map."""
    convs, bns = convolutions_in_run_order(net), batchnorm_after(net)
    if len(convs) != len(stored):
        raise ValueError(f"The file has {len(stored)} convolutions, the architecture {len(convs)}: another network.")
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, stored):
            if tuple(conv.weight.shape) != weight.shape:
                raise ValueError(f"Convolution shapes differ ({tuple(conv.weight.shape)} vs {weight.shape}).")
            bn = bns.get(conv)
            if bias is None or (bn is None and conv.bias is None):
                raise ValueError("A convolution's bias has no place in the architecture: another network.")
            conv.weight.copy_(torch.from_numpy(weight))
            if bn is None:
                conv.bias.copy_(torch.from_numpy(bias))
                continue
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    return bns


def calibrate(net, bns, crops) -> None:
    """Re-express each BatchNorm with the mean and spread of its input on `crops` (a list of batches), the same
    function in eval mode."""
    seen = {bn: [] for bn in bns.values()}
    hooks = [bn.register_forward_hook(lambda m, i, o: seen[m].append((i[0].mean((0, 2, 3)),
                                                                       i[0].var((0, 2, 3), unbiased=False))))
             for bn in seen]
    net.eval()
    with torch.no_grad():
        for batch in crops:
            net.logits(batch)
        for hook in hooks:
            hook.remove()
        for bn, stats in seen.items():
            mean = torch.stack([m for m, _ in stats]).mean(0)
            var = torch.stack([v for _, v in stats]).mean(0)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.add_(mean)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)


def largest_difference(net, onnx_path) -> float:
    """Largest difference in probability between `net` (eval mode) and the file, on one random 256 px image."""
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = torch.sigmoid(net.eval().logits(torch.from_numpy(x))).numpy()
    return float(np.abs(expected - got).max())


def recover(onnx_path, arch, cache_dir, batches=CALIBRATION_BATCHES, seed=0):
    """(state dict in float16, largest difference of the network it holds from the file)."""
    stored = onnx_convolutions(onnx.load(onnx_path).graph)
    outputs = stored[-1][0].shape[0]  # the head's channels
    net = model.build(arch, outputs).eval()  # eval: the forward passes below must not move BatchNorm statistics
    bns = load_folded(net, stored)
    blocks = train.load_blocks(cache_dir, train.CHANNELS["buildings" if outputs == 2 else "roads"])
    sampler = augment.BlockSampler(blocks, np.array([b["weight"] for b in blocks]), torch.device("cpu"), seed=seed)
    calibrate(net, bns, [sampler.batch(8)[0] for _ in range(batches)])
    # float16, as training.pack stores initial weights: half the size of what travels to a GPU machine
    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return state, largest_difference(net, onnx_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="an ONNX file exported by training.export")
    ap.add_argument("--out", required=True, help="the checkpoint to write (for training.train --init)")
    ap.add_argument("--arch", choices=model.ARCHITECTURES, default="effnet_lite0")
    ap.add_argument("--cache", default=CACHE_DIR, help="training crops to measure each BatchNorm's input on")
    ap.add_argument("--calibration-batches", type=int, default=CALIBRATION_BATCHES)
    args = ap.parse_args()
    try:
        state, difference = recover(args.model, args.arch, args.cache, args.calibration_batches)
    except ValueError as error:
        raise SystemExit(f"{args.model}: {error}") from None
    if difference > TOLERANCE:
        raise SystemExit(f"The recovered network differs from {args.model} by {difference:.2g}: not written.")
    torch.save({"model": state, "arch": args.arch, "step": 0, "from": args.model}, args.out + ".part")
    os.replace(args.out + ".part", args.out)  # never half a checkpoint under the name
    print(json.dumps({"written": args.out, "largest_difference": difference}))


if __name__ == "__main__":
    main()
