"""The Python that trains: one with PyTorch and onnx, run as a subprocess so QGIS never imports PyTorch.

Either the interpreter named in the plugin's settings (a separate environment, such as the one
`make train-setup` builds: training/.venv/bin/python), or QGIS's own Python when PyTorch is installed there.
Inside QGIS and qgis_process ``sys.executable`` may be QGIS itself or another python3 on the PATH, so QGIS's
interpreter is looked up beside its standard library (core.python_interpreter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import dependencies
from ..python_interpreter import this_python

WORKER = Path(__file__).resolve().parent / "worker" / "finetune.py"
CHECK_SECONDS = 180  # a first `import torch` from a cold disk takes a while
HOW_TO_GET_IT = ("Install PyTorch and onnx into QGIS's Python (SpaceNet > Python dependencies…, optional "
                 "extras torch and onnx), or name the python of an environment that has them in the plugin's "
                 "settings (Settings > Options > Processing > SpaceNet, or the setting spacenet/training_python; "
                 "`make train-setup` builds one: training/.venv/bin/python).")


class TrainingPythonError(RuntimeError):
    """No Python that can train; the message says how to get one."""


@dataclass(frozen=True)
class TrainingPython:
    executable: str
    torch: str  # version
    cuda: bool
    gpu: str  # the GPU's name, "" without one
    own: bool  # QGIS's own interpreter (its packages found through this process's sys.path)

    def environment(self) -> dict:
        """The subprocess's environment: no preloaded QGIS library; for QGIS's own interpreter, the paths QGIS
        added at run time; for another environment, none of this process's paths."""
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONHOME")}
        if self.own:
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        else:
            env.pop("PYTHONPATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def describe(self) -> str:
        where = "QGIS's Python" if self.own else self.executable
        device = f"GPU {self.gpu}" if self.cuda else "CPU only"
        return f"PyTorch {self.torch} in {where} ({device})"


def find(configured: str = "") -> TrainingPython:
    """The training Python: ``configured`` (a path) when given, else this Python when it has PyTorch and onnx.
    Raises TrainingPythonError naming what is missing and how to get it."""
    configured = (configured or "").strip()
    if configured:
        if not os.path.isfile(configured) or not os.access(configured, os.X_OK):
            raise TrainingPythonError(f"The training Python '{configured}' (plugin setting) is not a program "
                                      f"that can run. {HOW_TO_GET_IT}")
        return _checked(configured, own=False)
    absent = dependencies.missing(["torch", "onnx"])
    if absent:
        raise TrainingPythonError(f"Adapting a model needs PyTorch and onnx; {' and '.join(absent)} "
                                  f"{'is' if len(absent) == 1 else 'are'} missing from QGIS's Python. {HOW_TO_GET_IT}")
    return _checked(this_python(), own=True)


def _checked(executable: str, own: bool) -> TrainingPython:
    probe = TrainingPython(executable, "", False, "", own)
    try:
        done = subprocess.run([executable, str(WORKER), "check"], capture_output=True, text=True,
                              timeout=CHECK_SECONDS, env=probe.environment())
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TrainingPythonError(f"The training Python {executable} did not answer ({error}). {HOW_TO_GET_IT}") \
            from error
    answer = _last_json(done.stdout)
    if done.returncode != 0 or answer is None:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TrainingPythonError(f"The training Python {executable} cannot train: {last}. {HOW_TO_GET_IT}")
    return TrainingPython(executable, answer["torch"], bool(answer["cuda"]), answer.get("gpu", ""), own)


def _last_json(text: str):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None
