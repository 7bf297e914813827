"""onnxruntime sessions: device choice, one cached session per model, batched probability maps.

onnxruntime-gpu lists CUDA even where no GPU can run it, and then quietly runs on the CPU
(ENVIRONMENT.md trap 10): only ``session.get_providers()`` says what runs, so that is what we report.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..choices import DEVICES
from .gpu import gpu_absence_reason, nvidia_gpu_present
from .modelcard import ModelCard, ModelCardError, read_card

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
    # each thread's IO bindings and buffers, one set per input shape (see _Bound); never shared between threads
    _threads: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    @property
    def on_gpu(self) -> bool:
        return self.provider in GPU_PROVIDERS

    @property
    def device_label(self) -> str:
        return {"CUDAExecutionProvider": "GPU (CUDA)", "TensorrtExecutionProvider": "GPU (TensorRT)"}.get(
            self.provider, "CPU"
        )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [N, C, H, W] (float32) for an input batch [N, bands, H, W].

        The array is the caller's until it lets go of it (and of every view of it): only then does its memory serve
        a later call again, so results are never overwritten under the caller's feet.
        """
        return _activated(self._run_io_bound(batch), self.card.activation)

    def _run_io_bound(self, batch: np.ndarray, staged: bool | None = None) -> np.ndarray:
        """The model's raw output for ``batch``, through this thread's IO binding for the batch's shape.

        ``staged`` (default: on a GPU) copies the input into a device buffer kept for the shape instead of binding
        the caller's host array; on the CPU it runs the GPU's code path with "cpu" buffers (what the tests check).
        """
        staged = self.on_gpu if staged is None else staged
        batch = np.ascontiguousarray(batch, dtype=_input_dtype(self.session))
        key = (staged, batch.shape)
        bound = _bound_for(self._threads, key)
        if bound is None:
            device = ("cuda" if self.on_gpu else "cpu") if staged else None
            bound = _remember(self._threads, key, _Bound(self.session, self.card, batch.shape, device))
        return bound.run(batch)


class _Lease:
    """Owner of a returned output array's memory: numpy points every view of the array here, so this object lives
    exactly as long as the caller holds any of them, and then hands the buffer back to its pool."""

    def __init__(self, buffer: np.ndarray, pool: list):
        self.buffer = buffer  # the interface below holds a bare address: this keeps the memory alive
        self.__array_interface__ = buffer.__array_interface__
        weakref.finalize(self, _give_back, pool, buffer)


def _give_back(pool: list, buffer: np.ndarray) -> None:
    if len(pool) < _POOL_SPARE:  # list.append is atomic: the last view may die on any thread
        pool.append(buffer)


_POOL_SPARE = 1  # host output buffers a shape keeps beyond those its callers hold: one is enough for a loop
_SHAPES_KEPT = 3  # input shapes a thread keeps bindings for: a run's batch, its last smaller one, and one more


class _Bound:
    """One IO binding for one input shape, set up once and reused by every call with that shape.

    The input is either copied into a device buffer allocated here (``device`` "cuda", or "cpu" to run the same code
    on the CPU) with ``update_inplace`` and bound once, or, with ``device`` None, the caller's host array is bound as it
    is (no copy: onnxruntime's CPU provider reads it in place). The output is bound to a host buffer from a pool kept
    here, into which onnxruntime writes the result (on a GPU: copies it out of its device arena, which it reuses
    without allocating); the buffer goes to the caller as the returned array and back to the pool when the caller is
    done with it. onnxruntime 1.31's Python API cannot copy a device OrtValue into a host buffer of our own
    (``copy_tensors`` finds no transfer for the built-in providers), so binding the output to the host buffer is
    what lets the result land in reused memory instead of a fresh allocation each call.
    """

    def __init__(self, session, card: ModelCard, shape: tuple, device: str | None):
        import onnxruntime as ort

        self.session, self.card, self.device = session, card, device
        self.binding = session.io_binding()
        self.output_dtype = _output_dtype(session)
        self.output_shape = None  # learnt from the first run
        self.pool: list = []
        self.input = None
        if device is not None:
            self.input = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), _input_dtype(session), device, 0)
            self.binding.bind_ortvalue_input(card.input_name, self.input)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self.input is not None:
            self.input.update_inplace(batch)
        else:
            self.binding.bind_input(self.card.input_name, "cpu", 0, batch.dtype, list(batch.shape),
                                    batch.ctypes.data)
        if self.output_shape is None:  # the first call: onnxruntime sizes the output, then it has its buffers
            self.binding.bind_output(self.card.output_name, "cpu")
            self.session.run_with_iobinding(self.binding)
            first = self.binding.copy_outputs_to_cpu()[0]
            self.output_shape = first.shape
            return first
        try:
            buffer = self.pool.pop()
        except IndexError:
            buffer = np.empty(self.output_shape, self.output_dtype)
        self.binding.bind_output(self.card.output_name, "cpu", 0, self.output_dtype, list(self.output_shape),
                                 buffer.ctypes.data)
        try:
            self.session.run_with_iobinding(self.binding)
        except BaseException:
            _give_back(self.pool, buffer)
            raise
        return np.asarray(_Lease(buffer, self.pool))


def _bound_for(threads: threading.local, key):
    kept = getattr(threads, "bound", None)
    if kept is None or key not in kept:
        return None
    kept[key] = kept.pop(key)  # most recently used last
    return kept[key]


def _remember(threads: threading.local, key, bound: _Bound) -> _Bound:
    kept = getattr(threads, "bound", None)
    if kept is None:
        kept = threads.bound = {}
    while len(kept) >= _SHAPES_KEPT:
        kept.pop(next(iter(kept)))  # the least recently used shape frees its device buffer
    kept[key] = bound
    return bound


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _input_dtype(session):
    return _NUMPY_TYPES.get(session.get_inputs()[0].type, np.float32)


def _output_dtype(session):
    return _NUMPY_TYPES.get(session.get_outputs()[0].type, np.float32)


def _activated(raw: np.ndarray, activation: str) -> np.ndarray:
    """``to_probabilities`` computed in ``raw``'s own memory where it can be (a float32 output: ours to reuse)."""
    if raw.dtype != np.float32:
        return to_probabilities(raw, activation)
    out = raw[:, None] if raw.ndim == 3 else raw
    if activation == "sigmoid":
        np.negative(out, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    elif activation == "softmax":
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
    return out


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
    taken = session.get_inputs()[0].type
    if taken not in _NUMPY_TYPES:  # the engine feeds stretched floats: a model of bytes would see garbage or fail
        raise ModelCardError(f"The model's input '{card.input_name}' takes {taken}; only float inputs (float32, "
                             "float16, float64) run here.")
    log.info("Model %s runs on %s", (half or path).name, actual)
    return Predictor(card=card, session=session, provider=actual, note=note, path=str(half or path))


def _session(path: Path, options, providers, ort):
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for every kind of bad file
        raise RuntimeUnavailableError(f"The model {path} cannot be loaded by onnxruntime: {error}") from error
