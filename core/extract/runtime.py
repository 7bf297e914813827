"""onnxruntime sessions: device choice, one cached session per model, batched probability maps.

onnxruntime-gpu lists CUDA even where no GPU can run it, and then quietly runs on the CPU
(ENVIRONMENT.md trap 10): only ``session.get_providers()`` says what runs, so that is what we report.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import DEVICES
from .gpu import gpu_absence_reason, nvidia_gpu_present
from .modelcard import ModelCard, read_card

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class RuntimeUnavailableError(RuntimeError):
    """The requested device cannot run the model; the message says why and what to do."""


@dataclass(frozen=True)
class Predictor:
    """A loaded model: its card, its session, and where it actually runs."""

    card: ModelCard
    session: object
    provider: str  # the provider that runs the model, from session.get_providers()
    note: str  # why a GPU is not used, or "" when nothing needs saying
    path: str

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def device_label(self) -> str:
        return {"CUDAExecutionProvider": "GPU (CUDA)", "TensorrtExecutionProvider": "GPU (TensorRT)"}.get(
            self.provider, "CPU"
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [N, C, H, W] (float32) for an input batch [N, bands, H, W]."""
        if self.on_gpu:
            raw = self._run_io_bound(batch)
        else:
            raw = self.session.run([self.card.output_name], {self.card.input_name: batch})[0]
        return to_probabilities(raw, self.card.activation)

    def _run_io_bound(self, batch: np.ndarray) -> np.ndarray:
        # IO binding hands the input to the device once and lets onnxruntime allocate the output there,
        # instead of the per-call copies and allocations of session.run.
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.card.input_name, np.ascontiguousarray(batch))
        binding.bind_output(self.card.output_name, "cuda" if self.on_gpu else "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]


def to_probabilities(raw: np.ndarray, activation: str) -> np.ndarray:
    """Model output as float32 probabilities [N, C, H, W] (a missing channel axis is added)."""
    out = np.asarray(raw, dtype=np.float32)
    if out.ndim == 3:
        out = out[:, None]
    if activation == "sigmoid":
        out = 1.0 / (1.0 + np.exp(-out))
    elif activation == "softmax":
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


_HINTS_GIVEN: set = set()


def gpu_hint(predictor: Predictor) -> str:
    """The predictor's note (why a GPU that is here is not used) the first time this session, then ""."""
    if not predictor.note or predictor.note in _HINTS_GIVEN:
        return ""
    _HINTS_GIVEN.add(predictor.note)
    return predictor.note


def _gpu_absence_reason(ort) -> str:
    """Why onnxruntime cannot use a GPU here, as a user can act on it."""
    return gpu_absence_reason(ort.get_available_providers())


def _providers_for(device: str, ort) -> list:
    available = ort.get_available_providers()
    providers = []
    if device in ("auto", "gpu"):
        # TensorRT only where its library is really present: otherwise it fails noisily on every session.
        if "TensorrtExecutionProvider" in available and ctypes.util.find_library("nvinfer"):
            providers.append("TensorrtExecutionProvider")
        if "CUDAExecutionProvider" in available:
            providers.append("CUDAExecutionProvider")
    providers.append("CPUExecutionProvider")
    return providers


def gpu_may_run() -> bool:
    """Whether a GPU session could start here (onnxruntime's CUDA provider and an NVIDIA driver), without starting
    one: decides whether a model's fp16 variant, used only on a GPU, is worth downloading."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers() and ctypes.util.find_library("cuda") is not None


def fp16_variant(model_path: Path) -> Path | None:
    """``name.fp16.onnx`` beside ``name.onnx``: the half-precision variant used on GPUs."""
    candidate = model_path.with_name(model_path.stem + ".fp16.onnx")
    return candidate if not model_path.stem.endswith(".fp16") and candidate.is_file() else None


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def load(model_path, device: str = "auto", cpu_threads: int = 0) -> Predictor:
    """The predictor for ``model_path`` on ``device`` (auto, gpu, cpu); sessions are cached per file version.

    Raises RuntimeUnavailableError when ``device`` is "gpu" and no GPU can run the model.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    path = Path(model_path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, device, cpu_threads)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _create(path, device, cpu_threads)
        return _CACHE[key]


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _create(path: Path, device: str, cpu_threads: int) -> Predictor:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # a CUDA provider that fails to start is reported by us, not as stderr noise

    providers = _providers_for(device, ort)
    session = _session(path, options, providers, ort)
    actual = session.get_providers()[0]
    note = ""
    if device != "cpu" and actual not in GPU_PROVIDERS:
        reason = _gpu_absence_reason(ort)
        if device == "gpu":
            raise RuntimeUnavailableError(f"A GPU was requested but cannot be used: {reason}. Choose CPU or auto.")
        if nvidia_gpu_present():  # where no NVIDIA GPU answers, running on the CPU needs no explaining
            note = f"Running on the CPU: {reason}."
    half = fp16_variant(path) if actual in GPU_PROVIDERS else None
    if half is not None:
        session = _session(half, options, providers, ort)
    card = read_card(
        session.get_modelmeta().custom_metadata_map,
        [(i.name, i.shape) for i in session.get_inputs()],
        [(o.name, o.shape) for o in session.get_outputs()],
    )
    log.info("Model %s runs on %s", (half or path).name, actual)
    return Predictor(card=card, session=session, provider=actual, note=note, path=str(half or path))


def _session(path: Path, options, providers, ort):
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for every kind of bad file
        raise RuntimeUnavailableError(f"The model {path} cannot be loaded by onnxruntime: {error}") from error
