"""The model store as the plugin uses it inside QGIS: the plugin's models/ folder, and downloads kept in the QGIS
profile (the plugin folder may be read-only, and a profile folder is the user's). Shared by processing_provider/
and ui/, so that neither imports the other for it."""

from pathlib import Path

from qgis.core import QgsApplication

from ..core.fetch.model_store import ModelStore


def models_cache_dir() -> Path:
    """Where downloaded models are kept: beside the tile index, shared by every project of the profile."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "spacenet_toolkit" / "models"


def user_models_dir() -> Path:
    """Where the user's own models (adapted by spacenet:adaptmodel) are kept, in the QGIS profile."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "spacenet_toolkit" / "user_models"


def model_store() -> ModelStore:
    """The store with the registry as it is now (cheap: a small JSON read; tests change it through the environment)."""
    return ModelStore(cache_dir=models_cache_dir(), user_dir=user_models_dir(), task_of=model_task)


def model_task(path) -> str:
    """The task a model's card states (read without onnxruntime)."""
    from ..core.extract import modelcard, onnx_file

    return modelcard.read_card(*onnx_file.read(path)).task
