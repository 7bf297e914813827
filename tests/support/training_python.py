"""The training environment `make setup` builds (training/.venv: PyTorch CPU, onnx): the Python the adaptation
tests train with, as a mapper names it in the plugin's settings."""

from pathlib import Path

TRAINING_PYTHON = Path(__file__).resolve().parents[2] / "training" / ".venv" / "bin" / "python"


def training_python() -> str:
    assert TRAINING_PYTHON.is_file(), f"{TRAINING_PYTHON} is missing: run `make setup` (it builds training/.venv)."
    return str(TRAINING_PYTHON)
