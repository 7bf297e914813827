"""The model's task chooses the extraction's output kind through one table: every task a model may declare has
its entry (tests/qgis/test_output_kinds.py: and its writer in the provider)."""

import json
from pathlib import Path

from spacenet_toolkit.core import model_registry
from spacenet_toolkit.core.extract import extract

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_task_a_model_declares_has_an_output_kind():
    shipped = {entry["task"] for entry in json.loads((MODELS / "registry.json").read_text())["models"].values()}
    assert shipped <= set(model_registry.TASKS) == set(extract.OUTPUT_KINDS)

