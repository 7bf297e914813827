"""Shared test set-up: the checkout is importable as the package ``spacenet_toolkit``, as QGIS loads it."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "spacenet_toolkit"
# The Makefile makes this link; tests started by hand make it too.
PLUGIN_PATH = REPO_ROOT / ".build" / "plugins"
SHARED = REPO_ROOT.parent / "shared"


def _ensure_plugin_link() -> None:
    link = PLUGIN_PATH / PLUGIN_NAME
    if not link.exists():
        PLUGIN_PATH.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)


_ensure_plugin_link()
if str(PLUGIN_PATH) not in sys.path:
    sys.path.insert(0, str(PLUGIN_PATH))
# tests/support is not a package (the plugin zip leaves tests out): its modules are imported by folder.
SUPPORT = str(REPO_ROOT / "tests" / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
os.environ.setdefault("QGIS_PLUGINPATH", str(PLUGIN_PATH))
# QGIS computes statistics of every raster it loads and GDAL would save them beside the file as .aux.xml:
# the shared fixtures are read-only data, so nothing may be written there.
os.environ["GDAL_PAM_ENABLED"] = "NO"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def plugin_path() -> Path:
    return PLUGIN_PATH


@pytest.fixture(scope="session")
def oracle() -> Path:
    """The F1 reference data in ../shared/fixtures (CI always has it beside the checkout)."""
    folder = SHARED / "fixtures" / "f1_oracle"
    if not folder.is_dir():
        pytest.skip(f"the shared fixtures are not beside the checkout ({folder})")
    return folder


@pytest.fixture(scope="session")
def bucket():
    """The loopback S3 server seeded like the SpaceNet bucket (moto allows one per process: share it)."""
    import s3_server

    yield from s3_server.spacenet_bucket_server()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """The real SpaceNet tiles and the Deepness test models in ../shared/fixtures."""
    folder = SHARED / "fixtures"
    if not folder.is_dir():
        pytest.skip(f"the shared fixtures are not beside the checkout ({folder})")
    return folder


@pytest.fixture(scope="session")
def brightness_model(tmp_path_factory) -> str:
    """A tiny model with known, neighbourhood-dependent output (tests/support/onnx_models.py), with our card.

    Its overlap is wider than four times the model's reach: the blend ignores a quarter of it.
    """
    import onnx_models

    card = onnx_models.card(input={"tile_size": 256, "overlap": 96})
    return str(onnx_models.brightness_model(tmp_path_factory.mktemp("models") / "brightness.onnx", card))
