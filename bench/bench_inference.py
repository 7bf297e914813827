#!/usr/bin/env python3
"""Inference path against the device-only model speed (issue 20, "a GPU that never waits").

Side by side in one run, on the same session, at batch 1 and 4 (tiles of the model's own size, random inputs):

- plugin path: ``Predictor.run`` with host arrays in and out (what an extraction calls);
- device only: ``run_with_iobinding`` on an input and an output already bound on the device, no copies, no
  allocation (the model's own speed there);
- before issue 20: the inference call as it was (a plain ``session.run`` on the CPU; on a GPU a new IO binding each
  call, the input bound from the host, the output allocated on the device and copied to a new host array; with
  ``--model passthrough`` on the CPU, that GPU code is timed too, with "cpu" in place of the device, for the host side
  of its costs).

Each row is the best of ``--repeats`` rounds of ``--calls`` calls (the rows take turns), in km2/s of imagery at the
model's resolution, with the plugin path's share of the device-only speed. Target, on a GPU only: that share at batch
>= 4 is at least 0.70. On the CPU the share is printed, with no target (the copies there cost next to nothing
beside the model).

By default the CPU is measured, and the GPU too where onnxruntime can run on one, each in the precision the plugin
runs there (fp32 on the CPU, the fp16 variant on a GPU). ``--device gpu --precision fp16,fp32`` is what
bench/gpu_inference.py runs on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from paths import REPO

import numpy as np
from timing import best_time

from spacenet_toolkit.core.extract import runtime  # found through paths

MODEL = REPO / "models" / "buildings_unet_small.onnx"
PASSTHROUGH = "passthrough"  # --model passthrough: a model that only copies, to see what the calls around it cost
GPU_SHARE_TARGET = 0.70
TARGET_FROM_BATCH = 4


def passthrough_model(path: Path) -> Path:
    """A model whose output is its input's first two bands (a copy, next to no work), with the shipped building
    model's card: what remains of a call's time is the calls, copies and allocations around the model."""
    import onnx
    from onnx import TensorProto, helper
    from onnx_models import card  # the tests' tiny models, found through paths

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2, "height", "width"])
    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["probabilities"])]
    constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                 for name, value in (("starts", 0), ("ends", 2), ("axes", 1))]
    model = helper.make_model(helper.make_graph(nodes, "passthrough", [image], [output], constants),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key = "spacenet_model_card"
    entry.value = json.dumps(card(name="passthrough", input={"tile_size": 1024, "overlap": 256, "gsd_m": 0.3}))
    onnx.save(model, str(path))
    return path


def load(model: Path, device: str, precision: str, work: Path):
    """The plugin's predictor for ``model`` in ``precision``: fp16 is the ``.fp16.onnx`` file (what the plugin picks
    on a GPU), fp32 the plain file alone in a folder (so that no fp16 variant is found beside it)."""
    if str(model) == PASSTHROUGH:
        return runtime.load(passthrough_model(work / "passthrough.onnx"), device)
    if precision == "fp16":
        half = runtime.fp16_variant(model)
        if half is None:
            raise SystemExit(f"{model.name} has no fp16 variant beside it")
        return runtime.load(half, device)
    alone = work / "fp32" / model.name
    alone.parent.mkdir(exist_ok=True)
    if not alone.exists():
        shutil.copyfile(model, alone)
    return runtime.load(alone, device)


def device_only(predictor, batch: np.ndarray):
    """A call that runs the model on an input and an output already on the device (bound once, nothing copied)."""
    import onnxruntime as ort

    device = "cuda" if predictor.on_gpu else "cpu"
    session, card = predictor.session, predictor.card
    shape = predictor._run_io_bound(batch).shape  # the output's shape for this input
    dtype = runtime._output_dtype(session)
    value_in = ort.OrtValue.ortvalue_from_numpy(batch.astype(runtime._input_dtype(session)), device, 0)
    value_out = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input(card.input_name, value_in)
    binding.bind_ortvalue_output(card.output_name, value_out)
    keep = (value_in, value_out)

    def call(_batch):
        session.run_with_iobinding(binding)
        return keep

    return call


def before_issue_20(predictor, gpu_code: bool | None = None):
    """The inference call as Predictor.run made it before issue 20 (activation left out: "none" on these models):
    on the CPU a plain session.run; on a GPU (or with ``gpu_code``, its code on the CPU) a new IO binding each call,
    the input bound from the host, the output left to onnxruntime on the device and copied to a new host array."""
    session, card = predictor.session, predictor.card
    gpu_code = predictor.on_gpu if gpu_code is None else gpu_code
    if not gpu_code:
        return lambda batch: session.run([card.output_name], {card.input_name: batch})[0]
    device = "cuda" if predictor.on_gpu else "cpu"

    def call(batch):
        binding = session.io_binding()
        binding.bind_cpu_input(card.input_name, np.ascontiguousarray(batch))
        binding.bind_output(card.output_name, device)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return call


def seconds_per_call(rows: dict, batches: list, calls: int, repeats: int) -> dict:
    """Seconds per call of each row's call, the best of ``repeats`` rounds of ``calls`` calls over the prepared
    batches. The rows take turns round by round, so that other work on the machine disturbs them alike; a row's call
    given as (call, threads) is made from that many threads at once, each its share of the calls."""
    for call, _threads in rows.values():
        call(batches[0])  # warm-up: the first call per shape sets up buffers and onnxruntime's arenas

    def round_of(call, threads):
        if threads == 1:
            for k in range(calls):
                call(batches[k % len(batches)])
            return
        workers = [threading.Thread(target=lambda t=t: [call(batches[k % len(batches)])
                                                        for k in range(t, calls, threads)]) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    best = dict.fromkeys(rows, float("inf"))
    for _ in range(repeats):
        for name, (call, threads) in rows.items():
            seconds, _ = best_time(lambda call=call, threads=threads: round_of(call, threads), 1)
            best[name] = min(best[name], seconds / calls)
    return best


PLUGIN, DEVICE_ONLY = "plugin path (Predictor.run, host arrays)", "device only (bound on the device)"


def measure(predictor, batch_size: int, tile: int, calls: int, repeats: int, threads: int, extra=None) -> dict:
    """km2/s of each way to run the model, at ``batch_size`` tiles of ``tile`` px; ``extra(predictor, batches)`` may
    add rows ({name: (call, threads)})."""
    rng = np.random.default_rng(batch_size)
    bands = len(predictor.card.bands)
    batches = [rng.random((batch_size, bands, tile, tile), dtype=np.float32) for _ in range(2)]
    km2 = batch_size * (tile * predictor.card.gsd_m) ** 2 / 1e6
    rows = {
        PLUGIN: (predictor.run, 1),
        DEVICE_ONLY: (device_only(predictor, batches[0]), 1),
        "before issue 20": (before_issue_20(predictor), 1),
    }
    if not predictor.on_gpu and Path(predictor.path).stem == PASSTHROUGH:  # the host side of its costs, laid bare
        rows["before issue 20, its GPU code on this CPU"] = (before_issue_20(predictor, gpu_code=True), 1)
    if threads > 1:
        rows[f"plugin path, {threads} threads at once"] = (predictor.run, threads)
    if extra is not None:
        rows.update(extra(predictor, batches))
    return {name: km2 / seconds for name, seconds in seconds_per_call(rows, batches, calls, repeats).items()}


def report(predictor, precision: str, args, calls: int, repeats: int, extra=None) -> bool:
    tile = args.tile or predictor.card.tile_size
    print(f"[{predictor.device_label}, {precision}] {Path(predictor.path).name}: tiles of {tile} px at "
          f"{predictor.card.gsd_m} m ({(tile * predictor.card.gsd_m) ** 2 / 1e6:.4f} km2 each)")
    ok = True
    for batch_size in args.batches:
        speeds = measure(predictor, batch_size, tile, calls, repeats, args.threads, extra)
        plugin, alone = speeds[PLUGIN], speeds[DEVICE_ONLY]
        share = plugin / alone
        print(f"  batch {batch_size}:")
        for name, speed in speeds.items():
            print(f"    {name:46s} {speed:9.3f} km2/s")
        targeted = predictor.on_gpu and batch_size >= TARGET_FROM_BATCH
        verdict = (f"target >= {GPU_SHARE_TARGET:.2f}: {'met' if share >= GPU_SHARE_TARGET else 'NOT met'}"
                   if targeted else "no target here")
        print(f"    {'plugin path / device only':46s} {share:9.2f}   ({verdict})")
        if targeted:
            ok &= share >= GPU_SHARE_TARGET
    return ok


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: the CPU, and the GPU too where onnxruntime can run on one")
    parser.add_argument("--precision", default="",
                        help="fp32, fp16 or both, comma-separated (default the plugin's: fp32 on a CPU, fp16 on a GPU)")
    parser.add_argument("--model", type=Path, default=MODEL,
                        help=f"an ONNX model with its card, or {PASSTHROUGH!r}: a model that only copies its input")
    parser.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], default=[1, 4])
    parser.add_argument("--tile", type=int, default=0, help="tile size in px (default: the model's own)")
    parser.add_argument("--calls", type=int, default=0, help="calls per round (default: 1 on the CPU, 20 on a GPU)")
    parser.add_argument("--repeats", type=int, default=0, help="rounds, the best kept (default: 4 CPU, 5 GPU)")
    parser.add_argument("--threads", type=int, default=1, help="also time N threads calling Predictor.run at once")
    parser.add_argument("--quick", action="store_true", help="256 px tiles")
    return parser


def parse(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.quick and not args.tile:
        args.tile = 256
    if any(p.strip() not in ("fp32", "fp16") for p in args.precision.split(",") if p.strip()):
        parser.error("--precision takes fp32 and fp16")
    return args


def measure_device(args, device: str, work: Path, extra=None, check=None) -> bool:
    """Every precision asked for on ``device``: ``check(predictor)`` first where given (False fails the run), then
    the rows side by side. False where a target is missed or the device cannot run the model."""
    gpu = device == "gpu"
    calls = args.calls or (20 if gpu else 1)  # a CPU shared with other work: many short rounds, the best kept
    repeats = args.repeats or (5 if gpu else 4)
    ok = True
    for precision in [p.strip() for p in (args.precision or ("fp16" if gpu else "fp32")).split(",") if p.strip()]:
        try:
            predictor = load(args.model, device, precision, work)
        except runtime.RuntimeUnavailableError as error:
            print(f"{precision} on {device}: {error}")
            return False
        started = time.perf_counter()
        if check is not None:
            ok &= check(predictor, args.tile or predictor.card.tile_size)
        ok &= report(predictor, precision, args, calls, repeats, extra)
        print(f"  ({time.perf_counter() - started:.0f} s)")
    return ok


def main(argv) -> int:
    args = parse(build_parser(), argv)
    devices = [args.device] if args.device != "auto" else ["cpu"] + (["gpu"] if runtime.gpu_may_run() else [])
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as folder:
        for device in devices:
            ok &= measure_device(args, device, Path(folder))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
