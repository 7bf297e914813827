#!/usr/bin/env python3
"""Issue 20 on a lent GPU machine: the inference path against the device-only model speed, fp16 and fp32.

Installs nothing. It expects onnxruntime-gpu to be importable: on the lent machine, whose image has only PyTorch and
the CPU onnxruntime, ship it with ../shared/hooks/ort-gpu-chunks.sh (see that script's header) and run, in the last
of its calls,

    PYTHONPATH=/tmp/ortsite python3 bench/gpu_inference.py

PyTorch is imported first, as that header says: it loads the CUDA and cuDNN libraries the CUDA provider links to.
For each precision it first checks that the kept buffers give the same outputs as a plain ``session.run`` on the same
session (batches of 1, 3, 4, then 2; every result held until the end, so none may be overwritten), then prints the
side-by-side rows of bench/bench_inference.py at batch 1 and 4 (target: plugin path / device only >= 0.70 at batch
>= 4), with two rows more for what could come next: two threads calling ``Predictor.run`` at once (copies of one
batch overlapping the other's model), and host buffers in pinned memory (PyTorch's, where it has CUDA).

``--device cpu`` runs the same on the CPU (no PyTorch needed), e.g. ``bench/gpu_inference.py --device cpu --quick``.
Exit status 1 when a check fails or the target is missed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

try:  # first: the CUDA provider finds the CUDA and cuDNN libraries PyTorch has loaded
    import torch
except ImportError:
    torch = None

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def plugin_importable(work: Path) -> None:
    """The checkout as the package ``spacenet_toolkit``: through the link `make setup` builds, or, on a machine that
    has none (a lent GPU machine gets the tracked tree only), through a link made here."""
    if (REPO / ".build" / "plugins" / "spacenet_toolkit").exists():
        return
    folder = work / "plugins"
    folder.mkdir()
    os.symlink(REPO, folder / "spacenet_toolkit")
    sys.path.insert(0, str(folder))


def describe(runtime) -> None:
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__} ({Path(ort.__file__).parent}), providers: "
          f"{', '.join(ort.get_available_providers())}")
    if torch is None:
        print("PyTorch: not importable")
    else:
        cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "absent"
        print(f"PyTorch {torch.__version__}, CUDA device: {cuda}")


def check_outputs(predictor, tile: int) -> bool:
    """Predictor.run against a plain session.run on the same session: batches of 1, 3, 4 and then 2 (a shape change
    after a larger one), each result held until all are compared."""
    import numpy as np

    from spacenet_toolkit.core.extract import runtime

    session, card = predictor.session, predictor.card
    rng = np.random.default_rng(20)
    batches = [rng.random((n, len(card.bands), tile, tile), dtype=np.float32) for n in (1, 3, 4, 4, 2)]
    results = [predictor.run(batch) for batch in batches]
    worst = 0.0
    for batch, result in zip(batches, results):
        plain = runtime.to_probabilities(session.run([card.output_name], {card.input_name: batch})[0], card.activation)
        worst = max(worst, float(np.abs(result - plain).max()))
    ok = worst <= 1e-3
    print(f"  buffers check (batches 1, 3, 4, 4, 2 against session.run): largest difference {worst:.2e} "
          f"({'ok' if ok else 'FAILED'})")
    return ok


def pinned_rows(predictor, batches) -> dict:
    """A row with the host buffers in pinned memory (PyTorch's): the batch copied into a pinned input the binding
    reads, the output written into a pinned buffer. For comparison only: the plugin itself does not use PyTorch."""
    import numpy as np

    from spacenet_toolkit.core.extract import runtime

    if torch is None or not torch.cuda.is_available() or not predictor.on_gpu:
        return {}
    session, card = predictor.session, predictor.card
    out_shape = tuple(predictor._run_io_bound(batches[0]).shape)
    out_dtype = runtime._output_dtype(session)
    torch_types = {np.float32: torch.float32, np.float16: torch.float16}
    pinned_in = torch.empty(batches[0].shape, dtype=torch.float32, pin_memory=True).numpy()
    pinned_out = torch.empty(out_shape, dtype=torch_types[out_dtype], pin_memory=True).numpy()
    binding = session.io_binding()
    binding.bind_input(card.input_name, "cpu", 0, np.float32, list(pinned_in.shape), pinned_in.ctypes.data)
    binding.bind_output(card.output_name, "cpu", 0, out_dtype, list(out_shape), pinned_out.ctypes.data)

    def call(batch):
        np.copyto(pinned_in, batch)
        session.run_with_iobinding(binding)
        return pinned_out

    return {"pinned host buffers (PyTorch's, to compare)": (call, 1)}


def main(argv) -> int:
    with tempfile.TemporaryDirectory(prefix="gpu-inference-") as folder:
        work = Path(folder)
        plugin_importable(work)
        sys.path.insert(0, str(HERE))
        import bench_inference

        from spacenet_toolkit.core.extract import runtime

        parser = bench_inference.build_parser()
        parser.description = __doc__.splitlines()[0]
        parser.set_defaults(device="gpu", precision="fp16,fp32", threads=2)
        args = bench_inference.parse(parser, argv)
        if args.device == "auto":
            args.device = "gpu" if runtime.gpu_may_run() else "cpu"
        describe(runtime)
        ok = bench_inference.measure_device(args, args.device, work, extra=pinned_rows, check=check_outputs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
