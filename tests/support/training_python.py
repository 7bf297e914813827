"""The training environment `make setup` builds (training/.venv: PyTorch CPU, onnx): the Python the adaptation
tests train with, as a mapper names it in the plugin's settings. SPACENET_TRAINING_PYTHON names another one: on
QGIS 3.40 (scripts/qgis340.sh) an environment that reaches training/.venv's packages from inside the chroot."""

import os
from pathlib import Path

TRAINING_PYTHON = Path(__file__).resolve().parents[2] / "training" / ".venv" / "bin" / "python"


def training_python() -> str:
    named = os.environ.get("SPACENET_TRAINING_PYTHON")
    if named:
        assert Path(named).is_file(), f"SPACENET_TRAINING_PYTHON={named} does not exist."
        return named
    assert TRAINING_PYTHON.is_file(), f"{TRAINING_PYTHON} is missing: run `make setup` (it builds training/.venv)."
    return str(TRAINING_PYTHON)
