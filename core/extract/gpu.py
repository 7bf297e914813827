"""Whether an NVIDIA GPU answers on this machine and why onnxruntime cannot use it, with the standard library only:
the runtime explains from it why a run is on the CPU, and the status report says it where onnxruntime is missing."""

from __future__ import annotations

import ctypes.util
import os
import shutil


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver answers on this machine (its kernel module on Linux, its nvidia-smi on Windows)."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    return os.name == "nt" and shutil.which("nvidia-smi") is not None


def gpu_absence_reason(available_providers) -> str:
    """Why onnxruntime, offering ``available_providers``, cannot use a GPU here, as a user can act on it."""
    if "CUDAExecutionProvider" not in available_providers:
        return (
            "the installed onnxruntime is the CPU build (no CUDA provider); install onnxruntime-gpu "
            "(and remove onnxruntime) to use an NVIDIA GPU"
        )
    if ctypes.util.find_library("cuda") is None:
        return "no NVIDIA driver was found (libcuda is missing), so CUDA cannot start"
    return "onnxruntime could not start its CUDA provider (CUDA 12/13 and cuDNN 9 libraries must be installed)"


def nvidia_gpu_count() -> int:
    """How many NVIDIA GPUs the driver lists (Linux: one folder per GPU; elsewhere one when a driver answers)."""
    listed = "/proc/driver/nvidia/gpus"
    if os.path.isdir(listed):
        return len(os.listdir(listed))
    return int(nvidia_gpu_present())
